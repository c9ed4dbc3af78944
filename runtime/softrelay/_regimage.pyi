# Stub of the compiled module built from ext/softrelay/_regimage.pyx.
from typing import Final

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer, disjoint_base

CONSTANTS: Final[dict[str, int]]

@disjoint_base
class ImageEncoder:
    def __init__(
        self,
        sources: list[Buffer],
        plan: NDArray[np.int64],
        ir: NDArray[np.uint16],
        hr: NDArray[np.uint16],
        di: NDArray[np.uint8],
        co: NDArray[np.uint8],
    ) -> None: ...
    def fill(self) -> None: ...
