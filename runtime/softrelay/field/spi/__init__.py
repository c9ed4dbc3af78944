"""SPI field devices through spidev (/dev/spidevB.D), and simulated twins at the transfer level.

A driver talks to a ``SpiDev``-like object (``xfer2``, ``mode``, ``max_speed_hz``); on a Pi that
is spidev's, in tests and the demo a ``SimulatedSpiDev`` whose chip answers the datasheet's
bytes. The driver code is the same in both.
"""
