"""Settings changed in service (over Modbus), kept across restarts and upgrades.

The configuration file holds the settings an engineer wrote. Changes made while the relay runs
are kept in ``<state file stem>.settings.json`` (written atomically by a ``Checkpointer``,
off the scan thread, with a checksum), with the identity of the configuration they were made
over. At start they are applied over the file's settings while that identity still matches.
If the file was edited since, the file wins (the engineer's newer word) and the kept changes
are dropped; a kept point that no longer exists, or whose settings no longer validate, is
dropped with its reason. Every outcome is returned as a message for the event recorder.

The identity (``file_identity``) is the SHA-256 of the validated configuration without the
values left at their defaults: what the engineer wrote. An upgrade of softrelay that adds a
setting (with its default) does not change it, so the kept changes carry over; the register
map's ``config_hash`` (of the whole validated configuration) does change then.

Formats: 1 (softrelay 0.1.0) kept only ``config_hash``, which an upgrade that adds a setting
changes: a format 1 file is migrated and restored while that hash still matches, and dropped,
saying why, when it does not (neither an edit of the file nor an upgrade can be ruled out).
2 adds ``file_identity`` and ``written_by``. A newer format than this softrelay reads (after
a downgrade) is not restored, and said so.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from softrelay import __version__
from softrelay.config.identity import config_hash
from softrelay.config.relay import RelayConfig
from softrelay.config.state import settings_path as settings_path  # where it lives
from softrelay.records.thermal_memory import StateFileError, _checksum

FORMAT = 2


def file_identity(config: RelayConfig) -> str:
    """SHA-256 (hex) of ``config`` without its default values: the same file gives the same
    identity under any softrelay that reads it the same way."""
    return hashlib.sha256(config.model_dump_json(exclude_defaults=True).encode()).hexdigest()


def document(changed: dict[str, dict], config: RelayConfig) -> dict:
    """What ``save`` writes: the changed points' complete settings."""
    payload = {"format": FORMAT, "written_by": __version__,
               "file_identity": file_identity(config), "config_hash": config_hash(config),
               "points": changed}
    return {"payload": payload, "sha256": _checksum(payload)}


def load(path: Path, current: dict, config: RelayConfig) -> tuple[dict, list[str]]:
    """(point -> validated settings to use instead of ``current``'s, messages)."""
    if not path.exists():
        return {}, []
    try:
        doc = json.loads(path.read_bytes())
        payload = doc["payload"]
        if doc["sha256"] != _checksum(payload):
            raise StateFileError("checksum mismatch")
        saved = payload.get("format")
        if not isinstance(saved, int) or isinstance(saved, bool) or saved < 1:
            raise StateFileError(f"format {saved!r} is not a format")
        if not isinstance(payload["points"], dict):
            raise StateFileError("points is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        return {}, [f"settings changed in service not restored: {path.name} unreadable "
                    f"({exc.__class__.__name__}: {exc})"]
    points, messages = payload["points"], []
    if saved > FORMAT:
        return {}, [f"settings changed in service not restored: {path.name} is format {saved} "
                    f"(written by softrelay {payload.get('written_by', 'unknown')}), this "
                    f"softrelay {__version__} reads formats up to {FORMAT} (a downgrade?); "
                    f"the file stays until a setting is changed in service"]
    if saved == 1:
        if payload.get("config_hash") != config_hash(config):
            return {}, [f"settings changed in service dropped: {path.name} is format 1 "
                        f"(softrelay 0.1.0), which kept only the configuration hash, and that "
                        f"changed since: the file was edited or this softrelay added a setting "
                        f"({len(points)} point(s): {', '.join(points)}; write them again)"]
        messages.append(f"settings changed in service: {path.name} is format 1 (softrelay "
                        f"0.1.0), migrated to format {FORMAT}")
    elif payload.get("file_identity") != file_identity(config):
        return {}, [f"settings changed in service dropped: the configuration file changed "
                    f"since ({len(points)} point(s): {', '.join(points)})"]
    kept = {}
    for name, values in points.items():
        if name not in current:
            messages.append(f"settings of {name!r} dropped: no such point")
            continue
        model = type(current[name])
        try:
            kept[name] = model.model_validate(values)
        except ValidationError as exc:
            messages.append(f"settings of {name} dropped: {exc.errors()[0]['msg']}")
            continue
        diff = [f"{k} {getattr(current[name], k)} -> {v}" for k, v in values.items()
                if getattr(current[name], k) != v]
        messages.append(f"settings of {name} changed in service restored: "
                        f"{', '.join(diff) or 'as the file'}")
    return kept, messages


def changed_points(current: dict, configured: dict) -> dict[str, dict]:
    """The points whose settings differ from the configuration file's, to keep."""
    return {name: s.model_dump() for name, s in current.items() if s != configured[name]}
