"""What watches the relay from outside: Prometheus metrics, MQTT, SNMPv3 traps.

All of it runs in the telemetry process (``process.telemetry_main``), which reads the scan's
output snapshot and the input image from shared memory and receives the events over a Unix
stream socket (``feed``): a slow broker, a hung trap receiver or a scraper cannot hold the
scan's lock.
"""
