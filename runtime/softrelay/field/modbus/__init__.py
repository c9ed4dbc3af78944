"""Modbus field devices, the relay as master: ``master`` (one pymodbus connection per TCP
gateway or RTU line), ``poller`` (every link from one thread), ``device`` (a link as a
``Device``: the registry's factories), ``registers`` (words to values and quality),
``profiles`` (built-in device register maps). The frames are ``softrelay.modbus.protocol``'s;
the simulated devices tests and the demo poll are ``sim.modbus_twin`` and ``sim.twin_server``."""
