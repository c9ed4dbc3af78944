"""The register map's words: what every flag bit, every input quality code and every enumerated
setting's code means, as the map's descriptions (and ``softrelay status``) say it.

Every flag bit and every quality code is described in its own class's words (``FLAG_TEXT``,
``QUALITY_TEXT``); one without words is an error at import naming it (``check_texts``).
"""

from __future__ import annotations

import enum

from softrelay.core import BusbarFlag, Quality, ThermalFlag

#: each flag class's words for its bits (keyed by class: ThermalFlag.TRIP == BusbarFlag.WARNING
#: as numbers, so one table keyed by flag would give one of them the other's text)
FLAG_TEXT: dict[type[enum.IntFlag], dict[enum.IntFlag, str]] = {
    ThermalFlag: {
        ThermalFlag.TRIP: "trip (latched until reset when the point latches)",
        ThermalFlag.TRIP_PICKUP: "theta >= theta_trip in this scan",
        ThermalFlag.ALARM1: "theta >= theta_al1",
        ThermalFlag.ALARM2: "theta >= theta_al2",
        ThermalFlag.START_INHIBIT: "stopped and theta >= theta_inhibit: a start is not "
        "permitted",
        ThermalFlag.STARTING: "a start is in progress (I_eq divided by KST)",
        ThermalFlag.RUNNING: "I_eq >= 0.1 I_B",
        ThermalFlag.INPUT_FAULT: "currents unusable (quality, stale, NaN): theta frozen",
        ThermalFlag.RESET_REJECTED: "a reset arrived while theta >= theta_reset",
        ThermalFlag.TRIANGLE_OPEN: "magnitudes cannot close a triangle: I2 is the conservative "
        "bound",
        ThermalFlag.MEASUREMENT_LOST: "measurement lost: currents not good for "
        "input_loss_delay, the point is blind (measuring circuit failure); theta follows "
        "input_loss",
    },
    BusbarFlag: {
        BusbarFlag.WARNING: "largest rise over ambient >= warning_delta (after its pickup "
        "delay)",
        BusbarFlag.CRITICAL: "largest rise over ambient >= critical_delta (after its pickup "
        "delay)",
        BusbarFlag.IMBALANCE: "phase-to-phase delta >= imbalance_max (after its pickup delay)",
        BusbarFlag.RATE: "a phase's rate of rise >= rate_limit (after its pickup delay)",
        BusbarFlag.JOINT: "one phase hot for its current under balanced load: a suspect joint",
        BusbarFlag.SENSOR_FAULT: "at least one channel is faulted and excluded",
        BusbarFlag.AMBIENT_FAULT: "the ambient channel is unusable (faulted or excluded)",
        BusbarFlag.MEASUREMENT_LOST: "measurement lost: a phase channel faulted for "
        "input_loss_delay, that phase is not protected",
        BusbarFlag.AMBIENT_FALLBACK: "the ambient channel is faulted: rises are taken over "
        "ambient_fallback",
        BusbarFlag.TEMP_WARNING: "a valid phase >= warning_abs, whatever the ambient (after "
        "its pickup delay)",
        BusbarFlag.TEMP_CRITICAL: "a valid phase >= critical_abs, whatever the ambient (after "
        "its pickup delay)",
    },
}
#: the words for each input quality code (core.layout.Quality)
QUALITY_TEXT: dict[Quality, str] = {
    Quality.GOOD: "good", Quality.STALE: "stale", Quality.OUT_OF_RANGE: "out of range",
    Quality.IO_ERROR: "I/O error",
    Quality.SENTINEL: "sentinel (the device's no-reading value)",
}


def check_texts(texts: dict[type[enum.IntFlag], dict[enum.IntFlag, str]] = FLAG_TEXT,
                quality: dict = QUALITY_TEXT, qualities: type[enum.IntEnum] = Quality) -> None:
    """Every flag of every class and every quality code has its words, each under its own
    class. Raises ValueError naming what is missing or misplaced (checked at import)."""
    problems = []
    for cls, table in texts.items():
        problems += [f"{cls.__name__}.{f.name} has no description in FLAG_TEXT"
                     for f in cls if f and not any(k is f for k in table)]
        problems += [f"FLAG_TEXT[{cls.__name__}] holds {type(k).__name__}.{k.name}"
                     for k in table if type(k) is not cls]
    problems += [f"{qualities.__name__}.{q.name} has no description in QUALITY_TEXT"
                 for q in qualities if q not in quality]
    if problems:
        raise ValueError("register map texts: " + "; ".join(problems))


check_texts()

#: the enumerated settings (shown as uint16 codes) and the words for their codes
ENUM_SETTINGS = {"input_mode": "0 phasors, 1 magnitudes, 2 samples", "latch": "0 no, 1 yes",
                 "input_loss": "0 freeze, 1 hold"}
