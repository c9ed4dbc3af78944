"""The quantities of the built-in Modbus device profiles, by name, as signals address them
(``'<device>.<quantity>'``), in the order of the profile's register map.

Pure data: imports nothing of softrelay. Where each quantity lives and how it is coded is the
driver's (``softrelay.field.modbus.profiles``); a test holds both to the same names and order.
"""

from __future__ import annotations

from collections.abc import Iterable

#: sdm630: phase voltages, currents, phase angles and the phasors' angles, then frequency
SDM630 = (*(f"{q}.{p}" for p in "abc"
            for q in ("voltage", "current", "phase_angle", "angle")), "frequency")


def profile_quantities(profile: str | None, channels: int = 8) -> tuple[str, ...]:
    """The quantities of ``profile`` (a thermal_gateway's for its ``channels`` inputs); none:
    no profile, no quantity."""
    if profile == "sdm630":
        return SDM630
    if profile == "thermal_gateway":
        return (*(f"ch{k + 1}" for k in range(channels)), "emissivity", "scaling")
    return ()


def device_quantities(profile: str | None, channels: int, registers: Iterable[str]
                      ) -> list[str]:
    """A device's quantities: its profile's, then the ``registers`` it adds (one that has a
    profile quantity's name replaces it in place)."""
    names = list(profile_quantities(profile, channels))
    return names + [r for r in registers if r not in names]
