"""Simulated devices: the plant model behind the ``Device`` interface, with injectable faults.

The faults are those of the seed's troubleshooting matrix, placed by the ``simulated`` medium's
table (``catalog.faults.MEDIA``). Transaction faults: ``nack`` (I/O error), ``refused``
(connection refused), ``slow`` (an answer later than the timeout); at one address they fail
that sensor's reading alone (each sensor is its own transaction), at '*' the whole bus (a
gateway or bus that fails). Value faults, as a sensor fails: ``sentinel`` (-32768), ``stuck``
(the value freezes), ``noisy`` (jitter of ``sigma``), ``garbage`` (NaN: this bus has no wire
whose bytes could be corrupted, so the reading itself is unreadable).
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softrelay.catalog.faults import MEDIA, FaultKind, Where, kind_named
from softrelay.core import Quality
from softrelay.field.device import Device, Reading, link_fault
from softrelay.sim.plant import PlantModel

#: where each fault acts on a bus of kind ``simulated``
MEDIUM = MEDIA["simulated"]


@dataclass
class Fault:
    kind: FaultKind
    sigma: float = 5.0  #: for noisy
    delay: float | None = None  #: for slow: s (default: twice the timeout)
    held: float | None = None  #: for stuck


class SimulatedDevice(Device):
    def __init__(self, name: str, timeout: float, plant: PlantModel, seed: int = 1) -> None:
        super().__init__(name, timeout)
        self.plant = plant
        self.faults: dict[str, Fault] = {}
        self.rng = np.random.default_rng(seed)

    def inject(self, address: str, kind: str, **params: float) -> None:
        """Inject a fault at ``address`` ('*' for every address of this device)."""
        known = kind_named(kind)
        if known is None or known not in MEDIUM.where:
            raise ValueError(f"unknown fault {kind!r}")
        self.faults[address] = Fault(known, **params)

    def clear(self, address: str | None = None) -> None:
        if address is None:
            self.faults.clear()
        else:
            self.faults.pop(address, None)

    def _fault(self, address: str) -> Fault | None:
        return self.faults.get(address) or self.faults.get("*")

    def _transaction(self, fault: Fault) -> None:
        """Raise as a failed transaction does (after the timeout, for a slow one)."""
        if fault.kind == FaultKind.NACK:
            raise OSError(errno.EIO, "I/O error (no acknowledge)")
        if fault.kind == FaultKind.REFUSED:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        delay = fault.delay if fault.delay is not None else 2.0 * self.timeout
        time.sleep(min(delay, self.timeout))
        if delay > self.timeout:
            raise TimeoutError(f"no answer within {self.timeout * 1000:g} ms")

    def _read(self, addresses: Sequence[str]) -> list[float | Reading]:
        bus_fault = self.faults.get("*")
        if bus_fault is not None and MEDIUM.where[bus_fault.kind] is Where.TRANSACTION:
            self._transaction(bus_fault)
        sample = self.plant.snapshot()  # one transaction samples the plant once
        values: list[float | Reading] = []
        for address in addresses:
            fault = self.faults.get(address)
            if fault is not None and MEDIUM.where[fault.kind] is Where.TRANSACTION:
                try:
                    self._transaction(fault)
                except (OSError, TimeoutError) as exc:  # this address alone: say why
                    self.last_error = f"{link_fault(exc)}: {address}: {exc}"
                    values.append((math.nan, Quality.IO_ERROR))
                    continue
            try:
                value = sample[address]
            except KeyError:
                raise ValueError(f"the plant has no value at {address!r}") from None
            values.append(faulty_value(self._fault(address), value, self.rng))
        return values


def faulty_value(fault: Fault | None, value: float, rng: np.random.Generator) -> float:
    """``value`` as a sensor with ``fault`` reports it: ``sentinel`` -32768, ``stuck`` the
    first value it saw, ``noisy`` plus N(0, sigma), ``garbage`` NaN (the ``simulated`` medium's
    value faults; the I2C, SPI and Modbus twins call it for their element or value faults);
    any other fault (or none) leaves it alone."""
    if fault is None or MEDIUM.where.get(fault.kind) is not Where.VALUE:
        return value
    if fault.kind == FaultKind.SENTINEL:
        return -32768.0
    if fault.kind == FaultKind.STUCK:
        if fault.held is None:
            fault.held = value
        return fault.held
    if fault.kind == FaultKind.NOISY:
        return value + float(rng.normal(0.0, fault.sigma))
    return math.nan


def simulated_bus(config, plant: PlantModel | None = None, sampling=None) -> SimulatedDevice:
    """The registry's factory for a bus of kind ``simulated``: the plant's values read
    directly, with the faults above (``sampling``: unused)."""
    if plant is None:
        raise ValueError(f"bus {config.name!r} is simulated but there is no plant")
    return SimulatedDevice(config.name, config.timeout, plant)
