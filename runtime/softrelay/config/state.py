"""Where a relay keeps what must survive it: the thermal memory, the events, the settings
changed in service, and the state directory they resolve in (``state_paths``).

Describes and resolves paths; never creates or opens a file (``state_paths`` reads the
environment, nothing else).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from softrelay.config.base import STRICT

if TYPE_CHECKING:
    from softrelay.config.relay import RelayConfig


class State(BaseModel):
    """Thermal memory: where it is kept, how often, and what a power loss means.

    The files live in one declared place, the state directory (``state_paths``): relative
    file names resolve there, never in the working directory.
    """

    model_config = STRICT
    dir: Path | None = Field(None, description="the state directory (absolute, ~ allowed); "
                             "$STATE_DIRECTORY wins under systemd; none: "
                             "$XDG_STATE_HOME/softrelay/<relay name> (~/.local/state/...)")
    file: Path = Field(description="the thermal memory; relative: in the state directory")
    checkpoint_interval: float = Field(10.0, ge=0.1, le=3600.0, description="s")
    power_loss: Literal["freeze", "cool", "preset"] = Field(
        "cool", description="freeze: keep theta; cool: cool for the outage (wall clock); "
                            "preset: assume preset_theta"
    )
    preset_theta: float = Field(1.0, ge=0.0, le=10.0, description="theta assumed by 'preset'")

    @field_validator("dir")
    @classmethod
    def _absolute_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_absolute():
            raise ValueError(f"{str(value)!r} must be absolute: a relative one would follow "
                             "the working directory")
        return value


class Events(BaseModel):
    """The event recorder: its ring, and its file, rotated by size."""

    model_config = STRICT
    file: Path | None = Field(None, description="append-only JSON lines; relative: in the "
                              "state directory; none: memory only")
    ring_size: int = Field(4096, ge=1024, le=1_000_000)
    max_bytes: int = Field(1 << 20, ge=4096, le=1 << 30, description="the live file is "
                           "rotated (file.1, file.2, ...) before it grows past this, bytes")
    keep: int = Field(5, ge=1, le=1000, description="event files kept, the live one "
                      "included; the oldest is deleted")


@dataclass(frozen=True)
class StatePaths:
    """Where a relay's files are, absolute: what ``state_paths`` resolved."""

    dir: Path  #: the state directory
    origin: str  #: where ``dir`` came from ($STATE_DIRECTORY, state.dir, the XDG default)
    memory: Path  #: the thermal memory (state.file)
    events: Path | None  #: the event file, None: memory only
    mqtt_queue: Path | None  #: the MQTT queue, None: no MQTT


def state_dir(config: RelayConfig, environ: Mapping[str, str] | None = None
              ) -> tuple[Path, str]:
    """(the state directory, where it came from): ``$STATE_DIRECTORY`` (its first entry) when
    set (systemd's StateDirectory=), else ``state.dir``, else
    ``$XDG_STATE_HOME/softrelay/<relay name>`` with XDG's default ``~/.local/state``."""
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd and Path(systemd).is_absolute():
        return Path(systemd), "$STATE_DIRECTORY"
    if config.state.dir is not None:
        return config.state.dir.expanduser(), "state.dir"
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # XDG: a relative value is to be ignored
        return Path(xdg) / "softrelay" / config.name, "$XDG_STATE_HOME"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "softrelay" / config.name, "the default ~/.local/state"


def state_paths(config: RelayConfig, environ: Mapping[str, str] | None = None) -> StatePaths:
    """The relay's files as absolute paths, relative names resolved in ``state_dir``.

    Kept out of the validated model on purpose: the model (and so the configuration hash
    the kept settings and the DCS see) stays the file's, the same on every machine, while
    the directory is the machine's. The relay, its helper processes and ``softrelay
    check`` all resolve through here.
    """
    base, origin = state_dir(config, environ)

    def resolve(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else base / path

    return StatePaths(
        dir=base, origin=origin, memory=resolve(config.state.file),
        events=resolve(config.events.file) if config.events.file is not None else None,
        mqtt_queue=resolve(config.mqtt.queue.file) if config.mqtt is not None else None)


def settings_path(state_file: Path) -> Path:
    """The file of the settings changed in service, beside the thermal memory ``state_file``
    (``records.kept_settings`` keeps them there)."""
    return state_file.with_name(f"{state_file.stem}.settings.json")
