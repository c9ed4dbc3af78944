"""Modbus frames at the byte level (Modbus Application Protocol V1.1b3, Modbus over serial
line V1.02): the PDUs a register server answers, the TCP MBAP header and the RTU CRC.

Used by the simulated field devices (``twin``), which must answer exactly what a real device
sends, garbage included. The relay's master side talks through pymodbus.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
DEVICE_FAILURE = 0x04
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_NO_RESPONSE = 0x0B

READ_HOLDING, READ_INPUT, WRITE_SINGLE, WRITE_MULTIPLE = 0x03, 0x04, 0x06, 0x10
MBAP = struct.Struct(">HHHB")  #: transaction id, protocol id (0), length, unit id


def crc16(data: bytes) -> int:
    """The RTU CRC (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


def exception_pdu(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


# A register server: (table, start, count) -> words, or an exception code; (start, values) ->
# None or an exception code.
ReadRegisters = Callable[[str, int, int], "list[int] | int"]
WriteRegisters = Callable[[int, list[int]], "int | None"]


def answer(pdu: bytes, read: ReadRegisters, write: WriteRegisters) -> bytes:
    """The response PDU to a request PDU (FC03, FC04, FC06, FC16; others: exception 01)."""
    if not pdu:
        return exception_pdu(0, ILLEGAL_FUNCTION)
    function = pdu[0]
    if function in (READ_HOLDING, READ_INPUT):
        if len(pdu) != 5:
            return exception_pdu(function, ILLEGAL_VALUE)
        start, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            return exception_pdu(function, ILLEGAL_VALUE)
        if start + count > 0x10000:
            return exception_pdu(function, ILLEGAL_ADDRESS)
        words = read("holding" if function == READ_HOLDING else "input", start, count)
        if isinstance(words, int):
            return exception_pdu(function, words)
        return bytes([function, 2 * count]) + struct.pack(f">{count}H", *words)
    if function == WRITE_SINGLE:
        if len(pdu) != 5:
            return exception_pdu(function, ILLEGAL_VALUE)
        start, value = struct.unpack(">HH", pdu[1:5])
        code = write(start, [value])
        return exception_pdu(function, code) if code else pdu
    if function == WRITE_MULTIPLE:
        if len(pdu) < 6:
            return exception_pdu(function, ILLEGAL_VALUE)
        start, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= 123 or nbytes != 2 * count or len(pdu) != 6 + nbytes:
            return exception_pdu(function, ILLEGAL_VALUE)
        if start + count > 0x10000:
            return exception_pdu(function, ILLEGAL_ADDRESS)
        code = write(start, list(struct.unpack(f">{count}H", pdu[6:])))
        return exception_pdu(function, code) if code else pdu[:5]
    return exception_pdu(function, ILLEGAL_FUNCTION)


def rtu_request_length(buffer: bytes) -> int | None:
    """Length of the RTU request at the head of ``buffer``; None until enough bytes are in to
    tell, 0 for a function this server does not frame (the caller drops the buffer)."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (READ_HOLDING, READ_INPUT, WRITE_SINGLE):
        return 8
    if function == WRITE_MULTIPLE:
        return None if len(buffer) < 7 else 9 + buffer[6]
    return 0
