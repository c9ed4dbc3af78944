"""The process images: signals in (from I/O), the snapshot out (to outputs and comms)."""
