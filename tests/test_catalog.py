"""The hardware catalog: pure data, the one source of each chip's facts.

It imports nothing of softrelay (so any layer may import it without a cycle), every chip names
a driver under softrelay.field and a twin under softrelay.sim, and the tables the rest of the
tree reads by chip name are views of it."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from softrelay.catalog import chips, faults
from softrelay.catalog.chips import CHIPS, ChipSpec

CATALOG = Path(chips.__file__).resolve().parent

DRIVERS = {"mlx90614": "softrelay.field.i2c.mlx90614:MLX90614",
           "tmp117": "softrelay.field.i2c.tmp117:TMP117",
           "max31865": "softrelay.field.spi.max31865:MAX31865",
           "mcp3208": "softrelay.field.spi.mcp3208:MCP3208"}
TWINS = {"mlx90614": "softrelay.sim.chips.mlx90614:MLX90614Twin",
         "tmp117": "softrelay.sim.chips.tmp117:TMP117Twin",
         "max31865": "softrelay.sim.chips.max31865:MAX31865Twin",
         "mcp3208": "softrelay.sim.chips.mcp3208:MCP3208Twin"}


def softrelay_imports(source: str) -> set[str]:
    """The softrelay modules a module's source imports, at any depth (relative ones too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "softrelay"}
        elif isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").split(".")[0] == "softrelay"):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_catalog_imports_nothing_of_softrelay():
    for path in sorted(CATALOG.rglob("*.py")):
        assert softrelay_imports(path.read_text()) == set(), path.name


def test_the_purity_check_sees_an_import():
    assert softrelay_imports("def f():\n    from softrelay.sim import plant\n") == {
        "softrelay.sim"}
    assert softrelay_imports("from . import faults\n") == {"."}


def test_importing_the_catalog_loads_no_other_softrelay_module():
    code = ("import sys, softrelay.catalog.chips, softrelay.catalog.faults\n"
            "print(sorted(m for m in sys.modules if m.startswith('softrelay')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert eval(out) == ["softrelay", "softrelay.catalog", "softrelay.catalog.chips",
                         "softrelay.catalog.faults"]


def test_one_frozen_spec_per_chip():
    assert set(CHIPS) == {"mlx90614", "tmp117", "max31865", "mcp3208"}
    for name, spec in CHIPS.items():
        assert spec.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.bus = "spi"  # type: ignore[misc]
        with pytest.raises(TypeError):
            spec.refused["nack"] = "no"  # type: ignore[index]
    with pytest.raises(TypeError):
        CHIPS["x"] = CHIPS["tmp117"]  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_and_twin_are_named_under_field_and_sim(name):
    spec: ChipSpec = CHIPS[name]
    assert spec.driver == DRIVERS[name]
    assert spec.twin == TWINS[name]
    module, _, factory = spec.driver.partition(":")
    assert module.startswith(f"softrelay.field.{spec.bus}.") and factory.isidentifier()
    module, _, factory = spec.twin.partition(":")
    assert module.startswith("softrelay.sim.") and factory.isidentifier()


def test_the_tables_are_views_of_the_specs():
    assert chips.CHIP_QUANTITIES == {"mlx90614": ("object", "ambient"),
                                     "tmp117": ("temperature",),
                                     "max31865": ("temperature",), "mcp3208": ("window",)}
    assert chips.SPI_CHIPS == {"max31865": ((1, 3), 5_000_000),
                               "mcp3208": ((0, 3), 2_000_000)}
    assert set(chips.REFUSED_ON_CHIP) == {"mcp3208"}
    assert set(chips.REFUSED_ON_CHIP["mcp3208"]) == {"stuck"}
    assert chips.chips_on("i2c") == ("mlx90614", "tmp117")
    assert chips.chips_on("spi") == ("max31865", "mcp3208")


@pytest.mark.parametrize("missing", [{"spi_modes": ()}, {"max_speed_hz": None}])
def test_an_spi_chip_without_its_modes_or_clock_is_refused_naming_it(missing):
    """SPI_CHIPS (what the configuration checks a chip's mode and clock against) takes both
    from the spec: an SPI chip added without them is refused where it is written."""
    given = {"spi_modes": (0,), "max_speed_hz": 1_000_000} | missing
    with pytest.raises(ValueError, match="chip ads1118: an SPI chip states its spi_modes"):
        ChipSpec("ads1118", "spi", ("voltage",), driver="softrelay.field.spi.x:X",
                 twin="softrelay.sim.chips.x:XTwin", **given)
    ChipSpec("ads1118", "i2c", ("voltage",), driver="softrelay.field.i2c.x:X",
             twin="softrelay.sim.chips.x:XTwin")  # an I2C chip has neither


def test_the_injectors_read_the_catalog():
    from softrelay.sim import chip_faults

    assert chip_faults.REFUSED_ON_CHIP is chips.REFUSED_ON_CHIP
    for kind in ("i2c", "spi"):
        assert chip_faults.BusFaults(kind, {}, 0.1).medium is faults.MEDIA[kind]


def test_the_driver_constants_agree_with_the_catalog():
    """The SPI limits config validates with are the ones the drivers run with."""
    from softrelay.field.spi.mcp3208 import BITS_PER_CONVERSION
    from softrelay.field.spi.port import MAX_TRANSFERS

    assert chips.MCP3208_BITS_PER_CONVERSION == BITS_PER_CONVERSION
    assert chips.SPI_MAX_TRANSFERS == MAX_TRANSFERS


def test_the_configuration_offers_exactly_the_catalog_s_chips():
    from typing import get_args

    from softrelay.config.buses import I2CSensor, SpiBus

    i2c = set(get_args(I2CSensor.model_fields["chip"].annotation))
    spi = {tag for model in get_args(get_args(SpiBus.model_fields["sensors"].annotation)[0])
           for member in get_args(model) if hasattr(member, "model_fields")
           for tag in get_args(member.model_fields["chip"].annotation)}
    assert i2c == set(chips.chips_on("i2c"))
    assert spi == set(chips.chips_on("spi"))


@pytest.mark.parametrize("device", [
    {"name": "m", "profile": "sdm630"},
    {"name": "m", "profile": "sdm630", "registers": [{"name": "current.b", "address": 90},
                                                     {"name": "power", "address": 52}]},
    {"name": "g", "profile": "thermal_gateway", "channels": 3},
    {"name": "g", "profile": "thermal_gateway", "channels": 64},
    {"name": "r", "registers": [{"name": "t1", "address": 0}, {"name": "t2", "address": 1}]},
])
def test_a_modbus_device_s_quantities_are_its_driver_s(device):
    from softrelay.catalog.profiles import device_quantities
    from softrelay.config.buses import ModbusDevice
    from softrelay.field.modbus.profiles import quantities

    model = ModbusDevice.model_validate(device)
    assert device_quantities(model.profile, model.channels,
                             [r.name for r in model.registers]) == quantities(model)


FAULT_CASES = [(bus, address, kind)
               for bus in ("i2c", "spi")
               for address in ("*", "t", "t.temperature", "t.object", "a", "a.window",
                               "a.ambient", "nobody", "t.")
               for kind in ("nack", "slow", "garbage", "sentinel", "stuck", "noisy",
                            "refused", "melted")]


@pytest.mark.parametrize(("bus", "address", "kind"), FAULT_CASES)
def test_the_configuration_refuses_a_fault_as_the_simulated_bus_does(bus, address, kind):
    """``plant.faults`` is checked by the catalog's ``fault_refusal`` with the very words a
    simulated bus's ``BusFaults.check`` raises at run time."""
    from softrelay.catalog.faults import fault_refusal
    from softrelay.sim.chip_faults import BusFaults

    on_bus = {"t": "tmp117" if bus == "i2c" else "max31865", "a": "mlx90614" if bus == "i2c"
              else "mcp3208"}
    sensors = {name: chips.CHIP_QUANTITIES[chip] for name, chip in on_bus.items()}
    refused = {name: chips.REFUSED_ON_CHIP.get(chip, {}) for name, chip in on_bus.items()}
    try:
        BusFaults(bus, sensors, 0.1, refused=refused).check(address, kind)
    except ValueError as exc:
        expected = str(exc)
    else:
        expected = None
    refusal = fault_refusal(bus, sensors, refused, address, kind)
    assert (refusal[1] if refusal else None) == expected
