"""How a thermal point's time to trip reads, in one place for every rendering.

The core's ``time_to_trip`` is 0 while the trip is set (latched, or a non-latching trip not yet
dropped), +inf when the present current never trips, NaN when the currents are unusable. Every
channel (the Modbus map, the metrics, ``softrelay status``, the live screen, the MQTT document)
shows it through these functions, so a tripped point reads 0 / "tripped" everywhere and never
"never" beside TRIP, even from a reading taken before the core said 0 while tripped.

Only interprets values; never computes protection.
"""

from __future__ import annotations

import math

from softrelay.core.layout import ThermalFlag


def time_to_trip(value: float, flags: int) -> float:
    """The time to trip to show, s: 0 while the point's TRIP flag is set, else the core's."""
    return 0.0 if int(flags) & ThermalFlag.TRIP else float(value)


def time_to_trip_text(value: float, flags: int) -> str:
    """"tripped", "never", "unknown" or the seconds (minutes from 10 min on)."""
    value = time_to_trip(value, flags)
    if value == 0.0:
        return "tripped"
    return seconds_text(value)


def seconds_text(value: float) -> str:
    """A time in words: "unknown" (NaN), "never" (inf), "now" (0), "N s" or "N min"."""
    value = float(value)
    if math.isnan(value):
        return "unknown"
    if math.isinf(value):
        return "never"
    if value == 0:
        return "now"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.0f} min"
