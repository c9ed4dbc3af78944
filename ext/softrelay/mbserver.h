/* The Modbus/TCP slave's network side, in C: one thread, poll(), no Python. The public API.
 *
 * The server accepts connections (from allowed IPv4 networks; at most max_conn, at most
 * max_per_peer from one address: a newcomer that finds either full evicts the longest-idle
 * connection, of its own address first), reassembles MBAP frames, answers the read functions
 * (01 02 03 04, 43/14) itself from the register image in the shared snapshot (one scan's, under
 * the snapshot's seqlock) and hands every write (05 06 15 16 23) to Python: sr_next_write,
 * then sr_complete. Answers are those of softrelay.modbus.pdu.
 *
 * What it guarantees, whatever a peer does:
 * - no answer is lost: a connection is not read while its answers wait to be sent (output
 *   backpressure); one that does not take them for frame_timeout s is dropped and counted;
 * - at most SR_MAX_PENDING writes wait for Python; a write beyond that is answered exception 06
 *   (server device busy); a connection's writes are dropped with it, never answered onto a
 *   connection that later took its slot;
 * - a bad MBAP header, a frame half-sent past frame_timeout, idle_timeout s without a request:
 *   the connection is dropped;
 * - before the first scan's snapshot is published (sequence 0) a read of a mapped range answers
 *   06: the DCS never reads a value the relay did not compute;
 * - running out of file descriptors (EMFILE / ENFILE) refuses the newcomer (a reserve
 *   descriptor) and pauses accepting for a moment: the thread never spins;
 * - its counters are read as one consistent copy (sr_counters_get).
 *
 * Besides the connections it accepts, it serves connections handed to it (sr_adopt: a TLS
 * front's end of a socketpair, its client already authenticated), under the same limits and
 * rules; their writes name the label given with them as their peer.
 *
 * Threads: sr_next_write, sr_complete, sr_is_open, sr_adopt, sr_adopted_slot and
 * sr_counters_get may be called from any thread while the server runs; sr_new, sr_set_unit,
 * sr_start, sr_stop and sr_free from its owner only.
 */
#ifndef SR_MBSERVER_H
#define SR_MBSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "modbus_protocol.h"

#define SR_MAX_CONN 256    /* connections, the highest max_conn */
#define SR_MAX_ALLOW 32    /* allowed networks */
#define SR_MAX_PENDING 32  /* writes waiting for Python; beyond: exception 06 */
#define SR_MAX_UNITS 256
#define SR_MAX_LABEL 128   /* an adopted connection's label, with its NUL */
#define SR_MAX_ADOPT 16    /* adopted connections waiting for the network thread */

typedef struct sr_server sr_server;  /* opaque */

typedef struct {
    int max_conn;         /* 1..SR_MAX_CONN */
    int max_per_peer;     /* 1..max_conn connections from one IPv4 address */
    double idle_timeout;  /* s without a request: closed */
    double frame_timeout; /* s a frame may stay half-received, or answers unsent: dropped */
    int avoid_cpu;        /* the scan's CPU, which the thread keeps off; -1: none */
    int n_allow;          /* allowed networks; 0: any address */
    uint32_t allow_net[SR_MAX_ALLOW], allow_mask[SR_MAX_ALLOW];  /* host order */
} sr_config;

/* Faults of the thread itself (sr_counters.faults bits): it still serves. */
enum {
    SR_FAULT_PRIORITY = 1,  /* could not leave the scan's real-time priority */
    SR_FAULT_AFFINITY = 2,  /* could not leave the scan's CPU */
    SR_FAULT_POLL = 4,      /* poll() failed (other than EINTR) */
    SR_FAULT_SOCKET = 8,    /* a socket option or a close() failed */
    SR_FAULT_WAKE = 16      /* the wake pipe could not be written */
};

typedef struct {
    uint64_t requests;          /* complete frames parsed */
    uint64_t exceptions;        /* exception responses sent */
    uint64_t accepted;          /* connections accepted */
    uint64_t refused;           /* connections refused (allowlist; full of writes; no fd) */
    uint64_t dropped;           /* connections dropped for a fault of theirs */
    uint64_t evicted;           /* idle connections closed for a newcomer */
    uint64_t stalled;           /* of dropped: answers not taken for frame_timeout */
    uint64_t closed;            /* connections closed, for any reason */
    uint64_t busy;              /* writes answered 06: SR_MAX_PENDING were waiting */
    uint64_t writes_dropped;    /* writes dropped with their connection, before Python */
    uint64_t answers_discarded; /* Python's answers to a connection closed meanwhile */
    uint64_t accept_errors;     /* accept() failures (EMFILE, ENFILE ...) */
    uint64_t adopted;           /* connections handed over by sr_adopt and served */
    uint32_t open;              /* connections open */
    uint32_t faults;            /* SR_FAULT_* */
} sr_counters;

typedef struct {  /* a write handed to Python */
    int slot;
    uint64_t generation;  /* (slot, generation): its connection, never reused by this server */
    uint32_t peer;        /* the connection's IPv4 address and port, host order */
    uint16_t peer_port;
    int len;
    uint8_t frame[SR_MAX_ADU];  /* MBAP header and request PDU */
    char label[SR_MAX_LABEL];   /* an adopted connection's label; "" for an accepted one */
} sr_write;

/* A server on listen_fd (bound, listening, owned by the caller, made non-blocking here; -1:
 * none, it serves adopted connections only),
 * reading region (the snapshot: the seqlock header, then the data; region_size bytes) and
 * answering 43/14 with identity (objects: id, length, bytes ...). NULL and errno on failure
 * (EINVAL: a configuration outside its limits). Every unit answers 0x0B until sr_set_unit. */
sr_server *sr_new(const sr_config *config, int listen_fd, uint8_t *region, size_t region_size,
                  const uint8_t *identity, int identity_len);

/* The image unit reads: per table (coil, discrete input, input register, holding register)
 * its byte offset in the data, its number of addresses and a byte per address (1: mapped).
 * 0, or -1 if it lies outside the region. Before sr_start only. */
int sr_set_unit(sr_server *s, int unit, const size_t offsets[4], const uint32_t sizes[4],
                const uint8_t *const mapped[4]);

int sr_start(sr_server *s);  /* 0, or an errno */
void sr_stop(sr_server *s);  /* the thread joined, every connection closed; safe twice */
void sr_free(sr_server *s);  /* stops it first; NULL is fine */

/* Wait up to timeout s for a write; 1 and *w, or 0 (none, or stopping). */
int sr_next_write(sr_server *s, double timeout, sr_write *w);

/* Python's answer (pdu, len bytes) to the write handed out as (slot, generation), mbap its
 * request's header: 1 queued on its connection; 0 that connection is gone (the answer is
 * discarded and counted); -1 an invalid answer. */
int sr_complete(sr_server *s, int slot, uint64_t generation, const uint8_t *mbap,
                const uint8_t *pdu, int len);

int sr_is_open(sr_server *s, int slot, uint64_t generation);

/* Serve fd, a connected stream socket handed over by the caller (a TLS front's end of a
 * socketpair), as a connection from peer:peer_port (IPv4, host order: the allowlist,
 * max_conn and max_per_peer apply as to an accepted one) whose writes name label (cut to
 * SR_MAX_LABEL - 1 bytes) as their peer. The server owns fd from this call on, whatever
 * happens: a refusal closes it. The connection's generation (> 0, never reused by this
 * server), or 0 and errno: EAGAIN (SR_MAX_ADOPT already waiting), ESHUTDOWN (stopping),
 * EINVAL. The network thread places it at its next turn; a refusal there (the allowlist, or
 * full of connections none of which can be evicted) closes fd and counts it in refused. */
uint64_t sr_adopt(sr_server *s, int fd, uint32_t peer, uint16_t peer_port, const char *label);

/* Where the adopted connection `generation` is: its slot (>= 0) while open; -1 while it waits
 * to be placed; -2 gone (refused, or closed). */
int sr_adopted_slot(sr_server *s, uint64_t generation);
void sr_counters_get(sr_server *s, sr_counters *out);  /* one consistent copy */

/* The response PDU the thread gives to a read PDU for unit (tests hold it to the reference):
 * its length; -1 if the unit reads no map. */
int sr_read_pdu(sr_server *s, int unit, const uint8_t *pdu, int len, uint8_t *out);

#endif
