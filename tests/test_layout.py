"""The tables' layout and the compiled core's constants, as the core relies on them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from softrelay.core import ProtectionCore, backend, layout


@pytest.mark.parametrize("name", sorted(layout.ALL_DTYPES))
def test_every_field_is_naturally_aligned(name: str) -> None:
    dtype = layout.ALL_DTYPES[name]
    assert dtype.itemsize % 8 == 0, f"{name}: itemsize {dtype.itemsize} not a multiple of 8"
    for field, (ftype, offset) in dtype.fields.items():
        base = ftype.base.itemsize if ftype.subdtype else ftype.itemsize
        assert offset % base == 0, f"{name}.{field} at offset {offset} is not aligned"


def test_compiled_core_is_the_one_loaded() -> None:
    """A broken build must not pass the suite on the reference."""
    assert os.environ.get(backend.ENV_VAR, "compiled") == "compiled", (
        f"{backend.ENV_VAR} is set: the suite must run against the compiled core"
    )
    assert ProtectionCore().implementation == "compiled"
    assert backend.load().__name__ == "softrelay._core"


def test_reference_is_chosen_only_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backend.ENV_VAR, "reference")
    assert ProtectionCore().implementation == "reference"
    monkeypatch.setenv(backend.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="SOFTRELAY_CORE='fast'"):
        ProtectionCore()


def test_compiled_constants_match_layout() -> None:
    compiled = backend.load("compiled").constants()
    for name, value in compiled.items():
        assert value == getattr(layout, name), name


def test_core_refuses_tables_of_different_lengths() -> None:
    core = ProtectionCore()
    core.busbar_inputs = np.zeros(2, layout.BUSBAR_INPUTS)
    with pytest.raises(ValueError, match="busbar tables differ"):
        core.scan(1.0, 0.01)


def test_core_refuses_a_misaligned_table() -> None:
    from softrelay.core.settings import BusbarSettings

    core = ProtectionCore(busbar=[BusbarSettings()])
    raw = np.zeros(layout.BUSBAR_STATE.itemsize + 4, np.uint8)
    core.busbar_state = raw[4:].view(layout.BUSBAR_STATE)
    with pytest.raises(ValueError, match="not 8-byte aligned"):
        core.scan(1.0, 0.01)


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan"), float("inf")])
def test_scan_refuses_a_bad_dt(dt: float) -> None:
    with pytest.raises(ValueError, match="dt must be"):
        ProtectionCore().scan(1.0, dt)
