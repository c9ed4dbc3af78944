"""The layers stay: data flows one way (field I/O -> input image -> core -> outputs ->
communications and telemetry), so what sits upstream never imports what sits downstream.
Every import is counted, inline ones too (read from the source, not from what ran).

``ALLOWED`` is the rule (CONTRIBUTING.md, "The layers"). ``DEBTS`` lists, file by file, the
imports that still break it while the restructure of issue 16 goes on: the test fails on any
import outside both, and on a debt that has been paid but is still listed, so the list only
shrinks."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runtime" / "softrelay"

#: package -> the softrelay packages (or top-level modules) it may import, besides itself
ALLOWED = {
    "catalog": set(),  # the hardware's facts, pure data: nothing of softrelay
    "core": set(),  # the protection maths: nothing of the runtime
    "scan": {"core"},  # the loop, the ticker, real time: the core's tables only
    "config": {"core", "catalog"},  # the configuration: validated against the core's
    # settings and the hardware catalog
    "records": {"config", "scan"},  # events, thermal memory, kept settings (scan: leaving RT)
    "image": {"config", "core", "scan"},  # the input image and the output snapshot
    "field": {"config", "core", "image", "logs", "scan"},  # what runs on a Pi: never modbus
    # (but its protocol constants), sim, telemetry, gpio
    "sim": {"config", "core", "field", "image", "modbus", "scan"},  # stands in for the field
    "supervision": {"config", "core", "records", "scan"},  # healthy or not, links, watchdog
    "gpio": {"config", "core"},  # coils and command inputs
    "modbus": {"config", "core", "image", "logs", "records", "scan", "supervision"},  # never
    # field, never the relay's wiring
    "telemetry": {"config", "core", "image", "logs", "modbus", "records", "scan",
                  "supervision"},
    "service": {"config"},  # the unit, sd_notify
}

#: packages every package may import: pure data importing nothing of softrelay
EVERYWHERE = {"catalog"}

#: modules of a package other packages may import although the package is not ALLOWED to
#: them: the Modbus protocol's constants and framing import nothing of softrelay
OPEN = {"modbus.protocol": {"field"}}

#: (file, package it imports against the rule): to be paid by the restructure (issue 16)
DEBTS: set[tuple[str, str]] = set()


def imports(path: Path) -> set[str]:
    """The softrelay modules ``path`` imports (dotted, without ``softrelay.``), at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            names = []
        found |= {n.removeprefix("softrelay.") for n in names if n.startswith("softrelay.")}
    return found


def imported(path: Path) -> set[str]:
    """The softrelay packages ``path`` imports against ``ALLOWED`` (``OPEN`` modules aside)."""
    package = path.relative_to(PACKAGE).parts[0]
    mods = imports(path)
    opened = {m for m in mods for o, users in OPEN.items()
              if package in users and (m == o or m.startswith(o + "."))}
    # ``from softrelay.modbus import protocol`` names the package too: judged by its members
    named = {m.rsplit(".", 1)[0] for m in opened}
    return {m.split(".")[0] for m in mods - opened - named}


def breaks() -> set[tuple[str, str]]:
    """Every (file, package) import of the tree that ``ALLOWED`` does not allow."""
    found = set()
    for package, allowed in ALLOWED.items():
        for p in sorted((PACKAGE / package).rglob("*.py")):
            found |= {(str(p.relative_to(PACKAGE)), wrong)
                      for wrong in imported(p) - allowed - EVERYWHERE - {package}
                      if not wrong.startswith("_")}  # the compiled modules are leaves
    return found


def test_upstream_never_imports_downstream():
    new = sorted(breaks() - DEBTS)
    assert not new, f"imports against the layers (CONTRIBUTING.md): {new}"


def test_a_paid_debt_leaves_the_list():
    paid = sorted(DEBTS - breaks())
    assert not paid, f"no longer imported: take them out of DEBTS: {paid}"


def test_the_check_sees_an_inline_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from softrelay.modbus.tcp_slave import x\n"
                      "    import softrelay.core\n")
    assert imports(module) == {"modbus.tcp_slave", "modbus.tcp_slave.x", "core"}


def test_only_the_protocol_is_open_to_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    (tmp_path / "field").mkdir()
    ok = tmp_path / "field" / "ok.py"
    ok.write_text("from softrelay.modbus import protocol\nfrom softrelay.modbus.protocol "
                  "import crc16\n")
    assert imported(ok) == set()
    bad = tmp_path / "field" / "bad.py"
    bad.write_text("from softrelay.modbus.regmap import RegisterMap\n")
    assert imported(bad) == {"modbus"}


def test_contributing_states_the_same_rule():
    """CONTRIBUTING.md's table of the layers says what ALLOWED says, package for package."""
    text = (PACKAGE.parent.parent / "CONTRIBUTING.md").read_text()
    table = text.split("<!-- layers:", 1)[1].split("<!-- /layers -->", 1)[0]
    stated = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            stated[cells[0].strip("`")] = {c.strip("` ") for c in cells[1].split(",")
                                           if c.strip().startswith("`")}
    assert stated == ALLOWED
