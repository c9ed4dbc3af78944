"""The slave's PDUs (the readable specification the compiled server is held to): reads from one
scan's image, every exception the Modbus specification prescribes, and what writes do."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softrelay.config import load
from softrelay.core import ProtectionCore
from softrelay.modbus.authority import Authority
from softrelay.modbus.event_window import EVENT_WINDOW, WINDOW
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.register_image import RELAY, RegisterImage, empty_image
from softrelay.modbus.regmap import RegisterMap
from softrelay.modbus.writes import RelayWrites
from softrelay.relay.commands import CommandQueue
from softrelay.relay.settings_changes import SettingsQueue
from softrelay.supervision.links import LINK

CONFIG = load()
MAP = RegisterMap(CONFIG)
LOGIC = SlaveLogic(MAP)
CODE = 0x5EC0_0001


class Relay:
    """The parts a write reaches, without a scan: queues, the access codes, recorded events.
    Commands are at level 0 here (what they do is tested; who may: test_authority), settings
    need the engineer's code ``CODE``."""

    def __init__(self) -> None:
        thermal = CONFIG.thermal_points
        busbar = CONFIG.busbar_points
        self.events: list[tuple] = []
        record = lambda *a: self.events.append(a)  # noqa: E731
        self.commands = CommandQueue([p.name for p in thermal], record=record)
        self.settings = SettingsQueue([(p.name, p.settings) for p in thermal],
                                      [(p.name, p.settings) for p in busbar], record)
        self.t = [0.0]
        self.unlock = Authority({1: None, 2: CODE}, 10.0, {
            "reset": 0, "acknowledge": 0, "preset": 0, "clear_statistics": 0, "settings": 2},
            clock=lambda: self.t[0], record=record)
        self.writes = RelayWrites(self.commands, self.settings, self.unlock, record)
        core = ProtectionCore([p.settings for p in thermal], [p.settings for p in busbar],
                              window_length=64, samples_per_cycle=32)
        core.thermal_outputs["theta"][0] = 0.75
        core.thermal_outputs["flags"][0] = 0b101  # trip, alarm1
        self.image = empty_image(MAP)
        RegisterImage(MAP).fill({
            "thermal_outputs": core.thermal_outputs, "thermal_inputs": core.thermal_inputs,
            "thermal_state": core.thermal_state, "thermal_settings": core.thermal_settings,
            "busbar_outputs": core.busbar_outputs, "busbar_settings": core.busbar_settings,
            "relay": np.zeros(1, RELAY), "events": np.zeros(WINDOW, EVENT_WINDOW),
            "links": np.zeros(len(CONFIG.buses), LINK)}, self.image)

    def ask(self, *fields: int | bytes, layout: str | None = None) -> bytes:
        pdu = fields[0] if isinstance(fields[0], bytes) else struct.pack(layout, *fields)
        return LOGIC.respond(pdu, self.image, self.writes)

    def pending(self) -> list:
        return list(self.commands._pending)


def f32(value: float) -> tuple[int, int]:
    return struct.unpack(">HH", struct.pack(">f", value))


A = MAP.get
P = MAP.get("motor1.theta").address  #: motor1's block
K2 = MAP.get("motor1.k2").address  #: a float32 setting


def test_reads_return_the_images_words_big_endian():
    r = Relay()
    theta = A("motor1.theta").address
    answer = r.ask(4, theta, 2, layout=">BHH")
    assert answer[:2] == bytes([4, 4])
    assert struct.unpack(">f", answer[2:])[0] == 0.75
    k2 = A("motor1.k2").address
    answer = r.ask(3, k2, 2, layout=">BHH")
    assert struct.unpack(">f", answer[2:])[0] == 3.0


def test_bits_are_packed_lsb_first():
    r = Relay()
    answer = r.ask(2, A("motor1.trip", "discrete_input").address, 10, layout=">BHH")
    assert answer == bytes([2, 2, 0b0000_0101, 0])  # trip and alarm1, of 10 bits
    answer = r.ask(1, A("motor1.reset").address, 2, layout=">BHH")
    assert answer == bytes([1, 1, 0])  # commands read 0


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (struct.pack(">BHH", 3, K2, 0), 3),  # quantity 0
        (struct.pack(">BHH", 4, P, 126), 3),  # over 125 registers
        (struct.pack(">BHH", 1, P, 2001), 3),  # over 2000 bits
        (struct.pack(">BHH", 4, 96, 1), 2),  # an unmapped address
        (struct.pack(">BHH", 4, P, 48), 2),  # runs into the gap after the point's values
        (struct.pack(">BHH", 3, 65535, 2), 2),  # past the end of the table
        (struct.pack(">BHHH", 4, P, 2, 0), 3),  # a longer request than the function's
        (struct.pack(">BH", 4, P), 3),  # a truncated request
        (bytes([7]), 1),  # read exception status: not supported
        (bytes([0x41, 0, 0]), 1),  # no such function
        (struct.pack(">BHH", 5, P, 0x1234), 3),  # a coil is 0xFF00 or 0x0000
        (struct.pack(">BHH", 5, 50, 0xFF00), 2),  # no coil there
        (struct.pack(">BHH", 6, K2, 1), 2),  # half of a float32 setting
        (struct.pack(">BHH", 6, MAP.get("motor2.input_mode").address, 1), 2),  # read-only
        (struct.pack(">BHHBH", 16, K2, 1, 3, 0), 3),  # byte count does not match
        (struct.pack(">BHHB", 16, K2, 124, 248) + bytes(248), 3),  # over 123 registers
        (struct.pack(">BHHB", 15, P, 1969, 247) + bytes(247), 3),  # over 1968 coils
        (struct.pack(">BHHHHB", 23, K2, 126, K2, 2, 4) + bytes(4), 3),  # reads > 125
        (struct.pack(">BHHHHB", 23, K2, 2, K2, 122, 244) + bytes(244), 3),  # writes > 121
        (bytes([43, 0x0D, 1, 0]), 1),  # an MEI type other than 14
        (bytes([43, 0x0E, 5, 0]), 3),  # read device id code 5
        (bytes([43, 0x0E, 4, 0x55]), 2),  # no object 0x55
    ],
)
def test_refusals_carry_the_specifications_exception_code(pdu, code):
    r = Relay()
    assert r.ask(pdu) == bytes([pdu[0] | 0x80, code])
    assert r.pending() == [] and not r.settings._pending


def test_device_identification_streams_and_gives_single_objects():
    r = Relay()
    answer = r.ask(bytes([43, 0x0E, 1, 0]))
    assert answer[:7] == bytes([43, 0x0E, 1, 0x82, 0, 0, 3])
    objects, rest = {}, answer[7:]
    while rest:
        objects[rest[0]] = rest[2:2 + rest[1]].decode()
        rest = rest[2 + rest[1]:]
    assert objects == {0: "softrelay project", 1: "softrelay", 2: "0.1.0"}
    single = r.ask(bytes([43, 0x0E, 4, 6]))
    assert single[6:] == bytes([1, 6, 4]) + b"demo"


def test_command_coils_queue_commands_for_the_next_scan():
    r = Relay()
    reset = A("motor1.reset").address
    assert r.ask(5, reset, 0xFF00, layout=">BHH") == struct.pack(">BHH", 5, reset, 0xFF00)
    assert r.ask(5, reset, 0x0000, layout=">BHH") == struct.pack(">BHH", 5, reset, 0)
    (request,) = r.pending()
    assert (request.kind, request.points) == ("reset", ("motor1",))
    assert request.source.startswith("modbus")
    r.commands._pending.clear()
    assert r.ask(15, reset, 2, 1, 0b11, layout=">BHHBB") == struct.pack(">BHH", 15, reset, 2)
    assert [(q.kind, q.points) for q in r.pending()] == [("reset", ("motor1",)),
                                                          ("acknowledge", ("motor1",))]
    r.commands._pending.clear()
    r.ask(5, A("relay.reset_all").address, 0xFF00, layout=">BHH")
    assert [(q.kind, q.points) for q in r.pending()] == [("reset", ())]


def test_preset_theta_is_a_float_from_0_to_10():
    r = Relay()
    at = A("motor2.preset_theta").address
    assert r.ask(16, at, 2, 4, *f32(0.5), layout=">BHHBHH") == struct.pack(">BHH", 16, at, 2)
    (request,) = r.pending()
    assert (request.kind, request.points, request.value) == ("preset", ("motor2",), 0.5)
    assert r.ask(16, at, 2, 4, *f32(12.0), layout=">BHHBHH") == bytes([0x90, 3])
    assert r.ask(16, at, 2, 4, *f32(float("nan")), layout=">BHHBHH") == bytes([0x90, 3])


def test_settings_need_the_unlock_code_and_validate_like_the_configuration():
    r = Relay()
    k2 = A("motor1.k2").address
    write_k2 = (16, k2, 2, 4, *f32(4.0))
    assert r.ask(*write_k2, layout=">BHHBHH") == bytes([0x90, 1])  # level 0: refused
    unlock = A("relay.unlock").address
    assert r.ask(16, unlock, 2, 4, 0x1234, 0x5678, layout=">BHHBHH") == bytes([0x90, 1])
    assert any("wrong code" in e[2] for e in r.events)
    assert not any(f"{CODE}" in str(e) or f"{CODE:x}" in str(e) for e in r.events)
    assert r.ask(16, unlock, 2, 4, CODE >> 16, CODE & 0xFFFF, layout=">BHHBHH")[0] == 16
    assert r.unlock.engineer_held
    assert r.ask(*write_k2, layout=">BHHBHH")[0] == 16
    (point, settings, source), = r.settings._pending
    assert point == "motor1" and settings.k2 == 4.0 and source.startswith("modbus")
    # alarm 1 above alarm 2: refused, with the loader's reason recorded
    al1 = A("motor1.theta_al1").address
    assert r.ask(16, al1, 2, 4, *f32(1.1), layout=">BHHBHH") == bytes([0x90, 3])
    assert "theta_al1 (1.1) must be below theta_al2" in r.events[-1][2]
    # two settings in one request: validated together (al2 first raised, then al1)
    both = (16, al1, 4, 8, *f32(1.1), *f32(1.15))
    assert r.ask(*both, layout=">BHHBHHHH")[0] == 16
    r.t[0] = 601.0  # ten minutes on: locked again
    assert r.ask(*write_k2, layout=">BHHBHH") == bytes([0x90, 1])


def test_read_write_multiple_writes_first_then_reads_the_image():
    r = Relay()
    r.ask(16, A("relay.unlock").address, 2, 4, CODE >> 16, CODE & 0xFFFF, layout=">BHHBHH")
    k2 = A("motor1.k2").address
    answer = r.ask(23, k2, 2, k2, 2, 4, *f32(5.0), layout=">BHHHHBHH")
    assert answer[:2] == bytes([23, 4])
    assert struct.unpack(">f", answer[2:])[0] == 3.0  # the image is this scan's; k2 is queued
    assert r.settings._pending[0][1].k2 == 5.0


@pytest.mark.e2e
@given(st.binary(min_size=1, max_size=260))
@settings(max_examples=400, deadline=None)
def test_any_pdu_gets_a_response_or_an_exception_never_an_error(pdu):
    r = Relay()
    answer = r.ask(pdu)
    assert answer[0] in (pdu[0], pdu[0] | 0x80)
    if answer[0] & 0x80:
        assert len(answer) == 2 and answer[1] in (1, 2, 3, 4)


@pytest.mark.e2e
@given(st.sampled_from([1, 2, 3, 4]), st.integers(0, 65535), st.integers(0, 2100))
@settings(max_examples=300, deadline=None)
def test_reads_of_any_range(function, start, count):
    r = Relay()
    answer = r.ask(function, start, count, layout=">BHH")
    limit = 2000 if function <= 2 else 125
    if not 1 <= count <= limit:
        assert answer == bytes([function | 0x80, 3])
    elif answer[0] == function:
        size = (count + 7) // 8 if function <= 2 else 2 * count
        assert answer[1] == size and len(answer) == 2 + size
    else:
        assert answer == bytes([function | 0x80, 2])
