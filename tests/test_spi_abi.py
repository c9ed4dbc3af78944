"""The SPI_IOC_MESSAGE transfers the driver packs are the kernel's own struct on this
machine's ABI: a C program compiled here against <linux/spi/spidev.h> (the kernel's uapi
header, from linux-libc-dev) prints sizeof, every field's offset and SPI_IOC_MESSAGE(n), and
the Python packing must agree. Run on x86-64 by `make test`, on arm64 and 32-bit armhf by
`make test-arm` (where u64 alignment and the ioctl encoding are what could differ)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from softrelay.field.spi.port import MAX_TRANSFERS, TRANSFER, spi_ioc_message

PROGRAM = r"""
#include <stddef.h>
#include <stdio.h>
#include <linux/spi/spidev.h>
#define OFF(f) printf(#f " %zu %zu\n", offsetof(struct spi_ioc_transfer, f), \
                      sizeof(((struct spi_ioc_transfer *)0)->f))
int main(void) {
    printf("size %zu\n", sizeof(struct spi_ioc_transfer));
    OFF(tx_buf); OFF(rx_buf); OFF(len); OFF(speed_hz); OFF(delay_usecs);
    OFF(bits_per_word); OFF(cs_change); OFF(tx_nbits); OFF(rx_nbits);
    OFF(word_delay_usecs); OFF(pad);
    printf("msg1 %lu\nmsg3 %lu\nmsg511 %lu\n", (unsigned long)SPI_IOC_MESSAGE(1),
           (unsigned long)SPI_IOC_MESSAGE(3), (unsigned long)SPI_IOC_MESSAGE(511));
    return 0;
}
"""
FIELDS = ("tx_buf", "rx_buf", "len", "speed_hz", "delay_usecs", "bits_per_word", "cs_change",
          "tx_nbits", "rx_nbits", "word_delay_usecs", "pad")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> dict[str, list[int]]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler: the kernel's struct cannot be measured here")
    work = tmp_path_factory.mktemp("spi_abi")
    (work / "abi.c").write_text(PROGRAM)
    built = subprocess.run([cc, "-o", str(work / "abi"), str(work / "abi.c")],
                           capture_output=True, text=True, timeout=300)
    if built.returncode and "spidev.h" in built.stderr:
        pytest.skip("<linux/spi/spidev.h> is missing (Debian package linux-libc-dev)")
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(Path(work / "abi"))], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return {line.split()[0]: [int(v) for v in line.split()[1:]] for line in out.splitlines()}


def test_the_transfer_struct_is_the_kernels_field_by_field(kernel):
    assert TRANSFER.size == kernel["size"][0] == 32
    # the Python packing: the offset and width of each field of "=QQIIHBBBBBB"
    offset, layout = 0, {}
    for name, code in zip(FIELDS, TRANSFER.format.lstrip("="), strict=True):
        layout[name] = [offset, struct.calcsize("=" + code)]
        offset += layout[name][1]
    assert layout == {name: kernel[name] for name in FIELDS}


def test_the_request_numbers_are_the_kernels(kernel):
    assert spi_ioc_message(1) == kernel["msg1"][0]
    assert spi_ioc_message(3) == kernel["msg3"][0]
    assert spi_ioc_message(MAX_TRANSFERS) == kernel["msg511"][0]
