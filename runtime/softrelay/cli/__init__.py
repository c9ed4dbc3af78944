"""The command line: ``softrelay run``, ``check``, ``status``, ``regmap``, ``bench``, ``demo``,
``install-service``."""
