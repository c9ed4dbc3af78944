"""Built-in device profiles: the register maps of devices the relay is commonly wired to.

A device's map is its profile's registers plus the registers its configuration adds (which may
replace a profile register of the same name). Each entry says where a quantity lives and how it
is coded (``registers.Register``); signals address it as ``<device>.<quantity>``.

``sdm630``: an Eastron SDM630-style three-phase meter. Input registers (FC04), float32, high
word first: phase voltages at 0x0000/02/04, phase currents at 0x0006/08/0A, phase angles (the
angle by which each current lags its own phase voltage, degrees) at 0x0024/26/28, frequency at
0x0046. The meter answers at most 80 registers per request. ``angle.a/b/c`` are the current
phasors' angles on a common reference, from the same registers: -phase angle + 0, -120, +120
degrees (a balanced voltage system in positive rotation is assumed).

``thermal_gateway``: the seed's Modbus thermal gateway. Temperatures of channels 1..N in input
registers 0..N-1 (int16, raw x 10^-decimals C, -32768 when a sensor is out of range);
emissivity x 100 in holding register 4005 and the scaling (decimals) in 4006, both written
from the configuration at connect and read back (``setup_writes``).
"""

from __future__ import annotations

from softrelay.field.modbus.registers import Register
from softrelay.modbus.protocol import READ_WORDS

EMISSIVITY_REGISTER = 4005
SCALING_REGISTER = 4006
SENTINEL = -32768.0


def _sdm630() -> dict[str, Register]:
    def f32(address: int, **kw) -> Register:
        return Register(address, "float32", table="input", **kw)

    regs: dict[str, Register] = {}
    for i, phase in enumerate("abc"):
        regs[f"voltage.{phase}"] = f32(0x0000 + 2 * i, valid=(0.0, 1e6))
        regs[f"current.{phase}"] = f32(0x0006 + 2 * i, valid=(0.0, 1e6))
        regs[f"phase_angle.{phase}"] = f32(0x0024 + 2 * i, valid=(-360.0, 360.0))
        regs[f"angle.{phase}"] = f32(0x0024 + 2 * i, scale=-1.0, offset=(0.0, -120.0, 120.0)[i],
                                     valid=(-720.0, 720.0))
    regs["frequency"] = f32(0x0046, valid=(0.0, 1000.0))
    return regs


def _thermal_gateway(channels: int, decimals: int) -> dict[str, Register]:
    regs = {f"ch{k + 1}": Register(k, "int16", table="input", scale=10.0 ** -decimals,
                                   sentinels=(SENTINEL,)) for k in range(channels)}
    regs["emissivity"] = Register(EMISSIVITY_REGISTER, "uint16", scale=0.01)
    regs["scaling"] = Register(SCALING_REGISTER, "uint16")
    return regs


MAX_READ = {"sdm630": 80}


def register_map(device) -> dict[str, Register]:
    """Quantity -> register of a configured ``ModbusDevice``."""
    if device.profile == "sdm630":
        regs = _sdm630()
    elif device.profile == "thermal_gateway":
        regs = _thermal_gateway(device.channels, device.decimals)
    else:
        regs = {}
    for r in device.registers:
        regs[r.name] = Register(r.address, r.type, table=r.table, word_order=r.word_order,
                                scale=r.scale, offset=r.offset, sentinels=tuple(r.sentinels),
                                valid=tuple(r.valid) if r.valid is not None else None)
    return regs


def quantities(device) -> list[str]:
    return list(register_map(device))


def max_read(device) -> int:
    """Registers per request: the configuration's, else the profile's limit, else the
    protocol's (125)."""
    if device.max_read is not None:
        return device.max_read
    return MAX_READ.get(device.profile or "", READ_WORDS)


def setup_writes(device) -> list[tuple[int, int]]:
    """(holding register, value) written at every connect and read back before any read is
    trusted: the seed's calibration step."""
    if device.profile != "thermal_gateway":
        return []
    writes = []
    if device.emissivity is not None:
        writes.append((EMISSIVITY_REGISTER, round(device.emissivity * 100)))
    writes.append((SCALING_REGISTER, device.decimals))
    return writes
