"""pytest plugin for the runs under qemu-user (tools/arm/run.sh loads it with ``-p``): a
hypothesis profile ``qemu`` with fewer examples per property (emulation is 10-50 times
slower; the examples still cover every branch the x86 runs cover at 200, and a failure
still shrinks to its smallest case). tests/conftest.py loads the profile named by
HYPOTHESIS_PROFILE, which run.sh sets to ``qemu``; this registers it first."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "qemu", max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
