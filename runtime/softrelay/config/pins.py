"""GPIO pin names as gpiozero reads them, checked without hardware.

A coil's or an input's ``pin`` is whatever gpiozero's pin factories accept on the 40-pin
header every Raspberry Pi since the B+ shares: a BCM number (17), or a name ('GPIO17', 'BCM17',
'BOARD11', 'J8:11', 'WPI0'). gpiozero's own board data answers (``PiBoardInfo.to_gpio``), for
the board its MockFactory simulates, so ``softrelay check`` refuses exactly what a pin factory
would refuse when the relay starts, with the reason, and two names of one pin are known to be
one pin.

Reads gpiozero's tables only: opens no device, makes no pin factory.
"""

from __future__ import annotations

from functools import lru_cache

#: the board whose header is checked: gpiozero's MockFactory default (a Pi 3B, the same
#: 40-pin J8 header as every Pi since the B+)
BOARD_REVISION = 0xA02082
#: examples given in reasons
NAMING = "a BCM number 0..27, or GPIO17, BCM17, BOARD11, J8:11, WPI0"


@lru_cache(maxsize=1)
def _board():
    from gpiozero.pins.pi import PiBoardInfo  # gpiozero's board data, no factory

    return PiBoardInfo.from_revision(BOARD_REVISION)


def gpio_pin(pin: int | str) -> str:
    """The pin's canonical name ('GPIO17'); ValueError with the reason when gpiozero would
    refuse it."""
    from gpiozero.exc import PinInvalidPin

    board = _board()
    if isinstance(pin, str) and pin.strip() != pin:
        raise ValueError(f"pin {pin!r}: no spaces around a pin name")
    try:
        return board.to_gpio(pin)
    except PinInvalidPin:
        pass
    for _header, info in board.find_pin(pin):  # a header pin that is no GPIO: say which
        raise ValueError(f"pin {pin!r} is {info.name} (header {_header.name} pin "
                         f"{info.number}), not a GPIO pin ({NAMING})")
    raise ValueError(f"pin {pin!r} is not a GPIO pin of the 40-pin header ({NAMING})")
