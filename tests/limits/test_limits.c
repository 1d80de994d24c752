/*
 * tests/limits/test_limits.c -- abuse limits (issue 15, findings 4, 5 and 9
 * and "Abuse limits, stated and tested"), against a real maosd.
 *
 *  - many connections: N_CONNS held open at once, N_PREHELLO of them idle
 *    before hello and N_SLOW "slowloris" ones that send one byte of a ping
 *    frame per tick of the test's loop; the daemon answers another client's
 *    ping every tick, its memory stays within the README's per-connection
 *    bound, the slow pings are answered once whole, and the idle pre-hello
 *    ones are closed after hello_timeout_ms with an error frame and the
 *    hello_timeouts stat;
 *  - pipelining: N_PIPELINED appends on one connection without reading a
 *    reply: the daemon stops reading it (connections_paused, and bytes_in
 *    does not move while it is paused), its memory is bounded by the output
 *    cap (see pipeline_bound), and once the client reads, every request is
 *    answered, in order;
 *  - subscribers that do not read: N_LAZY subscriptions from the start of a
 *    LAZY_LOG-event log with a small daemon-wide budget while a writer
 *    appends: the writer finishes, memory stays within the budget's bound,
 *    and closing them gives the memory back;
 *  - live subscribers that do not read fall back to disk positions
 *    (fell_behind) once the daemon is over its budget, memory stays bounded,
 *    and they get every event afterwards, in order;
 *  - hello_timeout_ms on its own, per-uid limits and the reserve for root
 *    (run as root only: they need other uids), and range errors of the new
 *    settings.
 *
 * Memory bounds are generous and explained where they are computed; no
 * assertion is about time.  Counts are the issue's; MAOS_LIMITS_DIV=N
 * divides the big ones (N_CONNS, N_PIPELINED, LAZY_LOG, ...) for a quick
 * run; under ASan the default divisor is 2 (the file must stay within a
 * few tens of seconds there too, see meson.build).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "subs_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* many connections */
#define N_CONNS 5000
#define N_PREHELLO 1000
#define N_SLOW 500
#define SLOW_TICKS 64            /* bytes each slow connection sends */
#define CONNS_HELLO_TIMEOUT_MS 3000
/* pipelining */
#define N_PIPELINED 100000       /* over PIPE_CONNS connections */
#define PIPE_CONNS 4
#define PIPE_CAP_MB 1
#define PIPE_BIG 8               /* appends of PIPE_BIG_EVENTS events of ~1 KiB */
#define PIPE_BIG_EVENTS 10000    /* that keep the commit thread busy */
#define PIPE_MIN_COST 1024       /* a queued one-event append holds at least this */
/* subscribers that do not read */
#define N_LAZY 200
#define LAZY_LOG 500000          /* events of ~400 bytes: ~200 MB */
#define LAZY_BUDGET_MB 16
#define LAZY_WRITES 2000
/* live subscribers over the budget */
#define N_LIVE 20
#define LIVE_BUDGET_MB 8
#define LIVE_BATCHES 20          /* appends of LIVE_BATCH events of ~1 KiB */
#define LIVE_BATCH 1000

#define MIB 1024L                /* in KiB, as mt_rss_kb reports */

static int g_div = 1;

static long scaled(long n)
{
    return n / g_div > 0 ? n / g_div : 1;
}

static void limits_init(void)
{
    const char *e = getenv("MAOS_LIMITS_DIV");
    g_div = e && atoi(e) > 0 ? atoi(e) : UNDER_ASAN ? 2 : 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ASan's allocator costs more per allocation and keeps freed memory in a
 * quarantine: bounds get a third more, and the quarantine is small. */
static long asan_room(long kb)
{
    return UNDER_ASAN ? kb + kb / 3 : kb;
}

static mt_daemon *daemon_with(const char *const *args)
{
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    for (int i = 0; args && args[i]; i++)
        mt_daemon_add_arg(d, args[i]);
    if (UNDER_ASAN) {
        const char *a = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts, "%s%squarantine_size_mb=16", a && *a ? a : "",
                 a && *a ? ":" : "");
        mt_daemon_setenv(d, "ASAN_OPTIONS", opts);
    }
    mt_daemon_up(d);
    return d;
}

/* The daemon's RSS once it has served a request: the code paths of
 * serving are resident (a condition, not a sleep). */
static long rss_serving(mt_daemon *d, su_conn *probe)
{
    maos_stats st;
    su_stats(probe, &st);
    long kb = mt_rss_kb(d->pid);
    MT_CMP_INT(kb, >, 0);
    return kb;
}

/* Framed bytes of one request (4-byte length + sb). */
static void frame_append(msgpack_sbuffer *out, const msgpack_sbuffer *sb)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)sb->size);
    msgpack_sbuffer_write(out, hdr, 4);
    msgpack_sbuffer_write(out, sb->data, sb->size);
}

/* Connect and send hello; the reply's code (0: ok), the fd kept open in
 * *fd (-1 when the connect itself failed). */
static int hello_code(const char *sock, int *fd)
{
    *fd = mt_connect(sock);
    if (*fd < 0)
        return MAOS_ECONNECT;
    msgpack_sbuffer sb, fr;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&fr);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_enc_hello(&pk, 1, MAOS_PROTOCOL_VERSION, "limits-test");
    frame_append(&fr, &sb);
    /* a refused connection may be closed before the hello is sent: its
     * error frame is read all the same */
    (void)mt_send_all(*fd, fr.data, fr.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&fr);
    char *f;
    uint32_t len;
    if (mt_recv_frame(*fd, &f, &len, SU_REPLY_MAX, 10000) != 1)
        return MAOS_ECLOSED;
    maos_reply rep;
    int code = maos_reply_decode(f, len, &rep) ? MAOS_EPROTO : rep.ok ? 0 : rep.code;
    free(f);
    return code;
}

/* ---- many connections, idle before hello, slowloris ------------------------- */

/*
 * Per-connection memory the README states: ~2 KiB for an idle connection
 * (the struct, libuv's handle, allocator overhead; measured ~1.3 KiB), plus
 * for a slow one the reader buffer of its partial frame (16 KiB, the
 * reader's smallest).  The bound takes twice that, and 24 MiB for the
 * test's own pings and stats and the allocator's slack.
 */
#define IDLE_CONN_KB 2
#define PARTIAL_FRAME_KB 32

static void test_many_connections(void **state)
{
    (void)state;
    long n = scaled(N_CONNS), n_pre = scaled(N_PREHELLO), n_slow = scaled(N_SLOW);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (long)rl.rlim_cur < n + 256) {
        /* both ends need a descriptor per connection: scale to the limit */
        long m = (long)rl.rlim_cur - 256;
        MT_CMP_INT(m, >=, 100);
        print_message("RLIMIT_NOFILE %ld: %ld connections instead of %ld\n",
                      (long)rl.rlim_cur, m, n);
        n_pre = n_pre * m / n;
        n_slow = n_slow * m / n;
        n = m;
    }
    long n_idle = n - n_pre - n_slow;
    char maxc[32], hto[32];
    snprintf(maxc, sizeof maxc, "%ld", n + 64);
    snprintf(hto, sizeof hto, "%d", CONNS_HELLO_TIMEOUT_MS);
    const char *args[] = {"--durability", "none", "--max-connections", maxc,
                          "--hello-timeout-ms", hto, NULL};
    mt_daemon *d = daemon_with(args);
    su_conn *probe = su_open(d->sock);
    long rss0 = rss_serving(d, probe);

    su_conn **idle = calloc((size_t)n_idle, sizeof *idle);
    su_conn **slow = calloc((size_t)n_slow, sizeof *slow);
    int *pre = calloc((size_t)n_pre, sizeof *pre);
    MT_TRUE(idle && slow && pre);
    for (long i = 0; i < n_idle; i++)
        idle[i] = su_open(d->sock);
    for (long i = 0; i < n_slow; i++)
        slow[i] = su_open(d->sock);
    /* the pre-hello ones last: the hello timeout runs from their accept */
    for (long i = 0; i < n_pre; i++) {
        pre[i] = mt_connect(d->sock);
        if (pre[i] < 0)
            MT_FAIL("connection %ld before hello: %s", i, strerror(errno));
    }
    maos_stats st;
    su_stats(probe, &st);
    print_message("%ld connections open (%ld idle after hello, %ld slow, %ld before "
                  "hello); the daemon counts %llu, %llu timed out without hello\n",
                  n, n_idle, n_slow, n_pre, (unsigned long long)st.connections,
                  (unsigned long long)st.hello_timeouts);
    /* every one of them was accepted (a pre-hello one may already have
     * timed out on a slow machine: then it is counted there) */
    MT_EQ_U64(st.connections + st.hello_timeouts, (uint64_t)n + 1);
    MT_EQ_U64(st.connections_refused, 0);
    long bound = rss0 + asan_room(n * IDLE_CONN_KB + n_slow * PARTIAL_FRAME_KB + 24 * MIB);
    long rss1 = mt_rss_kb(d->pid);
    print_message("daemon RSS %ld KiB serving, %ld KiB with them (bound %ld KiB)\n", rss0,
                  rss1, bound);
    if (!MT_TSAN && rss1 > bound) /* TSan: shadow memory counts in RSS */
        MT_FAIL("daemon RSS %ld KiB with %ld connections, over the bound %ld KiB", rss1, n,
                bound);

    /* slowloris: one byte of a ping frame per slow connection per tick;
     * another client's ping is answered every tick */
    msgpack_sbuffer sb, ping;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&ping);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_enc_simple(&pk, 7, MAOS_OP_PING);
    frame_append(&ping, &sb);
    long pings_each = SLOW_TICKS / (long)ping.size;
    for (int tick = 0; tick < SLOW_TICKS; tick++) {
        for (long i = 0; i < n_slow; i++)
            if (mt_send_all(slow[i]->fd, ping.data + tick % ping.size, 1))
                MT_FAIL("slow connection %ld: send: %s", i, strerror(errno));
        su_ping(probe);
    }
    /* each slow connection completed pings_each pings: all answered */
    for (long i = 0; i < n_slow; i++)
        for (long k = 0; k < pings_each; k++) {
            maos_reply rep;
            char *f = su_wait_reply(slow[i], 7, &rep, 30000);
            if (!rep.ok)
                MT_FAIL("slow connection %ld ping %ld: %d (%s)", i, k, rep.code,
                        maos_err_name(rep.code));
            free(f);
        }
    print_message("%d ticks: %ld probe pings and %ld x %ld slow pings answered\n",
                  SLOW_TICKS, (long)SLOW_TICKS, n_slow, pings_each);

    /* the idle pre-hello ones are closed after the hello timeout */
    int64_t deadline = mt_now_us() + 60000000;
    do {
        su_stats(probe, &st);
        if (st.hello_timeouts >= (uint64_t)n_pre)
            break;
        mt_sleep_ms(20); /* polling a condition, with a deadline */
    } while (mt_now_us() < deadline);
    MT_EQ_U64(st.hello_timeouts, (uint64_t)n_pre);
    for (long i = 0; i < n_pre; i++) {
        char *f;
        uint32_t len;
        int r = mt_recv_frame(pre[i], &f, &len, SU_REPLY_MAX, 10000);
        if (r != 1)
            MT_FAIL("pre-hello connection %ld: no error frame before the close (%d)", i, r);
        maos_reply rep;
        MT_EQ_INT(maos_reply_decode(f, len, &rep), 0);
        MT_EQ_ERR(rep.code, MAOS_EHELLO_REQUIRED);
        free(f);
        MT_EQ_INT(mt_wait_closed(pre[i], 10000), 1);
        close(pre[i]);
    }
    su_stats(probe, &st);
    MT_EQ_U64(st.connections, (uint64_t)(n - n_pre + 1));
    long hwm = mt_hwm_kb(d->pid);
    print_message("after the timeouts: %llu connections; VmHWM %ld KiB\n",
                  (unsigned long long)st.connections, hwm);
    if (!MT_TSAN && hwm > bound)
        MT_FAIL("daemon VmHWM %ld KiB over the bound %ld KiB", hwm, bound);
    for (long i = 0; i < n_idle; i++)
        su_close(idle[i]);
    for (long i = 0; i < n_slow; i++)
        su_close(slow[i]);
    free(idle);
    free(slow);
    free(pre);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&ping);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- pipelining without reading replies --------------------------------------- */

/* Send what is pending without blocking: bytes sent, 0 when the socket
 * takes nothing now. */
static size_t send_some(int fd, const char *p, size_t n)
{
    if (!n)
        return 0;
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && errno != EAGAIN && errno != EINTR)
        MT_FAIL("send: %s", strerror(errno));
    return k > 0 ? (size_t)k : 0;
}

/*
 * The bound of the pipelining test, above the RSS while serving:
 *   PIPE_CONNS x cap   what the connections hold (their load is capped)
 * + PIPE_CONNS x cap   one commit group built from their queued writes:
 *                      RocksDB's batch of its records and index keys
 * + 1 KiB per event    written: RocksDB's memtables (skiplist entries of
 *                      the record and its index keys; ~600 bytes measured)
 * + 24 MiB             reader buffers, allocator slack, the probe's
 *                      requests.
 * The daemon of finding 4 counted frame bytes only and gave each request
 * an 8 KiB records buffer: its queue alone took ~40x the cap.
 */
static long pipeline_bound(long rss0, uint64_t events)
{
    return rss0 + asan_room(2 * PIPE_CONNS * PIPE_CAP_MB * MIB + (long)events + 24 * MIB);
}

/* An append of n events (su_enc_append stops at 256). */
static void enc_append_n(msgpack_sbuffer *sb, uint64_t rid, const char *stream,
                         const su_ev_in *evs, size_t n)
{
    maos_event_in *in = calloc(n, sizeof *in);
    MT_TRUE(in != NULL);
    for (size_t i = 0; i < n; i++) {
        in[i].type = su_s(evs[i].type);
        in[i].data = (maos_slice){evs[i].data, (uint32_t)evs[i].data_len};
    }
    maos_append_in a = {su_s(stream), MAOS_EXPECT_ANY, (uint32_t)n, in};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    MT_EQ_INT(maos_enc_append(&pk, rid, &a), 0);
    free(in);
}

typedef struct piper {
    su_conn *c;
    msgpack_sbuffer all; /* its requests, framed */
    size_t off;          /* bytes of them sent */
    uint64_t next;       /* rid of the next reply */
} piper;

/* Read the replies waiting on one connection (checked: ok, in order, the
 * count per request). */
static void pipe_read(piper *p, int j, uint64_t per, int timeout_ms)
{
    maos_slice fr;
    for (int r; (r = su_recv(p->c, timeout_ms, &fr)) != -1; timeout_ms = 0) {
        if (r == 0)
            MT_FAIL("connection %d: closed after %llu replies", j,
                    (unsigned long long)(p->next - 2));
        maos_reply rep;
        MT_EQ_INT(maos_reply_decode(fr.ptr, fr.len, &rep), 0);
        if (!rep.ok)
            MT_FAIL("connection %d reply %llu: %d (%s)", j, (unsigned long long)rep.rid,
                    rep.code, maos_err_name(rep.code));
        if (rep.rid != p->next)
            MT_FAIL("connection %d: reply for rid %llu, want %llu (out of order)", j,
                    (unsigned long long)rep.rid, (unsigned long long)p->next);
        MT_EQ_U64(rep.result.count, per);
        MT_EQ_U64(rep.result.first_version, (p->next - 2) * per);
        p->next++;
    }
}

/* Fill every connection's socket: 1 when any of them took something.  The
 * last one (n - 1 == PIPE_CONNS) is the big appender, a client that reads
 * its replies. */
static int pipe_send(piper *p, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++)
        for (size_t k; (k = send_some(p[i].c->fd, p[i].all.data + p[i].off,
                                      p[i].all.size - p[i].off));) {
            p[i].off += k;
            any = 1;
        }
    if (n > PIPE_CONNS)
        pipe_read(&p[PIPE_CONNS], PIPE_CONNS, PIPE_BIG_EVENTS, 0);
    return any;
}

/*
 * PIPE_CONNS connections pipeline N_PIPELINED one-event appends in all, and
 * another one PIPE_BIG appends of PIPE_BIG_EVENTS events, which keep the
 * commit thread busy a while each: meanwhile the small ones queue up to
 * their caps.  What a cap lets queue shows in commit_max_group (the
 * largest group takes everything queued): at most cap / PIPE_MIN_COST + 1
 * per connection, where a cap of frame bytes (finding 4) lets ~4x more in.
 */
static void test_pipeline_cap(void **state)
{
    (void)state;
    long n = scaled(N_PIPELINED) / PIPE_CONNS; /* per connection */
    char cap[16];
    snprintf(cap, sizeof cap, "%d", PIPE_CAP_MB);
    /* durability sync: the commit thread's fsyncs let a queue build */
    const char *args[] = {"--max-output-mb", cap, NULL};
    mt_daemon *d = daemon_with(args);
    su_conn *probe = su_open(d->sock);
    long rss0 = rss_serving(d, probe);

    /* appends of one ~200-byte event, rids 2.., each to its own stream;
     * the last connection: the big appends */
    piper p[PIPE_CONNS + 1];
    msgpack_sbuffer sb, data;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&data);
    p[PIPE_CONNS].c = su_open(d->sock);
    p[PIPE_CONNS].off = 0;
    p[PIPE_CONNS].next = 2;
    msgpack_sbuffer_init(&p[PIPE_CONNS].all);
    su_mk_data(&data, 9, 0, 1000);
    su_ev_in *big = calloc(PIPE_BIG_EVENTS, sizeof *big);
    MT_TRUE(big != NULL);
    for (int i = 0; i < PIPE_BIG_EVENTS; i++)
        big[i] = (su_ev_in){"Big", data.data, data.size};
    for (int k = 0; k < PIPE_BIG; k++) {
        sb.size = 0;
        enc_append_n(&sb, 2 + (uint64_t)k, "big-1", big, PIPE_BIG_EVENTS);
        frame_append(&p[PIPE_CONNS].all, &sb);
    }
    free(big);
    for (int j = 0; j < PIPE_CONNS; j++) {
        char stream[32];
        snprintf(stream, sizeof stream, "pipe-%d", j);
        p[j].c = su_open(d->sock);
        p[j].off = 0;
        p[j].next = 2;
        msgpack_sbuffer_init(&p[j].all);
        for (long i = 0; i < n; i++) {
            su_mk_data(&data, (uint64_t)j, (uint64_t)i, 160);
            su_ev_in ev = {"Piped", data.data, data.size};
            sb.size = 0;
            su_enc_append(&sb, 2 + (uint64_t)i, stream, &ev, 1);
            frame_append(&p[j].all, &sb);
        }
    }
    print_message("%d connections x %ld appends, %zu bytes of frames each\n", PIPE_CONNS, n,
                  p[0].all.size);

    /* Send without reading until the daemon has stopped reading them for
     * good.  Paused, a connection may still have writes at the commit
     * thread, whose completion can bring it under half its cap again; once
     * it is paused with none left, only its unsent replies hold it, and
     * they never drain: the client does not read.  So: stats (all paused),
     * an append on the probe (the commit thread answers in order, so every
     * write dispatched before it is done when it is answered), stats
     * again: all still paused, and no request dispatched in between but
     * the probe's two (`requests` counts every request). */
    maos_stats s1, s2;
    su_ev_in bev = {"Barrier", NULL, 0};
    uint64_t n_barrier = 0; /* events the probe appended */
    int64_t deadline = mt_now_us() + 120000000;
    for (;;) {
        if (pipe_send(p, PIPE_CONNS + 1))
            continue;
        su_stats(probe, &s1);
        MT_EQ_ERR(su_append(probe, "barrier-1", &bev, 1, NULL), 0);
        n_barrier++;
        su_stats(probe, &s2);
        if (s1.connections_paused == PIPE_CONNS && s2.connections_paused == PIPE_CONNS &&
            s2.requests == s1.requests + 2 && p[PIPE_CONNS].next == 2 + PIPE_BIG)
            break; /* (and the big appends are all answered) */
        int all_sent = 1;
        for (int j = 0; j < PIPE_CONNS; j++)
            all_sent &= p[j].off == p[j].all.size;
        if (all_sent)
            MT_FAIL("all requests went in without the daemon pausing the connections "
                    "(paused %llu)",
                    (unsigned long long)s2.connections_paused);
        if (mt_now_us() > deadline)
            MT_FAIL("the daemon never paused the connections for good (paused %llu)",
                    (unsigned long long)s2.connections_paused);
        struct pollfd pf = {.fd = p[0].c->fd, .events = POLLOUT};
        poll(&pf, 1, 10);
    }
    /* not read while over the cap: fill the sockets (the daemon's last
     * reads before the pause made room), then over more requests on the
     * probe the daemon takes nothing more from them (requests grows by
     * the probe's own, bytes_in by their frames: the same each round),
     * and the sockets take nothing more either */
    pipe_send(p, PIPE_CONNS + 1);
    /* Every round's probe frames must be the same size: keep their rids
     * inside one msgpack integer width (uint16 here, uint32 past it). */
    probe->next_rid = probe->next_rid < 1000 ? 1000
                      : probe->next_rid < 65000 ? probe->next_rid : 70000;
    uint64_t round_in = 0;
    for (int i = 0; i < 5; i++) {
        maos_stats s3;
        su_ping(probe);
        su_stats(probe, &s3);
        MT_EQ_U64(s3.connections_paused, PIPE_CONNS);
        MT_EQ_U64(s3.requests, s2.requests + 2);
        MT_EQ_U64(s3.head_position, s2.head_position);
        if (i && s3.bytes_in - s2.bytes_in != round_in)
            MT_FAIL("bytes_in grew by %llu, the probe sent %llu: a connection was read",
                    (unsigned long long)(s3.bytes_in - s2.bytes_in),
                    (unsigned long long)round_in);
        round_in = s3.bytes_in - s2.bytes_in;
        MT_EQ_INT(pipe_send(p, PIPE_CONNS), 0);
        s2 = s3;
    }
    uint64_t taken = s2.head_position - n_barrier - (uint64_t)PIPE_BIG * PIPE_BIG_EVENTS;
    /* the largest group: what the small ones had queued, plus one big
     * append and one barrier */
    uint64_t max_group = (uint64_t)PIPE_CONNS * ((PIPE_CAP_MB << 20) / PIPE_MIN_COST + 1) + 2;
    print_message("largest commit group %llu requests (at most %llu)\n",
                  (unsigned long long)s2.commit_max_group, (unsigned long long)max_group);
    MT_CMP_INT(s2.commit_max_group, <=, max_group);
    long hwm = mt_hwm_kb(d->pid), bound = pipeline_bound(rss0, s2.head_position);
    print_message("paused after %llu of %ld requests taken; daemon RSS %ld KiB serving, "
                  "VmHWM %ld KiB, bound %ld KiB; buffered %llu bytes\n",
                  (unsigned long long)taken, n * PIPE_CONNS, rss0, hwm, bound,
                  (unsigned long long)s2.buffered_bytes);
    MT_CMP_INT(taken, <, n * PIPE_CONNS);
    if (!MT_TSAN && hwm > bound)
        MT_FAIL("daemon VmHWM %ld KiB over the bound %ld KiB for %d connections with a "
                "%d MiB cap",
                hwm, bound, PIPE_CONNS, PIPE_CAP_MB);

    /* now read: every request is answered, in order, and the rest goes in */
    deadline = mt_now_us() + 300000000;
    for (int done = 0; done <= PIPE_CONNS;) {
        done = 0;
        if (mt_now_us() > deadline)
            MT_FAIL("not every reply within the deadline");
        pipe_send(p, PIPE_CONNS + 1);
        for (int j = 0; j <= PIPE_CONNS; j++) {
            if (p[j].next == 2 + (uint64_t)(j < PIPE_CONNS ? n : PIPE_BIG))
                done++;
            else if (j < PIPE_CONNS)
                pipe_read(&p[j], j, 1, 10);
        }
    }
    su_stats(probe, &s2);
    print_message("all %ld answered in order; head %llu, paused %llu\n", n * PIPE_CONNS,
                  (unsigned long long)s2.head_position,
                  (unsigned long long)s2.connections_paused);
    MT_EQ_U64(s2.head_position,
              (uint64_t)(n * PIPE_CONNS) + n_barrier + (uint64_t)PIPE_BIG * PIPE_BIG_EVENTS);
    MT_EQ_U64(s2.connections_paused, 0);
    for (int j = 0; j <= PIPE_CONNS; j++) {
        msgpack_sbuffer_destroy(&p[j].all);
        su_close(p[j].c);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&data);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- subscribers that do not read ---------------------------------------------- */

/* Pushes to a connection nobody reads are a failure: count them instead
 * (su_pump is never called on these). */
static void no_push(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    (void)p;
    (*(uint64_t *)user)++;
}

/* Append `events` events of ~pad bytes to stream in appends of 200. */
static void write_log(su_conn *w, const char *stream, long events, size_t pad)
{
    msgpack_sbuffer data[200];
    su_ev_in ev[200];
    for (int i = 0; i < 200; i++)
        msgpack_sbuffer_init(&data[i]);
    for (long done = 0; done < events;) {
        long k = events - done < 200 ? events - done : 200;
        for (long i = 0; i < k; i++) {
            su_mk_data(&data[i], 2, (uint64_t)(done + i), pad);
            ev[i] = (su_ev_in){"Logged", data[i].data, data[i].size};
        }
        MT_EQ_ERR(su_append(w, stream, ev, (size_t)k, NULL), 0);
        done += k;
    }
    for (int i = 0; i < 200; i++)
        msgpack_sbuffer_destroy(&data[i]);
}

/*
 * The case: 200 subscriptions from the start of a 500,000-event
 * log (~200 MB) on connections that never read, while a writer appends.
 * The old daemon buffered up to max_output/2 (32 MiB) per subscriber,
 * 6.4 GB for 200; the catch-up window alone allows 200 x ~2 MiB; the
 * daemon-wide budget, set small here (LAZY_BUDGET_MB instead of the
 * default 128) so that the bound tells the three apart, allows
 *   LAZY_BUDGET_MB       the budget
 * + N_LAZY x 192 KiB     what each connection may add while the daemon is
 *                        over it (MAOSD_LIGHT_BYTES, one 64 KiB push and
 *                        msgpack's doubling of that buffer)
 * + 32 MiB               the RocksDB block cache the catch-up reads fill
 * + 24 MiB               allocator slack, iterators, the writer
 * above the RSS with the log written (its memtables are in that).
 */
static void test_lazy_subscribers(void **state)
{
    (void)state;
    long n_lazy = scaled(N_LAZY), log_events = scaled(LAZY_LOG);
    char budget[16];
    snprintf(budget, sizeof budget, "%d", LAZY_BUDGET_MB);
    const char *args[] = {"--durability", "none", "--max-total-output-mb", budget, NULL};
    mt_daemon *d = daemon_with(args);
    su_conn *probe = su_open(d->sock);
    su_conn *w = su_open(d->sock);
    write_log(w, "log-1", log_events, 360);
    long rss0 = rss_serving(d, probe);

    su_conn **lazy = calloc((size_t)n_lazy, sizeof *lazy);
    uint64_t stray = 0;
    MT_TRUE(lazy != NULL);
    for (long i = 0; i < n_lazy; i++) {
        lazy[i] = su_open(d->sock);
        su_set_push(lazy[i], no_push, &stray);
        uint64_t sub, from;
        MT_EQ_ERR(su_subscribe(lazy[i], NULL, MAOS_FROM_POSITION, 1, &sub, &from), 0);
    }
    /* the writer keeps going while they sit on their catch-up */
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    for (long i = 0; i < LAZY_WRITES; i++) {
        su_mk_data(&data, 3, (uint64_t)i, 100);
        su_ev_in ev = {"Written", data.data, data.size};
        MT_EQ_ERR(su_append(w, "writer-1", &ev, 1, NULL), 0);
    }
    msgpack_sbuffer_destroy(&data);
    maos_stats st;
    su_stats(probe, &st);
    long hwm = mt_hwm_kb(d->pid);
    long bound = rss0 + asan_room(LAZY_BUDGET_MB * MIB + n_lazy * 192 + 32 * MIB + 24 * MIB);
    print_message("%ld subscribers from the start of %ld events, %d appends done; "
                  "buffered %llu bytes, push_events %llu; daemon RSS %ld KiB with the "
                  "log, VmHWM %ld KiB, bound %ld KiB\n",
                  n_lazy, log_events, LAZY_WRITES, (unsigned long long)st.buffered_bytes,
                  (unsigned long long)st.push_events, rss0, hwm, bound);
    MT_EQ_U64(st.subscriptions, (uint64_t)n_lazy);
    MT_EQ_U64(st.head_position, (uint64_t)(log_events + LAZY_WRITES));
    MT_CMP_INT(st.push_events, >, 0);
    if (!MT_TSAN && hwm > bound)
        MT_FAIL("daemon VmHWM %ld KiB over the bound %ld KiB with %ld subscribers that do "
                "not read",
                hwm, bound, n_lazy);

    /* closing them gives the memory back: their buffers go, and the
     * allocator returns its free pages (malloc_trim after a burst).  The
     * buffers held buffered_bytes (~30 MB); at least half of that comes
     * back (all of it measured; what may stay is the block cache's copy of
     * what catch-up read).  Without the trim glibc keeps it all. */
    long held_kb = (long)(st.buffered_bytes / 1024);
    MT_CMP_INT(held_kb, >, 4 * MIB); /* not vacuous */
    for (long i = 0; i < n_lazy; i++)
        su_close(lazy[i]);
    free(lazy);
    long after_bound = hwm - held_kb / 2, rss = 0;
    int64_t deadline = mt_now_us() + 30000000;
    do {
        su_stats(probe, &st);
        rss = mt_rss_kb(d->pid);
        if (st.connections == 2 && (MT_TSAN || rss <= after_bound))
            break;
        mt_sleep_ms(50); /* polling a condition, with a deadline */
    } while (mt_now_us() < deadline);
    print_message("after they closed: %llu connections, buffered %llu bytes, RSS %ld KiB "
                  "(bound %ld KiB: VmHWM less half of what the buffers held)\n",
                  (unsigned long long)st.connections, (unsigned long long)st.buffered_bytes,
                  rss, after_bound);
    MT_EQ_U64(st.connections, 2);
    if (!MT_TSAN && rss > after_bound)
        MT_FAIL("daemon RSS %ld KiB 30 s after the subscribers closed, over %ld KiB: "
                "memory not given back",
                rss, after_bound);
    MT_CMP_INT(st.buffered_bytes, <, 64 * 1024);
    su_close(w);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- live subscribers over the daemon-wide budget ---------------------------- */

/*
 * Bound: LIVE_BUDGET_MB + N_LIVE x 192 KiB (as above) + the written data
 * twice (RocksDB memtable and the commit group's batch: 20 MB here) +
 * 24 MiB slack.  Without the budget each of them takes up to its 64 MiB
 * cap: all of the 20 MB, 400 MB for 20.
 */
static void test_live_budget(void **state)
{
    (void)state;
    char budget[16];
    snprintf(budget, sizeof budget, "%d", LIVE_BUDGET_MB);
    const char *args[] = {"--durability", "none", "--max-total-output-mb", budget, NULL};
    mt_daemon *d = daemon_with(args);
    su_conn *probe = su_open(d->sock);
    su_conn *w = su_open(d->sock);
    long rss0 = rss_serving(d, probe);
    su_conn *c[N_LIVE];
    su_collector col[N_LIVE];
    su_sub sub[N_LIVE];
    memset(col, 0, sizeof col);
    memset(sub, 0, sizeof sub);
    for (int i = 0; i < N_LIVE; i++) {
        c[i] = su_open(d->sock);
        col[i].subs = &sub[i];
        col[i].n = 1;
        su_set_push(c[i], su_collect, &col[i]);
        MT_EQ_ERR(su_subscribe(c[i], NULL, MAOS_FROM_LIVE, 0, &sub[i].id, &sub[i].from), 0);
    }
    static char ev_data[1003];
    ev_data[0] = (char)0xc5; /* bin 16 of 1000 bytes */
    ev_data[1] = (char)(1000 >> 8);
    ev_data[2] = (char)(1000 & 0xff);
    memset(ev_data + 3, 'l', 1000);
    su_ev_in ev[200];
    for (int i = 0; i < 200; i++)
        ev[i] = (su_ev_in){"Live", ev_data, sizeof ev_data};
    long total = (long)LIVE_BATCHES * LIVE_BATCH;
    for (long done = 0; done < total; done += 200)
        MT_EQ_ERR(su_append(w, "live-1", ev, 200, NULL), 0);
    maos_stats st;
    su_stats(probe, &st);
    long hwm = mt_hwm_kb(d->pid);
    long data_kb = total * (long)sizeof ev_data / 1024;
    long bound = rss0 + asan_room(LIVE_BUDGET_MB * MIB + N_LIVE * 192 + 2 * data_kb + 24 * MIB);
    print_message("%d live subscribers that do not read, %ld events of 1 KiB: fell_behind "
                  "%llu, live %llu, buffered %llu bytes; RSS %ld KiB serving, VmHWM %ld KiB, "
                  "bound %ld KiB\n",
                  N_LIVE, total, (unsigned long long)st.fell_behind,
                  (unsigned long long)st.subscriptions_live,
                  (unsigned long long)st.buffered_bytes, rss0, hwm, bound);
    MT_CMP_INT(st.fell_behind, >=, N_LIVE);
    if (!MT_TSAN && hwm > bound)
        MT_FAIL("daemon VmHWM %ld KiB over the bound %ld KiB", hwm, bound);
    /* they read now: every event, once, in order (su_collect checks as
     * they come) */
    int64_t deadline = mt_now_us() + 120000000;
    for (int i = 0; i < N_LIVE; i++) {
        while ((long)sub[i].got.n < total) {
            if (mt_now_us() > deadline)
                MT_FAIL("subscriber %d: %zu of %ld events", i, sub[i].got.n, total);
            if (su_pump(c[i], 100, NULL) < 0)
                MT_FAIL("subscriber %d: the daemon closed the connection", i);
        }
        MT_EQ_U64(sub[i].got.v[0].pos, 1);
        MT_EQ_U64(sub[i].got.v[total - 1].pos, total);
        MT_CMP_INT(sub[i].fell_behind, >=, 1);
        su_evs_free(&sub[i].got);
        su_close(c[i]);
    }
    su_close(w);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- hello timeout ------------------------------------------------------------- */

static void test_hello_timeout(void **state)
{
    (void)state;
    const char *args[] = {"--hello-timeout-ms", "200", NULL};
    mt_daemon *d = daemon_with(args);
    int quiet = mt_connect(d->sock);  /* never says anything */
    int wrong = mt_connect(d->sock);  /* says ping, not hello */
    int slow = mt_connect(d->sock);   /* half a hello */
    MT_TRUE(quiet >= 0 && wrong >= 0 && slow >= 0);
    su_conn *ok = su_open(d->sock);
    msgpack_sbuffer sb, fr;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&fr);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_enc_simple(&pk, 5, MAOS_OP_PING);
    frame_append(&fr, &sb);
    MT_EQ_INT(mt_send_all(wrong, fr.data, fr.size), 0);
    sb.size = fr.size = 0;
    maos_enc_hello(&pk, 6, MAOS_PROTOCOL_VERSION, "slow");
    frame_append(&fr, &sb);
    MT_EQ_INT(mt_send_all(slow, fr.data, fr.size / 2), 0);
    /* the wrong one: HELLO_REQUIRED for its ping, the connection stays */
    char *f;
    uint32_t len;
    maos_reply rep;
    MT_EQ_INT(mt_recv_frame(wrong, &f, &len, SU_REPLY_MAX, 10000), 1);
    MT_EQ_INT(maos_reply_decode(f, len, &rep), 0);
    MT_EQ_U64(rep.rid, 5);
    MT_EQ_ERR(rep.code, MAOS_EHELLO_REQUIRED);
    free(f);
    /* then all three: the timeout's error frame, then the close */
    int fds[3] = {quiet, wrong, slow};
    for (int i = 0; i < 3; i++) {
        MT_EQ_INT(mt_recv_frame(fds[i], &f, &len, SU_REPLY_MAX, 10000), 1);
        MT_EQ_INT(maos_reply_decode(f, len, &rep), 0);
        print_message("connection %d: %s \"%.*s\"\n", i, maos_err_name(rep.code),
                      (int)rep.message.len, rep.message.ptr);
        MT_EQ_U64(rep.rid, 0);
        MT_EQ_ERR(rep.code, MAOS_EHELLO_REQUIRED);
        MT_TRUE(rep.message.len && memmem(rep.message.ptr, rep.message.len,
                                          "hello_timeout_ms", 16) != NULL);
        free(f);
        MT_EQ_INT(mt_wait_closed(fds[i], 10000), 1);
        close(fds[i]);
    }
    /* the one that said hello stays, also past the timeout */
    maos_stats st;
    su_ping(ok);
    su_stats(ok, &st);
    MT_EQ_U64(st.hello_timeouts, 3);
    MT_EQ_U64(st.connections, 1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&fr);
    su_close(ok);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- per-uid limits and the reserve -------------------------------------------- */

/*
 * A process as `uid` opening connections: reports each hello's code as
 * one byte (0 ok, else -code) on `out`, holds them until the write end of
 * the `hold` pipe (hold_w, closed in the child) is closed.
 */
static pid_t as_uid_sup(const char *sock, uid_t uid, gid_t sup, int n, int out, int hold,
                        int hold_w)
{
    pid_t pid = mt_fork();
    if (pid)
        return pid;
    close(hold_w);
    if (setgroups(sup ? 1 : 0, &sup) || setgid((gid_t)uid) || setuid(uid)) {
        fprintf(stderr, "setuid(%u): %s\n", (unsigned)uid, strerror(errno));
        _exit(1);
    }
    int fds[64];
    for (int i = 0; i < n && i < 64; i++) {
        int code = hello_code(sock, &fds[i]);
        unsigned char b = (unsigned char)-code;
        if (write(out, &b, 1) != 1)
            _exit(1);
    }
    char x;
    while (read(hold, &x, 1) > 0) {
    }
    _exit(0);
}

/* A helper as uid (group uid, no supplementary group). */
static pid_t as_uid(const char *sock, uid_t uid, int n, int out, int hold, int hold_w)
{
    return as_uid_sup(sock, uid, 0, n, out, hold, hold_w);
}

/* The next n codes from a helper. */
static void codes(int fd, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        unsigned char b;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 30000) != 1 || read(fd, &b, 1) != 1)
            MT_FAIL("no result from the helper for connection %d", i);
        out[i] = -(int)b;
    }
}

/* Wait until the daemon counts `want` connections (a refused one closes
 * after its error frame). */
static void wait_conns(su_conn *probe, uint64_t want)
{
    maos_stats st;
    int64_t deadline = mt_now_us() + 10000000;
    do {
        su_stats(probe, &st);
        if (st.connections == want)
            return;
        mt_sleep_ms(10); /* polling a condition, with a deadline */
    } while (mt_now_us() < deadline);
    MT_FAIL("the daemon counts %llu connections, want %llu",
            (unsigned long long)st.connections, (unsigned long long)want);
}

/* Tests where other uids connect: skipped unless run as root. */
static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("not root: other uids cannot connect; skipped\n");
        skip();
    }
}

/* Let other users reach d's socket (the directories searchable, the
 * socket writable). */
static void open_to_others(const mt_daemon *d)
{
    MT_EQ_INT(chmod(mt_test_dir(), 0711), 0);
    MT_EQ_INT(chmod(d->dir, 0711), 0);
    MT_EQ_INT(chmod(d->sock, 0666), 0);
}

static void test_uid_limits(void **state)
{
    (void)state;
    need_root();
    /* 40 in all, the last 10 (a quarter) for root and the daemon's uid,
     * 10 per other uid */
    const char *args[] = {"--max-connections", "40", "--max-connections-per-uid", "10",
                          "--allow-uids", "65534,65533", NULL};
    mt_daemon *d = daemon_with(args);
    open_to_others(d);
    su_conn *probe = su_open(d->sock); /* root: 1 */
    int res[2], hold[2];
    MT_EQ_INT(pipe(res), 0);
    MT_EQ_INT(pipe(hold), 0);

    /* uid 65534: 10 get in, the 11th gets LIMIT */
    pid_t a = as_uid(d->sock, 65534, 11, res[1], hold[0], hold[1]);
    int got[16];
    codes(res[0], 11, got);
    for (int i = 0; i < 10; i++)
        MT_EQ_ERR(got[i], 0);
    MT_EQ_ERR(got[10], MAOS_ELIMIT);
    wait_conns(probe, 11);
    /* root: 19 more, 30 in all, the last before the reserve */
    su_conn *r[30];
    int nr = 0;
    for (; nr < 19; nr++)
        r[nr] = su_open(d->sock);
    wait_conns(probe, 30);
    /* uid 65533: the reserve is not for it (OVERLOADED) */
    pid_t b = as_uid(d->sock, 65533, 1, res[1], hold[0], hold[1]);
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], MAOS_EOVERLOADED);
    wait_conns(probe, 30);
    /* root: the 10 reserved ones, then the 41st is OVERLOADED for it too */
    for (; nr < 29; nr++)
        r[nr] = su_open(d->sock);
    wait_conns(probe, 40);
    int fd;
    MT_EQ_ERR(hello_code(d->sock, &fd), MAOS_EOVERLOADED);
    close(fd);
    maos_stats st;
    wait_conns(probe, 40);
    su_stats(probe, &st);
    print_message("refused: %llu (uid 65534's 11th, uid 65533 in the reserve, root's 41st)\n",
                  (unsigned long long)st.connections_refused);
    MT_EQ_U64(st.connections_refused, 3);
    close(hold[1]);
    MT_EQ_INT(mt_wait(a, 10000), 0);
    MT_EQ_INT(mt_wait(b, 10000), 0);
    for (int i = 0; i < nr; i++)
        su_close(r[i]);
    close(res[0]);
    close(res[1]);
    close(hold[0]);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* Who may connect: by default root and the daemon's own uid only; others
 * get one FORBIDDEN frame at accept (before any request is read) and a log
 * line with their pid and uid; allow_uids and allow_gids (names or
 * numbers; primary group here) let them in. */
/* ---- $audit: refused requests, rate-limited ------------------------------- */

/* In a forked child: become uid 65534 (nobody), no supplementary group. */
static void become_nobody(void)
{
    gid_t none = 0;
    if (setgroups(0, &none) || setgid(65534) || setuid(65534))
        _exit(2);
}

typedef struct arec {
    char type[16], op[32], code[32];
    uint64_t uid, suppressed;
} arec;

/* The events of $audit (at most max) into out; their number. */
static size_t audit_records(su_conn *c, arec *out, size_t max)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    maos_enc_read(&pk, rid, (maos_slice){"$audit", 6}, 1, 0, 0, 1000);
    maos_reply rep;
    char *frame = NULL;
    int rc = su_call(c, &sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&sb);
    size_t n = 0;
    if (rc) {
        free(frame);
        return rc == MAOS_ENOT_FOUND ? 0 : (MT_FAIL("read $audit: %d", rc), 0);
    }
    maos_mpr r;
    uint32_t n_arr = 0;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    if (rep.n_items)
        MT_EQ_ERR(maos_mpr_array(&r, &n_arr), 0);
    for (uint32_t i = 0; i < rep.n_items && n < max; i++) {
        maos_record rec;
        MT_EQ_ERR(maos_record_next(&r, &rec), 0);
        arec *a = &out[n++];
        memset(a, 0, sizeof *a);
        snprintf(a->type, sizeof a->type, "%.*s", (int)rec.type.len, rec.type.ptr);
        maos_mpr d;
        uint32_t m;
        maos_mpr_init(&d, rec.data.ptr, rec.data.len);
        MT_EQ_ERR(maos_mpr_map(&d, &m), 0);
        for (uint32_t k = 0; k < m; k++) {
            maos_slice key, v;
            MT_EQ_ERR(maos_mpr_str(&d, &key), 0);
            if (key.len == 2 && !memcmp(key.ptr, "op", 2)) {
                MT_EQ_ERR(maos_mpr_str(&d, &v), 0);
                snprintf(a->op, sizeof a->op, "%.*s", (int)v.len, v.ptr);
            } else if (key.len == 4 && !memcmp(key.ptr, "code", 4)) {
                MT_EQ_ERR(maos_mpr_str(&d, &v), 0);
                snprintf(a->code, sizeof a->code, "%.*s", (int)v.len, v.ptr);
            } else if (key.len == 3 && !memcmp(key.ptr, "uid", 3)) {
                MT_EQ_ERR(maos_mpr_uint(&d, &a->uid), 0);
            } else if (key.len == 10 && !memcmp(key.ptr, "suppressed", 10)) {
                MT_EQ_ERR(maos_mpr_uint(&d, &a->suppressed), 0);
            } else {
                MT_EQ_ERR(maos_mpr_skip(&d, NULL), 0);
            }
        }
    }
    free(frame);
    return n;
}

/*
 * Refused requests land in $audit: 25 backups asked by an allowed uid that
 * may not back up (FORBIDDEN: no scope admin) give 10 records (the per-connection
 * burst) and, at its close, one that counts the 15 held back; a uid that
 * may not connect gives a "connect" record.  Root only (other uids).
 */
static void test_audit_refusals(void **state)
{
    (void)state;
    need_root();
    const char *args[] = {"--allow-uids", "nobody", NULL};
    mt_daemon *d = daemon_with(args);
    open_to_others(d);
    enum { ASKS = 25 };
    pid_t p = mt_fork();
    if (p == 0) {
        become_nobody();
        su_conn *c = su_try_open(d->sock);
        if (!c)
            _exit(3);
        for (int i = 0; i < ASKS; i++) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            uint64_t rid = su_rid(c);
            maos_enc_backup(&pk, rid, (maos_slice){"/tmp/never", 10});
            maos_reply rep;
            int rc = su_call(c, &sb, rid, &rep, NULL);
            msgpack_sbuffer_destroy(&sb);
            if (rc != MAOS_EFORBIDDEN) { /* no uid_scopes for nobody: no admin */
                fprintf(stderr, "backup as uid 65534: %d (%s)\n", rc, maos_err_name(rc));
                _exit(4);
            }
        }
        su_close(c);
        _exit(0);
    }
    MT_EQ_INT(mt_wait(p, 60000), 0);
    int res[2], hold[2], got[1];
    MT_EQ_INT(pipe2(res, O_CLOEXEC), 0);
    MT_EQ_INT(pipe2(hold, O_CLOEXEC), 0);
    as_uid(d->sock, 65533, 1, res[1], hold[0], hold[1]);
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], MAOS_EFORBIDDEN);
    close(hold[1]);
    /* the records come from maosd's own writes: wait for the close's */
    su_conn *probe = su_open(d->sock);
    static arec recs[64];
    size_t n = 0;
    uint64_t counted = 0, connect = 0;
    int64_t deadline = mt_now_us() + 30000000;
    for (;;) {
        n = audit_records(probe, recs, 64);
        counted = connect = 0;
        for (size_t i = 0; i < n; i++) {
            MT_EQ_STR(recs[i].type, "refused");
            if (!strcmp(recs[i].op, "connect")) {
                MT_EQ_U64(recs[i].uid, 65533);
                MT_EQ_STR(recs[i].code, "FORBIDDEN");
                connect++;
                continue;
            }
            MT_EQ_U64(recs[i].uid, 65534);
            if (!strcmp(recs[i].op, "backup")) {
                MT_EQ_STR(recs[i].code, "FORBIDDEN");
                counted++;
            }
            counted += recs[i].suppressed;
        }
        if ((counted == ASKS && connect == 1) || mt_now_us() > deadline)
            break;
        mt_sleep_ms(10); /* polling a condition, with a deadline */
    }
    MT_EQ_U64(counted, ASKS);
    MT_EQ_U64(connect, 1);
    /* at most the burst of records per 10 s window (two windows at most on
     * a slow build), one at the close and the connect's: never one each */
    MT_CMP_INT(n, <=, 2 * 10 + 1 + 1);
    su_close(probe);
}

/* A reload that changes uid_scopes closes the live connections of the
 * uids it limits (their rights were fixed at hello); root's stay. */
static void test_reload_closes_limited(void **state)
{
    (void)state;
    need_root();
    char conf[512];
    snprintf(conf, sizeof conf, "%s/maosd.conf", mt_test_dir());
    const char *v1 = "[maosd]\nallow_uids = nobody\nuid_scopes = nobody=read:\n";
    mt_write_file(conf, v1, strlen(v1));
    const char *args[] = {"--config", conf, NULL};
    mt_daemon *d = daemon_with(args);
    open_to_others(d);
    su_conn *probe = su_open(d->sock);
    pid_t p = mt_fork();
    if (p == 0) {
        become_nobody();
        su_conn *c = su_try_open(d->sock);
        if (!c)
            _exit(3);
        maos_slice f;
        for (int i = 0; i < 100; i++) { /* the UNAUTHENTICATED frame, then EOF */
            int rc = su_recv(c, 30000, &f);
            if (rc == 0)
                _exit(0);
            if (rc < 0)
                _exit(5);
        }
        _exit(6);
    }
    wait_conns(probe, 2); /* the helper is in, with hello said */
    const char *v2 = "[maosd]\nallow_uids = nobody\nuid_scopes = nobody=read:x-\n";
    mt_write_file(conf, v2, strlen(v2));
    MT_EQ_INT(kill(d->pid, SIGHUP), 0);
    MT_EQ_INT(mt_wait(p, 60000), 0);
    su_ping(probe); /* root's connection stays */
    su_close(probe);
}

static void test_allow_lists(void **state)
{
    (void)state;
    need_root();
    int res[2], hold[2];
    /* close-on-exec: the daemons started below must not hold the helpers'
     * pipes open */
    MT_EQ_INT(pipe2(res, O_CLOEXEC), 0);
    MT_EQ_INT(pipe2(hold, O_CLOEXEC), 0);
    int got[4];
    /* defaults: uid 65534 is refused */
    mt_daemon *d = daemon_with(NULL);
    open_to_others(d);
    pid_t a = as_uid(d->sock, 65534, 1, res[1], hold[0], hold[1]);
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], MAOS_EFORBIDDEN);
    su_conn *probe = su_open(d->sock); /* root gets in */
    maos_stats st;
    su_stats(probe, &st);
    MT_EQ_U64(st.connections_refused, 1);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    char log[4096] = "";
    FILE *f = fopen(d->log, "r");
    MT_TRUE(f != NULL);
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "uid 65534 (pid %d) may not connect", (int)a);
    if (!strstr(log, want))
        MT_FAIL("the log does not say \"%s\":\n%s", want, log);
    /* allow_uids (a name) and allow_gids (a number) */
    const char *args[] = {"--allow-uids", "nobody", "--allow-gids", "65532", NULL};
    mt_daemon *e = daemon_with(args);
    MT_EQ_INT(chmod(e->dir, 0711), 0);
    MT_EQ_INT(chmod(e->sock, 0666), 0);
    pid_t b = as_uid(e->sock, 65534, 1, res[1], hold[0], hold[1]); /* nobody */
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], 0);
    pid_t c = as_uid(e->sock, 65533, 1, res[1], hold[0], hold[1]);
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], MAOS_EFORBIDDEN);
    pid_t g = as_uid(e->sock, 65532, 1, res[1], hold[0], hold[1]); /* gid 65532 */
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], 0);
    /* uid and gid 65530, in group 65532 as a supplementary group */
    pid_t sg = as_uid_sup(e->sock, 65530, 65532, 1, res[1], hold[0], hold[1]);
    codes(res[0], 1, got);
    MT_EQ_ERR(got[0], 0);
    close(hold[1]);
    MT_EQ_INT(mt_wait(a, 10000), 0);
    MT_EQ_INT(mt_wait(b, 10000), 0);
    MT_EQ_INT(mt_wait(c, 10000), 0);
    MT_EQ_INT(mt_wait(g, 10000), 0);
    MT_EQ_INT(mt_wait(sg, 10000), 0);
    close(res[0]);
    close(res[1]);
    close(hold[0]);
    MT_EQ_INT(mt_daemon_stop(e), 0);
    /* a name that is no user: a usage error at start */
    mt_daemon *u = mt_daemon_new("u", NULL);
    mt_daemon_add_arg(u, "--allow-uids");
    mt_daemon_add_arg(u, "no-such-user-here");
    MT_EQ_INT(mt_daemon_start(u), -1);
    MT_EQ_INT(u->start_status, 2);
}

/* ---- configuration ranges ------------------------------------------------------ */

static void test_config_ranges(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *says;
    } bad[] = {
        {"--max-output-mb", "2049", "1..2048"},
        {"--max-output-mb", "0", "1..2048"},
        {"--max-total-output-mb", "0", "max_total_output_mb"},
        {"--max-connections-per-uid", "0", "max_connections_per_uid"},
        {"--hello-timeout-ms", "5", "10..3600000"},
        {"--hello-timeout-ms", "-1", "hello_timeout_ms"},
        {"--max-frame", "1073741825", "1024..1073741824"},
        {"--block-cache-mb", "99999999999", "block_cache_mb"},
        {"--journal-mb", "4097", "0 (off) or an integer 1..4096"},
        {"--journal-mb", "-1", "journal_mb"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[300];
        snprintf(dir, sizeof dir, "%s/data", mt_test_dir());
        const char *run[] = {mt_maosd_bin(), "--data-dir", dir, "--socket", "/nonexistent/s",
                             bad[i].flag, bad[i].value, NULL};
        mt_run r;
        int st = mt_spawn(run, NULL, NULL, 0, 10000, &r);
        print_message("%s %s: exit %d: %s", bad[i].flag, bad[i].value, st, r.err);
        MT_EQ_INT(st, 2);
        if (!strstr(r.err, bad[i].says))
            MT_FAIL("%s %s: the message does not say \"%s\": %s", bad[i].flag, bad[i].value,
                    bad[i].says, r.err);
        mt_run_free(&r);
    }
    /* the same from a config file names the file and the key */
    char conf[300];
    snprintf(conf, sizeof conf, "%s/bad.conf", mt_test_dir());
    const char text[] = "[maosd]\nmax_output_mb = 4096\n";
    mt_write_file(conf, text, sizeof text - 1);
    const char *run[] = {mt_maosd_bin(), "--config", conf, NULL};
    mt_run r;
    MT_EQ_INT(mt_spawn(run, NULL, NULL, 0, 10000, &r), 2);
    print_message("config file: %s", r.err);
    MT_TRUE(strstr(r.err, conf) && strstr(r.err, "max_output_mb") && strstr(r.err, "1..2048"));
    mt_run_free(&r);
}

int main(int argc, char **argv)
{
    limits_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_ranges),
        cmocka_unit_test(test_hello_timeout),
        cmocka_unit_test(test_uid_limits),
        cmocka_unit_test(test_allow_lists),
        cmocka_unit_test(test_audit_refusals),
        cmocka_unit_test(test_reload_closes_limited),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_pipeline_cap),
        cmocka_unit_test(test_lazy_subscribers),
        cmocka_unit_test(test_live_budget),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
