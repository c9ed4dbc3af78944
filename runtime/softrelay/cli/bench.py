"""``softrelay bench CONFIG``: what the configured relay costs on this machine, and the scan
period and poll rates it affords, with the evidence.

Run on the target (the Pi, the gateway) before commissioning, with the service stopped: the
bench reads the configured field devices for real. It never drives the coils (gpiozero's mock
pins), never touches the thermal memory or the event file (a temporary directory), serves the
Modbus slave on a free loopback port and leaves the RTU slave, metrics, MQTT and SNMP out (they
do not run in the scan's process).

What it measures, in this order:

1. **wake floor**: the compiled ticker at the configured period and real-time options with no
   work: the lateness this OS gives any periodic task;
2. **the relay, idle**: the real scan loop with its companion process and the real I/O; its own
   lateness and execution histograms (after a warm-up);
3. **the relay under Modbus load** (when it has a slave): the same, while a client process
   reads the map as fast as the slave answers: the requests per second it answers (its
   headroom) and what that costs the scan;
4. **where the scan's time goes**: each stage of the real loop (latching the inputs, commands,
   the compiled core's pass, events, coils, the snapshot and register image) timed;
5. **each bus**: one sweep (every signal of the bus in one read) repeated: the shortest poll
   period the bus affords.

Recommendations: the shortest scan period is the next 1-2-5 value at least twice the worst
scan (execution p99.9 plus lateness p99.9, the worse window); the shortest poll period of a bus
is the next 1-2-5 value at least twice its sweep p99.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import queue
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

import yaml

from softrelay import _timing
from softrelay.config.relay import RelayConfig
from softrelay.modbus import protocol
from softrelay.modbus.protocol import is_exception, split_tcp_frames

SERIES = (1.0, 2.0, 5.0)


def nice_ceiling(seconds: float) -> float:
    """The smallest 1-2-5 value (x 10^k) at or above ``seconds``."""
    if seconds <= 0:
        return 0.0
    exponent = math.floor(math.log10(seconds))
    for decade in (exponent, exponent + 1):
        for step in SERIES:
            value = step * 10.0 ** decade
            if value >= seconds * (1 - 1e-12):
                return float(f"{value:.12g}")
    raise AssertionError("unreachable")  # pragma: no cover


def in_seconds(summary: dict) -> dict:
    """A histogram's summary (ns) as seconds: count, p50, p99, p999, max."""
    return {"count": int(summary["count"]),
            **{k: summary[k] * 1e-9 for k in ("p50", "p99", "p999", "max")}}


def bench_variant(config: RelayConfig, workdir: Path) -> RelayConfig:
    """The configuration the bench runs: state in ``workdir``, no event file, the slave on a
    free loopback port, no RTU slave, no telemetry."""
    modbus = (config.modbus.model_copy(update={"host": "127.0.0.1", "port": 0})
              if config.modbus is not None else None)
    return config.model_copy(update={
        "state": config.state.model_copy(update={"file": workdir / "state.json"}),
        "events": config.events.model_copy(update={"file": None}),
        "modbus": modbus, "modbus_rtu": None, "metrics": None, "mqtt": None, "snmp": None})


def wake_floor(period_ns: int, seconds: float, scans: int = 0) -> dict:
    """Lateness of the bare ticker at ``period_ns`` for ``seconds`` and at least ``scans``
    wake-ups (no work)."""
    ticker = _timing.Ticker(period_ns)
    hist = _timing.Histogram()
    end = time.monotonic() + seconds
    while time.monotonic() < end or hist.count < scans:
        _, late, _ = ticker.wait()
        hist.record(late)
    return in_seconds(hist.summary())


def mapped_reads(regmap, table: str = "input_register", limit: int = 125
                 ) -> list[tuple[int, int]]:
    """(start, count) reads that cover every mapped address of ``table`` and nothing
    unmapped (a read that touches an unmapped address is answered with exception 02): the
    map's contiguous runs, cut to ``limit`` registers."""
    used = sorted({a for e in regmap.in_table(table)
                   for a in range(e.address, e.address + e.width)})
    reads: list[tuple[int, int]] = []
    for address in used:
        if reads and address == sum(reads[-1]) and reads[-1][1] < limit:  # the run goes on
            reads[-1] = (reads[-1][0], reads[-1][1] + 1)
        else:
            reads.append((address, 1))
    return reads


def _frames(sock: socket.socket, buffer: bytearray) -> tuple[int, int]:
    """Read what arrived; remove the complete Modbus/TCP frames from ``buffer``: (answers
    with data, exception answers)."""
    buffer += sock.recv(1 << 16)
    frames = split_tcp_frames(buffer)
    exceptions = sum(is_exception(f[protocol.MBAP.size:]) for f in frames)
    return len(frames) - exceptions, exceptions


def modbus_load(port: int, reads: list[tuple[int, int]], stop, depth: int, answers) -> None:
    """A client process: the map's ``reads`` (input registers), in turn, ``depth`` requests
    deep, until ``stop`` is set; puts (answers with data, exception answers, registers read,
    seconds taken) on ``answers``."""
    requests = [protocol.tcp_frame(1, 1, struct.pack(">BHH", protocol.Function.READ_INPUT_REGISTERS,
                                                     start, count)) for start, count in reads]
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        sent = answered = exceptions = registers = 0
        start = time.monotonic()
        while not stop.is_set():
            while sent - answered - exceptions < depth:
                sock.sendall(requests[sent % len(requests)])
                registers += reads[sent % len(reads)][1]
                sent += 1
            got, failed = _frames(sock, buffer)
            answered, exceptions = answered + got, exceptions + failed
        while answered + exceptions < sent:
            got, failed = _frames(sock, buffer)
            answered, exceptions = answered + got, exceptions + failed
        answers.put((answered, exceptions, registers, time.monotonic() - start))


#: scans a p99.9 rests on at the least (ten scans beyond it); fewer, and the figure quoted
#: for the tail is the window's max
TAIL_SCANS = 10_000


def tail(figures: dict) -> float:
    """The tail figure a recommendation rests on: p99.9 where the window had enough scans
    for it, else the max."""
    return figures["p999"] if figures["count"] >= TAIL_SCANS else figures["max"]


def tail_name(figures: dict) -> str:
    return "p99.9" if figures["count"] >= TAIL_SCANS else "max"


def run_window(relay, seconds: float, scans: int = 0) -> dict:
    """Scan for ``seconds`` and at least ``scans`` scans, statistics cleared first; the
    window's figures."""
    stats = relay.loop.stats
    stats.clear()
    end = time.monotonic() + seconds
    relay.loop.run(lambda: time.monotonic() < end or stats.lateness.count < scans)
    return {"scans": stats.lateness.count, "overruns": stats.overruns,
            "lateness": in_seconds(stats.lateness.summary()),
            "execution": in_seconds(stats.execution.summary())}


class StageTimer:
    """The loop's ``stage_timer``: one histogram per stage, by the stage's own name
    (``relay.stages.SCAN_ORDER``), in the order the scan first ran them."""

    def __init__(self) -> None:
        self.hists: dict[str, _timing.Histogram] = {}

    def __call__(self, name: str, ns: int) -> None:
        hist = self.hists.get(name)
        if hist is None:
            hist = self.hists[name] = _timing.Histogram()
        hist.record(ns)


def stage_window(relay, seconds: float) -> dict:
    """Where the scan's time goes: each stage of the real loop timed, the compiled core's
    pass among them, for ``seconds`` (the timing adds about a microsecond per stage)."""
    loop = relay.loop
    timer = StageTimer()
    loop.stage_timer = timer
    try:
        end = time.monotonic() + seconds
        loop.run(lambda: time.monotonic() < end)
    finally:
        loop.stage_timer = None
    return {name: in_seconds(hist.summary()) for name, hist in timer.hists.items()}


def _plant(config: RelayConfig):
    if config.plant is None:
        return None
    from softrelay.sim.plant import PlantModel

    return PlantModel(config.plant, lambda name: False)  # breakers closed


def sweep_bus(config: RelayConfig, bus, seconds: float, plant) -> dict:
    """Every signal of ``bus`` read in one sweep, repeated for ``seconds``."""
    from softrelay.core import Quality
    from softrelay.field.registry import open_bus

    addresses = [s.address for s in config.signals if s.bus == bus.name]
    polls = [s.poll for s in config.signals if s.bus == bus.name]
    hist = _timing.Histogram()
    failed = 0
    if not addresses:
        return {"signals": 0}
    device = open_bus(bus, plant, config.sampling)
    link = getattr(device, "link", None)  # Modbus: timed on an event loop, as the relay polls
    if link is not None:

        async def sweeps() -> int:
            failures = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                start = _timing.monotonic_ns()
                readings = await link.read(addresses)
                hist.record(_timing.monotonic_ns() - start)
                failures += all(q == Quality.IO_ERROR for _, q in readings)
            await link.close()
            return failures

        try:
            failed = asyncio.run(sweeps())
        finally:
            device.close()
    else:
        device.open()
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                start = _timing.monotonic_ns()
                readings = device.read(addresses)
                hist.record(_timing.monotonic_ns() - start)
                failed += all(q == Quality.IO_ERROR for _, q in readings)
        finally:
            device.close()
    sweep = in_seconds(hist.summary())
    shortest = max(nice_ceiling(2 * sweep["p99"]), 0.001)
    return {"kind": bus.kind, "signals": len(addresses), "sweep": sweep, "failed": failed,
            "fastest_poll": min(polls), "shortest_poll": shortest,
            "ok": failed == 0 and min(polls) >= shortest}


def bench(config: RelayConfig, seconds: float = 5.0, progress=lambda text: None,
          scans: int = TAIL_SCANS) -> dict:
    """Measure ``config`` on this machine; the report as a JSON-ready dict. The wake floor
    and the relay's windows last ``seconds`` and at least ``scans`` scans (the default is
    enough for a p99.9; with fewer the tail quoted is the max)."""
    from gpiozero.pins.mock import MockFactory

    from softrelay.relay.relay import Relay
    from softrelay.scan import realtime

    rt = config.scan.realtime
    applied = realtime.apply(rt.priority, rt.lock_memory, rt.cpu, rt.timer_slack_ns)
    period = config.scan.period
    period_ns = round(period * 1e9)
    from softrelay.machine import describe

    report: dict = {"name": config.name, "period": period, "points": len(config.points),
                    "signals": len(config.signals), "machine": describe(),
                    "realtime": {a.option: a.ok for a in applied}}
    window = max(seconds, scans * period)
    progress(f"wake floor: the bare ticker every {period * 1e3:g} ms for {window:g} s "
             f"({scans} scans at least)")
    report["wake_floor"] = wake_floor(period_ns, seconds, scans)
    with tempfile.TemporaryDirectory(prefix="softrelay-bench-") as tmp:
        workdir = Path(tmp)
        variant = bench_variant(config, workdir)
        path = workdir / "bench.yaml"
        path.write_text(yaml.safe_dump(variant.model_dump(mode="json"), sort_keys=False))
        relay = Relay(variant, str(path), factory=MockFactory())
        relay.start()
        try:
            progress(f"the relay with its I/O for {window:g} s")
            run_window(relay, min(1.0, seconds))  # warm-up: connections, first reads
            report["relay_idle"] = run_window(relay, seconds, scans)
            if relay.slave is not None:
                progress(f"the relay under Modbus load for {window:g} s")
                report["relay_modbus_load"] = loaded_window(relay, seconds, scans)
            progress(f"where the scan's time goes, {seconds:g} s")
            report["stages"] = stage_window(relay, seconds)
        finally:
            relay.stop()
    plant = _plant(config)
    report["buses"] = {}
    for bus in config.buses:
        progress(f"bus {bus.name}: sweeps for {seconds / 2:g} s")
        report["buses"][bus.name] = sweep_bus(config, bus, seconds / 2, plant)
    report["recommendation"] = recommend(report)
    return report


def loaded_window(relay, seconds: float, scans: int = 0) -> dict:
    """A window of scans while a client process reads the map (only what it serves) as fast
    as it is answered. The rate counts answers with data; exception answers are counted
    apart and never make a rate."""
    reads = mapped_reads(relay.regmap)
    ctx = multiprocessing.get_context("spawn")
    answers, stop = ctx.Queue(), ctx.Event()
    client = ctx.Process(target=modbus_load, args=(relay.slave.port, reads, stop, 8, answers),
                         daemon=True)
    client.start()
    relay.loop.run(lambda: relay.slave.server.counters["requests"] == 0 and client.is_alive(),
                   max_scans=round(10.0 / relay.config.scan.period))  # loading first
    window = run_window(relay, seconds, scans)
    stop.set()
    relay.loop.run(client.is_alive)  # scanning until the client has its answers
    try:
        answered, exceptions, registers, took = answers.get(timeout=10.0)
    except queue.Empty:  # the client failed (its traceback is on stderr)
        answered, exceptions, registers, took = 0, 0, 0, 1.0
    client.join(5.0)
    window["modbus"] = {
        "reads": [list(r) for r in reads], "answered": answered, "exceptions": exceptions,
        "registers_per_request": registers / max(answered + exceptions, 1),
        "requests_per_second": answered / took if answered else 0.0}
    return window


def recommend(report: dict) -> dict:
    """The shortest safe scan period and, per bus, the shortest poll period."""
    windows = [report[k] for k in ("relay_idle", "relay_modbus_load") if k in report]

    def need(window: dict) -> float:
        return tail(window["execution"]) + tail(window["lateness"])

    worst = max(windows, key=need)
    period = max(nice_ceiling(2 * need(worst)), 0.001)
    quoted = tail_name(worst["execution"])
    verdict = {
        "scan_period": period,
        "scan_period_idle": max(nice_ceiling(2 * need(report["relay_idle"])), 0.001),
        "scan_period_ok": report["period"] >= period and all(w["overruns"] == 0
                                                             for w in windows),
        "evidence": (f"worst scan {need(worst) * 1e6:.0f} us (execution {quoted} "
                     f"{tail(worst['execution']) * 1e6:.0f} us + lateness {quoted} "
                     f"{tail(worst['lateness']) * 1e6:.0f} us, of {worst['scans']} scans), "
                     f"twice that rounded up; overruns {sum(w['overruns'] for w in windows)}"
                     + ("" if quoted == "p99.9" else
                        f"; a p99.9 needs {TAIL_SCANS} scans: run with --scans "
                        f"{TAIL_SCANS}")),
        "lateness_vs_floor": (report["relay_idle"]["lateness"]["p99"]
                              / max(report["wake_floor"]["p99"], 1e-9)),
        "poll": {name: bus["shortest_poll"] for name, bus in report["buses"].items()
                 if bus.get("signals")},
    }
    if "relay_modbus_load" in report:
        load = report["relay_modbus_load"]["modbus"]
        verdict["modbus_requests_per_second"] = load["requests_per_second"]
        verdict["modbus_exceptions"] = load["exceptions"]
    return verdict


def render(report: dict) -> str:
    """The report for a person."""
    us = 1e6
    rec = report["recommendation"]
    lines = [f"softrelay bench: {report['name']}, {report['points']} points, "
             f"{report['signals']} signals, scan every {report['period'] * 1e3:g} ms",
             "real-time: " + ", ".join(f"{k} {'yes' if ok else 'refused'}"
                                       for k, ok in report["realtime"].items()),
             "",
             f"{'':34}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'samples':>9}  (us; p99.9 "
             f"- under {TAIL_SCANS} samples)"]

    def row(label: str, figures: dict) -> str:
        enough = figures["count"] >= TAIL_SCANS
        return (f"{label:34}" + "".join(f"{figures[k] * us:9.0f}" for k in ("p50", "p99"))
                + (f"{figures['p999'] * us:9.0f}" if enough else f"{'-':>9}")
                + f"{figures['max'] * us:9.0f}{figures['count']:9d}")

    lines.append(row("wake floor (bare ticker)", report["wake_floor"]))
    for key, label in (("relay_idle", "relay"), ("relay_modbus_load", "relay, Modbus load")):
        if key in report:
            w = report[key]
            lines.append(row(f"{label}: lateness", w["lateness"]))
            lines.append(row(f"{label}: execution", w["execution"]))
            lines[-1] += f"   {w['overruns']} overruns in {w['scans']} scans"
    lines.append("where a scan's time goes:")
    for name, figures in report["stages"].items():
        lines.append(row(f"  {name}", figures))
    for name, bus in report["buses"].items():
        if bus.get("signals"):
            lines.append(row(f"bus {name}: sweep of {bus['signals']} signals", bus["sweep"]))
            if bus["failed"]:
                lines[-1] += f"   {bus['failed']} sweeps failed"
    lines.append("")
    ok = "ok" if rec["scan_period_ok"] else "TOO SHORT"
    idle = (f" ({rec['scan_period_idle'] * 1e3:g} ms without the Modbus flood)"
            if "relay_modbus_load" in report else "")
    lines.append(f"scan period: shortest safe {rec['scan_period'] * 1e3:g} ms{idle}; "
                 f"configured {report['period'] * 1e3:g} ms: {ok}")
    lines.append(f"  {rec['evidence']}; relay lateness p99 {rec['lateness_vs_floor']:.2f}x "
                 "the floor")
    if not report["realtime"].get("SCHED_FIFO"):
        lines.append("  the scan ran at normal priority: with scan.realtime.priority (SCHED_FIFO; "
                     "root or the service's CAP_SYS_NICE) a shorter period may be safe")
    for name, bus in report["buses"].items():
        if bus.get("signals"):
            ok = "ok" if bus["ok"] else ("FAILING" if bus["failed"] else "TOO FAST")
            lines.append(f"bus {name}: poll no faster than {bus['shortest_poll'] * 1e3:g} ms "
                         f"(sweep p99 {bus['sweep']['p99'] * 1e3:.2f} ms); fastest "
                         f"configured {bus['fastest_poll'] * 1e3:g} ms: {ok}")
    if "modbus_requests_per_second" in rec:
        load = report["relay_modbus_load"]
        modbus = load["modbus"]
        refused = (f"; {modbus['exceptions']} exception answers, not counted"
                   if modbus["exceptions"] else "")
        lines.append(f"modbus slave: {rec['modbus_requests_per_second']:.0f} requests/s "
                     f"answered with data while scanning (the map's reads in turn, "
                     f"{modbus['registers_per_request']:.0f} registers each on average"
                     f"{refused}); lateness p99 {load['lateness']['p99'] * us:.0f} us under "
                     f"that load (idle {report['relay_idle']['lateness']['p99'] * us:.0f} us)")
    return "\n".join(lines) + "\n"


def command(args) -> int:
    """``softrelay bench [CONFIG]``: the report on stdout (text, or JSON with ``--json -``),
    progress on stderr."""
    from softrelay.cli.load import load_or_report
    from softrelay.logs import configure_logging

    configure_logging(terminal=True)  # warnings only: the report is the output
    config = load_or_report(args.config)
    if config is None:
        return 1
    report = bench(config, args.seconds,
                   progress=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True),
                   scans=args.scans)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render(report))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
