"""Self-supervision: whether the relay is healthy and why, bus link supervision, the watchdog."""
