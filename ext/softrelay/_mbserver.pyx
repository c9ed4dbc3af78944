# cython: language_level=3, boundscheck=False, wraparound=False
"""The Modbus/TCP slave's network thread (``mbserver.h``), wrapped for the runtime.

``ModbusServer`` runs a native thread that never takes the GIL: it answers reads from the
register image in the snapshot's shared memory (under its seqlock) and queues writes for
Python (``next_write`` / ``complete``), which validates and applies them through the relay's
command and settings queues. The listening socket is made by the caller (Python's socket
module: its errors are the clear ones) and handed over.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from posix.unistd cimport close, pipe, write

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t*, void*, void* (*)(void*), void*)
    int pthread_join(pthread_t, void**)
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_cond_init(pthread_cond_t*, void*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_cond_destroy(pthread_cond_t*)
    int pthread_cond_broadcast(pthread_cond_t*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int, int, ...)
    int F_GETFL, F_SETFL, O_NONBLOCK

cdef extern from "mbserver.h" nogil:
    enum:
        SR_MAX_CONN
        SR_FRAME
        SR_MAX_ALLOW
    ctypedef struct sr_conn:
        int fd
    ctypedef struct sr_server:
        uint8_t* region
        size_t off[256][4]
        uint32_t size[256][4]
        const uint8_t* mapped[256][4]
        uint8_t has_map[256]
        const uint8_t* identity
        int identity_len
        int listen_fd
        int max_conn
        double idle_timeout
        double frame_timeout
        uint32_t allow_net[32]
        uint32_t allow_mask[32]
        int n_allow
        sr_conn conn[256]
        int n_open
        pthread_mutex_t lock
        pthread_cond_t has_write
        int wake[2]
        int stop
        int avoid_cpu
        pthread_t thread
        uint64_t requests, exceptions, accepted, refused, dropped
    void* sr_loop(void*)
    void sr_close(sr_server*, int)
    int sr_next_write(sr_server*, double, int*, uint64_t*, uint32_t*, uint16_t*, uint8_t*)
    void sr_complete(sr_server*, int, uint64_t, const uint8_t*, const uint8_t*, int)
    int sr_is_open(sr_server*, int, uint64_t)
    int sr_read_pdu(sr_server*, int, const uint8_t*, int, uint8_t*)

TABLE_ORDER = ("coil", "discrete_input", "input_register", "holding_register")


cdef class ModbusServer:
    cdef sr_server* s
    cdef object keep
    cdef bint running
    cdef public int port

    def __cinit__(self):
        self.s = <sr_server*> calloc(1, sizeof(sr_server))
        if self.s == NULL:
            raise MemoryError()
        self.s.listen_fd = -1
        self.s.wake[0] = -1
        self.s.wake[1] = -1
        for k in range(SR_MAX_CONN):
            self.s.conn[k].fd = -1
        pthread_mutex_init(&self.s.lock, NULL)
        pthread_cond_init(&self.s.has_write, NULL)

    def __init__(self, uint8_t[::1] region, images, units, bytes identity, listener,
                 int max_conn=16, double idle_timeout=60.0, double frame_timeout=2.0,
                 allow=(), avoid_cpu=None):
        """``region``: the snapshot's whole shared region (seqlock header, then data);
        ``images``: register images, each (offsets, sizes, mapped): per table (TABLE_ORDER)
        its byte offset in the data, its number of addresses and a uint8 per address (1
        mapped); ``units``: 256 entries, the index of the image unit id u reads, or -1 (that
        unit answers exception 0x0B); ``identity``: the device identification objects (id,
        length, bytes ...); ``listener``: a bound, listening socket (kept open by this
        object); ``allow``: (network, mask) IPv4 integers, empty for any; ``avoid_cpu``: the
        scan's CPU, which the network thread keeps off (it runs at normal priority)."""
        cdef const uint8_t[::1] m
        cdef int fds[2]
        if not 1 <= max_conn <= SR_MAX_CONN:
            raise ValueError(f"max_conn must be 1..{SR_MAX_CONN}")
        if len(allow) > SR_MAX_ALLOW:
            raise ValueError(f"at most {SR_MAX_ALLOW} allowed networks")
        if len(units) != 256:
            raise ValueError("units: one entry per unit id, 256")
        self.s.region = &region[0]
        for offsets, sizes, mapped in images:
            for t in range(4):
                m = mapped[t]
                if m.shape[0] < sizes[t]:
                    raise ValueError("a mapped table is shorter than its size")
                if offsets[t] + (2 if t >= 2 else 1) * sizes[t] + 64 > region.shape[0]:
                    raise ValueError("an image table lies outside the region")
        for u in range(256):
            k = units[u]
            self.s.has_map[u] = 0 if k < 0 else 1
            if k < 0:
                continue
            offsets, sizes, mapped = images[k]
            for t in range(4):
                m = mapped[t]
                self.s.off[u][t] = offsets[t]
                self.s.size[u][t] = sizes[t]
                self.s.mapped[u][t] = &m[0] if m.shape[0] else NULL
        self.s.identity = identity
        self.s.identity_len = len(identity)
        self.s.max_conn = max_conn
        self.s.avoid_cpu = -1 if avoid_cpu is None else avoid_cpu
        self.s.idle_timeout = idle_timeout
        self.s.frame_timeout = frame_timeout
        for i, (net, mask) in enumerate(allow):
            self.s.allow_net[i] = net & mask
            self.s.allow_mask[i] = mask
        self.s.n_allow = len(allow)
        listener.setblocking(False)
        self.s.listen_fd = listener.fileno()
        self.port = listener.getsockname()[1]
        if pipe(fds) != 0:
            raise OSError("pipe failed")
        for fd in fds:
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.s.wake[0] = fds[0]
        self.s.wake[1] = fds[1]
        self.keep = (region, images, identity, listener)

    def start(self):
        if self.running:
            return
        if self.keep is None:
            raise RuntimeError("a stopped server does not start again")
        if pthread_create(&self.s.thread, NULL, sr_loop, self.s) != 0:
            raise OSError("could not start the Modbus server thread")
        self.running = True

    def stop(self):
        """Stop the thread, close every connection; safe to call twice."""
        cdef char one = 1
        if self.running:
            pthread_mutex_lock(&self.s.lock)
            self.s.stop = 1
            pthread_cond_broadcast(&self.s.has_write)
            pthread_mutex_unlock(&self.s.lock)
            write(self.s.wake[1], &one, 1)
            with nogil:
                pthread_join(self.s.thread, NULL)
            self.running = False
            for k in range(SR_MAX_CONN):
                sr_close(self.s, k)
        if self.keep is not None:
            self.keep[3].close()
            self.keep = None  # releases the snapshot's buffer: its owner may now unmap it
            self.s.region = NULL

    def __dealloc__(self):
        if self.s != NULL:
            if self.running:
                self.s.stop = 1
                pthread_join(self.s.thread, NULL)
                for k in range(SR_MAX_CONN):
                    sr_close(self.s, k)
            for fd in (self.s.wake[0], self.s.wake[1]):
                if fd >= 0:
                    close(fd)
            pthread_mutex_destroy(&self.s.lock)
            pthread_cond_destroy(&self.s.has_write)
            free(self.s)
            self.s = NULL

    def next_write(self, double timeout=0.5):
        """The next write request: (slot, generation, MBAP frame, peer) or None after
        ``timeout`` s (or when stopping). Waits without the GIL. (slot, generation) names the
        connection the write came from, unique per accepted connection for this server's
        life; ``peer`` is its "a.b.c.d:port"."""
        cdef int slot = -1, n
        cdef uint64_t generation = 0
        cdef uint32_t peer = 0
        cdef uint16_t peer_port = 0
        cdef uint8_t frame[260]
        with nogil:
            n = sr_next_write(self.s, timeout, &slot, &generation, &peer, &peer_port, frame)
        if n < 0:
            return None
        address = f"{peer >> 24}.{(peer >> 16) & 255}.{(peer >> 8) & 255}.{peer & 255}"
        return slot, generation, bytes(frame[:n]), f"{address}:{peer_port}"

    def is_open(self, int slot, uint64_t generation):
        """Whether the connection (slot, generation) is still open (a closed one's slot may
        hold a newer connection: its generation differs)."""
        return bool(sr_is_open(self.s, slot, generation))

    def complete(self, int slot, uint64_t generation, bytes mbap, bytes pdu):
        """Send ``pdu`` as the answer to the write from (slot, generation)."""
        if len(mbap) < 7 or not 1 <= len(pdu) <= SR_FRAME - 7:
            raise ValueError("a response needs the request's MBAP header and 1..253 bytes")
        sr_complete(self.s, slot, generation, mbap, pdu, len(pdu))

    def read_pdu(self, bytes pdu, int unit=1):
        """The answer the network thread gives to a read PDU for ``unit`` (tests hold it to
        the reference)."""
        cdef uint8_t out[300]
        cdef int n
        if not 1 <= len(pdu) <= 253:
            raise ValueError("a PDU has 1..253 bytes")
        if self.s.region == NULL:
            raise RuntimeError("the server is stopped")
        if not 0 <= unit <= 255 or not self.s.has_map[unit]:
            raise ValueError(f"unit {unit} reads no map")
        n = sr_read_pdu(self.s, unit, pdu, len(pdu), out)
        return bytes(out[:n])

    @property
    def counters(self):
        return {"requests": self.s.requests, "exceptions": self.s.exceptions,
                "accepted": self.s.accepted, "refused": self.s.refused,
                "dropped": self.s.dropped}

    @property
    def connections(self):
        return self.s.n_open  # kept by the network thread on accept and close
