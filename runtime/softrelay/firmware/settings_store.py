"""Settings changed in service (over Modbus), kept across restarts.

The configuration file holds the settings an engineer wrote. Changes made while the relay runs
are kept in ``<state file stem>.settings.json`` (written atomically by a ``Checkpointer``,
off the scan thread, with a checksum), with the hash of the configuration they were made over.
At start they are applied over the file's settings while that hash still matches. If the file
was edited since, the file wins (the engineer's newer word) and the kept changes are dropped;
a kept point that no longer exists, or whose settings no longer validate, is dropped with its
reason. Every outcome is returned as a message for the event recorder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from softrelay.firmware.memory import StateFileError, _checksum

FORMAT = 1


def settings_path(state_file: Path) -> Path:
    return state_file.with_name(f"{state_file.stem}.settings.json")


def document(changed: dict[str, dict], config_hash: int) -> dict:
    """What ``save`` writes: the changed points' complete settings."""
    payload = {"format": FORMAT, "config_hash": config_hash, "points": changed}
    return {"payload": payload, "sha256": _checksum(payload)}


def load(path: Path, current: dict, config_hash: int) -> tuple[dict, list[str]]:
    """(point -> validated settings to use instead of ``current``'s, messages)."""
    import json

    if not path.exists():
        return {}, []
    try:
        doc = json.loads(path.read_bytes())
        payload = doc["payload"]
        if doc["sha256"] != _checksum(payload) or payload.get("format") != FORMAT:
            raise StateFileError("checksum or format mismatch")
    except (ValueError, KeyError, TypeError) as exc:
        return {}, [f"settings changed in service not restored: {path.name} unreadable "
                    f"({exc.__class__.__name__})"]
    if payload["config_hash"] != config_hash:
        return {}, [f"settings changed in service dropped: the configuration file changed "
                    f"since ({len(payload['points'])} point(s): "
                    f"{', '.join(payload['points'])})"]
    kept, messages = {}, []
    for name, values in payload["points"].items():
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
