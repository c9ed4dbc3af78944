"""The version is written once (``softrelay.__version__``); the package metadata, the command
line and the firmware registers the DCS reads all come from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import read_configuration

import softrelay
from softrelay.modbus.regmap import firmware_version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_package_takes_its_version_from_the_one_place():
    project = read_configuration(PYPROJECT, expand=False)["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert read_configuration(PYPROJECT)["project"]["version"] == softrelay.__version__


@pytest.mark.e2e
def test_the_command_line_and_the_firmware_registers_say_that_version():
    shown = subprocess.run([sys.executable, "-m", "softrelay", "--version"],
                           capture_output=True, text=True, timeout=60)
    assert softrelay.__version__ in shown.stdout + shown.stderr, shown
    assert ".".join(map(str, firmware_version())) == softrelay.__version__
