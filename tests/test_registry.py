"""The bus registry: each kind of bus found by name, its code imported only when a bus asks,
and a kind whose code cannot be had a clear error naming the bus, the module and the reason."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

from softrelay.catalog.chips import CHIPS
from softrelay.config import load
from softrelay.core import Quality
from softrelay.field import registry
from softrelay.field.companion import bus_device
from softrelay.field.registry import BUS_KINDS, STAND_INS, BusKindError, open_bus
from softrelay.field.registry import load as load_ref


def bus(kind: str, name: str = "b1"):
    return SimpleNamespace(name=name, kind=kind, timeout=0.05)


def test_an_unknown_kind_names_the_bus_and_the_kinds_known():
    with pytest.raises(BusKindError) as caught:
        open_bus(bus("canbus"))
    text = str(caught.value)
    assert "bus 'b1'" in text and "'canbus'" in text
    assert all(kind in text for kind in BUS_KINDS), text


def test_a_missing_module_names_the_module_and_why():
    kinds = {"i2c": "softrelay.field.no_such_driver:open_it"}
    with pytest.raises(BusKindError) as caught:
        open_bus(bus("i2c"), kinds=kinds)
    text = str(caught.value)
    assert text.startswith("bus 'b1': cannot import softrelay.field.no_such_driver:"), text
    assert "No module named 'softrelay.field.no_such_driver'" in text


def test_a_module_whose_dependency_is_missing_names_the_dependency(tmp_path, monkeypatch):
    (tmp_path / "vendor_bus.py").write_text("import vendor_sdk_not_installed\n"
                                            "def open_it(config, plant, sampling): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BusKindError) as caught:
        open_bus(bus("can"), kinds={"can": "vendor_bus:open_it"})
    text = str(caught.value)
    assert "cannot import vendor_bus" in text and "vendor_sdk_not_installed" in text, text


def test_a_missing_factory_names_the_module_and_the_factory():
    with pytest.raises(BusKindError) as caught:
        open_bus(bus("i2c"), kinds={"i2c": "softrelay.field.device:no_such_factory"})
    assert str(caught.value) == ("bus 'b1': softrelay.field.device has no "
                                 "'no_such_factory'")


def test_a_reference_that_is_not_module_colon_factory_says_so():
    with pytest.raises(BusKindError) as caught:
        open_bus(bus("i2c"), kinds={"i2c": "softrelay.field.device"})
    assert str(caught.value) == "bus 'b1': 'softrelay.field.device' is not 'module:factory'"


def test_every_name_in_the_registry_and_the_catalog_is_there():
    """A typo in a "module:factory" string is found here, not on a Pi at start-up."""
    for kind, reference in {**BUS_KINDS, **STAND_INS}.items():
        assert callable(load_ref(reference, kind)), reference
    for chip, spec in CHIPS.items():
        assert callable(load_ref(spec.driver, chip).on_bus), spec.driver
        assert callable(load_ref(spec.twin, chip).on_bus), spec.twin
    assert callable(registry.load(registry.PLANT_MODEL, "plant"))


def test_a_bus_whose_code_is_missing_is_a_faulted_bus_with_the_reason(monkeypatch):
    """In the companion: the bus reads I/O error, its link-down reason the error; the other
    buses and the relay go on."""
    monkeypatch.setitem(BUS_KINDS, "simulated", "softrelay.sim.no_such_bus:open_it")
    config = load(None)
    device = bus_device(bus("simulated", "plant"), None, config.sampling)
    [(value, quality)] = device.read(["motor1.current.a"])
    assert math.isnan(value) and quality == Quality.IO_ERROR
    assert "cannot import softrelay.sim.no_such_bus" in device.last_error


@pytest.mark.e2e
def test_a_relay_on_real_hardware_never_imports_the_simulation():
    """A real I2C bus, a real Modbus line: their code imports nothing of ``softrelay.sim``
    (and importing the registry imports no driver)."""
    code = """if True:
        import sys
        from softrelay.config import load
        from softrelay.field import registry
        assert not [m for m in sys.modules if m.startswith(("softrelay.sim", "smbus2"))]
        config = load(None)
        for bus in config.buses:
            real = bus.model_copy(update={"simulated": False, "port": 1502}
                                  if bus.kind == "modbus_tcp" else
                                  {"simulated": False, "port": "/nonexistent/tty"}
                                  if bus.kind == "modbus_rtu" else {"simulated": False})
            device = registry.open_bus(real, None, config.sampling)
            device.open()
            device.close()
        print(sorted(m for m in sys.modules if m.startswith("softrelay.sim")))
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
