"""What the relay shows to the DCS over Modbus: the protocol, the register map and image, the
slaves (TCP, RTU, TLS), writes, the event window, the status client.
"""
