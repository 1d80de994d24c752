/*
 * tests/integration/test_events.c -- the event store end to end through
 * the real libmaos-client against a real maosd on a temp dir (issue 2,
 * "Event store" and "Tests").
 *
 * Each test starts its own daemon, so tests are independent and every
 * position and version asserted is exact.  Expected filter results are
 * computed here from an unfiltered read with this file's own predicate (not
 * proto's), and absolute counts are asserted too, so that "both empty"
 * cannot pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

static mt_daemon *g_d;

/* ---- helpers --------------------------------------------------------------- */

static maos_ctx *conn(void)
{
    maos_ctx *c = maos_connect_timeout(g_d->sock, 20000);
    if (!c)
        MT_FAIL("maos_connect returned NULL");
    if (c->err) {
        int e = c->err;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", c->errstr);
        maos_free(c);
        MT_FAIL("connect %s: %d (%s) %s", g_d->sock, e, maos_err_name(e), msg);
    }
    return c;
}

static void start(void)
{
    g_d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(g_d);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A deterministic v4-looking UUID for (a, b). */
static void mk_id(uint8_t id[16], uint32_t a, uint32_t b)
{
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0x5a ^ (i * 17));
    memcpy(id, &a, 4);
    memcpy(id + 10, &b, 4); /* clear of the variant bits in id[8] */
    id[6] = (uint8_t)(0x40 | (id[6] & 0x0f));
    id[8] = (uint8_t)(0x80 | (id[8] & 0x3f));
    id[15] ^= 0x01; /* never nil */
}

/* data {"i": i, "s": "<stream>"} into buf; returns its length. */
static size_t mk_data(char *buf, size_t cap, uint64_t i, const char *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "i", 1);
    msgpack_pack_uint64(&pk, i);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "s", 1);
    msgpack_pack_str(&pk, strlen(s));
    msgpack_pack_str_body(&pk, s, strlen(s));
    size_t n = sb.size;
    if (n > cap)
        MT_FAIL("data buffer too small");
    memcpy(buf, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

#define MAXB 64

/* A batch of n (<= MAXB) events of one type; ids from (tag, k) when tag
 * is nonzero, server-made otherwise.  Data {"i": first_i + k, "s": stream}. */
typedef struct batch {
    maos_event_spec ev[MAXB];
    uint8_t ids[MAXB][16];
    char data[MAXB][MAOS_STREAM_MAX + 64]; /* room for the longest stream name */
} batch;

static void mk_batch(batch *b, size_t n, const char *stream, const char *type,
                     uint32_t tag, uint64_t first_i)
{
    memset(b, 0, sizeof *b);
    for (size_t k = 0; k < n; k++) {
        b->ev[k].type = type;
        b->ev[k].data = b->data[k];
        b->ev[k].data_len = mk_data(b->data[k], sizeof b->data[k], first_i + k,
                                    stream);
        if (tag) {
            mk_id(b->ids[k], tag, (uint32_t)(first_i + k));
            b->ev[k].id = b->ids[k];
        }
    }
}

/* Append n events and assert success; returns the info. */
static maos_append_info app(maos_ctx *c, const char *stream, int64_t expect,
                            const char *type, size_t n, uint32_t tag,
                            uint64_t first_i)
{
    batch *b = malloc(sizeof *b);
    mk_batch(b, n, stream, type, tag, first_i);
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, stream, expect, b->ev, n, &info);
    free(b);
    if (rc != 0)
        MT_FAIL("append %zu to %s: %d (%s) %s", n, stream, rc,
                maos_err_name(rc), c->errstr);
    MT_EQ_U64(info.count, n);
    MT_EQ_INT(info.duplicate, 0);
    return info;
}

static uint64_t head_position(maos_ctx *c)
{
    maos_stats_info st;
    int rc = maos_stats_get(c, &st);
    MT_EQ_ERR(rc, 0);
    return st.head_position;
}

/* A copy of an event, independent of its page. */
typedef struct evrec {
    uint64_t pos, ver;
    int64_t time;
    char stream[300];
    char type[300];
    uint8_t id[16];
    char data[256];
    size_t data_len;
} evrec;

static void copy_ev(evrec *r, const maos_event *e)
{
    r->pos = e->position;
    r->ver = e->version;
    r->time = e->time;
    snprintf(r->stream, sizeof r->stream, "%.*s", (int)e->stream_len, e->stream);
    snprintf(r->type, sizeof r->type, "%.*s", (int)e->type_len, e->type);
    memcpy(r->id, e->id, 16);
    r->data_len = e->data_len < sizeof r->data ? e->data_len : sizeof r->data;
    memcpy(r->data, e->data, r->data_len);
}

/* Read $all with f, paging with `limit`, into out (at most cap). */
static size_t read_all_collect(maos_ctx *c, const maos_read_filter *f,
                               uint64_t from, int backward, uint32_t limit,
                               evrec *out, size_t cap)
{
    size_t n = 0;
    for (int guard = 0; guard < 100000; guard++) {
        maos_page *p = NULL;
        int rc = maos_read_all(c, f, from, backward, limit, &p);
        if (rc != 0)
            MT_FAIL("read_all: %d (%s) %s", rc, maos_err_name(rc), c->errstr);
        if (limit)
            MT_CMP_INT(p->n, <=, limit);
        for (size_t i = 0; i < p->n; i++) {
            if (n >= cap) {
                maos_page_free(p);
                MT_FAIL("read_all returned more than %zu events", cap);
            }
            copy_ev(&out[n++], &p->events[i]);
        }
        int more = p->has_next;
        uint64_t next = p->next;
        maos_page_free(p);
        if (!more)
            return n;
        if (next == from && n == 0 && guard > 1000)
            MT_FAIL("read_all does not advance (next %llu)",
                    (unsigned long long)next);
        from = next;
    }
    MT_FAIL("read_all paging did not end");
}

/* Read one stream with paging. */
static size_t read_collect(maos_ctx *c, const char *stream, uint64_t from,
                           int backward, uint32_t limit, evrec *out, size_t cap,
                           int *pages)
{
    size_t n = 0;
    *pages = 0;
    for (int guard = 0; guard < 100000; guard++) {
        maos_page *p = NULL;
        int rc = maos_read(c, stream, from, backward, limit, &p);
        if (rc != 0)
            MT_FAIL("read %s: %d (%s) %s", stream, rc, maos_err_name(rc),
                    c->errstr);
        (*pages)++;
        if (limit)
            MT_CMP_INT(p->n, <=, limit);
        for (size_t i = 0; i < p->n; i++) {
            if (n >= cap) {
                maos_page_free(p);
                MT_FAIL("read returned more than %zu events", cap);
            }
            copy_ev(&out[n++], &p->events[i]);
        }
        int more = p->has_next;
        uint64_t next = p->next;
        size_t got = p->n;
        maos_page_free(p);
        if (!more)
            return n;
        if (got == 0)
            MT_FAIL("stream read page with has_next but no events");
        from = next;
    }
    MT_FAIL("read paging did not end");
}

/* This file's own filter predicate. */
static int match(const evrec *e, const maos_read_filter *f)
{
    if (f->stream && strcmp(e->stream, f->stream) != 0)
        return 0;
    if (f->prefix && strncmp(e->stream, f->prefix, strlen(f->prefix)) != 0)
        return 0;
    if (f->category) {
        const char *dash = strchr(e->stream, '-');
        size_t cl = dash ? (size_t)(dash - e->stream) : strlen(e->stream);
        if (strlen(f->category) != cl || strncmp(e->stream, f->category, cl))
            return 0;
    }
    if (f->n_types) {
        size_t i;
        for (i = 0; i < f->n_types; i++)
            if (strcmp(e->type, f->types[i]) == 0)
                break;
        if (i == f->n_types)
            return 0;
    }
    if (f->has_since && e->time < f->since)
        return 0;
    if (f->has_until && e->time > f->until)
        return 0;
    return 1;
}

static void assert_same_positions(const char *what, const evrec *got,
                                  size_t ngot, const evrec *want, size_t nwant)
{
    if (ngot != nwant) {
        fprintf(stderr, "%s: got %zu events, want %zu\n  got:", what, ngot,
                nwant);
        for (size_t i = 0; i < ngot && i < 40; i++)
            fprintf(stderr, " %llu", (unsigned long long)got[i].pos);
        fprintf(stderr, "\n  want:");
        for (size_t i = 0; i < nwant && i < 40; i++)
            fprintf(stderr, " %llu", (unsigned long long)want[i].pos);
        fprintf(stderr, "\n");
        MT_FAIL("%s: event count differs: got %zu, want %zu", what, ngot, nwant);
    }
    for (size_t i = 0; i < ngot; i++)
        if (got[i].pos != want[i].pos || memcmp(got[i].id, want[i].id, 16) ||
            strcmp(got[i].stream, want[i].stream))
            MT_FAIL("%s: event %zu: got position %llu (%s), want %llu (%s)",
                    what, i, (unsigned long long)got[i].pos, got[i].stream,
                    (unsigned long long)want[i].pos, want[i].stream);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_ping_and_stats(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    MT_EQ_ERR(maos_ping(c), 0);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, "ok");
    MT_EQ_STR(st.durability, "sync");
    MT_EQ_U64(st.head_position, 0);
    MT_TRUE(strncmp(st.server, "maosd ", 6) == 0);
    MT_EQ_U64(st.max_frame, MAOS_DEFAULT_MAX_FRAME);
    MT_TRUE(strncmp(maos_server_name(c), "maosd", 5) == 0);
    MT_EQ_U64(maos_max_frame(c), MAOS_DEFAULT_MAX_FRAME);

    /* the key/value form: every counter of the daemon, by name, the frozen
     * struct's ones with the same values (taken after one more request:
     * the ones that count requests and bytes moved on) */
    maos_stats_kv *kv = NULL;
    MT_EQ_ERR(maos_stats_get_kv(c, &kv), 0);
    const char *name;
    uint64_t v;
    size_t n = 0, known = 0;
#define COUNT_STAT_(x) known++;
    MAOS_STATS_MAP(COUNT_STAT_)
#undef COUNT_STAT_
    int seen_head = 0;
    while (maos_stats_next(kv, &name, &v)) {
        n++;
        if (!strcmp(name, "head_position")) {
            seen_head = 1;
            MT_EQ_U64(v, st.head_position);
        }
        MT_TRUE(strcmp(name, "rid") != 0);
    }
    MT_EQ_U64(n, known);       /* everything the daemon sends, nothing else */
    MT_TRUE(seen_head);
    MT_EQ_INT(maos_stats_next(kv, &name, &v), 0);  /* stays at the end */
    maos_stats_rewind(kv);
    MT_EQ_INT(maos_stats_next(kv, NULL, NULL), 1);
    MT_EQ_ERR(maos_stats_find(kv, "max_frame", &v), 0);
    MT_EQ_U64(v, MAOS_DEFAULT_MAX_FRAME);
    MT_EQ_INT(maos_stats_find(kv, "no_such_counter", &v), MAOS_ENOT_FOUND);
    MT_EQ_INT(maos_stats_find(kv, NULL, &v), MAOS_EINVALID_ARG);
    MT_EQ_STR(maos_stats_text(kv, "state"), "ok");
    MT_EQ_STR(maos_stats_text(kv, "durability"), "sync");
    MT_TRUE(strncmp(maos_stats_text(kv, "server"), "maosd ", 6) == 0);
    MT_TRUE(maos_stats_text(kv, "uptime_us") == NULL); /* a number, not a text */
    maos_stats_kv_free(kv);
    maos_stats_kv_free(NULL);
    MT_EQ_INT(maos_stats_get_kv(c, NULL), MAOS_EINVALID_ARG);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_append_read_paging(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    int64_t t0 = wall_us();

    /* single event with data and meta */
    static const char meta[] = "\x81\xa5" "agent\xa2" "a1"; /* {agent: a1} */
    char data[128];
    size_t dl = mk_data(data, sizeof data, 0, "order-1");
    uint8_t id0[16];
    mk_id(id0, 1, 0);
    maos_event_spec one = {id0, "Created", data, dl, meta, sizeof meta - 1};
    maos_append_info info;
    memset(&info, 0, sizeof info);
    MT_EQ_ERR(maos_append(c, "order-1", MAOS_EXPECT_NO_STREAM, &one, 1, &info),
              0);
    MT_EQ_U64(info.version, 0);
    MT_EQ_U64(info.position, 1);
    MT_EQ_U64(info.count, 1);
    MT_EQ_INT(info.duplicate, 0);

    /* a batch of 24, with the ids handed back */
    uint8_t got_ids[24][16];
    batch *b = malloc(sizeof *b);
    mk_batch(b, 24, "order-1", "Paid", 1, 1);
    memset(&info, 0, sizeof info);
    MT_EQ_ERR(maos_append_ids(c, "order-1", 0, b->ev, 24, &info, got_ids), 0);
    MT_EQ_U64(info.version, 1);
    MT_EQ_U64(info.position, 2);
    MT_EQ_U64(info.count, 24);
    for (int k = 0; k < 24; k++)
        if (memcmp(got_ids[k], b->ids[k], 16) != 0)
            MT_FAIL("returned id %d differs from the id sent", k);

    /* another stream in between */
    maos_append_info o = app(c, "other-1", MAOS_EXPECT_ANY, "X", 3, 0, 0);
    MT_EQ_U64(o.position, 26);
    MT_EQ_U64(o.version, 0);
    /* and more of order-1 after it: positions jump, versions stay dense */
    maos_append_info m = app(c, "order-1", 24, "Shipped", 5, 2, 25);
    MT_EQ_U64(m.version, 25);
    MT_EQ_U64(m.position, 29);
    int64_t t1 = wall_us();

    /* forward, pages of 10 */
    evrec *ev = calloc(100, sizeof *ev);
    int pages;
    size_t n = read_collect(c, "order-1", MAOS_FROM_START, 0, 10, ev, 100,
                            &pages);
    MT_EQ_U64(n, 30);
    MT_CMP_INT(pages, >=, 3);
    MT_CMP_INT(pages, <=, 4);
    for (size_t i = 0; i < n; i++) {
        MT_EQ_U64(ev[i].ver, i);
        MT_EQ_U64(ev[i].pos, i < 25 ? i + 1 : i + 4);
        MT_EQ_STR(ev[i].stream, "order-1");
        MT_EQ_STR(ev[i].type, i == 0 ? "Created" : i < 25 ? "Paid" : "Shipped");
        char want[128];
        size_t wl = mk_data(want, sizeof want, i, "order-1");
        MT_EQ_U64(ev[i].data_len, wl);
        MT_TRUE(memcmp(ev[i].data, want, wl) == 0);
        MT_CMP_INT(ev[i].time, >=, t0 - 2000000);
        MT_CMP_INT(ev[i].time, <=, t1 + 2000000);
        if (i > 0)
            MT_CMP_INT(ev[i].time, >=, ev[i - 1].time);
    }
    MT_TRUE(memcmp(ev[0].id, id0, 16) == 0);
    MT_TRUE(memcmp(ev[1].id, got_ids[0], 16) == 0);

    /* the first page by hand: exactly 10, cursor at version 10 */
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "order-1", MAOS_FROM_START, 0, 10, &p), 0);
    MT_EQ_U64(p->n, 10);
    MT_EQ_INT(p->has_next, 1);
    MT_EQ_U64(p->next, 10);
    MT_EQ_U64(p->events[0].meta_len, sizeof meta - 1);
    MT_TRUE(memcmp(p->events[0].meta, meta, sizeof meta - 1) == 0);
    /* an event without meta has the empty map */
    MT_EQ_U64(p->events[1].meta_len, 1);
    MT_EQ_INT(((const unsigned char *)p->events[1].meta)[0], 0x80);
    maos_page_free(p);

    /* backward from the end, pages of 7 */
    n = read_collect(c, "order-1", MAOS_FROM_END, 1, 7, ev, 100, &pages);
    MT_EQ_U64(n, 30);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(ev[i].ver, 29 - i);
    p = NULL;
    MT_EQ_ERR(maos_read(c, "order-1", MAOS_FROM_END, 1, 7, &p), 0);
    MT_EQ_U64(p->n, 7);
    MT_EQ_INT(p->has_next, 1);
    MT_EQ_U64(p->next, 22);
    MT_EQ_U64(p->events[0].version, 29);
    maos_page_free(p);

    /* from the middle, both ways */
    n = read_collect(c, "order-1", 20, 0, 100, ev, 100, &pages);
    MT_EQ_U64(n, 10);
    MT_EQ_U64(ev[0].ver, 20);
    MT_EQ_U64(ev[9].ver, 29);
    n = read_collect(c, "order-1", 3, 1, 100, ev, 100, &pages);
    MT_EQ_U64(n, 4);
    for (size_t i = 0; i < 4; i++)
        MT_EQ_U64(ev[i].ver, 3 - i);

    /* past the end: nothing */
    p = NULL;
    MT_EQ_ERR(maos_read(c, "order-1", 30, 0, 10, &p), 0);
    MT_EQ_U64(p->n, 0);
    MT_EQ_INT(p->has_next, 0);
    maos_page_free(p);

    /* default limit reads everything small */
    p = NULL;
    MT_EQ_ERR(maos_read(c, "order-1", MAOS_FROM_START, 0, 0, &p), 0);
    MT_EQ_U64(p->n, 30);
    MT_EQ_INT(p->has_next, 0);
    maos_page_free(p);

    /* no such stream */
    p = NULL;
    MT_EQ_ERR(maos_read(c, "nothing-1", MAOS_FROM_START, 0, 10, &p),
              MAOS_ENOT_FOUND);
    MT_TRUE(p == NULL);

    /* $all forward and backward, no filter, pages of 4 */
    n = read_all_collect(c, NULL, MAOS_FROM_START, 0, 4, ev, 100);
    MT_EQ_U64(n, 33);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(ev[i].pos, i + 1);
    MT_EQ_STR(ev[25].stream, "other-1");
    n = read_all_collect(c, NULL, MAOS_FROM_END, 1, 4, ev, 100);
    MT_EQ_U64(n, 33);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(ev[i].pos, 33 - i);
    n = read_all_collect(c, NULL, 10, 0, 4, ev, 100);
    MT_EQ_U64(n, 24);
    MT_EQ_U64(ev[0].pos, 10);
    n = read_all_collect(c, NULL, 10, 1, 4, ev, 100);
    MT_EQ_U64(n, 10);
    MT_EQ_U64(ev[0].pos, 10);
    MT_EQ_U64(ev[9].pos, 1);
    MT_EQ_U64(head_position(c), 33);

    free(ev);
    free(b);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* The log for the filter test: three time groups, several streams/types. */
static const struct {
    const char *stream;
    const char *type;
    int n;
    int group;
} g_plan[] = {
    {"order-1", "Created", 2, 0}, {"order-2", "Created", 1, 0},
    {"user-1", "Joined", 2, 0},   {"orderx-1", "Paid", 1, 0},
    {"single", "Paid", 1, 0},     {"order-1", "Paid", 3, 1},
    {"user-1", "Left", 1, 1},     {"order-2", "Shipped", 2, 1},
    {"orders", "Created", 1, 1},  {"order-1", "Shipped", 1, 2},
    {"user-2", "Paid", 2, 2},     {"order-", "Paid", 1, 2},
};

static void test_read_all_filters(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    int64_t gfirst[3] = {0}, glast[3] = {0};
    int total = 0;
    for (size_t i = 0; i < sizeof g_plan / sizeof g_plan[0]; i++) {
        if (i > 0 && g_plan[i].group != g_plan[i - 1].group)
            mt_sleep_ms(30); /* distinct commit times between groups */
        app(c, g_plan[i].stream, MAOS_EXPECT_ANY, g_plan[i].type,
            (size_t)g_plan[i].n, 0, (uint64_t)i * 10);
        total += g_plan[i].n;
    }
    evrec *all = calloc(200, sizeof *all);
    evrec *got = calloc(200, sizeof *got);
    evrec *want = calloc(200, sizeof *want);
    size_t nall = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, all, 200);
    MT_EQ_U64(nall, total);
    /* map each event to its group by position */
    {
        size_t k = 0;
        for (size_t i = 0; i < sizeof g_plan / sizeof g_plan[0]; i++)
            for (int j = 0; j < g_plan[i].n; j++, k++) {
                int g = g_plan[i].group;
                MT_EQ_STR(all[k].stream, g_plan[i].stream);
                MT_EQ_STR(all[k].type, g_plan[i].type);
                if (!gfirst[g] || all[k].time < gfirst[g])
                    gfirst[g] = all[k].time;
                if (all[k].time > glast[g])
                    glast[g] = all[k].time;
            }
    }
    MT_CMP_INT(glast[0], <, gfirst[1]);
    MT_CMP_INT(glast[1], <, gfirst[2]);

    static const char *const t_paid_shipped[] = {"Paid", "Shipped"};
    static const char *const t_joined[] = {"Joined"};
    static const char *const t_none[] = {"NoSuchType"};
    struct {
        const char *name;
        maos_read_filter f;
        size_t expect_n;
    } cases[] = {
        {"stream order-1", {.stream = "order-1"}, 6},
        {"stream order-", {.stream = "order-"}, 1},
        {"stream missing", {.stream = "nope-1"}, 0},
        {"prefix order", {.prefix = "order"}, 12},
        {"prefix order-", {.prefix = "order-"}, 10},
        {"prefix user-", {.prefix = "user-"}, 5},
        {"category order", {.category = "order"}, 10},
        {"category single", {.category = "single"}, 1},
        {"category orders", {.category = "orders"}, 1},
        {"category user", {.category = "user"}, 5},
        {"types Paid,Shipped", {.types = t_paid_shipped, .n_types = 2}, 11},
        {"types Joined", {.types = t_joined, .n_types = 1}, 2},
        {"types none", {.types = t_none, .n_types = 1}, 0},
        {"category order + Paid,Shipped",
         {.category = "order", .types = t_paid_shipped, .n_types = 2}, 7},
        {"prefix user + Joined",
         {.prefix = "user", .types = t_joined, .n_types = 1}, 2},
        {"since group 1", {.has_since = 1, .since = gfirst[1]}, 11},
        {"until group 0", {.has_until = 1, .until = glast[0]}, 7},
        {"group 1 only",
         {.has_since = 1, .since = gfirst[1], .has_until = 1,
          .until = glast[1]},
         7},
        {"group 2 of category order",
         {.category = "order", .has_since = 1, .since = gfirst[2]}, 2},
        {"empty time range",
         {.has_since = 1, .since = glast[2] + 1}, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const maos_read_filter *f = &cases[ci].f;
        size_t nwant = 0;
        for (size_t i = 0; i < nall; i++)
            if (match(&all[i], f))
                want[nwant++] = all[i];
        print_message("filter %s: %zu events\n", cases[ci].name, nwant);
        MT_EQ_U64(nwant, cases[ci].expect_n);
        uint32_t limits[] = {0, 1, 3};
        for (size_t li = 0; li < 3; li++) {
            char what[128];
            snprintf(what, sizeof what, "%s, forward, limit %u",
                     cases[ci].name, limits[li]);
            size_t ng = read_all_collect(c, f, MAOS_FROM_START, 0, limits[li],
                                         got, 200);
            assert_same_positions(what, got, ng, want, nwant);
            /* backward: the same events in reverse */
            evrec *rev = calloc(200, sizeof *rev);
            for (size_t i = 0; i < nwant; i++)
                rev[i] = want[nwant - 1 - i];
            snprintf(what, sizeof what, "%s, backward, limit %u",
                     cases[ci].name, limits[li]);
            ng = read_all_collect(c, f, MAOS_FROM_END, 1, limits[li], got, 200);
            assert_same_positions(what, got, ng, rev, nwant);
            free(rev);
        }
        /* from the middle of the log */
        uint64_t mid = (uint64_t)total / 2;
        size_t nw2 = 0;
        evrec *w2 = calloc(200, sizeof *w2);
        for (size_t i = 0; i < nwant; i++)
            if (want[i].pos >= mid)
                w2[nw2++] = want[i];
        size_t ng = read_all_collect(c, f, mid, 0, 2, got, 200);
        assert_same_positions(cases[ci].name, got, ng, w2, nw2);
        free(w2);
    }
    free(all);
    free(got);
    free(want);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_streams_listing(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "a-1", MAOS_EXPECT_ANY, "T", 3, 0, 0);   /* positions 1..3 */
    app(c, "b-1", MAOS_EXPECT_ANY, "T", 5, 0, 0);   /* 4..8 */
    app(c, "ab-1", MAOS_EXPECT_ANY, "T", 2, 0, 0);  /* 9..10 */
    app(c, "a-2", MAOS_EXPECT_ANY, "T", 1, 0, 0);   /* 11 */
    app(c, "a-1", MAOS_EXPECT_ANY, "T", 1, 0, 10);  /* 12 */

    struct {
        const char *prefix;
        size_t n;
        const char *names[5];
        uint64_t head[5], count[5], last[5];
    } cases[] = {
        {"a", 3, {"a-1", "a-2", "ab-1"}, {3, 0, 1}, {4, 1, 2}, {12, 11, 10}},
        {"a-", 2, {"a-1", "a-2"}, {3, 0}, {4, 1}, {12, 11}},
        {NULL, 4, {"a-1", "a-2", "ab-1", "b-1"}, {3, 0, 1, 4}, {4, 1, 2, 5},
         {12, 11, 10, 8}},
        {"", 4, {"a-1", "a-2", "ab-1", "b-1"}, {3, 0, 1, 4}, {4, 1, 2, 5},
         {12, 11, 10, 8}},
        {"b-1", 1, {"b-1"}, {4}, {5}, {8}},
        {"zz", 0, {NULL}, {0}, {0}, {0}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        print_message("streams prefix %s\n",
                      cases[ci].prefix ? cases[ci].prefix : "(null)");
        maos_stream_page *p = NULL;
        MT_EQ_ERR(maos_streams(c, cases[ci].prefix, NULL, 0, &p), 0);
        MT_EQ_U64(p->n, cases[ci].n);
        MT_EQ_INT(p->has_next, 0);
        for (size_t i = 0; i < p->n; i++) {
            MT_EQ_MEM_STR(p->streams[i].stream, p->streams[i].stream_len,
                          cases[ci].names[i]);
            MT_EQ_U64(p->streams[i].head, cases[ci].head[i]);
            MT_EQ_U64(p->streams[i].count, cases[ci].count[i]);
            MT_EQ_U64(p->streams[i].last_position, cases[ci].last[i]);
        }
        maos_stream_page_free(p);

        /* the same, one per page, following the cursor */
        size_t seen = 0;
        char after[300] = "";
        for (int guard = 0; guard < 20; guard++) {
            p = NULL;
            MT_EQ_ERR(maos_streams(c, cases[ci].prefix, after, 1, &p), 0);
            MT_CMP_INT(p->n, <=, 1);
            if (p->n) {
                MT_TRUE(seen < cases[ci].n);
                MT_EQ_MEM_STR(p->streams[0].stream, p->streams[0].stream_len,
                              cases[ci].names[seen]);
                seen++;
            }
            int more = p->has_next;
            if (more)
                snprintf(after, sizeof after, "%s", p->next);
            maos_stream_page_free(p);
            if (!more)
                break;
        }
        MT_EQ_U64(seen, cases[ci].n);
    }
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* One conflicting append: the error, the actual version, nothing written. */
static void expect_wev(maos_ctx *c, const char *stream, int64_t expect,
                       int64_t actual)
{
    uint64_t head = head_position(c);
    batch *b = malloc(sizeof *b);
    mk_batch(b, 2, stream, "Conflict", 0, 0);
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, stream, expect, b->ev, 2, &info);
    free(b);
    print_message("append %s expect %lld: %d (%s) %s\n", stream,
                  (long long)expect, rc, maos_err_name(rc), c->errstr);
    MT_EQ_ERR(rc, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_ERR(c->err, MAOS_EWRONG_EXPECTED_VERSION);
    int64_t got = -99;
    MT_EQ_INT(maos_err_actual(c, &got), 1);
    MT_EQ_INT(got, actual);
    MT_EQ_U64(head_position(c), head);
}

static void test_expected_version(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();

    /* no_stream */
    maos_append_info i1 = app(c, "ev-1", MAOS_EXPECT_NO_STREAM, "T", 1, 0, 0);
    MT_EQ_U64(i1.version, 0);
    expect_wev(c, "ev-1", MAOS_EXPECT_NO_STREAM, 0);

    /* exists */
    expect_wev(c, "ev-2", MAOS_EXPECT_EXISTS, -1);
    maos_append_info i2 = app(c, "ev-1", MAOS_EXPECT_EXISTS, "T", 2, 0, 1);
    MT_EQ_U64(i2.version, 1); /* head now 2 */

    /* exact */
    expect_wev(c, "ev-1", 0, 2);
    expect_wev(c, "ev-1", 1, 2);
    expect_wev(c, "ev-1", 3, 2);
    expect_wev(c, "ev-1", 1000000, 2);
    expect_wev(c, "ev-3", 0, -1);
    maos_append_info i3 = app(c, "ev-1", 2, "T", 1, 0, 3);
    MT_EQ_U64(i3.version, 3);
    expect_wev(c, "ev-1", 2, 3);

    /* any */
    maos_append_info i4 = app(c, "ev-1", MAOS_EXPECT_ANY, "T", 1, 0, 4);
    MT_EQ_U64(i4.version, 4);
    maos_append_info i5 = app(c, "ev-4", MAOS_EXPECT_ANY, "T", 1, 0, 0);
    MT_EQ_U64(i5.version, 0);

    /* the conflicting streams were not created */
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "ev-2", MAOS_FROM_START, 0, 10, &p), MAOS_ENOT_FOUND);
    MT_EQ_ERR(maos_read(c, "ev-3", MAOS_FROM_START, 0, 10, &p), MAOS_ENOT_FOUND);
    /* ev-1 holds exactly versions 0..4, none of type Conflict */
    p = NULL;
    MT_EQ_ERR(maos_read(c, "ev-1", MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 5);
    for (size_t i = 0; i < p->n; i++) {
        MT_EQ_U64(p->events[i].version, i);
        MT_EQ_MEM_STR(p->events[i].type, p->events[i].type_len, "T");
    }
    maos_page_free(p);
    MT_EQ_U64(head_position(c), 6);

    /* a refusal is not sticky: the context goes on */
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void expect_dup(maos_ctx *c, const char *stream, int64_t expect,
                       batch *b, size_t n, uint64_t version, uint64_t position)
{
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, stream, expect, b->ev, n, &info);
    if (rc != 0)
        MT_FAIL("idempotent re-send to %s: %d (%s) %s", stream, rc,
                maos_err_name(rc), c->errstr);
    MT_EQ_INT(info.duplicate, 1);
    MT_EQ_U64(info.version, version);
    MT_EQ_U64(info.position, position);
    MT_EQ_U64(info.count, n);
}

static uint64_t stream_count(maos_ctx *c, const char *stream)
{
    maos_page *p = NULL;
    int rc = maos_read(c, stream, MAOS_FROM_START, 0, 1000, &p);
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    MT_EQ_ERR(rc, 0);
    uint64_t n = p->n;
    maos_page_free(p);
    return n;
}

static void test_idempotent_resend(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "pad-1", MAOS_EXPECT_ANY, "T", 2, 0, 0); /* positions 1..2 */
    batch *b = malloc(sizeof *b);
    mk_batch(b, 3, "idem-1", "Once", 7, 0);
    maos_append_info first;
    memset(&first, 0, sizeof first);
    MT_EQ_ERR(maos_append(c, "idem-1", MAOS_EXPECT_NO_STREAM, b->ev, 3, &first),
              0);
    MT_EQ_U64(first.version, 0);
    MT_EQ_U64(first.position, 3);
    app(c, "pad-1", MAOS_EXPECT_ANY, "T", 1, 0, 2); /* position 6 */
    uint64_t head = head_position(c);
    MT_EQ_U64(head, 6);

    /* the same request again, and with expectations that would now fail */
    expect_dup(c, "idem-1", MAOS_EXPECT_NO_STREAM, b, 3, 0, 3);
    expect_dup(c, "idem-1", MAOS_EXPECT_ANY, b, 3, 0, 3);
    expect_dup(c, "idem-1", 0, b, 3, 0, 3);
    expect_dup(c, "idem-1", 17, b, 3, 0, 3);
    MT_EQ_U64(head_position(c), head);
    MT_EQ_U64(stream_count(c, "idem-1"), 3);

    /* from another connection too */
    maos_ctx *c2 = conn();
    expect_dup(c2, "idem-1", MAOS_EXPECT_ANY, b, 3, 0, 3);
    maos_free(c2);

    /* the same ids on another stream: refused, nothing written */
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, "idem-2", MAOS_EXPECT_ANY, b->ev, 3, &info);
    print_message("same ids, other stream: %d (%s) %s\n", rc, maos_err_name(rc),
                  c->errstr);
    MT_EQ_ERR(rc, MAOS_ECONFLICT);
    MT_EQ_U64(stream_count(c, "idem-2"), 0);
    /* one reused id on another stream, among new ones */
    batch *b2 = malloc(sizeof *b2);
    mk_batch(b2, 3, "idem-3", "Once", 8, 0);
    memcpy(b2->ids[1], b->ids[1], 16);
    rc = maos_append(c, "idem-3", MAOS_EXPECT_ANY, b2->ev, 3, &info);
    MT_EQ_ERR(rc, MAOS_ECONFLICT);
    MT_EQ_U64(stream_count(c, "idem-3"), 0);
    /* an id reused in the same stream for a different event (new batch
     * whose first id is old and the others new): an error, nothing written */
    mk_batch(b2, 2, "idem-1", "Once", 9, 0);
    memcpy(b2->ids[0], b->ids[2], 16);
    rc = maos_append(c, "idem-1", MAOS_EXPECT_ANY, b2->ev, 2, &info);
    print_message("reused id in a new batch: %d (%s) %s\n", rc,
                  maos_err_name(rc), c->errstr);
    MT_CMP_INT(rc, <, 0);
    MT_EQ_U64(stream_count(c, "idem-1"), 3);
    MT_EQ_U64(head_position(c), head);

    /* idempotent txn */
    batch *t1 = malloc(sizeof *t1), *t2 = malloc(sizeof *t2);
    mk_batch(t1, 2, "idem-t1", "Tx", 10, 0);
    mk_batch(t2, 1, "idem-t2", "Tx", 11, 0);
    maos_txn_append tx[2] = {{"idem-t1", MAOS_EXPECT_NO_STREAM, t1->ev, 2, NULL},
                             {"idem-t2", MAOS_EXPECT_NO_STREAM, t2->ev, 1, NULL}};
    maos_append_info tr[2];
    memset(tr, 0, sizeof tr);
    MT_EQ_ERR(maos_txn(c, tx, 2, tr), 0);
    MT_EQ_U64(tr[0].position, 7);
    MT_EQ_U64(tr[1].position, 9);
    head = head_position(c);
    MT_EQ_U64(head, 9);
    memset(tr, 0, sizeof tr);
    rc = maos_txn(c, tx, 2, tr);
    if (rc != 0)
        MT_FAIL("idempotent txn re-send: %d (%s) %s", rc, maos_err_name(rc),
                c->errstr);
    MT_EQ_INT(tr[0].duplicate, 1);
    MT_EQ_INT(tr[1].duplicate, 1);
    MT_EQ_U64(tr[0].position, 7);
    MT_EQ_U64(tr[1].position, 9);
    MT_EQ_U64(head_position(c), head);

    /* across a restart */
    maos_free(c);
    mt_daemon_restart(g_d);
    c = conn();
    expect_dup(c, "idem-1", MAOS_EXPECT_NO_STREAM, b, 3, 0, 3);
    MT_EQ_U64(head_position(c), head);
    memset(tr, 0, sizeof tr);
    MT_EQ_ERR(maos_txn(c, tx, 2, tr), 0);
    MT_EQ_INT(tr[0].duplicate, 1);
    MT_EQ_U64(tr[1].position, 9);
    MT_EQ_U64(head_position(c), head);
    /* and across a kill -9 */
    maos_free(c);
    mt_daemon_kill9(g_d);
    mt_daemon_up(g_d);
    c = conn();
    expect_dup(c, "idem-1", MAOS_EXPECT_ANY, b, 3, 0, 3);
    MT_EQ_U64(head_position(c), head);
    MT_EQ_U64(stream_count(c, "idem-1"), 3);
    /* new appends continue densely */
    maos_append_info n = app(c, "idem-1", 2, "After", 1, 0, 3);
    MT_EQ_U64(n.version, 3);
    MT_EQ_U64(n.position, head + 1);

    free(b);
    free(b2);
    free(t1);
    free(t2);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* Two appends to one stream that landed at adjacent positions (nothing
 * else written in between) are still two appends: re-sending the first one
 * alone is an idempotent duplicate, not "part of a longer append". */
static void test_idempotent_resend_adjacent_appends(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    batch *b1 = malloc(sizeof *b1), *b2 = malloc(sizeof *b2);
    mk_batch(b1, 1, "adj-1", "First", 21, 0);
    mk_batch(b2, 2, "adj-1", "Second", 22, 1);
    maos_append_info i1, i2;
    memset(&i1, 0, sizeof i1);
    memset(&i2, 0, sizeof i2);
    MT_EQ_ERR(maos_append(c, "adj-1", MAOS_EXPECT_ANY, b1->ev, 1, &i1), 0);
    MT_EQ_ERR(maos_append(c, "adj-1", MAOS_EXPECT_ANY, b2->ev, 2, &i2), 0);
    MT_EQ_U64(i1.position, 1);
    MT_EQ_U64(i2.position, 2);
    expect_dup(c, "adj-1", MAOS_EXPECT_ANY, b1, 1, 0, 1);
    expect_dup(c, "adj-1", MAOS_EXPECT_ANY, b2, 2, 1, 2);
    MT_EQ_U64(head_position(c), 3);
    free(b1);
    free(b2);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* The ids maosd makes for events sent without one (keys.h maosd_id_name_position:
 * a UUIDv7 whose last 6 bytes are the event's position) have no ids
 * index entry, and a re-send of those events with them is still found:
 * a duplicate in the same stream (any run of its consecutive events), a
 * CONFLICT elsewhere or for other contents; an id of the same shape that
 * names another event's position is a new id. */
static void test_idempotent_resend_made_ids(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "pad-m", MAOS_EXPECT_ANY, "T", 2, 0, 0); /* positions 1..2 */
    app(c, "made-1", MAOS_EXPECT_NO_STREAM, "M", 3, 0, 0); /* 3..5, no ids */
    uint64_t head = head_position(c);
    MT_EQ_U64(head, 5);
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "made-1", MAOS_FROM_START, 0, 10, &p), 0);
    MT_EQ_U64(p->n, 3);
    batch *b = malloc(sizeof *b), *o = malloc(sizeof *o);
    mk_batch(b, 3, "made-1", "M", 0, 0);
    for (size_t k = 0; k < 3; k++) {
        const uint8_t *id = p->events[k].id;
        MT_EQ_INT(id[6] >> 4, 7);      /* UUIDv7 */
        MT_EQ_INT(id[8] >> 6, 2);      /* variant 10 */
        uint64_t at = 0;
        for (int i = 10; i < 16; i++)
            at = at << 8 | id[i];
        MT_EQ_U64(at, 3 + k);          /* its position */
        memcpy(b->ids[k], id, 16);
        b->ev[k].id = b->ids[k];
    }
    maos_page_free(p);

    /* the whole append again, and a run of it */
    expect_dup(c, "made-1", MAOS_EXPECT_NO_STREAM, b, 3, 0, 3);
    batch *r = malloc(sizeof *r);
    *r = *b;
    for (size_t k = 0; k < 2; k++) {
        r->ev[k] = b->ev[k + 1];
        r->ev[k].data = r->data[k + 1];
        r->ev[k].id = r->ids[k + 1];
    }
    expect_dup(c, "made-1", MAOS_EXPECT_ANY, r, 2, 1, 4);
    MT_EQ_U64(head_position(c), head);

    /* elsewhere, other contents, out of order: refused, nothing written */
    maos_append_info info;
    MT_EQ_ERR(maos_append(c, "made-2", MAOS_EXPECT_ANY, b->ev, 3, &info),
              MAOS_ECONFLICT);
    mk_batch(o, 1, "made-1", "Other", 0, 7);
    memcpy(o->ids[0], b->ids[0], 16);
    o->ev[0].id = o->ids[0];
    MT_EQ_ERR(maos_append(c, "made-1", MAOS_EXPECT_ANY, o->ev, 1, &info),
              MAOS_ECONFLICT);
    maos_event_spec rev[2] = {b->ev[1], b->ev[0]};
    MT_EQ_ERR(maos_append(c, "made-1", MAOS_EXPECT_ANY, rev, 2, &info),
              MAOS_ECONFLICT);
    MT_EQ_U64(head_position(c), head);
    MT_EQ_U64(stream_count(c, "made-2"), 0);

    /* the shape, naming position 4 but not its event's id; and naming a
     * position past the head: new ids, stored and indexed */
    mk_batch(o, 2, "made-3", "New", 0, 0);
    memcpy(o->ids[0], b->ids[1], 16);
    o->ids[0][9] ^= 0x01;
    memcpy(o->ids[1], b->ids[2], 16);
    o->ids[1][15] = 0x40; /* position ...40: past the head */
    o->ev[0].id = o->ids[0];
    o->ev[1].id = o->ids[1];
    memset(&info, 0, sizeof info);
    MT_EQ_ERR(maos_append(c, "made-3", MAOS_EXPECT_ANY, o->ev, 2, &info), 0);
    MT_EQ_INT(info.duplicate, 0);
    MT_EQ_U64(info.position, head + 1);
    expect_dup(c, "made-3", MAOS_EXPECT_ANY, o, 2, 0, head + 1);
    head += 2;

    /* across a restart */
    maos_free(c);
    mt_daemon_restart(g_d);
    c = conn();
    expect_dup(c, "made-1", MAOS_EXPECT_ANY, b, 3, 0, 3);
    expect_dup(c, "made-3", MAOS_EXPECT_ANY, o, 2, 0, head - 1);
    MT_EQ_U64(head_position(c), head);
    free(b);
    free(r);
    free(o);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_txn_all_or_nothing(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "tx-b", MAOS_EXPECT_ANY, "Seed", 1, 0, 0); /* position 1, head 0 */
    batch *ba = malloc(sizeof *ba), *bb = malloc(sizeof *bb),
          *bc = malloc(sizeof *bc);
    mk_batch(ba, 2, "tx-a", "A", 0, 0);
    mk_batch(bb, 1, "tx-b", "B", 0, 1);
    mk_batch(bc, 3, "tx-c", "C", 0, 0);

    /* the 2nd append's precondition fails */
    maos_txn_append tx[3] = {{"tx-a", MAOS_EXPECT_NO_STREAM, ba->ev, 2, NULL},
                             {"tx-b", 5, bb->ev, 1, NULL},
                             {"tx-c", MAOS_EXPECT_ANY, bc->ev, 3, NULL}};
    int rc = maos_txn(c, tx, 3, NULL);
    print_message("txn failing at 1: %d (%s) %s\n", rc, maos_err_name(rc),
                  c->errstr);
    MT_EQ_ERR(rc, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(maos_err_index(c), 1);
    int64_t actual = -99;
    MT_EQ_INT(maos_err_actual(c, &actual), 1);
    MT_EQ_INT(actual, 0);
    MT_EQ_U64(stream_count(c, "tx-a"), 0);
    MT_EQ_U64(stream_count(c, "tx-b"), 1);
    MT_EQ_U64(stream_count(c, "tx-c"), 0);
    MT_EQ_U64(head_position(c), 1);

    /* the 3rd fails (exists on a missing stream) */
    tx[1].expect = 0;
    tx[2].expect = MAOS_EXPECT_EXISTS;
    rc = maos_txn(c, tx, 3, NULL);
    MT_EQ_ERR(rc, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(maos_err_index(c), 2);
    MT_EQ_INT(maos_err_actual(c, &actual), 1);
    MT_EQ_INT(actual, -1);
    MT_EQ_U64(stream_count(c, "tx-a"), 0);
    MT_EQ_U64(stream_count(c, "tx-b"), 1);
    MT_EQ_U64(head_position(c), 1);

    /* the 1st fails */
    tx[0].expect = 3;
    tx[2].expect = MAOS_EXPECT_ANY;
    rc = maos_txn(c, tx, 3, NULL);
    MT_EQ_ERR(rc, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(maos_err_index(c), 0);
    MT_EQ_INT(maos_err_actual(c, &actual), 1);
    MT_EQ_INT(actual, -1);
    MT_EQ_U64(head_position(c), 1);

    /* an invalid name in the 2nd: nothing written either */
    tx[0].expect = MAOS_EXPECT_NO_STREAM;
    tx[1].stream = "$tx-b";
    rc = maos_txn(c, tx, 3, NULL);
    MT_EQ_ERR(rc, MAOS_EINVALID_NAME);
    MT_EQ_INT(maos_err_index(c), 1); /* PROTOCOL.md: the append's index */
    MT_EQ_U64(head_position(c), 1);
    MT_EQ_U64(stream_count(c, "tx-a"), 0);
    tx[1].stream = "tx-b";

    /* all preconditions hold: everything, contiguous, in order */
    maos_append_info res[3];
    memset(res, 0, sizeof res);
    MT_EQ_ERR(maos_txn(c, tx, 3, res), 0);
    MT_EQ_U64(res[0].version, 0);
    MT_EQ_U64(res[0].position, 2);
    MT_EQ_U64(res[0].count, 2);
    MT_EQ_U64(res[1].version, 1);
    MT_EQ_U64(res[1].position, 4);
    MT_EQ_U64(res[2].version, 0);
    MT_EQ_U64(res[2].position, 5);
    MT_EQ_U64(res[2].count, 3);
    MT_EQ_U64(head_position(c), 7);
    evrec ev[10];
    size_t n = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, ev, 10);
    MT_EQ_U64(n, 7);
    const char *order[] = {"tx-b", "tx-a", "tx-a", "tx-b", "tx-c", "tx-c", "tx-c"};
    for (size_t i = 0; i < n; i++) {
        MT_EQ_U64(ev[i].pos, i + 1);
        MT_EQ_STR(ev[i].stream, order[i]);
    }

    /* a stream named twice in one txn: refused, nothing written */
    maos_txn_append twice[2] = {{"tx-d", MAOS_EXPECT_ANY, ba->ev, 1, NULL},
                                {"tx-d", MAOS_EXPECT_ANY, ba->ev + 1, 1, NULL}};
    rc = maos_txn(c, twice, 2, NULL);
    MT_CMP_INT(rc, <, 0);
    MT_EQ_U64(head_position(c), 7);

    free(ba);
    free(bb);
    free(bc);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_invalid_names(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    /* streams: 1..1024 bytes (MAOS_STREAM_MAX); types: 1..255 */
    char s1025[MAOS_STREAM_MAX + 2], s1024[MAOS_STREAM_MAX + 1];
    char s256[257], s255[256];
    memset(s1025, 'n', MAOS_STREAM_MAX + 1);
    s1025[MAOS_STREAM_MAX + 1] = 0;
    memset(s1024, 'n', MAOS_STREAM_MAX);
    s1024[MAOS_STREAM_MAX] = 0;
    memset(s256, 'n', 256);
    s256[256] = 0;
    memset(s255, 'n', 255);
    s255[255] = 0;
    const char *bad[] = {"", s1025, "bad\xff-1", "\xc3\x28", "\xe2\x82", "$all",
                         "$system-1", "$", "session-1", "agent-a", "lock-l",
                         "kv.plan-1", "kv.x"};
    maos_event_spec ev = {.type = "T"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("bad stream name %zu\n", i);
        int rc = maos_append(c, bad[i], MAOS_EXPECT_ANY, &ev, 1, NULL);
        MT_EQ_ERR(rc, MAOS_EINVALID_NAME);
        MT_EQ_ERR(maos_ping(c), 0); /* not fatal */
    }
    const char *badtypes[] = {"", s256, "t\xff", "\xed\xa0\x80"};
    for (size_t i = 0; i < sizeof badtypes / sizeof badtypes[0]; i++) {
        print_message("bad type name %zu\n", i);
        maos_event_spec e2 = {.type = badtypes[i]};
        int rc = maos_append(c, "names-1", MAOS_EXPECT_ANY, &e2, 1, NULL);
        MT_EQ_ERR(rc, MAOS_EINVALID_NAME);
    }
    MT_EQ_U64(head_position(c), 0);
    /* limits are inclusive, and non-ASCII UTF-8 is fine */
    app(c, s1024, MAOS_EXPECT_ANY, "T", 1, 0, 0);
    maos_event_spec e3 = {.type = s255};
    MT_EQ_ERR(maos_append(c, "names-1", MAOS_EXPECT_ANY, &e3, 1, NULL), 0);
    app(c, "\xc3\xa9v\xc3\xa9nement-\xf0\x9f\x98\x80", MAOS_EXPECT_ANY,
        "\xe2\x9c\x93", 1, 0, 0);
    MT_EQ_U64(head_position(c), 3);
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, s1024, MAOS_FROM_START, 0, 10, &p), 0);
    MT_EQ_U64(p->n, 1);
    MT_EQ_U64(p->events[0].stream_len, MAOS_STREAM_MAX);
    maos_page_free(p);
    /* reading with an invalid name is refused, not "not found" */
    p = NULL;
    int rc = maos_read(c, "\xff", MAOS_FROM_START, 0, 10, &p);
    MT_EQ_ERR(rc, MAOS_EINVALID_NAME);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_restart_keeps_everything(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    for (int r = 0; r < 50; r++) {
        char s[32];
        snprintf(s, sizeof s, "keep-%d", r % 5);
        app(c, s, MAOS_EXPECT_ANY, r % 2 ? "Odd" : "Even", (size_t)(1 + r % 7),
            (uint32_t)(100 + r), (uint64_t)r * 10);
    }
    size_t cap = 1000;
    evrec *before = calloc(cap, sizeof *before);
    evrec *after = calloc(cap, sizeof *after);
    size_t n = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, before, cap);
    maos_stream_page *sp = NULL;
    MT_EQ_ERR(maos_streams(c, "keep-", NULL, 0, &sp), 0);
    MT_EQ_U64(sp->n, 5);
    uint64_t heads[5], counts[5];
    for (size_t i = 0; i < 5; i++) {
        heads[i] = sp->streams[i].head;
        counts[i] = sp->streams[i].count;
    }
    maos_stream_page_free(sp);
    maos_free(c);

    for (int round = 0; round < 2; round++) {
        if (round == 0)
            mt_daemon_restart(g_d);
        else {
            mt_daemon_kill9(g_d);
            mt_daemon_up(g_d);
        }
        c = conn();
        size_t m = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, after, cap);
        MT_EQ_U64(m, n);
        for (size_t i = 0; i < n; i++) {
            MT_EQ_U64(after[i].pos, before[i].pos);
            MT_EQ_U64(after[i].ver, before[i].ver);
            MT_EQ_INT(after[i].time, before[i].time);
            MT_EQ_STR(after[i].stream, before[i].stream);
            MT_EQ_STR(after[i].type, before[i].type);
            MT_TRUE(memcmp(after[i].id, before[i].id, 16) == 0);
            MT_EQ_U64(after[i].data_len, before[i].data_len);
            MT_TRUE(memcmp(after[i].data, before[i].data, before[i].data_len) == 0);
        }
        sp = NULL;
        MT_EQ_ERR(maos_streams(c, "keep-", NULL, 0, &sp), 0);
        MT_EQ_U64(sp->n, 5);
        for (size_t i = 0; i < 5; i++) {
            MT_EQ_U64(sp->streams[i].head, heads[i]);
            MT_EQ_U64(sp->streams[i].count, counts[i]);
        }
        maos_stream_page_free(sp);
        MT_EQ_U64(head_position(c), n);
        /* writing goes on where it stopped: versions and positions */
        maos_append_info i1 = app(c, "keep-0", (int64_t)heads[0], "New", 1, 0, 0);
        MT_EQ_U64(i1.version, heads[0] + 1);
        MT_EQ_U64(i1.position, n + 1);
        heads[0]++;
        counts[0]++;
        n = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, before, cap);
        maos_free(c);
    }
    /* the hash chain is intact */
    mt_run r;
    int st = mt_ctl(g_d, &r, "verify", NULL);
    if (st != 0 || !strstr(r.out, "OK"))
        MT_FAIL("maosctl verify: status %d, out \"%s\", err \"%s\"", st, r.out,
                r.err);
    mt_run_free(&r);
    free(before);
    free(after);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_server_ids_uuidv7(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    uint8_t ids[40][16];
    int64_t t0 = wall_us();
    size_t k = 0;
    for (int r = 0; r < 4; r++) {
        maos_append_info info;
        memset(&info, 0, sizeof info);
        batch *b = malloc(sizeof *b);
        mk_batch(b, 10, "v7-1", "T", 0, k);
        MT_EQ_ERR(maos_append_ids(c, "v7-1", MAOS_EXPECT_ANY, b->ev, 10, &info, ids + k), 0);
        free(b);
        k += 10;
    }
    int64_t t1 = wall_us();
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "v7-1", MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 40);
    for (size_t i = 0; i < 40; i++) {
        const uint8_t *id = ids[i];
        MT_TRUE(memcmp(p->events[i].id, id, 16) == 0);
        MT_EQ_INT(id[6] >> 4, 7);          /* version nibble */
        MT_EQ_INT(id[8] & 0xc0, 0x80);     /* RFC 4122 variant */
        uint64_t ms = 0;
        for (int j = 0; j < 6; j++)
            ms = ms << 8 | id[j];
        MT_CMP_INT((int64_t)ms, >=, t0 / 1000 - 5000);
        MT_CMP_INT((int64_t)ms, <=, t1 / 1000 + 5000);
        for (size_t j = 0; j < i; j++)
            if (memcmp(ids[j], id, 16) == 0)
                MT_FAIL("server id %zu repeats id %zu", i, j);
        if (i > 0)
            MT_TRUE(memcmp(ids[i - 1], id, 6) <= 0); /* time-ordered */
    }
    maos_page_free(p);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

static void test_pipelined_appends(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "pipe-pad", MAOS_EXPECT_ANY, "T", 1, 0, 0); /* position 1 */
    enum { N = 1000, S = 4 };
    uint64_t *rids = calloc(N, sizeof *rids);
    char data[N][64];
    for (int i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "pipe-%d", i % S);
        size_t dl = mk_data(data[i], sizeof data[i], (uint64_t)i, s);
        maos_event_spec ev = {NULL, "Piped", data[i], dl, NULL, 0};
        int rc = maos_append_send(c, s, MAOS_EXPECT_ANY, &ev, 1, &rids[i]);
        if (rc != 0)
            MT_FAIL("append_send %d: %d (%s)", i, rc, maos_err_name(rc));
    }
    MT_EQ_ERR(maos_flush(c), 0);
    MT_EQ_U64(maos_pending(c), N);
    /* a synchronous call now waits for its own reply only (matched by
     * rid); the pipelined replies stay for maos_reply_recv */
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_U64(maos_pending(c), N);
    char *seen = calloc(N, 1);
    char *pos_seen = calloc(N + 2, 1);
    for (int k = 0; k < N; k++) {
        maos_result *m = NULL;
        int rc = maos_reply_recv(c, &m);
        if (rc != 0)
            MT_FAIL("reply_recv %d: %d (%s) %s", k, rc, maos_err_name(rc),
                    c->errstr);
        MT_TRUE(m != NULL);
        int idx = -1;
        for (int i = 0; i < N; i++)
            if (rids[i] == maos_result_rid(m)) {
                idx = i;
                break;
            }
        if (idx < 0)
            MT_FAIL("reply for an unknown rid %llu", (unsigned long long)maos_result_rid(m));
        if (seen[idx])
            MT_FAIL("two replies for request %d", idx);
        seen[idx] = 1;
        MT_EQ_ERR(maos_result_status(m), 0);
        MT_EQ_U64(maos_result_count(m), 1);
        maos_append_info ai;
        MT_EQ_ERR(maos_result_append(m, 0, &ai), 0);
        uint64_t pos = ai.position;
        MT_CMP_INT(pos, >=, 2);
        MT_CMP_INT(pos, <=, N + 1);
        if (pos_seen[pos])
            MT_FAIL("position %llu acknowledged twice", (unsigned long long)pos);
        pos_seen[pos] = 1;
        maos_result_free(m);
    }
    MT_EQ_U64(maos_pending(c), 0);
    maos_result *m = NULL;
    MT_EQ_ERR(maos_reply_recv(c, &m), 0);
    MT_TRUE(m == NULL);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_U64(head_position(c), N + 1);
    /* per stream: versions dense, and exactly the events sent to it (the
     * order of pipelined requests is not asserted: replies, and so commits,
     * may come in any order) */
    for (int s = 0; s < S; s++) {
        char name[32];
        snprintf(name, sizeof name, "pipe-%d", s);
        maos_page *p = NULL;
        MT_EQ_ERR(maos_read(c, name, MAOS_FROM_START, 0, 1000, &p), 0);
        MT_EQ_U64(p->n, N / S);
        char *got = calloc(N, 1);
        for (size_t i = 0; i < p->n; i++) {
            MT_EQ_U64(p->events[i].version, i);
            int which = -1;
            for (int j = s; j < N; j += S) {
                char want[64];
                size_t wl = mk_data(want, sizeof want, (uint64_t)j, name);
                if (p->events[i].data_len == wl &&
                    memcmp(p->events[i].data, want, wl) == 0) {
                    which = j;
                    break;
                }
            }
            if (which < 0 || got[which])
                MT_FAIL("%s version %zu: data is not one of the events sent "
                        "to it, or repeats one (%d)",
                        name, i, which);
            got[which] = 1;
        }
        free(got);
        maos_page_free(p);
    }
    free(rids);
    free(seen);
    free(pos_seen);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* ---- regressions from the review of bf6c102 ------------------------------ */

/* A msgpack bin32 of n bytes, every byte `fill`; *len gets the value's size. */
static char *mk_bin(size_t n, uint8_t fill, size_t *len)
{
    char *p = malloc(n + 5);
    if (!p)
        MT_FAIL("malloc %zu", n + 5);
    p[0] = (char)0xc6;
    p[1] = (char)(n >> 24);
    p[2] = (char)(n >> 16);
    p[3] = (char)(n >> 8);
    p[4] = (char)n;
    memset(p + 5, fill, n);
    *len = n + 5;
    return p;
}

/* What a big event read back was: its key (version or position), the
 * length of its data value and the byte it was filled with. */
typedef struct bigrec {
    uint64_t key;
    size_t len;
    int fill;
} bigrec;

/* The data of e is a bin32 of identical bytes; returns that byte. */
static int bin_fill(const maos_event *e)
{
    const unsigned char *d = e->data;
    if (e->data_len < 6 || d[0] != 0xc6)
        MT_FAIL("event %llu: data is not a bin32 (%zu bytes, first 0x%02x)",
                (unsigned long long)e->position, e->data_len,
                e->data_len ? d[0] : 0);
    size_t n = (size_t)d[1] << 24 | (size_t)d[2] << 16 | (size_t)d[3] << 8 | d[4];
    MT_EQ_U64(n + 5, e->data_len);
    if (memcmp(d + 5, d + 6, n - 1) != 0)
        MT_FAIL("event %llu: data bytes differ from each other",
                (unsigned long long)e->position);
    return d[5];
}

/* Read one stream (stream != NULL, maos_read) or $all (maos_read_all) with
 * the default limit, following next to the end.  Returns the events read. */
static size_t big_collect(maos_ctx *c, const char *stream, int backward,
                          bigrec *out, size_t cap, int *pages)
{
    size_t n = 0;
    uint64_t from = MAOS_FROM_START;
    *pages = 0;
    for (int guard = 0; guard < 1000; guard++) {
        maos_page *p = NULL;
        int rc = stream ? maos_read(c, stream, from, backward, 0, &p)
                        : maos_read_all(c, NULL, from, backward, 0, &p);
        if (rc != 0)
            MT_FAIL("%s %s, %s, page %d from %llu: %d (%s) %s",
                    stream ? "read" : "read_all", stream ? stream : "$all",
                    backward ? "backward" : "forward", *pages,
                    (unsigned long long)from, rc, maos_err_name(rc), c->errstr);
        (*pages)++;
        for (size_t i = 0; i < p->n; i++) {
            if (n >= cap) {
                maos_page_free(p);
                MT_FAIL("more than %zu events", cap);
            }
            out[n].key = stream ? p->events[i].version : p->events[i].position;
            out[n].len = p->events[i].data_len;
            out[n].fill = bin_fill(&p->events[i]);
            n++;
        }
        int more = p->has_next;
        uint64_t next = p->next;
        size_t got = p->n;
        maos_page_free(p);
        if (!more)
            return n;
        if (stream && got == 0)
            MT_FAIL("stream read page with has_next but no events");
        from = next;
    }
    MT_FAIL("paging did not end");
}

/* Every event of sizes[] (filled 'a' + k, at version/position k [+ 1]) came
 * back, in order, in all four reads. */
static void assert_all_readable(maos_ctx *c, const char *stream,
                                const size_t *sizes, size_t n)
{
    bigrec got[32];
    for (int all = 0; all < 2; all++)
        for (int backward = 0; backward < 2; backward++) {
            int pages;
            size_t m = big_collect(c, all ? NULL : stream, backward, got, 32,
                                   &pages);
            print_message("%s %s: %zu events in %d pages\n",
                          all ? "read_all" : "read",
                          backward ? "backward" : "forward", m, pages);
            MT_EQ_U64(m, n);
            for (size_t i = 0; i < n; i++) {
                size_t k = backward ? n - 1 - i : i;
                MT_EQ_U64(got[i].key, all ? k + 1 : k);
                MT_EQ_U64(got[i].len, sizes[k] + 5);
                MT_EQ_INT(got[i].fill, 'a' + (int)k);
            }
        }
}

static void assert_verify_ok(void)
{
    mt_run r;
    int st = mt_ctl(g_d, &r, "verify", NULL);
    if (st != 0 || !strstr(r.out, "OK")) {
        char msg[600];
        snprintf(msg, sizeof msg, "maosctl verify: status %d, out \"%.200s\", "
                 "err \"%.200s\"", st, r.out, r.err);
        mt_run_free(&r);
        MT_FAIL("%s", msg);
    }
    mt_run_free(&r);
}

static void append_sizes(maos_ctx *c, const char *stream, const size_t *sizes,
                         size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t len;
        char *data = mk_bin(sizes[k], (uint8_t)('a' + k), &len);
        maos_event_spec ev = {NULL, "Big", data, len, NULL, 0};
        maos_append_info info;
        memset(&info, 0, sizeof info);
        int rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, &info);
        free(data);
        if (rc != 0)
            MT_FAIL("append %zu bytes: %d (%s) %s", sizes[k], rc,
                    maos_err_name(rc), c->errstr);
        MT_EQ_U64(info.version, k);
    }
}

/* A read reply stays within what clients accept (max_frame + slack): a
 * 1 MB and a 16 MB event next to each other come back in separate pages,
 * with the default limit, both ways, and maosctl verify reads them too.
 * (Before bf6c102 a reply took records while it was under 1 MiB, so after
 * 1.04 MB it still took the 16 MB one, and the client refused the 17 MB
 * reply as too large.) */
static void test_big_events_readable(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    static const size_t sizes[] = {100, 1040000, 200, 16000000, 300, 400};
    size_t n = sizeof sizes / sizeof sizes[0];
    append_sizes(c, "big-1", sizes, n);
    assert_all_readable(c, "big-1", sizes, n);
    maos_free(c);
    assert_verify_ok();
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* The same with a small --max-frame: ten 30 KB events, at most two per
 * 64 KiB reply, all readable by following next. */
static void test_small_max_frame_reads(void **state)
{
    (void)state;
    g_d = mt_daemon_new(NULL, NULL);
    mt_daemon_add_arg(g_d, "--max-frame");
    mt_daemon_add_arg(g_d, "65536");
    mt_daemon_up(g_d);
    maos_ctx *c = conn();
    MT_EQ_U64(maos_max_frame(c), 65536);
    size_t sizes[10];
    for (size_t k = 0; k < 10; k++)
        sizes[k] = 30000;
    append_sizes(c, "mf-1", sizes, 10);
    assert_all_readable(c, "mf-1", sizes, 10);
    maos_free(c);
    assert_verify_ok();
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* An `after` cursor that sorts before the prefix starts at the prefix
 * (before bf6c102 the listing came back empty). */
static void test_streams_after_before_prefix(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "a1", MAOS_EXPECT_ANY, "T", 1, 0, 0);
    app(c, "b1", MAOS_EXPECT_ANY, "T", 1, 0, 0);
    maos_stream_page *p = NULL;
    MT_EQ_ERR(maos_streams(c, "b", "a", 0, &p), 0);
    MT_EQ_U64(p->n, 1);
    MT_EQ_MEM_STR(p->streams[0].stream, p->streams[0].stream_len, "b1");
    MT_EQ_INT(p->has_next, 0);
    maos_stream_page_free(p);
    /* and one page at a time */
    p = NULL;
    MT_EQ_ERR(maos_streams(c, "b", "a", 1, &p), 0);
    MT_EQ_U64(p->n, 1);
    MT_EQ_MEM_STR(p->streams[0].stream, p->streams[0].stream_len, "b1");
    maos_stream_page_free(p);
    /* a cursor past the prefix: nothing */
    p = NULL;
    MT_EQ_ERR(maos_streams(c, "a", "b", 0, &p), 0);
    MT_EQ_U64(p->n, 0);
    MT_EQ_INT(p->has_next, 0);
    maos_stream_page_free(p);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* append_batch: each append checked and written on its own, in order (a
 * later append of the same stream sees the earlier), a refusal in the
 * middle leaves the others written; malformed input refuses all. */
static void test_append_batch_each_on_its_own(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    app(c, "ab-b", MAOS_EXPECT_ANY, "Seed", 1, 0, 0); /* position 1, head 0 */
    batch *b = malloc(sizeof *b), *bid = malloc(sizeof *bid);
    mk_batch(b, 3, "ab", "E", 0, 0);
    mk_batch(bid, 2, "ab-d", "D", 77, 0);
    maos_txn_append ab[6] = {
        {"ab-a", MAOS_EXPECT_NO_STREAM, b->ev, 2, NULL},
        {"ab-b", 5, b->ev, 1, NULL},                    /* refused: at 0 */
        {"ab-a", 1, b->ev + 2, 1, NULL},                /* sees append 0 */
        {"ab-c", MAOS_EXPECT_EXISTS, b->ev, 1, NULL},   /* refused: none */
        {"ab-a", MAOS_EXPECT_ANY, b->ev, 1, NULL},
        {"ab-d", MAOS_EXPECT_ANY, bid->ev, 2, NULL},
    };
    uint8_t ids[2][16];
    ab[5].ids = ids;
    maos_batch_outcome out[6];
    int rc = maos_append_batch(c, ab, 6, out);
    print_message("append_batch: %d (%s) %s\n", rc, maos_err_name(rc), c->errstr);
    MT_EQ_ERR(rc, 0);
    MT_EQ_ERR(out[0].status, 0);
    MT_EQ_U64(out[0].info.version, 0);
    MT_EQ_U64(out[0].info.position, 2);
    MT_EQ_U64(out[0].info.count, 2);
    MT_EQ_ERR(out[1].status, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(out[1].has_actual, 1);
    MT_EQ_INT(out[1].actual, 0);
    MT_CMP_INT(strlen(out[1].message), >, 0);
    MT_EQ_ERR(out[2].status, 0);
    MT_EQ_U64(out[2].info.version, 2);
    MT_EQ_U64(out[2].info.position, 4);
    MT_EQ_ERR(out[3].status, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(out[3].actual, -1);
    MT_EQ_ERR(out[4].status, 0);
    MT_EQ_U64(out[4].info.version, 3);
    MT_EQ_U64(out[4].info.position, 5);
    MT_EQ_ERR(out[5].status, 0);
    MT_EQ_U64(out[5].info.position, 6);
    MT_EQ_INT(memcmp(ids[0], bid->ids[0], 16), 0);
    MT_EQ_INT(memcmp(ids[1], bid->ids[1], 16), 0);
    MT_EQ_U64(head_position(c), 7);
    MT_EQ_U64(stream_count(c, "ab-a"), 4);
    MT_EQ_U64(stream_count(c, "ab-b"), 1);
    MT_EQ_U64(stream_count(c, "ab-c"), 0);
    evrec ev[16];
    size_t n = read_all_collect(c, NULL, MAOS_FROM_START, 0, 0, ev, 16);
    MT_EQ_U64(n, 7);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(ev[i].pos, i + 1);

    /* the same appends with ids again: an idempotent re-send of the one
     * with ids (its original result), beside a refused and a new one */
    maos_txn_append again[3] = {
        {"ab-d", MAOS_EXPECT_ANY, bid->ev, 2, NULL},
        {"ab-a", MAOS_EXPECT_NO_STREAM, b->ev, 1, NULL},
        {"ab-e", MAOS_EXPECT_ANY, b->ev, 1, NULL},
    };
    MT_EQ_ERR(maos_append_batch(c, again, 3, out), 0);
    MT_EQ_ERR(out[0].status, 0);
    MT_EQ_INT(out[0].info.duplicate, 1);
    MT_EQ_U64(out[0].info.position, 6);
    MT_EQ_ERR(out[1].status, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(out[1].actual, 3);
    MT_EQ_ERR(out[2].status, 0);
    MT_EQ_U64(out[2].info.position, 8);
    /* an id stored for another stream: CONFLICT for that append only */
    again[0].stream = "ab-f";
    MT_EQ_ERR(maos_append_batch(c, again, 3, out), 0);
    MT_EQ_ERR(out[0].status, MAOS_ECONFLICT);
    MT_EQ_ERR(out[2].status, 0);
    MT_EQ_U64(out[2].info.position, 9);
    MT_EQ_U64(head_position(c), 9);

    /* malformed input refuses the whole request, naming the append */
    again[0].stream = "ab-g";
    again[2].stream = "$ab";
    rc = maos_append_batch(c, again, 3, out);
    MT_EQ_ERR(rc, MAOS_EINVALID_NAME);
    MT_EQ_INT(maos_err_index(c), 2);
    again[2].stream = "ab-e";
    again[0].events = b->ev; /* two appends with the same event id */
    again[1].events = b->ev;
    mk_id(b->ids[0], 9, 9);
    b->ev[0].id = b->ids[0];
    rc = maos_append_batch(c, again, 3, out);
    MT_EQ_ERR(rc, MAOS_EBAD_REQUEST);
    b->ev[0].id = NULL;
    MT_EQ_ERR(maos_append_batch(c, again, 0, out), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_append_batch(c, again, 3, NULL), MAOS_EINVALID_ARG);
    MT_EQ_U64(head_position(c), 9);

    /* 10,000 appends of one event are fine; 10,001, or 10,001 events in
     * all, are LIMIT */
    enum { NB = 10001 };
    maos_txn_append *many = calloc(NB, sizeof *many);
    maos_batch_outcome *mo = calloc(NB, sizeof *mo);
    for (size_t i = 0; i < NB; i++)
        many[i] = (maos_txn_append){"ab-many", MAOS_EXPECT_ANY, b->ev, 1, NULL};
    MT_EQ_ERR(maos_append_batch(c, many, NB, mo), MAOS_ELIMIT);
    many[0].n_events = 2;
    MT_EQ_ERR(maos_append_batch(c, many, NB - 1, mo), MAOS_ELIMIT);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_U64(head_position(c), 9);
    many[0].n_events = 1;
    MT_EQ_ERR(maos_append_batch(c, many, NB - 1, mo), 0);
    for (size_t i = 0; i < NB - 1; i++) {
        MT_EQ_ERR(mo[i].status, 0);
        MT_EQ_U64(mo[i].info.version, i);
        MT_EQ_U64(mo[i].info.position, 10 + i);
    }
    MT_EQ_U64(head_position(c), 9 + NB - 1);
    free(many);
    free(mo);
    free(b);
    free(bid);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* A txn of 100 appends may hold 10,000 events in all, not 10,000 per
 * append: over that it is LIMIT, refused before the daemon allocates for
 * all of them (1,000,000 events decoded took ~70 MB before bf6c102). */
static void test_txn_event_limit(void **state)
{
    (void)state;
    start();
    maos_ctx *c = conn();
    enum { NA = 100, PER = 10000 };
    maos_event_spec *ev = calloc(PER, sizeof *ev);
    for (size_t i = 0; i < PER; i++)
        ev[i].type = "T";
    char names[NA][16];
    maos_txn_append tx[NA];
    for (int i = 0; i < NA; i++) {
        snprintf(names[i], sizeof names[i], "tl-%d", i);
        tx[i] = (maos_txn_append){names[i], MAOS_EXPECT_ANY, ev, 101, NULL};
    }
    long hwm0 = mt_hwm_kb(g_d->pid);
    MT_CMP_INT(hwm0, >, 0);

    /* 100 x 101 = 10,100 events */
    int rc = maos_txn(c, tx, NA, NULL);
    print_message("txn of 10,100 events: %d (%s) %s\n", rc, maos_err_name(rc),
                  c->errstr);
    MT_EQ_ERR(rc, MAOS_ELIMIT);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_U64(head_position(c), 0);

    /* 100 x 10,000 = 1,000,000 events in an ~8 MB frame */
    for (int i = 0; i < NA; i++)
        tx[i].n_events = PER;
    rc = maos_txn(c, tx, NA, NULL);
    MT_EQ_ERR(rc, MAOS_ELIMIT);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_U64(head_position(c), 0);
    long hwm1 = mt_hwm_kb(g_d->pid);
    print_message("maosd VmHWM %ld -> %ld KiB\n", hwm0, hwm1);
    if (!MT_TSAN) /* TSan's shadow memory counts in VmHWM (harness.h) */
        MT_CMP_INT(hwm1 - hwm0, <, 40 * 1024);

    /* exactly 10,000 is fine */
    for (int i = 0; i < NA; i++)
        tx[i].n_events = PER / NA;
    MT_EQ_ERR(maos_txn(c, tx, NA, NULL), 0);
    MT_EQ_U64(head_position(c), PER);
    free(ev);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_and_stats),
        cmocka_unit_test(test_append_read_paging),
        cmocka_unit_test(test_read_all_filters),
        cmocka_unit_test(test_streams_listing),
        cmocka_unit_test(test_expected_version),
        cmocka_unit_test(test_idempotent_resend),
        cmocka_unit_test(test_idempotent_resend_adjacent_appends),
        cmocka_unit_test(test_idempotent_resend_made_ids),
        cmocka_unit_test(test_txn_all_or_nothing),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_restart_keeps_everything),
        cmocka_unit_test(test_server_ids_uuidv7),
        cmocka_unit_test(test_pipelined_appends),
        cmocka_unit_test(test_big_events_readable),
        cmocka_unit_test(test_small_max_frame_reads),
        cmocka_unit_test(test_streams_after_before_prefix),
        cmocka_unit_test(test_txn_event_limit),
        cmocka_unit_test(test_append_batch_each_on_its_own),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 60);
}
