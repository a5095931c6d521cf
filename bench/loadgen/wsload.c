/*
 * wsload: the benchmark's WebSocket load generator, one thread, epoll, written in C
 * so that it is never the bottleneck (a Python receiver for 1000 sockets saturates
 * its core well below what the servers under test deliver).
 *
 * It opens --conns client connections (spread over --src-addrs source addresses
 * 127.0.0.1, .2, ... so that 50 000 connections do not exhaust ephemeral ports;
 * with --ports P1,P2,... connection i goes to port P[i mod count], e.g. one per node
 * of a cluster, so one process times every delivery on one clock),
 * sends each connection's init frames (auth, subscribe, ...), and then:
 *   fanout/idle: receives; every data frame holding "T@" + 16 digits (a send time in
 *                microseconds since the epoch) is one delivery with a latency sample;
 *   chat:        sends Tidings MsgChat frames (MessagePack) to a partner and times each
 *                ChatAck by its seq: closed loop, --window outstanding per connection
 *                (the next chat leaves when an ack comes back), or with --rate R open
 *                loop, R chats/s in all whatever the acks do, each connection in turn
 *                (at most --window outstanding: a chat due on a full connection is not
 *                sent and is counted as "skipped"); a latency runs from the moment the
 *                chat was due, so a late sender does not hide a slow server. With
 *                --acks 1 every ChatPush (102) is answered with a delivery MsgAck, as
 *                a client written from seed 001 does.
 * With --reconnect S (the reconnect storm) a connection that closes or fails is opened
 * again and sends its init frames again, after the SDK's backoff: S seconds, times 1.5
 * per further attempt, capped at --reconnect-max (30 s), each wait times a random
 * factor in [0.5, 1.5]
 * (--reconnect-jitter); it counts as ready again when --ready-match (or --ready-hex,
 * the same as bytes) arrives on the new connection.
 * It answers WebSocket pings, Engine.IO pings ("2" -> "3") and sends --keepalive
 * frames. Commands on stdin, one per line; each answer is one JSON line on stdout:
 *   status  -> {"ready":..,"open":..,"failed":..,"closed":..}
 *   reset   -> clears counters and samples
 *   count   -> counters only (cheap: no sorting)
 *   report  -> counters and latency percentiles (ms) since the last reset
 *   go / stop (chat) -> start / stop sending chats; stop waits for outstanding acks
 *   quit
 * Init file (--init): one line per connection (reused modulo its length), fields
 * separated by spaces: "b:HEX" a binary frame, "t:TEXT" a text frame (no spaces),
 * "to:N" the partner user id for chat mode. Everything on 127.0.0.0/8 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };
enum { M_FANOUT, M_CHAT };

typedef struct { unsigned char *data; size_t len; } buf_t;
typedef struct { buf_t *frames; int nframes; uint64_t to; } init_t;

typedef struct {
    int fd, state, ready, initsent;
    unsigned char *in; size_t inlen, incap;   /* unparsed input */
    unsigned char *out; size_t outlen, outcap; /* unsent output */
    int line;                                  /* index into inits */
    int port;                                  /* the server port it connects to */
    int attempt; uint64_t retry_at;            /* --reconnect: backoff state */
    /* chat */
    int outstanding; uint64_t seq, ack_seq;
    uint64_t *sent_at; uint64_t *sent_seq;      /* ring of window entries */
} conn_t;

static conn_t *conns;
static int ports[16], nports;
static int nconns, nsrc = 1, port, mode = M_FANOUT, window = 1, epfd;
static const char *host = "127.0.0.1", *path = "/", *ready_match, *pong_match, *pong_reply;
static init_t *inits; static int ninits;
static buf_t keepalive; static int keepalive_text; static double keepalive_every;
static int content_bytes = 100, sending, connect_parallel = 256, ready_parallel;
static int send_acks;                            /* chat: ack every push */
static double rate;                              /* chats/s in all; 0: closed loop */
static uint64_t go_at_us, paced; static int next_paced; /* open loop: due so far */
static long n_ready, n_open, n_failed, n_closed, n_connecting;
/* counters since reset */
static uint64_t frames_in, deliveries, chats_sent, acks, pushes_in, errors_in, skipped,
                acks_sent;
static uint32_t *lat; static size_t nlat, latcap; /* microseconds */
static uint64_t lat_over; /* samples beyond capacity */
static uint64_t t_reset_us;
static double reconnect_s, reconnect_max = 30.0, reconnect_jitter = 0.5;   /* 0: connections are not reopened */
static int *retry; static int nretry;                /* dead connections waiting to reopen */
static uint64_t reopened;

static uint64_t now_us(void) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}

static void die(const char *m) { perror(m); exit(2); }

static void add_lat(uint64_t us) {
    if (nlat == latcap) {
        if (latcap >= (size_t)64 << 20) { lat_over++; return; }
        latcap = latcap ? latcap * 2 : 1 << 20;
        lat = realloc(lat, latcap * sizeof *lat);
        if (!lat) die("realloc");
    }
    lat[nlat++] = us > 0xffffffffu ? 0xffffffffu : (uint32_t)us;
}

static void buf_append(unsigned char **b, size_t *len, size_t *cap, const void *d, size_t n) {
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n) c *= 2;
        *b = realloc(*b, c); if (!*b) die("realloc");
        *cap = c;
    }
    memcpy(*b + *len, d, n); *len += n;
}

static void mark_dead(conn_t *c) {
    if (c->state == ST_DEAD) return;
    if (c->state == ST_OPEN) { n_closed++; n_open--; if (c->ready) n_ready--; }
    else { n_failed++; n_connecting--; }
    c->state = ST_DEAD;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in); c->in = NULL; c->inlen = c->incap = 0;
    free(c->out); c->out = NULL; c->outlen = c->outcap = 0;
    if (reconnect_s > 0) {
        double d = reconnect_s;
        for (int i = 0; i < c->attempt && d < reconnect_max; i++) d *= 1.5;
        if (d > reconnect_max) d = reconnect_max;
        d *= 1.0 - reconnect_jitter + 2.0 * reconnect_jitter * ((double)rand() / RAND_MAX);
        c->retry_at = now_us() + (uint64_t)(d * 1e6);
        c->attempt++;
        retry[nretry++] = (int)(c - conns);
    }
}

static void want_out(conn_t *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_write(conn_t *c, const void *d, size_t n) {
    if (c->state == ST_DEAD) return;
    if (c->outlen == 0) {
        ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return;
        if (w < 0) { if (errno != EAGAIN) { mark_dead(c); return; } w = 0; }
        d = (const char *)d + w; n -= (size_t)w;
        want_out(c, 1);
    }
    buf_append(&c->out, &c->outlen, &c->outcap, d, n);
}

static void flush_out(conn_t *c) {
    while (c->outlen) {
        ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (w < 0) { if (errno == EAGAIN) return; mark_dead(c); return; }
        memmove(c->out, c->out + w, c->outlen - (size_t)w);
        c->outlen -= (size_t)w;
    }
    want_out(c, 0);
}

/* One masked client frame (mask key 0: valid, and the payload needs no XOR). */
static void send_frame(conn_t *c, int opcode, const void *d, size_t n) {
    unsigned char h[14]; size_t hl = 2;
    h[0] = 0x80 | (unsigned char)opcode;
    if (n < 126) h[1] = 0x80 | (unsigned char)n;
    else if (n < 65536) { h[1] = 0x80 | 126; h[2] = (unsigned char)(n >> 8); h[3] = (unsigned char)n; hl = 4; }
    else { h[1] = 0x80 | 127; for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(n >> (56 - 8 * i)); hl = 10; }
    memset(h + hl, 0, 4); hl += 4;
    if (c->outlen == 0 && n + hl <= 512) {
        unsigned char tmp[512]; memcpy(tmp, h, hl); memcpy(tmp + hl, d, n);
        conn_write(c, tmp, hl + n);
    } else { conn_write(c, h, hl); conn_write(c, d, n); }
}

/* ---- Tidings chat frames: MessagePack {type, seq, payload: bin(msgpack)} ---- */
static size_t mp_uint(unsigned char *p, uint64_t v) {
    if (v < 128) { p[0] = (unsigned char)v; return 1; }
    p[0] = 0xcf; for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)(v >> (56 - 8 * i));
    return 9;
}

/* t: when the chat was due (now, in closed loop) */
static void send_chat(conn_t *c, uint64_t t) {
    unsigned char inner[512], frame[640]; size_t n = 0, m = 0;
    uint64_t seq = ++c->seq;
    inner[n++] = 0x83;
    inner[n++] = 0xa2; memcpy(inner + n, "to", 2); n += 2;
    n += mp_uint(inner + n, inits[c->line].to);
    inner[n++] = 0xa4; memcpy(inner + n, "type", 4); n += 4;
    inner[n++] = 0xa4; memcpy(inner + n, "text", 4); n += 4;
    inner[n++] = 0xa7; memcpy(inner + n, "content", 7); n += 7;
    int cl = content_bytes < 30 ? 30 : content_bytes > 255 ? 255 : content_bytes;
    inner[n++] = 0xd9; inner[n++] = (unsigned char)cl;
    int k = snprintf((char *)inner + n, 32, "T@%016llu ", (unsigned long long)t);
    memset(inner + n + k, 'x', (size_t)(cl - k)); n += (size_t)cl;
    frame[m++] = 0x83;
    frame[m++] = 0xa4; memcpy(frame + m, "type", 4); m += 4; frame[m++] = 2;
    frame[m++] = 0xa3; memcpy(frame + m, "seq", 3); m += 3; m += mp_uint(frame + m, seq);
    frame[m++] = 0xa7; memcpy(frame + m, "payload", 7); m += 7;
    frame[m++] = 0xc4; frame[m++] = (unsigned char)n; memcpy(frame + m, inner, n); m += n;
    int slot = (int)(seq % (uint64_t)window);
    c->sent_seq[slot] = seq; c->sent_at[slot] = t;
    c->outstanding++; chats_sent++;
    send_frame(c, 2, frame, m);
}

/* Read a MessagePack unsigned int at p (bounded by e); returns bytes used or 0. */
static size_t mp_read_uint(const unsigned char *p, const unsigned char *e, uint64_t *v) {
    if (p >= e) return 0;
    unsigned char b = p[0]; int len = 0;
    if (b < 0x80) { *v = b; return 1; }
    if (b == 0xcc) len = 1; else if (b == 0xcd) len = 2; else if (b == 0xce) len = 4;
    else if (b == 0xcf) len = 8; else return 0;
    if (p + 1 + len > e) return 0;
    uint64_t x = 0; for (int i = 0; i < len; i++) x = (x << 8) | p[1 + i];
    *v = x; return (size_t)(1 + len);
}

/* A delivery MsgAck (3) for the ChatPush whose envelope continues at p: {..., "payload":
 * bin({"message_id": N, ...})}. Acks take seqs of their own (from 2^32), so that the
 * chats' seqs stay consecutive for the window's ring. */
static void ack_push(conn_t *c, const unsigned char *p, const unsigned char *e) {
    uint64_t id = 0; size_t k;
    if (p + 8 > e || memcmp(p, "\xa7payload", 8) != 0) return;
    p += 8;
    if (p + 2 <= e && p[0] == 0xc4) p += 2;
    else if (p + 3 <= e && p[0] == 0xc5) p += 3;
    else return;
    if (p + 12 > e || (p[0] & 0xf0) != 0x80 || memcmp(p + 1, "\xaamessage_id", 11) != 0) return;
    p += 12;
    if (!(k = mp_read_uint(p, e, &id))) return;
    unsigned char inner[48], frame[96]; size_t n = 0, m = 0;
    inner[n++] = 0x82;
    inner[n++] = 0xaa; memcpy(inner + n, "message_id", 10); n += 10;
    n += mp_uint(inner + n, id);
    inner[n++] = 0xa6; memcpy(inner + n, "status", 6); n += 6;
    inner[n++] = 0xa9; memcpy(inner + n, "delivered", 9); n += 9;
    frame[m++] = 0x83;
    frame[m++] = 0xa4; memcpy(frame + m, "type", 4); m += 4; frame[m++] = 3;
    frame[m++] = 0xa3; memcpy(frame + m, "seq", 3); m += 3;
    m += mp_uint(frame + m, (1ull << 32) + ++c->ack_seq);
    frame[m++] = 0xa7; memcpy(frame + m, "payload", 7); m += 7;
    frame[m++] = 0xc4; frame[m++] = (unsigned char)n; memcpy(frame + m, inner, n); m += n;
    acks_sent++;
    send_frame(c, 2, frame, m);
}

/* A server envelope starts {"type": T, "seq": S, ...} (msgspec keeps field order). */
static void on_chat_frame(conn_t *c, const unsigned char *p, size_t n) {
    const unsigned char *e = p + n; uint64_t type = 0, seq = 0; size_t k;
    if (n < 12 || (p[0] & 0xf0) != 0x80 || memcmp(p + 1, "\xa4type", 5) != 0) return;
    p += 6;
    if (!(k = mp_read_uint(p, e, &type))) return;
    p += k;
    if (p + 4 > e || memcmp(p, "\xa3seq", 4) != 0) return;
    p += 4;
    if (!(k = mp_read_uint(p, e, &seq))) return;
    p += k;
    if (type == 102) { pushes_in++; if (send_acks) ack_push(c, p, e); return; }
    if (type == 106) { errors_in++; }
    if (type != 107 && type != 106) return;
    int slot = (int)(seq % (uint64_t)window);
    if (c->sent_seq[slot] != seq) return;
    if (type == 107) { acks++; add_lat(now_us() - c->sent_at[slot]); }
    c->sent_seq[slot] = 0; c->outstanding--;
    if (sending && rate <= 0) send_chat(c, now_us());
}

/* Open loop: send every chat due since "go", connection after connection. */
static void pace(void) {
    uint64_t due = (uint64_t)((double)(now_us() - go_at_us) * rate / 1e6);
    for (; paced < due; paced++) {
        conn_t *c = &conns[next_paced];
        next_paced = (next_paced + 1) % nconns;
        if (c->state == ST_OPEN && c->ready && c->outstanding < window)
            send_chat(c, go_at_us + (uint64_t)((double)paced * 1e6 / rate));
        else
            skipped++;
    }
}

static void on_data(conn_t *c, int opcode, const unsigned char *p, size_t n) {
    frames_in++;
    if (!c->ready && ready_match && memmem(p, n, ready_match, strlen(ready_match))) {
        c->ready = 1; n_ready++; c->attempt = 0;
    }
    if (pong_match && opcode == 1 && n == strlen(pong_match) && !memcmp(p, pong_match, n)) {
        send_frame(c, 1, pong_reply, strlen(pong_reply));
        return;
    }
    if (mode == M_CHAT) { on_chat_frame(c, p, n); return; }
    const unsigned char *m = memmem(p, n, "T@", 2);
    if (m && m + 18 <= p + n) {
        uint64_t t = 0;
        for (int i = 2; i < 18; i++) t = t * 10 + (uint64_t)(m[i] - '0');
        uint64_t now = now_us();
        deliveries++;
        add_lat(now > t ? now - t : 0);
    }
}

static void send_init(conn_t *c) {
    init_t *in = &inits[c->line];
    for (int i = 0; i < in->nframes; i++) {
        buf_t *f = &in->frames[i];
        send_frame(c, f->data[0] == 't' ? 1 : 2, f->data + 1, f->len - 1);
    }
    c->initsent = 1;
}

/* Parse complete frames from c->in; keep the remainder. */
static void parse_frames(conn_t *c) {
    size_t off = 0;
    while (c->state == ST_OPEN) {
        unsigned char *p = c->in + off; size_t avail = c->inlen - off;
        if (avail < 2) break;
        int opcode = p[0] & 0x0f; size_t hl = 2; uint64_t len = p[1] & 0x7f;
        if (len == 126) { if (avail < 4) break; len = ((uint64_t)p[2] << 8) | p[3]; hl = 4; }
        else if (len == 127) {
            if (avail < 10) break;
            len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            hl = 10;
        }
        if (p[1] & 0x80) hl += 4; /* servers do not mask; tolerate it anyway */
        if (avail < hl + len) break;
        unsigned char *d = p + hl;
        if (opcode == 9) send_frame(c, 10, d, len);
        else if (opcode == 8) { mark_dead(c); return; }
        else if (opcode == 1 || opcode == 2 || opcode == 0) on_data(c, opcode, d, len);
        off += hl + len;
    }
    if (c->state != ST_OPEN) return;
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
}

static void start_handshake(conn_t *c) {
    char req[1024];
    int n = snprintf(req, sizeof req,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        path, host, c->port);
    c->state = ST_HANDSHAKE;
    conn_write(c, req, (size_t)n);
}

static unsigned char rbuf[1 << 18];

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (r == 0) { mark_dead(c); return; }
        if (r < 0) { if (errno != EAGAIN) mark_dead(c); return; }
        buf_append(&c->in, &c->inlen, &c->incap, rbuf, (size_t)r);
        if (c->state == ST_HANDSHAKE) {
            unsigned char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
            if (!e) continue;
            if (c->inlen < 12 || memcmp(c->in + 9, "101", 3) != 0) { mark_dead(c); return; }
            size_t hl = (size_t)(e + 4 - c->in);
            memmove(c->in, c->in + hl, c->inlen - hl); c->inlen -= hl;
            c->state = ST_OPEN; n_connecting--; n_open++;
            if (!ready_match) { c->ready = 1; n_ready++; }
            if (ninits) send_init(c);
        }
        parse_frames(c);
        if (c->state != ST_OPEN) return;
        /* Release the input buffer of idle connections: 50k of them add up. */
        if (c->inlen == 0 && c->incap > 4096) { free(c->in); c->in = NULL; c->incap = 0; }
        if ((size_t)r < sizeof rbuf) return;
    }
}

static int next_to_connect;

static void open_conn(int idx) {
        conn_t *c = &conns[idx];
        c->line = ninits ? idx % ninits : 0;
        c->ready = 0; c->initsent = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % nsrc));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
        c->port = nports ? ports[idx % nports] : port;
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
        inet_pton(AF_INET, host, &dst.sin_addr);
        c->fd = fd; c->state = ST_CONNECTING; n_connecting++;
        if (mode == M_CHAT && !c->sent_at) {
            c->sent_at = calloc((size_t)window, sizeof(uint64_t));
            c->sent_seq = calloc((size_t)window, sizeof(uint64_t));
            c->seq = now_us() * 1000u;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
            mark_dead(c);
        }
}

static void connect_more(void) {
    /* --ready-parallel: also count open sockets not yet ready (a server that
       authenticates slower than it accepts would otherwise time the rest out). */
    while (next_to_connect < nconns && n_connecting < connect_parallel &&
           (!ready_parallel || n_connecting + n_open - n_ready < ready_parallel))
        open_conn(next_to_connect++);
    if (!nretry) return;
    static int *due;
    if (!due) due = malloc((size_t)nconns * sizeof *due);
    uint64_t now = now_us(); int k = 0, ndue = 0;
    for (int i = 0; i < nretry; i++) {
        int idx = retry[i];
        if (conns[idx].retry_at <= now && n_connecting + ndue < connect_parallel) due[ndue++] = idx;
        else retry[k++] = idx;
    }
    nretry = k;  /* a reopening that fails at once queues itself again (mark_dead) */
    for (int i = 0; i < ndue; i++) { reopened++; open_conn(due[i]); }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!nlat) return -1;
    size_t i = (size_t)(q * (double)(nlat - 1));
    return lat[i] / 1000.0;
}

static double cpu_seconds(void) {
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
static double cpu_at_reset;

static void report(void) {
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    double secs = (now_us() - t_reset_us) / 1e6;
    printf("{\"seconds\":%.3f,\"frames_in\":%llu,\"deliveries\":%llu,\"chats_sent\":%llu,"
           "\"acks\":%llu,\"pushes_in\":%llu,\"acks_sent\":%llu,\"errors_in\":%llu,\"skipped\":%llu,\"samples\":%zu,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
           "\"ready\":%ld,\"open\":%ld,\"failed\":%ld,\"closed\":%ld,\"cpu_s\":%.3f}\n",
           secs, (unsigned long long)frames_in, (unsigned long long)deliveries,
           (unsigned long long)chats_sent, (unsigned long long)acks,
           (unsigned long long)pushes_in, (unsigned long long)acks_sent,
           (unsigned long long)errors_in, (unsigned long long)skipped, nlat,
           pct(0.50), pct(0.99), pct(0.999), nlat ? lat[nlat - 1] / 1000.0 : -1.0,
           n_ready, n_open, n_failed, n_closed, cpu_seconds() - cpu_at_reset);
    fflush(stdout);
}

static void reset(void) {
    frames_in = deliveries = chats_sent = acks = pushes_in = errors_in = skipped = 0;
    acks_sent = 0;
    nlat = 0; lat_over = 0; t_reset_us = now_us(); cpu_at_reset = cpu_seconds();
}

static int on_command(char *line) {
    line[strcspn(line, "\r\n")] = 0;
    if (!strcmp(line, "status")) {
        printf("{\"ready\":%ld,\"open\":%ld,\"failed\":%ld,\"closed\":%ld,\"pending\":%d,"
               "\"waiting_to_reopen\":%d,\"reopened\":%llu,\"cpu_s\":%.3f}\n",
               n_ready, n_open, n_failed, n_closed, nconns - next_to_connect, nretry,
               (unsigned long long)reopened, cpu_seconds());
    } else if (!strcmp(line, "reset")) { reset(); printf("{}\n"); }
    else if (!strcmp(line, "count")) {
        printf("{\"deliveries\":%llu,\"acks\":%llu,\"frames_in\":%llu,\"closed\":%ld}\n",
               (unsigned long long)deliveries, (unsigned long long)acks,
               (unsigned long long)frames_in, n_closed);
    }
    else if (!strcmp(line, "report")) { report(); return 0; }
    else if (!strcmp(line, "go")) {
        sending = 1;
        if (rate > 0) { go_at_us = now_us(); paced = 0; }
        else for (int i = 0; i < nconns; i++) {
            conn_t *c = &conns[i];
            while (c->state == ST_OPEN && c->ready && c->outstanding < window)
                send_chat(c, now_us());
        }
        printf("{}\n");
    } else if (!strcmp(line, "stop")) { sending = 0; printf("{}\n"); }
    else if (!strcmp(line, "outstanding")) {
        long o = 0; for (int i = 0; i < nconns; i++) if (conns[i].state == ST_OPEN) o += conns[i].outstanding;
        printf("{\"outstanding\":%ld}\n", o);
    } else if (!strcmp(line, "quit")) return 1;
    else printf("{\"error\":\"unknown command\"}\n");
    fflush(stdout);
    return 0;
}

static int hexval(int ch) { return ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10; }

static void load_inits(const char *file) {
    FILE *f = fopen(file, "r"); if (!f) die(file);
    char *line = NULL; size_t cap = 0; ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        line[strcspn(line, "\r\n")] = 0;
        inits = realloc(inits, (size_t)(ninits + 1) * sizeof *inits);
        init_t *in = &inits[ninits++]; memset(in, 0, sizeof *in);
        for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " ")) {
            if (!strncmp(tok, "to:", 3)) { in->to = strtoull(tok + 3, NULL, 10); continue; }
            in->frames = realloc(in->frames, (size_t)(in->nframes + 1) * sizeof(buf_t));
            buf_t *b = &in->frames[in->nframes++];
            size_t tl = strlen(tok + 2);
            b->data = malloc(tl + 1);
            if (tok[0] == 'b') {
                b->data[0] = 'b';
                for (size_t i = 0; i + 1 < tl; i += 2)
                    b->data[1 + i / 2] = (unsigned char)(hexval(tok[2 + i]) << 4 | hexval(tok[3 + i]));
                b->len = 1 + tl / 2;
            } else { b->data[0] = 't'; memcpy(b->data + 1, tok + 2, tl); b->len = 1 + tl; }
        }
    }
    free(line); fclose(f);
}

static void usage(void) {
    fprintf(stderr, "usage: wsload --port P|--ports P1,P2 [--host 127.0.0.1] [--path /] [--conns N] "
            "[--src-addrs K] [--mode fanout|chat] [--init FILE] [--ready-match S] "
            "[--pong-match S --pong-reply S] [--keepalive-hex HEX|--keepalive-text S "
            "--keepalive-every SEC] [--window W] [--rate CHATS_PER_S] [--acks 0|1] "
            "[--content-bytes B]\n");
    exit(2);
}

int main(int argc, char **argv) {
    nconns = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--ports")) {
            for (const char *q = v; *q && nports < 16; q = strchr(q, ',') ? strchr(q, ',') + 1 : "")
                ports[nports++] = atoi(q);
            port = ports[0];
        }
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--src-addrs")) nsrc = atoi(v);
        else if (!strcmp(a, "--ready-parallel")) ready_parallel = atoi(v);
        else if (!strcmp(a, "--reconnect")) reconnect_s = atof(v);
        else if (!strcmp(a, "--reconnect-max")) reconnect_max = atof(v);
        else if (!strcmp(a, "--reconnect-jitter")) reconnect_jitter = atof(v);
        else if (!strcmp(a, "--ready-hex")) {
            size_t tl = strlen(v); char *m = calloc(tl / 2 + 1, 1);
            for (size_t k = 0; k + 1 < tl; k += 2)
                m[k / 2] = (char)(hexval(v[k]) << 4 | hexval(v[k + 1]));
            ready_match = m;
        }
        else if (!strcmp(a, "--mode")) mode = !strcmp(v, "chat") ? M_CHAT : M_FANOUT;
        else if (!strcmp(a, "--init")) load_inits(v);
        else if (!strcmp(a, "--ready-match")) ready_match = v;
        else if (!strcmp(a, "--pong-match")) pong_match = v;
        else if (!strcmp(a, "--pong-reply")) pong_reply = v;
        else if (!strcmp(a, "--keepalive-text")) {
            keepalive.data = (unsigned char *)v; keepalive.len = strlen(v); keepalive_text = 1;
        } else if (!strcmp(a, "--keepalive-hex")) {
            size_t tl = strlen(v); keepalive.data = malloc(tl / 2 + 1); keepalive.len = tl / 2;
            for (size_t k = 0; k + 1 < tl; k += 2)
                keepalive.data[k / 2] = (unsigned char)(hexval(v[k]) << 4 | hexval(v[k + 1]));
        } else if (!strcmp(a, "--keepalive-every")) keepalive_every = atof(v);
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--acks")) send_acks = atoi(v);
        else if (!strcmp(a, "--content-bytes")) content_bytes = atoi(v);
        else if (!strcmp(a, "--connect-parallel")) connect_parallel = atoi(v);
        else usage();
        i++;
    }
    if (!port || nconns < 1 || window < 1) usage();
    if (pong_match && !pong_reply) usage();
    if (strncmp(host, "127.", 4) != 0) { fprintf(stderr, "wsload: loopback only\n"); return 2; }
    if (mode == M_CHAT && !ninits) { fprintf(stderr, "wsload: chat needs --init\n"); return 2; }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)nconns + 16) {
        fprintf(stderr, "wsload: %d connections need more than the hard limit of %llu fds\n",
                nconns, (unsigned long long)rl.rlim_max);
        return 2;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("setrlimit");
    conns = calloc((size_t)nconns, sizeof *conns);
    retry = calloc((size_t)nconns, sizeof *retry);
    srand((unsigned)getpid());
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    reset();
    connect_more();
    struct epoll_event evs[512];
    char cmd[256]; size_t cmdlen = 0;
    uint64_t next_keepalive = keepalive_every > 0 ? now_us() + (uint64_t)(keepalive_every * 1e6) : 0;
    for (;;) {
        int open_loop = mode == M_CHAT && sending && rate > 0;
        int n = epoll_wait(epfd, evs, 512, open_loop ? 1 : nretry ? 10 : 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                ssize_t r = read(0, cmd + cmdlen, sizeof cmd - 1 - cmdlen);
                if (r == 0) return 0;
                if (r > 0) {
                    cmdlen += (size_t)r; cmd[cmdlen] = 0;
                    char *nl;
                    while ((nl = strchr(cmd, '\n'))) {
                        *nl = 0;
                        if (on_command(cmd)) return 0;
                        memmove(cmd, nl + 1, cmdlen - (size_t)(nl + 1 - cmd) + 1);
                        cmdlen -= (size_t)(nl + 1 - cmd);
                    }
                }
                continue;
            }
            if (c->state == ST_DEAD) continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && c->state == ST_CONNECTING) { mark_dead(c); continue; }
            if (c->state == ST_CONNECTING && evs[i].events & EPOLLOUT) {
                want_out(c, 0);
                start_handshake(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT) flush_out(c);
            if (c->state != ST_DEAD && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int was_ready = c->ready;
                on_readable(c);
                if (mode == M_CHAT && sending && rate <= 0 && !was_ready && c->ready &&
                    c->state == ST_OPEN)
                    while (c->outstanding < window) send_chat(c, now_us());
            }
        }
        connect_more();
        if (mode == M_CHAT && sending && rate > 0) pace();
        if (next_keepalive && now_us() >= next_keepalive) {
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == ST_OPEN)
                    send_frame(&conns[i], keepalive_text ? 1 : 2, keepalive.data, keepalive.len);
            next_keepalive = now_us() + (uint64_t)(keepalive_every * 1e6);
        }
    }
}
