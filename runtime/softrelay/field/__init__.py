"""Field I/O that runs on the target: the device interface, bus workers, the I2C, SPI and Modbus
drivers, the companion process, and the registry (``registry``) that finds the code of each
kind of bus by name. Nothing here imports ``softrelay.sim``: a simulated bus is reached by the
registry's ``"module:factory"`` strings, imported only when a configuration asks for one.
"""
