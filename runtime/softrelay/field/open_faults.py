"""Why a field bus could not be opened, and what to do about it, in one sentence.

A bus whose device node is missing (I2C or SPI not enabled, a USB RS-485 adapter unplugged),
whose node the relay's user may not open, or whose driver library is not installed is a
*faulted bus*, never a reason for the relay not to start: its signals read I/O error, its link
shows down with the sentence built here as the reason, and the bus is tried again at its
back-off until it opens. This module only words the failure; it opens nothing.
"""

from __future__ import annotations

import errno
import os

#: bus kind -> (what enables its device nodes, the group that may open them)
ENABLE = {
    "i2c": ("enable I2C: raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in "
            "config.txt), then reboot", "i2c"),
    "spi": ("enable SPI: raspi-config nonint do_spi 0 (or dtparam=spi=on in config.txt), "
            "then reboot", "spi"),
    "serial": ("plug in the RS-485 adapter or correct the port in the configuration "
               "(ls /dev/serial/by-id)",
               "dialout"),
}


class BusOpenError(OSError):
    """A bus could not be opened; ``str()`` is the whole sentence (what, why, the remedy)."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(code or errno.EIO, text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def open_fault(kind: str, path: str, exc: BaseException, what: str = "") -> BusOpenError:
    """The failure to open ``path`` (a bus of ``kind``: 'i2c', 'spi' or 'serial') as a
    ``BusOpenError`` whose text says what failed, why, and what to do; ``what``: said after
    the path (' for the RTU slave')."""
    enable, group = ENABLE[kind]
    path = f"{path}{what}"
    if isinstance(exc, ImportError):
        return BusOpenError(f"cannot open {path}: the driver is not installed ({exc.name or exc}"
                            "): pip install 'softrelay[hardware]'", errno.ENOSYS)
    code = getattr(exc, "errno", None)
    if isinstance(exc, FileNotFoundError) or code in (errno.ENOENT, errno.ENODEV,
                                                      errno.ENXIO):
        return BusOpenError(f"cannot open {path}: no such device: {enable}", errno.ENOENT)
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        user = _user()
        return BusOpenError(f"cannot open {path}: permission denied: add the user to the "
                            f"{group} group (usermod -aG {group} {user}), then log in again",
                            errno.EACCES)
    if code == errno.EBUSY:
        return BusOpenError(f"cannot open {path}: busy: another process holds it", code)
    detail = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return BusOpenError(f"cannot open {path}: {detail}", code)


def check_node(kind: str, path: str) -> None:
    """Raise the ``BusOpenError`` of ``path`` when it is missing or may not be opened for
    reading and writing by this process (pyserial and pymodbus only say 'cannot connect')."""
    try:
        os.stat(path)
    except OSError as exc:
        raise open_fault(kind, path, exc) from None
    if not os.access(path, os.R_OK | os.W_OK):
        raise open_fault(kind, path, PermissionError(errno.EACCES, "permission denied"))


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return "$USER"
