"""The tags pydantic puts into an error's location (the member of a discriminated union it
validated: a bus's or a point's ``kind``, an SPI chip's ``chip``) are taken out of the key path
a user reads, for every member there is: ``UNION_TAGS`` is derived from the models, so a bus
kind added to them is covered without a list to keep."""

from __future__ import annotations

import copy
from typing import Annotated, Literal, get_args

import pytest
import yaml
from pydantic import BaseModel, Field

from softrelay.config import ConfigError, demo_path, parse
from softrelay.config.buses import Bus, SpiBus
from softrelay.config.loader import UNION_TAGS, union_tags
from softrelay.config.points import Point

DEMO = yaml.safe_load(demo_path().read_text())


def tags_of(union) -> set[str]:
    """The discriminator values of the members of an ``Annotated[A | B, Field(...)]``."""
    members, info = get_args(union)
    return {tag for m in get_args(members)
            for tag in get_args(m.model_fields[info.discriminator].annotation)}


def test_the_tags_are_the_models_discriminators():
    sensors = get_args(SpiBus.model_fields["sensors"].annotation)[0]
    assert tags_of(Bus) | tags_of(Point) | tags_of(sensors) == UNION_TAGS
    assert {"simulated", "i2c", "spi", "modbus_tcp", "modbus_rtu"} <= tags_of(Bus)


def test_a_member_added_to_a_union_is_a_tag():
    class A(BaseModel):
        kind: Literal["a"]

    class B(BaseModel):
        kind: Literal["b", "bee"]
        inner: tuple[Annotated[A | B, Field(discriminator="kind")], ...] = ()

    class Root(BaseModel):
        items: tuple[Annotated[A | B, Field(discriminator="kind")], ...]
        one: Annotated[A | B, Field(discriminator="kind")] | None = None

    assert union_tags(Root) == {"a", "b", "bee"}


def bus_kinds() -> list[tuple[int, str]]:
    """The demo's buses with a 'simulated' one added: (index, kind), every kind of ``Bus``."""
    return [(i, b["kind"]) for i, b in enumerate(demo_buses())]


def demo_buses() -> list[dict]:
    return [*DEMO["buses"], {"name": "plantbus", "kind": "simulated"}]


def test_the_demo_has_every_bus_kind():
    assert {kind for _, kind in bus_kinds()} == tags_of(Bus)


@pytest.mark.parametrize(("index", "kind"), bus_kinds())
def test_an_error_in_a_bus_names_its_key_without_the_kind(index, kind, tmp_path):
    data = copy.deepcopy(DEMO)
    data["buses"] = copy.deepcopy(demo_buses())
    data["buses"][index]["timeout"] = -1.0
    with pytest.raises(ConfigError) as err:
        parse(yaml.safe_dump(data, sort_keys=False), "c.yaml",
              environ={"STATE_DIRECTORY": str(tmp_path)})
    assert [p.path for p in err.value.problems] == [f"buses[{index}].timeout"]


def test_an_error_in_an_spi_chip_names_its_key_without_the_chip(tmp_path):
    data = copy.deepcopy(DEMO)
    data["buses"][2]["sensors"][0]["vref"] = 9.0
    with pytest.raises(ConfigError) as err:
        parse(yaml.safe_dump(data, sort_keys=False), "c.yaml",
              environ={"STATE_DIRECTORY": str(tmp_path)})
    assert [p.path for p in err.value.problems] == ["buses[2].sensors[0].vref"]
