"""The Modbus/TCP slave under load, against pymodbus's server and a minimal libmodbus server.

One run, on this machine, loopback only, each server in its own process:
- softrelay: the real relay (``softrelay run``: scan every 10 ms at SCHED_FIFO 80 with memory
  locked where permitted, companion and plant; 40 thermal points), FC03 of 100 registers of
  its status summary (25 points);
- pymodbus 3.16: ``ModbusTcpServer`` over a ``SimDevice`` (its simulator datastore);
- libmodbus: the classic select() server (``modbus_receive`` / ``modbus_reply``), built here
  from Debian's libmodbus-dev.
pymodbus and libmodbus run alone, then beside a relay that scans, which are the conditions
softrelay's server works in (a real-time scan that preempts it now and then; /dev/cpu_dma_latency
held at 0, which alone makes an idle machine answer a lone client four times faster). The fair
comparison is the second: one relay, its own server and the two others beside it, loaded in
turn, phase by phase, for ``--rounds`` rounds (this VM drifts 2x within a minute, so servers
measured minutes apart are not comparable); each figure is the median over the rounds.
The load generator is C too (built here): N connections, each a thread sending FC03 of 100
registers and waiting for the answer, for a fixed time; it reports requests per second and
latency percentiles. The same generator loads every server. The relay's own scan lateness is
read from its register map (input registers 16..23: lateness p99 and max, us) of the same
relay, its statistics cleared (coil 2) before each ``--window`` s: idle, under 8 back-to-back
connections on its own server, under the same load on libmodbus beside it (what that load costs
a scan on two cores whoever answers it), under the paced load; in turn, ``--rounds`` times.

Targets (issue 5): at least 2x pymodbus's and at least libmodbus's requests per second, p99
latency no worse than libmodbus's, and scan lateness p99 under the load at most 1.5x idle.

Run: ``.venv/bin/python benchmarks/modbus_slave.py [--seconds 3] [--rounds 3] [--json FILE]``
(root, or a machine with libmodbus-dev and a C compiler). It stops by itself (about 3 min).

``--baseline RUNTIME`` runs a second relay from another build's runtime directory (e.g. main's,
``/work/main/runtime``) beside the first and loads it in the same rounds, in turn with the others
("baseline" in the figures): a change to the server measured before and after in one run.
``--softrelay-only`` leaves out pymodbus, libmodbus and the lateness windows (the two relays'
figures only, about 1 min for 3 rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
RATE = 1000.0  #: requests a second per connection in the open-loop run (8 000/s in all)


def machine() -> dict:
    """The machine the figures were measured on (``softrelay.machine``), for the JSON."""
    from softrelay.machine import describe

    return describe()

CLIENT_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, start_address, count, unit;
static double seconds, rate;  /* rate: requests per second per connection; 0: back to back */
typedef struct { long n; double *lat; long cap; int errors; } result;

static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int read_full(int fd, unsigned char *b, int n) {
    int got = 0;
    while (got < n) { int r = recv(fd, b + got, n - got, 0); if (r <= 0) return -1; got += r; }
    return 0;
}

static void *run(void *arg) {
    result *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { r->errors++; return NULL; }
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char q[12], h[7], body[260];
    double begin = now(), end = begin + seconds;
    unsigned short t = 0;
    long sent = 0;
    while (now() < end) {
        if (rate > 0) {  /* open loop: the next request at its time, late or not */
            double due = begin + sent / rate;
            struct timespec ts = {(time_t)due, (long)((due - (time_t)due) * 1e9)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        sent++;
        t++;
        q[0] = t >> 8; q[1] = t & 0xff; q[2] = 0; q[3] = 0; q[4] = 0; q[5] = 6; q[6] = unit;
        q[7] = 3; q[8] = start_address >> 8; q[9] = start_address & 0xff;
        q[10] = count >> 8; q[11] = count & 0xff;
        double t0 = now();
        if (send(fd, q, 12, 0) != 12) { r->errors++; break; }
        if (read_full(fd, h, 7)) { r->errors++; break; }
        int len = (h[4] << 8 | h[5]) - 1;
        if (len < 1 || len > 253 || read_full(fd, body, len)) { r->errors++; break; }
        if (body[0] != 3 || body[1] != 2 * count) r->errors++;
        if (r->n == r->cap) { r->cap *= 2; r->lat = realloc(r->lat, r->cap * sizeof(double)); }
        r->lat[r->n++] = now() - t0;
    }
    close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    port = atoi(argv[1]); int conns = atoi(argv[2]); seconds = atof(argv[3]);
    start_address = atoi(argv[4]); count = atoi(argv[5]); unit = atoi(argv[6]);
    rate = argc > 7 ? atof(argv[7]) : 0.0;
    pthread_t th[64]; result res[64];
    for (int i = 0; i < conns; i++) {
        res[i].n = 0; res[i].cap = 1 << 16; res[i].errors = 0;
        res[i].lat = malloc(res[i].cap * sizeof(double));
        pthread_create(&th[i], NULL, run, &res[i]);
    }
    long total = 0; int errors = 0;
    for (int i = 0; i < conns; i++) { pthread_join(th[i], NULL); total += res[i].n;
                                      errors += res[i].errors; }
    double *all = malloc((total + 1) * sizeof(double)); long k = 0;
    for (int i = 0; i < conns; i++) { memcpy(all + k, res[i].lat, res[i].n * sizeof(double));
                                      k += res[i].n; }
    qsort(all, total, sizeof(double), cmp);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(long)(total * 0.99)] : 0;
    double mx = total ? all[total - 1] : 0;
    printf("{\"requests\": %ld, \"rate\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"errors\": %d}\n", total, total / seconds, p50 * 1e6,
           p99 * 1e6, mx * 1e6, errors);
    return 0;
}
"""

LIBMODBUS_C = r"""
#include <errno.h>
#include <sys/socket.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <unistd.h>

int main(int argc, char **argv) {
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new(0, 0, 1000, 0);
    for (int i = 0; i < 1000; i++) map->tab_registers[i] = i;
    int server = modbus_tcp_listen(ctx, 64);
    fd_set all, ready; FD_ZERO(&all); FD_SET(server, &all); int top = server;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    printf("ready\n"); fflush(stdout);
    for (;;) {
        ready = all;
        if (select(top + 1, &ready, NULL, NULL, NULL) < 0) return 1;
        for (int fd = 0; fd <= top; fd++) {
            if (!FD_ISSET(fd, &ready)) continue;
            if (fd == server) {
                int c = accept(server, NULL, NULL);
                if (c >= 0) { FD_SET(c, &all); if (c > top) top = c; }
            } else {
                modbus_set_socket(ctx, fd);
                int rc = modbus_receive(ctx, query);
                if (rc > 0) modbus_reply(ctx, query, rc, map);
                else if (rc == -1) { close(fd); FD_CLR(fd, &all); }
            }
        }
    }
}
"""

PYMODBUS_SERVER = """
import asyncio, sys
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
words = [SimData(0, values=list(range(1000)), datatype=DataType.REGISTERS)]
bits = [SimData(0, values=[False], datatype=DataType.BITS)]
device = SimDevice(id=1, simdata=(bits, bits, words, words))
async def main():
    server = ModbusTcpServer([device], address=("127.0.0.1", int(sys.argv[1])))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

#: the compiled server alone (no relay, no scan) over a published image of 1 000 holding
#: registers, from whichever build PYTHONPATH names: ``--bare`` compares two builds' servers
BARE_SERVER = """
import signal, socket, sys
import numpy as np
from softrelay._mbserver import ModbusServer
words = 1000
region = np.zeros(64 + 2 * words, np.uint8)
region[64:] = np.arange(words, dtype="<u2").view(np.uint8)
region[:8] = np.array([2], "<u8").view(np.uint8)
sizes = [0, 0, 0, words]
image = ([0, 0, 0, 0], sizes, [np.zeros(0, np.uint8)] * 3 + [np.ones(words, np.uint8)])
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(128)
server = ModbusServer(region, [image], [0] * 256, b"", sock, 32)
server.start()
print("ready", flush=True)
signal.sigwait([signal.SIGINT, signal.SIGTERM])
server.stop()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def build(workdir: Path) -> tuple[Path, Path]:
    if not Path("/usr/include/modbus/modbus.h").exists():
        if os.geteuid() != 0:
            raise SystemExit("libmodbus-dev is missing: sudo apt-get install libmodbus-dev")
        subprocess.run(["apt-get", "install", "-y", "-q", "libmodbus-dev"], check=True,
                       stdout=subprocess.DEVNULL)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("a C compiler is needed: apt-get install gcc")
    (workdir / "client.c").write_text(CLIENT_C)
    (workdir / "server.c").write_text(LIBMODBUS_C)
    client, server = workdir / "client", workdir / "libmodbus_server"
    subprocess.run([cc, "-O2", "-pthread", "-o", str(client), str(workdir / "client.c")],
                   check=True)
    subprocess.run([cc, "-O2", "-I/usr/include/modbus", "-o", str(server),
                    str(workdir / "server.c"), "-lmodbus"], check=True)
    return client, server


def load(client: Path, port: int, connections: int, seconds: float, address: int,
         unit: int = 1, rate: float = 0.0) -> dict:
    """Closed loop (rate 0: each connection sends as soon as answered) or open loop (``rate``
    requests a second per connection, on a fixed grid)."""
    out = subprocess.run([str(client), str(port), str(connections), str(seconds), str(address),
                          "100", str(unit), str(rate)], capture_output=True, text=True,
                         check=True, timeout=seconds + 30)
    return json.loads(out.stdout)


def relay_config(port: int, state: Path, points: int = 40, cpu: int | None = None) -> dict:
    signals, cfg_points, motors = [], [], []
    for i in range(points):
        names = []
        for q in ("current.a", "current.b", "current.c"):
            name = f"m{i}.{q.replace('.', '_')}"
            signals.append({"name": name, "bus": "plant", "address": f"m{i}.{q}", "poll": 0.1})
            names.append(name)
        cfg_points.append({"name": f"m{i}", "kind": "thermal", "currents": names,
                           "settings": {"i_b": 100.0, "t_heat": 600.0, "t_cool": 1800.0,
                                        "input_mode": "magnitudes"}})
        motors.append({"name": f"m{i}", "rated_current": 100.0,
                       "load_profile": [[0, 0.9], [3600, 0.9]], "trip_coil": "trip"})
    return {
        "name": "bench",
        "scan": {"period": 0.01, "watchdog_periods": 50,
                 "realtime": {"priority": 80, "lock_memory": True, "cpu": cpu}},
        "state": {"file": str(state / "state.json"), "checkpoint_interval": 10.0},
        "events": {"file": str(state / "events.jsonl")},
        "buses": [{"name": "plant", "kind": "simulated", "timeout": 0.05}],
        "signals": signals, "points": cfg_points,
        "outputs": [{"name": "trip", "pin": 17, "flags": ["m0.trip"]},
                    {"name": "healthy", "pin": 24, "healthy": True}],
        "modbus": {"host": "127.0.0.1", "port": port, "max_connections": 32},
        # the bench clears the relay's statistics over Modbus before each window (loopback)
        "access": {"levels": {"clear_statistics": 0}},
        "plant": {"motors": motors},
    }


def clear_statistics(port: int) -> None:
    """Write relay.clear_statistics (coil 2): the relay's lateness and execution histograms
    start again at its next scan."""
    with socket.create_connection(("127.0.0.1", port), 2.0) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 5, 2, 0xFF00))
        if s.recv(100)[7] != 5:
            raise RuntimeError("the relay refused clear_statistics")
    time.sleep(0.05)  # applied at its next scan


def relay_lateness(port: int) -> dict:
    """The relay's own lateness and execution figures, read over Modbus (us)."""
    with socket.create_connection(("127.0.0.1", port), 2.0) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 6, 20))
        answer = s.recv(100)
    words = struct.unpack(">20H", answer[9:49])

    def f32(k: int) -> float:
        return struct.unpack(">f", struct.pack(">HH", words[k], words[k + 1]))[0]

    return {"scans": words[0] << 16 | words[1], "overruns": words[4] << 16 | words[5],
            "lateness_p99_us": f32(10), "lateness_max_us": f32(12),
            "execution_p99_us": f32(14), "execution_max_us": f32(16)}


class Process:
    def __init__(self, argv: list[str], env: dict | None = None, cwd: Path | None = None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def relay_process(workdir: Path, tag: str, runtime: Path | None = None
                  ) -> tuple[Process, int]:
    """A relay (``softrelay run``) in its own process; ``runtime``: the package directory it
    imports softrelay from (another build's), else this one's."""
    port = free_port()
    state = workdir / tag
    state.mkdir()
    path = state / "relay.json"
    path.write_text(json.dumps(relay_config(port, state)))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if runtime is not None:
        env["PYTHONPATH"] = str(runtime)
    proc = Process([PYTHON, "-m", "softrelay", "run", str(path)], env=env, cwd=state)
    wait_port(port)
    return proc, port


PHASES = ((1, 0.0), (8, 0.0), (8, RATE))


def bare_comparison(args, client: Path, run, results: dict) -> int:
    """This build's compiled server and the baseline's, alone, loaded in turn, phase by
    phase, round after round; medians; the ratios printed."""
    if args.baseline is None:
        raise SystemExit("--bare compares with --baseline RUNTIME")
    servers = {}
    try:
        for name, runtime in (("softrelay", None), ("baseline", args.baseline)):
            port = free_port()
            env = dict(os.environ)
            if runtime is not None:
                env["PYTHONPATH"] = str(runtime)
            servers[name] = (Process([PYTHON, "-c", BARE_SERVER, str(port)], env=env), port)
            wait_port(port)
        samples: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            for connections, rate in PHASES:
                order = list(servers.items())
                for name, (_, port) in order[::-1] if round_ % 2 else order:  # no order bias
                    key = f"{name} {label_of(connections, rate)}"
                    samples.setdefault(key, []).append(run(name, port, connections, rate))
    finally:
        for server, _ in servers.values():
            server.stop()
    runs = results["runs"] = {key: medians(found, {"rates": "rate", "p99s_us": "p99_us"})
                              for key, found in samples.items()}
    print_against_baseline(runs, "bare ")
    if args.json:
        results["machine"] = machine()
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def label_of(connections: int, rate: float) -> str:
    return f"x{connections}" + (f" at {rate * connections:.0f}/s" if rate else "")


def medians(runs: list[dict], listed: dict[str, str]) -> dict:
    """Each figure's median over the rounds ``runs`` (each on its own), with, for each
    ``name: figure`` of ``listed``, that figure of every round under that name."""
    merged = {k: statistics.median(f[k] for f in runs) for k in runs[0]}
    return merged | {name: [f[k] for f in runs] for name, k in listed.items()}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per load run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the comparison beside one relay")
    parser.add_argument("--window", type=float, default=10.0,
                        help="s of each scan-lateness window")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", type=Path, help="another build's runtime directory: its "
                        "relay is measured beside this one, in the same rounds")
    parser.add_argument("--softrelay-only", action="store_true",
                        help="no pymodbus, no libmodbus, no lateness windows")
    parser.add_argument("--bare", action="store_true", help="with --baseline: the two builds' "
                        "compiled servers alone (no relay), loaded in turn for --rounds rounds")
    return parser.parse_args()


def main() -> int:
    args = arguments()
    results: dict = {"seconds": args.seconds, "rounds": args.rounds, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        client, libmodbus_server = build(workdir)

        def run(name: str, port: int, connections: int, rate: float) -> dict:
            figures = load(client, port, connections, args.seconds, 100, rate=rate)
            print(f"{name:15s} {label_of(connections, rate):13s}: {figures['rate']:9.0f} "
                  f"req/s  p50 {figures['p50_us']:7.1f} us  p99 {figures['p99_us']:7.1f} us  "
                  f"max {figures['max_us']:8.1f} us  errors {figures['errors']}", flush=True)
            return figures

        if args.bare:
            return bare_comparison(args, client, run, results)
        servers: dict[str, tuple[Process, int]] = {}
        try:
            others = () if args.softrelay_only else (
                ("pymodbus", [PYTHON, "-c", PYMODBUS_SERVER]),
                ("libmodbus", [str(libmodbus_server)]))
            for name, argv in others:
                port = free_port()
                servers[name] = (Process([*argv, str(port)]), port)
                wait_port(port)
            # alone: no relay on the machine
            for name, (_, port) in servers.items():
                for connections, rate in PHASES:
                    results["runs"][f"{name} alone {label_of(connections, rate)}"] = run(
                        f"{name} alone", port, connections, rate)
            beside_a_relay(args, workdir, client, run, servers, results)
        finally:
            for server, _ in servers.values():
                server.stop()
    if args.baseline is not None:
        print_against_baseline(results["runs"])
    if args.json:
        results["machine"] = machine()
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.softrelay_only:
        print_comparison(results)
    return 0


def beside_a_relay(args, workdir: Path, client: Path, run,
                   servers: dict[str, tuple[Process, int]], results: dict) -> None:
    """The comparison: one relay scanning, its own server (and the baseline's, and the other
    two) beside it, loaded in turn, round after round (this VM drifts 2x in a minute); then
    its scan lateness under load (``lateness_windows``). Figures into ``results``."""
    relay, relay_port = relay_process(workdir, "compare")
    baseline = None
    try:
        ports = {"softrelay": relay_port}
        if args.baseline is not None:
            baseline, ports["baseline"] = relay_process(workdir, "baseline", args.baseline)
        ports |= {n: p for n, (_, p) in servers.items()}
        time.sleep(1.0)
        samples: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            for connections, rate in PHASES:
                order = list(ports.items())  # every other round reversed: no order bias
                for name, port in order[::-1] if round_ % 2 else order:
                    key = f"{name} {label_of(connections, rate)}"
                    samples.setdefault(key, []).append(run(name, port, connections, rate))
        results["runs"].update({key: medians(found, {"rates": "rate", "p99s_us": "p99_us"})
                                for key, found in samples.items()})
        results["lateness"] = lateness_windows(
            args, client, relay_port, ports.get("libmodbus"),
            0 if args.softrelay_only else args.rounds)
    finally:
        relay.stop()
        if baseline is not None:
            baseline.stop()


def lateness_windows(args, client: Path, relay_port: int, libmodbus_port: int | None,
                     rounds: int) -> dict:
    """The relay's scan lateness, statistics cleared before each window: idle; the 8
    back-to-back connections on its own server; the same load on libmodbus beside it (what
    the load costs a scan on two cores, whoever answers); the paced load on its own server.
    In turn, ``rounds`` times; the medians of each window."""
    windows = {"idle": None, "own server x8": (relay_port, 0.0),
               "libmodbus x8": (libmodbus_port, 0.0),
               "own server paced": (relay_port, RATE)}
    found: dict[str, list[dict]] = {}
    for _ in range(rounds):
        for window, target in windows.items():
            clear_statistics(relay_port)
            if target is None:
                time.sleep(args.window)
            else:
                load(client, target[0], 8, args.window, 100, rate=target[1])
            found.setdefault(window, []).append(relay_lateness(relay_port))
            print(f"relay lateness, {window:16s}: p99 "
                  f"{found[window][-1]['lateness_p99_us']:6.0f} us", flush=True)
    return {window: medians(f, {"p99s_us": "lateness_p99_us"}) for window, f in found.items()}


def print_against_baseline(runs: dict, what: str = "") -> None:
    """Each phase's rate and p99 of this build against the baseline's (``what``: a prefix
    naming the comparison)."""
    for connections, rate in PHASES:
        label = label_of(connections, rate)
        ours, base = runs[f"softrelay {label}"], runs[f"baseline {label}"]
        print(f"{what}{label:13s} vs baseline: rate {ours['rate'] / base['rate']:5.3f}x, p99 "
              f"{ours['p99_us']:.1f} us vs {base['p99_us']:.1f} us "
              f"({ours['p99_us'] / base['p99_us']:5.3f}x)")


def print_comparison(results: dict) -> None:
    """The relay's scan lateness under each load, and its server against the two others."""
    runs, lateness = results["runs"], results["lateness"]
    idle = lateness["idle"]["lateness_p99_us"]
    print("relay scan lateness p99 (max) us, overruns, median of the rounds: " + "; ".join(
        f"{k} {v['lateness_p99_us']:.0f} ({v['lateness_max_us']:.0f}), {v['overruns']}"
        + ("" if k == "idle" else f", {v['lateness_p99_us'] / idle:.2f}x idle")
        for k, v in lateness.items()))
    for connections, rate in PHASES:
        label = label_of(connections, rate)
        ours = runs[f"softrelay {label}"]
        for base in ("pymodbus", "libmodbus"):
            beside, alone = runs[f"{base} {label}"], runs[f"{base} alone {label}"]
            print(f"{label:13s} vs {base:9s}: rate {ours['rate'] / beside['rate']:5.2f}x "
                  f"beside the relay ({ours['rate'] / alone['rate']:5.2f}x alone); p99 "
                  f"{ours['p99_us']:.0f} us vs {beside['p99_us']:.0f} us beside the relay "
                  f"({alone['p99_us']:.0f} us alone)")


if __name__ == "__main__":
    raise SystemExit(main())
