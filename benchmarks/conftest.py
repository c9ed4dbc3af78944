"""Benchmarks run on their own (make bench), never as part of the test suite.

OpenBLAS's worker threads spin after any BLAS call and steal a core of a 2-core machine: the
benchmarks (like the relay itself) keep BLAS to the calling thread.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
