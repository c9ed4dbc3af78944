"""The relay: everything ``softrelay run`` starts, the scan's stages, commands and settings in
service.

- ``stages``: the stages by name and ``SCAN_ORDER``, the one tuple that is the scan's order;
- ``build``: ``build_relay(config)``, all the wiring; ``relay``: start / run / stop;
- ``children``: the helper processes (companion, telemetry): spawned, ready, supervised;
- ``inputs`` (latch, lost measurements), ``commands``, ``settings`` (the settings service:
  queue, store, keeper), ``memory`` (thermal memory): what the stages do;
- ``errors``: ``StartupError``; ``terminal``: the live view the companion draws.
"""
