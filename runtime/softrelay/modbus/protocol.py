"""The Modbus protocol, written once (Modbus Application Protocol V1.1b3, Modbus over serial
line V1.02, Modbus messaging on TCP/IP V1.0b): function codes and exception codes, the
quantity limits of the requests, the TCP MBAP header, the RTU CRC and framing.

Everything that speaks Modbus takes its numbers from here: the slave's readable specification
and the twins' server (``modbus.pdu``), the simulated field devices (``sim``), the field side
(``field.modbus``), the bench's load client; the compiled server's header
(``ext/softrelay/modbus_protocol.h``) carries the same names and values, and a test holds the
two to each other. This module imports nothing of softrelay (the field may use it without
pulling in the slave).
"""

from __future__ import annotations

import enum
import struct


class Function(enum.IntEnum):
    """The function codes softrelay's servers answer (``SR_FC_<name>`` in the C header)."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16
    READ_WRITE_REGISTERS = 23
    ENCAPSULATED_INTERFACE = 43


class ExceptionCode(enum.IntEnum):
    """The exception codes of an exception response (``SR_EX_<name>`` in the C header)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02  #: illegal data address
    ILLEGAL_VALUE = 0x03  #: illegal data value
    DEVICE_FAILURE = 0x04  #: server device failure
    SERVER_BUSY = 0x06  #: server device busy
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED = 0x0B  #: gateway target device failed to respond

    @property
    def text(self) -> str:
        """The specification's words for the code."""
        return EXCEPTION_TEXT[self]


EXCEPTION_TEXT = {
    ExceptionCode.ILLEGAL_FUNCTION: "illegal function",
    ExceptionCode.ILLEGAL_ADDRESS: "illegal data address",
    ExceptionCode.ILLEGAL_VALUE: "illegal data value",
    ExceptionCode.DEVICE_FAILURE: "server device failure",
    ExceptionCode.SERVER_BUSY: "server device busy",
    ExceptionCode.GATEWAY_PATH_UNAVAILABLE: "gateway path unavailable",
    ExceptionCode.GATEWAY_TARGET_FAILED: "no answer behind the gateway",
}


def exception_text(code: int) -> str:
    """The words for an exception code; 'unknown' for one the specification does not name."""
    try:
        return EXCEPTION_TEXT[ExceptionCode(code)]
    except ValueError:
        return "unknown"


ILLEGAL_FUNCTION = ExceptionCode.ILLEGAL_FUNCTION
ILLEGAL_ADDRESS = ExceptionCode.ILLEGAL_ADDRESS
ILLEGAL_VALUE = ExceptionCode.ILLEGAL_VALUE
DEVICE_FAILURE = ExceptionCode.DEVICE_FAILURE
SERVER_BUSY = ExceptionCode.SERVER_BUSY
GATEWAY_PATH_UNAVAILABLE = ExceptionCode.GATEWAY_PATH_UNAVAILABLE
GATEWAY_TARGET_FAILED = ExceptionCode.GATEWAY_TARGET_FAILED
GATEWAY_NO_RESPONSE = GATEWAY_TARGET_FAILED  #: the twins' older name of 0x0B

EXCEPTION_BIT = 0x80  #: set in the function code of an exception response

# The quantity limits of the requests (``SR_LIMIT_<name>`` in the C header).
READ_BITS = 2000  #: 01 / 02: bits per read
READ_WORDS = 125  #: 03 / 04 (and the read of a 23): registers per read
WRITE_COILS = 1968  #: 15: coils per write
WRITE_REGISTERS = 123  #: 16: registers per write
RW_REGISTERS = 121  #: 23: registers written
ADDRESSES = 0x10000  #: addresses of a table: start + quantity may not pass it

# Read device identification (43 / 14)
MEI_READ_DEVICE_ID = 14
DEVICE_ID_CONFORMITY = 0x82  #: regular identification, stream and individual access
DEVICE_ID_BASIC_LAST, DEVICE_ID_REGULAR_LAST = 2, 6  #: the last object id of each category

# Modbus/TCP
MBAP = struct.Struct(">HHHB")  #: transaction id, protocol id (0), length, unit id
MBAP_PROTOCOL = 0  #: the protocol id of Modbus
MBAP_MIN_LENGTH, MBAP_MAX_LENGTH = 2, 254  #: the length field: unit id + PDU
MAX_PDU = 253
MAX_ADU = MBAP.size + MAX_PDU  #: 260


def exception_pdu(function: int, code: int) -> bytes:
    """The exception response to ``function``."""
    return bytes([function | EXCEPTION_BIT, code])


def is_exception(pdu: bytes) -> bool:
    """Whether a response PDU is an exception response."""
    return bool(pdu) and bool(pdu[0] & EXCEPTION_BIT)


def tcp_frame(transaction: int, unit: int, pdu: bytes) -> bytes:
    """A Modbus/TCP ADU: the MBAP header and the PDU."""
    return MBAP.pack(transaction, MBAP_PROTOCOL, len(pdu) + 1, unit) + pdu


def tcp_frame_length(buffer: bytes | bytearray) -> int | None:
    """Length of the Modbus/TCP frame at the head of ``buffer`` (its MBAP header says it);
    None until the header's length field has arrived."""
    if len(buffer) < 6:
        return None
    return 6 + struct.unpack_from(">H", buffer, 4)[0]


def split_tcp_frames(buffer: bytearray) -> list[bytes]:
    """Take the complete Modbus/TCP frames off the head of ``buffer`` (in place), in order;
    what is left is the start of the next one."""
    found = []
    while (size := tcp_frame_length(buffer)) is not None and len(buffer) >= size:
        found.append(bytes(buffer[:size]))
        del buffer[:size]
    return found


# Values in registers: 16-bit words, big-endian on the wire; a 32-bit value in two registers,
# high word first ("big" word order) unless a device says otherwise
VALUE_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
VALUE_FORMAT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def register_value(words, data_type: str, word_order: str = "big") -> float:
    """The value ``data_type`` codes in ``words`` (each 0..65535, in ``word_order``); raises
    ValueError on a wrong count of words or a word out of range."""
    if len(words) != VALUE_WIDTH[data_type]:
        raise ValueError(f"{data_type} takes {VALUE_WIDTH[data_type]} registers, got "
                         f"{len(words)}")
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"registers must be 0..65535: {list(words)}")
    ordered = list(words) if word_order == "big" else list(reversed(words))
    data = b"".join(struct.pack(">H", w) for w in ordered)
    return struct.unpack(VALUE_FORMAT[data_type], data)[0]


# Modbus RTU
def crc16(data: bytes) -> int:
    """The RTU CRC (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first. Over a
    frame with its CRC it is 0."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    """An RTU frame: address, PDU, CRC (low byte first)."""
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


RTU_BROADCAST = 0  #: the address a master broadcasts to: never answered


def rtu_request_length(buffer: bytes) -> int | None:
    """Length of the RTU request at the head of ``buffer`` for the functions a twin frames
    (03, 04, 06, 16); None until enough bytes are in to tell, 0 for another function (the
    caller drops the buffer)."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (Function.READ_HOLDING_REGISTERS, Function.READ_INPUT_REGISTERS,
                    Function.WRITE_SINGLE_REGISTER):
        return 8
    if function == Function.WRITE_MULTIPLE_REGISTERS:
        return None if len(buffer) < 7 else 9 + buffer[6]
    return 0
