/* libFuzzer harness of the Modbus/TCP server (ext/softrelay/mbserver.c): the frame parser and
 * the server loop, over real loopback sockets, with AddressSanitizer and UBSan (`make fuzz`).
 *
 * One server lives across inputs (as in the relay); each input is a script of operations on
 * four clients: send bytes, turn the loop, answer a pending write as Python would (with bytes
 * from the input), read the answers, reset or close and reconnect (over TCP, or as an
 * adopted connection: a socketpair handed over by sr_adopt with a label from the input, as
 * the TLS front does), read a PDU directly. After each input every client is closed and the
 * server must come back to no connection, no write pending, none waiting to be adopted, and
 * counters that add up (accepted + adopted = open + closed). The image: unit 1 sees every
 * address, unit 2 a sparse map, the others none (0x0B); a published snapshot, or none yet
 * (sequence 0: reads answer 06), by the input's first byte.
 */
#include "../../ext/softrelay/mbserver.c"

#include <assert.h>
#include <stdio.h>

#define CLIENTS 4
#define WORDS 300

static sr_server *server;
static int port;
static int clients[CLIENTS];
static uint8_t region_buffer[SR_SEQLOCK_HEADER + 2 * 64 + 4 * WORDS + 64]
    __attribute__((aligned(64)));
static uint8_t mapped_all[WORDS], mapped_sparse[WORDS];

static int connect_client(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A client whose connection is handed over (sr_adopt), from 10.0.0.(peer % 4), labelled by
 * the input's bytes (up to 200: longer than a label holds). */
static int adopt_client(int k, const uint8_t *bytes, size_t n, int peer) {
    int pair[2];
    assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
    char label[201];
    size_t len = n < 200 ? n : 200;
    for (size_t i = 0; i < len; i++) label[i] = bytes[i] ? (char)bytes[i] : '?';
    label[len] = 0;
    uint64_t generation = sr_adopt(server, pair[1], 0x0A000000u + (uint32_t)(peer % 4),
                                   (uint16_t)k, label);
    if (generation == 0) {  /* the server closed its end */
        close(pair[0]);
        return -1;
    }
    return pair[0];
}

static void reset_client(int k, int hard) {
    if (clients[k] >= 0) {
        if (hard) {
            struct linger zero = {1, 0};
            setsockopt(clients[k], SOL_SOCKET, SO_LINGER, &zero, sizeof zero);
        }
        close(clients[k]);
    }
    clients[k] = -1;
}

static void setup(void) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert(bind(listener, (struct sockaddr *)&at, sizeof at) == 0);
    assert(listen(listener, SOMAXCONN) == 0);
    socklen_t size = sizeof at;
    getsockname(listener, (struct sockaddr *)&at, &size);
    port = ntohs(at.sin_port);
    uint8_t *data = region_buffer + SR_SEQLOCK_HEADER;
    for (int i = 0; i < 2 * 64 + 4 * WORDS; i++) data[i] = (uint8_t)(i * 37);
    for (int i = 0; i < WORDS; i++) {
        mapped_all[i] = 1;
        mapped_sparse[i] = (uint8_t)(i % 7 != 3);
    }
    sr_config config = {.max_conn = 3, .max_per_peer = 2, .idle_timeout = 0.2,
                        .frame_timeout = 0.02, .avoid_cpu = -1, .n_allow = 0};
    static const uint8_t identity[] = {0, 4, 't', 'e', 's', 't', 1, 2, 's', 'r', 2, 1, '1'};
    server = sr_new(&config, listener, region_buffer, sizeof region_buffer, identity,
                    sizeof identity);
    assert(server != NULL);
    size_t offsets[4] = {0, 64, 128, 128 + 2 * WORDS};
    uint32_t sizes[4] = {64, 64, WORDS, WORDS};
    const uint8_t *all[4] = {mapped_all, mapped_all, mapped_all, mapped_all};
    const uint8_t *sparse[4] = {mapped_sparse, mapped_sparse, mapped_sparse, mapped_sparse};
    assert(sr_set_unit(server, 1, offsets, sizes, all) == 0);
    assert(sr_set_unit(server, 2, offsets, sizes, sparse) == 0);
    for (int k = 0; k < CLIENTS; k++) clients[k] = -1;
}

static void answer_writes(const uint8_t *data, size_t n) {
    sr_write w;
    while (sr_next_write(server, 0, &w)) {
        uint8_t pdu[SR_MAX_PDU];
        int len = 1 + (int)(n % 8);
        pdu[0] = w.frame[SR_MBAP_HEADER];
        for (int i = 1; i < len; i++) pdu[i] = n ? data[i % n] : 0;
        if (n && data[0] & 1) {  /* an exception answer, as the specification refuses */
            len = 2;
            pdu[0] |= SR_EXCEPTION_BIT;
        }
        assert(sr_complete(server, w.slot, w.generation, w.frame, pdu, len) >= 0);
    }
}

static void drain(int k) {
    uint8_t buf[8192];
    if (clients[k] < 0) return;
    for (;;) {
        ssize_t got = recv(clients[k], buf, sizeof buf, 0);
        if (got > 0) continue;
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) reset_client(k, 0);
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (server == NULL) setup();
    if (size < 1) return 0;
    unsigned long long *seq = (unsigned long long *)region_buffer;
    __atomic_store_n(seq, (data[0] & 1) ? 0ull : 2ull, __ATOMIC_RELEASE);
    size_t at = 1;
    while (at + 2 <= size) {
        uint8_t op = data[at], len = data[at + 1];
        at += 2;
        size_t n = len < size - at ? len : size - at;
        const uint8_t *bytes = data + at;
        at += n;
        int k = (op >> 4) % CLIENTS;
        switch (op & 7) {
        case 0:  /* send */
        case 1:
            if (clients[k] < 0) clients[k] = connect_client();
            if (clients[k] >= 0 && n) send(clients[k], bytes, n, MSG_NOSIGNAL);
            sr_serve_once(server, 0);
            break;
        case 2:  /* turn the loop */
            sr_serve_once(server, 0);
            break;
        case 3:  /* Python answers the writes */
            answer_writes(bytes, n);
            sr_serve_once(server, 0);
            break;
        case 4:  /* the client reads */
            drain(k);
            break;
        case 5:  /* reset, or close, then reconnect */
            reset_client(k, n & 1);
            clients[k] = (n & 2) ? adopt_client(k, bytes, n, (int)(n >> 2))
                                 : connect_client();
            sr_serve_once(server, 0);
            break;
        case 6: {  /* a PDU straight to the parser */
            uint8_t out[SR_MAX_ADU];
            if (n >= 1) {
                int got = sr_read_pdu(server, 1 + (op >> 7), bytes, (int)n, out);
                assert(got >= 2 && got <= SR_MAX_PDU);
            }
            break;
        }
        default:  /* a long pipelined burst of valid reads, to fill the output */
            if (clients[k] < 0) clients[k] = connect_client();
            if (clients[k] >= 0) {
                uint8_t burst[40 * 12];
                for (int i = 0; i < 40; i++) {
                    uint8_t frame[12] = {0, (uint8_t)i, 0, 0, 0, 6, (uint8_t)(1 + (op >> 7)),
                                         3, 0, (uint8_t)(n ? bytes[0] : i), 0, 56};
                    memcpy(burst + 12 * i, frame, 12);
                }
                send(clients[k], burst, sizeof burst, MSG_NOSIGNAL);
            }
            sr_serve_once(server, 0);
        }
    }
    for (int k = 0; k < CLIENTS; k++) reset_client(k, k & 1);
    for (int turn = 0; turn < 200 && (server->n_open || server->n_adopting); turn++) {
        answer_writes(NULL, 0);
        sr_serve_once(server, 1);
    }
    answer_writes(NULL, 0);
    sr_serve_once(server, 0);
    assert(server->n_open == 0);
    sr_counters c;
    sr_counters_get(server, &c);
    assert(server->n_adopting == 0);
    assert(c.open == 0 && c.accepted + c.adopted == c.open + c.closed);
    assert(server->n_pending == 0 && server->n_done == 0);
    return 0;
}
