"""Chooses the implementation of the protection core, in this one place.

The compiled core (``softrelay._core``) is the default and the only one fit for service. The
environment variable SOFTRELAY_CORE=reference selects the NumPy reference instead (for
debugging the maths); there is no silent fallback: a missing compiled core is an error, so a
broken build can never run protection at reference speed unnoticed.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

ENV_VAR = "SOFTRELAY_CORE"
IMPLEMENTATIONS = {"compiled": "softrelay._core", "reference": "softrelay.core.reference"}


class CoreNotBuiltError(ImportError):
    """The compiled core is missing or does not import."""


def load(name: str | None = None) -> ModuleType:
    """Return the core module named ``name`` (default: $SOFTRELAY_CORE, else "compiled")."""
    choice = name or os.environ.get(ENV_VAR, "compiled")
    if choice not in IMPLEMENTATIONS:
        raise ValueError(
            f"{ENV_VAR}={choice!r}: expected one of {', '.join(sorted(IMPLEMENTATIONS))}"
        )
    try:
        return importlib.import_module(IMPLEMENTATIONS[choice])
    except ImportError as exc:
        if choice != "compiled":
            raise
        raise CoreNotBuiltError(
            f"the compiled core softrelay._core does not import ({exc}); rebuild with "
            f"'make build' (or 'pip install .'), or set {ENV_VAR}=reference to run the "
            "NumPy reference knowingly"
        ) from exc
