"""What every configuration model shares."""

from pydantic import ConfigDict

#: unknown keys are errors, models are read-only, no inf or NaN in a file
STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
