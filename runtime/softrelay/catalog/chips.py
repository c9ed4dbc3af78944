"""One frozen spec per chip the relay reads over I2C or SPI: the whole of what the rest of the
tree needs to know about it.

Adding a chip is a new ``ChipSpec`` in ``CHIPS`` (with its driver under ``softrelay.field`` and
its twin under ``softrelay.sim``, named by ``"module:factory"``, imported only when asked for)
and its configuration model. The tables ``CHIP_QUANTITIES``, ``SPI_CHIPS`` and
``REFUSED_ON_CHIP`` are views of ``CHIPS``, for the code that reads them by chip name.

Pure data: imports nothing of softrelay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Bus = Literal["i2c", "spi"]


@dataclass(frozen=True)
class ChipSpec:
    """One kind of chip.

    ``quantities``: what it measures; signals address them as ``'<sensor>.<quantity>'``.
    ``spi_modes``: the SPI modes (CPOL, CPHA) its datasheet allows, the first the default;
    ``max_speed_hz``: the fastest SPI clock it takes (both empty for an I2C chip).
    ``refused``: faults it cannot have -> why (a fault injected there is refused, saying so).
    ``driver`` / ``twin``: ``"module:factory"`` of the driver a Pi runs and of the simulated
    chip that answers the same bytes.
    """

    name: str
    bus: Bus
    quantities: tuple[str, ...]
    driver: str
    twin: str
    description: str = ""
    spi_modes: tuple[int, ...] = ()
    max_speed_hz: int | None = None
    refused: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.bus == "spi" and (not self.spi_modes or self.max_speed_hz is None):
            raise ValueError(f"chip {self.name}: an SPI chip states its spi_modes and "
                             "max_speed_hz (its datasheet's)")


CHIPS: MappingProxyType[str, ChipSpec] = MappingProxyType({spec.name: spec for spec in (
    ChipSpec("mlx90614", "i2c", ("object", "ambient"),
             driver="softrelay.field.i2c.mlx90614:MLX90614",
             twin="softrelay.sim.chips.mlx90614:MLX90614Twin",
             description="infrared thermometer (object and die temperature)"),
    ChipSpec("tmp117", "i2c", ("temperature",),
             driver="softrelay.field.i2c.tmp117:TMP117",
             twin="softrelay.sim.chips.tmp117:TMP117Twin",
             description="digital temperature sensor"),
    ChipSpec("max31865", "spi", ("temperature",),
             driver="softrelay.field.spi.max31865:MAX31865",
             twin="softrelay.sim.chips.max31865:MAX31865Twin",
             description="RTD-to-digital converter (PT100 / PT1000)",
             spi_modes=(1, 3), max_speed_hz=5_000_000),
    ChipSpec("mcp3208", "spi", ("window",),
             driver="softrelay.field.spi.mcp3208:MCP3208",
             twin="softrelay.sim.chips.mcp3208:MCP3208Twin",
             description="8-channel 12-bit ADC sampling three CT inputs in bursts",
             spi_modes=(0, 3), max_speed_hz=2_000_000,
             refused=MappingProxyType({
                 "stuck": "a frozen ADC input is a DC level, which bias removal reads as no "
                          "current: no driver could tell it; inject 'sentinel' (a broken "
                          "input)"})),
)})

#: what each chip measures: signals address them as '<sensor>.<quantity>'
CHIP_QUANTITIES = {name: spec.quantities for name, spec in CHIPS.items()}
#: SPI modes and the fastest clock each SPI chip's datasheet allows
SPI_CHIPS = {name: (spec.spi_modes, spec.max_speed_hz) for name, spec in CHIPS.items()
             if spec.bus == "spi" and spec.max_speed_hz is not None}  # every SPI chip's has one
#: faults a kind of chip cannot have, and why
REFUSED_ON_CHIP = {name: dict(spec.refused) for name, spec in CHIPS.items() if spec.refused}

#: bits clocked per MCP3208 conversion: three 8-bit SPI words
MCP3208_BITS_PER_CONVERSION = 24
#: transfers one SPI message (SPI_IOC_MESSAGE) carries at most: the ioctl's 14-bit size field
#: over a 32-byte ``struct spi_ioc_transfer``
SPI_MAX_TRANSFERS = ((1 << 14) - 1) // 32


def chips_on(bus: Bus) -> tuple[str, ...]:
    """The chips a bus of kind ``bus`` carries, in catalog order."""
    return tuple(name for name, spec in CHIPS.items() if spec.bus == bus)
