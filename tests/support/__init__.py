"""Test scaffolding shared by the tests (never a test module: no test imports another)."""
