/*
 * tests/subs/test_subs_gapfree.c -- the gap-free property of subscriptions
 * (issue 3, "Tests": gap-free property test), over raw sockets.
 *
 * Per seed, against a fresh maosd (durability sync):
 *   - the test process appends PRE_EVENTS so that "a random existing
 *     position" means something;
 *   - WRITERS forked processes append WRITER_EVENTS each to 15 streams
 *     (task-0..9, job-0..4) with 3 event types, in appends of 1..8 events
 *     and txns over 2..3 streams;
 *   - at the same time SUBSCRIBERS forked processes each open one
 *     connection and, after a random delay, make 1 or 2 subscriptions from
 *     a random point (start, end, a random existing position, or a version
 *     of one stream) with a random filter (none, prefix, category, exact
 *     stream, a types list, some combinations);
 *   - when the writers are done the test process reads the head H, appends
 *     one "sentinel" event of every type to every stream (so every filter
 *     matches something after H) and tells each subscriber H through a pipe;
 *   - a subscriber stops once every subscription has delivered an event
 *     past H (delivery is in position order, so everything up to H has
 *     been delivered by then), then compares, for each subscription, what
 *     it received up to H with what read_all with the same filter returns
 *     from the subscribe reply's `from` up to H: the same positions and
 *     the same record bytes, in order; no gap, no duplicate.  It also
 *     checks that the first event past H is read_all's first event past H.
 *   - a subscription from a version of one stream gets exactly that
 *     version and the later ones (PROTOCOL.md): read_all's events are
 *     taken from the position of that version on, found by listing the
 *     whole stream; one whose version is never written (not even by the
 *     sentinels) must deliver nothing at all.
 *
 * Every push is checked as it arrives too (su_collect): positions strictly
 * increase, `next` never goes back and is above the events of its push.
 *
 * The seed is printed at the start and in every failure message; the
 * environment variable MAOS_SUBS_SEED replaces the default seeds.
 * Bounded: 3,000 events (+45 sentinels) and 8 subscribers per seed; every
 * wait has a deadline; every helper is reaped by mt_wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "subs_util.h"

#define WRITERS 4
#define SUBSCRIBERS 8
#define PRE_EVENTS 300
#define WRITER_EVENTS 675 /* 300 + 4 * 675 = 3000 */
#define MAX_SUBS_PER_CONN 2
#define SUB_DEADLINE_MS 90000
#define WRITE_MS 1500  /* writers spread their events over this long */

static const char *const g_streams[] = {
    "task-0", "task-1", "task-2", "task-3", "task-4", "task-5", "task-6",
    "task-7", "task-8", "task-9", "job-0",  "job-1",  "job-2",  "job-3",
    "job-4",
};
#define N_STREAMS (sizeof g_streams / sizeof g_streams[0])
static const char *const g_types[] = {"Created", "Progress", "Done"};
#define N_TYPES 3

static uint64_t g_seed;
/* The fell-behind variant: bigger events, a 1 MiB output cap, and odd
 * subscribers that stop reading for a while now and then. */
static int g_stall;
static size_t g_pad_max = 40;

/* ---- writing ---------------------------------------------------------------------- */

/* One append of n random-typed events to a random stream, or a txn over
 * 2..3 distinct streams; returns the number of events written. */
static size_t write_some(su_conn *c, su_rng *r, uint64_t w, uint64_t *seq,
                         size_t max_events)
{
    msgpack_sbuffer data[32];
    maos_event_in ev[32];
    maos_append_in ap[3];
    size_t n_ap = su_rng_below(r, 5) == 0 ? 2 + su_rng_below(r, 2) : 1;
    size_t used[3] = {N_STREAMS, N_STREAMS, N_STREAMS};
    size_t total = 0, k = 0;
    memset(ev, 0, sizeof ev);
    for (size_t a = 0; a < n_ap; a++) {
        size_t si;
        do {
            si = su_rng_below(r, N_STREAMS);
        } while ((a > 0 && si == used[0]) || (a > 1 && si == used[1]));
        used[a] = si;
        size_t n = 1 + su_rng_below(r, n_ap > 1 ? 4 : 8);
        if (total + n > max_events)
            n = max_events - total;
        if (n == 0) {
            n_ap = a;
            break;
        }
        ap[a] = (maos_append_in){su_s(g_streams[si]), MAOS_EXPECT_ANY,
                                 (uint32_t)n, &ev[k]};
        for (size_t i = 0; i < n; i++, k++) {
            msgpack_sbuffer_init(&data[k]);
            su_mk_data(&data[k], w, (*seq)++, su_rng_below(r, g_pad_max));
            ev[k].type = su_s(g_types[su_rng_below(r, N_TYPES)]);
            ev[k].data = (maos_slice){data[k].data, (uint32_t)data[k].size};
        }
        total += n;
    }
    if (n_ap == 0)
        return 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    int rc = n_ap == 1 ? maos_enc_append(&pk, rid, &ap[0])
                       : maos_enc_txn(&pk, rid, ap, (uint32_t)n_ap);
    if (rc)
        SU_FAIL("encode append");
    maos_reply rep;
    int code = su_call(c, &sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&sb);
    for (size_t i = 0; i < k; i++)
        msgpack_sbuffer_destroy(&data[i]);
    if (code)
        SU_FAIL("%s of %zu events: %d (%s)", n_ap == 1 ? "append" : "txn",
                total, code, maos_err_name(code));
    return total;
}

/* Append n events.  With pace_ms, spread them over about that long (no
 * pause when the machine is slower than that), so that subscriptions land
 * at many different points of the writing. */
static void write_events(const char *sock, su_rng *r, uint64_t w, size_t n,
                         int pace_ms)
{
    su_conn *c = su_open(sock);
    uint64_t seq = 0;
    size_t done = 0;
    int64_t t0 = mt_now_us();
    while (done < n) {
        done += write_some(c, r, w, &seq, n - done);
        if (pace_ms) {
            int64_t due = t0 + (int64_t)pace_ms * 1000 * (int64_t)done / (int64_t)n;
            int64_t wait = due - mt_now_us();
            if (wait > 0)
                mt_sleep_ms((int)(wait / 1000) + (int)su_rng_below(r, 2));
        }
    }
    su_close(c);
}

/* One event of every type in every stream, as one txn. */
static void append_sentinels(su_conn *c)
{
    maos_event_in ev[N_STREAMS][N_TYPES];
    maos_append_in ap[N_STREAMS];
    memset(ev, 0, sizeof ev);
    for (size_t s = 0; s < N_STREAMS; s++) {
        for (size_t t = 0; t < N_TYPES; t++)
            ev[s][t].type = su_s(g_types[t]);
        ap[s] = (maos_append_in){su_s(g_streams[s]), MAOS_EXPECT_ANY, N_TYPES,
                                 ev[s]};
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    if (maos_enc_txn(&pk, rid, ap, N_STREAMS))
        SU_FAIL("encode txn");
    maos_reply rep;
    int code = su_call(c, &sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&sb);
    SU_EQ_ERR(code, 0);
}

/* ---- subscribing ---------------------------------------------------------------------- */

/* A random subscription: its filter (pointing into static names) and start. */
typedef struct plan {
    maos_filter f;
    maos_slice types[N_TYPES];
    int from_kind;
    uint64_t from;
    char desc[200];
} plan;

static void plan_random(plan *p, su_rng *r, uint64_t head, int force)
{
    static const char *const prefixes[] = {"task-", "job-", "task-1", "j", "t"};
    static const char *const cats[] = {"task", "job"};
    memset(p, 0, sizeof *p);
    int kind = force >= 0 ? force : (int)su_rng_below(r, 5);
    char fdesc[120] = "all";
    switch (kind) {
    case 0: /* no filter */
        break;
    case 1: {
        const char *px = prefixes[su_rng_below(r, 5)];
        p->f.prefix = su_s(px);
        snprintf(fdesc, sizeof fdesc, "prefix %s", px);
        break;
    }
    case 2: {
        const char *ct = cats[su_rng_below(r, 2)];
        p->f.category = su_s(ct);
        snprintf(fdesc, sizeof fdesc, "category %s", ct);
        break;
    }
    case 3: {
        const char *st = g_streams[su_rng_below(r, N_STREAMS)];
        p->f.stream = su_s(st);
        snprintf(fdesc, sizeof fdesc, "stream %s", st);
        break;
    }
    default:
        fdesc[0] = 0; /* types only, below */
        break;
    }
    if (kind == 4 || (kind != 0 && su_rng_below(r, 3) == 0)) {
        /* 1 or 2 of the 3 types */
        size_t skip = su_rng_below(r, N_TYPES);
        size_t want = 1 + su_rng_below(r, 2);
        size_t len = strlen(fdesc);
        snprintf(fdesc + len, sizeof fdesc - len, "%stypes", len ? " + " : "");
        for (size_t t = 0; t < N_TYPES && p->f.n_types < want; t++) {
            size_t ti = (skip + 1 + t) % N_TYPES;
            p->types[p->f.n_types++] = su_s(g_types[ti]);
            len = strlen(fdesc);
            snprintf(fdesc + len, sizeof fdesc - len, " %s", g_types[ti]);
        }
        p->f.types = p->types;
    }
    /* where from */
    uint64_t w = su_rng_below(r, p->f.stream.len ? 4 : 3);
    if (force == 0)
        w = 0; /* the reference subscription: everything from the start */
    switch (w) {
    case 0:
        p->from_kind = MAOS_FROM_POSITION;
        p->from = 1;
        snprintf(p->desc, sizeof p->desc, "%s from start", fdesc);
        break;
    case 1:
        p->from_kind = MAOS_FROM_LIVE;
        snprintf(p->desc, sizeof p->desc, "%s from end", fdesc);
        break;
    case 2:
        p->from_kind = MAOS_FROM_POSITION;
        p->from = head ? 1 + su_rng_below(r, head) : 1;
        snprintf(p->desc, sizeof p->desc, "%s from position %llu (head %llu)",
                 fdesc, (unsigned long long)p->from, (unsigned long long)head);
        break;
    default:
        /* streams hold ~200 events each: sometimes past the end */
        p->from_kind = MAOS_FROM_VERSION;
        p->from = su_rng_below(r, 260);
        snprintf(p->desc, sizeof p->desc, "%s from version %llu", fdesc,
                 (unsigned long long)p->from);
        break;
    }
}

/* Read the 8-byte head from the parent, if it is there. */
static int read_head(int fd, uint64_t *h)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    ssize_t k = read(fd, h, sizeof *h);
    if (k != (ssize_t)sizeof *h)
        SU_FAIL("reading the final head from the parent: %zd", k);
    return 1;
}

static int past(const su_sub *s, uint64_t h)
{
    return s->got.n && s->got.v[s->got.n - 1].pos > h;
}

/* A from-version plan: the position of that version of its stream once
 * the sentinels are in, or UINT64_MAX when the stream never got that far
 * (read on c: every event of the stream, in version order). */
static uint64_t version_start(su_conn *c, const plan *p)
{
    if (p->from_kind != MAOS_FROM_VERSION)
        return 0;
    maos_filter sf = {.stream = p->f.stream};
    su_evs all = {0};
    su_read_all(c, &sf, 1, 0, &all);
    uint64_t pos = p->from < all.n ? all.v[p->from].pos : UINT64_MAX;
    su_evs_free(&all);
    return pos;
}

/* The subscriber process body; exits 0 when every subscription matched. */
static void subscriber(const char *sock, int idx, int head_fd, int ready_fd,
                       const char *count_path)
{
    su_rng r;
    su_rng_seed(&r, g_seed * 1000 + 17 + (uint64_t)idx);
    mt_sleep_ms((int)su_rng_below(&r, g_stall ? WRITE_MS / 3 : WRITE_MS));
    su_conn *c = su_open(sock);
    su_collector col = {0};
    su_sub subs[MAX_SUBS_PER_CONN];
    plan plans[MAX_SUBS_PER_CONN];
    memset(subs, 0, sizeof subs);
    col.subs = subs;
    su_set_push(c, su_collect, &col);
    size_t n = 1 + su_rng_below(&r, MAX_SUBS_PER_CONN);
    for (size_t i = 0; i < n; i++) {
        uint64_t head = su_head(c);
        /* subscriber 0's first subscription is the reference: everything
         * from the start; subscriber 1's first is everything from the end */
        int force = idx == 0 && i == 0 ? 0 : idx == 1 && i == 0 ? -2 : -1;
        if (force == -2) {
            plan_random(&plans[i], &r, head, 0);
            plans[i].from_kind = MAOS_FROM_LIVE;
            snprintf(plans[i].desc, sizeof plans[i].desc, "all from end");
        } else {
            plan_random(&plans[i], &r, head, force);
        }
        uint64_t id = 0, from = 0;
        int rc = su_subscribe(c, &plans[i].f, plans[i].from_kind,
                              plans[i].from, &id, &from);
        if (rc)
            SU_FAIL("subscribe %s: %d (%s)", plans[i].desc, rc,
                    maos_err_name(rc));
        subs[i].id = id;
        subs[i].from = from;
        col.n = i + 1;
        /* the reply's from is what PROTOCOL.md says it is */
        if (plans[i].from_kind == MAOS_FROM_POSITION)
            SU_EQ_U64(from, plans[i].from);
        else if (plans[i].from_kind == MAOS_FROM_LIVE)
            /* The live end is the last position fanned out, which may trail
             * stats' head_position by the group the commit thread has just
             * written (it sets head_position before the loop fans that
             * group out): seen under TSan.  So not "from >= head + 1", only
             * that from is not past the head; what is delivered is checked
             * against read_all from `from` below. */
            SU_TRUE(from >= 1 && from <= su_head(c) + 1);
        printf("[%s] sub %llu: %s -> from %llu (head %llu)\n", su_tag,
               (unsigned long long)id, plans[i].desc,
               (unsigned long long)from, (unsigned long long)head);
    }
    /* tell the parent that every subscription is in place */
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        SU_FAIL("writing to the parent: %s", strerror(errno));

    uint64_t h = 0;
    int have_h = 0, stalls = 0;
    uint64_t vstart[MAX_SUBS_PER_CONN] = {0}; /* from-version plans */
    su_conn *rc = su_open(sock);
    int64_t deadline = mt_now_us() + (int64_t)SUB_DEADLINE_MS * 1000;
    for (;;) {
        if (!have_h && (have_h = read_head(head_fd, &h)) != 0) {
            /* the sentinels are in: where each from-version plan starts */
            for (size_t i = 0; i < n; i++)
                vstart[i] = version_start(rc, &plans[i]);
            su_ping(c); /* pushes of everything written so far are in */
        }
        if (have_h) {
            size_t done = 0;
            for (size_t i = 0; i < n; i++)
                done += past(&subs[i], h) || vstart[i] == UINT64_MAX;
            if (done == n)
                break;
        }
        if (mt_now_us() > deadline) {
            for (size_t i = 0; i < n; i++)
                fprintf(stderr,
                        "[%s] sub %llu (%s): %zu events, last %llu, next "
                        "%llu, caught_up %llu, fell_behind %llu\n",
                        su_tag, (unsigned long long)subs[i].id, plans[i].desc,
                        subs[i].got.n,
                        (unsigned long long)(subs[i].got.n
                                                 ? subs[i].got.v[subs[i].got.n - 1].pos
                                                 : 0),
                        (unsigned long long)subs[i].next,
                        (unsigned long long)subs[i].caught_up,
                        (unsigned long long)subs[i].fell_behind);
            SU_FAIL("not every subscription delivered an event past the "
                    "final head %llu within %d ms (have head: %d)",
                    (unsigned long long)h, SUB_DEADLINE_MS, have_h);
        }
        if (su_pump(c, 50, NULL) < 0)
            SU_FAIL("the daemon closed the subscriber's connection");
        /* the fell-behind variant: odd subscribers stop reading for
         * 400..800 ms, up to 3 times, while the writers go on */
        if (g_stall && idx % 2 == 1 && stalls < 3 && !have_h &&
            su_rng_below(&r, 4) == 0) {
            stalls++;
            mt_sleep_ms(400 + (int)su_rng_below(&r, 400));
        }
    }
    if (col.unknown)
        SU_FAIL("%llu pushes for unknown subscription ids",
                (unsigned long long)col.unknown);

    /* compare with read_all on another connection */
    uint64_t compared = 0;
    for (size_t i = 0; i < n; i++) {
        su_evs want = {0}, got = {0}, after = {0};
        if (vstart[i] == UINT64_MAX) {
            /* its version was never written: nothing, ever */
            if (subs[i].got.n)
                SU_FAIL("sub %llu (%s): %zu events delivered (first at %llu), but "
                        "its stream never reached that version",
                        (unsigned long long)subs[i].id, plans[i].desc, subs[i].got.n,
                        (unsigned long long)subs[i].got.v[0].pos);
            printf("[%s] sub %llu: nothing delivered, as its version was never "
                   "written\n",
                   su_tag, (unsigned long long)subs[i].id);
            su_evs_free(&subs[i].got);
            continue;
        }
        /* from a version: from that version's position on */
        uint64_t from = vstart[i] > subs[i].from ? vstart[i] : subs[i].from;
        su_read_all(rc, &plans[i].f, from, h, &want);
        for (size_t k = 0; k < subs[i].got.n && subs[i].got.v[k].pos <= h; k++)
            su_evs_push(&got, subs[i].got.v[k].pos, subs[i].got.v[k].hash);
        char what[300];
        snprintf(what, sizeof what, "sub %llu (%s, from %llu) up to head %llu",
                 (unsigned long long)subs[i].id, plans[i].desc,
                 (unsigned long long)from, (unsigned long long)h);
        su_evs_assert_equal(what, &got, &want);
        /* the first event past h: read_all's first past h */
        su_read_all(rc, &plans[i].f, h + 1 > from ? h + 1 : from, 0, &after);
        SU_TRUE(after.n > 0);
        size_t k = got.n;
        SU_EQ_U64(subs[i].got.v[k].pos, after.v[0].pos);
        SU_EQ_U64(subs[i].got.v[k].hash, after.v[0].hash);
        printf("[%s] sub %llu: %zu events up to %llu match read_all "
               "(%llu events pushes, caught_up %llu, fell_behind %llu)\n",
               su_tag, (unsigned long long)subs[i].id, got.n,
               (unsigned long long)h, (unsigned long long)subs[i].frames,
               (unsigned long long)subs[i].caught_up,
               (unsigned long long)subs[i].fell_behind);
        compared += got.n;
        /* a subscription from the start or a position catches up */
        if (from <= h && want.n)
            SU_TRUE(subs[i].caught_up >= 1);
        su_evs_free(&want);
        su_evs_free(&got);
        su_evs_free(&after);
        su_evs_free(&subs[i].got);
    }
    su_close(rc);
    su_close(c);
    char line[64];
    int len = snprintf(line, sizeof line, "%llu %llu\n",
                       (unsigned long long)compared,
                       (unsigned long long)(idx == 0 ? h : 0));
    mt_write_file(count_path, line, (size_t)len);
    fflush(stdout);
    _exit(0);
}

/* ---- the test ------------------------------------------------------------------------------ */

static void run_seed(uint64_t seed)
{
    const char *env = getenv("MAOS_SUBS_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 0) + seed;
    g_seed = seed;
    snprintf(su_tag, sizeof su_tag, "seed %llu", (unsigned long long)seed);
    printf("gap-free property test, seed %llu (MAOS_SUBS_SEED=%llu "
           "reproduces it as the first case)\n",
           (unsigned long long)seed, (unsigned long long)(seed - 1));
    fflush(stdout);

    mt_daemon *d = mt_daemon_new(NULL, NULL);
    if (g_stall) {
        mt_daemon_add_arg(d, "--max-output-mb");
        mt_daemon_add_arg(d, "1");
    }
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock);
    su_rng r;
    su_rng_seed(&r, seed);
    int64_t t0 = mt_now_us();
    write_events(d->sock, &r, 99, PRE_EVENTS, 0);
    SU_EQ_U64(su_head(c), PRE_EVENTS);

    int head_pipe[SUBSCRIBERS][2], ready_pipe[2];
    if (pipe2(ready_pipe, O_CLOEXEC) != 0)
        SU_FAIL("pipe: %s", strerror(errno));
    pid_t subs[SUBSCRIBERS], writers[WRITERS];
    char count_path[SUBSCRIBERS][300];
    for (int i = 0; i < SUBSCRIBERS; i++) {
        if (pipe2(head_pipe[i], O_CLOEXEC) != 0)
            SU_FAIL("pipe: %s", strerror(errno));
        snprintf(count_path[i], sizeof count_path[i], "%s/sub-%d.count",
                 mt_test_dir(), i);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subs[i] = su_fork("seed %llu, subscriber %d", (unsigned long long)seed,
                          i);
        if (subs[i] == 0) {
            close(ready_pipe[0]);
            subscriber(d->sock, i, head_pipe[i][0], ready_pipe[1],
                       count_path[i]);
        }
        close(head_pipe[i][0]);
    }
    close(ready_pipe[1]);
    for (int i = 0; i < WRITERS; i++) {
        writers[i] = su_fork("seed %llu, writer %d", (unsigned long long)seed,
                             i);
        if (writers[i] == 0) {
            su_rng wr;
            su_rng_seed(&wr, seed * 1000 + 500 + (uint64_t)i);
            write_events(d->sock, &wr, (uint64_t)i, WRITER_EVENTS, WRITE_MS);
            _exit(0);
        }
    }
    for (int i = 0; i < WRITERS; i++) {
        int st = mt_wait(writers[i], 60000);
        if (st != 0)
            SU_FAIL("writer %d exited with status %d", i, st);
    }
    int64_t t_write = mt_now_us();
    uint64_t h = su_head(c);
    SU_EQ_U64(h, PRE_EVENTS + WRITERS * WRITER_EVENTS);

    /* every subscription in place before the sentinels go in */
    int64_t ready_deadline = mt_now_us() + 30000000;
    for (int got = 0; got < SUBSCRIBERS;) {
        struct pollfd pfd = {ready_pipe[0], POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) {
            for (int i = 0; i < SUBSCRIBERS; i++)
                if (!su_alive(subs[i]))
                    SU_FAIL("subscriber %d died before subscribing (its "
                            "message is above)",
                            i);
            if (mt_now_us() > ready_deadline)
                SU_FAIL("only %d of %d subscribers subscribed within 30 s",
                        got, SUBSCRIBERS);
            continue;
        }
        char buf[SUBSCRIBERS];
        ssize_t k = read(ready_pipe[0], buf, sizeof buf);
        if (k <= 0)
            SU_FAIL("a subscriber died before subscribing (%d of %d ready)",
                    got, SUBSCRIBERS);
        got += (int)k;
    }
    append_sentinels(c);
    for (int i = 0; i < SUBSCRIBERS; i++) {
        if (write(head_pipe[i][1], &h, sizeof h) != (ssize_t)sizeof h)
            SU_FAIL("telling subscriber %d the head: %s", i, strerror(errno));
    }
    int failed = 0;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        int st = mt_wait(subs[i], SUB_DEADLINE_MS + 30000);
        if (st != 0) {
            fprintf(stderr, "seed %llu: subscriber %d exited with status %d\n",
                    (unsigned long long)seed, i, st);
            failed++;
        }
        close(head_pipe[i][1]);
    }
    close(ready_pipe[0]);
    if (failed)
        SU_FAIL("%d of %d subscribers failed (their messages are above)",
                failed, SUBSCRIBERS);

    /* not vacuous: the reference subscription compared all of 1..h */
    uint64_t total = 0;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        char *s = mt_read_file(count_path[i], NULL);
        if (!s)
            SU_FAIL("subscriber %d left no count", i);
        unsigned long long cnt = 0, ref = 0;
        if (sscanf(s, "%llu %llu", &cnt, &ref) != 2) {
            free(s);
            SU_FAIL("subscriber %d: bad count file", i);
        }
        free(s);
        total += cnt;
        if (i == 0)
            SU_EQ_U64(ref, h);
    }
    SU_TRUE(total >= h);
    maos_stats st;
    su_stats(c, &st);
    printf("seed %llu: %llu events written in %.2f s; %llu events compared "
           "across %d subscribers; push_frames %llu, push_events %llu, "
           "fell_behind %llu\n",
           (unsigned long long)seed, (unsigned long long)h,
           (double)(t_write - t0) / 1e6, (unsigned long long)total,
           SUBSCRIBERS, (unsigned long long)st.push_frames,
           (unsigned long long)st.push_events,
           (unsigned long long)st.fell_behind);
    /* the variant is not vacuous: subscriptions did fall behind */
    if (g_stall)
        SU_TRUE(st.fell_behind >= 1);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_gapfree_seed_1(void **state)
{
    (void)state;
    run_seed(1);
}

static void test_gapfree_seed_2(void **state)
{
    (void)state;
    run_seed(2);
}

static void test_gapfree_seed_3(void **state)
{
    (void)state;
    run_seed(3);
}

/* The same property while subscribers fall behind and come back: events
 * of up to 4 KB (~6 MB in all), --max-output-mb 1, subscribers in place
 * early, and the odd ones stop reading for 400..800 ms up to 3 times. */
static void test_gapfree_fell_behind_seed_4(void **state)
{
    (void)state;
    g_stall = 1;
    g_pad_max = 4000;
    run_seed(4);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gapfree_seed_1),
        cmocka_unit_test(test_gapfree_seed_2),
        cmocka_unit_test(test_gapfree_seed_3),
        cmocka_unit_test(test_gapfree_fell_behind_seed_4),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 150);
}
