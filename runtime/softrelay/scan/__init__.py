"""The scan: deadlines, real-time options, the loop and its watchdog."""
