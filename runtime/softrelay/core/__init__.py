"""The protection core: table layout, validated settings, the NumPy reference and the bank.

The compiled implementation is ``softrelay._core`` (built from ``ext/``); ``backend`` chooses.
"""

from softrelay.core.bank import ProtectionCore
from softrelay.core.layout import (
    CHANNEL_NAMES,
    PHASE_NAMES,
    BusbarFlag,
    ChannelFault,
    Command,
    InputMode,
    PhasePair,
    Quality,
    ThermalFlag,
    flag_bits,
    set_flags,
)
from softrelay.core.settings import BusbarSettings, ThermalSettings

__all__ = [
    "CHANNEL_NAMES",
    "PHASE_NAMES",
    "BusbarFlag",
    "BusbarSettings",
    "ChannelFault",
    "Command",
    "InputMode",
    "PhasePair",
    "ProtectionCore",
    "Quality",
    "ThermalFlag",
    "ThermalSettings",
    "flag_bits",
    "set_flags",
]
