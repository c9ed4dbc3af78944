"""pytest plugin for the runs under qemu-user (tools/arm/run.sh loads it with ``-p``): a
hypothesis profile ``qemu`` with fewer examples per property (emulation is 10-50 times
slower; the examples still cover every branch the x86 runs cover at 200, and a failure
still shrinks to its smallest case). tests/conftest.py loads the profile named by
HYPOTHESIS_PROFILE, which run.sh sets to ``qemu``; this registers it first.

It also gives the relay's helper processes longer to say they are ready
(``softrelay.relay.children.HELPER_READY_S``, 30 s): a spawned telemetry process's imports
alone took over 30 s under qemu with both architectures running (its 'ready' came after the
relay had given up), where a real ARM board takes a few seconds."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "qemu", max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


#: s the emulated relay waits for its I/O and telemetry processes (30 s on hardware)
EMULATED_HELPER_READY_S = 300.0


def pytest_configure(config) -> None:
    import softrelay.relay.children

    softrelay.relay.children.HELPER_READY_S = EMULATED_HELPER_READY_S
