"""The tests' own layout: no test module imports another; what tests share lives in
``tests/support/`` (and imports no test module either).

A test module imported by another runs its module-level set-up twice, collects its fixtures
where nobody looks for them, and breaks when it is renamed or split; a helper in
``tests/support/`` says what it guarantees and is found by subject. Every import is counted,
inline ones too (read from the source, not from what ran). The golden scripts
(``tests/golden_*.py``, run by hand to regenerate a golden file) are held to the same rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT = "support"


def local_modules(root: Path) -> set[str]:
    """The top-level names a file in ``root`` could import from the tests' own folder (every
    module and package there except ``support``)."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names - {SUPPORT}


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module name) of every absolute import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def cross_imports(root: Path = TESTS) -> list[str]:
    """``file:line imports name`` for each import of a test module (or of any other module of
    ``root`` but ``support``) by a file of ``root`` or of ``root/support/``."""
    local = local_modules(root)
    files = sorted(root.glob("*.py")) + sorted((root / SUPPORT).rglob("*.py"))
    return [f"{path.relative_to(root)}:{line} imports {name}"
            for path in files for line, name in imported(path) if name in local]


def test_no_test_module_imports_another():
    found = cross_imports()
    assert not found, ("move what is shared into tests/support/ (by subject) and import it "
                       "from there: " + "; ".join(found))


def test_the_check_sees_an_import_of_a_test_module_at_any_depth(tmp_path):
    (tmp_path / SUPPORT).mkdir()
    (tmp_path / SUPPORT / "__init__.py").write_text("")
    (tmp_path / "test_config.py").write_text("DEMO = ''\n")
    (tmp_path / "test_a.py").write_text(
        "import os\n\nfrom support.configs import DEMO\n")  # allowed
    (tmp_path / "test_b.py").write_text(
        "import os\n\n\ndef test_x():\n    from test_config import DEMO\n")
    (tmp_path / SUPPORT / "x.py").write_text("import test_a.y\n")
    assert cross_imports(tmp_path) == ["test_b.py:5 imports test_config",
                                       "support/x.py:1 imports test_a"]


def test_the_support_package_is_sorted_as_local_by_ruff():
    text = (TESTS.parent / "pyproject.toml").read_text()
    isort = text[text.index("[tool.ruff.lint.isort]"):]
    line = next(x for x in isort.splitlines() if x.startswith("known-local-folder"))
    assert f'"{SUPPORT}"' in line
