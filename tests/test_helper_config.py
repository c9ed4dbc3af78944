"""The helper processes run the scan's configuration, and nobody reads another's image.

The I/O and telemetry processes are given the parsed configuration itself: a relay built from
a configuration with no file behind it gets I/O for that configuration (not the demo's), and
a telemetry process restarted after its file was edited still shows what the scan protects.
A shared image attached with another layout is refused, never read field for field as
another."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from softrelay.config import parse
from softrelay.core import Quality
from softrelay.image.shared import LayoutMismatchError, SharedImage

from support.relays import FAST, Driver, running
from support.scrape import TELEMETRY, scrape, with_sections

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

SIGNALS = np.dtype([("value", "f8"), ("quality", "u1")])


def test_a_relay_without_a_file_gets_io_for_its_own_configuration(tmp_path):
    """Built from text: its companion reads that configuration's plant (the demo's, loaded
    from 'no path', had other tables: the companion died on the image's size)."""
    text = FAST.read_text().replace("STATE_DIR", str(tmp_path))
    with running(parse(text)) as relay:
        drive = Driver(relay)
        drive.until(lambda: relay.core.thermal_inputs["quality"][0] == Quality.GOOD, 30,
                    "a good reading of motor1 from the I/O process")
        assert relay.helpers.companion is not None and relay.helpers.companion.is_alive()
        assert not [e for e in relay.events.ring if e.source == "companion"]


def test_a_restarted_telemetry_process_keeps_the_scans_configuration(tmp_path):
    """The file is edited while the relay runs (motor1 renamed): the telemetry process,
    killed and started again, still names the point the scan protects."""
    path = with_sections(tmp_path, TELEMETRY)
    with running(path) as relay:
        drive = Driver(relay)
        drive.until(lambda: relay.loop.stats.scans > 5, 10, "scans")
        points = {dict(k).get("point") for k in scrape(relay.telemetry_ports["metrics"])[
            "softrelay_thermal_theta"]}
        assert "motor1" in points
        path.write_text(path.read_text().replace("motor1", "edited1"))
        first = relay.helpers.telemetry.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while relay.helpers.telemetry is None or relay.helpers.telemetry.pid == first or \
                "metrics" not in relay.telemetry_ports:
            assert time.monotonic() < deadline, "the telemetry process was not restarted"
            relay.loop.step()
        while True:  # the new process's first scrape, once it serves
            try:
                samples = scrape(relay.telemetry_ports["metrics"])
                break
            except OSError:
                assert time.monotonic() < deadline, "the restarted telemetry never served"
                relay.loop.step()
        points = {dict(k).get("point") for k in samples["softrelay_thermal_theta"]}
        assert points == {"motor1"}, points


@pytest.mark.parametrize("other", [
    {"b": (SIGNALS, (4,)), "a": (SIGNALS, (4,))},  # the same tables in another order
    {"a": (SIGNALS, (4,)), "b": (np.dtype([("value", "f8"), ("quality", "u2")]), (4,))},
    {"a": (SIGNALS, (4,)), "c": (SIGNALS, (4,))},  # another table of the same size
    {"a": (SIGNALS, (4,)), "b": (SIGNALS, (5,))},  # another size
])
def test_an_image_attached_with_another_layout_is_refused(other):
    owner = SharedImage({"a": (SIGNALS, (4,)), "b": (SIGNALS, (4,))})
    try:
        with pytest.raises(LayoutMismatchError, match=owner.name):
            SharedImage(other, name=owner.name, create=False)
        same = SharedImage({"a": (SIGNALS, (4,)), "b": (SIGNALS, (4,))}, name=owner.name,
                           create=False)
        with owner.writing() as tables:
            tables["b"]["value"][2] = 7.5
        assert same.read()["b"]["value"][2] == 7.5
        same.close()
    finally:
        owner.close()
