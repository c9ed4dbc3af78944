/* The Modbus/TCP slave's network thread: the implementation of mbserver.h (read it first). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* accept4, pipe2, CPU_SET, pthread_setaffinity_np */
#endif

#include "mbserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "seqlock.h"

#define SR_OUT 4096              /* a connection's answers not yet sent */
#define SR_IN (2 * SR_MAX_ADU)   /* a connection's received bytes not yet parsed */
#define SR_ACCEPT_BURST 64       /* connections accepted per wake-up */
#define SR_ACCEPT_PAUSE 0.1      /* s without accepting after accept() failed */
#define SR_NOT_PUBLISHED (-2)    /* sr_copy: no scan has published the snapshot yet */

enum { SR_COIL = 0, SR_DI = 1, SR_IR = 2, SR_HR = 3 };

typedef struct {
    int fd;  /* -1: a free slot */
    uint64_t generation;
    uint32_t peer;
    uint16_t peer_port;
    uint8_t in[SR_IN];
    int in_len;
    uint8_t out[SR_OUT];
    int out_len;
    double last_activity;  /* last complete request (or the accept) */
    double frame_started;  /* first byte of an incomplete frame; 0: none */
    double stalled_since;  /* answers waiting, none sent since; 0: none */
    int waiting;           /* its write is with Python */
    char label[SR_MAX_LABEL];  /* adopted: what its writes name as their peer; "" accepted */
} sr_conn;

typedef struct {  /* a connection handed over by sr_adopt, not yet placed */
    int fd;
    uint32_t peer;
    uint16_t peer_port;
    uint64_t generation;
    char label[SR_MAX_LABEL];
} sr_adoptee;

struct sr_server {
    sr_config cfg;
    /* the snapshot and, per unit id, the image it reads */
    uint8_t *region;
    size_t region_size;
    size_t off[SR_MAX_UNITS][4];
    uint32_t size[SR_MAX_UNITS][4];
    const uint8_t *mapped[SR_MAX_UNITS][4];
    uint8_t has_map[SR_MAX_UNITS];
    const uint8_t *identity;
    int identity_len;
    /* the network thread's own */
    int listen_fd;
    int reserve_fd;  /* /dev/null, closed to refuse a newcomer when no descriptor is left */
    double accept_paused_until;
    sr_conn conn[SR_MAX_CONN];
    int open_slots[SR_MAX_CONN];
    int n_open;
    sr_counters net;  /* its counters (those under lock excepted), published under lock */
    int net_dirty;
    int wake[2];
    atomic_int stop;
    int running;
    pthread_t thread;
    /* shared with Python's threads, under lock */
    pthread_mutex_t lock;
    pthread_cond_t has_write;
    sr_write pending[SR_MAX_PENDING];  /* oldest first */
    int n_pending;
    sr_write done[SR_MAX_CONN];  /* Python's answers: frame = MBAP header + response PDU */
    int n_done;
    uint64_t open_generation[SR_MAX_CONN];  /* per slot: its connection's; 0 closed */
    uint64_t handed[SR_MAX_CONN];           /* per slot: the generation whose write Python has */
    sr_adoptee adopting[SR_MAX_ADOPT];      /* handed over, waiting for the network thread */
    int n_adopting;
    uint64_t adopt_refused;  /* sr_adopt's refusals (EAGAIN), under lock: survives sr_publish */
    uint64_t next_generation;  /* the last generation given (accepted or adopted) */
    sr_counters published;
};

static double sr_now(void) { return sr_seqlock_seconds(); }

/* The one way an exception is answered: the function with its high bit, then the code. */
static int sr_exception(uint8_t *out, uint8_t function, uint8_t code) {
    out[0] = (uint8_t)(function | SR_EXCEPTION_BIT);
    out[1] = code;
    return 2;
}

/* ---------------------------------------------------------------- counters */

static void sr_publish(sr_server *s) {  /* network thread: its counters, one copy */
    if (!s->net_dirty) return;
    s->net.open = (uint32_t)s->n_open;
    pthread_mutex_lock(&s->lock);
    sr_counters *p = &s->published;
    p->requests = s->net.requests;
    p->exceptions = s->net.exceptions;
    p->accepted = s->net.accepted;
    p->refused = s->net.refused + s->adopt_refused;  /* both threads' refusals */
    p->dropped = s->net.dropped;
    p->evicted = s->net.evicted;
    p->stalled = s->net.stalled;
    p->closed = s->net.closed;
    p->accept_errors = s->net.accept_errors;
    p->adopted = s->net.adopted;
    p->open = s->net.open;
    p->faults |= s->net.faults;
    pthread_mutex_unlock(&s->lock);
    s->net_dirty = 0;
}

void sr_counters_get(sr_server *s, sr_counters *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->published;
    pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- connections */

static void sr_close(sr_server *s, int k) {
    sr_conn *c = &s->conn[k];
    if (c->fd < 0) return;
    if (close(c->fd) != 0 && errno != EINTR) s->net.faults |= SR_FAULT_SOCKET;
    c->fd = -1;
    for (int i = 0; i < s->n_open; i++)
        if (s->open_slots[i] == k) {
            s->open_slots[i] = s->open_slots[--s->n_open];
            break;
        }
    pthread_mutex_lock(&s->lock);
    s->open_generation[k] = 0;
    s->handed[k] = 0;  /* Python's answer to its write, if any, is discarded */
    int kept = 0;
    for (int i = 0; i < s->n_pending; i++) {
        if (s->pending[i].slot == k && s->pending[i].generation == c->generation) {
            s->published.writes_dropped++;
        } else {
            if (kept != i) s->pending[kept] = s->pending[i];
            kept++;
        }
    }
    s->n_pending = kept;
    pthread_mutex_unlock(&s->lock);
    c->waiting = 0;
    c->in_len = 0;
    c->out_len = 0;
    s->net.closed++;
    s->net_dirty = 1;
}

static void sr_drop(sr_server *s, int k) {  /* closed for a fault of the peer's */
    s->net.dropped++;
    sr_close(s, k);
}

/* ---------------------------------------------------------------- reads */

/* Copy `count` entries of `table` from `start` out of one consistent version of the snapshot.
 * Words come out big-endian; bits one byte each. 0; SR_NOT_PUBLISHED before the first scan's
 * snapshot (sequence 0); or -1 when no stable version was seen. */
static int sr_copy(sr_server *s, int unit, int table, uint32_t start, uint32_t count,
                   uint8_t *out) {
    int words = (table == SR_IR || table == SR_HR);
    const uint8_t *data = s->region + SR_SEQLOCK_HEADER + s->off[unit][table] +
                          (words ? 2u * start : start);
    unsigned long long sequence;
    if (sr_seqlock_read((unsigned long long *)s->region, data, words ? 2u * count : count, out,
                        SR_SEQLOCK_GIVE_UP_MS, &sequence))
        return -1;
    if (sequence == 0) return SR_NOT_PUBLISHED;
    if (words)
        for (uint32_t i = 0; i < count; i++) {  /* native little-endian -> big-endian */
            uint8_t low = out[2 * i];
            out[2 * i] = out[2 * i + 1];
            out[2 * i + 1] = low;
        }
    return 0;
}

static int sr_is_mapped(sr_server *s, int unit, int table, uint32_t start, uint32_t count) {
    if (start + count > 65536u || start + count > s->size[unit][table]) return 0;
    const uint8_t *m = s->mapped[unit][table];
    for (uint32_t i = start; i < start + count; i++)
        if (!m[i]) return 0;
    return 1;
}

static int sr_read_bits_or_words(sr_server *s, int unit, const uint8_t *pdu, int len,
                                 uint8_t *out) {
    static const int table_of[5] = {0, SR_COIL, SR_DI, SR_HR, SR_IR};
    uint8_t f = pdu[0];
    if (len != 5) return sr_exception(out, f, SR_EX_ILLEGAL_VALUE);
    uint32_t start = (uint32_t)pdu[1] << 8 | pdu[2];
    uint32_t count = (uint32_t)pdu[3] << 8 | pdu[4];
    int bits = f <= SR_FC_READ_DISCRETE_INPUTS;
    uint32_t limit = bits ? SR_LIMIT_READ_BITS : SR_LIMIT_READ_WORDS;
    int table = table_of[f];
    if (count < 1 || count > limit) return sr_exception(out, f, SR_EX_ILLEGAL_VALUE);
    if (!sr_is_mapped(s, unit, table, start, count))
        return sr_exception(out, f, SR_EX_ILLEGAL_ADDRESS);
    uint8_t copy[SR_LIMIT_READ_BITS];
    int copied = sr_copy(s, unit, table, start, count, bits ? copy : out + 2);
    if (copied)
        return sr_exception(out, f, copied == SR_NOT_PUBLISHED ? SR_EX_SERVER_BUSY
                                                              : SR_EX_DEVICE_FAILURE);
    out[0] = f;
    if (!bits) {
        out[1] = (uint8_t)(2 * count);
        return 2 + 2 * (int)count;
    }
    int nbytes = (int)((count + 7) / 8);
    out[1] = (uint8_t)nbytes;
    memset(out + 2, 0, (size_t)nbytes);
    for (uint32_t i = 0; i < count; i++)
        if (copy[i]) out[2 + i / 8] |= (uint8_t)(1u << (i % 8));
    return 2 + nbytes;
}

static int sr_device_identification(sr_server *s, const uint8_t *pdu, int len, uint8_t *out) {
    uint8_t f = pdu[0];
    if (len != 4) return sr_exception(out, f, SR_EX_ILLEGAL_VALUE);
    if (pdu[1] != SR_LIMIT_MEI_READ_DEVICE_ID) return sr_exception(out, f, SR_EX_ILLEGAL_FUNCTION);
    if (pdu[2] < 1 || pdu[2] > 4) return sr_exception(out, f, SR_EX_ILLEGAL_VALUE);
    int read_code = pdu[2], first = pdu[3];
    int last = read_code == 1 ? SR_LIMIT_DEVICE_ID_BASIC_LAST : SR_LIMIT_DEVICE_ID_REGULAR_LAST;
    int present[256] = {0}, at[256];
    for (int p = 0; p + 1 < s->identity_len;) {
        present[s->identity[p]] = 1;
        at[s->identity[p]] = p;
        p += 2 + s->identity[p + 1];
    }
    if (read_code == 4 && !present[first]) return sr_exception(out, f, SR_EX_ILLEGAL_ADDRESS);
    int n = 7, count = 0;
    out[0] = f; out[1] = SR_LIMIT_MEI_READ_DEVICE_ID; out[2] = (uint8_t)read_code;
    out[3] = SR_LIMIT_DEVICE_ID_CONFORMITY; out[4] = 0; out[5] = 0;
    int lo = first, hi = first;
    if (read_code != 4) {  /* an id outside the category restarts the stream at 0 */
        if (!(present[first] && first <= last)) lo = 0;
        hi = last;
    }
    for (int id = lo; id <= hi; id++) {
        if (!present[id]) continue;
        int p = at[id], size = 2 + s->identity[p + 1];
        if (n + size > SR_MAX_PDU) break;
        memcpy(out + n, s->identity + p, (size_t)size);
        n += size;
        count++;
    }
    out[6] = (uint8_t)count;
    return n;
}

int sr_read_pdu(sr_server *s, int unit, const uint8_t *pdu, int len, uint8_t *out) {
    if (unit < 0 || unit >= SR_MAX_UNITS || !s->has_map[unit] || len < 1) return -1;
    uint8_t f = pdu[0];
    if (f >= SR_FC_READ_COILS && f <= SR_FC_READ_INPUT_REGISTERS)
        return sr_read_bits_or_words(s, unit, pdu, len, out);
    if (f == SR_FC_ENCAPSULATED_INTERFACE) return sr_device_identification(s, pdu, len, out);
    return sr_exception(out, f, SR_EX_ILLEGAL_FUNCTION);
}

static int sr_is_write(uint8_t f) {
    return f == SR_FC_WRITE_SINGLE_COIL || f == SR_FC_WRITE_SINGLE_REGISTER ||
           f == SR_FC_WRITE_MULTIPLE_COILS || f == SR_FC_WRITE_MULTIPLE_REGISTERS ||
           f == SR_FC_READ_WRITE_REGISTERS;
}

/* ---------------------------------------------------------------- frames */

/* Queue one answer (its request's MBAP header, the response PDU); the caller made room. */
static int sr_queue_out(sr_conn *c, const uint8_t *mbap, const uint8_t *pdu, int len) {
    if (len < 1 || c->out_len + SR_MBAP_HEADER + len > SR_OUT) return -1;
    uint8_t *o = c->out + c->out_len;
    memcpy(o, mbap, 4);  /* transaction and protocol identifiers */
    o[4] = (uint8_t)((len + 1) >> 8);
    o[5] = (uint8_t)((len + 1) & 0xFF);
    o[6] = mbap[6];
    memcpy(o + SR_MBAP_HEADER, pdu, (size_t)len);
    c->out_len += SR_MBAP_HEADER + len;
    return 0;
}

static int sr_has_room(const sr_conn *c) { return c->out_len + SR_MAX_ADU <= SR_OUT; }

static int sr_allowed(sr_server *s, uint32_t peer) {
    if (s->cfg.n_allow == 0) return 1;
    for (int i = 0; i < s->cfg.n_allow; i++)
        if ((peer & s->cfg.allow_mask[i]) == s->cfg.allow_net[i]) return 1;
    return 0;
}

/* Parse the complete frames of connection k while its answers have room: answer reads, hand
 * writes to Python (or answer 06 when SR_MAX_PENDING wait). */
static void sr_frames(sr_server *s, int k, double now) {
    sr_conn *c = &s->conn[k];
    while (!c->waiting && c->in_len >= SR_MBAP_HEADER && sr_has_room(c)) {
        uint8_t *h = c->in;
        int protocol = h[2] << 8 | h[3];
        int length = h[4] << 8 | h[5];
        if (protocol != SR_MBAP_PROTOCOL || length < SR_MBAP_MIN_LENGTH ||
            length > SR_MBAP_MAX_LENGTH) {
            sr_drop(s, k);
            return;
        }
        int frame = 6 + length;
        if (c->in_len < frame) break;
        const uint8_t *pdu = h + SR_MBAP_HEADER;
        int pdu_len = length - 1;
        uint8_t f = pdu[0], unit = h[6];
        uint8_t answer[SR_MAX_ADU];
        int n = 0;
        s->net.requests++;
        s->net_dirty = 1;
        c->last_activity = now;
        if (!s->has_map[unit]) {
            n = sr_exception(answer, f, SR_EX_GATEWAY_TARGET_FAILED);
        } else if (sr_is_write(f)) {
            pthread_mutex_lock(&s->lock);
            if (s->n_pending >= SR_MAX_PENDING) {
                s->published.busy++;
                n = sr_exception(answer, f, SR_EX_SERVER_BUSY);
            } else {
                sr_write *p = &s->pending[s->n_pending++];
                p->slot = k;
                p->generation = c->generation;
                p->peer = c->peer;
                p->peer_port = c->peer_port;
                memcpy(p->label, c->label, sizeof p->label);
                memcpy(p->frame, h, (size_t)frame);
                p->len = frame;
                pthread_cond_signal(&s->has_write);
                c->waiting = 1;
            }
            pthread_mutex_unlock(&s->lock);
        } else {
            n = sr_read_pdu(s, unit, pdu, pdu_len, answer);
        }
        if (n > 0) {
            if (answer[0] & SR_EXCEPTION_BIT) s->net.exceptions++;
            if (sr_queue_out(c, h, answer, n)) {  /* cannot happen: room was made */
                sr_drop(s, k);
                return;
            }
        }
        memmove(c->in, c->in + frame, (size_t)(c->in_len - frame));
        c->in_len -= frame;
    }
    /* the frame timeout runs while a frame is incomplete, not while a whole one waits */
    int incomplete = c->in_len > 0 &&
                     (c->in_len < SR_MBAP_HEADER || c->in_len < 6 + (c->in[4] << 8 | c->in[5]));
    if (!incomplete) c->frame_started = 0;
    else if (c->frame_started == 0) c->frame_started = now;
}

/* Send what connection k's answers it can; 0, or -1 if it was closed. */
static int sr_flush(sr_server *s, int k, double now) {
    sr_conn *c = &s->conn[k];
    while (c->out_len > 0) {
        ssize_t sent = send(c->fd, c->out, (size_t)c->out_len, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->stalled_since == 0) c->stalled_since = now;
                return 0;
            }
            sr_close(s, k);
            return -1;
        }
        memmove(c->out, c->out + sent, (size_t)(c->out_len - sent));
        c->out_len -= (int)sent;
        c->stalled_since = 0;
    }
    return 0;
}

/* Parse and send until neither makes progress (answers sent make room for more frames). */
static void sr_service(sr_server *s, int k, double now) {
    sr_conn *c = &s->conn[k];
    for (int round = 0; round < 64 && c->fd >= 0; round++) {
        int before = c->in_len;
        sr_frames(s, k, now);
        if (c->fd < 0 || (c->out_len && sr_flush(s, k, now))) return;
        if (c->in_len == before) return;
    }
}

/* ---------------------------------------------------------------- accepting */

/* The connection a newcomer from `peer` takes the place of: the longest idle of that peer's if
 * it has max_per_peer, else the longest idle of all if the server is full (never one whose
 * write is with Python); -1: none needed; -2: none can be evicted. */
static int sr_victim(sr_server *s, uint32_t peer, double now) {
    int same = 0;
    for (int i = 0; i < s->n_open; i++)
        if (s->conn[s->open_slots[i]].peer == peer) same++;
    int own = same >= s->cfg.max_per_peer;
    if (!own && s->n_open < s->cfg.max_conn) return -1;
    int victim = -2;
    double idlest = -1.0;
    for (int i = 0; i < s->n_open; i++) {
        int k = s->open_slots[i];
        sr_conn *c = &s->conn[k];
        if (c->waiting || (own && c->peer != peer)) continue;
        if (now - c->last_activity > idlest) {
            idlest = now - c->last_activity;
            victim = k;
        }
    }
    return victim;
}

static void sr_refuse_one(sr_server *s, double now) {  /* no descriptor left */
    s->net.accept_errors++;
    s->net_dirty = 1;
    s->accept_paused_until = now + SR_ACCEPT_PAUSE;
    if (s->reserve_fd < 0) return;
    close(s->reserve_fd);
    s->reserve_fd = -1;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        s->net.refused++;
        close(fd);
    }
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);  /* -1: retried next time */
}

/* Give connection fd from peer (host order) a slot, closing the connection sr_victim names
 * (counted evicted); label NULL: an accepted TCP connection, else an adopted one with its
 * generation. 0 placed; -1 refused (fd closed, counted). */
static int sr_place(sr_server *s, int fd, uint32_t peer, uint16_t peer_port, const char *label,
                    uint64_t generation, double now) {
    int victim = sr_allowed(s, peer) ? sr_victim(s, peer, now) : -2;
    if (victim == -2) {
        s->net.refused++;
        close(fd);
        return -1;
    }
    if (victim >= 0) {
        s->net.evicted++;
        sr_close(s, victim);
    }
    int one = 1;
    if (label == NULL && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        s->net.faults |= SR_FAULT_SOCKET;  /* slower answers, still correct ones */
    int slot = -1;
    for (int k = 0; k < SR_MAX_CONN && slot < 0; k++)
        if (s->conn[k].fd < 0) slot = k;
    if (slot < 0) {  /* cannot happen: max_conn <= SR_MAX_CONN */
        s->net.refused++;
        close(fd);
        return -1;
    }
    sr_conn *c = &s->conn[slot];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->peer = peer;
    c->peer_port = peer_port;
    c->last_activity = now;
    if (label != NULL) {
        strncpy(c->label, label, sizeof c->label - 1);
        c->label[sizeof c->label - 1] = 0;
    }
    pthread_mutex_lock(&s->lock);
    c->generation = generation ? generation : ++s->next_generation;
    s->open_generation[slot] = c->generation;
    pthread_mutex_unlock(&s->lock);
    s->open_slots[s->n_open++] = slot;
    return 0;
}

static void sr_accept(sr_server *s, double now) {
    if (s->reserve_fd < 0) s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int burst = 0; burst < SR_ACCEPT_BURST; burst++) {
        struct sockaddr_in peer;
        socklen_t size = sizeof peer;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &size,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sr_refuse_one(s, now);
                return;
            }
            s->net.accept_errors++;  /* anything else: pause, never spin */
            s->net_dirty = 1;
            s->accept_paused_until = now + SR_ACCEPT_PAUSE;
            return;
        }
        s->net_dirty = 1;
        if (size < sizeof peer || peer.sin_family != AF_INET) {
            s->net.refused++;
            close(fd);
            continue;
        }
        if (sr_place(s, fd, ntohl(peer.sin_addr.s_addr), ntohs(peer.sin_port), NULL, 0, now) == 0)
            s->net.accepted++;
    }
}

/* Adopted connections waiting: placed as accepted ones are (network thread). Each stays in
 * the list until placed or refused, so sr_adopted_slot never finds it nowhere meanwhile. */
static void sr_place_adopted(sr_server *s, double now) {
    if (__atomic_load_n(&s->n_adopting, __ATOMIC_ACQUIRE) == 0) return;
    sr_adoptee waiting[SR_MAX_ADOPT];
    pthread_mutex_lock(&s->lock);
    int n = s->n_adopting;
    memcpy(waiting, s->adopting, (size_t)n * sizeof waiting[0]);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) {
        sr_adoptee *a = &waiting[i];
        s->net_dirty = 1;
        if (sr_place(s, a->fd, a->peer, a->peer_port, a->label, a->generation, now) == 0)
            s->net.adopted++;
    }
    pthread_mutex_lock(&s->lock);  /* those handed over meanwhile move up */
    memmove(s->adopting, s->adopting + n, (size_t)(s->n_adopting - n) * sizeof waiting[0]);
    __atomic_store_n(&s->n_adopting, s->n_adopting - n, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- the loop */

static void sr_leave_the_scan(sr_server *s) {
    /* Never at the scan's real-time priority, never on its CPU: a flood of requests must not
     * delay a scan (threads inherit both from the thread that starts them). */
    struct sched_param normal = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal) != 0)
        s->net.faults |= SR_FAULT_PRIORITY;
    if (s->cfg.avoid_cpu < 0) return;
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) {
        s->net.faults |= SR_FAULT_AFFINITY;
        return;
    }
    int others = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (c != s->cfg.avoid_cpu && CPU_ISSET(c, &cpus)) others++;
    if (!others) return;
    if (s->cfg.avoid_cpu < CPU_SETSIZE) CPU_CLR(s->cfg.avoid_cpu, &cpus);
    if (pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus) != 0)
        s->net.faults |= SR_FAULT_AFFINITY;
}

static void sr_answers_from_python(sr_server *s, double now) {
    if (__atomic_load_n(&s->n_done, __ATOMIC_ACQUIRE) == 0) return;
    pthread_mutex_lock(&s->lock);
    for (int d = 0; d < s->n_done; d++) {
        sr_write *p = &s->done[d];
        sr_conn *c = &s->conn[p->slot];
        if (c->fd < 0 || c->generation != p->generation || !c->waiting) {
            s->published.answers_discarded++;
            continue;
        }
        if (p->frame[SR_MBAP_HEADER] & SR_EXCEPTION_BIT) s->net.exceptions++;
        /* room was made before the write was parsed, and nothing was queued since */
        if (sr_queue_out(c, p->frame, p->frame + SR_MBAP_HEADER, p->len - SR_MBAP_HEADER))
            c->stalled_since = -1;  /* dropped below, never silently */
        c->waiting = 0;
        c->last_activity = now;
        s->net_dirty = 1;
    }
    __atomic_store_n(&s->n_done, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->lock);
}

/* One turn of the loop: wait up to timeout_ms for the sockets, then serve what is ready
 * (tests/fuzz/fuzz_mbserver.c turns it by hand). */
static void sr_serve_once(sr_server *s, int timeout_ms) {
    struct pollfd fds[SR_MAX_CONN + 2];
    int slot_of[SR_MAX_CONN + 2];
    double now = sr_now();
    int n = 0;
    fds[n].fd = s->wake[0]; fds[n].events = POLLIN; slot_of[n++] = -2;
    if (s->listen_fd >= 0 && now >= s->accept_paused_until) {
        fds[n].fd = s->listen_fd; fds[n].events = POLLIN; slot_of[n++] = -1;
    }
    for (int i = 0; i < s->n_open; i++) {
        int k = s->open_slots[i];
        sr_conn *c = &s->conn[k];
        fds[n].fd = c->fd;  /* not read while waiting for Python or for room */
        fds[n].events = (short)((!c->waiting && sr_has_room(c) ? POLLIN : 0) |
                                (c->out_len ? POLLOUT : 0));
        slot_of[n++] = k;
    }
    int ready = poll(fds, (nfds_t)n, timeout_ms);
    now = sr_now();
    if (ready < 0) {
        if (errno != EINTR) {
            s->net.faults |= SR_FAULT_POLL;
            s->net_dirty = 1;
            struct timespec pause = {0, 10000000};  /* never spin */
            nanosleep(&pause, NULL);
        }
        return;
    }
    for (int i = 0; i < n && ready > 0; i++) {
        short ev = fds[i].revents;
        if (!ev) continue;
        ready--;
        if (slot_of[i] == -1) {
            sr_accept(s, now);
            continue;
        }
        if (slot_of[i] == -2) {
            uint8_t drain[64];
            while (read(s->wake[0], drain, sizeof drain) > 0) {}
            continue;
        }
        int k = slot_of[i];
        sr_conn *c = &s->conn[k];
        if (c->fd < 0 || c->fd != fds[i].fd) continue;  /* closed (or evicted) meanwhile */
        if (ev & (POLLERR | POLLNVAL)) { sr_close(s, k); continue; }
        if (ev & POLLIN) {
            ssize_t got = recv(c->fd, c->in + c->in_len, sizeof c->in - (size_t)c->in_len, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                             errno != EINTR)) {
                sr_close(s, k);
                continue;
            }
            if (got > 0) c->in_len += (int)got;
        } else if (ev & POLLHUP) {
            sr_close(s, k);
            continue;
        }
        sr_service(s, k, now);
    }
    /* connections handed over are placed; writes Python has answered go out (frames that
     * waited behind them are parsed below) */
    sr_place_adopted(s, now);
    sr_answers_from_python(s, now);
    /* backwards: closing a connection moves the last open slot into its place */
    for (int i = s->n_open - 1; i >= 0; i--) {
        int k = s->open_slots[i];
        sr_conn *c = &s->conn[k];
        if (c->stalled_since >= 0) sr_service(s, k, now);
        if (c->fd < 0) continue;
        if (c->stalled_since < 0 || (c->out_len && c->stalled_since > 0 &&
                                     now - c->stalled_since > s->cfg.frame_timeout)) {
            s->net.stalled++;  /* it does not take its answers */
            sr_drop(s, k);
        } else if (c->waiting) {
            continue;
        } else if (c->frame_started > 0 && now - c->frame_started > s->cfg.frame_timeout) {
            sr_drop(s, k);
        } else if (now - c->last_activity > s->cfg.idle_timeout && !c->out_len) {
            sr_close(s, k);
        }
    }
    sr_publish(s);
}

static void *sr_loop(void *arg) {
    sr_server *s = (sr_server *)arg;
    sr_leave_the_scan(s);
    s->net_dirty = 1;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) sr_serve_once(s, 50);
    return NULL;
}

/* ---------------------------------------------------------------- the API */

sr_server *sr_new(const sr_config *config, int listen_fd, uint8_t *region, size_t region_size,
                  const uint8_t *identity, int identity_len) {
    if (config == NULL || config->max_conn < 1 || config->max_conn > SR_MAX_CONN ||
        config->max_per_peer < 1 || config->max_per_peer > config->max_conn ||
        config->n_allow < 0 || config->n_allow > SR_MAX_ALLOW || !(config->idle_timeout > 0) ||
        !(config->frame_timeout > 0) || region == NULL || region_size < SR_SEQLOCK_HEADER ||
        ((uintptr_t)region % 8) || identity_len < 0 || listen_fd < -1) {
        errno = EINVAL;
        return NULL;
    }
    sr_server *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->cfg = *config;
    for (int i = 0; i < s->cfg.n_allow; i++) s->cfg.allow_net[i] &= s->cfg.allow_mask[i];
    s->region = region;
    s->region_size = region_size;
    s->identity = identity;
    s->identity_len = identity_len;
    s->listen_fd = listen_fd;
    s->wake[0] = s->wake[1] = -1;
    for (int k = 0; k < SR_MAX_CONN; k++) s->conn[k].fd = -1;
    atomic_init(&s->stop, 0);
    int flags = listen_fd >= 0 ? fcntl(listen_fd, F_GETFL) : 0;
    pthread_condattr_t attr;
    int failed = flags < 0 ||
                 (listen_fd >= 0 && fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) ||
                 pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) != 0;
    int saved = errno;
    if (!failed) {
        if ((saved = pthread_mutex_init(&s->lock, NULL)) != 0) {
            failed = 1;
        } else if ((saved = pthread_condattr_init(&attr)) != 0 ||
                   (saved = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) != 0 ||
                   (saved = pthread_cond_init(&s->has_write, &attr)) != 0) {
            pthread_mutex_destroy(&s->lock);
            failed = 1;
        }
    }
    if (failed) {
        for (int i = 0; i < 2; i++)
            if (s->wake[i] >= 0) close(s->wake[i]);
        free(s);
        errno = saved;
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return s;
}

int sr_set_unit(sr_server *s, int unit, const size_t offsets[4], const uint32_t sizes[4],
                const uint8_t *const mapped[4]) {
    if (unit < 0 || unit >= SR_MAX_UNITS || s->running) return -1;
    for (int t = 0; t < 4; t++) {
        size_t width = t >= SR_IR ? 2 : 1;
        if (sizes[t] > 65536u || (sizes[t] && mapped[t] == NULL) ||
            offsets[t] + width * sizes[t] + SR_SEQLOCK_HEADER > s->region_size)
            return -1;
    }
    for (int t = 0; t < 4; t++) {
        s->off[unit][t] = offsets[t];
        s->size[unit][t] = sizes[t];
        s->mapped[unit][t] = mapped[t];
    }
    s->has_map[unit] = 1;
    return 0;
}

int sr_start(sr_server *s) {
    if (s->running) return 0;
    if (atomic_load(&s->stop)) return EINVAL;  /* a stopped server does not start again */
    int failed = pthread_create(&s->thread, NULL, sr_loop, s);
    if (failed) return failed;
    s->running = 1;
    return 0;
}

void sr_stop(sr_server *s) {
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->has_write);
    pthread_mutex_unlock(&s->lock);
    if (s->running) {
        uint8_t one = 1;
        if (write(s->wake[1], &one, 1) < 0) {
            /* full (a wake is pending) or broken: it sees stop within its 50 ms poll anyway */
        }
        pthread_join(s->thread, NULL);
        s->running = 0;
    }
    for (int k = 0; k < SR_MAX_CONN; k++) sr_close(s, k);
    pthread_mutex_lock(&s->lock);  /* handed over, never placed: closed too */
    for (int i = 0; i < s->n_adopting; i++) close(s->adopting[i].fd);
    s->n_adopting = 0;
    pthread_mutex_unlock(&s->lock);
    s->net_dirty = 1;
    sr_publish(s);
}

void sr_free(sr_server *s) {
    if (s == NULL) return;
    sr_stop(s);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0) close(s->wake[i]);
    if (s->reserve_fd >= 0) close(s->reserve_fd);
    pthread_cond_destroy(&s->has_write);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int sr_next_write(sr_server *s, double timeout, sr_write *w) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (!(timeout > 0)) timeout = 0;
    if (timeout > 86400) timeout = 86400;
    long ns = until.tv_nsec + (long)((timeout - (double)(long)timeout) * 1e9);
    until.tv_sec += (time_t)timeout + ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&s->lock);
    while (s->n_pending == 0 && !atomic_load(&s->stop))
        if (pthread_cond_timedwait(&s->has_write, &s->lock, &until) == ETIMEDOUT) break;
    int got = 0;
    if (s->n_pending > 0 && !atomic_load(&s->stop)) {
        *w = s->pending[0];
        s->handed[w->slot] = w->generation;
        memmove(s->pending, s->pending + 1, (size_t)(s->n_pending - 1) * sizeof *w);
        s->n_pending--;
        got = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return got;
}

int sr_complete(sr_server *s, int slot, uint64_t generation, const uint8_t *mbap,
                const uint8_t *pdu, int len) {
    if (slot < 0 || slot >= SR_MAX_CONN || len < 1 || len > SR_MAX_PDU) return -1;
    pthread_mutex_lock(&s->lock);
    int queued = 0;
    if (generation == 0 || s->open_generation[slot] != generation ||
        s->handed[slot] != generation) {
        s->published.answers_discarded++;  /* closed meanwhile (or never handed out) */
    } else if (s->n_done < SR_MAX_CONN) {  /* at most one per slot: always */
        s->handed[slot] = 0;
        sr_write *p = &s->done[s->n_done];
        p->slot = slot;
        p->generation = generation;
        memcpy(p->frame, mbap, SR_MBAP_HEADER);
        memcpy(p->frame + SR_MBAP_HEADER, pdu, (size_t)len);
        p->len = SR_MBAP_HEADER + len;
        __atomic_store_n(&s->n_done, s->n_done + 1, __ATOMIC_RELEASE);
        queued = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (queued) {
        uint8_t one = 1;
        if (write(s->wake[1], &one, 1) < 0 && errno != EAGAIN) {  /* full: a wake is pending */
            pthread_mutex_lock(&s->lock);
            s->published.faults |= SR_FAULT_WAKE;  /* it still wakes within 50 ms */
            pthread_mutex_unlock(&s->lock);
        }
    }
    return queued;
}

int sr_is_open(sr_server *s, int slot, uint64_t generation) {
    if (slot < 0 || slot >= SR_MAX_CONN || generation == 0) return 0;
    pthread_mutex_lock(&s->lock);
    int open = s->open_generation[slot] == generation;
    pthread_mutex_unlock(&s->lock);
    return open;
}

uint64_t sr_adopt(sr_server *s, int fd, uint32_t peer, uint16_t peer_port, const char *label) {
    if (fd < 0 || label == NULL) {
        if (fd >= 0) close(fd);  /* the server owns fd whatever happens */
        errno = EINVAL;
        return 0;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return 0;
    }
    uint64_t generation = 0;
    int why = 0;
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->stop)) {
        why = ESHUTDOWN;
    } else if (s->n_adopting >= SR_MAX_ADOPT) {
        why = EAGAIN;
        s->adopt_refused++;  /* sr_publish adds it to the network thread's own */
        s->published.refused++;
    } else {
        sr_adoptee *a = &s->adopting[s->n_adopting];
        a->fd = fd;
        a->peer = peer;
        a->peer_port = peer_port;
        strncpy(a->label, label, sizeof a->label - 1);
        a->label[sizeof a->label - 1] = 0;
        a->generation = generation = ++s->next_generation;
        __atomic_store_n(&s->n_adopting, s->n_adopting + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->lock);
    if (generation == 0) {
        close(fd);
        errno = why;
        return 0;
    }
    uint8_t one = 1;
    if (write(s->wake[1], &one, 1) < 0 && errno != EAGAIN) {  /* full: a wake is pending */
        pthread_mutex_lock(&s->lock);
        s->published.faults |= SR_FAULT_WAKE;  /* it still places it within 50 ms */
        pthread_mutex_unlock(&s->lock);
    }
    return generation;
}

int sr_adopted_slot(sr_server *s, uint64_t generation) {
    if (generation == 0) return -2;
    int where = -2;
    pthread_mutex_lock(&s->lock);
    for (int k = 0; k < SR_MAX_CONN && where == -2; k++)  /* placed first: it stays listed */
        if (s->open_generation[k] == generation) where = k;    /* until the batch is done */
    for (int i = 0; i < s->n_adopting && where == -2; i++)
        if (s->adopting[i].generation == generation) where = -1;
    pthread_mutex_unlock(&s->lock);
    return where;
}
