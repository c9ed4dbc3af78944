"""Communications: what the relay shows to the DCS (the Modbus register map, the slave)."""
