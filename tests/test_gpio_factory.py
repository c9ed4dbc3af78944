"""The pin factory is said, never guessed (issue 14, item 3): ``gpio.factory`` names gpiozero's
factory; ``auto`` without a GPIO chip falls back to mock pins with a warning event; a named
factory that cannot load stops the start in one line; ``softrelay check`` and the start-up
events say which one drives the coils; the demo says mock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.gpio import coils
from softrelay.gpio.coils import NO_CHIP, GpioError, choose_pin_factory
from softrelay.relay.relay import Relay, StartupError

from support.configs import left_behind, relay_config

DEMO = Path(__file__).parents[1] / "config" / "demo.yaml"


def with_factory(tmp_path: Path, factory: str | None) -> Path:
    path = relay_config(tmp_path)
    text = path.read_text().replace("gpio: {factory: mock}\n", "")
    if factory is not None:
        text += f"gpio: {{factory: {factory}}}\n"
    path.write_text(text + "outputs:\n  - {name: alarm, pin: 17, flags: [bus1.warning]}\n")
    return path


def gpio_events(relay: Relay) -> list[str]:
    return [e.text for e in relay.events.ring if e.source == "gpio"]


def test_mock_is_said_and_simulates_the_coils():
    choice = choose_pin_factory("mock")
    assert isinstance(choice.factory, MockFactory) and choice.simulated
    assert choice.warning == "" and "mock pins" in choice.text


def test_auto_without_a_gpio_chip_falls_back_to_mock_with_a_warning_event(tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(coils, "GPIO_NODES", (tmp_path / "gpiochip0",))
    relay = Relay(load(with_factory(tmp_path, None)), None)  # gpio: absent, i.e. auto
    try:
        assert isinstance(relay.factory, MockFactory)
        said = gpio_events(relay)
        assert f"warning: {NO_CHIP}" in said, said
        assert any(text.startswith("coils driven by mock pins") for text in said), said
    finally:
        relay.stop()


def test_auto_with_a_chip_but_no_library_says_so(tmp_path, monkeypatch):
    chip = tmp_path / "gpiochip0"
    chip.touch()
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(coils, "FACTORIES", coils.FACTORIES | {
        name: "softrelay_no_such_module:Factory" for name in coils.AUTO_ORDER})
    choice = choose_pin_factory("auto", nodes=(chip,))
    assert choice.simulated and "no pin library loaded" in choice.warning


def test_a_named_factory_that_cannot_load_is_a_one_line_start_up_error(tmp_path, monkeypatch):
    monkeypatch.setattr(coils, "FACTORIES", coils.FACTORIES | {
        "lgpio": "softrelay_no_such_module:LGPIOFactory"})
    with pytest.raises(GpioError, match=r"^gpio.factory lgpio: cannot load LGPIOFactory"):
        choose_pin_factory("lgpio")
    path = with_factory(tmp_path, "lgpio")
    with pytest.raises(StartupError, match=r"gpio\.factory lgpio: cannot load"):
        Relay(load(path), None)
    assert left_behind(path) == []
    relay = Relay(load(path), None, factory=MockFactory())  # the caller's factory still wins
    try:
        assert any("MockFactory given by the caller" in t for t in gpio_events(relay))
    finally:
        relay.stop()


@pytest.mark.e2e
def test_softrelay_run_refuses_a_factory_that_cannot_load(tmp_path):
    """On this machine (no Raspberry Pi) the named real factory cannot load: one line, exit 1."""
    done = subprocess.run([sys.executable, "-m", "softrelay", "run",
                           str(with_factory(tmp_path, "rpigpio"))],
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 0:  # pragma: no cover (a Pi with RPi.GPIO)
        pytest.skip("RPi.GPIO loads here")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("softrelay: ")]
    assert said and said[0].startswith("softrelay: gpio.factory rpigpio: cannot load"), said


@pytest.mark.e2e
def test_softrelay_check_refuses_a_factory_that_run_would_refuse(tmp_path):
    """check refuses what run refuses: a named factory that cannot load on this machine."""
    path = with_factory(tmp_path, "rpigpio")
    done = subprocess.run([sys.executable, "-m", "softrelay", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 0 and "CANNOT LOAD" not in done.stdout:  # pragma: no cover (a Pi)
        pytest.skip("RPi.GPIO loads here")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()  # one line
    assert line.startswith(f"{path}: gpio.factory: rpigpio cannot load on this machine (")
    assert "the relay would refuse to start" in line


@pytest.mark.e2e
def test_check_and_the_demo_say_what_drives_the_coils(tmp_path, monkeypatch):
    assert load(DEMO).gpio.factory == "mock"
    shown = subprocess.run([sys.executable, "-m", "softrelay", "check", str(DEMO)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "  gpio: coils driven by mock pins (simulated: gpio.factory mock)" in \
        shown.stdout.splitlines()
    monkeypatch.setattr(coils, "GPIO_NODES", (tmp_path / "gpiochip0",))
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    from softrelay.cli.summary import describe

    lines = describe(load(with_factory(tmp_path, "auto")))
    assert any(line.startswith("  gpio: coils driven by mock pins (simulated: gpio.factory "
                               "auto and no GPIO chip here") for line in lines), lines
