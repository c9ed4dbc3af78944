"""The MLX90614 infrared thermometer as its SMBus sees it (the chip's facts: the driver's).

RAM words from the plant, EEPROM with erase-before-write, the PEC checked on writes (NACK when
wrong), EEBUSY for 5 ms after a write (NACK meanwhile), the error flag (bit 15) for a failed
thermopile.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from softrelay.field.i2c.mlx90614 import (
    EE_EMISSIVITY,
    EEPROM,
    EEPROM_WRITE_TIME,
    RAM_TA,
    RAM_TOBJ1,
    from_celsius,
)
from softrelay.field.i2c.pec import crc8
from softrelay.sim.chips import ChipInputs


class MLX90614Twin:
    """The chip as the bus sees it: RAM from the plant, EEPROM with erase-before-write, PEC
    checked on writes (NACK when wrong), EEBUSY for 5 ms after a write (NACK meanwhile)."""

    def __init__(self, address: int = 0x5A, object_c: Callable[[], float] = lambda: 25.0,
                 ambient_c: Callable[[], float] = lambda: 25.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address
        self.object_c = object_c
        self.ambient_c = ambient_c
        self.clock = clock
        self.eeprom = {EE_EMISSIVITY: 0xFFFF}
        self.busy_until = -1.0
        self.error_flag = False
        self.writes = 0

    @classmethod
    def on_bus(cls, sensor, inputs: ChipInputs) -> MLX90614Twin:
        """The twin of a configured sensor (its address; object and ambient from the plant)."""
        return cls(sensor.address, inputs.value("object"), inputs.value("ambient"))

    def _word(self, command: int) -> int:
        if command in (RAM_TOBJ1, RAM_TA):
            celsius = self.object_c() if command == RAM_TOBJ1 else self.ambient_c()
            # NaN: the thermopile failed (an injected element fault): the error flag alone
            word = from_celsius(celsius) if celsius == celsius else 0x8000
        elif command & 0xE0 == EEPROM:
            word = self.eeprom.get(command & 0x1F, 0)
        else:
            raise OSError(errno.EREMOTEIO, f"command 0x{command:02x} not acknowledged")
        if self.error_flag and command in (RAM_TOBJ1, RAM_TA):
            word |= 0x8000
        return word

    def transfer(self, write: bytes, read_len: int) -> bytes:
        if self.clock() < self.busy_until:
            raise OSError(errno.EREMOTEIO, "EEBUSY: EEPROM write in progress")
        if not write:
            raise OSError(errno.EREMOTEIO, "a read needs a command first")
        command = write[0]
        if read_len:
            word = self._word(command)
            low, high = word & 0xFF, word >> 8
            pec = crc8([self.address << 1, command, (self.address << 1) | 1, low, high])
            return bytes([low, high, pec])[:read_len]
        if len(write) != 4 or command & 0xE0 != EEPROM:
            raise OSError(errno.EREMOTEIO, "only EEPROM words can be written")
        low, high, pec = write[1], write[2], write[3]
        if pec != crc8([self.address << 1, command, low, high]):
            raise OSError(errno.EREMOTEIO, "PEC error: write refused")
        cell, word = command & 0x1F, low | high << 8
        old = self.eeprom.get(cell, 0)
        # Not erased first: the cell's bits merge (what the datasheet warns of).
        self.eeprom[cell] = word if word == 0 or old == 0 else old | word
        self.busy_until = self.clock() + EEPROM_WRITE_TIME
        self.writes += 1
        return b""
