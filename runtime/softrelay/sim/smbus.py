"""A simulated I2C bus that answers smbus2's ``i2c_rdwr`` as /dev/i2c-N does.

Chips attach at 7-bit addresses and implement ``transfer(write: bytes, read_len: int) ->
bytes``: a write message followed by a read message to the same address is one combined
transaction (repeated start), as the kernel issues it. An absent address, or a chip that
refuses, raises OSError(EREMOTEIO): the NACK a real bus reports. Faults injected into the bus
(``chip_faults.BusFaults``) act on each transaction with a named chip.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from typing import Protocol

from softrelay.sim.chip_faults import BusFaults

I2C_M_RD = 0x0001


class Chip(Protocol):
    def transfer(self, write: bytes, read_len: int) -> bytes: ...


class SimulatedSMBus:
    """Drop-in for ``smbus2.SMBus`` as far as ``i2c_rdwr`` goes."""

    def __init__(self, bus: int = 1, faults: BusFaults | None = None) -> None:
        self.bus = bus
        self.faults = faults
        self.chips: dict[int, Chip] = {}
        self.names: dict[int, str] = {}
        self.transactions = 0
        self._lock = threading.Lock()  # one transaction at a time, as on the wire

    def attach(self, address: int, chip: Chip, name: str = "") -> None:
        """``name``: the sensor's name in the configuration (what faults address)."""
        self.chips[address] = chip
        self.names[address] = name or f"0x{address:02x}"

    def i2c_rdwr(self, *messages) -> None:
        with self._lock:
            i = 0
            while i < len(messages):
                msg = messages[i]
                chip = self.chips.get(msg.addr)
                if chip is None:
                    raise OSError(errno.EREMOTEIO, f"no device at 0x{msg.addr:02x}")
                if msg.flags & I2C_M_RD:
                    data, read = b"", msg
                    i += 1
                else:
                    data = bytes(msg)
                    follow = messages[i + 1] if i + 1 < len(messages) else None
                    if follow is not None and follow.flags & I2C_M_RD and follow.addr == msg.addr:
                        read, i = follow, i + 2
                    else:
                        read, i = None, i + 1
                faults = self.faults
                fault = faults.wire(self.names[msg.addr]) if faults else None
                answer = chip.transfer(data, read.len if read is not None else 0)
                if fault is not None and faults is not None and read is not None:
                    answer = faults.scramble(answer)  # garbage: corrupted on the wire
                if read is not None:
                    ctypes.memmove(read.buf, bytes(answer), read.len)
                self.transactions += 1

    def close(self) -> None:
        """Nothing to release; safe to call twice."""

    def __enter__(self) -> SimulatedSMBus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
