"""How much one relay's configuration may hold: what the register map has room for.

Map version 3 gives every point a block and an extension block, and every field bus a link
block after the last extension block (``modbus.regmap``): 1 050 points (the status summary's
room) and 84 buses. An address once given keeps its meaning, so these only grow with a new
map version; a test holds them equal to what the map's layout yields.
"""

from __future__ import annotations

#: points the register map holds at most
MAX_POINTS = 1050
#: field buses the register map holds at most
MAX_BUSES = 84

#: top-level sections whose length the register map bounds: section -> most items
MAP_LIMITS = {"points": MAX_POINTS, "buses": MAX_BUSES}
