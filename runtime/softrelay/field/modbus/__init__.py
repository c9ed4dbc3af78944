"""Modbus field devices, the relay as master: ``master`` (one pymodbus connection per TCP
gateway or RTU line), ``poller`` (every link from one thread), ``registers`` (words to values
and quality), ``profiles`` (built-in device register maps), ``frames`` (the bytes on the wire);
``twin`` and ``twin_server`` are the simulated devices tests and the demo poll."""
