"""The command line is a parser and a dispatch (``cli/main.py``); each command is its own
module, imported only when that command runs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from softrelay.cli.main import COMMANDS, build_parser


def test_every_command_of_the_parser_has_its_module_and_no_other():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    for name, target in COMMANDS.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


@pytest.mark.e2e
def test_help_loads_no_command_module():
    code = ("import sys\nfrom softrelay.cli.main import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('softrelay.cli.')"
            " or m in ('softrelay.relay.relay', 'gpiozero')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: softrelay" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "['softrelay.cli.main']"


def test_a_command_returns_its_exit_code_through_the_dispatch(capsys):
    from softrelay.cli.main import main

    assert main(["regmap", "--unit", "7"]) == 1
    assert "unit 7 shows no group of points" in capsys.readouterr().err
