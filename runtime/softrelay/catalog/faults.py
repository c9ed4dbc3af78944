"""The faults a simulated I2C or SPI bus can carry, and those a medium cannot have (why).

Pure data: imports nothing of softrelay. ``sim.chip_faults`` injects them; the configuration
refuses a ``plant.faults`` entry the medium or the chip cannot have (``chips.ChipSpec.refused``)
with the same reason.
"""

from __future__ import annotations

#: on the wire: every transaction with the chip meets them
WIRE_FAULTS = ("nack", "slow", "garbage")
#: in the sensing element, before the chip codes the value
ELEMENT_FAULTS = ("sentinel", "stuck", "noisy")
#: bus kind -> fault -> why no bus of that kind can have it
NOT_ON = {"i2c": {"refused": "a network fault: a local bus has no connection to refuse"},
          "spi": {"refused": "a network fault: a local bus has no connection to refuse",
                  "slow": "the SPI master clocks every bit: a chip cannot answer late"}}


def fault_refusal(bus: str, sensors: dict[str, tuple[str, ...]],
                  refused: dict[str, dict[str, str]], address: str, kind: str
                  ) -> tuple[str, str] | None:
    """Why ``kind`` cannot be injected at ``address`` of a simulated ``bus`` ('i2c' or 'spi'),
    as (the key at fault, 'kind' or 'address'; the reason), or None when it can.

    ``sensors``: each chip's name -> its quantities; ``refused``: a chip's name -> faults it
    cannot have -> why (``chips.REFUSED_ON_CHIP`` of its chip). The reasons are the ones
    ``sim.chip_faults.BusFaults.check`` raises (a test holds them equal)."""
    if kind in NOT_ON.get(bus, {}):
        return "kind", f"no {kind!r} on an {bus.upper()} bus: {NOT_ON[bus][kind]}"
    if kind not in WIRE_FAULTS + ELEMENT_FAULTS:
        return "address", f"unknown fault {kind!r}"
    if address == "*":
        return None
    sensor, _, quantity = address.partition(".")
    if sensor not in sensors:
        return "address", (f"{address!r}: no sensor {sensor!r} on this bus "
                           f"(sensors: {', '.join(sensors)})")
    if quantity and quantity not in sensors[sensor]:
        return "address", (f"{address!r}: {sensor!r} has no quantity {quantity!r} "
                           f"({', '.join(sensors[sensor])})")
    if kind in refused.get(sensor, {}):
        return "address", f"{address!r}: no {kind!r} here: {refused[sensor][kind]}"
    if quantity and kind in WIRE_FAULTS:
        return "address", (f"{address!r}: a {kind!r} fails a whole chip's transactions: "
                           f"address it as {sensor!r} (or '*')")
    return None
