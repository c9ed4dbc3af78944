"""The built-in plant model: motors and busbars with thermal physics that react to the coils.

It drives the simulated devices for the demo and the end-to-end tests:
- a motor follows its load profile while its breaker is closed; the breaker opens when the
  trip coil operates and closes again ``restart_delay`` after the close (permissive) coil has
  been operated continuously;
- a busbar's phase conductors heat towards ambient + rise_at_rated x (I / I_rated)^2 with their
  time constant (exact exponential steps), one phase may carry a developing bad joint, and the
  sensors add noise.

Plant time is monotonic time x ``speed``; the model advances lazily to the time of each read.
It never touches the relay's scan: it only reads coil states through a callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from softrelay.config.plant import Plant, PlantBusbar, PlantMotor

PHASES = "abc"


class MotorModel:
    def __init__(self, cfg: PlantMotor, coil: Callable[[str], bool]) -> None:
        self.cfg = cfg
        self.coil = coil
        self.breaker_closed = True
        self.permissive_since: float | None = None
        self.opened = 0
        self.closed = 0

    def load(self, t: float) -> float:
        """Per-unit load of the profile at plant time t (repeating; a step function)."""
        profile = self.cfg.load_profile
        cycle = profile[-1][0]
        if cycle > 0:
            t = t % cycle if t >= cycle else t
        level = profile[0][1]
        for start, value in profile:
            if t >= start:
                level = value
        return level

    def update(self, t: float) -> None:
        if self.breaker_closed and self.coil(self.cfg.trip_coil):
            self.breaker_closed = False
            self.opened += 1
            self.permissive_since = None
        elif not self.breaker_closed and self.cfg.close_coil is not None:
            if self.coil(self.cfg.close_coil) and not self.coil(self.cfg.trip_coil):
                if self.permissive_since is None:
                    self.permissive_since = t
                elif t - self.permissive_since >= self.cfg.restart_delay:
                    self.breaker_closed = True
                    self.closed += 1
            else:
                self.permissive_since = None

    def values(self, t: float) -> dict[str, float]:
        amps = self.load(t) * self.cfg.rated_current if self.breaker_closed else 0.0
        out = {}
        for k, phase in enumerate(PHASES):
            factor = 1.0 + (self.cfg.unbalance if phase == "c" else 0.0)
            out[f"current.{phase}"] = amps * factor
            out[f"angle.{phase}"] = (0.0, -120.0, 120.0)[k]
        out["breaker"] = 1.0 if self.breaker_closed else 0.0
        return out


class BusbarModel:
    def __init__(self, cfg: PlantBusbar, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        # A bar in service is warm: start at the steady state of its load.
        self.temps = np.full(3, cfg.ambient + cfg.rise_at_rated * cfg.load**2)
        self.t = 0.0

    def joint_extra(self, t: float) -> float:
        fault = self.cfg.joint_fault
        if fault is None or t < fault.start:
            return 0.0
        return fault.extra_rise * (1.0 - math.exp(-(t - fault.start) / fault.develop_time))

    def update(self, t: float) -> None:
        dt = t - self.t
        if dt <= 0.0:
            return
        cfg = self.cfg
        rise = cfg.rise_at_rated * cfg.load**2
        target = np.full(3, cfg.ambient + rise)
        if cfg.joint_fault is not None:
            target["ABC".index(cfg.joint_fault.phase)] += self.joint_extra(t) * cfg.load**2
        self.temps = target + (self.temps - target) * math.exp(-dt / cfg.tau)
        self.t = t

    def values(self, t: float) -> dict[str, float]:
        noise = self.rng.normal(0.0, self.cfg.noise, 4) if self.cfg.noise else np.zeros(4)
        out = {f"temp.{p}": float(self.temps[k] + noise[k]) for k, p in enumerate(PHASES)}
        out["temp.ambient"] = self.cfg.ambient + float(noise[3])
        amps = self.cfg.load * self.cfg.rated_current
        out.update({f"current.{p}": amps for p in PHASES})
        return out


class PlantModel:
    """Every simulated motor and busbar; ``read(address)`` as the devices see it."""

    def __init__(self, cfg: Plant, coil: Callable[[str], bool], *,
                 clock: Callable[[], float] = time.monotonic, seed: int = 0) -> None:
        self.cfg = cfg
        self.clock = clock
        self.start = clock()
        rng = np.random.default_rng(seed)
        self.motors = {m.name: MotorModel(m, coil) for m in cfg.motors}
        self.busbars = {b.name: BusbarModel(b, rng) for b in cfg.busbars}
        self._cache: dict[str, float] = {}
        self._cache_t = -1.0

    def time(self) -> float:
        """Plant time, s."""
        return (self.clock() - self.start) * self.cfg.speed

    def snapshot(self) -> dict[str, float]:
        """Every value at the present plant time, by address ('motor1.current.a', ...)."""
        t = self.time()
        if t != self._cache_t:
            values: dict[str, float] = {}
            for name, motor in self.motors.items():
                motor.update(t)
                values.update({f"{name}.{k}": v for k, v in motor.values(t).items()})
            for name, bar in self.busbars.items():
                bar.update(t)
                values.update({f"{name}.{k}": v for k, v in bar.values(t).items()})
            self._cache, self._cache_t = values, t
        return self._cache

    def phasor(self, address: str) -> tuple[float, float]:
        """RMS and angle (degrees) of a current ('motor1.current.a'): its angle from the
        plant where it has one ('motor1.angle.a'), else the phase's place in a balanced set."""
        values = self.snapshot()
        rms = self.read(address)
        owner, _, phase = address.rpartition(".current.")
        angle = values.get(f"{owner}.angle.{phase}")
        if angle is None:
            angle = (0.0, -120.0, 120.0)[PHASES.index(phase)] if phase in PHASES else 0.0
        return rms, angle

    def read(self, address: str) -> float:
        try:
            return self.snapshot()[address]
        except KeyError:
            raise ValueError(f"the plant has no value at {address!r}") from None
