"""What the relay knows about the hardware it is wired to, as pure data.

One place per fact: the chips (``chips``: bus, quantities, SPI modes and clock, the faults a
chip cannot have, its driver and its twin by ``"module:factory"``) and the faults a simulated
medium can carry (``faults``). The configuration validates against it, the drivers and the
twins register against it.

Contract: this package imports nothing of softrelay (a test reads its imports), so every layer
may import it and it never closes a cycle.
"""
