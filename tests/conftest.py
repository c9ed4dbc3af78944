"""Shared fixtures: both core implementations, and hypothesis profiles."""

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
