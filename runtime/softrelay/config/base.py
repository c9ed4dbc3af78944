"""What every configuration model shares: strictness, the names that tie the file together,
and the check that two items of a list do not share what must be theirs alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import ConfigDict, Field

#: unknown keys are errors, models are read-only, no inf or NaN in a file
STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: what names a bus, a signal, a point, an output, ...: dotted words
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$",
                            max_length=64)]
Word = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=32,
                            description="a name without dots")]
#: an access level over Modbus: 0 read, 1 operator, 2 engineer
Level = Annotated[int, Field(ge=0, le=2)]


def distinct(items: Iterable[Any], key: Callable[[Any], object],
             describe: Callable[[Any], str], what: str = "sensors") -> None:
    """Raise naming the first two items that share ``key`` (an address, a chip select)."""
    seen: dict = {}
    for item in items:
        value = key(item)
        if value in seen:
            raise ValueError(f"{what} {seen[value]!r} and {item.name!r} share "
                             f"{describe(value)}")
        seen[value] = item.name
