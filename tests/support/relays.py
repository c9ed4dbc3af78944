"""A relay for a test: built, started, yielded, stopped, whatever the test does.

``running(path_or_config)`` replaces the ``Relay(load(path), str(path), factory=...)`` +
``start()`` + ``try/finally: stop()`` each relay test used to write: the relay gives back its
ports, pins, helpers, shared memory and instance lock even when the test fails inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.config.relay import RelayConfig
from softrelay.relay.build import build_relay
from softrelay.relay.relay import Relay

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def fast_config(state_dir: Path) -> Path:
    """``tests/configs/fast.yaml`` (a 10 ms relay on simulated devices) with its state in
    ``state_dir``; the file written there."""
    path = state_dir / "fast.yaml"
    path.write_text((CONFIGS / "fast.yaml").read_text().replace("STATE_DIR", str(state_dir)))
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
