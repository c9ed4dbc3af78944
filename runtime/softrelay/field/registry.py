"""Which code opens each kind of bus, by name: the one place a configured bus finds its driver.

``BUS_KINDS`` maps a bus's ``kind`` to the ``"module:factory"`` that opens it; ``STAND_INS``
maps a kind to what stands in for its hardware when the bus says ``simulated: true`` (the chips'
twins on a simulated I2C or SPI bus, the Modbus devices' twins on loopback or a pty); each
chip's driver class is the one its catalog entry names (``catalog.chips``). Every module is
imported only when a bus asks for it (python-can's interface registry): a relay with no I2C bus
never imports an I2C driver, a relay on a Pi never imports ``softrelay.sim`` (which is why this
file names it only in strings), and a kind whose module or factory is missing is a
``BusKindError`` that names the module and the reason when that bus is opened, never a traceback
and never a package that does not import.

Every factory is called as ``factory(config, plant, sampling)`` and returns the bus's ``Device``
(``field.device``): ``config`` the bus's configuration, ``plant`` the simulated plant (None on
real hardware), ``sampling`` the configuration's ``Sampling`` (ADC windows).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from softrelay.catalog.chips import CHIPS
from softrelay.field.device import Device

#: bus kind -> "module:factory" that opens it (the factory returns a ``Device``)
BUS_KINDS: dict[str, str] = {
    "i2c": "softrelay.field.i2c.device:open_i2c",
    "spi": "softrelay.field.spi.device:spi_bus_device",
    "modbus_tcp": "softrelay.field.modbus.device:modbus_tcp_bus",
    "modbus_rtu": "softrelay.field.modbus.device:modbus_rtu_bus",
    "simulated": "softrelay.sim.devices:simulated_bus",
}

#: bus kind -> "module:factory" of what stands in for its hardware on a ``simulated: true``
#: bus: an smbus2-like bus with the chips' twins, the chip selects of an SPI bus with theirs,
#: a server of the Modbus devices' twins
STAND_INS: dict[str, str] = {
    "i2c": "softrelay.sim.buses:simulated_smbus",
    "spi": "softrelay.sim.buses:SimulatedSpiBus",
    "modbus_tcp": "softrelay.sim.buses:twin_server",
    "modbus_rtu": "softrelay.sim.buses:twin_server",
}

#: "module:factory" of the simulated plant (``plant_model``)
PLANT_MODEL = "softrelay.sim.plant:PlantModel"

class BusKindError(ValueError):
    """A bus that cannot be opened because its code cannot be found: an unknown kind, a
    module that does not import, a factory the module does not have. ``str()`` names the
    bus, the module and the reason."""


def load(reference: str, what: str) -> Any:
    """The object a ``"module:factory"`` ``reference`` names, its module imported now;
    ``BusKindError`` naming ``what`` (the bus or chip it is for), the module and the reason
    when it cannot be had. (Typed ``Any``: what a reference names is known once imported.)"""
    module_name, colon, name = reference.partition(":")
    if not colon or not module_name or not name:
        raise BusKindError(f"{what}: {reference!r} is not 'module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BusKindError(f"{what}: cannot import {module_name}: {exc}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise BusKindError(f"{what}: {module_name} has no {name!r}") from None


def look_up(table: Mapping[str, str], key: str, what: str, of: str) -> Any:
    """``table[key]`` loaded (``load``); ``BusKindError`` naming the known keys when there is
    no such ``of`` (kind, chip)."""
    reference = table.get(key)
    if reference is None:
        raise BusKindError(f"{what}: no {of} {key!r} (known: {', '.join(sorted(table))})")
    return load(reference, what)


def open_bus(config, plant=None, sampling=None,
             kinds: Mapping[str, str] = BUS_KINDS) -> Device:
    """The ``Device`` of the configured bus ``config`` (its ``kind`` looked up in ``kinds``).

    Raises ``BusKindError`` when the kind's code cannot be found; whatever its factory raises
    otherwise (a simulated bus without a plant: ValueError). A real I2C or SPI bus is not
    opened here but by its worker (``sensor_bus.DeferredBus``)."""
    what = f"bus {config.name!r}"
    return look_up(kinds, config.kind, what, "bus kind")(config, plant, sampling)


def stand_in(config) -> Callable[..., Any]:
    """The factory of what stands in for the hardware of the simulated bus ``config``."""
    return look_up(STAND_INS, config.kind, f"bus {config.name!r} (simulated)",
                   "simulated bus kind")


def chip_driver(chip: str, what: str) -> Any:
    """The driver class of ``chip`` (for the sensor ``what``), as its catalog entry names it
    (a class with ``on_bus``: the chip on its bus)."""
    return look_up({name: spec.driver for name, spec in CHIPS.items()}, chip, what, "chip")


def plant_model(config, coil: Callable[[str], bool]) -> Any:
    """The simulated plant of the configuration's ``plant`` section (``sim.plant``), reading
    the relay's coils through ``coil(name)`` (a trip opens its breaker)."""
    return load(PLANT_MODEL, "plant")(config, coil)
