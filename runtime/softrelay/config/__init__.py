"""The relay's configuration file: schema, loading with errors that name file, line and key."""

from softrelay.config.loader import ConfigError, Problem, demo_path, load, parse
from softrelay.config.schema import RelayConfig

__all__ = ["ConfigError", "Problem", "RelayConfig", "demo_path", "load", "parse"]
