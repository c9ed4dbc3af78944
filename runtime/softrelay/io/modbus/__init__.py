"""Modbus field devices: register decoding (here); the TCP/RTU master follows (issue 4)."""
