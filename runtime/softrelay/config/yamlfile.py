"""Read a configuration file's YAML: bytes in, plain data and its node tree out, or the reasons.

What YAML itself lets pass silently is refused here: a key given twice (YAML keeps the last),
a second document, a file that is not UTF-8. Parsing is libyaml's (PyYAML's C binding) where it
is installed, with the cyclic garbage collector paused: a file of many points makes millions
of small objects, and the collector's passes over them cost more than the parse.

A file of more points (or buses) than the register map holds is refused before anything is
built from it: first from the events of its ``points:`` section, up to the first point too
many (``softrelay check`` of a file of 100 000 points answers in a fraction of a second), then,
exactly, from the counts of the composed file.

Never raises anything but ``YamlError`` for what the file holds; touches nothing but the
file it reads.
"""

from __future__ import annotations

import gc
import re
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
            counted = count_problems(root, limits or {})
            if counted:
                raise counted[0]
            duplicates = duplicate_keys(root) if root is not None else []
            data = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as exc:
            raise _yaml_problem(exc, text) from None
        except YamlError:
            raise
        except RecursionError:
            raise YamlError(None, (), "not valid YAML: nested too deeply") from None
        finally:
            loader.dispose()
    return root, data, duplicates


def duplicate_keys(root: yaml.Node) -> list[YamlError]:
    """A problem for every key given twice in one mapping, naming both lines. Each
    container is visited once (an alias names a node already seen)."""
    problems: list[YamlError] = []
    seen: set[int] = set()
    containers = (yaml.MappingNode, yaml.SequenceNode)
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value)
                         if isinstance(item, containers))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue  # a scalar document
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if type(key) is yaml.ScalarNode and key.tag != "tag:yaml.org,2002:merge":
                name = (key.tag, key.value)
                if name in first:
                    line = key.start_mark.line + 1
                    problems.append(YamlError(
                        line, (*path, key.value), f"given twice, at lines {first[name]} "
                        f"and {line} (YAML would silently keep the last): remove one"))
                else:
                    first[name] = key.start_mark.line + 1
                if isinstance(value, containers):
                    stack.append((value, (*path, key.value)))
            elif isinstance(value, containers):
                stack.append((value, path))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _over_limit_from(text: str, limits: Mapping[str, int], lines_before: int = 0
                     ) -> YamlError | None:
    """The first top-level sequence (of ``limits``) of ``text`` holding more items than its
    limit, from the event stream (no nodes built), stopping at that item, or at the end of
    the first limited sequence; None when it is not over (or the YAML is broken: composing
    says how). Only the root mapping and the items of its sequences are looked at; deeper
    events cost a type test and a depth count (the loop keeps them inline, ``_RootWalk``
    follows the root mapping). ``lines_before``: lines of the file before ``text``."""
    scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
    starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    depth = 0  # containers open; the root mapping's own nodes are at depth 1
    walk = _RootWalk(limits, lines_before)
    try:
        for event in yaml.parse(text, Loader=Loader):
            kind = type(event)
            if kind is scalar or kind is alias:
                if depth > 2:
                    continue
                if depth == 1 and walk.root_mapping:
                    walk.root_scalar(event, kind is scalar)
                    continue
            elif kind in starts:
                depth += 1
                if depth > 3:
                    continue
                if depth < 3:
                    walk.opened(depth, kind)
                    continue
            elif kind in ends:
                depth -= 1
                if depth == 1 and walk.root_mapping and walk.root_node_ended():
                    return None  # the counted sequence ended within its limit
                continue
            else:
                continue  # stream and document events
            if walk.counting is not None and depth in (2, 3):  # an item of the counted sequence
                over = walk.item(event)
                if over is not None:
                    return over
    except yaml.YAMLError:
        return None
    return None


class _RootWalk:
    """Where ``_over_limit_from`` is in the root mapping: the key being valued, and the
    limited sequence being counted (its key and its items so far)."""

    def __init__(self, limits: Mapping[str, int], lines_before: int) -> None:
        self.limits = limits
        self.lines_before = lines_before
        self.root_mapping = False  #: the document is a mapping
        self.expect_key = True  #: the root mapping's next node is a key
        self.key: str | None = None  #: the key being valued, and its line
        self.key_line = 0
        self.counting: str | None = None  #: the limited sequence open at depth 2
        self.items = 0

    def root_scalar(self, event: yaml.Event, is_scalar: bool) -> None:
        """A scalar (or alias) of the root mapping: a key, or a key's plain value."""
        if self.expect_key:
            self.key = getattr(event, "value", None) if is_scalar else None
            self.key_line = _line(event)
        self.expect_key = not self.expect_key

    def opened(self, depth: int, kind: type) -> None:
        """A container opened at ``depth`` 1 (the document) or 2 (a key's value)."""
        if depth == 1:
            self.root_mapping = kind is yaml.MappingStartEvent
        elif (self.root_mapping and not self.expect_key and self.key in self.limits
              and kind is yaml.SequenceStartEvent):
            self.counting, self.items = self.key, 0

    def root_node_ended(self) -> bool:
        """A container value of the root mapping ended: True when it was the counted one."""
        if self.counting is not None:
            return True
        self.expect_key = not self.expect_key
        return False

    def item(self, event: yaml.Event) -> YamlError | None:
        """One more item of the counted sequence; the problem when it is one too many."""
        assert self.counting is not None
        self.items += 1
        limit = self.limits[self.counting]
        if self.items <= limit:
            return None
        return YamlError(self.lines_before + self.key_line, (self.counting,), over_limit_reason(
            self.counting, limit, self.lines_before + _line(event)))


def _line(event: yaml.Event) -> int:
    """The 1-based line an event starts on (within the text parsed)."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


def _first_over_limit(text: str, limits: Mapping[str, int]) -> YamlError | None:
    """A limited top-level section over its limit, found fast: the events of the file from
    the section's key (a line starting with ``points:``, ``buses:``) on, up to its item one
    too many (or its end). Not exhaustive (a key written otherwise, an alias to an anchor
    before the key, are missed): the composed file's counts are the exact check; this one
    spares building a file that can never run."""
    for match in re.finditer(r"^([A-Za-z_]+)[ \t]*:", text, re.MULTILINE):
        key = match.group(1)
        if key in limits:
            over = _over_limit_from(text[match.start():], {key: limits[key]},
                                    text.count("\n", 0, match.start()))
            if over is not None:
                return over
    return None


def count_problems(root: yaml.Node | None, limits: Mapping[str, int]) -> list[YamlError]:
    """The limited top-level sequences of the composed file over their limits, counted."""
    problems = []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            limit = limits.get(key.value) if isinstance(key, yaml.ScalarNode) else None
            if limit is not None and isinstance(value, yaml.SequenceNode) and len(
                    value.value) > limit:
                problems.append(YamlError(key.start_mark.line + 1, (key.value,),
                                          over_limit_reason(key.value, limit,
                                                            count=len(value.value))))
    return problems


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
