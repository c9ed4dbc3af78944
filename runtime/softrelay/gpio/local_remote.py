"""The front-panel local/remote switch: a GPIO input (a gpiozero Button) that, in *local*,
makes every Modbus write refused (``modbus.authority``), as a relay's local/remote key does.

The contact closed (the input active) is local. Each change is recorded as an event. Reading
it never blocks: ``local()`` returns the pin's last state.
"""

from __future__ import annotations

from collections.abc import Callable

from gpiozero import Button

from softrelay.config.modbus import LocalRemote


class LocalRemoteSwitch:
    def __init__(self, config: LocalRemote, *, factory: object,
                 record: Callable[..., object] | None = None,
                 bounce_time: float | None = 0.05) -> None:
        self.button = Button(config.pin, pull_up=config.pull_up, bounce_time=bounce_time,
                             pin_factory=factory)
        self.record = record
        self.button.when_pressed = lambda: self._changed(True)
        self.button.when_released = lambda: self._changed(False)

    def local(self) -> bool:
        """True while the switch is in local (remote writes refused)."""
        return bool(self.button.is_pressed)

    def _changed(self, local: bool) -> None:
        if self.record is not None:
            self.record("system", "modbus", "local/remote switch in LOCAL: Modbus writes "
                        "refused" if local else "local/remote switch in remote: Modbus "
                        "writes allowed by access level")

    def close(self) -> None:
        self.button.close()
