"""Register decoding for Modbus field devices: words in, engineering values and quality out.

A value is ``count`` 16-bit registers (1 for int16/uint16, 2 for int32/uint32/float32) read
from a table. 32-bit values come in either word order: ``big`` (high word first, the Modbus
convention, "ABCD") or ``little`` (low word first, "CDAB", common in meters); bytes within a
word are always big-endian, as the protocol sends them. value = raw x scale + offset.

A raw value equal to one of the device's sentinels (the seed's -32768 "out of range") is not a
reading: it is reported as NaN with the SENTINEL quality (the device said "no reading", and the
protection, the events and the map name it so), never scaled into a temperature. A float32 NaN
or infinity is OUT_OF_RANGE, and so is an engineering value outside the register's ``valid``
range (a negative current from a meter is a fault, not a current).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from softrelay.core import Quality
from softrelay.modbus.protocol import READ_WORDS, register_value
from softrelay.modbus.protocol import VALUE_FORMAT as FORMAT
from softrelay.modbus.protocol import VALUE_WIDTH as WIDTH

DataType = Literal["int16", "uint16", "int32", "uint32", "float32"]
Table = Literal["holding", "input"]
LIMITS = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF), "int32": (-0x8000_0000, 0x7FFF_FFFF),
          "uint32": (0, 0xFFFF_FFFF)}


@dataclass(frozen=True)
class Register:
    """Where one value lives and how it is coded."""

    address: int  #: 0-based register address
    data_type: DataType = "int16"
    table: Table = "holding"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    sentinels: tuple[float, ...] = ()  #: raw values meaning "no reading": SENTINEL quality
    valid: tuple[float, float] | None = None  #: engineering range; outside it: OUT_OF_RANGE

    @property
    def count(self) -> int:
        return WIDTH[self.data_type]


def raw_value(words: Sequence[int], data_type: DataType,
              word_order: Literal["big", "little"] = "big") -> float:
    """The value coded in ``words`` (each 0..65535) before scaling (``protocol``'s coding)."""
    return register_value(words, data_type, word_order)


def decode(register: Register, words: Sequence[int]) -> tuple[float, int]:
    """(engineering value, quality) of one value's registers."""
    raw = raw_value(words, register.data_type, register.word_order)
    if raw in register.sentinels:
        return math.nan, Quality.SENTINEL
    if not math.isfinite(raw):
        return math.nan, Quality.OUT_OF_RANGE
    value = raw * register.scale + register.offset
    if register.valid is not None and not register.valid[0] <= value <= register.valid[1]:
        return math.nan, Quality.OUT_OF_RANGE
    return value, Quality.GOOD


def encode(value: float, data_type: DataType,
           word_order: Literal["big", "little"] = "big") -> list[int]:
    """The registers that code the raw ``value`` (for simulated devices and tests); an integer
    type saturates at its limits, as a device's converter does."""
    if data_type == "float32":
        raw = value
    else:
        lo, hi = LIMITS[data_type]
        raw = min(hi, max(lo, round(value)))
    data = struct.pack(FORMAT[data_type], raw)
    words = [struct.unpack(">H", data[i:i + 2])[0] for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))


def coalesce(registers: Sequence[Register], max_gap: int = 0,
             max_count: int = READ_WORDS) -> list[tuple[int, int]]:
    """The fewest reads (start, count) that cover every register: contiguous ones merge,
    holes of at most ``max_gap`` registers are read through, no read exceeds ``max_count``
    (125: the protocol's limit for FC03/FC04)."""
    spans = sorted((r.address, r.address + r.count) for r in registers)
    reads: list[list[int]] = []
    for start, end in spans:
        if reads:
            near = start <= reads[-1][1] + max_gap
            fits = max(end, reads[-1][1]) - reads[-1][0] <= max_count
            if near and fits:
                reads[-1][1] = max(reads[-1][1], end)
                continue
        if end - start > max_count:
            raise ValueError(f"a value at {start} is wider than {max_count} registers")
        reads.append([start, end])
    return [(start, end - start) for start, end in reads]
