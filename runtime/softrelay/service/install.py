"""``softrelay install-service``: the systemd unit, its user, its configuration directory.

What it does, on a Debian machine (Raspberry Pi OS included), as root:

1. renders the unit shipped with the package (``softrelay.service``) for this interpreter
   (ExecStart = the Python that runs this command, so the virtual environment it lives in),
   the configuration file and the service user, with the supplementary groups among
   i2c, spi, gpio and dialout that exist here (a group the machine lacks would stop the
   service from starting: systemd refuses an unknown group);
2. declares the system user (``/etc/sysusers.d/softrelay.conf``, no home, no shell) and the
   directories and the unlock code's file (``/etc/tmpfiles.d/softrelay.conf``: /etc/softrelay,
   softrelay.env mode 0600, /var/lib/softrelay), and applies both with systemd-sysusers and
   systemd-tmpfiles (which apply them again at every boot);
3. puts the demo configuration at the configuration path when there is none yet (to be
   edited: it drives a simulated plant);
4. lets the service user hold /dev/cpu_dma_latency (a udev rule: without it the scan's CPU may
   sleep in deep idle states, which costs wake-up lateness), applied at once where udev runs;
5. reloads systemd when it is running, and prints what to do next.

``--root DIR`` writes everything under DIR instead of / (for packaging, and for the tests):
the files, and of the tmpfiles lines only those owned by root (the user does not exist
there); it creates no user and reloads nothing. ``--print`` writes the unit to stdout and
nothing else. Nothing is overwritten but the unit, the sysusers/tmpfiles declarations and the
udev rule: a configuration or environment file that exists is left alone.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from softrelay.config import demo_path

GROUPS = ("i2c", "spi", "gpio", "dialout")  #: the devices' groups on a Pi / Debian
UNIT_NAME = "softrelay.service"
CONFIG = Path("/etc/softrelay/relay.yaml")  #: what the installed service runs
UDEV_RULE = ('# softrelay: the relay holds /dev/cpu_dma_latency at 0 while it scans\n'
             'KERNEL=="cpu_dma_latency", GROUP="{user}", MODE="0660"\n')
SYSUSERS = Path("/etc/sysusers.d/softrelay.conf")
TMPFILES = Path("/etc/tmpfiles.d/softrelay.conf")


@dataclass
class Plan:
    """What an installation writes and does; ``render`` and ``apply`` share it."""

    config: Path = CONFIG
    user: str = "softrelay"
    python: str = sys.executable
    watchdog: str = "5s"
    root: Path = Path("/")
    groups: tuple[str, ...] = field(default_factory=tuple)  #: the ones that exist here
    missing: tuple[str, ...] = field(default_factory=tuple)  #: the ones that do not

    def __post_init__(self) -> None:
        if not self.groups and not self.missing:
            present = []
            for name in GROUPS:
                try:
                    grp.getgrnam(name)
                    present.append(name)
                except KeyError:
                    pass
            self.groups = tuple(present)
            self.missing = tuple(g for g in GROUPS if g not in present)

    def at(self, path: Path | str) -> Path:
        """``path`` under the installation root."""
        return self.root / Path(path).relative_to("/")

    def hidden_python(self) -> str | None:
        """Why the service could not run ``python`` (None: it can). The unit's
        ``ProtectHome=yes`` hides /root, /home and /run/user from the service, so an
        interpreter there (a venv of pyenv's Python, a venv in a home directory) fails with
        203/EXEC and restarts forever."""
        real = Path(self.python).resolve()
        for hidden in ("/root", "/home", "/run/user"):
            if real.is_relative_to(hidden):
                return (f"the interpreter {self.python} is {real}, under {hidden}, which the "
                        f"unit hides from the service (ProtectHome=yes): make the virtual "
                        f"environment with the system's Python outside home directories, "
                        f"e.g. /usr/bin/python3 -m venv /opt/softrelay/.venv")
        return None

    @property
    def unit_path(self) -> Path:
        return self.at(f"/etc/systemd/system/{UNIT_NAME}")


def template(name: str = UNIT_NAME) -> str:
    """A file shipped beside this module: the unit, ``softrelay.sysusers``, ``.tmpfiles``."""
    return resources.files("softrelay.service").joinpath(name).read_text()


def render_sysusers(plan: Plan) -> str:
    """The sysusers.d line of the service user."""
    return template("softrelay.sysusers").replace("@USER@", plan.user)


def render_tmpfiles(plan: Plan) -> str:
    """The tmpfiles.d lines: /etc/softrelay, softrelay.env (0600), /var/lib/softrelay."""
    return template("softrelay.tmpfiles").replace("@USER@", plan.user)


def render(plan: Plan) -> str:
    """The unit for ``plan``; every ``@FIELD@`` of the template filled."""
    docs = Path(__file__).resolve().parents[3] / "README.md"
    text = template()
    for key, value in (("PYTHON", plan.python), ("CONFIG", str(plan.config)),
                       ("USER", plan.user), ("WATCHDOG", plan.watchdog), ("DOCS", str(docs))):
        text = text.replace(f"@{key}@", value)
    drop = [] if docs.exists() else ["Documentation="]  # installed from a wheel: no README
    if plan.groups:
        text = text.replace("@GROUPS@", " ".join(plan.groups))
    else:  # none of the device groups here: no SupplementaryGroups line at all
        drop.append("SupplementaryGroups=")
    if drop:
        text = "\n".join(line for line in text.splitlines()
                         if not line.startswith(tuple(drop))) + "\n"
    unfilled = re.findall(r"@[A-Z]+@", text)
    if unfilled:
        raise RuntimeError(f"the unit template has fields this installer does not fill: "
                           f"{', '.join(unfilled)}")
    return text


def _systemd_tool(name: str) -> str:
    tool = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    if not tool:
        raise FileNotFoundError(f"{name} is missing: install-service needs systemd (Debian "
                                f"package systemd) to create the user and the directories")
    return tool


def _run(argv: list[str]) -> None:
    """A systemd tool; its complaint (ChildProcessError, reported by the command line
    without a traceback) when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode:
        raise ChildProcessError(f"{' '.join(argv)} failed (exit {result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")


def apply(plan: Plan, out=None) -> list[str]:
    """Install per ``plan``; returns the steps done (also printed to ``out``, default
    stdout)."""
    done: list[str] = []

    def say(line: str) -> None:
        done.append(line)
        print(line, file=out or sys.stdout)

    real = plan.root == Path("/")
    if real and os.geteuid() != 0:
        raise PermissionError("install-service writes /etc and creates a user: run it as root "
                              "(sudo), or with --root DIR / --print")
    hidden = plan.hidden_python()
    if hidden and real:  # before anything is written: the service would never start
        raise PermissionError(f"refused: {hidden}")
    plan.unit_path.parent.mkdir(parents=True, exist_ok=True)
    plan.unit_path.write_text(render(plan))
    say(f"unit: {plan.unit_path}")
    if hidden:
        say(f"warning: {hidden}")
    if plan.missing:
        say(f"groups: {', '.join(plan.groups) or 'none'} (not on this machine: "
            f"{', '.join(plan.missing)}; enable I2C/SPI first on a Pi: raspi-config)")
    sysusers, tmpfiles = plan.at(SYSUSERS), plan.at(TMPFILES)
    for path, text in ((sysusers, render_sysusers(plan)), (tmpfiles, render_tmpfiles(plan))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if real:
        _run([_systemd_tool("systemd-sysusers"), str(sysusers)])
        say(f"user: {plan.user} (system user, no shell: {sysusers})")
        _run([_systemd_tool("systemd-tmpfiles"), "--create", str(tmpfiles)])
    else:  # the root-owned lines only: the user exists on the target, not here
        _run([_systemd_tool("systemd-tmpfiles"), "--create", f"--root={plan.root}",
              "--prefix=/etc/softrelay", str(tmpfiles)])
        say(f"user: {plan.user} (declared in {sysusers}: systemd-sysusers creates it)")
    say(f"directories: /etc/softrelay, /var/lib/softrelay ({tmpfiles})")
    config = plan.at(plan.config)
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo_path(), config)
        say(f"config: {config} (the demo: edit it for your plant, then `softrelay check "
            f"{plan.config}`)")
    else:
        say(f"config: {config} (kept)")
    env = config.parent / "softrelay.env"
    say(f"environment: {env} (mode 0600: put SOFTRELAY_OPERATOR_CODE= and "
        "SOFTRELAY_ENGINEER_CODE= there)")
    rule = plan.at("/etc/udev/rules.d/60-softrelay.rules")
    rule.parent.mkdir(parents=True, exist_ok=True)
    rule.write_text(UDEV_RULE.format(user=plan.user))
    say(f"udev: {rule} (/dev/cpu_dma_latency for {plan.user})")
    if real:
        # only where udevd runs (its control socket): a trigger is a machine-wide event
        if shutil.which("udevadm") and Path("/run/udev/control").exists():
            subprocess.run(["udevadm", "trigger", "--sysname-match=cpu_dma_latency"],
                           check=False)
        if Path("/run/systemd/system").is_dir():
            subprocess.run(["systemctl", "daemon-reload"], check=True)
            say("systemd: reloaded")
    say("next: systemctl enable --now softrelay; journalctl -u softrelay -f; "
        "softrelay status 127.0.0.1:5020")
    return done
