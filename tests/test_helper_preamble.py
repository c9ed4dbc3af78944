"""Every helper process (companion, telemetry, TLS front) begins with the one preamble,
``scan.helper.enter_helper``: its lifeline, its priority and CPU, its signals, its logging."""

from __future__ import annotations

import ast
import multiprocessing
import os
import signal
from pathlib import Path

from softrelay.scan.helper import enter_helper

PACKAGE = Path(__file__).resolve().parent.parent / "runtime" / "softrelay"
HELPERS = {"field/companion.py": "companion_main", "telemetry/process.py": "telemetry_main",
           "modbus/tls_front.py": "front_main"}
PREAMBLE_PARTS = {"bind_to_parent", "helper_priority", "keep_off_cpu", "signal"}


def _in_child(answer) -> None:
    told = []
    parent = enter_helper(None, 0, None, lambda: told.append("logging"))
    answer.send((parent, signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
                 signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, told,
                 os.sched_getscheduler(0) == os.SCHED_OTHER))


def test_the_preamble_binds_ignores_the_stop_signals_and_sets_up_logging():
    ctx = multiprocessing.get_context("spawn")
    answer, tell = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_in_child, args=(tell,))
    child.start()
    try:
        assert answer.poll(60.0), "the helper never answered"
        parent, sigint_ignored, sigterm_ignored, told, normal = answer.recv()
    finally:
        child.join(10.0)
    assert parent == os.getpid()  # the scan process (here: the test) it watches
    assert sigint_ignored and sigterm_ignored  # stopping is the scan process's decision
    assert told == ["logging"] and normal


def test_each_helper_enters_through_the_one_preamble_and_repeats_none_of_it():
    for path, entry in HELPERS.items():
        tree = ast.parse((PACKAGE / path).read_text())
        main = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and n.name == entry)
        called = {c.func.id if isinstance(c.func, ast.Name) else
                  c.func.value.id if isinstance(c.func, ast.Attribute)
                  and isinstance(c.func.value, ast.Name) else ""
                  for c in ast.walk(main) if isinstance(c, ast.Call)}
        assert "enter_helper" in called, f"{path}: {entry} does not call enter_helper"
        assert not called & PREAMBLE_PARTS, (f"{path}: {entry} repeats the preamble's "
                                             f"{sorted(called & PREAMBLE_PARTS)}")
