"""Field I/O that runs on the target: the device interface, bus workers, the I2C, SPI and Modbus
drivers, the companion process.
"""
