"""Configuration texts for the tests: the demo's, and the small ones several tests build on.

Each is the text a user would write (parsed by ``softrelay.config`` as a file would be), so a
test edits it the way a user edits a file. ``problems_of`` asserts that a text is refused and
gives the problems as the user reads them (file:line, key path, reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from softrelay.config import ConfigError, demo_path, load, parse
from softrelay.config.state import state_paths
from softrelay.image.shared import SHM, segment_prefix

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  #: tests/configs/

#: the demo's configuration file (config/demo.yaml), as text
DEMO = demo_path().read_text()


def demo_config(state_dir: Path):
    """The demo configuration, parsed, with its state in ``state_dir`` and free ports (the
    golden files' relay: the same text everywhere it is recorded)."""
    path = state_dir / "demo.yaml"
    path.write_text(DEMO.replace("\nstate:\n", f"\nstate:\n  dir: {state_dir}\n")
                    .replace("port: 9650", "port: 0").replace("port: 5020", "port: 0"))
    return load(path)


def problems_of(text: str) -> list[str]:
    """The problems ``text`` (read as ``relay.yaml``) is refused with, as the user reads them;
    fails the test when it is accepted."""
    with pytest.raises(ConfigError) as caught:
        parse(text, "relay.yaml")
    return [str(p) for p in caught.value.problems]


def edited(old: str, new: str) -> str:
    """The demo with its first ``old`` replaced by ``new`` (fails when the demo has no ``old``:
    an edit that silently did nothing would prove nothing)."""
    assert old in DEMO, old
    return DEMO.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    """The 1-based number of the first line of ``text`` that holds ``fragment``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


# The end-to-end configuration (every value from the plant's simulated bus), without its
# scheduled fault on the plant bus, as the base.
BASE = ((CONFIGS / "fast.yaml").read_text()
        .replace("  - {bus: plant, address: bus1.temp.ambient, kind: nack, start: 6.0, "
                 "stop: 8.0}\n", "").replace("  faults:\n", ""))


def relay_config(tmp_path: Path, *, i2c_bus: int | None = None, modbus_port: int = 0,
                 metrics_port: int | None = None, rtu_port: str | None = None,
                 name: str = "startup") -> Path:
    """A busbar point on a simulated bus (or on the real I2C bus ``i2c_bus``), its events on
    disk, its Modbus slave on ``modbus_port``."""
    if i2c_bus is None:
        bus = ("  - {name: amb, kind: simulated}\n")
        addresses = ["bus1.temp.a", "bus1.temp.b", "bus1.temp.c", "bus1.temp.ambient"]
        plant = "plant:\n  busbars:\n    - {name: bus1, rated_current: 400}\n"
    else:
        bus = (f"  - name: amb\n    kind: i2c\n    bus: {i2c_bus}\n    max_backoff: 0.5\n"
               "    sensors:\n      - {name: t1, chip: tmp117, address: 0x48}\n")
        addresses = ["t1.temperature"] * 4
        plant = ""
    signals = "".join(f"  - {{name: {n}, bus: amb, address: {a}, poll: 0.2}}\n"
                      for n, a in zip(("ta", "tb", "tc", "tamb"), addresses, strict=True))
    text = (f"name: {name}\nscan: {{period: 0.01}}\n"
            f"state: {{dir: {tmp_path}, file: state.json}}\n"
            f"events: {{file: events.jsonl}}\n"
            "healthy: {drop_on: [measurement_lost, link_down]}\n"
            "gpio: {factory: mock}\n"
            f"buses:\n{bus}signals:\n{signals}"
            "points:\n  - {name: bus1, kind: busbar, phases: [ta, tb, tc], ambient: tamb}\n"
            f"modbus: {{host: 127.0.0.1, port: {modbus_port}}}\n" + plant)
    if metrics_port is not None:
        text += f"metrics: {{host: 127.0.0.1, port: {metrics_port}}}\n"
    if rtu_port is not None:
        text += f"modbus_rtu: {{port: {rtu_port}}}\n"
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return path


def left_behind(path: Path) -> list[str]:
    """The relay's segments and lock file still in /dev/shm (the relay of the configuration
    file ``path``): empty once it has given back everything it took."""
    config = load(path)
    prefix = segment_prefix(config.name, state_paths(config).memory)
    return sorted(p.name for p in SHM.glob(f"{prefix}*"))
