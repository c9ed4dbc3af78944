"""What a configuration may hold is what the register map has room for: the limits the
loader refuses a file by are the ones the map's layout yields."""

from __future__ import annotations

from softrelay.config.limits import MAP_LIMITS, MAX_BUSES, MAX_POINTS
from softrelay.config.loader import map_limits
from softrelay.modbus import regmap


def test_the_limits_are_the_register_map_s_room():
    assert MAX_POINTS == regmap.MAX_POINTS
    assert MAX_BUSES == regmap.MAX_BUSES
    assert map_limits() == MAP_LIMITS == {"points": regmap.MAX_POINTS,
                                          "buses": regmap.MAX_BUSES}


def test_the_healthy_causes_are_the_supervision_s():
    """The causes a file chooses from are the ones self-supervision tracks, in bit order."""
    from softrelay.config import health
    from softrelay.supervision import health as supervision

    assert supervision.CAUSES is health.CAUSES
    assert supervision.OPTIONAL is health.OPTIONAL
    assert supervision.ALWAYS is health.ALWAYS
