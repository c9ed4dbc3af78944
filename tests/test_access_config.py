"""The access section in the configuration: where each code comes from (the file, or an
environment variable), refused by check and run alike when missing or not a code (naming
file:line, key and the variable, never the value), what check prints, the old unlock section
refused with its replacement."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from softrelay.cli.summary import describe
from softrelay.config import parse

from support.configs import DEMO, edited, line_of, problems_of

ENGINEER_ENV = "    code_env: SOFTRELAY_ENGINEER_CODE\n    code: 222222\n"


def without_fallback(text: str = DEMO) -> str:
    assert ENGINEER_ENV in text
    return text.replace(ENGINEER_ENV, "    code_env: SOFTRELAY_ENGINEER_CODE\n")


def test_a_variable_that_is_not_set_with_no_fallback_is_refused_where_it_is_named(
        monkeypatch):
    monkeypatch.delenv("SOFTRELAY_ENGINEER_CODE", raising=False)
    text = without_fallback()
    found = problems_of(text)
    line = line_of(text, "code_env: SOFTRELAY_ENGINEER_CODE")
    assert found == [f"relay.yaml:{line}: access.engineer.code_env: $SOFTRELAY_ENGINEER_CODE "
                     "is not set (and no code to fall back on): set it in the service's "
                     "environment file, or give code"], found


def test_a_variable_that_holds_no_code_is_refused_naming_it_not_its_value(monkeypatch):
    monkeypatch.setenv("SOFTRELAY_ENGINEER_CODE", "hunter2")
    found = problems_of(DEMO)  # even with a fallback: a broken variable is not ignored
    assert len(found) == 1 and "access.engineer.code_env: $SOFTRELAY_ENGINEER_CODE is not a " \
        "code: give a whole number 1..4294967295" in found[0], found
    assert "hunter2" not in found[0]
    monkeypatch.setenv("SOFTRELAY_ENGINEER_CODE", "0")
    assert "$SOFTRELAY_ENGINEER_CODE: a code is 1..4294967295" in problems_of(DEMO)[0]


def test_check_says_where_each_code_comes_from_never_the_code(monkeypatch):
    monkeypatch.setenv("SOFTRELAY_ENGINEER_CODE", "8675309")
    monkeypatch.delenv("SOFTRELAY_OPERATOR_CODE", raising=False)
    config = parse(DEMO, "relay.yaml")
    assert config.access.codes() == {1: 1111, 2: 8675309}
    lines = describe(config)
    text = "\n".join(lines)
    assert ("  access level 1 operator: code in the file ($SOFTRELAY_OPERATOR_CODE is not "
            "set); reset, acknowledge") in lines
    assert ("  access level 2 engineer: code from $SOFTRELAY_ENGINEER_CODE; preset, "
            "clear_statistics, settings") in lines
    assert "8675309" not in text and "1111" not in text and "222222" not in text
    free = parse(edited("  minutes: 10                 # a session",
                        "  levels: {reset: 0}\n  minutes: 10  # a session"), "relay.yaml")
    assert ("  access level 0 (any admitted client): reads, the event cursor, and WITHOUT A "
            "CODE: reset") in describe(free)


def test_the_levels_need_distinct_codes_and_settings_always_need_one():
    found = problems_of(DEMO.replace("    code: 222222\n", "    code: 1111\n"))
    assert any("access: the operator's and the engineer's codes are the same" in p
               for p in found), found
    found = problems_of(edited("  minutes: 10                 # a session",
                               "  levels: {settings: 0}\n  minutes: 10  # a session"))
    assert any("access.levels.settings: Input should be greater than or equal to 1" in p
               for p in found), found


def test_the_old_unlock_section_is_refused_with_its_replacement():
    text = edited("access:", "unlock:\n  code: 123456\n  minutes: 10\naccess:")
    (problem,) = problems_of(text)
    assert problem.startswith(f"relay.yaml:{line_of(text, 'unlock:')}: unlock: replaced by "
                              "'access:'")
    assert "levels: {reset: 0, acknowledge: 0}" in problem


@pytest.mark.e2e
@pytest.mark.parametrize(("value", "refused"), [(None, "is not set"), ("x1", "is not a code")])
def test_softrelay_check_refuses_what_run_would(tmp_path, value, refused):
    path = tmp_path / "relay.yaml"
    path.write_text(without_fallback())
    env = {k: v for k, v in os.environ.items() if k != "SOFTRELAY_ENGINEER_CODE"}
    if value is not None:
        env["SOFTRELAY_ENGINEER_CODE"] = value
    for command in ("check", "run"):
        done = subprocess.run([sys.executable, "-m", "softrelay", command, str(path)],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode != 0, (command, done.stdout, done.stderr)
        said = done.stdout + done.stderr
        assert f"access.engineer.code_env: $SOFTRELAY_ENGINEER_CODE {refused}" in said, said
        assert "Traceback" not in said and (value is None or value not in said)
