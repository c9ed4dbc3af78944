"""The .pyi stubs of the compiled modules say what the compiled modules are.

mypy reads ``runtime/softrelay/_*.pyi`` instead of the ``.so`` files, so a stub that drifts
from its ``.pyx`` makes mypy wrong about every caller. mypy's ``stubtest`` imports each
compiled module and compares it with its stub: every public name present in both, and each
function's and method's parameters (names, order, defaults, kinds), which Cython 3 exposes.
Cython's own machinery (pickling helpers, the doctest table) is allowed in
``tests/stubtest_allowlist.txt``. What stubtest cannot see is a constructor written as
``__cinit__`` (the type shows only ``*args, **kwargs``): the second test compares those with
the ``.pyx`` source.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
PACKAGE = RUNTIME / "softrelay"
EXT = ROOT / "ext" / "softrelay"
MODULES = ("_core", "_timing", "_shm", "_regimage", "_mbserver")
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")
STUBTEST_TIMEOUT = 600  # s: a cold mypy run over numpy's stubs, on a loaded machine


def test_every_stub_matches_its_compiled_module():
    try:
        import mypy.stubtest  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed (it is in the test extra: pip install -e '.[test]')")
    for name in MODULES:
        assert (PACKAGE / f"{name}.pyi").is_file(), f"no stub for softrelay.{name}"
        assert list(PACKAGE.glob(f"{name}.*.so")), (
            f"softrelay.{name} is not built in {PACKAGE}: "
            "python setup.py build_ext --inplace --build-lib runtime")
    env = dict(os.environ, PYTHONPATH=str(RUNTIME))
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(ROOT / "pyproject.toml"),
         "--allowlist", str(ALLOWLIST), *(f"softrelay.{name}" for name in MODULES)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=STUBTEST_TIMEOUT)
    assert result.returncode == 0, (
        f"stubtest: the stubs disagree with the compiled modules\n{result.stdout}{result.stderr}")


def _split_arguments(text: str) -> list[str]:
    """Split a Cython parameter list at the commas outside brackets (``double[:, ::1] x``)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _pyx_cinit_parameters(source: str) -> dict[str, list[tuple[str, bool]]]:
    """Per cdef class of a .pyx: its ``__cinit__``'s parameters after self, (name, has a
    default), for the classes whose ``__cinit__`` takes any."""
    found = {}
    classes = re.split(r"^cdef class (\w+)", source, flags=re.M)
    for name, body in zip(classes[1::2], classes[2::2], strict=True):
        match = re.search(r"def __cinit__\(self,?(.*?)\):", body, flags=re.S)
        if match is None or not match.group(1).strip():
            continue
        parameters = []
        for argument in _split_arguments(match.group(1)):
            declaration, _, default = argument.partition("=")
            parameters.append((re.findall(r"\w+", declaration)[-1], bool(default.strip())))
        found[name] = parameters
    return found


def _stub_new_parameters(source: str) -> dict[str, list[tuple[str, bool]]]:
    """Per class of a .pyi: its ``__new__``'s parameters after cls, (name, has a default)."""
    found = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__new__":
                arguments = item.args.args[1:]
                first_default = len(arguments) - len(item.args.defaults)
                found[node.name] = [(a.arg, i >= first_default)
                                    for i, a in enumerate(arguments)]
    return found


@pytest.mark.parametrize("name", MODULES)
def test_constructors_stubtest_cannot_see_match_the_pyx(name):
    """A class built by ``__cinit__(self, ...)`` has ``__new__`` in its stub, with the same
    parameters in the same order (and the same ones defaulted)."""
    pyx = _pyx_cinit_parameters((EXT / f"{name}.pyx").read_text())
    stub = _stub_new_parameters((PACKAGE / f"{name}.pyi").read_text())
    assert stub == pyx, f"softrelay.{name}: __new__ in the stub {stub}, __cinit__ in the pyx {pyx}"
