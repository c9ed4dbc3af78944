"""A recorded run of the demo plant on a simulated clock, as a committed golden file.

What the relay does scan by scan is its behaviour: which events it records, in which order,
at which scan; what its coils do; where theta, the busbar's rises and the counters end. A
restructure of the relay (issue 16) must not move any of it. So one run of the demo is
recorded and ``tests/test_recorded_run.py`` compares it exactly with
``tests/golden/recorded_run_demo.json``.

Deterministic on purpose:
- the scan runs on ``SimulatedClock`` (no sleeping, the demo's 10 ms grid);
- the companion is not started: the plant (``sim/plant.py``, seeded, on the simulated time)
  and the input image are driven in this process, between scans, each signal written at its
  own poll interval with a stamp on the scan's time base. The field drivers and their twins
  are not part of this run (they have their own tests): a signal's value is the plant's value
  at the address its device simulates (a sample window: the plant's phasors, sampled as an
  MCP3208 interleaves three phases);
- the watchdog's thread is not started: its check runs after every scan on the simulated
  time, so the healthy contact picks up at the same scan every run;
- events are compared by scan (0: during the start), kind, source and text (the state
  directory and the Modbus port written as placeholders), never by wall or monotonic time;
- the final values are written with 10 significant digits.

To change it deliberately (a behaviour change that is meant): run
``PYTHONPATH=runtime python tests/golden_run.py`` from the repository root and commit the new
file with the change; say in CHANGELOG what a user sees differently.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
from gpiozero.pins.mock import MockFactory

from softrelay.core import Quality
from softrelay.image.signals import signal_writer, window_rows
from softrelay.relay.relay import Relay
from softrelay.scan.clock import SimulatedClock
from softrelay.sim.plant import PlantModel

from support.configs import demo_config

TESTS = Path(__file__).resolve().parents[1]  #: tests/
GOLDEN = TESTS / "golden" / "recorded_run_demo.json"
REGENERATE = "PYTHONPATH=runtime python tests/golden_run.py"
TRACE_EVERY = 1000  #: scans
SECONDS = 160.0  #: simulated: motor1 trips, cools, restarts; bus1's joint goes critical


def plant_addresses(config) -> dict[int, object]:
    """Signal index -> the plant address it reads (a window: its three phase addresses)."""
    simulated = {}
    for bus in config.buses:
        for part in list(getattr(bus, "devices", None) or []) + list(
                getattr(bus, "sensors", None) or []):
            simulated[(bus.name, part.name)] = part
    out = {}
    for i, s in enumerate(config.signals):
        owner, _, quantity = s.address.partition(".")
        part = simulated[(s.bus, owner)]
        if quantity == "window":
            out[i] = [part.simulate[f"ch{c}"] for c in part.channels]
        else:
            out[i] = part.simulate[quantity]
    return out


class PlantDriver:
    """The plant and the input image, driven between scans on the scan's time base."""

    def __init__(self, relay: Relay, clock: SimulatedClock) -> None:
        config = relay.config
        self.config = config
        self.clock = clock
        self.relay = relay
        coil_index = {o.name: i for i, o in enumerate(config.outputs)}

        def coil(name: str) -> bool:  # as the companion reads them: from the snapshot
            return bool(relay.snapshot.read()["coils"][coil_index[name]])

        self.plant = PlantModel(config.plant, coil, clock=self.now, seed=0)
        self.addresses = plant_addresses(config)
        self.windows = set(window_rows(config))
        self.publish = signal_writer(relay.inputs, window_rows(config))
        self.next_due = {i: 0.0 for i in self.addresses}
        sampling = config.sampling
        self.samples = sampling.samples_per_cycle * sampling.cycles
        self.interval = 1.0 / (sampling.frequency * sampling.samples_per_cycle)
        self.omega = 2.0 * math.pi * config.plant.frequency

    def now(self) -> float:
        return self.clock.time_ns / 1e9

    def window(self, phases: list[str], t0: float) -> tuple[float, np.ndarray]:
        rows = np.empty((3, self.samples))
        k = np.arange(self.samples)
        for p, address in enumerate(phases):
            rms, angle = self.plant.phasor(address)
            t = t0 + (3 * k + p) * self.interval / 3.0
            rows[p] = math.sqrt(2.0) * rms * np.cos(self.omega * t + math.radians(angle))
        rms = np.sqrt((rows ** 2).mean(axis=1))
        return float(rms.max()), rows

    def poll(self) -> None:
        """Every signal whose poll is due, read from the plant and written in one version."""
        now = self.now()
        due = [i for i, at in self.next_due.items() if now >= at - 1e-9]
        if not due:
            return
        values, windows = [], {}
        for i in due:
            self.next_due[i] = now + self.config.signals[i].poll
            if i in self.windows:
                value, rows = self.window(self.addresses[i], now)
                windows[i] = rows
                values.append(value)
            else:
                values.append(self.plant.read(self.addresses[i]))
        idx = np.array(due, dtype=np.intp)
        self.publish(idx, np.array(values), np.full(len(due), now),
                     np.full(len(due), Quality.GOOD, dtype=np.uint8), windows)


def _number(x) -> object:
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return float(f"{x:.10g}")


def _table(table: np.ndarray) -> list[dict]:
    rows = []
    for row in table:
        rows.append({name: (_number(row[name]) if np.ndim(row[name]) == 0
                            else [_number(v) for v in np.ravel(row[name])])
                     for name in table.dtype.names if not name.startswith("_")})
    return rows


def record(seconds: float = SECONDS) -> dict:
    """Run the demo for ``seconds`` of simulated time; its events and its final state."""
    with tempfile.TemporaryDirectory() as tmp:
        config = demo_config(Path(tmp))
        clock = SimulatedClock(round(config.scan.period * 1e9))
        relay = Relay(config, None, clock=clock, factory=MockFactory())
        clock_now = lambda: clock.time_ns / 1e9  # noqa: E731
        relay.watchdog.now = clock_now
        relay.watchdog.start = lambda interval=None: None  # checked after every scan below
        driver = PlantDriver(relay, clock)
        events: list[list] = []
        trace: list[list] = []  #: every 10 s: theta of each thermal point, bus1's rises
        seen = 0

        def drain(scan: int) -> None:
            nonlocal seen
            for e in relay.events.since(seen):
                text = e.text.replace(tmp, "<state>")
                text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
                events.append([scan, e.seq, e.kind, e.source, text])
                seen = e.seq

        relay.start(companion=False)
        try:
            drain(0)
            scans = round(seconds / config.scan.period)
            for scan in range(1, scans + 1):
                driver.poll()
                relay.loop.step()
                relay.watchdog.check()
                relay.supervision.poll()
                drain(scan)
                if scan % TRACE_EVERY == 0:
                    core = relay.core
                    trace.append([scan] + [_number(x) for x in core.thermal_outputs["theta"]]
                                 + [_number(x) for x in core.busbar_outputs["max_rise"]])
            core = relay.core
            stats = relay.loop.stats
            final = {
                "thermal": _table(core.thermal_outputs),
                "busbar": _table(core.busbar_outputs),
                "thermal_state": _table(core.thermal_state),
                "coils": {c.name: bool(v) for c, v in zip(
                    config.outputs, relay.snapshot.read()["coils"], strict=True)},
                "healthy": bool(relay.supervision.healthy),
                "supervision_word": int(relay.supervision.word),
                "scans": stats.scans, "overruns": stats.overruns,
                "breakers": {name: [m.breaker_closed, m.opened, m.closed]
                             for name, m in driver.plant.motors.items()},
            }
        finally:
            relay.stop()
        drain(-1)  # the stop's own events
    return {"seconds": seconds, "events": events, "trace": trace, "final": final}


def main() -> int:
    run = record()
    GOLDEN.write_text(json.dumps(run, indent=1) + "\n")
    print(f"wrote {GOLDEN}: {len(run['events'])} events over {run['final']['scans']} scans")
    return 0

