"""Modbus PDUs answered from the register image: the readable specification of the slave.

``SlaveLogic.respond(pdu, image, writes)`` answers one request PDU (function code and data,
without MBAP header or RTU address and CRC) from one scan's register image, passing writes to
``writes`` (``modbus.writes.RelayWrites``). The compiled server answers exactly the same bytes;
tests hold it to this module.

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
from typing import Protocol

import numpy as np

from softrelay.modbus.regmap import TABLES, Entry, RegisterMap, firmware_version

# The names the compiled server's protocol header (ext/softrelay/modbus_protocol.h) carries
# too; a test holds the two to each other.
READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS = 1, 2, 3, 4
WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER = 5, 6
WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS, READ_WRITE_REGISTERS = 15, 16, 23
ENCAPSULATED_INTERFACE = 43
FUNCTIONS = (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS,
             WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_COILS,
             WRITE_MULTIPLE_REGISTERS, READ_WRITE_REGISTERS, ENCAPSULATED_INTERFACE)
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
SERVER_BUSY = 6  #: server device busy: no scan has published a snapshot yet (or, from the
#: compiled server, too many writes wait for the relay)
GATEWAY_TARGET_FAILED = 11  #: a unit id the slave does not serve (the network thread answers)
READ_BITS, READ_WORDS, WRITE_COILS, WRITE_REGISTERS, RW_REGISTERS = 2000, 125, 1968, 123, 121
MEI_READ_DEVICE_ID = 14  #: 43 / 14: read device identification
DEVICE_ID_CONFORMITY = 0x82  #: regular identification, stream and individual access
DEVICE_ID_BASIC_LAST, DEVICE_ID_REGULAR_LAST = 2, 6  #: the last object id of each category
BIT_TABLE = {READ_COILS: "coil", READ_DISCRETE_INPUTS: "discrete_input"}
WORD_TABLE = {READ_HOLDING_REGISTERS: "holding_register", READ_INPUT_REGISTERS: "input_register"}
VENDOR, PRODUCT = "softrelay project", "softrelay"


class Writes(Protocol):
    def write(self, entries: list[tuple[Entry, int]]) -> int:
        """Apply writes of whole entries (raw value: the bit, the word, or the two words as
        one 32-bit integer, high word first); 0, or the exception code that refuses them all."""
        ...


class ModbusError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class SlaveLogic:
    """Which address of which table is mapped, readable and writable, from the map."""

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        self.entry_at: dict[str, np.ndarray] = {}
        self.entries: dict[str, list[Entry]] = {}
        for table in TABLES:
            entries = regmap.in_table(table)
            at = np.full(65536, -1, dtype=np.int32)
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

    # ------------------------------------------------------------ checks

    def _mapped(self, table: str, start: int, count: int) -> None:
        if start + count > 65536 or (self.entry_at[table][start:start + count] < 0).any():
            raise ModbusError(ILLEGAL_ADDRESS)

    @staticmethod
    def _published(image) -> None:
        if image is None:
            raise ModbusError(SERVER_BUSY)

    def _writable(self, table: str, start: int, count: int) -> list[Entry]:
        """The entries a write of ``count`` addresses at ``start`` covers, each whole."""
        self._mapped(table, start, count)
        at = self.entry_at[table][start:start + count]
        covered = [self.entries[table][k] for k in dict.fromkeys(at.tolist())]
        for e in covered:
            if "W" not in e.access or e.address < start or (
                    e.address + e.width > start + count):
                raise ModbusError(ILLEGAL_ADDRESS)
        return covered

    # ------------------------------------------------------------ the functions

    def respond(self, pdu: bytes, image: dict[str, np.ndarray] | None, writes: Writes
                ) -> bytes:
        """The response PDU to ``pdu`` (an exception response when refused). ``image``: the
        register image of the newest published scan, None before the first (reads: 06)."""
        if not pdu:
            return b""
        function = pdu[0]
        try:
            return bytes([function]) + self._function(function, pdu[1:], image, writes)
        except ModbusError as error:
            return bytes([function | 0x80, error.code])

    def _function(self, function: int, data: bytes, image, writes: Writes) -> bytes:
        if function in BIT_TABLE:
            start, count = fields(data, ">HH")
            if not 1 <= count <= READ_BITS:
                raise ModbusError(ILLEGAL_VALUE)
            table = BIT_TABLE[function]
            self._mapped(table, start, count)
            self._published(image)
            packed = np.packbits(image[table][start:start + count] != 0, bitorder="little")
            return bytes([len(packed)]) + packed.tobytes()
        if function in WORD_TABLE:
            start, count = fields(data, ">HH")
            if not 1 <= count <= READ_WORDS:
                raise ModbusError(ILLEGAL_VALUE)
            return self._read_words(WORD_TABLE[function], start, count, image)
        if function == WRITE_SINGLE_COIL:
            address, value = fields(data, ">HH")
            if value not in (0xFF00, 0x0000):
                raise ModbusError(ILLEGAL_VALUE)
            covered = self._writable("coil", address, 1)
            self._apply(writes, [(covered[0], int(value == 0xFF00))])
            return data[:4]
        if function == WRITE_SINGLE_REGISTER:
            address, value = fields(data, ">HH")
            covered = self._writable("holding_register", address, 1)
            self._apply(writes, [(covered[0], value)])
            return data[:4]
        if function == WRITE_MULTIPLE_COILS:
            start, count, nbytes = fields(data, ">HHB")
            if not 1 <= count <= WRITE_COILS or nbytes != (count + 7) // 8 or (
                    len(data) != 5 + nbytes):
                raise ModbusError(ILLEGAL_VALUE)
            covered = self._writable("coil", start, count)
            bits = np.unpackbits(np.frombuffer(data[5:], np.uint8), bitorder="little")[:count]
            self._apply(writes, [(e, int(bits[e.address - start])) for e in covered])
            return data[:4]
        if function == WRITE_MULTIPLE_REGISTERS:
            start, count, nbytes = fields(data, ">HHB")
            if not 1 <= count <= WRITE_REGISTERS or nbytes != 2 * count or (
                    len(data) != 5 + nbytes):
                raise ModbusError(ILLEGAL_VALUE)
            self._write_words(start, count, data[5:], writes)
            return data[:4]
        if function == READ_WRITE_REGISTERS:
            rstart, rcount, wstart, wcount, nbytes = fields(data, ">HHHHB")
            if not (1 <= rcount <= READ_WORDS and 1 <= wcount <= RW_REGISTERS
                    and nbytes == 2 * wcount and len(data) == 9 + nbytes):
                raise ModbusError(ILLEGAL_VALUE)
            self._mapped("holding_register", rstart, rcount)
            self._published(image)
            self._write_words(wstart, wcount, data[9:], writes)
            return self._read_words("holding_register", rstart, rcount, image)
        if function == ENCAPSULATED_INTERFACE:
            return self._identification(data)
        raise ModbusError(ILLEGAL_FUNCTION)

    def _read_words(self, table: str, start: int, count: int, image) -> bytes:
        self._mapped(table, start, count)
        self._published(image)
        words = image[table][start:start + count].astype(">u2")
        return bytes([2 * count]) + words.tobytes()

    def _write_words(self, start: int, count: int, payload: bytes, writes: Writes) -> None:
        covered = self._writable("holding_register", start, count)
        words = struct.unpack(f">{count}H", payload)
        items = []
        for e in covered:
            k = e.address - start
            items.append((e, words[k] << 16 | words[k + 1] if e.width == 2 else words[k]))
        self._apply(writes, items)

    @staticmethod
    def _apply(writes: Writes, items: list[tuple[Entry, int]]) -> None:
        code = writes.write(items)
        if code:
            raise ModbusError(code)

    def _identification(self, data: bytes) -> bytes:
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
            if first not in self.identity:
                raise ModbusError(ILLEGAL_ADDRESS)
            ids = [first]
        else:  # an object id outside the category restarts the stream at 0 (spec 6.21)
            first = first if first in self.identity and first <= last else 0
            ids = [i for i in range(first, last + 1) if i in self.identity]
        body = b"".join(bytes([i, len(self.identity[i])]) + self.identity[i].encode()
                        for i in ids)
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
