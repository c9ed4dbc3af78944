"""Read a configuration file's YAML: bytes in, plain data and its node tree out, or the reasons.

What YAML itself lets pass silently is refused here: a key given twice (YAML keeps the last),
a second document, a file that is not UTF-8. Parsing is libyaml's (PyYAML's C binding) where it
is installed, with the cyclic garbage collector paused: a file of many points makes millions
of small objects, and the collector's passes over them cost more than the parse.

A file of more points (or buses) than the register map holds is refused after a first pass
over its events that stops at the first point too many: ``softrelay check`` of a file of
100 000 points answers in seconds, without building what could never run.

Never raises anything but ``YamlError`` for what the file holds; touches nothing but the
file it reads.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

#: libyaml's loader where PyYAML was built with it (10 x faster), else the Python one
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """What is wrong with the file's text: at ``line`` (1-based, None: the whole file), under
    the key ``path`` (a location tuple, () for none)."""

    def __init__(self, line: int | None, path: tuple, reason: str) -> None:
        super().__init__(reason)
        self.line, self.path, self.reason = line, path, reason


def read_text(path: Path) -> str:
    """The file's text; YamlError when it is not a readable UTF-8 file."""
    if path.is_dir():
        raise YamlError(None, (), "is a directory, not a configuration file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise YamlError(None, (), f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(line, (), f"not UTF-8: byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start} (column {column}) ({exc.reason}): save the file as "
                          "UTF-8") from None


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (when it runs): parsing and validating create no
    cycles worth collecting, only a great many objects the collector would walk again and
    again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _yaml_problem(exc: yaml.YAMLError, text: str) -> YamlError:
    """The problem a YAML error names, at its line."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses
        # libyaml counts the position in bytes of the UTF-8 text
        line = (text.encode()[:exc.position].count(b"\n") + 1
                if isinstance(exc.position, int) else None)
        character = (f" (#x{exc.character:04x})" if isinstance(exc.character, int) else "")
        return YamlError(line, (), f"not valid YAML: {exc.reason}{character}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if problem == "but found another document":
        return YamlError(line, (), "a second YAML document ('---'): a configuration is "
                           "one document")
    if problem == "found unhashable key":
        problem = "a key that is a list or a mapping (keys are names)"
    elif problem.startswith("could not determine a constructor"):
        problem += " (only YAML's own tags are accepted)"
    return YamlError(line, (), f"not valid YAML: {problem}")


def compose(text: str, limits: Mapping[str, int] | None = None
            ) -> tuple[yaml.Node | None, object, list[YamlError]]:
    """(the node tree, the data, problems that do not stop the checking) of one document.

    ``limits``: top-level sequence key -> the most items it may hold; a file over a limit
    is refused (YamlError) before anything is built. Duplicate keys are returned as
    problems (the data then holds the last value, as YAML would have it)."""
    with collector_paused():
        if limits:
            over = _first_over_limit(text, limits)
            if over is not None:
                raise over
        loader = Loader(text)
        try:
            root = loader.get_single_node()
            duplicates = duplicate_keys(root) if root is not None else []
            data = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as exc:
            raise _yaml_problem(exc, text) from None
        except RecursionError:
            raise YamlError(None, (), "not valid YAML: nested too deeply") from None
        finally:
            loader.dispose()
    return root, data, duplicates


def duplicate_keys(root: yaml.Node) -> list[YamlError]:
    """A problem for every key given twice in one mapping, naming both lines. Each node is
    visited once (an alias names a node already seen)."""
    problems: list[YamlError] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = (key.tag, key.value)
                    line = key.start_mark.line + 1
                    if name in first:
                        problems.append(YamlError(
                            line, (*path, key.value), f"given twice, at lines {first[name]} "
                            f"and {line} (YAML would silently keep the last): remove one"))
                    else:
                        first[name] = line
                    stack.append((value, (*path, key.value)))
                else:
                    stack.append((value, path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _first_over_limit(text: str, limits: Mapping[str, int]) -> YamlError | None:
    """The first top-level sequence (of ``limits``) found holding more items than its limit,
    from the event stream (no nodes built), stopping at that item; None when none is over (or
    when the YAML is broken: composing says how)."""
    # frames: [is a mapping, expects a key, its last key (top level), the limited key it
    # counts the items of, items, line of that key]
    stack: list[list] = []
    try:
        for event in yaml.parse(text, Loader=Loader):
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent,
                                  yaml.SequenceStartEvent)) and stack:
                parent = stack[-1]
                if parent[0] and parent[1] and len(stack) == 1:
                    parent[2] = event.value if isinstance(event, yaml.ScalarEvent) else None
                    parent[5] = event.start_mark.line + 1  # the key's line
                elif not parent[0] and parent[3] is not None:
                    parent[4] += 1
                    if parent[4] > limits[parent[3]]:
                        return YamlError(parent[5], (parent[3],), over_limit_reason(
                            parent[3], limits[parent[3]], event.start_mark.line + 1))
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                counted = None
                if (isinstance(event, yaml.SequenceStartEvent) and len(stack) == 1
                        and stack[0][0] and not stack[0][1] and stack[0][2] in limits):
                    counted = stack[0][2]
                stack.append([isinstance(event, yaml.MappingStartEvent), True, None, counted,
                              0, stack[0][5] if counted else None])
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
            elif not isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                continue  # stream and document events
            if stack and stack[-1][0]:  # a node of a mapping ended: key <-> value
                stack[-1][1] = not stack[-1][1]
    except yaml.YAMLError:
        return None
    return None


#: what each top-level limit holds back, for the reason
LIMITED = {"points": "protected points", "buses": "field buses"}


def over_limit_reason(key: str, limit: int, line: int | None = None,
                      count: int | None = None) -> str:
    """Why ``key`` holds too many items: ``count`` of them, or more than ``limit`` (the
    first one too many at ``line``)."""
    what = LIMITED.get(key, key)
    many = (f"{count} {what}" if count is not None else
            f"more than {limit} {what}" + (f" (item {limit + 1} at line {line})" if line else ""))
    return (f"{many}: the register map holds at most {limit}; split them over relays (the "
            "rest of the file is checked once they fit)")
