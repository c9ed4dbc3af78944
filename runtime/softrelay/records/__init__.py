"""What the relay records and keeps: the event recorder, thermal memory, settings kept in service,
and how its files are written.
"""
