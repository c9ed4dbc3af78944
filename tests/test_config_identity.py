"""What identifies a configuration stays what it was: the hash the DCS reads in the map's
globals (``config_hash``) and the identity the kept settings are matched by
(``file_identity``) are computed from the models' JSON, whose key order is the models' field
order. Moving the models between modules (issue 16) or sharing a base among them must not
reorder a key: kept settings would stop matching their file after an upgrade.

The values were taken from the models before the split of config/schema.py."""

from __future__ import annotations

import yaml

from softrelay.config import demo_path, parse
from softrelay.config.identity import config_hash
from softrelay.records.kept_settings import file_identity


def demo_text(**bus_values) -> str:
    """The demo's file, every bus given ``bus_values`` (non-default values: they are in the
    file identity), plus a 'simulated' bus when any are given."""
    data = yaml.safe_load(demo_path().read_text())
    if bus_values:
        for bus in data["buses"]:
            bus.update(bus_values)
        data["buses"].append({"name": "plantbus", "kind": "simulated", **bus_values})
    return yaml.safe_dump(data, sort_keys=False)


def test_the_demo_is_identified_as_before():
    config = parse(demo_text())
    assert config_hash(config) == CONFIG_HASH
    assert file_identity(config) == FILE_IDENTITY


def test_every_bus_kind_with_its_timings_is_identified_as_before():
    config = parse(demo_text(timeout=0.3, max_backoff=2.5))
    assert config_hash(config) == CONFIG_HASH_BUSES
    assert file_identity(config) == FILE_IDENTITY_BUSES


CONFIG_HASH = 3310320904
FILE_IDENTITY = "6c739ffee140cf30eb5f02f3fdd90eb30a9d40757deb2faa510925f97e8bcb1a"
CONFIG_HASH_BUSES = 676743506
FILE_IDENTITY_BUSES = "2b76804ef1ccb27c9ce1ddc3bf50ef10c4985b72b8c1455315355a3dcff821d9"
