/* The Modbus/TCP slave's network side, in C: one thread, poll(), no Python.
 *
 * It accepts connections (up to max_conn, from allowed IPv4 networks), reassembles MBAP frames,
 * drops a connection that sends a bad header, stays idle past idle_timeout or leaves a frame
 * half-sent past frame_timeout, and answers the read functions (01 02 03 04, 43/14) itself
 * from the register image in the shared snapshot, copied under the snapshot's seqlock so a
 * response is one scan's. Every other function is handed to Python (sr_next_write /
 * sr_complete): the connection waits, unread, until Python's answer is queued.
 *
 * The answers are those of softrelay.comms.modbus_pdu (the readable specification).
 *
 * Before the first scan's snapshot is published (the seqlock's sequence is still 0: only the
 * scan's publisher writes the snapshot, into a segment created zeroed) a read of a mapped range
 * answers exception 06, server device busy: the DCS never reads a value the relay did not
 * compute.
 */
#ifndef SR_MBSERVER_H
#define SR_MBSERVER_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* CPU_SET, pthread_setaffinity_np */
/* Whether the connection (slot, generation) is still open. */
static int sr_is_open(sr_server *s, int slot, uint64_t generation) {
    if (slot < 0 || slot >= SR_MAX_CONN || generation == 0) return 0;
    pthread_mutex_lock(&s->lock);
    int open = s->open_generation[slot] == generation;
    pthread_mutex_unlock(&s->lock);
    return open;
}

#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SR_MAX_CONN 256
#define SR_FRAME 260  /* MBAP 7 + PDU 253 */
#define SR_OUT 4096
#define SR_HEADER 64  /* the seqlock header before the snapshot's data */
#define SR_MAX_ALLOW 32
#define SR_NOT_PUBLISHED (-2)  /* sr_copy: no scan has published the snapshot yet */

enum { SR_ILLEGAL_FUNCTION = 1, SR_ILLEGAL_ADDRESS = 2, SR_ILLEGAL_VALUE = 3,
       SR_DEVICE_FAILURE = 4, SR_SERVER_BUSY = 6 };

enum { SR_COIL = 0, SR_DI = 1, SR_IR = 2, SR_HR = 3 };

typedef struct {
    int fd;
    uint64_t generation;  /* unique per accepted connection: never reused by this server */
    uint32_t peer;        /* IPv4 address, host order */
    uint16_t peer_port;
    uint8_t in[SR_FRAME * 2];
    int in_len;
    uint8_t out[SR_OUT];
    int out_len;
    double last_activity;  /* last complete request (or the connection) */
    double frame_started;  /* first byte of an incomplete frame; 0: none */
    int waiting;           /* a write is with Python */
} sr_conn;

typedef struct {
    int slot;
    uint64_t generation;
    uint32_t peer;  /* the connection's IPv4 address and port, host order */
    uint16_t peer_port;
    uint8_t frame[SR_FRAME];
    int len;
} sr_pending;

typedef struct {
    /* the snapshot: region (seqlock header then data); per unit id the image it reads (the
     * whole map's, or its group's): offsets of the four tables in the data, their sizes
     * (addresses), per address 1 if mapped; has_map[unit] 0: the unit gets exception 0x0B */
    uint8_t *region;
    size_t off[256][4];
    uint32_t size[256][4];
    const uint8_t *mapped[256][4];
    uint8_t has_map[256];
    const uint8_t *identity;  /* objects: id, length, bytes ... */
    int identity_len;
    /* configuration */
    int listen_fd;
    int max_conn;
    double idle_timeout, frame_timeout;
    uint32_t allow_net[SR_MAX_ALLOW], allow_mask[SR_MAX_ALLOW];
    int n_allow;
    /* connections */
    sr_conn conn[SR_MAX_CONN];
    int open_slots[SR_MAX_CONN];  /* the slots with a connection, in no order */
    int n_open;
    uint64_t next_generation;
    uint64_t open_generation[SR_MAX_CONN];  /* per slot, under lock: 0 while closed */
    /* writes handed to Python */
    pthread_mutex_t lock;
    pthread_cond_t has_write;
    sr_pending pending[SR_MAX_CONN];
    int n_pending;
    sr_pending done[SR_MAX_CONN];  /* Python's answers: frame = MBAP header + response PDU */
    int n_done;
    int wake[2];
    volatile int stop;
    int avoid_cpu;  /* the scan's CPU, or -1 */
    pthread_t thread;
    /* counters */
    uint64_t requests, exceptions, accepted, refused, dropped;
} sr_server;

static double sr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sr_close(sr_server *s, int k) {
    pthread_mutex_lock(&s->lock);
    s->open_generation[k] = 0;
    pthread_mutex_unlock(&s->lock);
    if (s->conn[k].fd >= 0) {
        close(s->conn[k].fd);
        for (int i = 0; i < s->n_open; i++)
            if (s->open_slots[i] == k) {
                s->open_slots[i] = s->open_slots[--s->n_open];
                break;
            }
    }
    s->conn[k].fd = -1;
    s->conn[k].waiting = 0;
    s->conn[k].in_len = 0;
    s->conn[k].out_len = 0;
}

/* Copy `count` entries of `table` from `start` out of one consistent version of the snapshot.
 * Words come out big-endian; bits one byte each. 0; SR_NOT_PUBLISHED before the first scan's
 * snapshot (sequence 0); or -1 when no stable version was seen. */
static int sr_copy(sr_server *s, int unit, int table, uint32_t start, uint32_t count,
                   uint8_t *out) {
    unsigned long long *seq = (unsigned long long *)s->region;
    const uint8_t *data = s->region + SR_HEADER + s->off[unit][table];
    int words = (table == SR_IR || table == SR_HR);
    size_t nbytes = words ? 2u * count : count;
    uint8_t tmp[2 * 2000];
    for (int tries = 0; tries < 10000; tries++) {
        unsigned long long s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (s1 == 0) return SR_NOT_PUBLISHED;
        if (!(s1 & 1)) {
            memcpy(tmp, data + (words ? 2u * start : start), nbytes);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1) {
                if (words) {
                    for (uint32_t i = 0; i < count; i++) {  /* native little-endian -> BE */
                        uint16_t w;
                        memcpy(&w, tmp + 2 * i, 2);
                        out[2 * i] = (uint8_t)(w >> 8);
                        out[2 * i + 1] = (uint8_t)(w & 0xFF);
                    }
                } else {
                    memcpy(out, tmp, nbytes);
                }
                return 0;
            }
        }
        if (tries > 64) sched_yield();
    }
    return -1;
}

static int sr_is_mapped(sr_server *s, int unit, int table, uint32_t start, uint32_t count) {
    if (start + count > 65536u || start + count > s->size[unit][table]) return 0;
    const uint8_t *m = s->mapped[unit][table];
    for (uint32_t i = start; i < start + count; i++)
        if (!m[i]) return 0;
    return 1;
}

/* The response PDU to a read PDU (function 01 02 03 04 43) for `unit` into `out`; returns its
 * length. */
static int sr_read_pdu(sr_server *s, int unit, const uint8_t *pdu, int len, uint8_t *out) {
    uint8_t f = pdu[0];
    uint8_t code = 0;
    if (f >= 1 && f <= 4) {
        static const int table_of[5] = {0, SR_COIL, SR_DI, SR_HR, SR_IR};
        if (len != 5) {
            code = SR_ILLEGAL_VALUE;
        } else {
            uint32_t start = (uint32_t)pdu[1] << 8 | pdu[2];
            uint32_t count = (uint32_t)pdu[3] << 8 | pdu[4];
            uint32_t limit = f <= 2 ? 2000 : 125;
            int table = table_of[f];
            if (count < 1 || count > limit) {
                code = SR_ILLEGAL_VALUE;
            } else if (!sr_is_mapped(s, unit, table, start, count)) {
                code = SR_ILLEGAL_ADDRESS;
            } else if (f <= 2) {
                uint8_t bits[2000];
                int copied = sr_copy(s, unit, table, start, count, bits);
                if (copied) {
                    code = copied == SR_NOT_PUBLISHED ? SR_SERVER_BUSY : SR_DEVICE_FAILURE;
                } else {
                    int nbytes = (int)((count + 7) / 8);
                    out[0] = f;
                    out[1] = (uint8_t)nbytes;
                    memset(out + 2, 0, nbytes);
                    for (uint32_t i = 0; i < count; i++)
                        if (bits[i]) out[2 + i / 8] |= (uint8_t)(1u << (i % 8));
                    return 2 + nbytes;
                }
            } else {
                int copied = sr_copy(s, unit, table, start, count, out + 2);
                if (copied) {
                    code = copied == SR_NOT_PUBLISHED ? SR_SERVER_BUSY : SR_DEVICE_FAILURE;
                } else {
                    out[0] = f;
                    out[1] = (uint8_t)(2 * count);
                    return 2 + 2 * (int)count;
                }
            }
        }
    } else if (f == 43) {
        if (len != 4) {
            code = SR_ILLEGAL_VALUE;
        } else if (pdu[1] != 0x0E) {
            code = SR_ILLEGAL_FUNCTION;
        } else if (pdu[2] < 1 || pdu[2] > 4) {
            code = SR_ILLEGAL_VALUE;
        } else {
            int read_code = pdu[2], first = pdu[3];
            int last = read_code == 1 ? 2 : 6;
            int present[256] = {0}, at[256];
            for (int p = 0; p < s->identity_len;) {
                present[s->identity[p]] = 1;
                at[s->identity[p]] = p;
                p += 2 + s->identity[p + 1];
            }
            if (read_code == 4 && !present[first]) {
                code = SR_ILLEGAL_ADDRESS;
            } else {
                int n = 6, count = 0;
                out[0] = 43; out[1] = 0x0E; out[2] = (uint8_t)read_code; out[3] = 0x82;
                out[4] = 0; out[5] = 0;
                int lo = first, hi = first;
                if (read_code != 4) {
                    if (!(present[first] && first <= last)) lo = 0;
                    hi = last;
                }
                for (int id = lo; id <= hi; id++) {
                    if (!present[id]) continue;
                    int p = at[id], size = 2 + s->identity[p + 1];
                    memcpy(out + 7 + (n - 6), s->identity + p, size);
                    n += size;
                    count++;
                }
                out[6] = (uint8_t)count;
                return n + 1;
            }
        }
    } else {
        code = SR_ILLEGAL_FUNCTION;
    }
    out[0] = (uint8_t)(f | 0x80);
    out[1] = code;
    return 2;
}

static void sr_queue_out(sr_conn *c, const uint8_t *mbap, const uint8_t *pdu, int len) {
    if (c->out_len + 7 + len > SR_OUT) return;  /* a client that does not read: dropped later */
    uint8_t *o = c->out + c->out_len;
    memcpy(o, mbap, 4);  /* transaction and protocol identifiers */
    o[4] = (uint8_t)((len + 1) >> 8);
    o[5] = (uint8_t)((len + 1) & 0xFF);
    o[6] = mbap[6];
    memcpy(o + 7, pdu, len);
    c->out_len += 7 + len;
}

static int sr_allowed(sr_server *s, uint32_t peer) {
    if (s->n_allow == 0) return 1;
    for (int i = 0; i < s->n_allow; i++)
        if ((peer & s->allow_mask[i]) == s->allow_net[i]) return 1;
    return 0;
}

/* Parse complete frames of connection k: answer reads, hand writes to Python. */
static void sr_frames(sr_server *s, int k, double now) {
    sr_conn *c = &s->conn[k];
    while (!c->waiting && c->in_len >= 7) {
        uint8_t *h = c->in;
        int protocol = h[2] << 8 | h[3];
        int length = h[4] << 8 | h[5];
        if (protocol != 0 || length < 2 || length > 254) {
            s->dropped++;
            sr_close(s, k);
            return;
        }
        if (c->in_len < 6 + length) {
            if (c->frame_started == 0) c->frame_started = now;
            return;
        }
        int frame = 6 + length;
        const uint8_t *pdu = h + 7;
        int pdu_len = length - 1;
        uint8_t f = pdu[0];
        uint8_t answer[SR_FRAME];
        int n;
        s->requests++;
        c->last_activity = now;
        c->frame_started = 0;
        if (!s->has_map[h[6]]) {
            answer[0] = (uint8_t)(f | 0x80);
            answer[1] = 0x0B;  /* gateway target device failed to respond */
            n = 2;
        } else if ((f >= 1 && f <= 4) || f == 43) {
            n = sr_read_pdu(s, h[6], pdu, pdu_len, answer);
        } else if (f == 5 || f == 6 || f == 15 || f == 16 || f == 23) {
            pthread_mutex_lock(&s->lock);
            sr_pending *p = &s->pending[s->n_pending++];
            p->slot = k;
            p->generation = c->generation;
            p->peer = c->peer;
            p->peer_port = c->peer_port;
            memcpy(p->frame, h, frame);
            p->len = frame;
            pthread_cond_signal(&s->has_write);
            pthread_mutex_unlock(&s->lock);
            c->waiting = 1;
            n = 0;
        } else {
            answer[0] = (uint8_t)(f | 0x80);
            answer[1] = 1;
            n = 2;
        }
        if (n) {
            if (answer[0] & 0x80) s->exceptions++;
            sr_queue_out(c, h, answer, n);
        }
        memmove(c->in, c->in + frame, c->in_len - frame);
        c->in_len -= frame;
    }
    if (c->in_len > 0 && c->frame_started == 0) c->frame_started = now;
}

static void sr_accept(sr_server *s, double now) {
    struct sockaddr_in peer;
    socklen_t size = sizeof peer;
    int fd = accept(s->listen_fd, (struct sockaddr *)&peer, &size);
    if (fd < 0) return;
    uint32_t address = ntohl(peer.sin_addr.s_addr);
    int slot = -1;
    for (int k = 0; k < SR_MAX_CONN && slot < 0; k++)
        if (s->conn[k].fd < 0) slot = k;
    if (slot < 0 || s->n_open >= s->max_conn || !sr_allowed(s, address)) {
        s->refused++;
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sr_conn *c = &s->conn[slot];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->generation = ++s->next_generation;
    c->peer = address;
    c->peer_port = ntohs(peer.sin_port);
    c->last_activity = now;
    pthread_mutex_lock(&s->lock);
    s->open_generation[slot] = c->generation;
    pthread_mutex_unlock(&s->lock);
    s->open_slots[s->n_open++] = slot;
    s->accepted++;
}

static void sr_flush(sr_server *s, int k) {
    sr_conn *c = &s->conn[k];
    while (c->out_len > 0) {
        ssize_t sent = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            sr_close(s, k);
            return;
        }
        memmove(c->out, c->out + sent, c->out_len - sent);
        c->out_len -= (int)sent;
    }
}

static void *sr_loop(void *arg) {
    sr_server *s = (sr_server *)arg;
    /* Never at the scan's real-time priority, never on its CPU: a flood of requests must
     * not delay a scan (threads inherit both from the thread that starts them). */
    struct sched_param normal = {0};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
    if (s->avoid_cpu >= 0) {
        cpu_set_t cpus;
        if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) {
            int others = 0;
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (c != s->avoid_cpu && CPU_ISSET(c, &cpus)) others++;
            if (others) {
                CPU_ZERO(&cpus);
                for (int c = 0; c < 1024 && c < CPU_SETSIZE; c++)
                    if (c != s->avoid_cpu) CPU_SET(c, &cpus);
                pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
            }
        }
    }
    struct pollfd fds[SR_MAX_CONN + 2];
    int slot_of[SR_MAX_CONN + 2];
    while (!s->stop) {
        int n = 0;
        fds[n].fd = s->listen_fd; fds[n].events = POLLIN; slot_of[n++] = -1;
        fds[n].fd = s->wake[0]; fds[n].events = POLLIN; slot_of[n++] = -2;
        for (int i = 0; i < s->n_open; i++) {
            int k = s->open_slots[i];
            sr_conn *c = &s->conn[k];
            fds[n].fd = c->fd;
            fds[n].events = (short)((c->waiting ? 0 : POLLIN) | (c->out_len ? POLLOUT : 0));
            slot_of[n++] = k;
        }
        poll(fds, n, 50);
        double now = sr_now();
        for (int i = 0; i < n; i++) {
            short ev = fds[i].revents;
            if (slot_of[i] == -1) {
                if (ev & POLLIN) sr_accept(s, now);
                continue;
            }
            if (slot_of[i] == -2) {
                if (ev & POLLIN) {
                    uint8_t drain[64];
                    while (read(s->wake[0], drain, sizeof drain) > 0) {}
                }
                continue;
            }
            int k = slot_of[i];
            sr_conn *c = &s->conn[k];
            if (c->fd < 0) continue;
            if (ev & (POLLERR | POLLNVAL)) { sr_close(s, k); continue; }
            if (ev & POLLIN) {
                ssize_t got = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                    sr_close(s, k);
                    continue;
                }
                if (got > 0) {
                    c->in_len += (int)got;
                    sr_frames(s, k, now);
                }
            } else if (ev & POLLHUP) {
                sr_close(s, k);
                continue;
            }
            if (c->fd >= 0 && c->out_len) sr_flush(s, k);
        }
        /* writes Python has answered go out; frames that waited behind them are parsed */
        if (__atomic_load_n(&s->n_done, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&s->lock);
        for (int d = 0; d < s->n_done; d++) {
            sr_pending *p = &s->done[d];
            sr_conn *c = &s->conn[p->slot];
            if (c->fd < 0 || c->generation != p->generation || !c->waiting) continue;
            if (p->len >= 9 && (p->frame[7] & 0x80)) s->exceptions++;
            sr_queue_out(c, p->frame, p->frame + 7, p->len - 7);
            c->waiting = 0;
            c->last_activity = now;
        }
        __atomic_store_n(&s->n_done, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&s->lock);
        }
        /* backwards: closing a connection moves the last open slot into its place */
        for (int i = s->n_open - 1; i >= 0; i--) {
            int k = s->open_slots[i];
            sr_conn *c = &s->conn[k];
            if (!c->waiting && c->in_len >= 7) sr_frames(s, k, now);
            if (c->fd >= 0 && c->out_len) sr_flush(s, k);
            if (c->fd < 0 || c->waiting) continue;
            if (c->frame_started > 0 && now - c->frame_started > s->frame_timeout) {
                s->dropped++;
                sr_close(s, k);
            } else if (now - c->last_activity > s->idle_timeout) {
                sr_close(s, k);
            }
        }
    }
    return NULL;
}

/* Python's side of a write: wait for one (up to timeout s), copy its frame; -1 if none. */
static int sr_next_write(sr_server *s, double timeout, int *slot, uint64_t *generation,
                         uint32_t *peer, uint16_t *peer_port, uint8_t *frame) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)((timeout - (long)timeout) * 1e9);
    until.tv_sec += (time_t)timeout + ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&s->lock);
    while (s->n_pending == 0 && !s->stop) {
        if (pthread_cond_timedwait(&s->has_write, &s->lock, &until) == ETIMEDOUT) break;
    }
    int len = -1;
    if (s->n_pending > 0) {
        sr_pending *p = &s->pending[0];
        *slot = p->slot;
        *generation = p->generation;
        *peer = p->peer;
        *peer_port = p->peer_port;
        memcpy(frame, p->frame, p->len);
        len = p->len;
        memmove(s->pending, s->pending + 1, (s->n_pending - 1) * sizeof *p);
        s->n_pending--;
    }
    pthread_mutex_unlock(&s->lock);
    return len;
}

/* Python's answer to a write: handed to the network thread, which queues it on its
 * connection if that is still the one that asked. */
static void sr_complete(sr_server *s, int slot, uint64_t generation, const uint8_t *mbap,
                        const uint8_t *pdu, int len) {
    if (len < 1 || len > SR_FRAME - 7) return;
    pthread_mutex_lock(&s->lock);
    if (s->n_done < SR_MAX_CONN) {
        sr_pending *p = &s->done[s->n_done];
        p->slot = slot;
        p->generation = generation;
        memcpy(p->frame, mbap, 7);
        memcpy(p->frame + 7, pdu, len);
        p->len = 7 + len;
        __atomic_store_n(&s->n_done, s->n_done + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->lock);
    uint8_t one = 1;
    ssize_t ignored = write(s->wake[1], &one, 1);
    (void)ignored;
}

/* Whether the connection (slot, generation) is still open. */
static int sr_is_open(sr_server *s, int slot, uint64_t generation) {
    if (slot < 0 || slot >= SR_MAX_CONN || generation == 0) return 0;
    pthread_mutex_lock(&s->lock);
    int open = s->open_generation[slot] == generation;
    pthread_mutex_unlock(&s->lock);
    return open;
}

#endif
