"""Which configuration a relay runs: the hash the DCS reads in the register map's globals.

``config_hash`` covers the whole validated configuration, softrelay's defaults included, so it
changes when an upgrade adds a setting even though the file did not change (the kept settings
are matched by ``records.kept_settings.file_identity`` instead, which leaves defaults out).
"""

from __future__ import annotations

import hashlib

from softrelay.config.relay import RelayConfig


def config_hash(config: RelayConfig) -> int:
    """First 32 bits of the SHA-256 of the validated configuration (canonical JSON)."""
    text = config.model_dump_json()
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
