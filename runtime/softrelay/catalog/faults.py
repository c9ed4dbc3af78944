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
