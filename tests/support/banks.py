"""Random but valid banks of points and random scan inputs, for the equality proofs.

Values are drawn to reach every branch of the maths: trips within a few scans, starts, resets
and presets, unusable currents (single scans and outages of several, so the loss delay and
the hold run out), every sensor fault and quality (the sentinel too), a lost ambient with its
fallback, the absolute limits (or them off), spikes, hot joints.
"""

from __future__ import annotations

import numpy as np

from softrelay.core.bank import (
    empty_busbar_inputs,
    empty_thermal_inputs,
    initial_busbar_state,
    initial_thermal_state,
)
from softrelay.core.layout import (
    BUSBAR_OUTPUTS,
    BUSBAR_SETTINGS,
    THERMAL_OUTPUTS,
    THERMAL_SETTINGS,
    Command,
    InputMode,
    Quality,
)


class RandomBank:
    """One random relay: settings, state and outputs of both kinds, and its input stream."""

    def __init__(self, seed: int, n_thermal: int, n_busbar: int, spc: int, cycles: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.spc = spc
        self.length = spc * cycles
        self.th_settings = self._thermal_settings(n_thermal)
        self.th_inputs = empty_thermal_inputs(n_thermal)
        self.window = np.zeros((n_thermal, 3, self.length))
        self.th_state = initial_thermal_state(self.th_settings)
        self.th_out = np.zeros(n_thermal, THERMAL_OUTPUTS)
        self.bb_settings = self._busbar_settings(n_busbar)
        self.bb_inputs = empty_busbar_inputs(n_busbar)
        self.bb_state = initial_busbar_state(n_busbar)
        self.bb_out = np.zeros(n_busbar, BUSBAR_OUTPUTS)
        self.load = self.rng.uniform(0.0, 4.0, n_thermal)  # per-unit, drifts scan to scan
        self.ambient = self.rng.uniform(-10.0, 40.0, n_busbar)
        self.rise = self.rng.uniform(0.0, 45.0, (n_busbar, 3))
        self.now = 1000.0
        self.th_outage = np.zeros(n_thermal, dtype=np.int64)  # scans of outage left
        self.bb_outage = np.zeros((n_busbar, 4), dtype=np.int64)

    def _thermal_settings(self, n: int) -> np.ndarray:
        r = self.rng
        s = np.zeros(n, THERMAL_SETTINGS)
        s["i_b"] = r.uniform(1.0, 1000.0, n)
        s["t_heat"] = r.uniform(0.5, 600.0, n)
        s["t_cool"] = s["t_heat"] * r.uniform(1.0, 5.0, n)
        s["k2"] = np.where(r.random(n) < 0.3, 0.0, r.uniform(0.0, 10.0, n))
        s["kst"] = r.uniform(1.0, 3.0, n)
        s["start_current"] = r.uniform(0.2, 6.0, n)
        s["start_time_max"] = r.uniform(0.05, 20.0, n)
        s["theta_trip"] = r.uniform(0.5, 2.0, n)
        alarms = np.sort(r.uniform(0.05, 0.999, (n, 2)), axis=1)
        s["theta_al1"] = alarms[:, 0] * s["theta_trip"]
        s["theta_al2"] = alarms[:, 1] * s["theta_trip"]
        s["theta_inhibit"] = r.uniform(0.05, 0.999, n) * s["theta_trip"]
        s["theta_reset"] = r.uniform(0.0, 0.999, n) * s["theta_trip"]
        s["theta_initial"] = r.uniform(0.0, 2.0, n) * s["theta_trip"]
        s["dropout_ratio"] = r.uniform(0.9, 1.0, n)
        s["stale_limit"] = r.uniform(0.05, 5.0, n)
        s["input_mode"] = r.choice(list(InputMode), n)
        s["latch"] = r.random(n) < 0.7
        s["input_loss_delay"] = np.where(r.random(n) < 0.2, 0.0, r.uniform(0.0, 3.0, n))
        s["input_loss"] = r.random(n) < 0.5  # InputLoss.HOLD or FREEZE
        s["input_loss_hold"] = np.where(r.random(n) < 0.2, 0.0, r.uniform(0.0, 5.0, n))
        return s

    def _busbar_settings(self, n: int) -> np.ndarray:
        r = self.rng
        s = np.zeros(n, BUSBAR_SETTINGS)
        s["warning_delta"] = r.uniform(5.0, 20.0, n)
        s["critical_delta"] = s["warning_delta"] + r.uniform(1.0, 20.0, n)
        s["imbalance_max"] = r.uniform(2.0, 10.0, n)
        s["rate_limit"] = r.uniform(0.5, 30.0, n)
        s["hyst_delta"] = r.uniform(0.0, 1.9, n)
        s["hyst_rate"] = r.uniform(0.0, 0.4, n)
        for name in ("warning", "critical", "imbalance", "rate", "joint"):
            s[f"pickup_{name}"] = np.where(r.random(n) < 0.3, 0.0, r.uniform(0.0, 3.0, n))
        s["valid_min"] = -40.0
        s["valid_max"] = 125.0
        s["sentinel"] = -32768.0
        s["stale_limit"] = r.uniform(0.5, 10.0, n)
        s["kalman_r"] = r.uniform(0.05, 2.0, n)
        s["kalman_q"] = 10.0 ** r.uniform(-8.0, 0.0, n)
        s["erratic_gate"] = r.uniform(2.0, 6.0, n)
        s["erratic_limit"] = r.uniform(0.5, 4.0, n)
        s["joint_ratio"] = r.uniform(1.05, 3.0, n)
        s["joint_min_current"] = r.uniform(1.0, 50.0, n)
        s["joint_balance"] = r.uniform(0.02, 0.5, n)
        s["joint_min_excess"] = r.uniform(0.0, 5.0, n)
        s["input_loss_delay"] = np.where(r.random(n) < 0.2, 0.0, r.uniform(0.0, 3.0, n))
        s["ambient_fallback"] = r.uniform(-10.0, 50.0, n)
        # absolute limits inside the phases' reach (ambient + rise spans -10 .. 120 C); off
        # (NaN) now and then
        s["warning_abs"] = r.uniform(20.0, 90.0, n)
        s["critical_abs"] = s["warning_abs"] + r.uniform(1.0, 30.0, n)
        s["warning_abs"][r.random(n) < 0.15] = np.nan
        s["critical_abs"][r.random(n) < 0.15] = np.nan
        return s

    def next_inputs(self, dt: float) -> None:
        """Advance time by dt and write the next scan's inputs."""
        r = self.rng
        self.now += dt
        self._thermal_inputs(r)
        self._busbar_inputs(r, dt)

    def _thermal_inputs(self, r: np.random.Generator) -> None:
        x, n = self.th_inputs, len(self.th_inputs)
        if n == 0:
            return
        jump = r.random(n) < 0.15
        self.load = np.where(jump, r.choice([0.0, 0.05, 1.0, 3.0, 8.0], n), self.load)
        self.load = np.abs(self.load + r.normal(0.0, 0.05, n))
        amps = (self.load * self.th_settings["i_b"])[:, None] * r.uniform(0.6, 1.4, (n, 3))
        amps[r.random((n, 3)) < 0.02] = np.nan
        amps[r.random((n, 3)) < 0.01] *= -1.0
        x["mag"] = amps
        x["ang"] = np.array([0.0, -120.0, 120.0]) + r.normal(0.0, 25.0, (n, 3))
        x["stamp"] = self.now - np.where(r.random(n) < 0.05, 50.0, r.uniform(0.0, 0.04, n))
        # outages that last several scans, so that the loss delay and the hold run out
        self.th_outage = np.where(r.random(n) < 0.05, r.integers(1, 12, n),
                                  np.maximum(self.th_outage - 1, 0))
        bad = (r.random(n) < 0.06) | (self.th_outage > 0)
        x["quality"] = np.where(bad, r.integers(1, 5, n), Quality.GOOD)
        command = np.where(r.random(n) < 0.08, Command.RESET, 0)
        command |= np.where(r.random(n) < 0.03, Command.PRESET, 0)
        x["command"] = command
        x["preset_theta"] = r.choice([np.nan, -1.0, 0.0, 0.5, 1.5, 3.0], n)
        x["interleave"] = r.choice([0, 0, 1, 3, 4, 255], n)
        t = np.arange(self.length) / self.spc * 2.0 * np.pi
        phase = np.deg2rad(x["ang"])[..., None]
        mag = np.nan_to_num(amps)[..., None] * np.sqrt(2.0)
        h5, h11 = r.uniform(0.0, 0.3, (n, 1, 1)), r.uniform(0.0, 0.1, (n, 1, 1))
        self.window[:] = mag * (
            np.cos(t + phase) + h5 * np.cos(5 * t + phase) + h11 * np.cos(11 * t)
        )

    def _busbar_inputs(self, r: np.random.Generator, dt: float) -> None:
        x, n = self.bb_inputs, len(self.bb_inputs)
        if n == 0:
            return
        self.rise = np.clip(self.rise + r.normal(0.0, 2.0 * dt, (n, 3)), 0.0, 80.0)
        fresh = r.random((n, 4)) < 0.7
        temps = np.column_stack([self.ambient[:, None] + self.rise, self.ambient])
        temps = temps + r.normal(0.0, 0.3, (n, 4))
        spikes = r.random((n, 4)) < 0.04
        temps[spikes] += r.choice([-30.0, 25.0, 60.0], spikes.sum())
        bad = r.random((n, 4))
        temps[bad < 0.01] = np.nan
        temps[(bad >= 0.01) & (bad < 0.02)] = -32768.0
        temps[(bad >= 0.02) & (bad < 0.025)] = 180.0
        x["temp"] = np.where(fresh, temps, x["temp"])
        stamps = self.now - np.where(r.random((n, 4)) < 0.02, 100.0, 0.0)
        x["stamp"] = np.where(fresh, stamps, x["stamp"])
        self.bb_outage = np.where(r.random((n, 4)) < 0.03, r.integers(1, 12, (n, 4)),
                                  np.maximum(self.bb_outage - 1, 0))
        bad = (r.random((n, 4)) < 0.03) | (self.bb_outage > 0)
        x["quality"] = np.where(bad, r.integers(1, 6, (n, 4)), Quality.GOOD)
        base = r.uniform(0.0, 400.0, (n, 1))
        current = base * r.uniform(0.85, 1.15, (n, 3))
        current[r.random(n) < 0.2] = np.nan
        x["current"] = current

    def tables(self) -> tuple:
        """Copies of every table, in run_scan's argument order."""
        return tuple(
            a.copy()
            for a in (
                self.th_settings, self.th_inputs, self.window, self.th_state, self.th_out,
                self.bb_settings, self.bb_inputs, self.bb_state, self.bb_out,
            )
        )
