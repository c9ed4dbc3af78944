"""What stands in for the field in tests and the demo: the plant model, simulated devices with
faults, and the chips' and devices' twins.
"""
