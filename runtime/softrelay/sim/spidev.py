"""A simulated chip select that answers spidev as /dev/spidevB.D does: ``xfer2`` and the
SPI_IOC_MESSAGE ioctl (decoded from the same ``struct spi_ioc_transfer`` array the kernel reads).

The chip implements ``transfer(data, at, speed_hz) -> list[int]``: one chip-select period
(chip select low for all of ``data``, falling at monotonic time ``at``) and names the clock
modes it samples correctly (``modes``); in any other mode its answer is garbage, as on the
wire. In a message, transfers whose predecessor kept chip select (``cs_change`` 0) continue
its period; each takes its clocks (8 bits per byte at ``speed_hz``), its ``delay_usecs`` and
``overhead_us`` of controller time, and the ioctl returns when the whole message would have.

Faults injected into the bus (``chip_faults.BusFaults``) act on every period: a chip that does
not answer leaves MISO to its pull-up (0xFF), interference corrupts the answer.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Protocol

from softrelay.catalog.faults import FaultKind
from softrelay.field.spi.port import decode_message
from softrelay.sim.chip_faults import BusFaults


class SpiChip(Protocol):
    modes: tuple[int, ...]

    def transfer(self, data: list[int], at: float | None = None,
                 speed_hz: int = 0) -> list[int]: ...


class SimulatedSpiDev:
    """Drop-in for ``spidev.SpiDev`` (opened on one chip select) as far as a driver uses it."""

    FD = -1  #: what ``fileno`` returns: no file behind it

    def __init__(self, chip: SpiChip, name: str = "", faults: BusFaults | None = None,
                 overhead_us: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.chip = chip
        self.name = name
        self.faults = faults
        self.overhead_us = overhead_us
        self.clock = clock
        self.sleep = sleep
        self.mode = 0
        self.max_speed_hz = 500_000
        self.transfers = 0
        self.messages = 0
        self.behind = 0.0  #: s the twin's own computing has made its messages late, in all

    def wire_clock(self) -> float:
        """``clock`` less the time the twin's messages overran their time on the wire.

        The twin answers each chip-select period with the input at the instant the wire
        would sample it, so a message that ends late (Python computing the answers, a busy
        CPU waking the sleep late) still holds samples exactly as far apart as the wire puts
        them: timed by this clock, a message lasts its wire time, as on a real controller."""
        return self.clock() - self.behind

    def _period(self, data: list[int], at: float, speed_hz: int) -> list[int]:
        faults = self.faults
        fault = faults.wire(self.name) if faults else None
        if fault is not None and fault.kind == FaultKind.NACK:
            return [0xFF] * len(data)  # nobody drives MISO
        if self.mode not in self.chip.modes:
            return [0xFF] * len(data)  # the wrong clock phase: garbage, as on the wire
        self.transfers += 1
        answer = self.chip.transfer(list(data), at, speed_hz)
        if fault is not None and faults is not None:
            answer = list(faults.scramble(bytes(answer)))
        return answer

    def xfer2(self, data: list[int]) -> list[int]:
        return self._period(list(data), self.clock(), self.max_speed_hz)

    def fileno(self) -> int:
        return self.FD

    def ioctl(self, fd: int, request: int, buffer: bytearray, mutate: bool = True) -> int:
        """SPI_IOC_MESSAGE(N): read each transfer's tx buffer, run the chip-select periods,
        write each rx buffer, and take as long as the message takes on the wire."""
        transfers = decode_message(request, buffer)
        start = self.clock()
        t = 0.0  # s into the message
        period: list[tuple[int, int, int]] = []  # (rx address, length, offset) of this period
        data: list[int] = []
        period_at, period_speed = start, self.max_speed_hz
        for k, (tx, rx, length, speed, delay, _bits, cs_change, *_rest) in enumerate(transfers):
            speed = speed or self.max_speed_hz
            if not period:
                period_at, period_speed = start + t, speed
            period.append((rx, length, len(data)))
            data += list(ctypes.string_at(tx, length)) if tx else [0] * length
            t += length * 8 / speed + (delay + self.overhead_us) * 1e-6
            if cs_change or k == len(transfers) - 1:  # chip select released after this one
                answer = self._period(data, period_at, period_speed)
                for address, size, offset in period:
                    if address:
                        ctypes.memmove(address, bytes(answer[offset:offset + size]), size)
                period, data = [], []
        self.messages += 1
        remaining = start + t - self.clock()
        if remaining > 0:
            self.sleep(remaining)
        self.behind += max(0.0, self.clock() - (start + t))
        return 0

    def close(self) -> None:
        """Nothing to release; safe to call twice."""
