"""SPI field devices through spidev (/dev/spidevB.D).

A driver talks to a ``SpiDev``-like object (``xfer2``, ``mode``, ``max_speed_hz``); on a Pi that
is spidev's, in tests and the demo a ``sim.spidev.SimulatedSpiDev`` whose chip (``sim.chips``)
answers the datasheet's bytes. The driver code is the same in both.
"""
