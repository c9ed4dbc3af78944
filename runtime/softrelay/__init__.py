"""softrelay: a soft protection relay for Linux gateways and Raspberry Pis.

Data flows one way: field I/O -> input image -> compiled core (one pass) -> outputs ->
communications. ``softrelay.core`` holds the protection maths and the tables it runs on.
"""

__version__ = "0.1.0"
