"""Paced SPI messages through the kernel's spidev: many transfers in one ioctl.

py-spidev's ``xfer2`` sends one transfer (chip select held for all its bytes). A burst of ADC
conversions needs chip select released between conversions and a fixed spacing between them,
without a system call (and a Python scheduling gap) per sample: one SPI_IOC_MESSAGE(N) ioctl
whose N ``struct spi_ioc_transfer`` (linux/spi/spidev.h) each carry one conversion, with
``cs_change`` (release chip select after it) and ``delay_usecs`` (wait after it). The kernel
runs the whole message on the controller; Python waits once.

``SpidevPort`` wraps an opened ``spidev.SpiDev`` (its ``fileno()``); tests and the demo give it a
simulated spidev's ``ioctl`` that decodes the same structures the kernel does.
"""

from __future__ import annotations

import ctypes
import fcntl
import math
import struct
import time
from collections.abc import Callable, Sequence

#: struct spi_ioc_transfer: tx_buf, rx_buf (u64 addresses), len, speed_hz (u32), delay_usecs
#: (u16), bits_per_word, cs_change, tx_nbits, rx_nbits, word_delay_usecs, pad (u8): 32 bytes
TRANSFER = struct.Struct("=QQIIHBBBBBB")
assert TRANSFER.size == 32
IOC_WRITE, IOC_SIZEBITS = 1, 14
SPI_IOC_MAGIC = ord("k")
#: the most transfers one message can carry: the ioctl's size field has 14 bits
MAX_TRANSFERS = ((1 << IOC_SIZEBITS) - 1) // TRANSFER.size


def spi_ioc_message(n: int) -> int:
    """SPI_IOC_MESSAGE(n) = _IOW('k', 0, char[n * sizeof(struct spi_ioc_transfer)])."""
    size = n * TRANSFER.size
    if not 0 < n <= MAX_TRANSFERS:
        raise ValueError(f"an SPI message carries 1 to {MAX_TRANSFERS} transfers, not {n}")
    return IOC_WRITE << 30 | size << 16 | SPI_IOC_MAGIC << 8 | 0


def decode_message(request: int, buffer: bytes | bytearray) -> list[tuple]:
    """The transfers of an SPI_IOC_MESSAGE ioctl, as the kernel reads them (simulated spidev)."""
    n = (request >> 16 & ((1 << IOC_SIZEBITS) - 1)) // TRANSFER.size
    if request != spi_ioc_message(n) or len(buffer) < n * TRANSFER.size:
        raise OSError(22, f"ioctl 0x{request:08x} is not an SPI message")  # EINVAL
    return [TRANSFER.unpack_from(buffer, k * TRANSFER.size) for k in range(n)]


class SpidevPort:
    """One chip select: ``xfer2`` for single transfers, ``message`` for paced bursts.

    ``last_seconds`` is how long the last message's ioctl took by ``clock``, the ioctl alone
    (packing the transfers is before the first sample): on a real controller the wire's time
    plus whatever kept the kernel from running it on time. A simulated spidev passes its
    ``wire_clock``, which leaves out the time the twin itself needs to compute its answers."""

    def __init__(self, spi, ioctl: Callable = fcntl.ioctl,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spi = spi
        self.ioctl = ioctl
        self.clock = clock
        self.last_seconds = math.nan

    @property
    def mode(self) -> int:
        return self.spi.mode

    @mode.setter
    def mode(self, value: int) -> None:
        self.spi.mode = value

    @property
    def max_speed_hz(self) -> int:
        return self.spi.max_speed_hz

    @max_speed_hz.setter
    def max_speed_hz(self, value: int) -> None:
        self.spi.max_speed_hz = value

    def xfer2(self, data: list[int]) -> list[int]:
        return self.spi.xfer2(data)

    def message(self, transfers: Sequence[bytes], delays_us: Sequence[int],
                speed_hz: int) -> list[bytes]:
        """Send ``transfers`` in one message, chip select released after each (and left
        released at the end), waiting ``delays_us[k]`` microseconds after transfer k. Returns
        what the chip sent back during each."""
        n = len(transfers)
        request = spi_ioc_message(n)
        buffers = [(ctypes.create_string_buffer(bytes(t), len(t)),
                    ctypes.create_string_buffer(len(t))) for t in transfers]
        packed = bytearray(n * TRANSFER.size)
        for k, ((tx, rx), delay) in enumerate(zip(buffers, delays_us, strict=True)):
            if not 0 <= delay <= 0xFFFF:
                raise ValueError(f"delay {delay} us does not fit spi_ioc_transfer.delay_usecs")
            # cs_change on the last transfer would keep chip select asserted after the message
            TRANSFER.pack_into(packed, k * TRANSFER.size, ctypes.addressof(tx),
                               ctypes.addressof(rx), len(transfers[k]), speed_hz, delay, 8,
                               1 if k < n - 1 else 0, 0, 0, 0, 0)
        started = self.clock()
        self.ioctl(self.spi.fileno(), request, packed, True)
        self.last_seconds = self.clock() - started
        return [rx.raw for _, rx in buffers]

    def close(self) -> None:
        self.spi.close()
