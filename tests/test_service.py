"""The relay as a systemd service: the unit passes ``systemd-analyze verify``, the installer
lays out what the unit expects, and ``softrelay run`` speaks sd_notify (READY, WATCHDOG,
STATUS, STOPPING) to a socket the test listens on, with journald's priority prefixes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from softrelay.service.install import GROUPS, Plan, apply, render

from support.relays import fast_config

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


def verify(unit_text: str, directory: Path) -> str:
    """systemd-analyze verify's complaints about the unit (empty: none). The tool says
    'ignoring' and exits 0 for a line it cannot parse, so its output is the verdict."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: `make test` installs it (Debian package systemd)"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "softrelay.service"
    path.write_text(unit_text)
    result = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
    return (result.stdout + result.stderr).strip() + (f" (exit {result.returncode})"
                                                        if result.returncode else "")


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    unit = render(Plan())
    assert verify(unit, tmp_path / "good") == ""
    for line in ("Type=notify", "WatchdogSec=5s", "Restart=always", "StateDirectory=softrelay",
                 "AmbientCapabilities=CAP_SYS_NICE CAP_IPC_LOCK CAP_NET_BIND_SERVICE",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "User=softrelay",
                 f"ExecStart={sys.executable} -m softrelay run /etc/softrelay/relay.yaml"):
        assert line in unit.splitlines(), line
    # the check has teeth: a mistyped value and a missing program are both reported
    assert "notifyy" in verify(unit.replace("Type=notify", "Type=notifyy"), tmp_path / "typo")
    assert "not executable" in verify(unit.replace(sys.executable, "/nowhere/python"),
                                      tmp_path / "missing")


def test_only_the_device_groups_this_machine_has_are_asked_for(tmp_path):
    """systemd refuses to start a service with an unknown supplementary group (216/GROUP):
    a gateway without i2c/spi/gpio groups gets the ones it has, or no line at all."""
    some = render(Plan(groups=("dialout",), missing=("i2c", "spi", "gpio")))
    assert "SupplementaryGroups=dialout" in some.splitlines()
    none = render(Plan(groups=(), missing=GROUPS))
    assert "SupplementaryGroups" not in none
    assert verify(none, tmp_path) == ""
    every = render(Plan(groups=GROUPS, missing=()))
    assert "SupplementaryGroups=i2c spi gpio dialout" in every.splitlines()


def test_install_service_lays_out_what_the_unit_expects(tmp_path, capsys):
    root = tmp_path / "root"
    plan = Plan(root=root, user="relay7", groups=("dialout",), missing=("i2c", "spi", "gpio"),
                python="/usr/bin/python3")
    apply(plan)
    said = capsys.readouterr().out
    # the user and the directories are declared for systemd's own tools (applied at install
    # on the machine and at every boot), not made by the installer's own commands
    sysusers = (root / "etc/sysusers.d/softrelay.conf").read_text()
    assert 'u relay7 - "softrelay protection relay" /var/lib/softrelay /usr/sbin/nologin' \
        in sysusers.splitlines()
    tmpfiles = (root / "etc/tmpfiles.d/softrelay.conf").read_text().splitlines()
    assert "d /var/lib/softrelay 0750 relay7 relay7 -" in tmpfiles
    assert "d /etc/softrelay 0755 root root -" in tmpfiles
    target = tmp_path / "target"  # what systemd-sysusers makes of it on a machine
    (target / "etc").mkdir(parents=True)
    subprocess.run(["systemd-sysusers", f"--root={target}",
                    str(root / "etc/sysusers.d/softrelay.conf")], check=True, timeout=60,
                   capture_output=True)
    entry = (target / "etc/passwd").read_text().splitlines()[-1].split(":")
    assert entry[0] == "relay7" and entry[5:] == ["/var/lib/softrelay", "/usr/sbin/nologin"]
    unit = (root / "etc/systemd/system/softrelay.service").read_text()
    assert "User=relay7" in unit and verify(unit, tmp_path / "v") == ""
    config = root / "etc/softrelay/relay.yaml"
    subprocess.run([sys.executable, "-m", "softrelay", "check", str(config)], check=True,
                   capture_output=True, timeout=60)  # the demo, ready to edit
    env = root / "etc/softrelay/softrelay.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600  # the unlock code's file (tmpfiles.d)
    assert {"#SOFTRELAY_OPERATOR_CODE=", "#SOFTRELAY_ENGINEER_CODE="} <= set(
        env.read_text().splitlines())
    rule = (root / "etc/udev/rules.d/60-softrelay.rules").read_text()
    assert 'KERNEL=="cpu_dma_latency", GROUP="relay7", MODE="0660"' in rule
    assert "not on this machine: i2c, spi, gpio" in said
    assert "systemctl enable --now softrelay" in said
    # again, after the engineer edited the configuration: the edit stays
    config.write_text(config.read_text().replace("name: demo", "name: feeder7"))
    apply(plan)
    assert "name: feeder7" in config.read_text()
    assert f"config: {config} (kept)" in capsys.readouterr().out


def test_an_interpreter_the_unit_hides_is_refused_before_anything_is_written(tmp_path, capsys):
    """ProtectHome=yes hides /root and /home from the service: a venv of a Python there (pyenv)
    would fail with 203/EXEC and restart forever (seen under the real systemd). The
    installer refuses it for the machine it runs on and warns when it writes under --root."""
    link = tmp_path / "venv-python"
    link.symlink_to("/root/.pyenv/versions/3.11.7/bin/python3")
    reason = Plan(python=str(link)).hidden_python()
    assert reason and "under /root" in reason and "ProtectHome=yes" in reason
    assert "/usr/bin/python3 -m venv" in reason
    assert Plan(python="/home/eng/relay/.venv/bin/python").hidden_python()
    assert Plan(python="/usr/bin/python3").hidden_python() is None
    assert Plan(python="/opt/softrelay/.venv/bin/python").hidden_python() is None
    apply(Plan(root=tmp_path / "root", python=str(link)))
    assert "warning: the interpreter" in capsys.readouterr().out


def test_install_service_as_a_user_says_it_needs_root(tmp_path):
    if os.geteuid() == 0:  # run the check as nobody: the refusal is what a user sees
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        assert shutil.which("setpriv"), "setpriv (util-linux) is missing"
    else:
        argv = []
    result = subprocess.run([*argv, sys.executable, "-m", "softrelay", "install-service"],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 1
    assert "run it as root (sudo), or with --root DIR / --print" in result.stderr


@pytest.fixture
def notify_socket(tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = tmp_path / "notify"
    listener.bind(str(address))
    listener.settimeout(0.2)
    yield listener, str(address)
    listener.close()


def receive(listener: socket.socket, until: float, want: str) -> list[str]:
    """Datagrams until one has the line ``want`` (or ``until``)."""
    got = []
    while time.monotonic() < until:
        try:
            got.append(listener.recv(4096).decode())
        except TimeoutError:
            continue
        if want in got[-1].splitlines():
            return got
    raise AssertionError(f"no {want!r} from the relay; got {got}")


def test_softrelay_run_speaks_sd_notify_and_writes_journal_lines(tmp_path, notify_socket):
    """As systemd runs it: READY once scanning, WATCHDOG at a quarter of WatchdogSec with the
    status (health, scan figures) every status period, STOPPING on SIGTERM, then exit 0;
    stderr lines carry journald's <priority> prefix."""
    listener, address = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="400000",
               INVOCATION_ID="0123456789abcdef", GPIOZERO_PIN_FACTORY="mock")
    relay = subprocess.Popen([sys.executable, "-m", "softrelay", "run",
                              str(fast_config(tmp_path))], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        got = receive(listener, time.monotonic() + 60, "READY=1")
        assert any(line.startswith("STATUS=scanning every") for line in got[-1].splitlines())
        started = time.monotonic()
        got = receive(listener, started + 5, "WATCHDOG=1")  # the first: with the status
        got += receive(listener, started + 5, "WATCHDOG=1")  # and again a period later
        status = [line for m in got for line in m.splitlines() if line.startswith("STATUS=")]
        assert "STATUS=healthy: scans running" in status, got  # the verdict first
        figures = [line for line in status if line.startswith("STATUS=healthy; scan 10 ms, ")]
        assert figures and figures[0].endswith("overruns; no trip"), got
        relay.send_signal(signal.SIGTERM)
        receive(listener, time.monotonic() + 20, "STOPPING=1")
        assert relay.wait(30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    lines = relay.stderr.read().splitlines()
    assert lines and all(line.startswith(("<6>", "<4>", "<3>", "<2>")) for line in lines), lines
    assert any(line.startswith("<6>softrelay.events: ") and "started:" in line
               for line in lines), lines


def demo_lines_until(env: dict, wanted: str, tmp_path: Path, within: float = 60.0) -> list[str]:
    """Run the demo relay (its state in ``tmp_path``, free ports) with ``env``; its stderr
    lines up to the first containing ``wanted`` (bounded), then SIGTERM and the rest."""
    demo = (Path(__file__).parent.parent / "config" / "demo.yaml").read_text()
    tmp_path.mkdir()
    path = tmp_path / "demo.yaml"
    path.write_text(demo.replace("\nstate:\n", f"\nstate:\n  dir: {tmp_path}\n")
                    .replace("port: 9650", "port: 0").replace("port: 5020", "port: 0"))
    relay = subprocess.Popen([sys.executable, "-m", "softrelay", "run", str(path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in relay.stderr:
            lines.append(line.rstrip("\n"))
            if wanted in line:
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(within), f"no line with {wanted!r} within {within} s: {lines}"
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    reader.join(10)
    return lines


GATEWAY_SET_UP = "softrelay.modbus: rs485: gw set up and verified"  # the I/O process's line


def test_the_io_process_files_its_lines_at_their_priority_too(tmp_path):
    """Under systemd every process's lines carry journald's priority, the I/O process's too
    (its gateway set-up line came as "INFO softrelay.modbus: ...", filed at the default
    priority); on a terminal or in a file every line carries its time."""
    base = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM")}
    base["GPIOZERO_PIN_FACTORY"] = "mock"
    journal = demo_lines_until(base | {"INVOCATION_ID": "0123456789abcdef"}, GATEWAY_SET_UP,
                               tmp_path / "journal")
    assert all(line.startswith(("<6>", "<4>", "<3>", "<2>")) for line in journal), journal
    assert any(line.startswith("<6>" + GATEWAY_SET_UP) for line in journal), journal
    plain = demo_lines_until(base, GATEWAY_SET_UP, tmp_path / "plain")
    stamped = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|CRITICAL) ")
    assert all(stamped.match(line) for line in plain if line.strip()), plain
    assert any(stamped.match(line) and f"INFO {GATEWAY_SET_UP}" in line for line in plain)
