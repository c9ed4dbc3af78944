"""Simulated Modbus field devices: each answers its datasheet's registers, fed by the plant.

A ``ModbusTwin`` is one unit id: reads of its mapped registers return the plant's values coded
as the device codes them (``registers.encode``); an unmapped address is exception 02, a write
to a register it does not keep is exception 02, an out-of-range write exception 03, as a real
device answers. ``TwinTables`` hands a twin's registers to the one PDU server
(``modbus.pdu.answer``, the slave's too), which answers 03, 04, 06 and 16 from them.
``GatewayTwin`` is the seed's thermal gateway: it keeps emissivity x 100 (4005) and the
scaling (4006) and codes its temperatures with them, so a gateway left at its factory
emissivity reads a surface wrongly, as the real one does.

Faults (the seed's troubleshooting matrix) are injected per quantity (``<device>.<quantity>``),
per device (``<device>``) or for the whole server (``*``), see ``twin_server``; the ``modbus``
medium's table (``catalog.faults.MEDIA``) says where each acts. Value faults live here, as
``devices.faulty_value`` applies them: ``sentinel`` (the raw -32768 the device codes),
``stuck``, ``noisy``. (``garbage`` is a fault of the bytes on a Modbus wire: the server's.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from softrelay.catalog.faults import MEDIA, FaultKind
from softrelay.field.modbus.profiles import EMISSIVITY_REGISTER, SCALING_REGISTER, SENTINEL
from softrelay.field.modbus.registers import Register, encode
from softrelay.modbus.pdu import ModbusError
from softrelay.modbus.protocol import ILLEGAL_ADDRESS, ILLEGAL_VALUE, Function
from softrelay.sim.devices import Fault, faulty_value

#: where each fault acts on a Modbus bus (TCP or RTU): the twin's value faults, the server's
#: transaction and wire faults
MEDIUM = MEDIA["modbus"]


class ModbusTwin:
    def __init__(self, name: str, unit: int, registers: dict[str, Register],
                 feeds: dict[str, Callable[[], float]], seed: int = 1) -> None:
        """``feeds``: quantity -> the engineering value it should read now (unfed: 0)."""
        self.name = name
        self.unit = unit
        self.registers = registers
        self.feeds = feeds
        self.kept: dict[int, int] = {}  #: holding registers the device stores (writable)
        self.limits: dict[int, tuple[int, int]] = {}
        self.value_faults: dict[str, Fault] = {}  #: quantity or '*' -> fault
        self.rng = np.random.default_rng(seed)
        self.requests = 0  #: requests addressed to it (counted by the server on arrival)
        self._cells: dict[tuple[str, int], tuple[str, int]] = {}
        # Where quantities share registers (a meter's phase angle, and the phasor angle derived
        # from it), the one the plant feeds codes them.
        for quantity, reg in sorted(registers.items(), key=lambda item: item[0] in feeds):
            for k in range(reg.count):
                self._cells[(reg.table, reg.address + k)] = (quantity, k)

    def engineering(self, quantity: str) -> float:
        feed = self.feeds.get(quantity)
        return feed() if feed is not None else 0.0

    def raw(self, quantity: str) -> float:
        """The raw register value of ``quantity`` now, faults applied."""
        reg = self.registers[quantity]
        fault = self.value_faults.get(quantity) or self.value_faults.get("*")
        if fault is not None and fault.kind == FaultKind.SENTINEL:
            return SENTINEL  # the device's code for "no reading", not a scaled value
        value = faulty_value(fault, self.engineering(quantity), self.rng)
        return (value - reg.offset) / reg.scale if reg.scale else 0.0

    def read(self, table: str, start: int, count: int) -> list[int] | int:
        words: list[int] = []
        coded: dict[str, list[int]] = {}
        for address in range(start, start + count):
            if table == "holding" and address in self.kept:
                words.append(self.kept[address])
                continue
            cell = self._cells.get((table, address))
            if cell is None:
                return ILLEGAL_ADDRESS
            quantity, k = cell
            if quantity not in coded:
                reg = self.registers[quantity]
                raw = self.raw(quantity)
                if not math.isfinite(raw) and reg.data_type != "float32":
                    raw = SENTINEL
                coded[quantity] = encode(raw, reg.data_type, reg.word_order)
            words.append(coded[quantity][k])
        return words

    def write(self, start: int, values: list[int]) -> int | None:
        for address, value in zip(range(start, start + len(values)), values, strict=True):
            if address not in self.kept:
                return ILLEGAL_ADDRESS
            lo, hi = self.limits.get(address, (0, 0xFFFF))
            if not lo <= value <= hi:
                return ILLEGAL_VALUE
        for address, value in zip(range(start, start + len(values)), values, strict=True):
            self.kept[address] = value
        return None


class TwinTables:
    """A twin's registers as the PDU server's ``Tables`` (``modbus.pdu``): the functions a
    field device of ours answers, its ``read`` and ``write`` (looked up at each request, so a
    test may stand in for them), their exception codes raised."""

    functions: frozenset[int] = frozenset({
        Function.READ_HOLDING_REGISTERS, Function.READ_INPUT_REGISTERS,
        Function.WRITE_SINGLE_REGISTER, Function.WRITE_MULTIPLE_REGISTERS})
    TABLE: ClassVar[dict[str, str]] = {"holding_register": "holding", "input_register": "input"}

    def __init__(self, twin: ModbusTwin) -> None:
        self.twin = twin

    def read_words(self, table: str, start: int, count: int) -> list[int]:
        words = self.twin.read(self.TABLE[table], start, count)
        if isinstance(words, int):
            raise ModbusError(words)
        return words

    def write_words(self, start: int, words: list[int]) -> None:
        code = self.twin.write(start, words)
        if code:
            raise ModbusError(code)

    def read_bits(self, table: str, start: int, count: int) -> list[int]:
        raise ModbusError(ILLEGAL_ADDRESS)  # never asked: no bit function is answered

    def write_bits(self, start: int, bits: list[int]) -> None:
        raise ModbusError(ILLEGAL_ADDRESS)

    def identification(self) -> dict[int, str]:
        return {}


class GatewayTwin(ModbusTwin):
    """The seed's thermal gateway: IR channels coded with the emissivity and scaling it keeps."""

    def __init__(self, name: str, unit: int, registers: dict[str, Register],
                 feeds: dict[str, Callable[[], float]], surface_emissivity: float = 0.55,
                 factory_emissivity: int = 95, factory_scaling: int = 0, seed: int = 1) -> None:
        super().__init__(name, unit, registers, feeds, seed)
        self.surface_emissivity = surface_emissivity
        self.kept = {EMISSIVITY_REGISTER: factory_emissivity, SCALING_REGISTER: factory_scaling}
        self.limits = {EMISSIVITY_REGISTER: (10, 100), SCALING_REGISTER: (0, 3)}

    def engineering(self, quantity: str) -> float:
        value = super().engineering(quantity)
        if not quantity.startswith("ch"):
            return value
        # What an IR sensor set to emissivity e_set reports for a surface of emissivity e.
        e_set = self.kept[EMISSIVITY_REGISTER] / 100.0
        kelvin = value + 273.15
        return (self.surface_emissivity / e_set * kelvin ** 4) ** 0.25 - 273.15

    def raw(self, quantity: str) -> float:
        raw = super().raw(quantity)
        if quantity.startswith("ch") and raw != SENTINEL:
            # the gateway codes with the scaling it keeps, not the one the master assumes
            reg = self.registers[quantity]
            raw = raw * reg.scale * 10.0 ** self.kept[SCALING_REGISTER]
        return raw


def twins_for(bus, plant_value: Callable[[str], float] | None) -> list[ModbusTwin]:
    """The simulated devices of a configured Modbus bus, each quantity fed by the plant address
    its ``simulate`` entry names (unfed quantities read 0, unfed gateway channels 25 C)."""
    from softrelay.field.modbus.profiles import register_map

    twins: list[ModbusTwin] = []
    for device in bus.devices:
        feeds: dict[str, Callable[[], float]] = {}
        for quantity, address in device.simulate.items():
            if plant_value is None:
                raise ValueError(f"bus {bus.name!r} is simulated but there is no plant")
            feeds[quantity] = functools.partial(plant_value, address)
        registers = register_map(device)
        if device.profile == "thermal_gateway":
            for k in range(device.channels):
                feeds.setdefault(f"ch{k + 1}", lambda: 25.0)
            twins.append(GatewayTwin(device.name, device.unit, registers, feeds))
        else:
            twins.append(ModbusTwin(device.name, device.unit, registers, feeds))
    return twins
