"""The cross-references of a configuration: names that must tie up across sections.

The models check one object at a time; these checks see the whole file. Each is a small
function ``check(config) -> [(key path, reason), ...]`` that can be run (and tested) alone;
``CHECKS`` is their order, and ``references`` runs them in it, so the errors come out in the
order of the file's subjects: SNMP flags, duplicate names, signal addresses, the points'
signals, the outputs' flags, GPIO pins, Modbus groups, the inputs' points, what the buses
need, the plant's faults and coils.

Reads the configuration only (and the catalog's chip facts); never opens anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from softrelay.catalog.chips import CHIP_QUANTITIES, REFUSED_ON_CHIP
from softrelay.catalog.faults import device_fault_refusal, fault_refusal
from softrelay.catalog.profiles import device_quantities
from softrelay.config.buses import ModbusRtuBus, ModbusTcpBus, SpiBus, adc_problems
from softrelay.config.pins import gpio_pin
from softrelay.config.points import BUSBAR_FLAGS, THERMAL_FLAGS, flag_of, window_signals_of
from softrelay.config.relay import RelayConfig

#: (key path, reason): one thing that does not tie up
Problem = tuple[tuple, str]
Check = Callable[[RelayConfig], list[Problem]]

MODBUS_KINDS = ("modbus_tcp", "modbus_rtu")
CHIP_KINDS = ("i2c", "spi")


def by_name(items: Iterable) -> dict:
    """Name -> item (of items that share a name, the last: ``unique_names`` reports them)."""
    return {item.name: item for item in items}


def snmp_flags(config: RelayConfig) -> list[Problem]:
    """Every flag SNMP traps on is a thermal or a busbar flag."""
    if config.snmp is None:
        return []
    return [(("snmp", "flags", i), f"{flag!r} is no flag (thermal: "
             f"{', '.join(THERMAL_FLAGS)}; busbar: {', '.join(BUSBAR_FLAGS)})")
            for i, flag in enumerate(config.snmp.flags)
            if flag not in THERMAL_FLAGS and flag not in BUSBAR_FLAGS]


def unique_names(config: RelayConfig) -> list[Problem]:
    """No two buses, signals, points, outputs or inputs share a name."""
    errors: list[Problem] = []
    for section in ("buses", "signals", "points", "outputs", "inputs"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(config, section)):
            if item.name in seen:
                errors.append(((section, i, "name"), f"{item.name!r} is already the name "
                               f"of {section}[{seen[item.name]}]"))
            else:
                seen[item.name] = i
    return errors


def signal_addresses(config: RelayConfig) -> list[Problem]:
    """Every signal names a bus, and a quantity on it: '<sensor>.<quantity>' of a chip on an
    I2C or SPI bus, '<device>.<quantity>' of a Modbus device (its profile's or its own
    registers)."""
    errors: list[Problem] = []
    buses = by_name(config.buses)
    # bus -> device -> its quantities
    registers = {b.name: {d.name: device_quantities(d.profile, d.channels,
                                                    (r.name for r in d.registers))
                          for d in b.devices}
                 for b in config.buses if isinstance(b, ModbusTcpBus | ModbusRtuBus)}
    for i, signal in enumerate(config.signals):
        bus = buses.get(signal.bus)
        if bus is None:
            errors.append((("signals", i, "bus"), f"no bus named {signal.bus!r}"))
        elif bus.kind in CHIP_KINDS:
            sensors = by_name(bus.sensors)
            name, _, quantity = signal.address.rpartition(".")
            sensor = sensors.get(name)
            if sensor is None or quantity not in CHIP_QUANTITIES[sensor.chip]:
                known = ", ".join(f"{s.name}.{q}" for s in sensors.values()
                                  for q in CHIP_QUANTITIES[s.chip])
                errors.append((("signals", i, "address"),
                               f"{signal.address!r} is not on bus {signal.bus!r} ({known})"))
        elif bus.kind in MODBUS_KINDS:
            devices = registers[signal.bus]
            name, _, quantity = signal.address.partition(".")
            if name not in devices:
                errors.append((("signals", i, "address"),
                               f"{signal.address!r}: bus {signal.bus!r} has no device "
                               f"{name!r} (devices: {', '.join(devices)})"))
            elif quantity not in devices[name]:
                errors.append((("signals", i, "address"),
                               f"{signal.address!r}: device {name!r} has no register "
                               f"{quantity!r} ({', '.join(devices[name])})"))
    return errors


def point_signals(config: RelayConfig) -> list[Problem]:
    """Every signal a point reads exists; a sampled point's 'samples' is a sample window,
    and a window is read as 'samples' only."""
    errors: list[Problem] = []
    signals = by_name(config.signals)
    windows = set(window_signals_of(config))
    for i, point in enumerate(config.points):
        samples = point.samples if point.kind == "thermal" else None
        if samples is not None and samples in signals and samples not in windows:
            errors.append((("points", i, "samples"), f"signal {samples!r} is not a "
                           "sample window (an MCP3208's '<sensor>.window')"))
        fields = (("currents", "angles", "samples") if point.kind == "thermal"
                  else ("phases", "ambient", "currents"))
        for field in fields:
            names = getattr(point, field)
            if names is None:
                continue
            for j, name in enumerate((names,) if isinstance(names, str) else names):
                path = ("points", i, field) if isinstance(names, str) else ("points", i, field, j)
                if name not in signals:
                    errors.append((path, f"no signal named {name!r}"))
                elif name in windows and field != "samples":
                    errors.append((path, f"{name!r} is a sample window: a thermal point reads "
                                         "it as 'samples'"))
    return errors


def output_flags(config: RelayConfig) -> list[Problem]:
    """Every '<point>.<flag>' a coil follows names a point, and a flag of its kind."""
    errors: list[Problem] = []
    points = by_name(config.points)
    for i, output in enumerate(config.outputs):
        for j, ref in enumerate(output.flags):
            point_name, _, flag = ref.rpartition(".")
            point = points.get(point_name)
            if point is None:
                errors.append((("outputs", i, "flags", j),
                               f"{ref!r}: no point named {point_name!r}"))
            elif flag_of(point, flag) is None:
                known = ", ".join(sorted(THERMAL_FLAGS if point.kind == "thermal"
                                         else BUSBAR_FLAGS))
                errors.append((("outputs", i, "flags", j),
                               f"{ref!r}: a {point.kind} point has no flag {flag!r} "
                               f"(flags: {known})"))
    return errors


def gpio_pins(config: RelayConfig) -> list[Problem]:
    """GPIO pins taken twice (under any of their names): two coils on one pin, an input on a
    coil's pin, two inputs on one pin. gpiozero refuses a pin already in use when the relay
    starts; this says which entries share it."""
    errors: list[Problem] = []
    taken: dict[str, tuple[str, int, str]] = {}
    for section in ("outputs", "inputs"):
        for i, item in enumerate(getattr(config, section)):
            pin = gpio_pin(item.pin)
            if pin in taken:
                other, j, name = taken[pin]
                what = "coil" if other == "outputs" else "input"
                also = "" if str(item.pin) in (pin, pin[4:]) else f" ({item.pin!r})"
                errors.append(((section, i, "pin"), f"{pin}{also} is already the pin of "
                               f"{what} {name!r} ({other}[{j}]): one pin, one "
                               f"{'coil' if section == 'outputs' else 'device'}"))
            else:
                taken[pin] = (section, i, item.name)
    return errors


def group_points(config: RelayConfig) -> list[Problem]:
    """Every point a Modbus unit's group shows exists."""
    points = by_name(config.points)
    return [(("modbus", "groups", unit, j), f"no point named {name!r}")
            for unit, names in (config.modbus.groups.items() if config.modbus else ())
            for j, name in enumerate(names) if name not in points]


def input_points(config: RelayConfig) -> list[Problem]:
    """Every point a command input acts on exists."""
    points = by_name(config.points)
    return [(("inputs", i, "points", j), f"no point named {name!r}")
            for i, item in enumerate(config.inputs)
            for j, name in enumerate(item.points) if name not in points]


def bus_needs(config: RelayConfig) -> list[Problem]:
    """What each bus needs to run, bus by bus: an ADC that can sample the windows
    (``adc_problems``), a plant for a simulated bus."""
    errors: list[Problem] = []
    for i, bus in enumerate(config.buses):
        if isinstance(bus, SpiBus):
            errors += [(("buses", i, "sensors", j, *path), why)
                       for j, sensor in enumerate(bus.sensors) if sensor.chip == "mcp3208"
                       for path, why in adc_problems(sensor, bus, config.sampling)]
        if bus.is_simulated and config.plant is None:
            errors.append((("buses", i, "kind" if bus.kind == "simulated" else "simulated"),
                           "a simulated bus needs a plant (the 'plant' section)"))
    return errors


def plant_faults(config: RelayConfig) -> list[Problem]:
    """Every injected fault names a simulated bus and something on it that can have it (the
    catalog says what a medium and a chip cannot have, and why)."""
    if config.plant is None:
        return []
    errors: list[Problem] = []
    buses = by_name(config.buses)
    for i, fault in enumerate(config.plant.faults):
        bus = buses.get(fault.bus)
        where = ("plant", "faults", i)
        if bus is None:
            errors.append(((*where, "bus"), f"no bus named {fault.bus!r}"))
        elif not bus.is_simulated:
            errors.append(((*where, "bus"), f"faults are injected on simulated buses; "
                           f"{fault.bus!r} is a real {bus.kind!r} bus"))
        elif bus.kind in CHIP_KINDS:
            refusal = fault_refusal(bus.kind, {s.name: CHIP_QUANTITIES[s.chip]
                                               for s in bus.sensors},
                                    {s.name: REFUSED_ON_CHIP.get(s.chip, {})
                                     for s in bus.sensors}, fault.address, fault.kind)
            if refusal is not None:
                errors.append(((*where, refusal[0]), refusal[1]))
        elif bus.kind != "simulated" and fault.address != "*":
            device = fault.address.partition(".")[0]
            names = [d.name for d in bus.devices]
            if device not in names:
                errors.append(((*where, "address"), f"{fault.address!r}: bus {fault.bus!r} "
                               f"has no device {device!r} (devices: {', '.join(names)})"))
            elif refused := device_fault_refusal(fault.address, fault.kind):
                errors.append(((*where, "address"), refused))
    return errors


def plant_coils(config: RelayConfig) -> list[Problem]:
    """Every coil a simulated motor's breaker follows is an output."""
    if config.plant is None:
        return []
    outputs = by_name(config.outputs)
    return [(("plant", "motors", i, field), f"no output named {name!r}")
            for i, motor in enumerate(config.plant.motors)
            for field in ("trip_coil", "close_coil")
            if (name := getattr(motor, field)) is not None and name not in outputs]


#: every cross-reference check, in the order ``references`` runs them
CHECKS: tuple[Check, ...] = (snmp_flags, unique_names, signal_addresses, point_signals,
                             output_flags, gpio_pins, group_points, input_points, bus_needs,
                             plant_faults, plant_coils)


def references(config: RelayConfig) -> list[Problem]:
    """Cross-reference errors as (key path, reason), every check's in ``CHECKS`` order;
    empty when the names tie up."""
    return [problem for check in CHECKS for problem in check(config)]
