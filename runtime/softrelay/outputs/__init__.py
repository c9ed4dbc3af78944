"""Outputs of the scan: relay coils and the commands that act on latches."""
