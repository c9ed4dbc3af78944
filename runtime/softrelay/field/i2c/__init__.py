"""I2C field devices through smbus2 (/dev/i2c-N).

A driver talks to an ``SMBus``-like object with ``i2c_rdwr``; on a Pi that is smbus2's SMBus, in
tests and the demo a ``sim.smbus.SimulatedSMBus`` whose chips (``sim.chips``) answer the
datasheet's bytes. The driver code is the same in both.
"""
