"""The device interface every bus driver implements, real or simulated.

A ``Device`` answers ``read(addresses)`` with a (value, quality) per address. Subclasses must
override ``_read`` (one transaction for a batch of addresses) and may override ``open`` and
``close``. The public ``read`` does the shared work: it turns a driver's exception into an I/O
error quality for the whole batch, so a failing device can never raise into its worker.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Sequence

import numpy as np

from softrelay.catalog.faults import FaultKind
from softrelay.core import Quality
from softrelay.modbus.protocol import GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED

Reading = tuple[float | np.ndarray, int]  #: (value or sample window, quality)

#: Modbus exception codes a gateway answers for its own link, in a field engineer's words
GATEWAY_EXCEPTIONS: dict[int, str] = {c: c.text for c in (GATEWAY_PATH_UNAVAILABLE,
                                                          GATEWAY_TARGET_FAILED)}


def link_fault(exc: BaseException | None = None, *, exception_code: int | None = None) -> str:
    """What kind of failure a failed transaction was, in the words of the link-down event:
    ``refused`` (nobody listens), ``connection lost`` (it was closed under us), ``timeout``
    (no answer), ``NACK`` (an I2C address or
    command not acknowledged), ``garbage`` (an answer that is not a frame), ``exception 0xNN``
    (a Modbus exception response, named where it is a gateway's), ``I/O error``. Where the
    failure is what a ``FaultKind`` injects (refused, garbage) the word is that kind's."""
    if exception_code is not None:
        named = GATEWAY_EXCEPTIONS.get(exception_code)
        return f"exception 0x{exception_code:02X}" + (f" ({named})" if named else "")
    text = str(exc).lower()
    if isinstance(exc, ConnectionRefusedError) or "refused" in text:
        return FaultKind.REFUSED.value
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                        EOFError)) or "not connected" in text or "connection lost" in text:
        return "connection lost"
    if isinstance(exc, TimeoutError) or "timeout" in text or "no response" in text \
            or "timed out" in text:
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (errno.EREMOTEIO, errno.ENXIO):
        return "NACK"
    if isinstance(exc, ValueError) or any(word in text for word in (
            "invalid", "unable to decode", "crc", "frame", "garbage", "unexpected")):
        return FaultKind.GARBAGE.value
    return "I/O error"


class NoReadingError(ValueError):
    """A chip answered with its own "no reading" value (a TMP117's 8000h before its first
    conversion): the reading is SENTINEL, not out of range."""


class Device:
    """Base class of field devices.

    Must override: ``_read(addresses) -> list[float | Reading]`` (raise OSError, TimeoutError
    or ValueError on failure). May override: ``open()``, ``close()`` (safe to call twice).
    """

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.errors = 0
        self.last_error = ""  #: the last failure: '<kind>: <detail>' (see ``link_fault``)

    def open(self) -> None:
        """Connect or claim the bus; called by the worker before the first read."""

    def close(self) -> None:
        """Release the bus; safe to call twice."""

    def _read(self, addresses: Sequence[str]) -> list[float | Reading]:
        raise NotImplementedError

    def read(self, addresses: Sequence[str]) -> list[Reading]:
        """One (value, quality) per address; a failure marks every address IO_ERROR."""
        try:
            raw = self._read(addresses)
        except (OSError, TimeoutError, ValueError) as exc:
            self.errors += 1
            self.last_error = f"{link_fault(exc)}: {exc.__class__.__name__}: {exc}"
            return [(math.nan, Quality.IO_ERROR)] * len(addresses)
        readings = []
        for item in raw:
            value, quality = item if isinstance(item, tuple) else (item, Quality.GOOD)
            if not isinstance(value, np.ndarray):  # a sample window stays an array
                value = float(value)
            readings.append((value, int(quality)))
        return readings
