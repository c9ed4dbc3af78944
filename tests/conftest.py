"""Shared fixtures: both core implementations, hypothesis profiles, and a state directory of
its own for every test."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

IMPLEMENTATIONS = ("compiled", "reference")


def _isolate_state(patch: pytest.MonkeyPatch, home) -> None:
    patch.setenv("XDG_STATE_HOME", str(home))
    patch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture(autouse=True, scope="session")
def session_state_dir(tmp_path_factory):
    """The same isolation as ``user_state_dir`` from the session's start, for the module-
    and session-scoped fixtures that run before any test's own."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("xdg-state-session")
        _isolate_state(patch, home)
        yield home


@pytest.fixture(autouse=True)
def user_state_dir(session_state_dir, tmp_path_factory, monkeypatch):
    """Every test (and every process it starts, which inherits the environment) keeps its
    relay state in a directory of its own: ``$XDG_STATE_HOME`` points there and systemd's
    ``$STATE_DIRECTORY`` is removed, so no test reads or writes the real home's state."""
    home = tmp_path_factory.mktemp("xdg-state")
    _isolate_state(monkeypatch, home)
    return home


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """Each behaviour test runs against the compiled core and against the reference."""
    return request.param


@pytest.fixture
def pty_pair(tmp_path):
    """Two linked ptys made by socat (a null-modem cable): (end_a, end_b) paths."""
    import shutil
    import subprocess
    import time

    if shutil.which("socat") is None:
        pytest.fail("socat is required for the RTU tests: `make test` installs it "
                    "(apt-get install socat)")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5.0
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"socat made no pty pair: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    yield str(a), str(b)
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def modbus_relay(tmp_path):
    """A started relay with its Modbus slave and the DCS's side of it (``support.modbus``'s
    ``Running``: the client, codes, the relay), closed after the test."""
    from support.modbus import Running, make_relay

    running = Running(make_relay(tmp_path))
    yield running
    running.close()
