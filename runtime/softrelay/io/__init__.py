"""Field I/O: devices behind buses, their polling workers, and the simulated plant."""
