"""The relay's GPIO: coils (outputs) and command inputs (reset, acknowledge, local/remote)."""
