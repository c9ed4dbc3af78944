"""One complete Modbus sweep of 128 simulated devices over loopback: concurrent vs sequential.

Each device is an SDM630-style meter behind its own TCP gateway (a port), read for its three
currents and three angles: 12 registers in 2 coalesced requests, 256 requests per sweep. The
devices are served by a separate process (simulated at the byte level, one event loop), so the
figures are the master's: wall time of one complete sweep, and the CPU the master used for it.
A third case puts all 128 units behind ONE gateway (one connection, requests one at a time).

    .venv/bin/python benchmarks/modbus_sweep.py [--devices 128] [--sweeps 50]

Target (issue 4): one complete concurrent sweep of 128 devices in under 100 ms on this machine.
Results: benchmarks/results/modbus_sweep.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import threading
import time
from pathlib import Path

import yaml

from softrelay.config.buses import ModbusTcpBus
from softrelay.field.modbus.master import sweep, tcp_link
from softrelay.sim.modbus_twin import twins_for
from softrelay.sim.twin_server import TwinServer

ADDRESSES = [f"m.{q}.{p}" for q in ("current", "angle") for p in "abc"]


def meter_bus(units: list[int]) -> ModbusTcpBus:
    """A simulated gateway (any free port, 1 s timeout) with a meter at each unit id."""
    return ModbusTcpBus.model_validate(yaml.safe_load(f"""
name: gw
kind: modbus_tcp
host: 127.0.0.1
port: 0
simulated: true
timeout: 1.0
devices: {[{"name": "m" if len(units) == 1 else f"m{u}", "unit": u, "profile": "sdm630",
            "simulate": {"current.a": "i", "current.b": "i", "current.c": "i",
                         "phase_angle.a": "p", "phase_angle.b": "p", "phase_angle.c": "p"}}
           for u in units]}
"""))


def serve(n: int, ports, ready, stop) -> None:
    """The devices' process: n gateways (ports) with one meter each, plus one gateway with n
    meters behind it, all on one event loop."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    plant = {"i": 101.5, "p": 25.0}.__getitem__
    servers = [TwinServer(twins_for(meter_bus([1]), plant), f"gw{k}", loop=loop)
               for k in range(n)]
    for k, server in enumerate(servers):
        ports[k] = server.start_tcp()
    shared = TwinServer(twins_for(meter_bus(list(range(1, n + 1))), plant), "shared", loop=loop)
    ports[n] = shared.start_tcp()
    ready.set()
    stop.wait()


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(links, batches, concurrent: bool, sweeps: int, server_pid: int) -> dict:
    await sweep(links, batches, concurrent)  # connect (and warm up) outside the timing
    walls, cpus = [], []
    server_cpu = cpu_of(server_pid)
    for _ in range(sweeps):
        c, t = time.process_time(), time.perf_counter()
        results = await sweep(links, batches, concurrent)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        bad = sum(q != 0 for readings in results for _, q in readings)
        if bad:
            raise SystemExit(f"{bad} readings failed: {[lk.last_error for lk in links][:3]}")
    server_cpu = cpu_of(server_pid) - server_cpu
    requests = sum(len(b) for b in batches) // 3  # 6 values, 2 requests per device
    return {"median_ms": 1e3 * statistics.median(walls),
            "p90_ms": 1e3 * statistics.quantiles(walls, n=10, method="inclusive")[-1],
            "max_ms": 1e3 * max(walls), "min_ms": 1e3 * min(walls),
            "master_cpu_ms": 1e3 * statistics.median(cpus),
            "devices_cpu_ms": 1e3 * server_cpu / sweeps,
            "requests": requests}


async def run(n: int, sweeps: int, ports, pid: int) -> dict:
    separate = [tcp_link(meter_bus([1]), port=ports[k]) for k in range(n)]
    batches = [ADDRESSES] * n
    results = {}
    results["concurrent"] = await measure(separate, batches, True, sweeps, pid)
    results["sequential"] = await measure(separate, batches, False, sweeps, pid)
    one = tcp_link(meter_bus(list(range(1, n + 1))), port=ports[n])
    one_batch = [[f"m{u}.{a.split('.', 1)[1]}" for u in range(1, n + 1) for a in ADDRESSES]]
    results["one_gateway"] = await measure([one], one_batch, True, max(5, sweeps // 5), pid)
    for link in [*separate, one]:
        await link.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=128)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/results/modbus_sweep.json")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ports = ctx.Array("i", args.devices + 1)
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=serve, args=(args.devices, ports, ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the devices' process did not start")
        results = asyncio.run(run(args.devices, args.sweeps, list(ports), proc.pid))
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    print(f"{args.devices} devices, 6 values (12 registers, 2 requests) each, "
          f"{args.sweeps} sweeps, loopback, devices in a separate process")
    print(f"{'case':<12} {'median':>9} {'p90':>9} {'max':>9} {'master CPU':>11} "
          f"{'devices CPU':>12}")
    for case, r in results.items():
        print(f"{case:<12} {r['median_ms']:8.1f}ms {r['p90_ms']:8.1f}ms {r['max_ms']:8.1f}ms "
              f"{r['master_cpu_ms']:10.1f}ms {r['devices_cpu_ms']:11.1f}ms")
    verdict = results["concurrent"]["p90_ms"] < 100.0
    print(f"target: concurrent sweep < 100 ms: {'met' if verdict else 'NOT met'} "
          f"(p90 {results['concurrent']['p90_ms']:.1f} ms)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from softrelay.machine import describe

    Path(args.out).write_text(json.dumps({"devices": args.devices, "sweeps": args.sweeps,
                                          "cpus": os.cpu_count(), "machine": describe(),
                                          "results": results}, indent=2))


if __name__ == "__main__":
    main()
