"""Read a configuration file: YAML in, a validated ``RelayConfig`` out, or every error at once.

Each error names the file, the line, the key path and the reason, e.g.
``demo.yaml:41: points[0].settings.t_cool: t_cool (T-, 30 s) must not be shorter ...``.
Nothing is applied from a file with any error.

What ``run`` would refuse, ``load`` refuses first (``softrelay check`` and ``run`` load through
here): besides the models and their cross-references, a key given twice, a file that is not
UTF-8, more points or buses than the register map holds, state files that cannot be kept where
they resolve (``state_paths``: a directory in a file's place, two files on one path), a GPIO
pin gpiozero would refuse or two devices on one pin, a ``modbus.tls`` whose files cannot serve
(read and loaded as the TLS front does: ``config.modbus_tls.tls_problems``). The state paths are
looked at, never created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from softrelay.config.limits import MAP_LIMITS
from softrelay.config.modbus_tls import tls_problems
from softrelay.config.references import references
from softrelay.config.relay import RelayConfig
from softrelay.config.state import settings_path, state_paths
from softrelay.config.yamlfile import YamlError, collector_paused, compose, over_limit_reason
from softrelay.config.yamlfile import read_text as read_config_text


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
            for key, value in node.value:  # an int location is a list index or an int key
                if key.value == part or (isinstance(part, int) and key.value == str(part)):
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


def union_tags(model: type[BaseModel]) -> frozenset[str]:
    """The tags of every discriminated union in ``model`` and the models under it: the
    ``kind`` of buses and points, the ``chip`` of SPI chips. pydantic puts the tag of the
    member it validated into an error's location; ``_clean_loc`` takes it out again."""
    tags: set[str] = set()
    seen: set[type] = set()

    def walk(annotation: Any, discriminator: str | None = None) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if discriminator is not None:
                tags.update(get_args(annotation.model_fields[discriminator].annotation))
            if annotation not in seen:
                seen.add(annotation)
                for field in annotation.model_fields.values():  # a tag names a field (a str)
                    tag = field.discriminator
                    walk(field.annotation, tag if isinstance(tag, str) else None)
            return
        if get_origin(annotation) is Annotated:
            inner, *meta = get_args(annotation)
            found = [m.discriminator for m in meta if isinstance(m, FieldInfo)
                     and isinstance(m.discriminator, str)]
            walk(inner, found[0] if found else discriminator)
            return
        for arg in get_args(annotation):
            walk(arg, discriminator)

    walk(model)
    return frozenset(tags)


#: the ``kind`` (and ``chip``) values that tag the members of a union (buses, points, chips)
UNION_TAGS = union_tags(RelayConfig)


def map_limits() -> dict[str, int]:
    """Top-level sections whose length the register map bounds: section -> most items."""
    return dict(MAP_LIMITS)


def limit_problems(config: RelayConfig) -> list[tuple[tuple, str]]:
    """More points or buses than the register map holds, as (key path, reason)."""
    return [((key,), over_limit_reason(key, limit, count=count))
            for key, limit in map_limits().items()
            if (count := len(getattr(config, key))) > limit]


def path_problems(config: RelayConfig, environ: Mapping[str, str] | None = None
                  ) -> list[tuple[tuple, str]]:
    """State files that cannot be kept where they resolve, as (key path, reason): a
    directory where a file goes (the relay would take it for a corrupt thermal memory and
    rename it aside, whatever it holds), two files on one path (each would overwrite the
    other). Looks at the file system (stat), creates nothing. A state directory that cannot
    be made or written is not refused: the relay runs and reports it as a fault, as it does
    when that happens in service."""
    paths = state_paths(config, environ)
    files: list[tuple[tuple[str, ...], str, Path]] = [
        (("state", "file"), "the thermal memory", paths.memory),
        (("state", "file"), "the settings changed in service", settings_path(paths.memory))]
    if paths.events is not None:
        files.append((("events", "file"), "the event file", paths.events))
    if paths.mqtt_queue is not None:
        files.append((("mqtt", "queue", "file"), "the MQTT queue", paths.mqtt_queue))
    errors: list[tuple[tuple, str]] = []
    owner: dict[Path, tuple[tuple, str]] = {}
    for key, what, path in files:
        if path.is_dir():
            errors.append((key, f"{what} would be {path}, which is a directory: name a "
                           "file"))
        if path in owner:
            errors.append((key, f"{what} would be {path}, the same file as "
                           f"{owner[path][1]} ({key_path(owner[path][0])}): name another"))
        else:
            owner[path] = (key, what)
    return errors


def parse(text: str, file: str = "<config>", environ: Mapping[str, str] | None = None
          ) -> RelayConfig:
    """Validate YAML ``text``; raise ConfigError naming every problem. ``environ`` (default
    the process's) places the state directory, whose paths are checked."""
    with collector_paused():
        return _parse(text, file, environ)


def _parse(text: str, file: str, environ: Mapping[str, str] | None) -> RelayConfig:
    try:
        root, data, duplicates = compose(text, map_limits())
    except YamlError as exc:
        raise ConfigError([Problem(file, exc.line, key_path(exc.path), exc.reason)]) from None
    problems = [Problem(file, d.line, key_path(d.path), d.reason) for d in duplicates]
    if data is None:
        raise ConfigError([*problems, Problem(file, None, "", "the file is empty (or only "
                                              "comments): a configuration needs at least "
                                              "scan, state and points")])
    if not isinstance(data, dict):
        raise ConfigError([*problems, Problem(file, 1, "", "expected a mapping of sections "
                                              f"at the top, not a {_kind(data)}")])
    try:
        config = RelayConfig.model_validate(data)
    except ValidationError as exc:
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
    found = (references(config) + limit_problems(config) + path_problems(config, environ)
             + tls_problems(config))
    problems += [Problem(file, line_of(root, loc), key_path(loc), reason)
                 for loc, reason in found]
    if problems:
        raise ConfigError(problems)
    return config


def _kind(data: object) -> str:
    return {list: "list", str: "text", int: "number", float: "number", bool: "boolean"}.get(
        type(data), type(data).__name__)


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None
         ) -> RelayConfig:
    """Load and validate a configuration file (default: the embedded demo)."""
    path = Path(path) if path is not None else demo_path()
    try:
        text = read_config_text(path)
    except YamlError as exc:
        raise ConfigError([Problem(str(path), exc.line, "", exc.reason)]) from None
    return parse(text, str(path), environ)
