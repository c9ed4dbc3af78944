# cython: language_level=3, boundscheck=False, wraparound=False
"""The Modbus/TCP slave's network thread (``mbserver.h``, ``mbserver.c``), wrapped for the
runtime.

``ModbusServer`` runs a native thread that never takes the GIL: it answers reads from the
register image in the snapshot's shared memory (under its seqlock) and queues writes for
Python (``next_write`` / ``complete``), which validates and applies them through the relay's
command and settings queues. The listening socket is made by the caller (Python's socket
module: its errors are the clear ones) and handed over. The C side is an opaque handle and
the functions of ``mbserver.h``; nothing here reaches into its structure.
"""

import errno as errno_module
import ipaddress
import os

from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport strerror

cdef extern from "mbserver.h" nogil:
    enum:
        SR_MAX_CONN
        SR_MAX_ALLOW
        SR_MAX_PENDING
        SR_MAX_ADU
        SR_MAX_PDU
        SR_MBAP_HEADER
        SR_MAX_LABEL
        SR_MAX_ADOPT
    ctypedef struct sr_server:
        pass
    ctypedef struct sr_config:
        int max_conn
        int max_per_peer
        double idle_timeout
        double frame_timeout
        int avoid_cpu
        int n_allow
        uint32_t allow_net[32]
        uint32_t allow_mask[32]
    ctypedef struct sr_counters:
        uint64_t requests, exceptions, accepted, refused, dropped, evicted, stalled, closed
        uint64_t busy, writes_dropped, answers_discarded, accept_errors, adopted
        uint32_t open, faults
    ctypedef struct sr_write:
        int slot
        uint64_t generation
        uint32_t peer
        uint16_t peer_port
        int len
        uint8_t frame[260]
        char label[128]
    sr_server* sr_new(const sr_config*, int, uint8_t*, size_t, const uint8_t*, int)
    int sr_set_unit(sr_server*, int, const size_t*, const uint32_t*, const uint8_t* const*)
    int sr_start(sr_server*)
    void sr_stop(sr_server*)
    void sr_free(sr_server*)
    int sr_next_write(sr_server*, double, sr_write*)
    int sr_complete(sr_server*, int, uint64_t, const uint8_t*, const uint8_t*, int)
    int sr_is_open(sr_server*, int, uint64_t)
    uint64_t sr_adopt(sr_server*, int, uint32_t, uint16_t, const char*)
    int sr_adopted_slot(sr_server*, uint64_t)
    void sr_counters_get(sr_server*, sr_counters*)
    int sr_read_pdu(sr_server*, int, const uint8_t*, int, uint8_t*)

TABLE_ORDER = ("coil", "discrete_input", "input_register", "holding_register")
MAX_CONN = SR_MAX_CONN
MAX_PENDING = SR_MAX_PENDING  #: writes waiting for Python before a write is answered 06
MAX_LABEL = SR_MAX_LABEL - 1  #: an adopted connection's label, bytes (longer: cut)
MAX_ADOPT = SR_MAX_ADOPT  #: adopted connections waiting to be placed (beyond: refused)
#: the bits of ``counters["faults"]`` (the thread still serves)
FAULTS = {1: "could not leave the scan's real-time priority",
          2: "could not leave the scan's CPU", 4: "poll() failed",
          8: "a socket option or close() failed", 16: "the wake pipe could not be written"}


def default_per_peer(int max_conn):
    """Connections one address may hold unless configured: half the server's, at least 1."""
    return max(1, (max_conn + 1) // 2)


cdef class ModbusServer:
    cdef sr_server* s
    cdef object keep
    cdef bint running, stopped
    cdef public int port

    def __init__(self, uint8_t[::1] region, images, units, bytes identity, listener,
                 int max_conn=16, double idle_timeout=60.0, double frame_timeout=2.0,
                 allow=(), avoid_cpu=None, max_per_peer=None):
        """``region``: the snapshot's whole shared region (seqlock header, then data);
        ``images``: register images, each (offsets, sizes, mapped): per table (TABLE_ORDER)
        its byte offset in the data, its number of addresses and a uint8 per address (1
        mapped); ``units``: 256 entries, the index of the image unit id u reads, or -1 (that
        unit answers exception 0x0B); ``identity``: the device identification objects (id,
        length, bytes ...); ``listener``: a bound, listening socket (kept open by this
        object), or None: no port of its own, it serves adopted connections only; ``allow``: (network, mask) IPv4 integers, empty for any; ``avoid_cpu``: the
        scan's CPU, which the network thread keeps off (it runs at normal priority);
        ``max_per_peer``: connections from one address (None: ``default_per_peer``)."""
        cdef sr_config config
        cdef const uint8_t[::1] m
        cdef size_t offsets[4]
        cdef uint32_t sizes[4]
        cdef const uint8_t* mapped_at[4]
        if self.s != NULL:
            raise RuntimeError("a server is initialised once")
        if not 1 <= max_conn <= SR_MAX_CONN:
            raise ValueError(f"max_conn must be 1..{SR_MAX_CONN}")
        per_peer = default_per_peer(max_conn) if max_per_peer is None else max_per_peer
        if not 1 <= per_peer <= max_conn:
            raise ValueError(f"max_per_peer must be 1..max_conn ({max_conn})")
        if len(allow) > SR_MAX_ALLOW:
            raise ValueError(f"at most {SR_MAX_ALLOW} allowed networks")
        if len(units) != 256:
            raise ValueError("units: one entry per unit id, 256")
        config.max_conn = max_conn
        config.max_per_peer = per_peer
        config.idle_timeout = idle_timeout
        config.frame_timeout = frame_timeout
        config.avoid_cpu = -1 if avoid_cpu is None else avoid_cpu
        config.n_allow = len(allow)
        for i, (net, mask) in enumerate(allow):
            config.allow_net[i] = net & mask
            config.allow_mask[i] = mask
        if listener is not None:
            listener.setblocking(False)
        self.s = sr_new(&config, listener.fileno() if listener is not None else -1, &region[0],
                        region.shape[0], identity, len(identity))
        if self.s == NULL:
            raise OSError(errno, f"the Modbus server: {strerror(errno).decode()}")
        for u in range(256):
            k = units[u]
            if k < 0:
                continue
            image_offsets, image_sizes, mapped = images[k]
            for t in range(4):
                m = mapped[t]
                if m.shape[0] < image_sizes[t]:
                    raise ValueError("a mapped table is shorter than its size")
                offsets[t] = image_offsets[t]
                sizes[t] = image_sizes[t]
                mapped_at[t] = &m[0] if m.shape[0] else NULL
            if sr_set_unit(self.s, u, offsets, sizes, mapped_at) != 0:
                raise ValueError("an image table lies outside the region")
        self.port = listener.getsockname()[1] if listener is not None else 0
        self.keep = (region, images, identity, listener)

    def start(self):
        if self.running:
            return
        if self.stopped:
            raise RuntimeError("a stopped server does not start again")
        failed = sr_start(self.s)
        if failed:
            raise OSError(failed, "could not start the Modbus server thread")
        self.running = True

    def stop(self):
        """Stop the thread, close every connection; safe to call twice."""
        if self.s != NULL and not self.stopped:
            with nogil:
                sr_stop(self.s)
            self.running = False
            self.stopped = True
        if self.keep is not None:
            if self.keep[3] is not None:
                self.keep[3].close()
            self.keep = None  # releases the snapshot's buffer: its owner may now unmap it

    def __dealloc__(self):
        if self.s != NULL:
            sr_free(self.s)  # stops it first
            self.s = NULL

    def next_write(self, double timeout=0.5):
        """The next write request: (slot, generation, MBAP frame, peer) or None after
        ``timeout`` s (or when stopping). Waits without the GIL. (slot, generation) names the
        connection the write came from, unique per accepted connection for this server's
        life; ``peer`` is its "a.b.c.d:port", or an adopted connection's label."""
        cdef sr_write w
        cdef int got
        if self.stopped:
            return None
        with nogil:
            got = sr_next_write(self.s, timeout, &w)
        if not got:
            return None
        if w.label[0]:
            return (w.slot, w.generation, bytes(w.frame[:w.len]),
                    (<bytes>w.label).decode("utf-8", "replace"))
        p = w.peer
        peer = f"{p >> 24}.{(p >> 16) & 255}.{(p >> 8) & 255}.{p & 255}:{w.peer_port}"
        return w.slot, w.generation, bytes(w.frame[:w.len]), peer

    def is_open(self, int slot, uint64_t generation):
        """Whether the connection (slot, generation) is still open (a closed one's slot may
        hold a newer connection: its generation differs)."""
        return bool(sr_is_open(self.s, slot, generation))

    def adopt(self, int fd, str peer, int peer_port, str label):
        """Serve ``fd`` (a connected stream socket, e.g. a TLS front's end of a socketpair;
        owned by the server from now on, whatever happens) as a connection from
        ``peer``:``peer_port`` (IPv4: the allowlist and the connection limits apply to it)
        whose writes name ``label`` as their peer. Its generation, unique for this server's
        life; OSError when it cannot be taken (the fd is closed then): EAGAIN, MAX_ADOPT are
        waiting; ESHUTDOWN, stopping. The network thread places it at its next turn; a
        refusal there closes it (``adopted_slot`` says -2)."""
        cdef uint64_t generation
        cdef bytes text = label.encode("utf-8")[:SR_MAX_LABEL - 1]
        cdef const char* c_text = text
        cdef uint32_t address
        try:
            address = int(ipaddress.IPv4Address(peer))
        except ValueError:
            os.close(fd)
            raise
        if self.stopped:
            os.close(fd)
            raise OSError(errno_module.ESHUTDOWN, "the Modbus server is stopped")
        with nogil:
            generation = sr_adopt(self.s, fd, address, peer_port, c_text)
        if generation == 0:
            raise OSError(errno, f"the Modbus server cannot adopt a connection: "
                                 f"{strerror(errno).decode()}")
        return generation

    def adopted_slot(self, uint64_t generation):
        """The adopted connection ``generation``'s slot while open; -1 while it waits to be
        placed (a refused one until the network thread has finished the batch it was refused
        in: its peer may see the close a moment before); -2 gone (refused or closed)."""
        return sr_adopted_slot(self.s, generation)

    def complete(self, int slot, uint64_t generation, bytes mbap, bytes pdu):
        """Send ``pdu`` as the answer to the write from (slot, generation). True: queued on
        its connection; False: that connection is gone (the answer is counted as
        discarded)."""
        if len(mbap) < SR_MBAP_HEADER or not 1 <= len(pdu) <= SR_MAX_PDU:
            raise ValueError("a response needs the request's MBAP header and 1..253 bytes")
        return sr_complete(self.s, slot, generation, mbap, pdu, len(pdu)) == 1

    def read_pdu(self, bytes pdu, int unit=1):
        """The answer the network thread gives to a read PDU for ``unit`` (tests hold it to
        the reference)."""
        cdef uint8_t out[300]
        cdef int n
        if not 1 <= len(pdu) <= SR_MAX_PDU:
            raise ValueError("a PDU has 1..253 bytes")
        if self.keep is None:
            raise RuntimeError("the server is stopped")
        n = sr_read_pdu(self.s, unit, pdu, len(pdu), out)
        if n < 0:
            raise ValueError(f"unit {unit} reads no map")
        return bytes(out[:n])

    @property
    def counters(self):
        """One consistent copy of the thread's counters (and ``open``, the connections)."""
        cdef sr_counters c
        sr_counters_get(self.s, &c)
        return {"requests": c.requests, "exceptions": c.exceptions, "accepted": c.accepted,
                "refused": c.refused, "dropped": c.dropped, "evicted": c.evicted,
                "stalled": c.stalled, "closed": c.closed, "busy": c.busy,
                "writes_dropped": c.writes_dropped, "answers_discarded": c.answers_discarded,
                "accept_errors": c.accept_errors, "adopted": c.adopted, "open": c.open, "faults": c.faults}

    @property
    def connections(self):
        """Connections open (from the same consistent copy as ``counters``)."""
        cdef sr_counters c
        sr_counters_get(self.s, &c)
        return c.open
