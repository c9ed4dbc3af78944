"""The relay's configuration file: the models by subject, loading with errors that name file,
line and key.

``relay`` (the root, ``RelayConfig``), ``scan``, ``state`` (thermal memory, events, the state
directory), ``health`` (the healthy contact's policy), ``buses`` (and the chips and Modbus
devices on them), ``points`` (signals and protected points), ``outputs`` (coils, inputs, GPIO),
``modbus`` (the slaves, TLS, access levels), ``telemetry`` (metrics, MQTT, SNMP), ``plant``
(the simulation); ``references`` checks the names that tie them together and ``loader`` reads
a file. Configuration validates against the hardware catalog (``softrelay.catalog``) and the
core's settings, and imports nothing else of softrelay.
"""

from softrelay.config.loader import ConfigError, Problem, demo_path, load, parse
from softrelay.config.relay import RelayConfig

__all__ = ["ConfigError", "Problem", "RelayConfig", "demo_path", "load", "parse"]
