"""A simulated SPI chip select that answers spidev's ``xfer2`` as /dev/spidevB.D does.

The chip implements ``transfer(data: list[int]) -> list[int]`` (one transfer, chip select held
low for all its bytes) and names the clock modes it samples correctly (``modes``); in any other
mode its answer is garbage, as on the wire. Faults injected into the bus
(``chip_faults.BusFaults``) act on every transfer: a chip that does not answer leaves MISO to its
pull-up (0xFF), interference corrupts the answer.
"""

from __future__ import annotations

from typing import Protocol

from softrelay.io.chip_faults import BusFaults


class SpiChip(Protocol):
    modes: tuple[int, ...]

    def transfer(self, data: list[int]) -> list[int]: ...


class SimulatedSpiDev:
    """Drop-in for ``spidev.SpiDev`` (opened on one chip select) as far as a driver uses it."""

    def __init__(self, chip: SpiChip, name: str = "", faults: BusFaults | None = None) -> None:
        self.chip = chip
        self.name = name
        self.faults = faults
        self.mode = 0
        self.max_speed_hz = 500_000
        self.transfers = 0

    def xfer2(self, data: list[int]) -> list[int]:
        fault = self.faults.wire(self.name) if self.faults else None
        if fault is not None and fault.kind == "nack":
            return [0xFF] * len(data)  # nobody drives MISO
        if self.mode not in self.chip.modes:
            return [0xFF] * len(data)  # the wrong clock phase: garbage, as on the wire
        self.transfers += 1
        answer = self.chip.transfer(list(data))
        if fault is not None:
            answer = list(self.faults.scramble(bytes(answer)))
        return answer

    def close(self) -> None:
        """Nothing to release; safe to call twice."""
