"""Relay firmware behaviour: event recorder, thermal memory."""
