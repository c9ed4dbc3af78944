"""The layers stay: data flows one way (field I/O -> input image -> core -> outputs ->
communications and telemetry), so what sits upstream never imports what sits downstream.
Every import is counted, inline ones too (read from the source, not from what ran)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runtime" / "softrelay"

#: package -> the softrelay packages it may import (besides itself)
ALLOWED = {
    "core": set(),  # the protection maths: nothing of the runtime
    "scan": {"core"},  # the loop, the ticker, real-time: the core's tables only
    "firmware": {"config", "scan"},  # events, memory, settings store (the configuration it
    # keeps settings of; scan: leaving real time)
    "io": {"config", "core", "image", "logs", "scan", "status_view"},  # never comms/telemetry
}


def imported(path: Path) -> set[str]:
    """The softrelay packages ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
                 else [])
        found |= {n.split(".")[1] for n in names if n.startswith("softrelay.")}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_upstream_never_imports_downstream(package):
    wrong = {str(p.relative_to(PACKAGE)): sorted(imported(p) - ALLOWED[package] - {package})
             for p in sorted((PACKAGE / package).rglob("*.py"))}
    assert not {k: v for k, v in wrong.items() if v}, wrong


def test_the_check_sees_an_inline_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from softrelay.comms.slave import x\n"
                      "    import softrelay.core\n")
    assert imported(module) == {"comms", "core"}
