# Stub of the compiled module built from ext/softrelay/_mbserver.pyx.
import mmap
import socket
from collections.abc import Sequence
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

# what a ``uint8_t[::1]`` accepts (writable, contiguous bytes) and a ``const uint8_t[::1]``
_Bytes: TypeAlias = NDArray[np.uint8] | bytearray | memoryview | mmap.mmap
_ReadOnlyBytes: TypeAlias = _Bytes | bytes
# one register image: per table (TABLE_ORDER) its byte offset, its size, its mapped flags
_Image: TypeAlias = tuple[Sequence[int], Sequence[int], Sequence[_ReadOnlyBytes]]

TABLE_ORDER: Final[tuple[str, str, str, str]]
MAX_CONN: Final[int]
MAX_PENDING: Final[int]
MAX_LABEL: Final[int]
MAX_ADOPT: Final[int]
FAULTS: Final[dict[int, str]]

def default_per_peer(max_conn: int) -> int: ...

@disjoint_base
class ModbusServer:
    port: int
    def __init__(
        self,
        region: _Bytes,
        images: Sequence[_Image],
        units: Sequence[int],
        identity: bytes,
        listener: socket.socket | None,
        max_conn: int = 16,
        idle_timeout: float = 60.0,
        frame_timeout: float = 2.0,
        allow: Sequence[tuple[int, int]] = (),
        avoid_cpu: int | None = None,
        max_per_peer: int | None = None,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def next_write(self, timeout: float = 0.5) -> tuple[int, int, bytes, str] | None: ...
    def is_open(self, slot: int, generation: int) -> bool: ...
    def adopt(self, fd: int, peer: str, peer_port: int, label: str) -> int: ...
    def adopted_slot(self, generation: int) -> int: ...
    def complete(self, slot: int, generation: int, mbap: bytes, pdu: bytes) -> bool: ...
    def read_pdu(self, pdu: bytes, unit: int = 1) -> bytes: ...
    @property
    def counters(self) -> dict[str, int]: ...
    @property
    def connections(self) -> int: ...
