"""Every malformed configuration ends in one line per problem and a non-zero exit, from
``softrelay check`` and from ``softrelay run`` alike: no traceback, and the message names the key.

Each file of tests/bad_configs/ says, on its first line (``# expect: a | b``), the key path or
words its error must name. ``run`` must refuse at load, before anything starts: a file it
would run instead is a failure (it is killed after a deadline), not a hang.

The files name no path outside the test's own directories: state paths are relative, in the
state directory (``$XDG_STATE_HOME/softrelay/softrelay``) made here with the obstacle the
files expect, a directory ``in_the_way`` where a relay would keep a file. (A relay that
renames aside a directory it took for its thermal memory must only ever meet this one.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

BAD = Path(__file__).parent / "bad_configs"
FILES = sorted(BAD.glob("*.yaml"))
#: a relay that starts instead of refusing is killed after this, s
DEADLINE = 20.0
TRAILER = re.compile(r"^\d+ problem\(s\): nothing would run$")


@dataclass(frozen=True)
class Case:
    path: Path
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  #: None: still running at the deadline (it started)
    lines: list[str]
    text: str


def expectations(path: Path) -> tuple[str, ...]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), f"{path.name}: no '# expect:' first line"
    return tuple(part.strip() for part in first.removeprefix("# expect: ").split("|"))


def cases(tmp: Path) -> list[Case]:
    found = [Case(path, expectations(path)) for path in FILES]
    return [*found, Case(BAD, ("is a directory",)),
            Case(tmp / "absent.yaml", ("cannot read", "No such file"))]


def places(tmp: Path) -> dict[str, str]:
    """The environment of the commands: a home and a state directory of their own, with a
    directory in the way of a state file."""
    home, xdg = tmp / "home", tmp / "xdg"
    (xdg / "softrelay" / "softrelay" / "in_the_way").mkdir(parents=True)  # the default name
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    return env | {"HOME": str(home), "XDG_STATE_HOME": str(xdg)}


def run(command: str, path: Path, env: dict[str, str]) -> Outcome:
    process = subprocess.Popen([sys.executable, "-m", "softrelay", command, str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)
    try:
        out, err = process.communicate(timeout=DEADLINE)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the relay and whatever it started
        out, err = process.communicate()
        code = None
    text = out + err
    return Outcome(code, [line for line in text.splitlines() if line.strip()], text)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[tuple[str, str], tuple[Case, Outcome]]:
    """Both commands on every case, a few processes at a time."""
    tmp = tmp_path_factory.mktemp("bad-configs")
    env = places(tmp)
    work = [(command, case) for case in cases(tmp) for command in ("check", "run")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: run(job[0], job[1].path, env), work))
    return {(command, case.path.name): (case, outcome)
            for (command, case), outcome in zip(work, results, strict=True)}


NAMES = [p.name for p in FILES] + [BAD.name, "absent.yaml"]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_configuration_is_refused_in_one_line_naming_the_key(outcomes, command, name):
    case, outcome = outcomes[(command, name)]
    assert outcome.returncode is not None, (
        f"{command} {name} was still running after {DEADLINE:g} s: it started instead of "
        f"refusing the file\n{outcome.text}")
    assert outcome.returncode != 0, f"{command} {name} accepted the file:\n{outcome.text}"
    assert "Traceback" not in outcome.text, outcome.text
    problems = [line for line in outcome.lines if not TRAILER.match(line)]
    assert problems, outcome.text
    for line in problems:  # one line per problem, each naming the file (and its line)
        assert line.startswith(f"{case.path}:"), f"not a problem line: {line!r}"
    trailers = [line for line in outcome.lines if TRAILER.match(line)]
    assert len(trailers) == (1 if command == "check" else 0), outcome.text
    for expected in case.expect:
        assert any(expected in line for line in problems), (
            f"{command} {name}: no problem names {expected!r}:\n{outcome.text}")


def test_every_file_says_what_its_error_must_name_and_names_no_outside_path():
    assert len(FILES) >= 20
    for path in FILES:
        assert expectations(path), path.name
        text = path.read_bytes().decode("utf-8", "replace")
        assert not re.search(r"(?<![\w.~])/[a-z]", text), f"{path.name} names an absolute path"
