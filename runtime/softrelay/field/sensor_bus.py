"""A bus of single-value sensors (I2C, SPI chips) as one ``Device``: the shared work.

Each sensor is opened on its own (checked, configured; a sensor that fails is reported, not
fatal) and read in its own transaction: a chip that NACKs or whose bus call fails marks its own
signals IO_ERROR, a chip that answers but flags its reading (an error flag, an open RTD) marks
them OUT_OF_RANGE, a chip that answers its own "no reading" value (a TMP117 with no conversion
yet, 8000h) marks them SENTINEL, and its neighbours go on. Bus kinds (I2C, SPI) only
build the drivers and say how to open and read each. A real bus is opened by its worker
through ``DeferredBus``: one that cannot be opened is a faulted bus, tried again until it opens.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from softrelay.core import Quality
from softrelay.field.device import Device, NoReadingError, Reading, link_fault

log = logging.getLogger("softrelay.field")


@dataclass
class ChipOnBus:
    """One configured chip on its bus, as its driver's ``on_bus`` gives it: ``open()``
    checks and configures it and says what it did; ``readers`` maps each of its quantities
    to the call that reads it (raising as ``SensorBusDevice`` documents)."""

    open: Callable[[], str]
    readers: dict[str, Callable[[], Any]]


class SensorBusDevice(Device):
    def __init__(self, name: str, timeout: float,
                 openers: dict[str, Callable[[], str]],
                 readers: dict[str, Callable[[], float]],
                 close: Callable[[], None] = lambda: None,
                 faults: Any = None) -> None:
        """``openers``: sensor name -> open it, return what was done; ``readers``: signal
        address ('<sensor>.<quantity>') -> read it; ``faults``: a simulated bus's faults
        (``sim.chip_faults.BusFaults``: ``inject``, ``clear``), None on real hardware."""
        super().__init__(name, timeout)
        self.openers = openers
        self.readers = readers
        self._close = close
        self.faults = faults
        self.opened: dict[str, str] = {}
        #: the bus the sensors are read through (an SMBus or its twin), where the opener
        #: keeps it (``field.i2c.device``); for tests and diagnostics
        self.bus: object | None = None

    def inject(self, address: str, kind: str, **params: float) -> None:
        """Inject a fault into a simulated bus (see ``chip_faults``)."""
        if self.faults is None:
            raise ValueError(f"bus {self.name!r} is a real bus: faults are injected into "
                             "simulated ones")
        self.faults.inject(address, kind, **params)

    def clear(self, address: str | None = None) -> None:
        if self.faults is not None:
            self.faults.clear(address)

    def open(self) -> None:
        for sensor, opener in self.openers.items():
            try:
                self.opened[sensor] = opener()
            except (OSError, ValueError) as exc:
                self.errors += 1
                self.last_error = f"{link_fault(exc)}: {sensor}: {exc}"
                self.opened[sensor] = f"FAILED: {exc}"

    def close(self) -> None:
        self._close()

    def _read(self, addresses: Sequence[str]) -> list[float | Reading]:
        readings: list[float | Reading] = []
        for address in addresses:
            try:
                readings.append(self.readers[address]())
            except NoReadingError as exc:  # the chip's own "no reading" value
                self.last_error = f"{address}: {exc}"
                readings.append((math.nan, Quality.SENTINEL))
            except ValueError as exc:  # the chip answered, but flags its reading
                self.last_error = f"{address}: {exc}"
                readings.append((math.nan, Quality.OUT_OF_RANGE))
            except OSError as exc:  # NACK, checksum, bus error: this chip only
                self.errors += 1
                self.last_error = f"{link_fault(exc)}: {address}: {exc}"
                readings.append((math.nan, Quality.IO_ERROR))
        return readings


class DeferredBus(Device):
    """A real bus opened by its worker, not at start: one that cannot be opened (no
    /dev/i2c-N, permission denied, the driver not installed) is a *faulted bus*, never a relay
    that does not start.

    ``build()`` opens the hardware and returns the bus's device (raising ``BusOpenError``,
    ``OSError`` or ``ImportError`` when it cannot). Until it succeeds every read answers
    IO_ERROR for each address, with the failure's sentence (what, why, the remedy) as
    ``last_error``: the worker takes the link down with it as the reason and backs off (0.1 s
    doubling up to the bus's ``max_backoff``), and each read it lets through tries again, so
    the bus recovers by itself when the device appears. Once open, this delegates to the
    device.
    """

    def __init__(self, name: str, timeout: float, build: Callable[[], Device],
                 describe: Callable[[BaseException], BaseException] = lambda exc: exc) -> None:
        """``describe(exc)``: the exception a failed ``build`` raised, in the user's words
        (``open_faults.open_fault``)."""
        super().__init__(name, timeout)
        self.build = build
        self.describe = describe
        self.device: Device | None = None
        self.attempts = 0

    @property
    def faults(self) -> Any:
        return getattr(self.device, "faults", None)

    def inject(self, address: str, kind: str, **params: float) -> None:
        raise ValueError(f"bus {self.name!r} is a real bus: faults are injected into "
                         "simulated ones")

    def clear(self, address: str | None = None) -> None:
        pass

    def _attach(self) -> Device | None:
        """Try to open the bus once; the open device, None while it does not open."""
        if self.device is not None:
            return self.device
        self.attempts += 1
        try:
            device = self.build()
            device.open()
        except (OSError, ImportError, ValueError) as exc:
            why = self.describe(exc)
            self.errors += 1
            self.last_error = f"I/O error: {why}"
            if self.attempts == 1:
                log.warning("bus %s: %s (tried again until it opens)", self.name, why)
            return None
        self.device = device
        if self.attempts > 1:
            log.info("bus %s: opened after %d attempts", self.name, self.attempts)
        return device

    def open(self) -> None:
        self._attach()

    def close(self) -> None:
        if self.device is not None:
            self.device.close()

    def read(self, addresses: Sequence[str]) -> list[Reading]:
        device = self._attach()
        if device is None:
            return [(math.nan, int(Quality.IO_ERROR))] * len(addresses)
        readings = device.read(addresses)
        self.errors = device.errors
        self.last_error = device.last_error
        return readings
