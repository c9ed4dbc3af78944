"""Build of the compiled parts: ext/softrelay/_core.pyx -> softrelay._core (the protection
core), ext/softrelay/_timing.pyx -> softrelay._timing (scan deadlines and statistics),
ext/softrelay/_shm.pyx -> softrelay._shm (the seqlock over shared-memory images),
ext/softrelay/_regimage.pyx -> softrelay._regimage (the Modbus register image of each scan),
ext/softrelay/_mbserver.pyx and mbserver.c -> softrelay._mbserver (the Modbus/TCP slave's
network thread).

Flags are portable: no -march=native (the same wheel must run on any x86-64 or ARM board),
no -ffast-math (NaN must stay NaN in protection logic), and -ffp-contract=off so that no
compiler fuses a*b+c differently from the NumPy reference on one platform and not another.
SOFTRELAY_NATIVE=1 adds -march=native for a build made on its own target.
"""

import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# The packed structs are naturally aligned by construction (tests/test_layout.py) and run_scan
# refuses a misaligned buffer, so taking a member's address is safe: silence that warning.
compile_args = (
    []
    if sys.platform == "win32"
    else ["-O2", "-ffp-contract=off", "-fno-fast-math", "-Wno-address-of-packed-member"]
)
if os.environ.get("SOFTRELAY_NATIVE") == "1":
    compile_args.append("-march=native")
# SOFTRELAY_SANITIZE=1 (make test's ASan run): only the Modbus server, built with AddressSanitizer
# and UndefinedBehaviorSanitizer, any UB an error; loaded with libasan preloaded.
SANITIZE = os.environ.get("SOFTRELAY_SANITIZE") == "1"
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
              "-fno-omit-frame-pointer", "-g"]
MBSERVER_HEADERS = ["ext/softrelay/mbserver.h", "ext/softrelay/modbus_protocol.h",
                    "ext/softrelay/seqlock.h"]

extensions = [
    Extension(
        "softrelay._core",
        sources=["ext/softrelay/_core.pyx"],
        include_dirs=["ext/softrelay", np.get_include()],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ),
    Extension(
        "softrelay._mbserver",
        sources=["ext/softrelay/_mbserver.pyx", "ext/softrelay/mbserver.c"],
        include_dirs=["ext/softrelay"],
        depends=MBSERVER_HEADERS,
        extra_compile_args=compile_args + (SANITIZERS if SANITIZE else []),
        extra_link_args=SANITIZERS if SANITIZE else [],
    ),
    Extension(
        "softrelay._regimage",
        sources=["ext/softrelay/_regimage.pyx"],
        extra_compile_args=compile_args,
    ),
    Extension(
        "softrelay._timing",
        sources=["ext/softrelay/_timing.pyx"],
        extra_compile_args=compile_args,
    ),
    Extension(
        "softrelay._shm",
        sources=["ext/softrelay/_shm.pyx"],
        include_dirs=["ext/softrelay"],
        depends=["ext/softrelay/seqlock.h"],
        extra_compile_args=compile_args,
    ),
]

if SANITIZE:
    extensions = [e for e in extensions if e.name == "softrelay._mbserver"]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["ext"],
        compiler_directives={"language_level": "3"},
    )
)
