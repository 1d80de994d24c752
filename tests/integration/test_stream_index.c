/*
 * tests/integration/test_stream_index.c -- the stream index: one entry per
 * append (daemon/keys.h), read through a real maosd with the client
 * library (issue 9, "one stream-index entry per append").
 *
 * The reference for every stream read is a model built from the global
 * log (maos_read_all without a filter), which never touches the stream
 * index: for each stream, its events in position order, whose versions
 * must be dense.  A stream read (maos_read: versions; maos_read_all with
 * an exact stream: positions) must return exactly the model's slice, with
 * the model's "next".
 *
 *  - reads starting at every version (inside multi-event appends too),
 *    forward and backward, with limits that cut inside appends, followed
 *    page by page to the end; the same by position; subscriptions from a
 *    version inside an append; and the stored index itself: one entry per
 *    append (txns with two appends to one stream, pipelined requests), or
 *    per run of appends of one stream staged one after the other in a
 *    group (an append_batch);
 *  - random appends of random sizes from several processes at once (so
 *    groups hold several requests), then random reads against the model,
 *    before and after a restart; the index entries tile each stream;
 *  - a store whose index has the old layout (one 8-byte entry per event,
 *    written here through the store API with maosd stopped) reads the
 *    same, and takes new appends after it;
 *  - damaged index entries (bad lengths, count 0, a gap, an overlap, a
 *    stale position, a missing event): the reader gets every intact event
 *    before the damage, then CORRUPT naming the stream; maosd stays up.
 *
 * MT_SEED=N repeats a run of the random test (the seed is printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "harness.h"
#include "keys.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */
#include "store.h"

/* ---- model ----------------------------------------------------------------- */

typedef struct mev {
    uint64_t pos;
    size_t len;
    char *raw;
    char type[8]; /* the test's types are short */
} mev;

typedef struct mstream {
    char name[80];
    size_t n, cap;
    mev *ev; /* by version */
} mstream;

#define MODEL_STREAMS 32

typedef struct model {
    size_t n;
    mstream s[MODEL_STREAMS];
    uint64_t last_pos;
} model;

static void model_free(model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < m->s[i].n; j++)
            free(m->s[i].ev[j].raw);
        free(m->s[i].ev);
    }
    memset(m, 0, sizeof *m);
}

static mstream *model_stream(model *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (strlen(m->s[i].name) == len && !memcmp(m->s[i].name, name, len))
            return &m->s[i];
    if (m->n == MODEL_STREAMS || len >= sizeof m->s[0].name)
        MT_FAIL("model: too many streams or a long name (%.*s)", (int)len, name);
    mstream *s = &m->s[m->n++];
    memcpy(s->name, name, len);
    s->name[len] = 0;
    return s;
}

static const mstream *model_get(const model *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].name, name))
            return &m->s[i];
    MT_FAIL("model: no stream %s", name);
}

static maos_ctx *conn(const mt_daemon *d)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 20000);
    MT_TRUE(c != NULL);
    if (c->err)
        MT_FAIL("connect %s: %s", d->sock, c->errstr);
    return c;
}

/* The model, from the whole global log. */
static void model_load(maos_ctx *c, model *m)
{
    model_free(m);
    uint64_t from = MAOS_FROM_START;
    for (int guard = 0; guard < 100000; guard++) {
        maos_page *pg = NULL;
        int rc = maos_read_all(c, NULL, from, 0, MAOS_READ_LIMIT_MAX, &pg);
        if (rc)
            MT_FAIL("read_all: %s", c->errstr);
        for (size_t i = 0; i < pg->n; i++) {
            const maos_event *e = &pg->events[i];
            mstream *s = model_stream(m, e->stream, e->stream_len);
            MT_EQ_U64(e->version, s->n); /* dense, in position order */
            MT_TRUE(e->position > m->last_pos);
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 16;
                s->ev = realloc(s->ev, s->cap * sizeof *s->ev);
                MT_TRUE(s->ev != NULL);
            }
            mev *v = &s->ev[s->n++];
            v->pos = e->position;
            v->len = e->raw_len;
            snprintf(v->type, sizeof v->type, "%.*s", (int)e->type_len, e->type);
            v->raw = malloc(e->raw_len);
            MT_TRUE(v->raw != NULL);
            memcpy(v->raw, e->raw, e->raw_len);
            m->last_pos = e->position;
        }
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return;
    }
    MT_FAIL("read_all never ended");
}

/* ---- reads against the model ----------------------------------------------- */

static void check_event(const mstream *s, const maos_event *e, uint64_t version,
                        const char *what)
{
    if (e->version != version || e->position != s->ev[version].pos ||
        e->raw_len != s->ev[version].len || memcmp(e->raw, s->ev[version].raw, e->raw_len))
        MT_FAIL("%s: got version %llu position %llu (%zu bytes), want version %llu "
                "position %llu (%zu bytes)", what, (unsigned long long)e->version,
                (unsigned long long)e->position, e->raw_len, (unsigned long long)version,
                (unsigned long long)s->ev[version].pos, s->ev[version].len);
}

/* One maos_read of s from version `from`; checks the page, returns
 * has_next and *next. */
static int check_read(maos_ctx *c, const mstream *s, uint64_t from, int backward,
                      uint32_t limit, uint64_t *next)
{
    char what[200];
    snprintf(what, sizeof what, "read %s from %lld %s limit %u", s->name,
             from == MAOS_FROM_START ? -1LL : (long long)from,
             backward ? "backward" : "forward", limit);
    maos_page *pg = NULL;
    if (maos_read(c, s->name, from, backward, limit, &pg))
        MT_FAIL("%s: %s", what, c->errstr);
    uint64_t n = s->n, start, count;
    int more;
    if (!backward) {
        start = from == MAOS_FROM_START ? 0 : from;
        count = start >= n ? 0 : (n - start < limit ? n - start : limit);
        more = start + count < n;
    } else {
        start = from >= n ? n - 1 : from;
        count = start + 1 < limit ? start + 1 : limit;
        more = start + 1 > count;
    }
    if (pg->n != count)
        MT_FAIL("%s: got %zu events, want %llu", what, pg->n, (unsigned long long)count);
    for (size_t i = 0; i < pg->n; i++)
        check_event(s, &pg->events[i], backward ? start - i : start + i, what);
    if (pg->has_next != more)
        MT_FAIL("%s: has_next %d, want %d", what, pg->has_next, more);
    uint64_t want_next = backward ? start - count : start + count;
    if (more && pg->next != want_next)
        MT_FAIL("%s: next %llu, want %llu", what, (unsigned long long)pg->next,
                (unsigned long long)want_next);
    *next = pg->next;
    maos_page_free(pg);
    return more;
}

/* Read on from `from` page by page to the end. */
static void follow_read(maos_ctx *c, const mstream *s, uint64_t from, int backward,
                        uint32_t limit)
{
    for (size_t pages = 0; pages <= s->n + 1; pages++)
        if (!check_read(c, s, from, backward, limit, &from))
            return;
    MT_FAIL("read %s: more pages than events", s->name);
}

/* The same by position: maos_read_all with the exact stream. */
static int check_read_pos(maos_ctx *c, const mstream *s, uint64_t from, int backward,
                          uint32_t limit, uint64_t *next)
{
    char what[200];
    snprintf(what, sizeof what, "read_all stream %s from position %lld %s limit %u",
             s->name, from == MAOS_FROM_START ? -1LL : (long long)from,
             backward ? "backward" : "forward", limit);
    maos_read_filter f = {.stream = s->name};
    maos_page *pg = NULL;
    if (maos_read_all(c, &f, from, backward, limit, &pg))
        MT_FAIL("%s: %s", what, c->errstr);
    /* j: the first version read (forward: first at or after from;
     * backward: last at or before it), avail: how many there are */
    uint64_t n = s->n, j = 0, avail = 0;
    if (!backward) {
        uint64_t p = from == MAOS_FROM_START ? 1 : from;
        while (j < n && s->ev[j].pos < p)
            j++;
        avail = n - j;
    } else {
        uint64_t k = 0;
        while (k < n && s->ev[k].pos <= from)
            k++;
        avail = k;
        j = k ? k - 1 : 0;
    }
    uint64_t count = avail < limit ? avail : limit;
    int more = avail > count;
    if (pg->n != count)
        MT_FAIL("%s: got %zu events, want %llu", what, pg->n, (unsigned long long)count);
    for (size_t i = 0; i < pg->n; i++)
        check_event(s, &pg->events[i], backward ? j - i : j + i, what);
    if (pg->has_next != more)
        MT_FAIL("%s: has_next %d, want %d", what, pg->has_next, more);
    if (more) {
        uint64_t want = s->ev[backward ? j - count : j + count].pos;
        if (pg->next != want)
            MT_FAIL("%s: next %llu, want %llu", what, (unsigned long long)pg->next,
                    (unsigned long long)want);
    }
    *next = pg->next;
    maos_page_free(pg);
    return more;
}

static void follow_read_pos(maos_ctx *c, const mstream *s, uint64_t from, int backward,
                            uint32_t limit)
{
    for (size_t pages = 0; pages <= s->n + 1; pages++)
        if (!check_read_pos(c, s, from, backward, limit, &from))
            return;
    MT_FAIL("read_all %s: more pages than events", s->name);
}

/* Every read of s: from each version and position, both ways, limits that
 * cut inside appends, and the pages that follow. */
static void check_stream_all(maos_ctx *c, const model *m, const char *name)
{
    const mstream *s = model_get(m, name);
    static const uint32_t limits[] = {1, 2, 3, 5, 100};
    uint64_t next;
    MT_TRUE(s->n > 0);
    for (uint64_t v = 0; v <= s->n + 1; v++)
        for (int bw = 0; bw < 2; bw++) {
            for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++)
                check_read(c, s, v, bw, limits[l], &next);
            follow_read(c, s, v, bw, 2);
            follow_read(c, s, v, bw, 3);
        }
    for (int bw = 0; bw < 2; bw++) {
        follow_read(c, s, MAOS_FROM_START, bw, 4);
        follow_read_pos(c, s, MAOS_FROM_START, bw, 4);
    }
    for (uint64_t p = 1; p <= m->last_pos + 1; p++)
        for (int bw = 0; bw < 2; bw++) {
            for (size_t l = 0; l < 4; l++)
                check_read_pos(c, s, p, bw, limits[l], &next);
            follow_read_pos(c, s, p, bw, 2);
        }
}

/* read_all of one stream with more filter parts than the stream (its
 * index walk still applies them): events of type `type`, both ways, in
 * pages of 2; and a prefix that excludes the stream: nothing. */
static void check_stream_filtered(maos_ctx *c, const mstream *s, const char *type)
{
    const char *types[1] = {type};
    maos_read_filter f = {.stream = s->name, .types = types, .n_types = 1};
    for (int bw = 0; bw < 2; bw++) {
        uint64_t from = MAOS_FROM_START, want = 0, got = 0;
        for (uint64_t v = 0; v < s->n; v++)
            want += !strcmp(s->ev[v].type, type);
        int64_t v = bw ? (int64_t)s->n - 1 : 0; /* the model's cursor */
        for (int pages = 0; pages <= (int)s->n; pages++) {
            maos_page *pg = NULL;
            if (maos_read_all(c, &f, from, bw, 2, &pg))
                MT_FAIL("read_all %s type %s: %s", s->name, type, c->errstr);
            for (size_t i = 0; i < pg->n; i++, got++) {
                while (v >= 0 && v < (int64_t)s->n && strcmp(s->ev[v].type, type))
                    v += bw ? -1 : 1;
                MT_TRUE(v >= 0 && v < (int64_t)s->n);
                check_event(s, &pg->events[i], (uint64_t)v, "read_all stream+type");
                v += bw ? -1 : 1;
            }
            int more = pg->has_next;
            from = pg->next;
            maos_page_free(pg);
            if (!more)
                break;
        }
        MT_EQ_U64(got, want);
    }
    maos_read_filter g = {.stream = s->name, .prefix = "zz"};
    maos_page *pg = NULL;
    MT_EQ_ERR(maos_read_all(c, &g, MAOS_FROM_START, 0, 100, &pg), 0);
    MT_EQ_U64(pg->n, 0);
    maos_page_free(pg);
}

/* A subscription from version v of s delivers v.. to the end, exactly. */
static void check_subscribe_from(maos_ctx *c, const mstream *s, uint64_t v)
{
    maos_read_filter f = {.stream = s->name};
    uint64_t sub;
    MT_EQ_ERR(maos_subscribe(c, &f, MAOS_FROM_VERSION, v, &sub), 0);
    uint64_t want = v;
    while (want < s->n) {
        maos_delivery *d = NULL;
        int rc = maos_next(c, 20000, &d);
        if (rc || !d)
            MT_FAIL("subscription from version %llu of %s: %s (at version %llu)",
                    (unsigned long long)v, s->name, rc ? c->errstr : "nothing in 20 s",
                    (unsigned long long)want);
        if (d->kind == MAOS_PUSH_EVENTS && d->sub == sub)
            for (size_t i = 0; i < d->n && want < s->n; i++)
                check_event(s, &d->events[i], want++, "subscription");
        maos_delivery_free(d);
    }
    MT_EQ_ERR(maos_unsubscribe(c, sub), 0);
}

/* ---- appends --------------------------------------------------------------- */

static void append_n(maos_ctx *c, const char *stream, size_t n, uint64_t tag)
{
    maos_event_spec ev[64];
    char data[64][9];
    MT_TRUE(n <= 64);
    for (size_t i = 0; i < n; i++) {
        data[i][0] = (char)0xcf; /* uint64: tag, i */
        for (int b = 0; b < 8; b++)
            data[i][1 + b] = (char)((tag * 1000 + i) >> (56 - 8 * b));
        ev[i] = (maos_event_spec){.type = "t", .data = data[i], .data_len = 9};
    }
    maos_append_info info = {0};
    if (maos_append(c, stream, MAOS_EXPECT_ANY, ev, n, &info))
        MT_FAIL("append %zu to %s: %s", n, stream, c->errstr);
    MT_EQ_U64(info.count, n);
}

/* ---- the index, offline (maosd stopped) ------------------------------------ */

typedef struct entries {
    size_t n;
    maosd_sindex e[4096];
} entries;

static maosd_store *store_open(const mt_daemon *d)
{
    maosd_store_opts o = {.dir = d->data};
    maosd_store *st;
    char err[512];
    if (maosd_store_open(&o, &st, NULL, err, sizeof err))
        MT_FAIL("open %s: %s", d->data, err);
    return st;
}

/* The index entries of stream, in key order; old-layout entries count 1. */
static void index_read(maosd_store *st, const char *stream, entries *out)
{
    char k[MAOSD_KEY_MAX];
    maos_slice sl = {stream, (uint32_t)strlen(stream)};
    size_t plen = maosd_key_version(k, sl, 0) - 8;
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    MT_TRUE(it != NULL);
    out->n = 0;
    for (maosd_iter_seek(it, k, plen); maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (klen < plen || memcmp(ik, k, plen))
            break;
        MT_TRUE(out->n < sizeof out->e / sizeof out->e[0]);
        if (maosd_sindex_decode(ik, klen, plen, iv, vlen, &out->e[out->n]))
            MT_FAIL("index entry %zu of %s: malformed (key %zu, value %zu bytes)", out->n,
                    stream, klen, vlen);
        out->n++;
    }
    MT_EQ_ERR(maosd_iter_status(it), 0);
    maosd_iter_free(it);
}

/* The entries tile s: versions 0.. without gap or overlap, positions as
 * the model's. */
static void index_check_tiles(const entries *x, const mstream *s)
{
    uint64_t v = 0;
    for (size_t i = 0; i < x->n; i++) {
        if (x->e[i].first != v)
            MT_FAIL("%s: entry %zu starts at version %llu, want %llu", s->name, i,
                    (unsigned long long)x->e[i].first, (unsigned long long)v);
        for (uint32_t j = 0; j < x->e[i].count; j++, v++) {
            MT_TRUE(v < s->n);
            MT_EQ_U64(x->e[i].pos + j, s->ev[v].pos);
        }
    }
    MT_EQ_U64(v, s->n);
}

static void put_entry(maosd_batch *b, const char *stream, uint64_t first, const char *v,
                      size_t vlen)
{
    char k[MAOSD_KEY_MAX];
    maos_slice sl = {stream, (uint32_t)strlen(stream)};
    maosd_batch_put(b, MAOSD_CF_STREAMS, k, maosd_key_version(k, sl, first), v, vlen);
}

static void del_entry(maosd_batch *b, const char *stream, uint64_t first)
{
    char k[MAOSD_KEY_MAX];
    maos_slice sl = {stream, (uint32_t)strlen(stream)};
    maosd_batch_delete(b, MAOSD_CF_STREAMS, k, maosd_key_version(k, sl, first));
}

static void entry_value(char v[12], uint64_t pos, uint32_t count)
{
    maosd_sindex_value(v, pos, count);
}

/* ---- tests ----------------------------------------------------------------- */

/* Stream "s": appends of several sizes, other streams' events between
 * them, a txn with two appends to "s", pipelined requests. */
static void write_layout(maos_ctx *c, size_t *n_appends)
{
    static const size_t sizes[] = {3, 1, 5, 2, 4};
    size_t na = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        append_n(c, "s", sizes[i], i);
        na++;
        append_n(c, "o", 2, 100 + i);
    }
    /* one txn: s 2 events, o 1 (a txn names each stream once) */
    maos_event_spec ev[3] = {{.type = "x"}, {.type = "x"}, {.type = "x"}};
    maos_txn_append t[2] = {
        {.stream = "s", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 2},
        {.stream = "o", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 1},
    };
    maos_append_info out[2] = {{0}};
    if (maos_txn(c, t, 2, out))
        MT_FAIL("txn: %s", c->errstr);
    MT_EQ_U64(out[1].position, out[0].position + 2);
    na += 1;
    /* pipelined: several requests, likely in one group */
    static const size_t piped[] = {2, 1, 3, 1};
    for (size_t i = 0; i < sizeof piped / sizeof piped[0]; i++) {
        MT_EQ_ERR(maos_append_send(c, i % 2 ? "o" : "s", MAOS_EXPECT_ANY, ev, piped[i],
                                   NULL), 0);
        na += i % 2 == 0;
    }
    for (size_t i = 0; i < sizeof piped / sizeof piped[0]; i++) {
        maos_result *r = NULL;
        MT_EQ_ERR(maos_reply_recv(c, &r), 0);
        MT_TRUE(r != NULL);
        MT_EQ_ERR(maos_result_status(r), 0);
        maos_result_free(r);
    }
    /* append_batch: appends of one stream one after the other in a group
     * share one entry (commit.c maosd_wx_stream_appended): s 2+1, then o
     * breaks the run, then s 3+1 */
    maos_txn_append b[5] = {
        {.stream = "s", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 2},
        {.stream = "s", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 1},
        {.stream = "o", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 1},
        {.stream = "s", .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 3},
        {.stream = "s", .expect = 27, .events = ev, .n_events = 1},
    };
    maos_batch_outcome bo[5];
    MT_EQ_ERR(maos_append_batch(c, b, 5, bo), 0);
    for (int i = 0; i < 5; i++)
        MT_EQ_ERR(bo[i].status, 0);
    na += 2;
    append_n(c, "s", 1, 50);
    na++;
    *n_appends = na;
}

static void test_reads_within_appends(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = conn(d);
    size_t na;
    write_layout(c, &na);
    model m = {0};
    model_load(c, &m);
    const mstream *s = model_get(&m, "s");
    MT_EQ_U64(s->n, 3 + 1 + 5 + 2 + 4 + 2 + 2 + 3 + 7 + 1);
    check_stream_all(c, &m, "s");
    check_stream_all(c, &m, "o");
    check_stream_filtered(c, s, "x");
    check_stream_filtered(c, s, "t");
    /* subscriptions from versions inside appends (op_sub.c's lookup) */
    static const uint64_t from[] = {0, 1, 4, 6, 9, 12, 16, 22, 24, 25, 27, 29};
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++)
        check_subscribe_from(c, s, from[i]);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    /* the stored index: one entry per append of "s" */
    maosd_store *st = store_open(d);
    static entries x;
    index_read(st, "s", &x);
    maosd_store_close(st);
    MT_EQ_U64(x.n, na);
    index_check_tiles(&x, s);
    static const uint32_t counts[] = {3, 1, 5, 2, 4, 2, 2, 3, 3, 4, 1};
    for (size_t i = 0; i < x.n; i++)
        MT_EQ_U64(x.e[i].count, counts[i]);

    /* the same reads from table files after a restart */
    mt_daemon_up(d);
    c = conn(d);
    check_stream_all(c, &m, "s");
    maos_free(c);
    model_free(&m);
}

/* xorshift64* */
static uint64_t rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

enum { WRITERS = 3, WRITER_OPS = 60, RSTREAMS = 4 };

/* A writer process: random appends (1..12 events), txns of 2-3 appends
 * (maybe to one stream twice), pipelined bursts.  Exit 0 when all
 * succeeded. */
static void writer(const char *sock, uint64_t seed)
{
    maos_ctx *c = maos_connect_timeout(sock, 20000);
    if (!c || c->err)
        _exit(2);
    maos_event_spec ev[12];
    for (int i = 0; i < 12; i++)
        ev[i] = (maos_event_spec){.type = "r"};
    char name[RSTREAMS][8];
    for (int i = 0; i < RSTREAMS; i++)
        snprintf(name[i], sizeof name[i], "p%d", i);
    for (int op = 0; op < WRITER_OPS; op++) {
        uint64_t r = rnd(&seed);
        int rc = 0;
        switch (r % 3) {
        case 0:
            rc = maos_append(c, name[(r >> 8) % RSTREAMS], MAOS_EXPECT_ANY, ev,
                             1 + (r >> 16) % 12, NULL);
            break;
        case 1: {
            maos_txn_append t[3];
            size_t n = 2 + (r >> 8) % 2, s0 = (r >> 12) % RSTREAMS;
            for (size_t i = 0; i < n; i++) /* distinct streams */
                t[i] = (maos_txn_append){.stream = name[(s0 + i) % RSTREAMS],
                                         .expect = MAOS_EXPECT_ANY, .events = ev,
                                         .n_events = 1 + (r >> (24 + 4 * i)) % 12};
            rc = maos_txn(c, t, n, NULL);
            break;
        }
        default: {
            size_t n = 2 + (r >> 8) % 4;
            for (size_t i = 0; i < n && !rc; i++)
                rc = maos_append_send(c, name[(r >> (12 + 4 * i)) % RSTREAMS],
                                      MAOS_EXPECT_ANY, ev, 1 + (r >> (32 + 4 * i)) % 12,
                                      NULL);
            for (size_t i = 0; i < n && !rc; i++) {
                maos_result *m = NULL;
                rc = maos_reply_recv(c, &m);
                if (!rc && (!m || maos_result_status(m)))
                    rc = m ? maos_result_status(m) : MAOS_EPROTO;
                maos_result_free(m);
            }
        }
        }
        if (rc) {
            fprintf(stderr, "writer: op %d: %s\n", op, c->errstr);
            _exit(1);
        }
    }
    maos_free(c);
    _exit(0);
}

static void random_reads(maos_ctx *c, const model *m, uint64_t *seed, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t r = rnd(seed);
        char name[8];
        snprintf(name, sizeof name, "p%d", (int)(r % RSTREAMS));
        const mstream *s = model_get(m, name);
        int bw = (r >> 4) & 1;
        uint32_t limit = 1 + (uint32_t)((r >> 8) % 40);
        uint64_t next;
        if ((r >> 20) % 8 == 0) {
            uint64_t from = (r >> 24) % 16 == 0 ? MAOS_FROM_START : (r >> 28) % (s->n + 3);
            if ((r >> 60) & 1)
                follow_read(c, s, from, bw, limit);
            else
                check_read(c, s, from, bw, limit, &next);
        } else if ((r >> 20) % 8 < 5) {
            check_read(c, s, (r >> 28) % (s->n + 3), bw, limit, &next);
        } else {
            uint64_t p = 1 + (r >> 28) % (m->last_pos + 2);
            if ((r >> 60) & 1)
                follow_read_pos(c, s, p, bw, limit);
            else
                check_read_pos(c, s, p, bw, limit, &next);
        }
    }
}

static void test_random_appends_and_reads(void **state)
{
    (void)state;
    uint64_t seed = 0;
    const char *env = getenv("MT_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    else
        randombytes_buf(&seed, sizeof seed);
    seed |= 1;
    fprintf(stderr, "test_stream_index: seed %llu (MT_SEED=%llu repeats it)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    pid_t pid[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        uint64_t ws = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        pid[i] = mt_fork();
        if (pid[i] == 0)
            writer(d->sock, ws | 1);
    }
    for (int i = 0; i < WRITERS; i++)
        MT_EQ_INT(mt_wait(pid[i], 120000), 0);
    maos_ctx *c = conn(d);
    model m = {0};
    model_load(c, &m);
    for (int i = 0; i < RSTREAMS; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        MT_TRUE(model_get(&m, name)->n > 0);
    }
    uint64_t rs = seed;
    random_reads(c, &m, &rs, 1500);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    maosd_store *st = store_open(d);
    static entries x;
    size_t total = 0;
    for (int i = 0; i < RSTREAMS; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        index_read(st, name, &x);
        index_check_tiles(&x, model_get(&m, name));
        total += x.n;
    }
    maosd_store_close(st);
    /* one entry per append: far fewer than events (an append holds 6.5
     * events on average) */
    size_t events = 0;
    for (size_t i = 0; i < m.n; i++)
        events += m.s[i].n;
    MT_CMP_INT(total, <, events / 2);

    mt_daemon_up(d);
    c = conn(d);
    random_reads(c, &m, &rs, 500);
    maos_free(c);
    model_free(&m);
}

/* Rewrite every entry of stream as old-layout keys: one per event, the
 * position alone (8 bytes). */
static void to_old_layout(maosd_store *st, const char *stream)
{
    static entries x;
    index_read(st, stream, &x);
    maosd_batch *b = maosd_batch_new(st);
    MT_TRUE(b != NULL);
    for (size_t i = 0; i < x.n; i++) {
        del_entry(b, stream, x.e[i].first);
        for (uint32_t j = 0; j < x.e[i].count; j++) {
            char v[8];
            maosd_put_u64(v, x.e[i].pos + j);
            put_entry(b, stream, x.e[i].first + j, v, 8);
        }
    }
    MT_EQ_ERR(maosd_store_write(st, b), 0);
    maosd_batch_free(b);
}

static void test_old_layout(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = conn(d);
    size_t na;
    write_layout(c, &na);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    maosd_store *st = store_open(d);
    to_old_layout(st, "s");
    static entries x;
    index_read(st, "s", &x);
    maosd_store_close(st);
    MT_EQ_U64(x.n, 30); /* one per event now */

    mt_daemon_up(d);
    c = conn(d);
    model m = {0};
    model_load(c, &m);
    MT_EQ_U64(model_get(&m, "s")->n, 30);
    check_stream_all(c, &m, "s");
    check_subscribe_from(c, model_get(&m, "s"), 7);
    /* new appends after old entries: new-layout entries follow them */
    append_n(c, "s", 4, 60);
    append_n(c, "o", 1, 61);
    append_n(c, "s", 2, 62);
    model_load(c, &m);
    MT_EQ_U64(model_get(&m, "s")->n, 36);
    check_stream_all(c, &m, "s");
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    st = store_open(d);
    index_read(st, "s", &x);
    maosd_store_close(st);
    MT_EQ_U64(x.n, 32);
    index_check_tiles(&x, model_get(&m, "s"));
    model_free(&m);
}

/* Damaged streams, each 3 appends of 3 events (entries at 0, 3, 6) with
 * an event of "o" between appends. */
static const char *const damaged[] = {"bad-len", "zero-count", "bad-key", "gap",
                                      "overlap", "long-entry", "stale", "no-event"};
#define N_DAMAGED (sizeof damaged / sizeof damaged[0])

static void damage(maosd_store *st, const model *m)
{
    maosd_batch *b = maosd_batch_new(st);
    MT_TRUE(b != NULL);
    char v[16];
    /* a 5-byte value at version 3 */
    put_entry(b, "bad-len", 3, "\1\2\3\4\5", 5);
    /* count 0 */
    entry_value(v, model_get(m, "zero-count")->ev[3].pos, 0);
    put_entry(b, "zero-count", 3, v, 12);
    /* a key one byte too long, sorting between the entries at 3 and 6 */
    {
        char k[MAOSD_KEY_MAX + 1];
        size_t kl = maosd_key_version(k, (maos_slice){"bad-key", 7}, 3);
        k[kl] = 0;
        entry_value(v, model_get(m, "bad-key")->ev[3].pos, 3);
        maosd_batch_put(b, MAOSD_CF_STREAMS, k, kl + 1, v, 12);
    }
    /* versions 3..5 gone */
    del_entry(b, "gap", 3);
    /* the entry of 6..8 moved to 5: overlaps 3..5 */
    del_entry(b, "overlap", 6);
    entry_value(v, model_get(m, "overlap")->ev[6].pos, 3);
    put_entry(b, "overlap", 5, v, 12);
    /* the entry at 3 claims 4 events: its 4th position is another
     * stream's event, and it overlaps the entry at 6 */
    entry_value(v, model_get(m, "long-entry")->ev[3].pos, 4);
    put_entry(b, "long-entry", 3, v, 12);
    /* the entry at 3 points at an "o" event */
    entry_value(v, model_get(m, "stale")->ev[3].pos - 1, 3);
    put_entry(b, "stale", 3, v, 12);
    /* the event of version 4 deleted from the log */
    {
        char k[8];
        maosd_batch_delete(b, MAOSD_CF_EVENTS, k,
                           maosd_key_event(k, model_get(m, "no-event")->ev[4].pos));
    }
    MT_EQ_ERR(maosd_store_write(st, b), 0);
    maosd_batch_free(b);
}

/* Read s from `from` page by page: n intact events (the model's), then
 * CORRUPT naming the stream (corrupt), or the end (!corrupt). */
static void expect_reads(maos_ctx *c, const mstream *s, uint64_t from, int backward,
                         uint64_t n, int corrupt)
{
    uint64_t v = from == MAOS_FROM_END && backward ? s->n - 1 : from, got = 0;
    const char *dir = backward ? "backward" : "forward";
    for (int guard = 0; guard < 20; guard++) {
        maos_page *pg = NULL;
        int rc = maos_read(c, s->name, from, backward, 100, &pg);
        if (rc) {
            if (rc != MAOS_ECORRUPT || !corrupt)
                MT_FAIL("read %s %s from %llu: %s (%s)", s->name, dir,
                        (unsigned long long)from, maos_err_name(rc), c->errstr);
            if (!strstr(c->errstr, s->name))
                MT_FAIL("read %s: the error does not name the stream: %s", s->name,
                        c->errstr);
            if (got != n)
                MT_FAIL("read %s %s: %llu intact events before CORRUPT, want %llu",
                        s->name, dir, (unsigned long long)got, (unsigned long long)n);
            return;
        }
        for (size_t i = 0; i < pg->n; i++, got++)
            check_event(s, &pg->events[i], backward ? v-- : v++, s->name);
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more) {
            if (corrupt || got != n)
                MT_FAIL("read %s %s: ended after %llu events, want %llu%s", s->name, dir,
                        (unsigned long long)got, (unsigned long long)n,
                        corrupt ? " then CORRUPT" : "");
            return;
        }
    }
    MT_FAIL("read %s: no end", s->name);
}

static void test_corrupt_index(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = conn(d);
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < N_DAMAGED; i++) {
            append_n(c, damaged[i], 3, (uint64_t)a);
            append_n(c, "o", 1, 90);
        }
    model m = {0};
    model_load(c, &m);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    maosd_store *st = store_open(d);
    damage(st, &m);
    maosd_store_close(st);

    mt_daemon_up(d);
    c = conn(d);
    /* Forward from 0 and backward from the end: the intact events before
     * the damage, then CORRUPT.  An entry that claims too many events
     * (long-entry) or an extra key (bad-key) end a page early; the events
     * read on from there are right, and no other stream's event is ever
     * returned as one of the stream's. */
    static const struct {
        uint64_t fwd;
        int fwd_bad;
        uint64_t bwd;
        int bwd_bad, at_bad;
    } want[N_DAMAGED] = {
        {3, 1, 3, 1, 1}, /* bad-len */
        {3, 1, 3, 1, 1}, /* zero-count */
        {9, 0, 3, 1, 1}, /* bad-key: seeks forward step over it */
        {3, 1, 3, 1, 1}, /* gap */
        {6, 1, 0, 1, 1}, /* overlap */
        {9, 0, 9, 0, 0}, /* long-entry */
        {3, 1, 3, 1, 1}, /* stale */
        {4, 1, 4, 1, 1}, /* no-event */
    };
    for (size_t i = 0; i < N_DAMAGED; i++) {
        const mstream *s = model_get(&m, damaged[i]);
        expect_reads(c, s, 0, 0, want[i].fwd, want[i].fwd_bad);
        expect_reads(c, s, MAOS_FROM_END, 1, want[i].bwd, want[i].bwd_bad);
        int bad = want[i].at_bad;
        /* straight at a damaged version, by version and by position */
        uint64_t v = i == 4 ? 6 : 4; /* overlap: 6 is where it shows */
        expect_reads(c, s, v, 0, bad ? 0 : 5, bad);
        maos_read_filter f = {.stream = s->name};
        maos_page *pg = NULL;
        int rc = maos_read_all(c, &f, s->ev[v].pos, 0, 100, &pg);
        if (rc != (bad ? MAOS_ECORRUPT : 0))
            MT_FAIL("read_all %s from position %llu: %s", s->name,
                    (unsigned long long)s->ev[v].pos, rc ? c->errstr : "OK");
        if (!rc) {
            MT_CMP_INT(pg->n, >, 0);
            check_event(s, &pg->events[0], v, "read_all");
        }
        maos_page_free(pg);
    }
    /* intact streams still read, and maosd takes appends */
    check_stream_all(c, &m, "o");
    append_n(c, "o", 1, 91);
    MT_TRUE(mt_daemon_alive(d));
    maos_free(c);
    model_free(&m);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_within_appends),
        cmocka_unit_test(test_random_appends_and_reads),
        cmocka_unit_test(test_old_layout),
        cmocka_unit_test(test_corrupt_index),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
