"""Read a configuration file: YAML in, a validated ``RelayConfig`` out, or every error at once.

Each error names the file, the line, the key path and the reason, e.g.
``demo.yaml:41: points[0].settings.t_cool: t_cool (T-, 30 s) must not be shorter ...``.
Nothing is applied from a file with any error.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from softrelay.config.schema import RelayConfig, references


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file."""

    file: str
    line: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


class ConfigError(ValueError):
    """A configuration file that cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def demo_path() -> Path:
    """The embedded demonstration configuration (config/demo.yaml in the source tree)."""
    return Path(str(resources.files("softrelay.config") / "demo.yaml"))


def key_path(loc: tuple) -> str:
    """('points', 0, 'settings', 't_cool') -> 'points[0].settings.t_cool'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the node at ``loc`` (or of its nearest existing parent)."""
    node, line = root, (root.start_mark.line + 1) if root is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union tags ('thermal', 'function-after[...]') from a location."""
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and p not in UNION_TAGS))


#: the ``kind`` (and ``chip``) values that tag the members of a union (buses, points, chips)
UNION_TAGS = ("thermal", "busbar", "simulated", "i2c", "spi", "modbus_tcp", "modbus_rtu",
              "max31865", "mcp3208")


def parse(text: str, file: str = "<config>") -> RelayConfig:
    """Validate YAML ``text``; raise ConfigError naming every problem."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise ConfigError([Problem(file, line, "", reason)]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "expected a mapping of sections at the top")])
    try:
        config = RelayConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = exc.errors(include_url=False)
        with_items = {_clean_loc(e["loc"])[:-2] for e in errors if len(e["loc"]) > 1}
        for err in errors:
            loc = _clean_loc(err["loc"])
            if err["type"] == "too_short" and loc in with_items:
                continue  # only a consequence: the items themselves failed (reported)
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key (not ignored: check the spelling)"
            problems.append(Problem(file, line_of(root, loc), key_path(loc), reason))
        raise ConfigError(problems) from None
    problems = [Problem(file, line_of(root, loc), key_path(loc), reason)
                for loc, reason in references(config)]
    if problems:
        raise ConfigError(problems)
    return config


def load(path: str | Path | None = None) -> RelayConfig:
    """Load and validate a configuration file (default: the embedded demo)."""
    path = Path(path) if path is not None else demo_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    return parse(text, str(path))
