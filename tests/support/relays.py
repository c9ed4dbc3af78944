"""A relay for a test: built, started, yielded, stopped, whatever the test does; and a
driver that runs its scan in the test's thread.

``running(path_or_config)`` replaces the ``Relay(load(path), str(path), factory=...)`` +
``start()`` + ``try/finally: stop()`` each relay test used to write: the relay gives back its
ports, pins, helpers, shared memory and instance lock even when the test fails inside.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.config.relay import RelayConfig
from softrelay.relay.build import build_relay
from softrelay.relay.relay import Relay

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FAST = CONFIGS / "fast.yaml"  #: a 10 ms relay on simulated devices, ``STATE_DIR`` to replace


def fast_config(state_dir: Path) -> Path:
    """``tests/configs/fast.yaml`` (a 10 ms relay on simulated devices) with its state in
    ``state_dir``; the file written there."""
    path = state_dir / "fast.yaml"
    path.write_text(FAST.read_text().replace("STATE_DIR", str(state_dir)))
    return path


@contextmanager
def running(source: str | Path | RelayConfig, *, companion: bool = True, factory=None,
            clock=None, status: bool = False) -> Iterator[Relay]:
    """The relay of ``source`` (a configuration file, or a parsed configuration), started
    (``companion=False``: without its I/O process, the test drives the image), on ``factory``
    (default: fresh mock pins); stopped when the block ends."""
    if isinstance(source, RelayConfig):
        config, path = source, None
    else:
        config, path = load(source), str(source)
    relay = build_relay(config, path, clock=clock, factory=factory or MockFactory(),
                        status=status)
    try:
        relay.start(companion=companion)
        yield relay
    finally:
        relay.stop()


class Driver:
    """Runs the relay's scan in this thread until a condition holds (or a timeout).

    For a relay started but not ``run``: ``until`` steps the scan loop itself, one scan at a
    time, and fails the test (naming ``what``) when ``timeout`` seconds pass first; the scan's
    outputs are therefore exactly the last step's when the condition is read."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def until(self, condition, timeout: float, what: str) -> float:
        """Scan until ``condition()`` holds; the seconds it took."""
        start = time.monotonic()
        while not condition():
            assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
            self.relay.loop.step()
        return time.monotonic() - start

    def thermal(self) -> int:
        """The first thermal point's flags (``ThermalFlag`` bits)."""
        return int(self.relay.core.thermal_outputs["flags"][0])

    def busbar(self) -> int:
        """The first busbar point's flags (``BusbarFlag`` bits)."""
        return int(self.relay.core.busbar_outputs["flags"][0])
