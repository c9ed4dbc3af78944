# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The register image, compiled: one scan's values coded into Modbus words and bits.

The readable specification is ``softrelay.modbus.register_image.RegisterImage`` (NumPy);
``softrelay.modbus.register_image.plan`` turns a map into the rows this routine executes, and the
tests prove both images equal. A plan row is (target table, address, source, byte offset,
source type, target type, bit): read one value of ``source type`` at ``byte offset`` of
source buffer ``source``, code it as ``target type`` at ``address`` of the target table.
``fill`` runs without the GIL; the source buffers are bound once (the core's tables are
updated in place).
"""

from libc.math cimport NAN, fabs, isfinite, isnan
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

# source types
DEF S_F8 = 0
DEF S_U4 = 1
DEF S_I4 = 2
DEF S_U1 = 3
DEF S_NAN = 4
DEF S_ZERO = 5
# target types
DEF T_F32 = 0
DEF T_U32 = 1
DEF T_U16 = 2
DEF T_BIT = 3
DEF T_BOOL = 4
# target tables (index into the bound images)
DEF IR = 0
DEF HR = 1
DEF DI = 2
DEF CO = 3

CONSTANTS = {"S_F8": S_F8, "S_U4": S_U4, "S_I4": S_I4, "S_U1": S_U1, "S_NAN": S_NAN,
             "S_ZERO": S_ZERO, "T_F32": T_F32, "T_U32": T_U32, "T_U16": T_U16, "T_BIT": T_BIT,
             "T_BOOL": T_BOOL, "IR": IR, "HR": HR, "DI": DI, "CO": CO}


cdef inline double read_value(const uint8_t* p, int kind) noexcept nogil:
    cdef double d
    cdef uint32_t u
    cdef int32_t i
    if kind == S_F8:
        memcpy(&d, p, 8)
        return d
    if kind == S_U4:
        memcpy(&u, p, 4)
        return <double> u
    if kind == S_I4:
        memcpy(&i, p, 4)
        return <double> i
    if kind == S_U1:
        return <double> p[0]
    if kind == S_NAN:
        return NAN
    return 0.0


cdef class ImageEncoder:
    """Binds the source buffers, the plan and the four image tables once; ``fill`` codes."""

    cdef object keep  # references that keep the buffers alive
    cdef const int64_t[:, ::1] plan
    cdef const uint8_t** src
    cdef Py_ssize_t* src_len
    cdef Py_ssize_t n_src
    cdef uint16_t[::1] ir
    cdef uint16_t[::1] hr
    cdef uint8_t[::1] di
    cdef uint8_t[::1] co

    def __cinit__(self):
        self.src = NULL
        self.src_len = NULL

    def __init__(self, list sources, const int64_t[:, ::1] plan, uint16_t[::1] ir,
                 uint16_t[::1] hr, uint8_t[::1] di, uint8_t[::1] co):
        cdef Py_ssize_t k, r
        cdef const uint8_t[::1] view
        views = [memoryview(s).cast("B") for s in sources]
        self.keep = (sources, views)
        self.n_src = len(views)
        self.src = <const uint8_t**> malloc(max(1, self.n_src) * sizeof(uint8_t*))
        self.src_len = <Py_ssize_t*> malloc(max(1, self.n_src) * sizeof(Py_ssize_t))
        if self.src == NULL or self.src_len == NULL:
            raise MemoryError()
        for k in range(self.n_src):
            view = views[k]
            self.src[k] = &view[0] if view.shape[0] else NULL
            self.src_len[k] = view.shape[0]
        sizes = (ir.shape[0], hr.shape[0], di.shape[0], co.shape[0])
        widths = {T_F32: 2, T_U32: 2, T_U16: 1, T_BIT: 1, T_BOOL: 1}
        if plan.shape[0] and plan.shape[1] != 7:
            raise ValueError("a plan row has 7 columns")
        for r in range(plan.shape[0]):
            table, address, source, offset, skind, tkind = (plan[r, 0], plan[r, 1],
                                                            plan[r, 2], plan[r, 3],
                                                            plan[r, 4], plan[r, 5])
            if not 0 <= table < 4 or tkind not in widths:
                raise ValueError(f"plan row {r}: bad table or target type")
            if address < 0 or address + widths[tkind] > sizes[table]:
                raise ValueError(f"plan row {r}: address {address} outside its table")
            if skind < S_NAN:
                need = {S_F8: 8, S_U4: 4, S_I4: 4, S_U1: 1}[skind]
                if not 0 <= source < self.n_src or offset < 0 or (
                        offset + need > self.src_len[source]):
                    raise ValueError(f"plan row {r}: source outside its buffer")
        self.plan = plan
        self.ir = ir
        self.hr = hr
        self.di = di
        self.co = co

    def __dealloc__(self):
        free(self.src)
        free(self.src_len)

    def fill(self):
        with nogil:
            self.run()

    cdef void run(self) noexcept nogil:
        cdef Py_ssize_t r
        cdef int64_t table, address, skind, tkind, bit
        cdef double v
        cdef float f
        cdef uint32_t w
        cdef uint16_t* words
        cdef uint8_t* bits
        for r in range(self.plan.shape[0]):
            table = self.plan[r, 0]
            address = self.plan[r, 1]
            skind = self.plan[r, 4]
            tkind = self.plan[r, 5]
            bit = self.plan[r, 6]
            if skind < S_NAN:
                v = read_value(self.src[self.plan[r, 2]] + self.plan[r, 3], <int> skind)
            else:
                v = read_value(NULL, <int> skind)
            if table == IR or table == HR:
                words = &self.ir[0] if table == IR else &self.hr[0]
                if tkind == T_F32:
                    f = <float> v
                    memcpy(&w, &f, 4)
                    words[address] = <uint16_t> (w >> 16)
                    words[address + 1] = <uint16_t> (w & 0xFFFF)
                elif tkind == T_U32:
                    if isfinite(v) and fabs(v) < 9223372036854775808.0:  # 2^63
                        w = <uint32_t> (<int64_t> v)  # modulo 2^32 (unsigned conversion)
                    else:
                        w = 0
                    words[address] = <uint16_t> (w >> 16)
                    words[address + 1] = <uint16_t> (w & 0xFFFF)
                else:  # T_U16, clamped
                    if isnan(v) or v <= 0.0:
                        words[address] = 0
                    elif v >= 65535.0:
                        words[address] = 65535
                    else:
                        words[address] = <uint16_t> v
            else:
                bits = &self.di[0] if table == DI else &self.co[0]
                if tkind == T_BIT:
                    bits[address] = <uint8_t> ((<uint64_t> v >> bit) & 1)
                else:
                    bits[address] = 1 if (v != 0.0 and isfinite(v)) else 0
