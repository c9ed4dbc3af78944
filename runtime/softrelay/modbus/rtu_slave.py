"""The Modbus RTU slave on a serial port (RS-485 installations), from the same map and logic.

A thread reads the line: a frame ends at a silence of 3.5 characters (at least 1.75 ms above
19 200 baud, as the specification says); a frame with a wrong CRC, or for another address, is
ignored (RTU has no answer for those); address 0 is a broadcast: its writes are done, nothing
is answered. A request is answered by ``pdu.SlaveLogic`` from the register image of the
newest published scan (exception 06, server device busy, before the first scan's), and writes
go through the same ``RelayWrites`` as over TCP. The line is one session
(``authority.Session.rtu``: "rtu:<port> unit <u>"): a level earned by a code on it holds for
every master on the line until it expires or 0 is written (RS-485 has no connection to end).

It runs in the scan process as a Python thread: an RS-485 line carries at most a few hundred
frames a second (~40 of 100 registers at 19 200 baud), a fraction of a percent of the
interpreter's time.
"""

from __future__ import annotations

import logging
import threading

from softrelay.config.modbus import ModbusRtuSlave
from softrelay.image.shared import SharedImage
from softrelay.image.snapshot import published
from softrelay.modbus.authority import Session
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.protocol import RTU_BROADCAST, Function, crc16, rtu_frame
from softrelay.modbus.register_image import register_image
from softrelay.modbus.writes import RelayWrites
from softrelay.scan.realtime import leave_realtime

log = logging.getLogger("softrelay.modbus")
WRITES = (Function.WRITE_SINGLE_COIL, Function.WRITE_SINGLE_REGISTER,
          Function.WRITE_MULTIPLE_COILS, Function.WRITE_MULTIPLE_REGISTERS,
          Function.READ_WRITE_REGISTERS)  #: what a broadcast may carry


def silence(baudrate: int, bits_per_char: int = 11) -> float:
    """t3.5: the silence that ends a frame, s (fixed 1.75 ms above 19 200 baud)."""
    return 1.75e-3 if baudrate > 19200 else 3.5 * bits_per_char / baudrate


class RtuSlave:
    def __init__(self, config: ModbusRtuSlave, logic: SlaveLogic, snapshot: SharedImage,
                 writes: RelayWrites, port: str | None = None) -> None:
        import serial  # pyserial, with pymodbus[serial]

        self.config = config
        self.logic = logic
        self.snapshot = snapshot.reader()  # this thread's own copy buffers
        self.writes = writes
        path = port or config.port
        self.line = serial.Serial(path, baudrate=config.baudrate, bytesize=8,
                                  parity=config.parity, stopbits=config.stopbits,
                                  timeout=0.2, inter_byte_timeout=silence(config.baudrate))
        self.session = Session.rtu(path, config.unit)  # the line's port
        self.frames = self.crc_errors = self.answered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def answer(self, frame: bytes) -> bytes | None:
        """The response frame to one received frame, or None (no answer is due)."""
        if len(frame) < 4 or crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            self.crc_errors += 1
            return None
        unit, pdu = frame[0], frame[1:-2]
        if unit not in (RTU_BROADCAST, self.config.unit):
            return None
        if unit == RTU_BROADCAST and pdu[0] not in WRITES:
            return None  # a broadcast read has no one to answer to
        image = register_image(self.snapshot.read()) if published(self.snapshot) else None
        # image None: reads answer busy (06)
        response = self.logic.respond(pdu, image, self.writes.for_session(self.session))
        return None if unit == RTU_BROADCAST else rtu_frame(unit, response)

    def _serve(self) -> None:
        leave_realtime()  # not at the scan's priority, which it inherits
        while not self._stop.is_set():
            frame = self.line.read(256)  # returns at the inter-character silence
            try:
                self.writes.authority.tick()
            except Exception:
                log.exception("Modbus RTU session upkeep failed")
            if not frame:
                continue
            self.frames += 1
            try:
                response = self.answer(frame)
            except Exception:  # a bad frame never stops the line
                log.exception("Modbus RTU request failed")
                continue
            if response is not None:
                self.line.write(response)
                self.answered += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="modbus-rtu", daemon=True)
        self._thread.start()
        log.info("Modbus RTU slave on %s, unit %d", self.line.port, self.config.unit)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self.line.close()
        self.snapshot.close()
