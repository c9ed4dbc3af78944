"""Faults injected into a simulated I2C or SPI bus, acting where they act on real hardware.

Addressed as ``'<sensor>'`` (one chip), ``'<sensor>.<quantity>'`` (one quantity of a chip, value
faults only) or ``'*'`` (every chip on the bus).

On the wire (the simulated bus asks ``wire(sensor)`` at every transaction):
- ``nack``: I2C: the chip does not acknowledge (OSError EREMOTEIO; at ``'*'`` a bus held low).
  SPI has no acknowledge: nothing drives MISO, which reads its pull-up, 0xFF.
- ``slow``: I2C: the chip stretches the clock past the bus timeout (OSError ETIMEDOUT, after
  the timeout). An SPI master clocks every bit itself, so no SPI chip can answer late.
- ``garbage``: every byte of the answer corrupted (interference on a long cable).

In the sensing element, before the chip codes the value (twins read their feed through
``feed``): ``sentinel`` (the element failed: the feed gives NaN and the chip answers its own
"no reading" code: an open RTD, the MLX90614 error flag, the TMP117 reset value), ``stuck``
(frozen at the value it had), ``noisy`` (plus N(0, sigma)).

An ADC's input (``waveform``) can be broken (``sentinel``: pulled to 0 V, which the driver
sees clipped) or ``noisy``; it cannot be ``stuck`` (a frozen input is a DC level, which the
window's bias removal reads as no current: no chip or driver could flag it).

``refused`` is a network fault (a TCP gateway refusing connections): a local bus has no
equivalent and the configuration refuses it there.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from softrelay.catalog.chips import REFUSED_ON_CHIP
from softrelay.catalog.faults import MEDIA, FaultKind, Where, fault_refusal
from softrelay.sim.devices import Fault, faulty_value

__all__ = ["REFUSED_ON_CHIP", "BusFaults"]


class BusFaults:
    """The faults of one simulated bus of ``kind`` ('i2c' or 'spi'), settable from any thread."""

    def __init__(self, kind: str, sensors: dict[str, tuple[str, ...]], timeout: float,
                 seed: int = 1, sleep: Callable[[float], None] = time.sleep,
                 refused: dict[str, dict[str, str]] | None = None) -> None:
        """``sensors``: each chip's name -> its quantities (addresses are checked against it);
        ``refused``: a chip's name -> faults it cannot have -> why."""
        self.kind = kind
        self.medium = MEDIA[kind]  #: where each fault acts on this bus (``catalog.faults``)
        self.sensors = sensors
        self.refused = refused or {}
        self.timeout = timeout
        self.sleep = sleep
        self.faults: dict[str, Fault] = {}
        self.rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def check(self, address: str, kind: str) -> None:
        """Raise ValueError saying why ``kind`` cannot be injected at ``address`` (the reason
        the configuration gives, ``catalog.faults.fault_refusal``)."""
        refusal = fault_refusal(self.kind, self.sensors, self.refused, address, kind)
        if refusal is not None:
            raise ValueError(refusal[1])

    def inject(self, address: str, kind: str, **params: float) -> None:
        self.check(address, kind)
        with self._lock:
            self.faults[address] = Fault(FaultKind(kind), **params)

    def clear(self, address: str | None = None) -> None:
        with self._lock:
            if address is None:
                self.faults.clear()
            else:
                self.faults.pop(address, None)

    def _find(self, *addresses: str) -> Fault | None:
        with self._lock:
            for address in addresses:
                fault = self.faults.get(address)
                if fault is not None:
                    return fault
        return None

    def wire(self, sensor: str) -> Fault | None:
        """The wire fault a transaction with ``sensor`` meets now (the twin acts on it); a
        transaction fault (I2C's nack or slow) raises here, as the kernel's call would."""
        fault = self._find(sensor, "*")
        where = self.medium.where.get(fault.kind) if fault is not None else None
        if fault is None or where is Where.WIRE:
            return fault
        if where is not Where.TRANSACTION:
            return None  # in the sensing element: the chip answers, with what it senses
        if fault.kind == FaultKind.NACK:
            raise OSError(errno.EREMOTEIO, f"{sensor}: no acknowledge")
        delay = fault.delay if fault.delay is not None else 2.0 * self.timeout
        self.sleep(min(delay, self.timeout))
        if delay > self.timeout:  # slow: the clock stretched past the bus timeout
            raise OSError(errno.ETIMEDOUT, f"{sensor}: clock stretched past "
                                           f"{self.timeout * 1000:g} ms")
        return None

    def scramble(self, data: bytes) -> bytes:
        """``data`` as interference leaves it: every byte changed."""
        noise = self.rng.integers(1, 256, len(data), dtype=np.uint8)
        return bytes(np.frombuffer(bytes(data), np.uint8) ^ noise)

    def feed(self, sensor: str, quantity: str, feed: Callable[[], float]
             ) -> Callable[[], float]:
        """``feed`` as the chip's sensing element delivers it, under any element fault."""

        def element() -> float:
            value = feed()
            fault = self._find(f"{sensor}.{quantity}", sensor, "*")
            if fault is None or self.medium.where.get(fault.kind) is not Where.ELEMENT:
                return value
            if fault.kind == FaultKind.SENTINEL:
                return math.nan
            return faulty_value(fault, value, self.rng)

        return element

    def waveform(self, sensor: str, quantity: str, volts: Callable[[float], float],
                 per_amp: float) -> Callable[[float], float]:
        """An ADC input (``volts`` at a time) under any element fault: ``sentinel`` a broken
        input, pulled to 0 V; ``noisy`` plus N(0, sigma) amperes (``per_amp`` V per A)."""

        def element(t: float) -> float:
            fault = self._find(f"{sensor}.{quantity}", sensor, "*")
            if fault is None or self.medium.where.get(fault.kind) is not Where.ELEMENT:
                return volts(t)
            if fault.kind == FaultKind.SENTINEL:
                return 0.0
            return volts(t) + float(self.rng.normal(0.0, fault.sigma)) * per_amp

        return element
