"""What stands in for the field in tests and the demo: the plant model, simulated devices with
faults, the chips' twins (``chips``), the simulated buses that carry them (``buses``, the
stand-ins ``field.registry`` names) and the Modbus devices' twins and their server.
"""
