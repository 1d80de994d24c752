/*
 * tests/bench/sc_limits.c -- scenarios 8-10: the abuse limits of issue 15,
 * measured.  The test suite (tests/limits) asserts memory and progress; the
 * times and the memory figures of the issue live here.
 *
 *  flood (8, finding 4): 4 processes each pipeline --flood-requests
 *    (300,000) single-event appends of the ~200-byte body on one raw
 *    connection, without reading a reply until everything is sent or the
 *    daemon has stopped reading them for BLOCKED_MS; then they read every
 *    reply and check that all came, in order.  Figures: the daemon's peak
 *    RSS over the burst (VmHWM, reset before it), its RSS once every reply
 *    was read and the connections closed (settled, see rss_settle), the
 *    time of the burst, how many workers were pushed back.
 *  lazy-subs (9, finding 5): --lazy-events (810,000) events are stored;
 *    a writer's single-event append latency and a pinger's ping latency
 *    are measured alone, then again while --lazy-subs (200) connections
 *    each hold a subscription from the start and never read.  Figures:
 *    writer p50/p99 without and with, their ratio, ping p99, the daemon's
 *    RSS before, at its peak and after the subscribers closed, and its
 *    fell_behind counter.
 *  conns (10): --hold-conns (5,000) connections held open by one process:
 *    1/5 of them idle before hello, 1/10 "slowloris" (after hello, one byte
 *    of a ping frame per second each, round robin), the rest idle after
 *    hello.  Figures: ping p50/p99/worst of another client without and
 *    with them, the daemon's RSS with them, and the connections the daemon
 *    counts.
 *
 * Raw sockets (proto encoders, no client library) where the client library
 * would not let us misbehave: it always reads its replies.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "maos/proto.h"

#define BLOCKED_MS 500     /* a flood worker reads once not read for this long */
#define FLOOD_PROCS 4
#define RAW_REPLY_MAX (MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK)

/* ---- raw connections ------------------------------------------------------ */


static int send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Frame sb's bytes (a 4-byte length, then them) into out. */
static void frame_into(msgpack_sbuffer *out, const msgpack_sbuffer *sb)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)sb->size);
    msgpack_sbuffer_write(out, hdr, 4);
    msgpack_sbuffer_write(out, sb->data, sb->size);
}

static int raw_send(int fd, const msgpack_sbuffer *sb)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)sb->size);
    return send_all(fd, hdr, 4) || send_all(fd, sb->data, sb->size) ? -1 : 0;
}

/* The next frame within timeout_ms: 1 (valid until the next call), 0 closed,
 * -1 timeout or error. */
static int raw_recv(int fd, maos_reader *rd, maos_slice *fr, int timeout_ms)
{
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int rc = maos_reader_next(rd, fr);
        if (rc)
            return rc > 0 ? 1 : -1;
        uint64_t now = bench_now_ns();
        if (now >= end)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)((end - now) / 1000000u) + 1) < 0 && errno != EINTR)
            return -1;
        char *buf;
        long space = maos_reader_space(rd, &buf, 0);
        if (space <= 0)
            return -1;
        ssize_t k = recv(fd, buf, (size_t)space, MSG_DONTWAIT);
        if (k == 0)
            return 0;
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return 0;
        if (k > 0)
            maos_reader_commit(rd, (size_t)k);
    }
}

static int raw_hello(int fd, maos_reader *rd)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_enc_hello(&pk, 1, MAOS_PROTOCOL_VERSION, "maos-bench");
    int rc = raw_send(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    maos_slice fr;
    maos_reply rep;
    if (rc || raw_recv(fd, rd, &fr, 60000) != 1 || maos_reply_decode(fr.ptr, fr.len, &rep) ||
        !rep.ok)
        return -1;
    return 0;
}

/* ---- daemon memory -------------------------------------------------------------- */

static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl)) {
            kb = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Reset the peak RSS (VmHWM) of pid to its current RSS (Linux >= 4.0). */
static void hwm_reset(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* RSS once it stopped falling: sampled every 100 ms until it has not gone
 * down for 1 s (at most 10 s).  Memory given back after a burst shows
 * here; memory kept by the allocator does not. */
static double rss_settle_mib(pid_t pid)
{
    long last = bench_rss_kb(pid), low = last;
    uint64_t t0 = bench_now_ns(), since = t0;
    while (bench_now_ns() - t0 < 10000000000ull && bench_now_ns() - since < 1000000000ull) {
        bench_sleep_us(100000);
        last = bench_rss_kb(pid);
        if (last < low) {
            low = last;
            since = bench_now_ns();
        }
    }
    return (double)low / 1024;
}

/* ---- flood -------------------------------------------------------------------------- */

typedef struct flood_arg {
    const char *sock;
    uint64_t requests;
} flood_arg;

static int flood_worker(bench_worker *w)
{
    const flood_arg *a = w->arg;
    bench_wres *r = w->res;
    maos_reader rd;
    maos_reader_init(&rd, RAW_REPLY_MAX);
    int fd = bench_unix_connect(a->sock);
    if (fd < 0 || raw_hello(fd, &rd)) {
        bench_fail(r, "cannot connect/hello to %s", a->sock);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    msgpack_sbuffer out, body, req;
    msgpack_sbuffer_init(&out);
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&req);
    char stream[32];
    snprintf(stream, sizeof(stream), "flood-%d", w->idx);
    size_t off = 0;           /* bytes of out already sent */
    uint64_t encoded = 0, acked = 0;
    int reading = 0;
    bench_go(w);
    uint64_t t0 = bench_now_ns(), progress = t0;
    while (acked < a->requests && !r->errors) {
        /* keep about 256 KiB ready to send */
        while (encoded < a->requests && out.size - off < (256u << 10)) {
            if (off > (1u << 20)) { /* drop what was sent */
                memmove(out.data, out.data + off, out.size - off);
                out.size -= off;
                off = 0;
            }
            bench_data_msgpack(&body, w->idx, encoded);
            maos_event_in ev = {.type = {BENCH_EVENT_TYPE, sizeof(BENCH_EVENT_TYPE) - 1},
                                .data = {body.data, (uint32_t)body.size}};
            maos_append_in ap = {{stream, (uint32_t)strlen(stream)}, MAOS_EXPECT_ANY, 1, &ev};
            msgpack_packer pk;
            req.size = 0;
            msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
            maos_enc_append(&pk, 2 + encoded, &ap);
            frame_into(&out, &req);
            encoded++;
        }
        int pending = out.size > off;
        if (!pending)
            reading = 1;
        struct pollfd p = {.fd = fd, .events = (short)((pending ? POLLOUT : 0) |
                                                       (reading ? POLLIN : 0))};
        int pr = poll(&p, 1, 100);
        uint64_t now = bench_now_ns();
        if (pr < 0 && errno != EINTR) {
            bench_fail(r, "poll: %s", strerror(errno));
            break;
        }
        if (p.revents & (POLLERR | POLLHUP) && !(p.revents & POLLIN)) {
            bench_fail(r, "the daemon closed the connection after %llu replies",
                       (unsigned long long)acked);
            break;
        }
        if (p.revents & POLLOUT) {
            ssize_t k = send(fd, out.data + off, out.size - off, MSG_NOSIGNAL);
            if (k > 0) {
                off += (size_t)k;
                progress = now;
            } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                bench_fail(r, "send: %s", strerror(errno));
                break;
            }
        }
        if (!reading && pending && now - progress > BLOCKED_MS * 1000000ull) {
            reading = 1; /* the daemon stopped reading us: read to go on */
            r->busy++;
        }
        if (!reading || !(p.revents & POLLIN))
            continue;
        char *buf;
        long space = maos_reader_space(&rd, &buf, 0);
        ssize_t k = space > 0 ? recv(fd, buf, (size_t)space, 0) : -1;
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
            bench_fail(r, "the daemon closed the connection after %llu replies",
                       (unsigned long long)acked);
            break;
        }
        if (k > 0)
            maos_reader_commit(&rd, (size_t)k);
        maos_slice fr;
        while (maos_reader_next(&rd, &fr) == 1) {
            maos_reply rep;
            if (maos_reply_decode(fr.ptr, fr.len, &rep) || !rep.ok) {
                bench_fail(r, "reply %llu: not ok", (unsigned long long)acked);
                break;
            }
            if (rep.rid != 2 + acked) {
                bench_fail(r, "reply for rid %llu, want %llu (out of order)",
                           (unsigned long long)rep.rid, (unsigned long long)(2 + acked));
                break;
            }
            acked++;
        }
    }
    r->ops = r->events = acked;
    r->elapsed_ns = bench_now_ns() - t0;
    close(fd);
    maos_reader_free(&rd);
    msgpack_sbuffer_destroy(&out);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&req);
    return r->errors ? -1 : 0;
}

int bench_sc_flood(const bench_opts *o)
{
    if (o->socket) {
        bench_say("flood: skipped with --socket (it reads the daemon's memory)");
        return BENCH_SKIPPED;
    }
    double peak[64], after[64], secs[64], base[64];
    int n = 0, rc = 0;
    for (int rep = 0; rep < o->reps && rep < 64 && !rc; rep++) {
        bench_daemon d;
        rc = bench_daemon_open(&d, o, "flood", "sync");
        if (rc)
            return rc;
        flood_arg a = {.sock = d.sock, .requests = o->flood_requests};
        base[n] = (double)bench_rss_kb(d.pid) / 1024;
        hwm_reset(d.pid);
        bench_run run;
        rc = bench_spawn(FLOOD_PROCS, 0, flood_worker, &a, &run);
        peak[n] = (double)proc_status_kb(d.pid, "VmHWM:") / 1024;
        if (rc) {
            bench_say("flood: %s", run.err);
        } else {
            after[n] = rss_settle_mib(d.pid);
            secs[n] = run.elapsed_s;
            bench_say("flood rep %d/%d: %d x %llu pipelined appends in %.2f s "
                      "(%llu pushed back); daemon RSS %.1f MiB before, peak %.1f MiB, "
                      "%.1f MiB after",
                      rep + 1, o->reps, FLOOD_PROCS, (unsigned long long)o->flood_requests,
                      run.elapsed_s, (unsigned long long)run.busy, base[n], peak[n],
                      after[n]);
            n++;
        }
        bench_daemon_close(&d);
    }
    bench_report("flood", "maos", FLOOD_PROCS, "rss-before", "MiB", BENCH_LOWER, base, n);
    bench_report("flood", "maos", FLOOD_PROCS, "rss-peak", "MiB", BENCH_LOWER, peak, n);
    bench_report("flood", "maos", FLOOD_PROCS, "rss-after", "MiB", BENCH_LOWER, after, n);
    bench_report("flood", "maos", FLOOD_PROCS, "burst-time", "s", BENCH_LOWER, secs, n);
    return rc;
}

/* ---- lazy subscribers ------------------------------------------------------------- */

typedef struct op_arg {
    const char *sock;
    int ping; /* 1: ping, else append one event */
} op_arg;

/* One client doing one thing back to back for the run: append (one event
 * of the ~200-byte body, waiting for each reply) or ping. */
static int op_worker(bench_worker *w)
{
    const op_arg *a = w->arg;
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect");
        return -1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t end = bench_go(w);
    for (uint64_t k = 0;; k++) {
        uint64_t t0 = bench_now_ns();
        if (t0 >= end)
            break;
        int rc;
        if (a->ping) {
            rc = maos_ping(c);
        } else {
            bench_data_msgpack(&sb, w->idx, k);
            maos_event_spec ev = {.type = BENCH_EVENT_TYPE, .data = sb.data,
                                  .data_len = sb.size};
            rc = maos_append(c, "lazy-writer", MAOS_EXPECT_ANY, &ev, 1, NULL);
        }
        uint64_t t1 = bench_now_ns();
        if (rc) {
            bench_fail(r, "%s: %s", a->ping ? "ping" : "append", c->errstr);
            break;
        }
        bench_lat(r, t1 - t0);
        if (t1 < end)
            r->ops++;
    }
    msgpack_sbuffer_destroy(&sb);
    maos_free(c);
    return r->errors ? -1 : 0;
}

/* p50/p99 (ms) of one op alone for the run. */
static int measure(const bench_opts *o, const char *sock, int ping, double *p50,
                   double *p99, double *rate)
{
    op_arg a = {.sock = sock, .ping = ping};
    bench_run run;
    if (bench_spawn(1, o->seconds, op_worker, &a, &run)) {
        bench_say("%s: %s", ping ? "pinger" : "writer", run.err);
        return -1;
    }
    *p50 = run.p50_ms;
    *p99 = run.p99_ms;
    if (rate)
        *rate = (double)run.ops / o->seconds;
    return 0;
}

/*
 * A process holding n connections; what each does is set by kind(i):
 * 'p' connected, no hello; 'i' hello, then idle; 's' hello, then one byte
 * of a ping frame per round (round robin, one byte every round_us over all
 * 's' connections, so each sends ~1 byte/s with round_us = 1e6 / n_s);
 * 'S' hello, then subscribe to everything from the start, then never read.
 * Returns its pid once all are set (or -1), *release the fd to close to let
 * it go (it then closes everything and exits).
 */
typedef char (*kind_fn)(int i, int n);

static void holder_body(const char *sock, int n, kind_fn kind, int ready_fd, int go_fd)
{
    int *fds = calloc((size_t)n, sizeof(int));
    int ok = fds != NULL, n_s = 0;
    maos_reader rd;
    maos_reader_init(&rd, RAW_REPLY_MAX);
    for (int i = 0; ok && i < n; i++) {
        fds[i] = bench_unix_connect(sock);
        char k = kind(i, n);
        if (fds[i] < 0) {
            fprintf(stderr, "maos-bench: holder: connection %d: %s\n", i, strerror(errno));
            ok = 0;
            break;
        }
        if (k == 'p')
            continue;
        maos_reader_free(&rd);
        maos_reader_init(&rd, RAW_REPLY_MAX);
        if (raw_hello(fds[i], &rd)) {
            fprintf(stderr, "maos-bench: holder: hello on connection %d failed\n", i);
            ok = 0;
            break;
        }
        if (k == 's')
            n_s++;
        if (k != 'S')
            continue;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        maos_enc_subscribe(&pk, 2, NULL, MAOS_FROM_POSITION, 1);
        maos_slice fr;
        maos_reply rep;
        if (raw_send(fds[i], &sb) || raw_recv(fds[i], &rd, &fr, 60000) != 1 ||
            maos_reply_decode(fr.ptr, fr.len, &rep) || !rep.ok) {
            fprintf(stderr, "maos-bench: holder: subscribe on connection %d failed\n", i);
            ok = 0;
        }
        msgpack_sbuffer_destroy(&sb);
    }
    maos_reader_free(&rd);
    char b = ok ? 'y' : 'n';
    if (write(ready_fd, &b, 1) != 1)
        _exit(1);
    /* the slow ones: a ping frame, one byte at a time, round robin */
    int *slow = calloc((size_t)(n_s ? n_s : 1), sizeof(int));
    int k = 0;
    for (int i = 0; slow && i < n && k < n_s; i++)
        if (kind(i, n) == 's')
            slow[k++] = fds[i];
    msgpack_sbuffer ping, frame;
    msgpack_packer pk;
    msgpack_sbuffer_init(&ping);
    msgpack_sbuffer_init(&frame);
    msgpack_packer_init(&pk, &ping, msgpack_sbuffer_write);
    maos_enc_simple(&pk, 3, MAOS_OP_PING);
    frame_into(&frame, &ping);
    int round_ms = n_s ? 1000 / n_s : 1000;
    if (round_ms < 1)
        round_ms = 1;
    size_t at = 0; /* the byte of the frame this round of connections sends */
    int next = 0;
    char junk[4096];
    for (;;) {
        struct pollfd p = {.fd = go_fd, .events = POLLIN};
        if (poll(&p, 1, round_ms) != 0)
            break; /* released (EOF) */
        if (!ok || !n_s || !slow)
            continue;
        int fd = slow[next];
        if (send(fd, frame.data + at, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
            fprintf(stderr, "maos-bench: holder: slow connection: %s\n", strerror(errno));
            ok = 0;
        }
        while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
        }
        if (++next == n_s) {
            next = 0;
            at = (at + 1) % frame.size;
        }
    }
    free(slow);
    for (int i = 0; fds && i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    msgpack_sbuffer_destroy(&ping);
    msgpack_sbuffer_destroy(&frame);
    _exit(ok ? 0 : 1);
}

typedef struct holder_arg {
    const char *sock;
    int n;
    kind_fn kind;
} holder_arg;

static void holder_run(void *arg, int ready_fd, int go_fd)
{
    const holder_arg *h = arg;
    holder_body(h->sock, h->n, h->kind, ready_fd, go_fd);
}

static pid_t holder_start(const char *sock, int n, kind_fn kind, int *release)
{
    holder_arg h = {sock, n, kind};
    return bench_fork_holder(holder_run, &h, 300000, "the held connections", release);
}

static int holder_stop(pid_t pid, int release)
{
    close(release);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        bench_say("the connection holder failed");
        return -1;
    }
    return 0;
}

static char kind_sub(int i, int n)
{
    (void)i;
    (void)n;
    return 'S';
}

int bench_sc_lazy_subs(const bench_opts *o)
{
    if (o->socket) {
        bench_say("lazy-subs: skipped with --socket (it reads the daemon's memory)");
        return BENCH_SKIPPED;
    }
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "lazy-subs", "sync");
    if (rc)
        return rc;
    bench_load_spec l = {.sock = d.sock, .prefix = "lazy", .events = o->lazy_events,
                         .nproc = 2, .nstreams = 100};
    bench_say("lazy-subs: loading %llu events", (unsigned long long)o->lazy_events);
    if (bench_load(&l, NULL)) {
        bench_daemon_close(&d);
        return -1;
    }
    bench_daemon_settle(&d);
    double w50[64], w99[64], l50[64], l99[64], ratio[64], p99a[64], p99b[64];
    double rss0[64], peak[64], after[64], wrate[64], lrate[64], fb[64];
    int n = 0;
    for (int rep = 0; rep < o->reps && rep < 64 && !rc; rep++) {
        double x;
        if (measure(o, d.sock, 0, &w50[n], &w99[n], &wrate[n]) ||
            measure(o, d.sock, 1, &x, &p99a[n], NULL)) {
            rc = -1;
            break;
        }
        rss0[n] = (double)bench_rss_kb(d.pid) / 1024;
        hwm_reset(d.pid);
        int release;
        pid_t h = holder_start(d.sock, o->lazy_subs, kind_sub, &release);
        if (h < 0) {
            rc = -1;
            break;
        }
        if (measure(o, d.sock, 0, &l50[n], &l99[n], &lrate[n]) ||
            measure(o, d.sock, 1, &x, &p99b[n], NULL))
            rc = -1;
        maos_stats_info st = {0};
        bench_daemon_stats(&d, &st);
        peak[n] = (double)proc_status_kb(d.pid, "VmHWM:") / 1024;
        if (holder_stop(h, release))
            rc = -1;
        after[n] = rss_settle_mib(d.pid);
        if (rc)
            break;
        ratio[n] = w99[n] > 0 ? l99[n] / w99[n] : 0;
        fb[n] = (double)st.fell_behind;
        bench_say("lazy-subs rep %d/%d: writer p50/p99 %.2f/%.2f ms alone (%.0f/s), "
                  "%.2f/%.2f ms with %d subscribers that do not read (%.0f/s; p99 x%.2f); "
                  "ping p99 %.2f -> %.2f ms; RSS %.1f MiB, peak %.1f MiB, %.1f MiB after "
                  "they closed; %llu subscriptions, %llu live, fell_behind %llu",
                  rep + 1, o->reps, w50[n], w99[n], wrate[n], l50[n], l99[n], o->lazy_subs,
                  lrate[n], ratio[n], p99a[n], p99b[n], rss0[n], peak[n], after[n],
                  (unsigned long long)st.subscriptions,
                  (unsigned long long)st.subscriptions_live,
                  (unsigned long long)st.fell_behind);
        n++;
    }
    int s = o->lazy_subs;
    bench_report("lazy-subs", "maos", 0, "writer-p50", "ms", BENCH_LOWER, w50, n);
    bench_report("lazy-subs", "maos", 0, "writer-p99", "ms", BENCH_LOWER, w99, n);
    bench_report("lazy-subs", "maos", 0, "writer-rate", "appends/s", BENCH_HIGHER, wrate, n);
    bench_report("lazy-subs", "maos", 0, "ping-p99", "ms", BENCH_LOWER, p99a, n);
    bench_report("lazy-subs", "maos", s, "writer-p50", "ms", BENCH_LOWER, l50, n);
    bench_report("lazy-subs", "maos", s, "writer-p99", "ms", BENCH_LOWER, l99, n);
    bench_report("lazy-subs", "maos", s, "writer-rate", "appends/s", BENCH_HIGHER, lrate, n);
    bench_report("lazy-subs", "maos", s, "writer-p99-ratio", "x", BENCH_LOWER, ratio, n);
    bench_report("lazy-subs", "maos", s, "ping-p99", "ms", BENCH_LOWER, p99b, n);
    bench_report("lazy-subs", "maos", s, "rss-before", "MiB", BENCH_LOWER, rss0, n);
    bench_report("lazy-subs", "maos", s, "rss-peak", "MiB", BENCH_LOWER, peak, n);
    bench_report("lazy-subs", "maos", s, "rss-after-close", "MiB", BENCH_LOWER, after, n);
    bench_report("lazy-subs", "maos", s, "fell-behind", "", BENCH_NEUTRAL, fb, n);
    bench_daemon_close(&d);
    return rc;
}

/* ---- many connections ----------------------------------------------------------- */

static char kind_mix(int i, int n)
{
    /* the rest idle after hello, 1/10 slow, 1/5 idle before hello (last:
     * the daemon's hello timeout runs from their accept) */
    if (i >= n - n / 5)
        return 'p';
    if (i >= n - n / 5 - n / 10)
        return 's';
    return 'i';
}

int bench_sc_conns(const bench_opts *o)
{
    if (o->socket) {
        bench_say("conns: skipped with --socket (it configures its own daemon)");
        return BENCH_SKIPPED;
    }
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "conns", "sync");
    if (rc)
        return rc;
    /* room for them all (only max_connections: an older maosd, given with
     * --maosd for a comparison, refuses keys it does not know) */
    FILE *f = fopen(d.conf, "w");
    if (!f || fprintf(f, "[maosd]\nmax_connections = %d\n", o->hold_conns + 64) < 0) {
        bench_say("cannot write %s", d.conf);
        if (f)
            fclose(f);
        bench_daemon_close(&d);
        return -1;
    }
    fclose(f);
    if (bench_daemon_stop(&d) || bench_daemon_start(&d, o, 30000, NULL)) {
        bench_daemon_close(&d);
        return -1;
    }
    double a50[64], a99[64], aw[64], b50[64], b99[64], rss0[64], rss1[64], conns[64];
    int n = 0;
    for (int rep = 0; rep < o->reps && rep < 64 && !rc; rep++) {
        op_arg a = {.sock = d.sock, .ping = 1};
        bench_run run;
        if (bench_spawn(1, o->seconds, op_worker, &a, &run)) {
            bench_say("pinger: %s", run.err);
            rc = -1;
            break;
        }
        b50[n] = run.p50_ms;
        b99[n] = run.p99_ms;
        rss0[n] = (double)bench_rss_kb(d.pid) / 1024;
        int release;
        pid_t h = holder_start(d.sock, o->hold_conns, kind_mix, &release);
        if (h < 0) {
            rc = -1;
            break;
        }
        if (bench_spawn(1, o->seconds, op_worker, &a, &run)) {
            bench_say("pinger: %s", run.err);
            rc = -1;
        }
        a50[n] = run.p50_ms;
        a99[n] = run.p99_ms;
        aw[n] = run.worst_ms;
        rss1[n] = (double)bench_rss_kb(d.pid) / 1024;
        maos_stats_info st = {0};
        bench_daemon_stats(&d, &st);
        conns[n] = (double)st.connections;
        if (holder_stop(h, release))
            rc = -1;
        if (rc)
            break;
        bench_say("conns rep %d/%d: ping p50/p99 %.3f/%.3f ms alone; %.3f/%.3f ms (worst "
                  "%.1f ms) with %d connections held (%d before hello, %d slow); daemon "
                  "counts %llu; RSS %.1f -> %.1f MiB",
                  rep + 1, o->reps, b50[n], b99[n], a50[n], a99[n], aw[n], o->hold_conns,
                  o->hold_conns / 5, o->hold_conns / 10, (unsigned long long)st.connections,
                  rss0[n], rss1[n]);
        n++;
    }
    int c = o->hold_conns;
    bench_report("conns", "maos", 0, "ping-p50", "ms", BENCH_LOWER, b50, n);
    bench_report("conns", "maos", 0, "ping-p99", "ms", BENCH_LOWER, b99, n);
    bench_report("conns", "maos", 0, "rss", "MiB", BENCH_LOWER, rss0, n);
    bench_report("conns", "maos", c, "ping-p50", "ms", BENCH_LOWER, a50, n);
    bench_report("conns", "maos", c, "ping-p99", "ms", BENCH_LOWER, a99, n);
    bench_report("conns", "maos", c, "ping-worst", "ms", BENCH_LOWER, aw, n);
    bench_report("conns", "maos", c, "rss", "MiB", BENCH_LOWER, rss1, n);
    bench_report("conns", "maos", c, "connections", "", BENCH_NEUTRAL, conns, n);
    bench_daemon_close(&d);
    return rc;
}
