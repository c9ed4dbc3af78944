"""GPIO command inputs: a relay's binary inputs (reset, acknowledge, preset) as gpiozero Buttons.

A press only queues a command; the scan applies it at its start. gpiozero calls back on a
thread of its own, which is why the queue is thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpiozero import Button

from softrelay.config.outputs import Input
from softrelay.core.commands import Commands, Request


class CommandButtons:
    def __init__(self, inputs: Sequence[Input], queue: Commands, *, factory: object,
                 bounce_time: float | None = 0.05) -> None:
        self.buttons: list[Button] = []
        for item in inputs:
            button = Button(item.pin, pull_up=item.pull_up, bounce_time=bounce_time,
                            pin_factory=factory)
            request = Request(item.command, tuple(item.points),
                              item.preset_theta if item.command == "preset" else 0.0,
                              f"gpio:{item.name}")
            button.when_pressed = lambda request=request: queue.put(request)
            self.buttons.append(button)

    def close(self) -> None:
        for button in self.buttons:
            button.close()
