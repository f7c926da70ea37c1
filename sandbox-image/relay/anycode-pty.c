/*
 * anycode-pty: a terminal's PTY held inside the sandbox.
 *
 * AnyCode runs each extra terminal (a shell tab, a dev container's setup) as
 *   docker exec (no TTY) anycode-pty COLS ROWS -- CMD [ARG...]
 * This program opens a PTY of its own, runs CMD on it as a new session (the
 * PTY is its controlling terminal: Ctrl-C, job control and SIGWINCH work as on
 * any terminal) and relays it over its stdin and stdout, which are pipes.
 *
 * Why: with a TTY exec, Docker's shim reads the PTY in the kernel's ~4 KiB
 * pieces and dockerd relays each piece on its own; a flood then costs Docker
 * about 28 ms of CPU per MB here (issue 14). Gathered into writes of up to
 * 64 KiB on a pipe it costs a third of that, and the terminal's process,
 * AnyCode and the viewer keep the rest of the machine.
 *
 * stdout: the line "ACPTY1\n" once the PTY and the process exist (AnyCode
 * falls back to a TTY exec when it does not come first), then the PTY's output
 * bytes, unchanged. Output is sent at once when it comes in small pieces
 * (echo, prompts); while it keeps coming it is gathered for at most
 * GATHER_US, into writes of at most OUT_CAP bytes.
 * stdin: frames [u8 kind][u32 BE payload length][payload]:
 *   kind 0 INPUT  bytes for the PTY (at most MAX_PAYLOAD)
 *   kind 1 RESIZE u16 BE columns, u16 BE rows
 * An unknown kind or an oversized frame ends the session (exit 3).
 *
 * Back-pressure both ways without blocking the other way: the PTY is not read
 * while output waits for stdout, and stdin is not read while input waits for
 * the PTY; a Ctrl-C still reaches the PTY while stdout is full.
 * stdin closed (AnyCode closed the terminal or is gone) or stdout gone: the
 * session gets SIGHUP, as when a terminal window closes. SIGHUP sent to this
 * program (AnyCode's hang-up of a closed terminal) is passed on the same way.
 *
 * Exit: the process's status (128 + signal number when a signal ended it) once
 * it has ended and its output is sent; 2 on bad arguments, 1 when no PTY or
 * process could be made, 3 on a bad frame. Everything here runs as the
 * sandbox's user and is as untrusted as the rest of the sandbox: AnyCode reads
 * its output as terminal output (crates/sandbox/src/ptyexec.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum { K_INPUT = 0, K_RESIZE = 1 };

#define HELLO "ACPTY1\n"
#define HEADER 5
#define MAX_PAYLOAD 65536          /* longest INPUT frame AnyCode sends */
#define OUT_CAP 65536              /* largest write to stdout */
#define SMALL 1024                 /* a read under this is interactive: send at once */
#define GATHER_US 2000             /* longest wait to gather sustained output */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char s = (unsigned char)sig;
    if (write(sig_pipe[1], &s, 1) < 0) { /* the pipe is full: a wake-up is already pending */ }
    errno = saved;
}

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Writes everything, waiting for the descriptor as needed (only at the end). */
static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {fd, POLLOUT, 0};
            poll(&pf, 1, 1000);
            continue;
        }
        return;
    }
}

static int parse_dim(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && !*end && v > 0 && v <= 10000) ? (int)v : -1;
}

static void set_size(int master, int cols, int rows) {
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_col = (unsigned short)cols;
    ws.ws_row = (unsigned short)rows;
    ioctl(master, TIOCSWINSZ, &ws);
}

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: anycode-pty COLS ROWS -- CMD [ARG...]\n");
        return 2;
    }
    int cols = parse_dim(argv[1]), rows = parse_dim(argv[2]);
    if (cols < 0 || rows < 0) {
        fprintf(stderr, "anycode-pty: bad size %s x %s\n", argv[1], argv[2]);
        return 2;
    }
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
        fprintf(stderr, "anycode-pty: no PTY: %s\n", strerror(errno));
        return 1;
    }
    const char *slave_name = ptsname(master);
    if (!slave_name) {
        fprintf(stderr, "anycode-pty: no PTY name: %s\n", strerror(errno));
        return 1;
    }
    set_size(master, cols, rows);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "anycode-pty: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "anycode-pty: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        /* The process: a new session with the PTY as its controlling terminal. */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        setsid();
        int slave = open(slave_name, O_RDWR);
        if (slave < 0) _exit(1);
        ioctl(slave, TIOCSCTTY, 0);
        dup2(slave, 0);
        dup2(slave, 1);
        dup2(slave, 2);
        if (slave > 2) close(slave);
        execvp(argv[4], argv + 4);
        dprintf(2, "anycode-pty: %s: %s\r\n", argv[4], strerror(errno));
        _exit(127);
    }

    set_nonblock(0);
    set_nonblock(1);
    set_nonblock(master);
    write_all(1, (const unsigned char *)HELLO, sizeof HELLO - 1);

    static unsigned char out[OUT_CAP];
    size_t out_len = 0, out_off = 0;
    static unsigned char in[HEADER + MAX_PAYLOAD];
    size_t in_len = 0;               /* bytes of `in` read from stdin */
    size_t pty_off = 0, pty_end = 0; /* INPUT payload in `in` still to write to the PTY */
    int stdin_open = 1, stdout_open = 1, master_open = 1, hung_up = 0;
    int status = 0, exited = 0;

    for (;;) {
        if (!exited) {
            int st;
            pid_t r = waitpid(child, &st, WNOHANG);
            if (r == child) {
                exited = 1;
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
        if ((!stdin_open || !stdout_open) && !hung_up && !exited) {
            kill(-child, SIGHUP);
            hung_up = 1;
        }
        if (exited) {
            /* Send what the PTY still holds, then end. */
            if (stdout_open) {
                write_all(1, out + out_off, out_len - out_off);
                for (;;) {
                    ssize_t r = master_open ? read(master, out, sizeof out) : -1;
                    if (r <= 0) break;
                    write_all(1, out, (size_t)r);
                }
            }
            return status;
        }

        struct pollfd fds[4];
        int nfds = 0, i_sig, i_in = -1, i_master = -1;
        fds[nfds] = (struct pollfd){sig_pipe[0], POLLIN, 0};
        i_sig = nfds++;
        int want_master = 0;
        if (master_open && out_len == 0 && stdout_open) want_master |= POLLIN;
        if (master_open && pty_off < pty_end) want_master |= POLLOUT;
        if (want_master) { fds[nfds] = (struct pollfd){master, (short)want_master, 0}; i_master = nfds++; }
        if (stdin_open && pty_off == pty_end) { fds[nfds] = (struct pollfd){0, POLLIN, 0}; i_in = nfds++; }
        if (stdout_open && out_len > 0) fds[nfds++] = (struct pollfd){1, POLLOUT, 0};
        if (poll(fds, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (fds[i_sig].revents) {
            unsigned char s[64];
            ssize_t n = read(sig_pipe[0], s, sizeof s);
            for (ssize_t k = 0; k < n; k++)
                if (s[k] == SIGHUP) kill(-child, SIGHUP);
        }
        /* Input first: it never waits behind output. */
        if (i_master >= 0 && (fds[i_master].revents & (POLLOUT | POLLERR)) && pty_off < pty_end) {
            ssize_t w = write(master, in + pty_off, pty_end - pty_off);
            if (w > 0) pty_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) pty_off = pty_end;
        }
        if (i_in >= 0 && fds[i_in].revents) {
            ssize_t r = read(0, in + in_len, sizeof in - in_len);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) stdin_open = 0;
            else if (r > 0) in_len += (size_t)r;
        }
        /* Frames: RESIZE applies at once; an INPUT payload is written to the PTY
         * before the next frame is looked at. */
        while (pty_off == pty_end && in_len >= HEADER) {
            uint32_t len = ((uint32_t)in[1] << 24) | ((uint32_t)in[2] << 16) | ((uint32_t)in[3] << 8) | in[4];
            if ((in[0] != K_INPUT && in[0] != K_RESIZE) || len > MAX_PAYLOAD || (in[0] == K_RESIZE && len != 4)) {
                fprintf(stderr, "anycode-pty: bad frame (kind %u, %u bytes)\n", in[0], len);
                kill(-child, SIGHUP);
                return 3;
            }
            if (in_len < HEADER + len) break;
            if (in[0] == K_RESIZE) {
                int c = (in[5] << 8) | in[6], r = (in[7] << 8) | in[8];
                if (c > 0 && r > 0) set_size(master, c, r);
                memmove(in, in + HEADER + len, in_len - HEADER - len);
                in_len -= HEADER + len;
                continue;
            }
            ssize_t w = master_open ? write(master, in + HEADER, len) : (ssize_t)len;
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) w = 0;
            if (w < 0) w = len;
            if ((size_t)w < len) {
                /* The rest waits for the PTY; the frame stays at the front. */
                pty_off = HEADER + (size_t)w;
                pty_end = HEADER + len;
                break;
            }
            memmove(in, in + HEADER + len, in_len - HEADER - len);
            in_len -= HEADER + len;
        }
        if (pty_off == pty_end && pty_end > 0) {
            /* A partly written INPUT frame is done: drop it from the front. */
            memmove(in, in + pty_end, in_len - pty_end);
            in_len -= pty_end;
            pty_off = pty_end = 0;
            continue;
        }
        if (i_master >= 0 && (fds[i_master].revents & (POLLIN | POLLHUP | POLLERR)) && out_len == 0) {
            long long start = now_us();
            for (;;) {
                ssize_t r = read(master, out + out_len, sizeof out - out_len);
                if (r > 0) {
                    out_len += (size_t)r;
                    if (out_len == sizeof out || (size_t)r < SMALL) break;
                    long long left = GATHER_US - (now_us() - start);
                    if (left <= 0) break;
                    struct pollfd pf = {master, POLLIN, 0};
                    if (poll(&pf, 1, (int)((left + 999) / 1000)) <= 0) break;
                    continue;
                }
                if (r < 0 && errno == EINTR) continue;
                if (r < 0 && errno == EAGAIN) break;
                /* EIO: every holder of the PTY's other end closed it. */
                master_open = 0;
                break;
            }
        }
        if (out_len > 0 && stdout_open) {
            ssize_t w = write(1, out + out_off, out_len - out_off);
            if (w > 0) out_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) stdout_open = 0;
            if (out_off == out_len) out_len = out_off = 0;
        }
        if (!stdout_open) out_len = out_off = 0;
    }
}
