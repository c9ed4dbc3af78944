"""What a Modbus write does to the relay: commands, preset theta, the unlock, settings.

``RelayWrites.write(items)`` takes the whole entries one request writes (see
``modbus_pdu.Writes``) and either applies all of them or refuses all with an exception code:

- coils ``reset`` / ``acknowledge`` (a point's, or the relay's ``*_all``): writing 1 queues the
  command for the next scan (as the relay's button would); writing 0 does nothing;
- ``<point>.preset_theta`` (float32, 0..10): queues a preset; anything else is 03;
- ``relay.event_cursor`` (uint32): moves the event window (``event_window``);
- ``relay.unlock`` (uint32): the configured code unlocks settings writes for
  ``unlock.minutes``; 0 locks again; a wrong code is refused (04) and recorded, never logged;
- settings (RW-unlocked): while unlocked, the point's settings with the written values are
  validated exactly as the configuration file is and queued for the next scan (03 when they do
  not validate: the reason is recorded as an event); while locked, 04.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import time
from collections.abc import Callable

from pydantic import ValidationError

from softrelay.comms.event_window import EventWindow
from softrelay.comms.modbus_pdu import DEVICE_FAILURE, ILLEGAL_VALUE
from softrelay.comms.regmap import ENUM_SETTINGS, Entry
from softrelay.config.schema import SettingsUnlock
from softrelay.core.settings import INPUT_LOSS
from softrelay.outputs.commands import CommandQueue, Request
from softrelay.outputs.settings_changes import SettingsQueue

Record = Callable[..., None]
#: enumerated settings whose register holds a code: code -> the model's word
ENUM_WORDS = {"input_loss": {int(v): k for k, v in INPUT_LOSS.items()}}
#: settings that a NaN switches off (null in the file)
SWITCHED_OFF_BY_NAN = {"warning_abs", "critical_abs"}


def as_float32(raw: int) -> float:
    return struct.unpack(">f", raw.to_bytes(4, "big"))[0]


def unlock_code(config: SettingsUnlock | None) -> int | None:
    """The configured unlock code: the environment variable's (when named and set), else the
    file's; None when there is none. Never logged."""
    if config is None:
        return None
    if config.code_env:
        text = os.environ.get(config.code_env, "").strip()
        if text:
            value = int(text, 0)
            if not 1 <= value <= 0xFFFFFFFF:
                raise ValueError(f"${config.code_env}: an unlock code is 1..4294967295")
            return value
    return config.code


class Unlock:
    """Settings writes allowed for ``minutes`` after the right code; no code: never."""

    def __init__(self, code: int | None, minutes: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 record: Record | None = None) -> None:
        self.code = code
        self.minutes = minutes
        self.clock = clock
        self.record = record
        self._until = -math.inf
        self._lock = threading.Lock()

    @property
    def unlocked(self) -> bool:
        with self._lock:
            return self.clock() < self._until

    def offer(self, value: int, source: str = "modbus") -> int:
        """0 locks; the code unlocks; anything else is refused (04). Returns the exception
        code (0: done)."""
        with self._lock:
            if value == 0:
                self._until = -math.inf
                outcome, code = "settings locked", 0
            elif self.code is not None and value == self.code:
                self._until = self.clock() + 60.0 * self.minutes
                outcome, code = f"settings unlocked for {self.minutes:g} min", 0
            else:
                outcome = ("unlock refused: wrong code" if self.code is not None
                           else "unlock refused: no unlock code is configured")
                code = DEVICE_FAILURE
        if self.record is not None:
            self.record("system", "unlock", f"{outcome} (from {source})")
        return code


class RelayWrites:
    def __init__(self, commands: CommandQueue, settings: SettingsQueue, unlock: Unlock,
                 record: Record | None = None, source: str = "modbus",
                 events: EventWindow | None = None) -> None:
        self.events = events
        self.commands = commands
        self.settings = settings
        self.unlock = unlock
        self.record = record
        self.source = source

    def write(self, items: list[tuple[Entry, int]]) -> int:
        requests: list[Request] = []
        changes: dict[str, dict] = {}
        unlock: int | None = None
        cursor: int | None = None
        for entry, raw in items:
            point, _, quantity = entry.name.rpartition(".")
            if entry.source[0] == "relay":  # the event cursor, the one writable global
                cursor = raw
            elif entry.source[0] == "command":
                action = entry.source[1]
                if action == "unlock":
                    unlock = raw
                elif action == "preset":
                    try:  # the request checks its theta (0..10; NaN is outside)
                        requests.append(Request("preset", (point,), as_float32(raw),
                                                self.source))
                    except ValueError:
                        return ILLEGAL_VALUE
                elif raw:
                    kind = action.removesuffix("_all")
                    points = () if point == "relay" else (point,)
                    requests.append(Request(kind, points, source=self.source))
            else:  # a setting
                value: float | bool | str | None = (raw if entry.type == "uint16"
                                                    else as_float32(raw))
                if quantity in ENUM_SETTINGS:
                    if quantity in ENUM_WORDS:
                        if raw not in ENUM_WORDS[quantity]:
                            return ILLEGAL_VALUE
                        value = ENUM_WORDS[quantity][raw]
                    elif quantity == "latch":
                        if raw not in (0, 1):
                            return ILLEGAL_VALUE
                        value = bool(raw)
                elif quantity in SWITCHED_OFF_BY_NAN and math.isnan(value):
                    value = None  # NaN written: the limit switched off, as null in the file
                changes.setdefault(point, {})[quantity] = value
        if changes:
            if not self.unlock.unlocked:
                if self.record is not None:
                    self.record("system", "settings", f"write refused while locked (from "
                                f"{self.source}): {', '.join(changes)}")
                return DEVICE_FAILURE
            validated = {}
            for point, update in changes.items():
                current = self.settings.current[point]
                try:
                    validated[point] = type(current).model_validate(
                        current.model_dump() | update)
                except ValidationError as exc:
                    if self.record is not None:
                        why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
                                        f"{e['msg']}" for e in exc.errors())
                        self.record("system", "settings", f"write to {point} refused (from "
                                    f"{self.source}): {why}")
                    return ILLEGAL_VALUE
            for point, settings in validated.items():
                self.settings.put(point, settings, self.source)
        if unlock is not None:
            code = self.unlock.offer(unlock, self.source)
            if code:
                return code
        for request in requests:
            self.commands.put(request)
        if cursor is not None and self.events is not None:
            self.events.cursor = cursor
        return 0
