"""The installed relay under a real systemd: systemd runs as PID 1 in namespaces of its own
(PID, mount, cgroup, network, UTS, IPC), `softrelay install-service` installs the relay into
that namespace's view of /etc, and everything is checked through systemctl and journalctl.

Containment (nothing of the machine outside the namespaces starts, stops or changes):
- systemd sees only the units of a directory of our own (``SYSTEMD_UNIT_PATH``): a default
  target that wants the journal and nothing else, stand-ins for sysinit.target and
  basic.target, journald's own units, and the relay's unit as installed; no generators run;
- /etc and /var are overlays whose writes land in the test's tmp dir (the user that
  systemd-sysusers creates, /etc/softrelay, /var/lib/softrelay, the journal); /run, /tmp and
  /dev are private tmpfs (/dev with the few nodes a service needs), the cgroup tree is a
  cgroup2 of a child cgroup made for the test and removed at its end;
- port 502 is bound in a network namespace of its own; the hostname is the namespace's;
- at the end PID 1 of the namespace is killed, which ends every process in it.

Where the kernel (or a sandbox) refuses one of these, the tests skip, each saying which step
was refused and how; they never pass without systemd.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import softrelay
from softrelay.service.install import Plan

SYSTEMD = Path("/usr/lib/systemd/systemd")
FAST = Path(__file__).parent / "configs" / "fast.yaml"
WATCHDOG_S = 5.0  #: install-service's default WatchdogSec
ABORT_S = 2.0  #: the unit's TimeoutAbortSec
RESTART_S = 2.0  #: the unit's RestartSec
STOP_TIMEOUT_S = 20.0  #: the unit's TimeoutStopSec
PRIORITY = 30  #: scan.realtime.priority of the test's configuration

pytestmark = [pytest.mark.systemd, pytest.mark.e2e]

BOOT = r"""#!/bin/bash
# PID 1 of the new namespaces until it becomes systemd: private views, then exec systemd
set -euo pipefail
T=$1
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/etc.up,workdir=$T/etc.work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=$T/var.up,workdir=$T/var.work /var
mount --bind $T/units /etc/systemd/system
mount -t tmpfs -o mode=755 tmpfs /run
# the checkout (its runtime and venv) stays visible if it lives under /tmp (a CI clone)
K=${2:-}
if [ -n "$K" ]; then mkdir -p /run/keep && mount --bind "$K" /run/keep; fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -n "$K" ]; then mkdir -p "$K" && mount --move /run/keep "$K" && rmdir /run/keep; fi
mount -t tmpfs -o mode=755 tmpfs /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts; ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "namespaces ready: exec systemd"
exec env -i container=softrelay-test SYSTEMD_UNIT_PATH=/etc/systemd/system \
  SYSTEMD_GENERATOR_PATH=/nonexistent SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/nonexistent \
  /usr/lib/systemd/systemd --unit=softrelay-test.target --log-level=info
"""

UNITS = {
    "softrelay-test.target": """\
        [Unit]
        Description=softrelay's real-systemd test: the journal, nothing else
        Wants=systemd-journald.socket systemd-journald.service
        """,
    "sysinit.target": """\
        [Unit]
        Description=stand-in sysinit.target (no boot services in the test's namespace)
        """,
    "basic.target": """\
        [Unit]
        Description=stand-in basic.target (no boot services in the test's namespace)
        """,
}


def _cgroup2() -> tuple[Path, str]:
    """(where this machine mounts the cgroup2 hierarchy, this process's cgroup in it)."""
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            mount = Path(fields[0].split()[4])
            break
    own = [line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines()
           if line.startswith("0::")]
    if mount is None or not own:
        pytest.skip("SYSTEMD TEST SKIPPED: no cgroup2 hierarchy is mounted on this machine "
                    "(systemd needs one for its own namespace)")
    return mount, own[0]


def service_python() -> tuple[str, str]:
    """(the interpreter the service runs, its PYTHONPATH): this one where the service can
    run it; else (a venv of pyenv's Python under /root, as on the development machines)
    the system's Python of the same version with this environment's packages, since the
    unit hides /root and /home (ProtectHome=yes; install-service refuses such a Python)."""
    runtime = str(Path(softrelay.__file__).resolve().parents[1])
    if not Plan(python=sys.executable).hidden_python():
        return sys.executable, runtime
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"SYSTEMD TEST SKIPPED: {sys.executable} is under a home directory "
                    f"the unit hides (ProtectHome=yes) and there is no {system} to run "
                    f"the service with")
    return str(system), os.pathsep.join([runtime, sysconfig.get_paths()["purelib"],
                                         sysconfig.get_paths()["platlib"]])


class Machine:
    """systemd as PID 1 of namespaces of its own; ``run`` executes a command inside them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pid1: int | None = None
        self.launcher: subprocess.Popen | None = None
        mount, own = _cgroup2()
        self.cgroup = mount / own.lstrip("/") / f"softrelay-test-{os.getpid()}"
        self.python, self.pythonpath = service_python()

    # ------------------------------------------------------------------ boot, end
    def boot(self) -> None:
        t = self.tmp
        for name in ("etc.up", "etc.work", "var.up", "var.work", "units"):
            (t / name).mkdir(parents=True)
        for name, text in UNITS.items():
            (t / "units" / name).write_text(textwrap.dedent(text))
        for name in ("systemd-journald.service", "systemd-journald.socket"):
            shutil.copy(Path("/lib/systemd/system") / name, t / "units" / name)
        journald = t / "etc.up/systemd/journald.conf.d"
        journald.mkdir(parents=True)
        (journald / "softrelay-test.conf").write_text("[Journal]\nStorage=volatile\n")
        # the site's configuration, there before the installer runs (which keeps it)
        config = t / "etc.up/softrelay/relay.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(relay_config())
        # this checkout's package (whatever a venv's editable install points at); no GPIO here
        dropin = t / "units/softrelay.service.d"
        dropin.mkdir()
        (dropin / "test.conf").write_text(
            f"[Service]\nEnvironment=PYTHONPATH={self.pythonpath} GPIOZERO_PIN_FACTORY=mock\n")
        boot = t / "boot.sh"
        boot.write_text(BOOT)
        boot.chmod(0o755)
        try:
            self.cgroup.mkdir()
        except OSError as exc:
            pytest.skip(f"SYSTEMD TEST SKIPPED: cannot make a cgroup for systemd "
                        f"({self.cgroup}: {exc.strerror})")
        log = (t / "console.log").open("w")
        checkout = Path(__file__).resolve().parents[1]
        kept = checkout if checkout.is_relative_to("/tmp") else ""  # hidden by the private /tmp
        if kept:  # and by the unit's PrivateTmp: the service sees the checkout it runs from
            (t / "units" / "softrelay.service.d").mkdir(exist_ok=True)
            (t / "units" / "softrelay.service.d" / "checkout.conf").write_text(
                f"[Service]\nBindReadOnlyPaths={checkout}\n")
        self.launcher = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {self.cgroup}/cgroup.procs && exec unshare --pid --fork "
             f"--mount --mount-proc --cgroup --net --uts --ipc {boot} {t} {kept}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.launcher.poll() is not None:
                pytest.skip("SYSTEMD TEST SKIPPED: the kernel refused the namespaces or "
                            "mounts systemd needs: "
                            + (t / "console.log").read_text().strip()[-600:])
            children = Path(f"/proc/{self.launcher.pid}/task/{self.launcher.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids and Path(f"/proc/{pids[0]}/exe").exists() and \
                    os.readlink(f"/proc/{pids[0]}/exe") == str(SYSTEMD.resolve()):
                self.pid1 = int(pids[0])
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.1)
        raise AssertionError(f"systemd in the namespace did not come up in 30 s: "
                             f"{(t / 'console.log').read_text()[-2000:]}")

    def end(self) -> None:
        """Kill PID 1 of the namespace (the kernel ends every process in it), remove the
        test's cgroup."""
        if self.pid1 is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, 9)
        if self.launcher is not None:
            try:
                self.launcher.wait(30)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()
        deadline = time.monotonic() + 10
        while self.cgroup.exists() and time.monotonic() < deadline:
            deepest_first = sorted(self.cgroup.rglob("*"), key=lambda p: -len(p.parts))
            for directory in [*deepest_first, self.cgroup]:
                if directory.is_dir():
                    with contextlib.suppress(OSError):  # not empty yet: next round
                        directory.rmdir()
            time.sleep(0.1)

    # ------------------------------------------------------------------ inside it
    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        assert self.pid1 is not None
        result = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", *argv],
                                capture_output=True, text=True, timeout=timeout, input=input,
                                env=dict(os.environ, SYSTEMD_PAGER="", SYSTEMD_COLORS="0"))
        if check and result.returncode:
            raise AssertionError(f"{' '.join(argv)}: exit {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def show(self, *props: str, unit: str = "softrelay") -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict]:
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def processes(self) -> set[tuple[int, str]]:
        """(pid, start time) of every process of the relay's cgroup."""
        group = self.show("ControlGroup")["ControlGroup"]
        script = textwrap.dedent(f"""\
            import pathlib
            try:  # none between two instances: systemd removes the cgroup
                pids = pathlib.Path("/sys/fs/cgroup{group}/cgroup.procs").read_text().split() \\
                    if "{group}" else []
            except FileNotFoundError:
                pids = []
            for pid in pids:
                try:
                    stat = pathlib.Path(f"/proc/{{pid}}/stat").read_text()
                except OSError:
                    continue
                print(pid, stat.rsplit(")", 1)[1].split()[19])
            """)
        out = self.run(sys.executable, "-c", script).stdout
        return {(int(p), s) for p, s in (line.split() for line in out.splitlines())}

    def until(self, condition: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                state = self.show("ActiveState", "SubState", "MainPID", "Result")
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"softrelay: {state}\n"
                                     + self.run("journalctl", "--no-pager", "-u", "softrelay",
                                                "-n", "30", check=False).stdout)
            time.sleep(0.1)

    def running(self) -> dict[str, str] | None:
        state = self.show("ActiveState", "SubState", "MainPID", "NRestarts", "StatusText")
        ok = state["ActiveState"] == "active" and state["SubState"] == "running"
        return state if ok else None

    def ensure_running(self) -> dict[str, str]:
        if not self.running():
            self.run("systemctl", "start", "softrelay", timeout=90)
        return self.until(self.running, 60, "softrelay active (running)")


def relay_config() -> str:
    """The fast plant, its state in the state directory ($STATE_DIRECTORY), a real-time scan
    and the Modbus slave on port 502 of every address of the namespace's network."""
    text = FAST.read_text().replace("STATE_DIR/", "")
    text = text.replace("scan: {period: 0.01, watchdog_periods: 20}",
                        "scan: {period: 0.01, watchdog_periods: 20,\n"
                        f"       realtime: {{priority: {PRIORITY}, lock_memory: true}}}}")
    assert f"priority: {PRIORITY}" in text, "tests/configs/fast.yaml's scan line changed"
    return text + "modbus: {host: 0.0.0.0, port: 502}\n"


def _refused_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, a cgroup for systemd)"
    if not SYSTEMD.exists():
        return f"{SYSTEMD} is missing (Debian package systemd)"
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            return f"{tool} is missing (util-linux)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--cgroup",
                            "--net", "--uts", "--ipc", "true"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode:
        return f"the kernel refused `unshare --pid --mount --cgroup --net --uts --ipc`: " \
               f"{probe.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    reason = _refused_reason()
    if reason:
        pytest.skip(f"SYSTEMD TEST SKIPPED: {reason}")
    machine = Machine(tmp_path_factory.mktemp("systemd"))
    try:
        machine.boot()
        # the installer as a site runs it, inside the namespace (root, systemd running)
        said = machine.run("env", f"PYTHONPATH={machine.pythonpath}", machine.python, "-m",
                           "softrelay", "install-service").stdout
        machine.said = said
        yield machine
    finally:
        machine.end()


def test_install_service_under_systemd_creates_the_user_and_keeps_the_config(machine):
    said = machine.said
    assert "user: softrelay (system user, no shell: /etc/sysusers.d/softrelay.conf)" in said
    assert "config: /etc/softrelay/relay.yaml (kept)" in said
    assert "systemd: reloaded" in said
    entry = machine.run("getent", "passwd", "softrelay").stdout.strip().split(":")
    assert entry[5:] == ["/var/lib/softrelay", "/usr/sbin/nologin"] and int(entry[2]) < 1000
    env = machine.run("stat", "-c", "%a %U", "/etc/softrelay/softrelay.env").stdout.split()
    assert env == ["600", "root"]
    state = machine.run("stat", "-c", "%a %U", "/var/lib/softrelay").stdout.split()
    assert state == ["750", "softrelay"]
    assert machine.show("LoadState", "FragmentPath") == {
        "LoadState": "loaded", "FragmentPath": "/etc/systemd/system/softrelay.service"}


def test_start_is_active_only_after_ready_and_status_carries_the_scan_figures(machine):
    """Type=notify: systemd holds the unit in activating/start (its process running) until
    READY=1; the STATUS line then carries the scan's figures."""
    if machine.running():
        machine.run("systemctl", "stop", "softrelay", timeout=60)
    machine.run("systemctl", "start", "--no-block", "softrelay")
    seen = []

    def active():
        state = machine.show("ActiveState", "SubState", "MainPID", "StatusText")
        seen.append((state["ActiveState"], state["SubState"], state["MainPID"] != "0"))
        return state if state["ActiveState"] == "active" else None

    state = machine.until(active, 60, "softrelay active")
    assert ("activating", "start", True) in seen, seen  # running, not yet ready
    assert state["SubState"] == "running"
    assert state["StatusText"].startswith(("scanning every", "healthy")), state
    times = machine.show("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    waited = (int(times["ActiveEnterTimestampMonotonic"])
              - int(times["ExecMainStartTimestampMonotonic"])) / 1e6
    assert waited > 0.2, times  # the relay's start-up, not the fork
    figures = re.compile(r"^healthy; scan 10 ms, (\d+) scans, lateness p99 \d+ us, "
                         r"\d+ overruns; (no trip|TRIP motor1); modbus 0 client\(s\)$")

    def refreshed():  # the status of later scans (every 10 s), not the first one's
        match = figures.match(machine.show("StatusText")["StatusText"])
        return match if match and int(match.group(1)) > 100 else None

    machine.until(refreshed, 30, "the scan's figures in systemctl's STATUS")
    shown = machine.run("systemctl", "status", "--no-pager", "softrelay", check=False).stdout
    assert "Active: active (running)" in shown and "Status: \"healthy; scan 10 ms" in shown


INSPECT = r"""
import json, os, pathlib, sys
pid = int(sys.argv[1])
proc = pathlib.Path(f"/proc/{pid}")
status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
threads = []
for task in (proc / "task").iterdir():
    stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
    threads.append({"name": (task / "comm").read_text().strip(), "rt_priority": int(stat[37]),
                    "policy": int(stat[38])})
print(json.dumps({"uid": status["Uid"].split(), "groups": status["Groups"].split(),
                  "cap_eff": int(status["CapEff"], 16),
                  "vm_lck_kb": int(status["VmLck"].split()[0]),
                  "threads": threads}))
"""


def test_runs_as_its_own_user_with_what_the_unit_grants(machine):
    main = int(machine.ensure_running()["MainPID"])
    seen = json.loads(machine.run(sys.executable, "-c", INSPECT, str(main)).stdout)
    uid = machine.run("id", "-u", "softrelay").stdout.strip()
    assert seen["uid"] == [uid] * 4 and uid != "0"  # real, effective, saved, fs: not root
    cap_sys_nice, cap_ipc_lock, cap_net_bind_service = 23, 14, 10
    assert seen["cap_eff"] == (1 << cap_sys_nice) | (1 << cap_ipc_lock) | (
        1 << cap_net_bind_service), hex(seen["cap_eff"])
    fifo = [t for t in seen["threads"] if t["policy"] == os.SCHED_FIFO]
    assert any(t["rt_priority"] == PRIORITY for t in fifo), seen["threads"]
    assert seen["vm_lck_kb"] > 10_000, seen["vm_lck_kb"]  # mlockall: all of it locked
    wanted = set(machine.show("SupplementaryGroups")["SupplementaryGroups"].split())
    present = {g for g in ("i2c", "spi", "gpio", "dialout")
               if machine.run("getent", "group", g, check=False).returncode == 0}
    assert wanted == present  # only the device groups that exist here
    gids = {machine.run("getent", "group", g).stdout.split(":")[2] for g in present}
    assert gids <= set(seen["groups"]), (gids, seen["groups"])
    listening = machine.run("ss", "-Hltnp", "sport = :502").stdout
    assert "0.0.0.0:502" in listening and f"pid={main}," in listening, listening
    assert machine.show("Result")["Result"] == "success"


def test_warnings_reach_the_journal_with_their_priorities(machine):
    """The relay writes <N> prefixes on stderr: journald files each line at its priority, so
    ``journalctl -u softrelay -p warning`` shows the warnings (here: /dev/cpu_dma_latency is
    not in the namespace's /dev) and leaves the information out."""
    machine.ensure_running()
    warned = machine.until(lambda: machine.journal("-u", "softrelay", "-p", "warning"), 30,
                           "a warning of the relay in the journal")
    texts = [(e["PRIORITY"], e["MESSAGE"]) for e in warned
             if e.get("_SYSTEMD_UNIT") == "softrelay.service" and "_PID" in e
             and e.get("SYSLOG_IDENTIFIER") != "systemd"]
    assert any(p == "4" and "cpu_dma_latency refused" in m.lower() for p, m in texts), texts
    assert all(int(p) <= 4 for p, _ in texts), texts
    shown = machine.run("journalctl", "--no-pager", "-u", "softrelay", "-p", "warning").stdout
    assert "cpu_dma_latency REFUSED" in shown
    info = machine.journal("-u", "softrelay", "-p", "info")
    assert any(e["PRIORITY"] == "6" and "started:" in e.get("MESSAGE", "") for e in info)


def test_watchdog_kills_and_restarts_a_stopped_scan(machine):
    """SIGSTOP the scan process: its heartbeat ends, systemd's watchdog fires after
    WatchdogSec, the process (which cannot take SIGABRT while stopped) is killed
    TimeoutAbortSec later, and a new instance starts."""
    before = machine.ensure_running()
    old = machine.processes()
    stopped = time.monotonic()
    machine.run("systemctl", "kill", "--kill-whom=main", "-s", "SIGSTOP", "softrelay")
    machine.until(lambda: not any(p == int(before["MainPID"]) for p, _ in machine.processes()),
                  WATCHDOG_S + ABORT_S + 5, "the stopped scan process killed")
    killed = time.monotonic() - stopped
    assert WATCHDOG_S - 1 < killed < WATCHDOG_S + ABORT_S + 3, killed
    after = machine.until(lambda: (s := machine.running()) and s["MainPID"] != before["MainPID"]
                          and s, 60, "a new instance active (running)")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert not old & machine.processes()  # nothing of the stopped instance is left
    told = machine.run("journalctl", "--no-pager", "-u", "softrelay", "-o", "cat").stdout
    assert f"Watchdog timeout (limit {WATCHDOG_S:g}s)!" in told, told[-2000:]


def test_kill_9_restarts_with_nothing_of_the_old_instance_left(machine):
    before = machine.ensure_running()
    old = machine.processes()
    assert len(old) >= 2  # the scan process and its companion
    machine.run("kill", "-9", before["MainPID"])
    after = machine.until(lambda: (s := machine.running()) and s["MainPID"] != before["MainPID"]
                          and s, 60, "a new instance after kill -9")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert not old & machine.processes(), (old, machine.processes())
    told = machine.run("journalctl", "--no-pager", "-u", "softrelay", "-o", "cat").stdout
    assert "Main process exited, code=killed, status=9/KILL" in told


def test_systemctl_stop_makes_the_coils_safe_writes_the_checkpoint_and_exits_0(machine):
    machine.ensure_running()
    machine.until(lambda: machine.run("test", "-s", "/var/lib/softrelay/state.json",
                                      check=False).returncode == 0, 30, "a first checkpoint")
    machine.run("systemctl", "log-level", "debug")  # systemd logs a clean exit at debug
    wall = time.time()
    began = time.monotonic()
    machine.run("systemctl", "stop", "softrelay", timeout=STOP_TIMEOUT_S + 30)
    took = time.monotonic() - began
    machine.run("systemctl", "log-level", "info")
    told = machine.run("journalctl", "--no-pager", "-u", "softrelay", "-o", "cat").stdout
    last = told[told.rindex("Stopping softrelay.service"):]
    assert took < STOP_TIMEOUT_S - 5, (took, last)
    assert "Main process exited, code=exited, status=0/SUCCESS" in last, last
    assert "Deactivated successfully" in last and "timed out" not in last, last
    assert machine.show("ActiveState")["ActiveState"] == "inactive"
    assert "stopped: checkpoint written, coils safe" in told
    saved = json.loads(machine.run("cat", "/var/lib/softrelay/state.json").stdout)["payload"]
    assert saved["saved_wall"] >= wall, (saved["saved_wall"], wall)  # the stop's checkpoint
    assert set(saved["points"]) == {"motor1"}
    events = machine.run("cat", "/var/lib/softrelay/events.jsonl").stdout.splitlines()
    assert "stopped: checkpoint written, coils safe" in json.loads(events[-1])["text"], \
        events[-1]
