/*
 * anycode-relay: the sandbox's only way to AnyCode.
 *
 * AnyCode starts it with `docker exec` (stdin and stdout are pipes to AnyCode)
 * right after each container start. It listens on the sandbox's loopback and
 * carries every accepted connection over its own stdin/stdout, so the sandbox
 * needs no network route to the host:
 *   127.0.0.1:47777  AnyCode's agent hooks (Claude Code sends HTTP hooks to no
 *                    private address, so they go to loopback)
 *   127.0.0.1:3128   AnyCode's egress proxy (HTTP_PROXY/HTTPS_PROXY)
 *
 * Framing (crates/egress/src/frame.rs):
 *   [u32 BE connection id][u8 kind][u32 BE payload length][payload]
 *   kind 1 OPEN (payload: port, u16 BE; sandbox -> AnyCode), 2 DATA,
 *        3 END (no more data from the sender: TCP half-close),
 *        4 RESET (connection gone)
 *
 * Back-pressure: stdin is not read while a client socket has more than
 * SOCK_HIGH bytes waiting to be written to it, and client sockets are not read
 * while more than OUT_HIGH bytes wait for stdout. The framing has no window per
 * connection, so one client that stops reading (a download suspended with
 * Ctrl-Z) holds up AnyCode's traffic to every connection until it reads again.
 *
 * One static C program with one poll(2) loop: it starts in about a millisecond
 * and holds 0.8 MB of RSS when idle (120 KB of it its own; a connection whose
 * client does not read adds up to about 2 MiB), where the Node.js relay it
 * replaces took 0.12 s of CPU and 43-51 MB per sandbox (500 sandboxes restart their relays at once after
 * AnyCode restarts). Built in the image's own build (sandbox-image/Dockerfile),
 * so it matches the Docker host's CPU, and copied into dev container images
 * with the rest of /opt/anycode. Everything here runs as the sandbox's user
 * and is as untrusted as the rest of the sandbox: AnyCode's side
 * (crates/egress/src/relay.rs) checks every frame.
 *
 * Usage: anycode-relay [PORT...]   (default: 47777 3128)
 * Exit: 0 when AnyCode closes stdin or stdout, 1 when a port cannot be
 * listened on, 3 on a frame longer than MAX_PAYLOAD.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { K_OPEN = 1, K_DATA = 2, K_END = 3, K_RESET = 4 };

#define HEADER 9
#define MAX_PAYLOAD (1u << 20)  /* longest frame payload either side may send */
#define CHUNK 65536             /* largest DATA payload this side sends */
#define OUT_HIGH (1u << 20)     /* stdout backlog above which sockets are not read */
#define SOCK_HIGH (1u << 20)    /* a socket's backlog above which stdin is not read */
#define MAX_CONNS 1000          /* open connections at most; more wait in the backlog */
#define MAX_PORTS 8
#define LISTEN_TRIES 25         /* a previous relay may hold a port for a moment */

struct buf {
    unsigned char *p;
    size_t off, len, cap; /* bytes [off, len) are pending */
};

struct conn {
    int fd;           /* -1: a free slot */
    uint32_t id;
    int rd_eof;       /* the client's EOF was read and END sent */
    int wr_end;       /* AnyCode sent END: shut our write side once `out` drains */
    int wr_shut;      /* our write side is shut */
    struct buf out;   /* bytes for the client */
};

static struct buf out;         /* frames for stdout */
static struct buf in;          /* bytes from stdin, not yet parsed */
static struct conn conns[MAX_CONNS];
static int nconns;
static uint32_t next_id = 1;

static void die_oom(void) {
    static const char msg[] = "anycode-relay: out of memory\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(2);
}

static size_t pending(const struct buf *b) { return b->len - b->off; }

/* Room for n more bytes at b->p + b->len. */
static void reserve(struct buf *b, size_t n) {
    if (b->off > 0 && (b->off == b->len || b->off >= b->cap / 2)) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) die_oom();
    b->p = p;
    b->cap = cap;
}

static void consume(struct buf *b, size_t n) {
    b->off += n;
    if (b->off == b->len) {
        b->off = b->len = 0;
        /* Give a burst's memory back. */
        if (b->cap > 256 * 1024) {
            free(b->p);
            b->p = NULL;
            b->cap = 0;
        }
    }
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void frame(uint32_t id, int kind, const void *payload, uint32_t len) {
    reserve(&out, HEADER + len);
    unsigned char *h = out.p + out.len;
    put_u32(h, id);
    h[4] = (unsigned char)kind;
    put_u32(h + 5, len);
    if (len) memcpy(h + HEADER, payload, len);
    out.len += HEADER + len;
}

/* Writes what stdout takes now. AnyCode gone: exit. */
static void flush_stdout(void) {
    while (pending(&out)) {
        ssize_t n = write(1, out.p + out.off, pending(&out));
        if (n > 0) { consume(&out, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        _exit(0);
    }
}

static struct conn *find(uint32_t id) {
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0 && conns[i].id == id) return &conns[i];
    return NULL;
}

static void drop_conn(struct conn *c, int reset) {
    if (reset) frame(c->id, K_RESET, NULL, 0);
    close(c->fd);
    c->fd = -1;
    free(c->out.p);
    memset(&c->out, 0, sizeof c->out);
    nconns--;
}

/* Writes what the client takes now; shuts our side after AnyCode's END.
 * Returns 0 when the connection was dropped. */
static int flush_conn(struct conn *c) {
    while (pending(&c->out)) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) { consume(&c->out, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 1;
        drop_conn(c, 1);
        return 0;
    }
    if (c->wr_end && !c->wr_shut) {
        shutdown(c->fd, SHUT_WR);
        c->wr_shut = 1;
    }
    if (c->rd_eof && c->wr_shut) {
        drop_conn(c, 0);
        return 0;
    }
    return 1;
}

/* Reads one chunk from the client into a DATA frame (END at EOF). */
static void read_conn(struct conn *c) {
    reserve(&out, HEADER + CHUNK);
    ssize_t n;
    do n = recv(c->fd, out.p + out.len + HEADER, CHUNK, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        unsigned char *h = out.p + out.len;
        put_u32(h, c->id);
        h[4] = K_DATA;
        put_u32(h + 5, (uint32_t)n);
        out.len += HEADER + (size_t)n;
    } else if (n == 0) {
        c->rd_eof = 1;
        frame(c->id, K_END, NULL, 0);
        flush_conn(c);
    } else if (errno != EAGAIN) {
        drop_conn(c, 1);
    }
}

static int accept_paused; /* out of descriptors/memory: listeners rest a moment */
static void accept_on(int lfd, int port) {
    for (;;) {
        if (nconns >= MAX_CONNS) return;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) accept_paused = 1;
            return; /* EAGAIN/ECONNABORTED: the next turn */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (next_id == 0 || find(next_id)) next_id++;
        struct conn *c = NULL;
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i].fd < 0) { c = &conns[i]; break; }
        if (!c) { close(fd); return; } /* cannot happen: nconns < MAX_CONNS */
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->id = next_id++;
        nconns++;
        unsigned char p[2] = { (unsigned char)(port >> 8), (unsigned char)port };
        frame(c->id, K_OPEN, p, 2);
    }
}

/* Parses every whole frame from AnyCode. */
static void parse_stdin(void) {
    while (pending(&in) >= HEADER) {
        const unsigned char *h = in.p + in.off;
        uint32_t id = get_u32(h), len = get_u32(h + 5);
        int kind = h[4];
        if (len > MAX_PAYLOAD) {
            fprintf(stderr, "anycode-relay: a frame of %u bytes; stopping\n", len);
            exit(3);
        }
        if (pending(&in) < HEADER + (size_t)len) return;
        struct conn *c = find(id);
        if (c) {
            if (kind == K_DATA && !c->wr_end && len) {
                reserve(&c->out, len);
                memcpy(c->out.p + c->out.len, h + HEADER, len);
                c->out.len += len;
                flush_conn(c);
            } else if (kind == K_END) {
                c->wr_end = 1;
                flush_conn(c);
            } else if (kind == K_RESET) {
                /* Abort: the client sees ECONNRESET, not a clean EOF. */
                struct linger l = { 1, 0 };
                setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
                drop_conn(c, 0);
            }
        }
        consume(&in, HEADER + (size_t)len);
    }
}

static int listen_on(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = LISTEN_TRIES;; tries--) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1, e;
        if (fd < 0) {
            e = errno;
        } else {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 128) == 0) {
                fprintf(stderr, "anycode-relay: listening on 127.0.0.1:%d\n", port);
                return fd;
            }
            e = errno;
            close(fd);
        }
        if (e == EADDRINUSE && tries > 0) {
            struct timespec ts = { 0, 200 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        fprintf(stderr, "anycode-relay: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(e));
        exit(1);
    }
}

int main(int argc, char **argv) {
    int ports[MAX_PORTS], nports = 0;
    for (int i = 1; i < argc && nports < MAX_PORTS; i++) {
        long p = strtol(argv[i], NULL, 10);
        if (p > 0 && p < 65536) ports[nports++] = (int)p;
    }
    if (nports == 0) { ports[0] = 47777; ports[1] = 3128; nports = 2; }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);
    for (int i = 0; i < MAX_CONNS; i++) conns[i].fd = -1;
    int lfds[MAX_PORTS];
    for (int i = 0; i < nports; i++) lfds[i] = listen_on(ports[i]);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);

    /* pollfd slots: stdin, stdout, the listeners, then one per connection. */
    static struct pollfd pfds[2 + MAX_PORTS + MAX_CONNS];
    static struct conn *owner[2 + MAX_PORTS + MAX_CONNS];
    for (;;) {
        int stdin_ok = 1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i].fd >= 0 && pending(&conns[i].out) > SOCK_HIGH) { stdin_ok = 0; break; }
        int n = 0;
        pfds[n++] = (struct pollfd){ 0, stdin_ok ? POLLIN : 0, 0 };
        pfds[n++] = (struct pollfd){ 1, pending(&out) ? POLLOUT : 0, 0 };
        for (int i = 0; i < nports; i++)
            pfds[n++] = (struct pollfd){ lfds[i], nconns < MAX_CONNS && !accept_paused ? POLLIN : 0, 0 };
        int first_conn = n;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            if (c->fd < 0) continue;
            short ev = 0;
            if (!c->rd_eof && pending(&out) < OUT_HIGH) ev |= POLLIN;
            if (pending(&c->out)) ev |= POLLOUT;
            owner[n] = c;
            pfds[n++] = (struct pollfd){ c->fd, ev, 0 };
        }
        int paused = accept_paused;
        accept_paused = 0;
        if (poll(pfds, (nfds_t)n, paused ? 100 : -1) < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (pfds[0].revents) {
            reserve(&in, 65536);
            ssize_t r = read(0, in.p + in.len, 65536);
            if (r > 0) { in.len += (size_t)r; parse_stdin(); }
            else if (r == 0 || (errno != EAGAIN && errno != EINTR)) return 0; /* AnyCode closed the stream */
        }
        if (pfds[1].revents & (POLLERR | POLLHUP)) return 0; /* AnyCode stopped reading */
        for (int i = first_conn; i < n; i++) {
            struct conn *c = owner[i];
            short re = pfds[i].revents;
            /* Dropped this turn (a RESET from stdin). */
            if (!re || c->fd < 0) continue;
            if (re & POLLOUT) { if (!flush_conn(c)) continue; }
            if (re & POLLERR) { drop_conn(c, 1); continue; }
            /* OUT_HIGH again per read: many readable sockets in one turn stay bounded. */
            if (re & POLLIN) { if (pending(&out) < OUT_HIGH) read_conn(c); continue; }
            if (re & POLLHUP) {
                /* Both directions are gone (not polled for reading: stdout was full). */
                if (!c->rd_eof) read_conn(c);
                else drop_conn(c, !c->wr_shut);
            }
        }
        /* After the connections' turn, so no slot or descriptor was reused within it. */
        for (int i = 0; i < nports; i++)
            if (pfds[2 + i].revents & POLLIN) accept_on(lfds[i], ports[i]);
        flush_stdout();
    }
}
