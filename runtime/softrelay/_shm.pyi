# Stub of the compiled module built from ext/softrelay/_shm.pyx.
import mmap
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

# what a ``uint8_t[::1]`` accepts (writable, contiguous bytes) and a ``const uint8_t[::1]``
_Bytes: TypeAlias = NDArray[np.uint8] | bytearray | memoryview | mmap.mmap
_ReadOnlyBytes: TypeAlias = _Bytes | bytes

HEADER: Final[int]
GIVE_UP_MS: Final[float]

def begin(region: _Bytes) -> int: ...
def end(region: _Bytes) -> int: ...
def write(region: _Bytes, data: _ReadOnlyBytes) -> int: ...
def read_into(region: _Bytes, out: _Bytes, timeout_ms: float = ...) -> int: ...
