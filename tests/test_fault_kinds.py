"""One fault-kind enum, one table per medium: where each kind acts on a simulated bus, or why
that medium cannot have it (``catalog.faults``).

Every injector takes its sets from the table and no module keeps a list of its own (read from
the source); a kind added to the enum without a row in every medium's table is refused; the
configuration accepts exactly the enum's words, with the error text it always gave."""

from __future__ import annotations

import ast
import errno
import math
from pathlib import Path

import pytest

from softrelay.catalog import faults
from softrelay.catalog.faults import MEDIA, FaultKind, Medium, Where, medium_of

from support.configs import edited, problems_of

PACKAGE = Path(faults.__file__).resolve().parents[1]  #: runtime/softrelay
KINDS = {kind.value for kind in FaultKind}

T, W, E, V = Where.TRANSACTION, Where.WIRE, Where.ELEMENT, Where.VALUE
#: the table as the twins inject today (kind -> where it acts; '-' the medium cannot have it):
#: changing where a fault acts is a deliberate edit here too
TABLE = {
    #          simulated  i2c  spi  modbus
    "nack":     (T,       T,   W,   T),
    "refused":  (T,       "-", "-", T),
    "slow":     (T,       T,   "-", T),
    "sentinel": (V,       E,   E,   V),
    "stuck":    (V,       E,   E,   V),
    "noisy":    (V,       E,   E,   V),
    "garbage":  (V,       W,   W,   W),
}


def test_every_kind_has_one_row_in_every_medium_s_table():
    assert set(MEDIA) == {"simulated", "i2c", "spi", "modbus"}
    for medium in MEDIA.values():
        for kind in FaultKind:
            acts, cannot = kind in medium.where, kind in medium.not_on
            assert acts != cannot, (medium.name, kind.value)
            if cannot:
                assert medium.not_on[kind], (medium.name, kind.value)  # a reason, not a blank


def test_the_table_is_the_one_agreed():
    """Moving a fault to another place on a medium is a deliberate edit of TABLE too."""
    found = {kind.value: tuple(MEDIA[m].where.get(kind, "-")
                               for m in ("simulated", "i2c", "spi", "modbus"))
             for kind in FaultKind}
    assert found == TABLE


def test_a_medium_without_a_row_for_a_kind_is_refused():
    rows = dict(MEDIA["modbus"].where)
    del rows[FaultKind.GARBAGE]
    with pytest.raises(TypeError, match="no row for garbage"):
        Medium("modbus", rows)
    with pytest.raises(TypeError, match="both act and cannot"):
        Medium("i2c", dict(MEDIA["modbus"].where), {FaultKind.REFUSED: "why"})


def test_every_bus_kind_has_a_medium():
    from softrelay.config.loader import UNION_TAGS

    bus_kinds = {"simulated", "i2c", "spi", "modbus_tcp", "modbus_rtu"}
    assert bus_kinds <= UNION_TAGS
    assert {kind: medium_of(kind).name for kind in bus_kinds} == {
        "simulated": "simulated", "i2c": "i2c", "spi": "spi", "modbus_tcp": "modbus",
        "modbus_rtu": "modbus"}


def test_a_kind_reads_and_prints_as_its_word():
    assert FaultKind.GARBAGE == "garbage" and {"garbage": 1}[FaultKind.GARBAGE] == 1
    logged = "%s" % FaultKind.NACK  # noqa: UP031 (as a log line formats it)
    assert f"{FaultKind.NACK}" == str(FaultKind.NACK) == logged == "nack"


# --- no module keeps its own list -----------------------------------------------------------
def own_lists(source: str) -> list[str]:
    """Where ``source`` names fault kinds by their words instead of through the catalog: a
    tuple, list or set of two or more of them, a ``Literal[...]`` of any, a ``kind`` compared
    with one (as 'line: what')."""
    found = []
    for node in ast.walk(ast.parse(source)):
        words = []
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = [e.value for e in node.elts
                     if isinstance(e, ast.Constant) and e.value in KINDS]
            if len(words) < 2:
                words = []
        elif isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(
                node.value, "attr", None)) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            words = [e.value for e in elts if isinstance(e, ast.Constant) and e.value in KINDS]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named_kind = any(getattr(s, "attr", getattr(s, "id", None)) == "kind"
                             for s in sides)
            words = [s.value for s in sides if isinstance(s, ast.Constant) and s.value in KINDS]
            if not named_kind:
                words = []
        if words and (what := f"{node.lineno}: {', '.join(words)}") not in found:
            found.append(what)  # (a Literal's tuple is seen twice)
    return found


def test_the_source_check_sees_a_module_s_own_list():
    assert own_lists('TRANSACTION_FAULTS = ("nack", "refused", "slow")\n') == [
        "1: nack, refused, slow"]
    assert own_lists('kind: Literal["nack", "refused", "garbage"]\n') == [
        "1: nack, refused, garbage"]
    assert own_lists('if fault.kind == "garbage":\n    pass\n') == ["1: garbage"]
    assert own_lists('if kind in ("nack", "refused"):\n    pass\n') == ["1: nack, refused"]
    assert own_lists('words = ("crc", "frame", "garbage")\nreturn_ = "garbage"\n') == []


def test_no_module_keeps_its_own_list_of_fault_kinds():
    own = {str(path.relative_to(PACKAGE)): found
           for path in sorted(PACKAGE.rglob("*.py")) if path != Path(faults.__file__)
           if (found := own_lists(path.read_text()))}
    assert own == {}


# --- the injectors act as the table says ----------------------------------------------------
def test_the_simulated_bus_fails_a_transaction_or_changes_a_value_as_its_table_says():
    from softrelay.core import Quality
    from softrelay.sim.devices import SimulatedDevice

    class Plant:
        value = 20.0

        def snapshot(self) -> dict[str, float]:
            return {"x": self.value}

    medium = MEDIA["simulated"]
    for kind in FaultKind:
        plant = Plant()
        device = SimulatedDevice("plant", 0.01, plant)  # type: ignore[arg-type]
        device.inject("x", kind.value, delay=0.02)
        device.read(["x"])
        plant.value = 30.0  # the plant moves on; a value fault hides it
        value, quality = device.read(["x"])[0]
        if medium.where[kind] is Where.TRANSACTION:
            assert quality == Quality.IO_ERROR and device.last_error, kind
        else:
            assert quality != Quality.IO_ERROR and value != 30.0, (kind, value)
    device.inject("x", "garbage")
    assert math.isnan(float(device.read(["x"])[0][0]))  # no wire: an unreadable value


def test_the_modbus_twins_take_value_faults_and_the_server_the_others():
    from softrelay.sim.modbus_twin import ModbusTwin
    from softrelay.sim.twin_server import TwinServer

    server = TwinServer([ModbusTwin("m", 1, {}, {})])
    try:
        twin = server.by_name["m"]
        for kind in FaultKind:
            server.inject("m", kind.value)
            at_twin = "*" in twin.value_faults and twin.value_faults["*"].kind == kind
            assert at_twin == (MEDIA["modbus"].where[kind] is Where.VALUE), kind
            assert (server.faults.get("m") is not None) != at_twin, kind
            if not at_twin:
                with pytest.raises(ValueError, match="a fault of a device or of the server"):
                    server.inject("m.current", kind.value)
            server.clear()
        with pytest.raises(ValueError, match="unknown fault 'melted'"):
            server.inject("m", "melted")
    finally:
        server.stop()


@pytest.mark.parametrize("bus", ["i2c", "spi"])
def test_a_chip_bus_refuses_what_its_medium_cannot_have_and_addresses_the_rest(bus):
    from softrelay.sim.chip_faults import BusFaults

    faults_ = BusFaults(bus, {"t": ("temperature",)}, 0.01)
    medium = MEDIA[bus]
    for kind in FaultKind:
        if kind in medium.not_on:
            with pytest.raises(ValueError, match=f"on an {bus.upper()} bus: "):
                faults_.inject("t", kind.value)
        elif medium.where[kind] is Where.ELEMENT:
            faults_.inject("t.temperature", kind.value)  # one quantity of the chip
        else:
            with pytest.raises(ValueError, match="fails a whole chip's transactions"):
                faults_.inject("t.temperature", kind.value)
            faults_.inject("t", kind.value)


# --- the configuration takes the enum's words -----------------------------------------------
def test_the_configuration_refuses_an_unknown_kind_with_the_words_it_always_gave():
    found = problems_of(edited("plant:\n", "plant:\n  faults: [{bus: meters, address: '*', "
                                           "kind: melted}]\n"))
    assert len(found) == 1, found
    assert found[0].endswith(": plant.faults[0].kind: Input should be 'nack', 'refused', "
                             "'slow', 'sentinel', 'stuck', 'noisy' or 'garbage'"), found[0]


def test_a_configured_kind_is_its_word_in_the_json_a_child_process_is_given(tmp_path):
    from softrelay.config import parse
    from softrelay.config.relay import RelayConfig

    text = edited("plant:\n", "plant:\n  faults: [{bus: meters, address: '*', kind: slow}]\n")
    config = parse(text.replace("\nstate:\n", f"\nstate:\n  dir: {tmp_path}\n"), "relay.yaml")
    assert config.plant is not None and config.plant.faults[0].kind == "slow"
    dumped = config.model_dump_json()
    assert '"kind":"slow"' in dumped
    assert RelayConfig.model_validate_json(dumped) == config


@pytest.mark.parametrize("bus", ["i2c", "spi"])
def test_a_chip_bus_acts_on_each_fault_where_its_table_says(bus):
    """On I2C and SPI a transaction fault fails the call as the kernel's would (I2C: no
    acknowledge EREMOTEIO, a clock stretched past the timeout ETIMEDOUT), a wire fault reaches
    the twin (which scrambles its answer, or leaves MISO at 0xFF), and an element fault lets
    the chip answer with what it senses."""
    from softrelay.sim.chip_faults import BusFaults

    medium = MEDIA[bus]
    for kind, where in medium.where.items():
        faults = BusFaults(bus, {"t": ("temperature",)}, timeout=0.01, sleep=lambda s: None)
        faults.inject("t", kind.value)
        if where is Where.TRANSACTION:
            with pytest.raises(OSError) as failed:
                faults.wire("t")
            expected = {FaultKind.NACK: errno.EREMOTEIO, FaultKind.SLOW: errno.ETIMEDOUT}
            assert failed.value.errno == expected[kind], (bus, kind)
        elif where is Where.WIRE:
            fault = faults.wire("t")
            assert fault is not None and fault.kind == kind, (bus, kind)
            assert faults.scramble(b"\x01\x02\x03") != b"\x01\x02\x03"
        else:
            assert where is Where.ELEMENT and faults.wire("t") is None, (bus, kind)
