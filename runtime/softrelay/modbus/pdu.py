"""Modbus PDUs answered: the readable specification of the slave, and the one PDU server of
softrelay (the slave's and the simulated field devices').

``answer(pdu, tables)`` answers one request PDU (function code and data, without MBAP header or
RTU address and CRC) from what ``tables`` (a ``Tables``) serves: it parses the request, checks
the quantities and the range, packs the answer; ``tables`` says which functions it answers,
which addresses are mapped, reads them and takes the writes. Two serve through it:

- the relay's slave, ``SlaveLogic.respond(pdu, image, writes)``: one scan's register image
  through the register map, writes passed to ``writes`` (``modbus.writes.RelayWrites``). The
  compiled server answers exactly the same bytes; tests hold it to this module;
- the simulated Modbus field devices (``sim.modbus_twin``), with their datasheets' registers
  (functions 03, 04, 06, 16; any other: exception 01, as the devices they stand for answer).

The numbers (function and exception codes, limits) are ``modbus.protocol``'s, named there
(``Function.READ_COILS``, ``ILLEGAL_VALUE``, ...) and nowhere again.

Per the Modbus Application Protocol v1.1b3:

| code | function | quantity limits |
|---|---|---|
| 01 / 02 | read coils / discrete inputs | 1..2000 bits |
| 03 / 04 | read holding / input registers | 1..125 registers |
| 05 | write single coil | value 0xFF00 or 0x0000 |
| 06 | write single register | |
| 15 | write multiple coils | 1..1968 bits, byte count = ceil(n / 8) |
| 16 | write multiple registers | 1..123 registers, byte count = 2 n |
| 23 | read/write multiple registers | read 1..125, write 1..121; written first |
| 43 / 14 | read device identification | codes 01..04 |

Exceptions: 01 an unsupported function (or MEI type), and a write the relay refuses for want of
authority (a level the session does not hold, a wrong or locked-out code, the relay in local:
``modbus.writes.REFUSED``); 03 a quantity outside its limits, a byte count that does not match,
a coil value other than 0xFF00 / 0x0000, a written value the settings refuse; 02 a range that
leaves the table (start + quantity > 65536), touches an unmapped address, writes a read-only
address, or writes part of a 32-bit value; 06 (server device busy) a read, or the
read of a 23, before the first scan's snapshot is published (``image`` None): the DCS never
reads a value the relay did not compute (a 23 is then refused whole: nothing is written).
Checks run in that order: quantity (03) before address (02) before busy (06), as the
specification's state diagrams do.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from softrelay.modbus.protocol import (
    ADDRESSES,
    DEVICE_FAILURE,
    DEVICE_ID_BASIC_LAST,
    DEVICE_ID_CONFORMITY,
    DEVICE_ID_REGULAR_LAST,
    GATEWAY_TARGET_FAILED,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    MEI_READ_DEVICE_ID,
    READ_BITS,
    READ_WORDS,
    RW_REGISTERS,
    SERVER_BUSY,
    WRITE_COILS,
    WRITE_REGISTERS,
    Function,
    exception_pdu,
)
from softrelay.modbus.regmap import TABLES, Entry, RegisterMap, firmware_version

__all__ = ["DEVICE_FAILURE", "GATEWAY_TARGET_FAILED", "ILLEGAL_FUNCTION", "ILLEGAL_VALUE",
           "SERVER_BUSY", "ModbusError", "SlaveLogic", "Tables", "Writes", "answer"]
#: the read functions of bits and of words, and the table each reads
BIT_TABLE: dict[int, str] = {Function.READ_COILS: "coil",
                             Function.READ_DISCRETE_INPUTS: "discrete_input"}
WORD_TABLE: dict[int, str] = {Function.READ_HOLDING_REGISTERS: "holding_register",
                              Function.READ_INPUT_REGISTERS: "input_register"}
VENDOR, PRODUCT = "softrelay project", "softrelay"


class ModbusError(Exception):
    """A request refused with an exception ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Tables(Protocol):
    """What a PDU server serves. Each method raises ``ModbusError`` with the code that refuses
    the request (02 an unmapped or read-only address, 03 a value refused, 06 busy, ...); a
    range that leaves the table (start + quantity > 65 536) never reaches it. Tables are named
    as in the register map: coil, discrete_input, input_register, holding_register."""

    @property
    def functions(self) -> frozenset[int]:
        """The functions it answers (any other: exception 01)."""
        ...

    def read_bits(self, table: str, start: int, count: int) -> Sequence[int] | np.ndarray:
        """``count`` coils or discrete inputs from ``start`` (0 or not 0 each)."""
        ...

    def read_words(self, table: str, start: int, count: int) -> Sequence[int] | np.ndarray:
        """``count`` input or holding registers from ``start``."""
        ...

    def write_bits(self, start: int, bits: list[int]) -> None:
        """Write coils from ``start``, all or none."""
        ...

    def write_words(self, start: int, words: list[int]) -> None:
        """Write holding registers from ``start``, all or none."""
        ...

    def identification(self) -> dict[int, str]:
        """The device identification objects by id (43 / 14)."""
        ...


def answer(pdu: bytes, tables: Tables) -> bytes:
    """The response PDU to ``pdu`` (an exception response when refused); b"" to none."""
    if not pdu:
        return b""
    function = pdu[0]
    try:
        if function not in tables.functions:
            raise ModbusError(ILLEGAL_FUNCTION)
        return bytes([function]) + _function(function, pdu[1:], tables)
    except ModbusError as error:
        return exception_pdu(function, error.code)


def _in_table(start: int, count: int) -> None:
    if start + count > ADDRESSES:
        raise ModbusError(ILLEGAL_ADDRESS)


def _read_words(tables: Tables, table: str, start: int, count: int) -> bytes:
    _in_table(start, count)
    words = np.asarray(tables.read_words(table, start, count)).astype(">u2")
    return bytes([2 * count]) + words.tobytes()


def _words(payload: bytes, count: int) -> list[int]:
    return list(struct.unpack(f">{count}H", payload))


def _function(function: int, data: bytes, tables: Tables) -> bytes:
    # a function, in the specification's order)
    if function in BIT_TABLE:
        start, count = fields(data, ">HH")
        if not 1 <= count <= READ_BITS:
            raise ModbusError(ILLEGAL_VALUE)
        _in_table(start, count)
        bits = np.asarray(tables.read_bits(BIT_TABLE[function], start, count))
        packed = np.packbits(bits != 0, bitorder="little")
        return bytes([len(packed)]) + packed.tobytes()
    if function in WORD_TABLE:
        start, count = fields(data, ">HH")
        if not 1 <= count <= READ_WORDS:
            raise ModbusError(ILLEGAL_VALUE)
        return _read_words(tables, WORD_TABLE[function], start, count)
    if function == Function.WRITE_SINGLE_COIL:
        address, value = fields(data, ">HH")
        if value not in (0xFF00, 0x0000):
            raise ModbusError(ILLEGAL_VALUE)
        tables.write_bits(address, [int(value == 0xFF00)])
        return data[:4]
    if function == Function.WRITE_SINGLE_REGISTER:
        address, value = fields(data, ">HH")
        tables.write_words(address, [value])
        return data[:4]
    if function == Function.WRITE_MULTIPLE_COILS:
        start, count, nbytes = fields(data, ">HHB")
        if not 1 <= count <= WRITE_COILS or nbytes != (count + 7) // 8 or (
                len(data) != 5 + nbytes):
            raise ModbusError(ILLEGAL_VALUE)
        _in_table(start, count)
        bits = np.unpackbits(np.frombuffer(data[5:], np.uint8), bitorder="little")[:count]
        tables.write_bits(start, [int(b) for b in bits])
        return data[:4]
    if function == Function.WRITE_MULTIPLE_REGISTERS:
        start, count, nbytes = fields(data, ">HHB")
        if not 1 <= count <= WRITE_REGISTERS or nbytes != 2 * count or (
                len(data) != 5 + nbytes):
            raise ModbusError(ILLEGAL_VALUE)
        _in_table(start, count)
        tables.write_words(start, _words(data[5:], count))
        return data[:4]
    if function == Function.READ_WRITE_REGISTERS:
        rstart, rcount, wstart, wcount, nbytes = fields(data, ">HHHHB")
        if not (1 <= rcount <= READ_WORDS and 1 <= wcount <= RW_REGISTERS
                and nbytes == 2 * wcount and len(data) == 9 + nbytes):
            raise ModbusError(ILLEGAL_VALUE)
        _read_words(tables, "holding_register", rstart, rcount)  # readable, or refused whole
        _in_table(wstart, wcount)
        tables.write_words(wstart, _words(data[9:], wcount))
        return _read_words(tables, "holding_register", rstart, rcount)
    if function == Function.ENCAPSULATED_INTERFACE:
        return _identification(data, tables.identification())
    raise ModbusError(ILLEGAL_FUNCTION)


def _identification(data: bytes, identity: dict[int, str]) -> bytes:
    if len(data) != 3:
        raise ModbusError(ILLEGAL_VALUE)
    mei, code, first = data
    if mei != MEI_READ_DEVICE_ID:
        raise ModbusError(ILLEGAL_FUNCTION)
    if not 1 <= code <= 4:
        raise ModbusError(ILLEGAL_VALUE)
    # no extended objects: code 3 streams the regular ones
    last = DEVICE_ID_BASIC_LAST if code == 1 else DEVICE_ID_REGULAR_LAST
    if code == 4:
        if first not in identity:
            raise ModbusError(ILLEGAL_ADDRESS)
        ids = [first]
    else:  # an object id outside the category restarts the stream at 0 (spec 6.21)
        first = first if first in identity and first <= last else 0
        ids = [i for i in range(first, last + 1) if i in identity]
    body = b"".join(bytes([i, len(identity[i])]) + identity[i].encode() for i in ids)
    # conformity 0x82: regular identification, stream and individual access
    return bytes([MEI_READ_DEVICE_ID, code, DEVICE_ID_CONFORMITY, 0x00, 0x00, len(ids)]) + body


def fields(data: bytes, layout: str) -> tuple[int, ...]:
    """Unpack the fixed fields of a request; a short or over-long one is a bad value (03)."""
    size = struct.calcsize(layout)
    if len(data) < size:
        raise ModbusError(ILLEGAL_VALUE)
    if layout in (">HH",) and len(data) != size:
        raise ModbusError(ILLEGAL_VALUE)
    return struct.unpack(layout, data[:size])


# ---------------------------------------------------------------- the relay's slave


class Writes(Protocol):
    def write(self, entries: list[tuple[Entry, int]]) -> int:
        """Apply writes of whole entries (raw value: the bit, the word, or the two words as
        one 32-bit integer, high word first); 0, or the exception code that refuses them all."""
        ...


class SlaveLogic:
    """Which address of which table is mapped, readable and writable, from the map."""

    functions = frozenset(Function)

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        self.entry_at: dict[str, np.ndarray] = {}
        self.entries: dict[str, list[Entry]] = {}
        for table in TABLES:
            entries = regmap.in_table(table)
            at = np.full(ADDRESSES, -1, dtype=np.int32)
            for k, e in enumerate(entries):
                at[e.address:e.address + e.width] = k
            self.entry_at[table] = at
            self.entries[table] = entries
        #: device identification objects: 0 VendorName, 1 ProductCode, 2 MajorMinorRevision
        #: (basic); 4 ProductName, 5 ModelName, 6 UserApplicationName (regular)
        self.identity = {0: VENDOR, 1: PRODUCT, 2: ".".join(map(str, firmware_version())),
                         4: "softrelay soft protection relay",
                         5: f"register map {regmap.version}, configuration "
                            f"0x{regmap.config_hash:08x}",
                         6: regmap.relay}

    def respond(self, pdu: bytes, image: dict[str, np.ndarray] | None, writes: Writes
                ) -> bytes:
        """The response PDU to ``pdu`` (an exception response when refused). ``image``: the
        register image of the newest published scan, None before the first (reads: 06)."""
        return answer(pdu, ImageTables(self, image, writes))

    # ------------------------------------------------------------ checks

    def mapped(self, table: str, start: int, count: int) -> None:
        if start + count > ADDRESSES or (self.entry_at[table][start:start + count] < 0).any():
            raise ModbusError(ILLEGAL_ADDRESS)

    def writable(self, table: str, start: int, count: int) -> list[Entry]:
        """The entries a write of ``count`` addresses at ``start`` covers, each whole."""
        self.mapped(table, start, count)
        at = self.entry_at[table][start:start + count]
        covered = [self.entries[table][k] for k in dict.fromkeys(at.tolist())]
        for e in covered:
            if "W" not in e.access or e.address < start or (
                    e.address + e.width > start + count):
                raise ModbusError(ILLEGAL_ADDRESS)
        return covered


class ImageTables:
    """The slave's ``Tables`` for one request: the map's addresses over one scan's register
    image (None before the first scan: reads answer 06), writes of whole entries to
    ``writes``."""

    functions = SlaveLogic.functions

    def __init__(self, logic: SlaveLogic, image: dict[str, np.ndarray] | None,
                 writes: Writes) -> None:
        self.logic = logic
        self.image = image
        self.writes = writes

    def _read(self, table: str, start: int, count: int) -> np.ndarray:
        self.logic.mapped(table, start, count)
        if self.image is None:
            raise ModbusError(SERVER_BUSY)
        return self.image[table][start:start + count]

    read_bits = read_words = _read

    def write_bits(self, start: int, bits: list[int]) -> None:
        covered = self.logic.writable("coil", start, len(bits))
        self._apply([(e, bits[e.address - start]) for e in covered])

    def write_words(self, start: int, words: list[int]) -> None:
        covered = self.logic.writable("holding_register", start, len(words))
        items = []
        for e in covered:
            k = e.address - start
            items.append((e, words[k] << 16 | words[k + 1] if e.width == 2 else words[k]))
        self._apply(items)

    def _apply(self, items: list[tuple[Entry, int]]) -> None:
        code = self.writes.write(items)
        if code:
            raise ModbusError(code)

    def identification(self) -> dict[int, str]:
        return self.logic.identity
