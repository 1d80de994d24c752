/*
 * tests/integration/test_retention.c -- retention (op stream_meta, the
 * removal passes, op compact) against real daemons:
 *
 *  - max_count on one stream of three interleaved ones, more events than
 *    one pass removes: reads of the stream (forward, backward, from an old
 *    version), read_all, subscriptions from the start (whole log, the
 *    stream by position and by version) and verify, before and after a
 *    compaction and after a restart; the other streams are untouched, and
 *    the removed events are stubs read_log hands out with their hashes;
 *  - a category rule, a stream's own rule winning over it, and a stream of
 *    a longer category name left alone;
 *  - truncate_before, delete (reads NOT_FOUND, left out of streams, an
 *    append goes on at the next version), their refusals;
 *  - max_age (the daemon runs a pass a second here);
 *  - the log's start collapsing into the anchor: verify from it, stats,
 *    a restart;
 *  - bad input: '$' streams, set with clear, truncate of a category,
 *    truncate past the head, raw frames with wrong types.
 * Every wait is for a condition with a deadline.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/json.h"
#include "maos/proto.h"

#define DEADLINE_MS 60000

static maos_ctx *connect_ok(const mt_daemon *d)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 10000);
    if (!c || c->err)
        MT_FAIL("connect %s: %s", d->sock, c ? c->errstr : "out of memory");
    return c;
}

/* Append n events of one byte of data to stream, one per request. */
static void append_n(maos_ctx *c, const char *stream, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char data[] = {0x81, 0xa1, 'i', 0xcd, (unsigned char)(i >> 8),
                                (unsigned char)i};
        maos_event_spec ev = {NULL, "tick", data, sizeof data, NULL, 0};
        if (maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, NULL))
            MT_FAIL("append %s: %s", stream, c->errstr);
    }
}

static uint64_t stat_of(maos_ctx *c, const char *name)
{
    maos_stats_kv *kv;
    uint64_t v = 0;
    if (maos_stats_get_kv(c, &kv))
        MT_FAIL("stats: %s", c->errstr);
    if (maos_stats_find(kv, name, &v))
        MT_FAIL("stats without %s", name);
    maos_stats_kv_free(kv);
    return v;
}

/* Wait until the daemon's passes removed at least n events in all. */
static void wait_removed(maos_ctx *c, uint64_t n)
{
    long long end = (mt_now_us() / 1000) + DEADLINE_MS;
    uint64_t got;
    while ((got = stat_of(c, "events_removed")) < n) {
        if ((mt_now_us() / 1000) > end)
            MT_FAIL("events_removed %" PRIu64 " after %d ms, want %" PRIu64, got,
                    DEADLINE_MS, n);
        maos_ping(c);
    }
}

static maos_stream_meta_info smeta(maos_ctx *c, const char *stream, const char *category,
                                   const maos_stream_meta_set *set)
{
    maos_stream_meta_info info;
    if (maos_stream_meta(c, stream, category, set, &info))
        MT_FAIL("stream_meta %s: %s %s", stream ? stream : category,
                maos_err_name(c->err), c->errstr);
    return info;
}

static maos_stream_meta_info set_count(maos_ctx *c, const char *stream,
                                       const char *category, uint64_t n)
{
    maos_stream_meta_set s = {.set = 1, .max_count = n};
    return smeta(c, stream, category, &s);
}

/* Versions of stream as read from `from` (forward or backward), into v
 * (at most cap); their count. */
static size_t read_versions(maos_ctx *c, const char *stream, uint64_t from, int backward,
                            uint64_t *v, size_t cap)
{
    size_t n = 0;
    for (;;) {
        maos_page *pg;
        if (maos_read(c, stream, from, backward, 100, &pg))
            MT_FAIL("read %s: %s %s", stream, maos_err_name(c->err), c->errstr);
        for (size_t i = 0; i < pg->n; i++) {
            if (n == cap)
                MT_FAIL("read %s: more than %zu events", stream, cap);
            MT_EQ_MEM_STR(pg->events[i].stream, pg->events[i].stream_len, stream);
            v[n++] = pg->events[i].version;
        }
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return n;
    }
}

/* Per stream (by its index in names), the versions read_all returns, in
 * order; checks positions grow. */
typedef struct seen {
    const char *const *names;
    size_t n_names;
    uint64_t count[8];
    uint64_t first[8], last[8];
    uint64_t other;
} seen;

static void seen_event(seen *s, const maos_event *e, uint64_t *lastpos)
{
    if (e->position <= *lastpos)
        MT_FAIL("position %" PRIu64 " after %" PRIu64, e->position, *lastpos);
    *lastpos = e->position;
    if (maos_event_removed(e, NULL))
        MT_FAIL("a stub (position %" PRIu64 ") in a read that did not ask for them",
                e->position);
    for (size_t k = 0; k < s->n_names; k++) {
        if (e->stream_len == strlen(s->names[k]) &&
            !memcmp(e->stream, s->names[k], e->stream_len)) {
            if (s->count[k] && e->version != s->last[k] + 1)
                MT_FAIL("%s@%" PRIu64 " after @%" PRIu64, s->names[k], e->version,
                        s->last[k]);
            if (!s->count[k]++)
                s->first[k] = e->version;
            s->last[k] = e->version;
            return;
        }
    }
    s->other++;
}

static void read_all_seen(maos_ctx *c, seen *s)
{
    uint64_t from = MAOS_FROM_START, lastpos = 0;
    for (;;) {
        maos_page *pg;
        if (maos_read_all(c, NULL, from, 0, 500, &pg))
            MT_FAIL("read_all: %s", c->errstr);
        for (size_t i = 0; i < pg->n; i++)
            seen_event(s, &pg->events[i], &lastpos);
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return;
    }
}

/* A subscription (filter f, from_kind/from) until caught up. */
static void sub_seen(const mt_daemon *d, const maos_read_filter *f, int from_kind,
                     uint64_t from, seen *s)
{
    maos_ctx *c = connect_ok(d);
    uint64_t lastpos = 0;
    if (maos_subscribe(c, f, from_kind, from, NULL))
        MT_FAIL("subscribe: %s", c->errstr);
    for (;;) {
        maos_delivery *dl;
        if (maos_next(c, DEADLINE_MS, &dl))
            MT_FAIL("next: %s %s", maos_err_name(c->err), c->errstr);
        int done = dl->kind == MAOS_PUSH_CAUGHT_UP;
        if (dl->kind == MAOS_PUSH_EVENTS)
            for (size_t i = 0; i < dl->n; i++)
                seen_event(s, &dl->events[i], &lastpos);
        maos_delivery_free(dl);
        if (done)
            break;
    }
    maos_free(c);
}

static void verify_ok(const mt_daemon *d, const char *want)
{
    mt_run r;
    mt_ctl(d, &r, "verify", NULL);
    if (r.status != 0 || !strstr(r.out, want))
        MT_FAIL("verify: status %d, out \"%s\", err \"%s\" (want \"%s\")", r.status, r.out,
                r.err, want);
    mt_run_free(&r);
}

/* read_log: every position from the start (or the anchor) to the head,
 * stubs included, each prev the hash of the one before. */
static uint64_t stubs_in_log(maos_ctx *c)
{
    uint64_t from = 1, stubs = 0, expect = 0;
    uint8_t prev[32];
    for (;;) {
        maos_page *pg;
        if (maos_read_log(c, from, 1000, &pg))
            MT_FAIL("read_log: %s", c->errstr);
        for (size_t i = 0; i < pg->n; i++) {
            const maos_event *e = &pg->events[i];
            uint8_t h[32];
            int stub = maos_event_removed(e, h);
            if (expect && (e->position != expect || memcmp(e->prev, prev, 32)))
                MT_FAIL("read_log: position %" PRIu64 " does not link (want %" PRIu64 ")",
                        e->position, expect);
            if (stub) {
                stubs++;
                if (e->data_len != 1 || ((const uint8_t *)e->data)[0] != 0xc0)
                    MT_FAIL("a stub with data (position %" PRIu64 ")", e->position);
                memcpy(prev, h, 32);
            } else {
                crypto_generichash(prev, 32, e->raw, e->raw_len, NULL, 0);
            }
            expect = e->position + 1;
        }
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return stubs;
    }
}

#define A_EVENTS 3000 /* of stream ret-a: more than one pass removes (4096 with b) */
#define B_EVENTS 1500
#define KEEP 25

static const char *const abc[] = {"ret-a", "ret-b", "other-c"};

/* After max_count KEEP on ret-a: every view shows versions
 * A_EVENTS-KEEP.. of ret-a and all of ret-b and other-c. */
static void check_views(const mt_daemon *d, maos_ctx *c)
{
    uint64_t v[A_EVENTS];
    size_t n = read_versions(c, "ret-a", MAOS_FROM_START, 0, v, A_EVENTS);
    MT_EQ_U64(n, KEEP);
    MT_EQ_U64(v[0], A_EVENTS - KEEP);
    MT_EQ_U64(v[KEEP - 1], A_EVENTS - 1);
    n = read_versions(c, "ret-a", MAOS_FROM_START, 1, v, A_EVENTS);
    MT_EQ_U64(n, KEEP);
    MT_EQ_U64(v[0], A_EVENTS - 1);
    MT_EQ_U64(v[KEEP - 1], A_EVENTS - KEEP);
    n = read_versions(c, "ret-a", 5, 0, v, A_EVENTS); /* an old version: from the first left */
    MT_EQ_U64(n, KEEP);
    MT_EQ_U64(v[0], A_EVENTS - KEEP);
    n = read_versions(c, "ret-a", 5, 1, v, A_EVENTS); /* backward from a removed one */
    MT_EQ_U64(n, 0);
    n = read_versions(c, "ret-b", MAOS_FROM_START, 0, v, A_EVENTS);
    MT_EQ_U64(n, B_EVENTS);

    seen all = {.names = abc, .n_names = 3};
    read_all_seen(c, &all);
    MT_EQ_U64(all.count[0], KEEP);
    MT_EQ_U64(all.first[0], A_EVENTS - KEEP);
    MT_EQ_U64(all.count[1], B_EVENTS);
    MT_EQ_U64(all.count[2], B_EVENTS);

    seen s1 = {.names = abc, .n_names = 3};
    sub_seen(d, NULL, MAOS_FROM_POSITION, 1, &s1);
    MT_EQ_U64(s1.count[0], KEEP);
    MT_EQ_U64(s1.first[0], A_EVENTS - KEEP);
    MT_EQ_U64(s1.count[1], B_EVENTS);
    MT_EQ_U64(s1.count[2], B_EVENTS);

    maos_read_filter f = {.stream = "ret-a"};
    seen s2 = {.names = abc, .n_names = 3};
    sub_seen(d, &f, MAOS_FROM_POSITION, 1, &s2);
    MT_EQ_U64(s2.count[0], KEEP);
    MT_EQ_U64(s2.first[0], A_EVENTS - KEEP);
    MT_EQ_U64(s2.count[1] + s2.count[2] + s2.other, 0);

    seen s3 = {.names = abc, .n_names = 3};
    sub_seen(d, &f, MAOS_FROM_VERSION, 0, &s3);
    MT_EQ_U64(s3.count[0], KEEP);
    MT_EQ_U64(s3.first[0], A_EVENTS - KEEP);

    maos_stream_page *sp;
    if (maos_streams(c, "ret-a", NULL, 10, &sp))
        MT_FAIL("streams: %s", c->errstr);
    MT_EQ_U64(sp->n, 1);
    MT_EQ_U64(sp->streams[0].count, KEEP);
    MT_EQ_U64(sp->streams[0].head, A_EVENTS - 1);
    maos_stream_page_free(sp);

    MT_EQ_U64(stubs_in_log(c), A_EVENTS - KEEP);
    verify_ok(d, "OK: ");
}

/* ret-a, ret-b, other-c interleaved (a b c a b c ...), then the rest of
 * ret-a: its removed events are spread over the log. */
static void fill_abc(maos_ctx *c)
{
    for (int i = 0; i < B_EVENTS; i++) {
        append_n(c, "ret-a", 1);
        append_n(c, "ret-b", 1);
        append_n(c, "other-c", 1);
    }
    append_n(c, "ret-a", A_EVENTS - B_EVENTS);
}

static void test_max_count(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    fill_abc(c);
    maos_stream_meta_info m = set_count(c, "ret-a", NULL, KEEP);
    MT_EQ_U64(m.max_count, KEEP);
    MT_EQ_INT(m.is_stream, 1);
    MT_EQ_INT(m.head, A_EVENTS - 1);
    /* stream reads hide the removed versions at once (first moves with
     * the pass; reads never return a version below it) */
    wait_removed(c, A_EVENTS - KEEP);
    m = smeta(c, "ret-a", NULL, NULL);
    MT_EQ_U64(m.first_version, A_EVENTS - KEEP);
    MT_EQ_INT(m.deleted, 0);
    check_views(d, c);

    /* new events: the next pass keeps the last KEEP again */
    append_n(c, "ret-a", 10);
    maos_stream_meta_set again = {.set = 1, .max_count = KEEP + 1};
    smeta(c, "ret-a", NULL, &again);
    wait_removed(c, A_EVENTS - KEEP + 9);
    uint64_t v[64];
    size_t n = read_versions(c, "ret-a", MAOS_FROM_START, 0, v, 64);
    MT_EQ_U64(n, KEEP + 1);
    MT_EQ_U64(v[0], A_EVENTS + 10 - KEEP - 1);
    set_count(c, "ret-a", NULL, KEEP); /* back to the figures check_views wants */
    wait_removed(c, A_EVENTS - KEEP + 10);

    /* a compaction drops the removed data from the table files */
    if (maos_compact(c))
        MT_FAIL("compact: %s", c->errstr);
    maos_free(c);
    c = connect_ok(d);
    uint64_t w[64];
    n = read_versions(c, "ret-a", MAOS_FROM_START, 0, w, 64);
    MT_EQ_U64(n, KEEP);
    MT_EQ_U64(w[0], A_EVENTS + 10 - KEEP);
    MT_EQ_U64(stubs_in_log(c), A_EVENTS + 10 - KEEP);
    verify_ok(d, "OK: ");
    maos_free(c);

    /* and a restart keeps all of it */
    mt_daemon_restart(d);
    c = connect_ok(d);
    n = read_versions(c, "ret-a", MAOS_FROM_START, 0, w, 64);
    MT_EQ_U64(n, KEEP);
    MT_EQ_U64(w[0], A_EVENTS + 10 - KEEP);
    m = smeta(c, "ret-a", NULL, NULL);
    MT_EQ_U64(m.max_count, KEEP);
    verify_ok(d, "OK: ");
    maos_free(c);
}

/* The same views, checked on a store with exactly A_EVENTS in ret-a. */
static void test_views_after_compaction(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    fill_abc(c);
    set_count(c, "ret-a", NULL, KEEP);
    wait_removed(c, A_EVENTS - KEEP);
    if (maos_compact(c))
        MT_FAIL("compact: %s", c->errstr);
    check_views(d, c);
    maos_free(c);
    mt_daemon_restart(d);
    c = connect_ok(d);
    check_views(d, c);
    maos_free(c);
}

static void test_category(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "job-1", 20);
    append_n(c, "job-2", 20);
    append_n(c, "job-3", 20);
    append_n(c, "job", 20);     /* the category's own name is in it */
    append_n(c, "jobx-1", 20);  /* another category */
    maos_stream_meta_info own = set_count(c, "job-3", NULL, 2);
    MT_EQ_U64(own.max_count, 2);
    wait_removed(c, 18);
    maos_stream_meta_info m = set_count(c, NULL, "job", 5);
    MT_EQ_INT(m.is_stream, 0);
    MT_EQ_U64(m.max_count, 5);
    wait_removed(c, 18 + 3 * 15);
    uint64_t v[32];
    MT_EQ_U64(read_versions(c, "job-1", MAOS_FROM_START, 0, v, 32), 5);
    MT_EQ_U64(v[0], 15);
    MT_EQ_U64(read_versions(c, "job-2", MAOS_FROM_START, 0, v, 32), 5);
    MT_EQ_U64(read_versions(c, "job", MAOS_FROM_START, 0, v, 32), 5);
    MT_EQ_U64(read_versions(c, "job-3", MAOS_FROM_START, 0, v, 32), 2); /* its own rule */
    MT_EQ_U64(read_versions(c, "jobx-1", MAOS_FROM_START, 0, v, 32), 20);
    /* a stream of the category written later gets the rule too */
    append_n(c, "job-4", 9);
    maos_stream_meta_set touch = {.set = 1, .max_count = 4};
    smeta(c, NULL, "job", &touch); /* a change: a pass now */
    wait_removed(c, 18 + 3 * 15 + 3 + 5);
    MT_EQ_U64(read_versions(c, "job-4", MAOS_FROM_START, 0, v, 32), 4);
    MT_EQ_U64(read_versions(c, "job-1", MAOS_FROM_START, 0, v, 32), 4);
    /* clear: nothing more goes, nothing comes back */
    maos_stream_meta_set clear = {.clear = 1};
    m = smeta(c, NULL, "job", &clear);
    MT_EQ_U64(m.max_count, 0);
    append_n(c, "job-1", 10);
    MT_EQ_U64(read_versions(c, "job-1", MAOS_FROM_START, 0, v, 32), 14);
    m = smeta(c, "job-1", NULL, NULL);
    MT_EQ_U64(m.first_version, 16);
    verify_ok(d, "OK: ");
    maos_free(c);
}

static void test_truncate_delete(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "tr-1", 10);
    append_n(c, "del-1", 10);
    maos_stream_meta_set tb = {.has_truncate_before = 1, .truncate_before = 4};
    maos_stream_meta_info m = smeta(c, "tr-1", NULL, &tb);
    MT_EQ_U64(m.first_version, 4); /* at once, before the pass */
    uint64_t v[32];
    MT_EQ_U64(read_versions(c, "tr-1", MAOS_FROM_START, 0, v, 32), 6);
    MT_EQ_U64(v[0], 4);
    /* truncating lower later changes nothing: removed is removed */
    tb.truncate_before = 2;
    m = smeta(c, "tr-1", NULL, &tb);
    MT_EQ_U64(m.first_version, 4);
    /* past head + 1 */
    tb.truncate_before = 12;
    MT_EQ_ERR(maos_stream_meta(c, "tr-1", NULL, &tb, NULL), MAOS_EBAD_REQUEST);
    tb.truncate_before = 11;
    MT_EQ_ERR(maos_stream_meta(c, "tr-1", NULL, &tb, NULL), MAOS_EBAD_REQUEST);
    tb.truncate_before = 10; /* head + 1: everything */
    m = smeta(c, "tr-1", NULL, &tb);
    MT_EQ_U64(m.first_version, 10);
    MT_EQ_U64(read_versions(c, "tr-1", MAOS_FROM_START, 0, v, 32), 0);
    MT_EQ_INT(m.deleted, 0);
    /* a stream never written */
    tb.truncate_before = 0;
    MT_EQ_ERR(maos_stream_meta(c, "nope-1", NULL, &tb, NULL), MAOS_ENOT_FOUND);

    maos_stream_meta_set del = {.delete_stream = 1};
    m = smeta(c, "del-1", NULL, &del);
    MT_EQ_INT(m.deleted, 1);
    MT_EQ_U64(m.first_version, 10);
    maos_page *pg;
    MT_EQ_ERR(maos_read(c, "del-1", MAOS_FROM_START, 0, 10, &pg), MAOS_ENOT_FOUND);
    maos_stream_page *sp;
    if (maos_streams(c, "del-", NULL, 10, &sp))
        MT_FAIL("streams: %s", c->errstr);
    MT_EQ_U64(sp->n, 0);
    maos_stream_page_free(sp);
    wait_removed(c, 4 + 6 + 10);
    /* written again: versions go on, the old ones stay gone */
    maos_append_info ai;
    unsigned char one[] = {0x01};
    maos_event_spec ev = {NULL, "again", one, 1, NULL, 0};
    if (maos_append(c, "del-1", MAOS_EXPECT_ANY, &ev, 1, &ai))
        MT_FAIL("append: %s", c->errstr);
    MT_EQ_U64(ai.version, 10);
    MT_EQ_U64(read_versions(c, "del-1", MAOS_FROM_START, 0, v, 32), 1);
    m = smeta(c, "del-1", NULL, NULL);
    MT_EQ_INT(m.deleted, 0);
    verify_ok(d, "OK: ");
    maos_free(c);
}

static void test_max_age(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    char conf[512];
    snprintf(conf, sizeof conf, "%s/maosd.conf", mt_test_dir());
    FILE *f = fopen(conf, "w");
    MT_TRUE(f != NULL);
    fprintf(f, "[maosd]\nretention_interval_s = 1\n");
    fclose(f);
    mt_daemon_add_arg(d, "--config");
    mt_daemon_add_arg(d, conf);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "age-2", 5);
    append_n(c, "age-1", 30);
    /* an hour: nothing of age-2 is that old */
    maos_stream_meta_set hour = {.set = 1, .max_age_ms = 3600000};
    smeta(c, "age-2", NULL, &hour);
    /* events older than 200 ms go; the pass a second removes them once
     * they are that old (the test waits for it, not for the time) */
    maos_stream_meta_set s = {.set = 1, .max_age_ms = 200};
    maos_stream_meta_info m = smeta(c, "age-1", NULL, &s);
    MT_EQ_U64(m.max_age_ms, 200);
    wait_removed(c, 30);
    uint64_t v[8];
    MT_EQ_U64(read_versions(c, "age-1", MAOS_FROM_START, 0, v, 8), 0);
    /* the passes that removed them looked at age-2 too: all there */
    MT_EQ_U64(read_versions(c, "age-2", MAOS_FROM_START, 0, v, 8), 5);
    /* a new event goes too, once it is old */
    append_n(c, "age-1", 1);
    wait_removed(c, 31);
    MT_EQ_U64(read_versions(c, "age-1", MAOS_FROM_START, 0, v, 8), 0);
    MT_EQ_U64(read_versions(c, "age-2", MAOS_FROM_START, 0, v, 8), 5);
    verify_ok(d, "OK: ");
    maos_free(c);
}

static void test_anchor(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    for (int i = 0; i < 50; i++) {
        append_n(c, "an-1", 1);
        append_n(c, "an-2", 1);
    }
    MT_EQ_U64(stat_of(c, "log_anchor"), 0);
    set_count(c, "an-1", NULL, 3);
    set_count(c, "an-2", NULL, 3);
    wait_removed(c, 94);
    /* positions 1..94 were stubs: all but the last are gone (the stub at
     * 94 is where the chain starts) */
    long long end = (mt_now_us() / 1000) + DEADLINE_MS;
    while (stat_of(c, "log_anchor") != 94)
        if ((mt_now_us() / 1000) > end)
            MT_FAIL("log_anchor %" PRIu64 ", want 94", stat_of(c, "log_anchor"));
    MT_EQ_U64(stubs_in_log(c), 1);
    maos_page *pg;
    if (maos_read_log(c, 1, 10, &pg))
        MT_FAIL("read_log: %s", c->errstr);
    MT_EQ_U64(pg->events[0].position, 94);
    MT_EQ_INT(maos_event_removed(&pg->events[0], NULL), 1);
    /* maos_event_decode of an event's raw bytes gives the event back, a
     * stub's too; anything else is MAOS_EPROTO */
    for (size_t i = 0; i < pg->n; i++) {
        maos_event e, *o = &pg->events[i];
        MT_EQ_ERR(maos_event_decode(o->raw, o->raw_len, &e), 0);
        MT_TRUE(e.position == o->position && e.version == o->version &&
                e.time == o->time && e.stream_len == o->stream_len &&
                !memcmp(e.stream, o->stream, e.stream_len) && e.type_len == o->type_len &&
                !memcmp(e.type, o->type, e.type_len) && !memcmp(e.id, o->id, 16) &&
                !memcmp(e.prev, o->prev, 32) && e.data_len == o->data_len &&
                e.meta_len == o->meta_len && e.raw == o->raw && e.raw_len == o->raw_len);
        MT_EQ_INT(maos_event_removed(&e, NULL), maos_event_removed(o, NULL));
        MT_EQ_ERR(maos_event_decode(o->raw, o->raw_len - 1, &e), MAOS_EPROTO);
    }
    MT_EQ_ERR(maos_event_decode("\x80", 1, &(maos_event){0}), MAOS_EPROTO);
    MT_EQ_ERR(maos_event_decode(NULL, 0, &(maos_event){0}), MAOS_EPROTO);
    maos_page_free(pg);
    if (maos_read_all(c, NULL, MAOS_FROM_START, 0, 10, &pg))
        MT_FAIL("read_all: %s", c->errstr);
    MT_EQ_U64(pg->events[0].position, 95);
    maos_page_free(pg);
    verify_ok(d, "chain from position 94");
    maos_free(c);
    mt_daemon_restart(d);
    c = connect_ok(d);
    MT_EQ_U64(stat_of(c, "log_anchor"), 94);
    verify_ok(d, "chain from position 94");
    /* offline: a backup checked by a private read-only maosd, and the
     * store itself once stopped (read-only starts know the anchor too) */
    char target[256];
    snprintf(target, sizeof target, "%.200s/copy", mt_test_dir());
    MT_EQ_ERR(maos_backup(c, target, NULL), 0);
    maos_free(c);
    mt_run r;
    int st = mt_ctl(d, &r, "backup", "--verify", target, NULL);
    if (st != 0 || !strstr(r.out, "chain from position 94"))
        MT_FAIL("backup --verify: %d \"%s\" \"%s\"", st, r.out, r.err);
    mt_run_free(&r);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    const char *argv[] = {mt_maosctl_bin(), "inspect", "--data-dir", d->data, "verify", NULL};
    st = mt_spawn(argv, NULL, NULL, 0, 60000, &r);
    if (st != 0 || !strstr(r.out, "chain from position 94"))
        MT_FAIL("inspect verify: %d \"%s\" \"%s\"", st, r.out, r.err);
    mt_run_free(&r);
}

/* A re-send of an append whose event is a stub now is answered as the
 * original (idempotency), not appended again. */
static void test_resend_removed(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "keep-1", 1); /* position 1 stays: nothing collapses */
    uint8_t id[16];
    randombytes_buf(id, sizeof id);
    unsigned char data[] = {0x81, 0xa1, 'x', 0x01};
    maos_event_spec ev = {id, "once", data, sizeof data, NULL, 0};
    maos_append_info first, again;
    if (maos_append(c, "rs-1", MAOS_EXPECT_ANY, &ev, 1, &first))
        MT_FAIL("append: %s", c->errstr);
    append_n(c, "rs-1", 5);
    set_count(c, "rs-1", NULL, 2);
    wait_removed(c, 4);
    if (maos_append(c, "rs-1", MAOS_EXPECT_ANY, &ev, 1, &again))
        MT_FAIL("re-send: %s %s", maos_err_name(c->err), c->errstr);
    MT_EQ_INT(again.duplicate, 1);
    MT_EQ_U64(again.position, first.position);
    MT_EQ_U64(again.version, 0);
    maos_free(c);
}

/* One request frame from JSON text. */
static void send_json(int fd, const char *json)
{
    char *mp, why[128];
    size_t n;
    if (maos_json_text_to_msgpack(json, strlen(json), &mp, &n, why, sizeof why))
        MT_FAIL("bad test JSON %s: %s", json, why);
    unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    MT_EQ_INT(mt_send_all(fd, hdr, 4), 0);
    MT_EQ_INT(mt_send_all(fd, mp, n), 0);
    free(mp);
}

/* The code of the next reply (0: ok). */
static int reply_code(int fd)
{
    char *f;
    uint32_t len;
    maos_reply rep;
    if (mt_recv_frame(fd, &f, &len, 1u << 24, DEADLINE_MS) != 1)
        MT_FAIL("no reply (connection closed or timed out)");
    if (maos_reply_decode(f, len, &rep))
        MT_FAIL("a reply that does not decode");
    int code = rep.ok ? 0 : rep.code;
    free(f);
    return code;
}

/* A page read ahead before a truncation is not served after it. */
static void test_read_ahead_truncated(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "ra-1", 100);
    maos_page *pg;
    MT_EQ_ERR(maos_read(c, "ra-1", 0, 0, 10, &pg), 0); /* a full page: 10..19 read ahead */
    MT_EQ_U64(pg->n, 10);
    maos_page_free(pg);
    maos_stream_meta_set tb = {.has_truncate_before = 1, .truncate_before = 50};
    smeta(c, "ra-1", NULL, &tb);
    MT_EQ_ERR(maos_read(c, "ra-1", 10, 0, 10, &pg), 0);
    MT_EQ_U64(pg->n, 10);
    MT_EQ_U64(pg->events[0].version, 50);
    maos_page_free(pg);
    maos_free(c);
}

/* The space of removed events comes back with a compaction. */
static void test_space(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    static unsigned char data[2048];
    data[0] = 0xc5; /* bin 16 */
    data[1] = (unsigned char)((sizeof data - 3) >> 8);
    data[2] = (unsigned char)(sizeof data - 3);
    for (int i = 0; i < 2000; i++) { /* 4 MB */
        randombytes_buf(data + 3, sizeof data - 3);
        maos_event_spec ev = {NULL, "blob", data, sizeof data, NULL, 0};
        if (maos_append(c, "sp-1", MAOS_EXPECT_ANY, &ev, 1, NULL))
            MT_FAIL("append: %s", c->errstr);
    }
    set_count(c, "sp-1", NULL, 100);
    wait_removed(c, 1900);
    if (maos_compact(c))
        MT_FAIL("compact: %s", c->errstr);
    /* what is left: 100 events of 2 KB and 1,900 stubs of ~150 bytes;
     * the table files of the data directory, summed (the journal aside) */
    mt_run r;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat %s/*.sst | wc -c", d->data);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    MT_EQ_INT(mt_spawn(argv, NULL, NULL, 0, 30000, &r), 0);
    long bytes = atol(r.out);
    mt_run_free(&r);
    if (bytes <= 0 || bytes > 1500000)
        MT_FAIL("%ld bytes of table files after the compaction; want under 1.5 MB of the "
                "4 MB written", bytes);
    maos_free(c);
}

/* Admin actions land in $audit with who asked: a retention change (in
 * the same write), a compaction, a backup, a purge of dead letters. */
static void test_audit_admin(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "au-1", 3);
    set_count(c, "au-1", NULL, 2);
    MT_EQ_ERR(maos_compact(c), 0);
    char target[256];
    snprintf(target, sizeof target, "%.200s/copy", mt_test_dir());
    MT_EQ_ERR(maos_backup(c, target, NULL), 0);
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "queue", "enqueue", "doomed", "{}", "--max-attempts", "1", NULL),
              0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(d, &r, "queue", "claim", "doomed", NULL), 0);
    char id[64], tok[64];
    MT_EQ_INT(sscanf(r.out, "%63s %*s %63s", id, tok), 2);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(d, &r, "queue", "nack", id, tok, NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(d, &r, "queue", "purge", "doomed", "--dead", NULL), 0);
    mt_run_free(&r);
    /* the backup's and compaction's records are maosd's own writes after
     * the reply: wait for all four */
    const char *want[] = {"\"op\":\"stream_meta\"", "\"op\":\"compact\"",
                          "\"op\":\"backup\"", "\"op\":\"dead_purge\""};
    char me[64];
    snprintf(me, sizeof me, "\"uid\":%u,\"pid\":%d", (unsigned)getuid(), (int)getpid());
    long long end = (mt_now_us() / 1000) + DEADLINE_MS;
    for (;;) {
        int found = 0;
        maos_page *pg = NULL;
        if (maos_read(c, "$audit", MAOS_FROM_START, 0, 100, &pg) == 0) {
            for (size_t w = 0; w < 4; w++)
                for (size_t i = 0; i < pg->n; i++) {
                    char *t = NULL;
                    MT_EQ_ERR(maos_msgpack_to_json_text(pg->events[i].data,
                                                        pg->events[i].data_len, &t), 0);
                    MT_EQ_MEM_STR(pg->events[i].type, pg->events[i].type_len, "admin");
                    int hit = strstr(t, want[w]) != NULL;
                    /* maosctl's pid is not ours: only the client's actions */
                    if (hit && w < 3 && !strstr(t, me))
                        MT_FAIL("%s without %s", t, me);
                    if (hit && w == 0 && !strstr(t, "\"stream\":\"au-1\""))
                        MT_FAIL("%s: not the stream", t);
                    if (hit && w == 2 && !strstr(t, target))
                        MT_FAIL("%s: not the path", t);
                    if (hit && w == 3 && !strstr(t, "\"count\":1"))
                        MT_FAIL("%s: not the count", t);
                    free(t);
                    if (hit) {
                        found++;
                        break;
                    }
                }
            maos_page_free(pg);
        }
        if (found == 4)
            break;
        if ((mt_now_us() / 1000) > end)
            MT_FAIL("%d of the 4 admin records in $audit after %d ms", found, DEADLINE_MS);
        maos_ping(c);
    }
    maos_free(c);
}

static void test_bad_input(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    /* maosd's own streams: a rule yes, truncation and deletion no */
    append_n(c, "x-1", 1);
    maos_stream_meta_set s = {.set = 1, .max_count = 100};
    MT_EQ_ERR(maos_stream_meta(c, "$system", NULL, &s, NULL), 0);
    maos_stream_meta_set tsys = {.has_truncate_before = 1, .truncate_before = 1};
    MT_EQ_ERR(maos_stream_meta(c, "$system", NULL, &tsys, NULL), MAOS_EINVALID_NAME);
    maos_stream_meta_set dsys = {.delete_stream = 1};
    MT_EQ_ERR(maos_stream_meta(c, "$system", NULL, &dsys, NULL), MAOS_EINVALID_NAME);
    maos_stream_meta_info info;
    MT_EQ_ERR(maos_stream_meta(c, "$system", NULL, NULL, &info), 0);
    MT_EQ_U64(info.max_count, 100);
    maos_stream_meta_set both = {.set = 1, .max_count = 1, .clear = 1};
    MT_EQ_ERR(maos_stream_meta(c, "x-1", NULL, &both, NULL), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_stream_meta(c, NULL, NULL, NULL, NULL), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_stream_meta(c, "x-1", "x", NULL, NULL), MAOS_EINVALID_ARG);
    maos_stream_meta_set tcat = {.has_truncate_before = 1};
    MT_EQ_ERR(maos_stream_meta(c, NULL, "x", &tcat, NULL), MAOS_EINVALID_ARG);
    maos_free(c);

    /* the same refusals on the wire, and wrong types: typed errors, the
     * connection and the daemon live on */
    static const char *const frames[][2] = {
        {"{\"op\":\"stream_meta\",\"rid\":1}", "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"category\":\"a\"}",
         "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"max_count\":-1}",
         "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"max_count\":\"x\"}",
         "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"clear\":1}", "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"clear\":true,"
         "\"max_age_ms\":5}", "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"category\":\"a\",\"delete\":true}",
         "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"delete\":true,"
         "\"truncate_before\":1}", "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"a-1\",\"delete\":true}",
         "NOT_FOUND"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"\"}", "INVALID_NAME"},
        {"{\"op\":\"read_all\",\"rid\":1,\"removed\":\"yes\"}", "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"category\":\"a-b\",\"max_count\":1}",
         "BAD_REQUEST"},
        {"{\"op\":\"stream_meta\",\"rid\":1,\"stream\":\"$system\",\"delete\":true}",
         "INVALID_NAME"},
    };
    int fd = mt_connect(d->sock);
    MT_TRUE(fd >= 0);
    send_json(fd, "{\"op\":\"hello\",\"rid\":0,\"version\":1}");
    MT_EQ_ERR(reply_code(fd), 0);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        send_json(fd, frames[i][0]);
        int code = reply_code(fd);
        if (code >= 0 || strcmp(maos_err_name(code), frames[i][1]))
            MT_FAIL("%s: got %s, want %s", frames[i][0], code ? maos_err_name(code) : "OK",
                    frames[i][1]);
    }
    close(fd);
    c = connect_ok(d);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_count),
        cmocka_unit_test(test_views_after_compaction),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_truncate_delete),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_anchor),
        cmocka_unit_test(test_resend_removed),
        cmocka_unit_test(test_read_ahead_truncated),
        cmocka_unit_test(test_space),
        cmocka_unit_test(test_audit_admin),
        cmocka_unit_test(test_bad_input),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 300);
}
