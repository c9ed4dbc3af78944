"""The Modbus protocol is written once (``modbus/protocol.py``): the compiled server's header
carries its numbers, it imports nothing of softrelay, and the slave and the simulated field
devices answer through the one PDU server (``modbus/pdu.py``), refusing a request alike."""

from __future__ import annotations

import ast
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softrelay.config import load
from softrelay.modbus import protocol
from softrelay.modbus.pdu import SlaveLogic, answer
from softrelay.modbus.register_image import empty_image
from softrelay.modbus.regmap import RegisterMap
from softrelay.sim.modbus_twin import TwinTables

from support.twins import tcp_bus, twin_server

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "ext/softrelay/modbus_protocol.h"


def header_defines() -> dict[str, int]:
    return {name: int(value, 0) for name, value in
            re.findall(r"^#define SR_(\w+) (\w+)", HEADER.read_text(), re.MULTILINE)}


def test_the_c_header_carries_the_protocols_numbers():
    """Every function code, exception code, limit and framing figure of the compiled server
    is ``modbus/protocol.py``'s, name for name and value for value; it answers every function
    the protocol names."""
    defines = header_defines()
    functions = {n[3:]: v for n, v in defines.items() if n.startswith("FC_")}
    exceptions = {n[3:]: v for n, v in defines.items() if n.startswith("EX_")}
    limits = {n[6:]: v for n, v in defines.items() if n.startswith("LIMIT_")}
    assert functions == {f.name: int(f) for f in protocol.Function}
    for name, value in exceptions.items():
        assert protocol.ExceptionCode[name] == value, name
    assert len(exceptions) >= 6 and len(limits) >= 9
    for name, value in limits.items():
        assert getattr(protocol, name) == value, name
    framing = {"EXCEPTION_BIT": protocol.EXCEPTION_BIT, "MBAP_HEADER": protocol.MBAP.size,
               "MBAP_PROTOCOL": protocol.MBAP_PROTOCOL,
               "MBAP_MIN_LENGTH": protocol.MBAP_MIN_LENGTH,
               "MBAP_MAX_LENGTH": protocol.MBAP_MAX_LENGTH, "MAX_PDU": protocol.MAX_PDU,
               "MAX_ADU": protocol.MAX_ADU}
    assert {n: defines[n] for n in framing} == framing
    c = (ROOT / "ext/softrelay/mbserver.c").read_text()
    assert "0x80" not in c and "0x0B" not in c and "0x0E" not in c  # named, not repeated


def test_the_protocol_imports_nothing_of_softrelay():
    tree = ast.parse((ROOT / "runtime/softrelay/modbus/protocol.py").read_text())
    named = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    named += [n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
              and n.module != "__future__"]
    assert not [m for m in named if m.startswith(("softrelay", "."))], named
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, softrelay.modbus.protocol; print(' '.join(sorted("
         "m for m in sys.modules if m.startswith('softrelay'))))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["softrelay", "softrelay.modbus", "softrelay.modbus.protocol"]


def aliases(path: Path) -> list[str]:
    """``name = Function.X`` (or ``ExceptionCode.X``, ``protocol.Function.X``) at the top of
    ``path``: a protocol name given again, as ``line: name``."""
    found = []
    for node in ast.parse(path.read_text()).body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Attribute) and (
                ast.unparse(value.value).split(".")[-1] in ("Function", "ExceptionCode")):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{node.lineno}: {ast.unparse(t)}" for t in targets]
    return found


def test_no_module_names_a_protocol_number_again(tmp_path):
    """Users name ``Function.READ_COILS`` from ``modbus/protocol.py``; no module (the PDU
    server included) keeps an alias of its own that could drift from it."""
    runtime = ROOT / "runtime" / "softrelay"
    found = {str(p.relative_to(ROOT)): aliases(p)
             for root in (runtime, ROOT / "tests", ROOT / "benchmarks")
             for p in sorted(root.rglob("*.py")) if p != runtime / "modbus" / "protocol.py"}
    assert not {p: a for p, a in found.items() if a}
    example = tmp_path / "m.py"
    example.write_text("from softrelay.modbus import protocol\nREAD_COILS = "
                       "protocol.Function.READ_COILS\nBUSY: int = ExceptionCode.SERVER_BUSY\n")
    assert aliases(example) == ["2: READ_COILS", "3: BUSY"]


def test_crc_and_rtu_framing_are_the_specifications():
    # the specification's example (Modbus over serial line, 6.2.2): 02 07 -> CRC 0x1241
    assert protocol.crc16(bytes([0x02, 0x07])) == 0x1241
    frame = protocol.rtu_frame(2, bytes([0x07]))
    assert frame == bytes([0x02, 0x07, 0x41, 0x12]) and protocol.crc16(frame) == 0
    buffer = bytearray(protocol.tcp_frame(7, 1, b"\x04\x00\x00\x00\x01")
                       + protocol.tcp_frame(8, 1, b"\x84\x02")[:5])
    assert protocol.split_tcp_frames(buffer) == [b"\x00\x07\x00\x00\x00\x06\x01\x04\x00\x00"
                                                 b"\x00\x01"]
    assert len(buffer) == 5  # the start of the next frame stays


@pytest.fixture(scope="module")
def twins():
    server = twin_server(tcp_bus())
    server.start_tcp()
    yield server
    server.stop()


def test_the_twins_answer_on_the_wire_what_the_one_pdu_server_answers(twins):
    """The twin server's bytes are ``pdu.answer``'s over the twin's tables: one server."""
    twin = twins.by_name["gw"]
    requests = [b"\x03\x0f\xa5\x00\x02", b"\x04\x00\x00\x00\x00", b"\x03\xff\xff\x00\x02",
                b"\x06\x0f\xa5\x00\x01", b"\x10\x0f\xa5\x00\x01\x02\x00\x5a", b"\x01\x00\x00"
                b"\x00\x01", b"\x2b\x0e\x01\x00", b"\x03\x00\x00\x00\x7e",
                b"\x04\x00\x00\x00\x7d", b"\x10\x0f\xa5\x00\x7c\x02\x00\x5a"]
    with socket.create_connection(("127.0.0.1", twins.port), timeout=5.0) as sock:
        for tid, request in enumerate(requests):
            expected = answer(request, TwinTables(twin))
            sock.sendall(protocol.tcp_frame(tid, twin.unit, request))
            got = b""
            while len(got) < 6 or len(got) < protocol.tcp_frame_length(got):
                more = sock.recv(512)
                assert more, f"the twin closed the connection at {request!r}"
                got += more
            assert got == protocol.tcp_frame(tid, twin.unit, expected), request


SLAVE = SlaveLogic(RegisterMap(load()))
IMAGE = empty_image(SLAVE.regmap)


class NoWrites:
    def write(self, entries):
        return 0


@pytest.mark.e2e
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(function=st.sampled_from([3, 4, 6, 16]), start=st.integers(0, 0xFFFF),
       count=st.integers(0, 0xFFFF), extra=st.binary(max_size=6), nbytes=st.integers(0, 255))
def test_the_slave_and_the_twins_refuse_a_malformed_request_alike(twins, function, start,
                                                                   count, extra, nbytes):
    """A quantity outside the protocol's limits, a byte count that does not match, a range
    that leaves the table, a short or long request: the same exception from both."""
    if function == 16:
        request = struct.pack(">BHHB", function, start, count, nbytes) + extra
    else:
        request = struct.pack(">BHH", function, start, count) + extra[:1]
    slave = SLAVE.respond(request, IMAGE, NoWrites())
    twin = answer(request, TwinTables(twins.by_name["meter"]))
    refused = {r[1] for r in (slave, twin) if protocol.is_exception(r)}
    if refused & {protocol.ILLEGAL_VALUE} or (
            protocol.is_exception(slave) and slave[1] == protocol.ILLEGAL_ADDRESS
            and start + max(count, 1) > protocol.ADDRESSES):
        assert slave == twin, (request, slave, twin)
