/*
 * tests/subs/test_tables_stress.c -- tables under many processes and
 * kill -9, against a real maosd over raw sockets (issue 7, "Tests").
 *
 *  - CAS race (through libmaos-client): CAS_PROCS processes create the
 *    same key, then bump it from
 *    the same revision (its created_revision), CAS_ROUNDS rounds: each
 *    round exactly one create and one bump win, and every bump loser's
 *    WRONG_REVISION carries the winner's revision;
 *  - liveness (through libmaos-client): a child registers an agent and is
 *    SIGKILLed; a watcher of
 *    the agents table sees its `offline` put (LIVENESS_REPS times); the
 *    latency is printed, the 1 s bound is the benchmark's (maos-bench
 *    liveness), never a test threshold;
 *  - a lock holder SIGKILLed: the waiter, watching the key from the
 *    conflict's revision, sees `deleted` by push and takes the lock with a
 *    higher fencing token;
 *  - watch property: WATCH_WRITERS processes put and delete random keys
 *    while watchers start at random revisions (and one reads only after
 *    the writers are done): each sees exactly the table's events after its
 *    revision, in order, with no gap and no duplicate, and a snapshot
 *    watcher's entries plus changes fold into the final table;
 *  - kill -9 during mixed txns (an append and a put each, through
 *    libmaos-client): after the
 *    restart every acknowledged txn is wholly there, and no txn is there
 *    in part (each writer's stream has exactly as many events as it has
 *    entries).
 *
 * Counts are set here, in one place.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */
#include "subs_util.h"
#include "tables_util.h"

#define CAS_PROCS 8
#define CAS_ROUNDS 1000
#define LIVENESS_REPS 50
#define WATCH_WRITERS 4
#define WATCH_OPS 300   /* per writer */
#define WATCH_KEYS 20
#define WATCHERS 4
#define TXN_WRITERS 4
#define TXN_ACKS_BEFORE_KILL 200 /* per round, all writers together */
#define TXN_ROUNDS 2



/* ---- CAS race ------------------------------------------------------------------ */

typedef struct cas_rec {
    uint64_t create_won, create_rev; /* own revision, or the actual */
    uint64_t bump_won, bump_rev;
} cas_rec;

/* Through libmaos-client: put (absent), get, put (expect revision). */
static void cas_child(int p)
{
    maos_ctx *c = maos_connect_timeout(tu_daemon->sock, 30000);
    SU_TRUE(c && c->err == 0);
    char path[512], key[32];
    static const char d0[] = "\x81\xa1n\x00", d1[] = "\x81\xa1n\x01";
    snprintf(path, sizeof path, "%s/cas-%d.bin", mt_test_dir(), p);
    FILE *f = fopen(path, "wb");
    SU_TRUE(f != NULL);
    for (int r = 0; r < CAS_ROUNDS; r++) {
        cas_rec rec = {0};
        int64_t actual;
        snprintf(key, sizeof key, "round-%04d", r);
        int rc = maos_put(c, "kv.cas", key, d0, 4, MAOS_EXPECT_ABSENT, 0, &rec.create_rev);
        if (rc == 0) {
            rec.create_won = 1;
        } else {
            /* the winner's creation; it may have been bumped already, so
             * its created_revision is the one to bump from */
            SU_TRUE(rc == MAOS_EWRONG_REVISION && maos_err_actual(c, &actual) && actual > 0);
            maos_table_page *pg = NULL;
            SU_TRUE(maos_get(c, "kv.cas", key, &pg) == 0);
            rec.create_rev = pg->entries[0].created_revision;
            maos_table_page_free(pg);
        }
        rc = maos_put(c, "kv.cas", key, d1, 4, (int64_t)rec.create_rev, 0, &rec.bump_rev);
        if (rc == 0) {
            rec.bump_won = 1;
        } else {
            SU_TRUE(rc == MAOS_EWRONG_REVISION && maos_err_actual(c, &actual) && actual > 0);
            rec.bump_rev = (uint64_t)actual;
        }
        SU_TRUE(fwrite(&rec, sizeof rec, 1, f) == 1);
    }
    SU_TRUE(fclose(f) == 0);
    maos_free(c);
}

static void test_cas_race(void **state)
{
    (void)state;
    pid_t kids[CAS_PROCS];
    for (int p = 0; p < CAS_PROCS; p++) {
        kids[p] = su_fork("cas-%d", p);
        if (kids[p] == 0) {
            cas_child(p);
            _exit(0);
        }
    }
    for (int p = 0; p < CAS_PROCS; p++)
        MT_EQ_INT(mt_wait(kids[p], 240000), 0);
    cas_rec *all = calloc((size_t)CAS_PROCS * CAS_ROUNDS, sizeof(*all));
    for (int p = 0; p < CAS_PROCS; p++) {
        char path[512];
        snprintf(path, sizeof path, "%s/cas-%d.bin", mt_test_dir(), p);
        size_t len = 0;
        char *buf = mt_read_file(path, &len);
        MT_EQ_U64(len, sizeof(cas_rec) * CAS_ROUNDS);
        memcpy(all + (size_t)p * CAS_ROUNDS, buf, len);
        free(buf);
    }
    for (int r = 0; r < CAS_ROUNDS; r++) {
        int creates = 0, bumps = 0;
        uint64_t crev = all[r].create_rev, brev = all[r].bump_rev;
        for (int p = 0; p < CAS_PROCS; p++) {
            const cas_rec *x = &all[(size_t)p * CAS_ROUNDS + r];
            creates += (int)x->create_won;
            bumps += (int)x->bump_won;
            if (x->create_rev != crev || x->bump_rev != brev)
                MT_FAIL("round %d: process %d saw revisions %llu/%llu, process 0 "
                        "%llu/%llu", r, p, (unsigned long long)x->create_rev,
                        (unsigned long long)x->bump_rev, (unsigned long long)crev,
                        (unsigned long long)brev);
        }
        if (creates != 1 || bumps != 1)
            MT_FAIL("round %d: %d creates and %d bumps won, want 1 and 1", r, creates,
                    bumps);
        MT_TRUE(brev > crev);
    }
    free(all);
}

/* ---- liveness ------------------------------------------------------------------- */

/* The data.status of an agents put event, into out. */
static void event_status(const maos_record *rec, char *out, size_t cap)
{
    maos_mpr r;
    uint32_t n;
    out[0] = 0;
    maos_mpr_init(&r, rec->data.ptr, rec->data.len);
    if (maos_mpr_map(&r, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        if (maos_mpr_str(&r, &k) || maos_mpr_skip(&r, &v))
            return;
        if (k.len == 4 && !memcmp(k.ptr, "data", 4)) {
            tu_doc_field(v, "status", out, cap);
            return;
        }
    }
}

typedef struct live_wait {
    char stream[64];
    char want_type[16];
    char want_status[16];
    int seen;
    uint64_t pos;
} live_wait;

static void on_live_push(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    live_wait *w = user;
    if (p->kind != MAOS_PUSH_EVENTS)
        return;
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, p->items.ptr, p->items.len);
    SU_TRUE(maos_mpr_array(&r, &n) == 0);
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec;
        SU_TRUE(maos_record_next(&r, &rec) == 0);
        char st[32];
        event_status(&rec, st, sizeof st);
        if (rec.stream.len == strlen(w->stream) &&
            !memcmp(rec.stream.ptr, w->stream, rec.stream.len) &&
            rec.type.len == strlen(w->want_type) &&
            !memcmp(rec.type.ptr, w->want_type, rec.type.len) &&
            (!w->want_status[0] || !strcmp(st, w->want_status))) {
            w->seen = 1;
            w->pos = rec.position;
        }
    }
}

static uint64_t watch(su_conn *c, const char *table, const char *prefix, int from_kind,
                      uint64_t rev, uint64_t *snapshot_rev)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_watch(&b.pk, rid, tu_sl(table), tu_sl(prefix), from_kind, rev), 0);
    maos_reply rep;
    char *frame = NULL;
    MT_EQ_INT(su_call(c, &b.sb, rid, &rep, &frame), 0);
    msgpack_sbuffer_destroy(&b.sb);
    uint64_t sub = rep.sub;
    if (snapshot_rev)
        *snapshot_rev = rep.revision;
    free(frame);
    return sub;
}

/* Pump w's pushes until lw->seen (10 s: a generous bound, not a target). */
static void wait_seen(su_conn *w, live_wait *lw, const char *what)
{
    int64_t deadline = mt_now_us() + 10LL * 1000000;
    while (!lw->seen && mt_now_us() < deadline)
        su_pump(w, 50, &lw->seen);
    if (!lw->seen)
        MT_FAIL("%s: not seen within 10 s", what);
}

/* A child that registers agent id (or takes lock id), writes one byte to
 * fd, then waits to be killed. */
/* A child that registers agent id (or takes lock id) through the client
 * library, writes one byte to fd, then waits to be killed. */
static pid_t holder(const char *what, const char *id, int fd)
{
    pid_t pid = su_fork("%s-%s", what, id);
    if (pid == 0) {
        maos_ctx *c = maos_connect_timeout(tu_daemon->sock, 30000);
        SU_TRUE(c && c->err == 0);
        maos_agent_spec sp = {.id = id, .name = "stress"};
        int rc = !strcmp(what, "agent") ? maos_agent_register(c, &sp, NULL)
                                        : maos_lock(c, id, 0, NULL);
        SU_TRUE(rc == 0);
        char one = 1;
        SU_TRUE(write(fd, &one, 1) == 1);
        for (;;)
            pause();
    }
    return pid;
}

/* maos_next on w until an event matches lw (10 s: generous, not a bound). */
static void client_wait_seen(maos_ctx *w, live_wait *lw, const char *what)
{
    int64_t deadline = mt_now_us() + 10LL * 1000000;
    while (!lw->seen) {
        maos_delivery *d = NULL;
        int rc = maos_next(w, 50, &d);
        if (rc == MAOS_ETIMEOUT) {
            if (mt_now_us() > deadline)
                MT_FAIL("%s: not seen within 10 s", what);
            continue;
        }
        MT_EQ_ERR(rc, 0);
        for (size_t i = 0; i < d->n; i++) {
            const maos_event *e = &d->events[i];
            maos_record rec = {.data = {e->data, (uint32_t)e->data_len}};
            char st[32];
            event_status(&rec, st, sizeof st);
            if (e->stream_len == strlen(lw->stream) &&
                !memcmp(e->stream, lw->stream, e->stream_len) &&
                e->type_len == strlen(lw->want_type) &&
                !memcmp(e->type, lw->want_type, e->type_len) &&
                (!lw->want_status[0] || !strcmp(st, lw->want_status))) {
                lw->seen = 1;
                lw->pos = e->position;
            }
        }
        maos_delivery_free(d);
    }
}

/* Through libmaos-client: the agents register with maos_agent_register,
 * the watcher is maos_watch + maos_next. */
static void test_liveness(void **state)
{
    (void)state;
    maos_ctx *w = maos_connect_timeout(tu_daemon->sock, 30000);
    MT_TRUE(w && w->err == 0);
    MT_EQ_ERR(maos_watch(w, "agents", "", MAOS_WATCH_FROM_NOW, 0, NULL), 0);
    live_wait lw;
    int64_t worst = 0, total = 0;
    for (int i = 0; i < LIVENESS_REPS; i++) {
        int pfd[2];
        MT_EQ_INT(pipe(pfd), 0);
        char id[32];
        snprintf(id, sizeof id, "live-%d", i);
        memset(&lw, 0, sizeof lw);
        snprintf(lw.stream, sizeof lw.stream, "agent-%s", id);
        snprintf(lw.want_type, sizeof lw.want_type, "put");
        snprintf(lw.want_status, sizeof lw.want_status, "online");
        pid_t kid = holder("agent", id, pfd[1]);
        char one;
        MT_EQ_INT((int)read(pfd[0], &one, 1), 1);
        client_wait_seen(w, &lw, "online");
        memset(&lw, 0, sizeof lw);
        snprintf(lw.stream, sizeof lw.stream, "agent-%s", id);
        snprintf(lw.want_type, sizeof lw.want_type, "put");
        snprintf(lw.want_status, sizeof lw.want_status, "offline");
        int64_t t0 = mt_now_us();
        MT_EQ_INT(kill(kid, SIGKILL), 0);
        client_wait_seen(w, &lw, "offline");
        int64_t dt = mt_now_us() - t0;
        total += dt;
        if (dt > worst)
            worst = dt;
        mt_wait(kid, 10000);
        close(pfd[0]);
        close(pfd[1]);
        /* the entry is kept, offline */
        maos_table_page *pg = NULL;
        MT_EQ_ERR(maos_get(w, "agents", id, &pg), 0);
        char st[32];
        tu_doc_field((maos_slice){pg->entries[0].data.ptr, (uint32_t)pg->entries[0].data.len}, "status",
                 st, sizeof st);
        MT_EQ_STR(st, "offline");
        maos_table_page_free(pg);
    }
    print_message("liveness: %d SIGKILLs, offline seen after %.2f ms mean, %.2f ms "
                  "worst (figures, not a test bound)\n", LIVENESS_REPS,
                  (double)total / LIVENESS_REPS / 1000.0, (double)worst / 1000.0);
    maos_free(w);
}

static void test_lock_holder_killed(void **state)
{
    (void)state;
    int pfd[2];
    MT_EQ_INT(pipe(pfd), 0);
    pid_t kid = holder("lock", "build", pfd[1]);
    char one;
    MT_EQ_INT((int)read(pfd[0], &one, 1), 1);
    su_conn *w = su_open(tu_daemon->sock);
    tu_result r = tu_put(w, "locks", "build", "owner", "waiter", MAOS_EXPECT_ABSENT, 1);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    uint64_t held = (uint64_t)r.actual;
    live_wait lw = {0};
    snprintf(lw.stream, sizeof lw.stream, "lock-build");
    snprintf(lw.want_type, sizeof lw.want_type, "deleted");
    su_set_push(w, on_live_push, &lw);
    watch(w, "locks", "build", MAOS_WATCH_FROM_REVISION, held, NULL);
    MT_EQ_INT(kill(kid, SIGKILL), 0);
    wait_seen(w, &lw, "the lock's deleted event");
    r = tu_put(w, "locks", "build", "owner", "waiter", MAOS_EXPECT_ABSENT, 1);
    MT_EQ_INT(r.code, 0);
    MT_TRUE(r.revision > held); /* a higher fencing token */
    mt_wait(kid, 10000);
    close(pfd[0]);
    close(pfd[1]);
    su_close(w);
}

/* ---- watch property ------------------------------------------------------------ */

typedef struct watcher {
    su_conn *c;
    uint64_t sub, from_rev;
    int snapshot;         /* 1: entries first */
    int snapshot_done;
    uint64_t last_pos;
    uint64_t *positions;  /* every event position received */
    size_t n, cap;
    /* the table folded: key -> revision (0 absent) */
    uint64_t state[WATCH_KEYS];
} watcher;

static int key_index(maos_slice key)
{
    /* keys are "k/NN" */
    if (key.len != 4 || memcmp(key.ptr, "k/", 2))
        return -1;
    return (key.ptr[2] - '0') * 10 + (key.ptr[3] - '0');
}

static void on_watch(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    watcher *w = user;
    SU_TRUE(p->sub == w->sub);
    maos_mpr r;
    uint32_t n;
    if (p->kind == MAOS_PUSH_ENTRIES) {
        SU_TRUE(w->snapshot && !w->snapshot_done);
        SU_TRUE(p->revision == w->from_rev);
        maos_mpr_init(&r, p->items.ptr, p->items.len);
        SU_TRUE(maos_mpr_array(&r, &n) == 0);
        for (uint32_t i = 0; i < n; i++) {
            maos_entry e;
            SU_TRUE(maos_entry_next(&r, &e) == 0);
            int k = key_index(e.key);
            SU_TRUE(k >= 0 && k < WATCH_KEYS);
            SU_TRUE(e.revision <= w->from_rev);
            w->state[k] = e.revision;
        }
        w->snapshot_done = !p->more;
        return;
    }
    if (p->kind != MAOS_PUSH_EVENTS)
        return;
    SU_TRUE(!w->snapshot || w->snapshot_done);
    maos_mpr_init(&r, p->items.ptr, p->items.len);
    SU_TRUE(maos_mpr_array(&r, &n) == 0);
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec;
        SU_TRUE(maos_record_next(&r, &rec) == 0);
        SU_TRUE(rec.position > w->from_rev && rec.position > w->last_pos);
        w->last_pos = rec.position;
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 1024;
            w->positions = realloc(w->positions, w->cap * sizeof(uint64_t));
            SU_TRUE(w->positions != NULL);
        }
        w->positions[w->n++] = rec.position;
        maos_slice key = {rec.stream.ptr + 5, rec.stream.len - 5}; /* kv.p- */
        int k = key_index(key);
        SU_TRUE(k >= 0);
        w->state[k] = rec.type.len == 3 ? rec.position : 0;
    }
}

static void writer_child(int wi)
{
    su_conn *c = su_open(tu_daemon->sock);
    unsigned seed = 1234u + (unsigned)wi;
    char key[8];
    for (int i = 0; i < WATCH_OPS; i++) {
        int k = rand_r(&seed) % WATCH_KEYS;
        snprintf(key, sizeof key, "k/%02d", k);
        if (rand_r(&seed) % 4 == 0) {
            tu_result r = tu_del(c, "kv.p", key, MAOS_EXPECT_ANY);
            SU_TRUE(r.code == 0 || r.code == MAOS_ENOT_FOUND);
        } else {
            SU_TRUE(tu_put(c, "kv.p", key, "w", "x", MAOS_EXPECT_ANY, 0).code == 0);
        }
    }
    su_close(c);
}

static void test_watch_property(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    /* some history first, so that random from-revisions fall inside it */
    for (int k = 0; k < WATCH_KEYS; k++) {
        char key[8];
        snprintf(key, sizeof key, "k/%02d", k);
        MT_EQ_INT(tu_put(c, "kv.p", key, "w", "0", MAOS_EXPECT_ANY, 0).code, 0);
    }
    uint64_t base = su_head(c);
    pid_t kids[WATCH_WRITERS];
    for (int i = 0; i < WATCH_WRITERS; i++) {
        kids[i] = su_fork("writer-%d", i);
        if (kids[i] == 0) {
            writer_child(i);
            _exit(0);
        }
    }
    /* watchers join while the writers run: snapshot, from a random
     * revision, from 0; the last one reads nothing until the end */
    watcher ws[WATCHERS];
    memset(ws, 0, sizeof ws);
    unsigned seed = 99;
    for (int i = 0; i < WATCHERS; i++) {
        watcher *w = &ws[i];
        w->c = su_open(tu_daemon->sock);
        su_set_push(w->c, on_watch, w);
        if (i == 0) {
            w->snapshot = 1;
            w->sub = watch(w->c, "kv.p", "k/", MAOS_WATCH_FROM_ENTRIES, 0, &w->from_rev);
        } else {
            uint64_t head = su_head(c);
            w->from_rev = i == 1 ? 0 : base / 2 + (uint64_t)rand_r(&seed) % (head - base / 2 + 1);
            w->sub = watch(w->c, "kv.p", "k/", MAOS_WATCH_FROM_REVISION, w->from_rev, NULL);
        }
        if (i < WATCHERS - 1)
            su_pump(w->c, 5, NULL);
    }
    for (int i = 0; i < WATCHERS - 1; i++)
        su_pump(ws[i].c, 20, NULL);
    for (int i = 0; i < WATCH_WRITERS; i++)
        MT_EQ_INT(mt_wait(kids[i], 240000), 0);
    uint64_t head = su_head(c);

    /* the truth: every table event after each watcher's revision */
    maos_filter f;
    memset(&f, 0, sizeof f);
    f.prefix = tu_sl("kv.p-k/");
    for (int i = 0; i < WATCHERS; i++) {
        watcher *w = &ws[i];
        int64_t deadline = mt_now_us() + 60LL * 1000000;
        while (w->last_pos < head && mt_now_us() < deadline)
            su_pump(w->c, 50, NULL);
        su_evs truth = {0};
        su_read_all(c, &f, w->from_rev + 1, head, &truth);
        if (truth.n != w->n)
            MT_FAIL("watcher %d from %llu: %zu events, want %zu", i,
                    (unsigned long long)w->from_rev, w->n, truth.n);
        for (size_t j = 0; j < truth.n; j++)
            if (truth.v[j].pos != w->positions[j])
                MT_FAIL("watcher %d: event %zu at %llu, want %llu", i, j,
                        (unsigned long long)w->positions[j],
                        (unsigned long long)truth.v[j].pos);
        su_evs_free(&truth);
    }
    /* the snapshot watcher's folded table is the table */
    for (int k = 0; k < WATCH_KEYS; k++) {
        char key[8];
        snprintf(key, sizeof key, "k/%02d", k);
        maos_entry e;
        char *frame = NULL;
        int rc = tu_get(c, "kv.p", key, &e, &frame, NULL);
        uint64_t want = rc == 0 ? e.revision : 0;
        free(frame);
        if (ws[0].state[k] != want)
            MT_FAIL("snapshot watcher: %s at %llu, table says %llu", key,
                    (unsigned long long)ws[0].state[k], (unsigned long long)want);
    }
    for (int i = 0; i < WATCHERS; i++) {
        free(ws[i].positions);
        su_close(ws[i].c);
    }
    su_close(c);
}

/* ---- kill -9 during mixed txns ---------------------------------------------------- */

/* Through libmaos-client: maos_txn_items of an append and a put. */
static void txn_writer(int w, const char *ack_path, uint32_t round)
{
    maos_ctx *c = maos_connect_timeout(tu_daemon->sock, 30000);
    SU_TRUE(c && c->err == 0);
    FILE *f = fopen(ack_path, "ab");
    SU_TRUE(f != NULL);
    setvbuf(f, NULL, _IONBF, 0);
    char stream[32], key[64];
    snprintf(stream, sizeof stream, "tx-w%d", w);
    for (uint32_t seq = 0;; seq++) {
        snprintf(key, sizeof key, "w%d-r%u-%06u", w, round, seq);
        tu_pkb d;
        tu_doc1(&d, "key", key);
        maos_event_spec ev = {.type = "t"};
        maos_txn_append ap = {.stream = stream, .expect = MAOS_EXPECT_ANY,
                              .n_events = 1, .events = &ev};
        maos_txn_item items[2] = {
            {.kind = MAOS_ITEM_APPEND, .append = &ap},
            {.kind = MAOS_ITEM_PUT, .table = "kv.tx", .key = key, .doc = d.sb.data,
             .doc_len = d.sb.size, .expect = MAOS_EXPECT_ABSENT},
        };
        /* a lost connection ends this process (the kill) */
        if (maos_txn_items(c, items, 2, NULL) != 0)
            _exit(0);
        msgpack_sbuffer_destroy(&d.sb);
        SU_TRUE(fwrite(&seq, sizeof seq, 1, f) == 1);
    }
}

static void test_kill9_mixed_txn(void **state)
{
    (void)state;
    for (uint32_t round = 0; round < TXN_ROUNDS; round++) {
        char paths[TXN_WRITERS][512];
        pid_t kids[TXN_WRITERS];
        for (int w = 0; w < TXN_WRITERS; w++) {
            snprintf(paths[w], sizeof paths[w], "%s/txn-acks-r%u-w%d", mt_test_dir(),
                     round, w);
            kids[w] = su_fork("txn-%d", w);
            if (kids[w] == 0)
                txn_writer(w, paths[w], round);
        }
        int64_t deadline = mt_now_us() + 120LL * 1000000;
        for (;;) { /* kill after enough acknowledgements */
            size_t have = 0;
            for (int w = 0; w < TXN_WRITERS; w++) {
                size_t len = 0;
                char *buf = mt_read_file(paths[w], &len);
                free(buf);
                have += len / sizeof(uint32_t);
            }
            if (have >= TXN_ACKS_BEFORE_KILL)
                break;
            if (mt_now_us() > deadline)
                MT_FAIL("round %u: %zu acknowledgements within 120 s", round, have);
            mt_sleep_ms(1); /* polling the ack files for the condition */
        }
        mt_daemon_kill9(tu_daemon);
        for (int w = 0; w < TXN_WRITERS; w++)
            mt_wait(kids[w], 10000); /* they fail on the lost connection */
        mt_daemon_up(tu_daemon);
        su_conn *c = su_open(tu_daemon->sock);
        for (int w = 0; w < TXN_WRITERS; w++) {
            /* every acknowledged txn: its entry is there */
            size_t len = 0;
            char *buf = mt_read_file(paths[w], &len);
            size_t n = len / sizeof(uint32_t);
            for (size_t i = 0; i < n; i++) {
                uint32_t seq;
                memcpy(&seq, buf + i * sizeof seq, sizeof seq);
                char key[64];
                snprintf(key, sizeof key, "w%d-r%u-%06u", w, round, seq);
                maos_entry e;
                char *frame = NULL;
                if (tu_get(c, "kv.tx", key, &e, &frame, NULL) != 0)
                    MT_FAIL("round %u: acknowledged txn %s is missing", round, key);
                free(frame);
            }
            free(buf);
            /* no txn in part: as many events in its stream as entries */
            char stream[32], prefix[32];
            snprintf(stream, sizeof stream, "tx-w%d", w);
            snprintf(prefix, sizeof prefix, "w%d-", w);
            maos_filter f;
            memset(&f, 0, sizeof f);
            f.stream = tu_sl(stream);
            su_evs evs = {0};
            su_read_all(c, &f, 1, 0, &evs);
            tu_pkb b;
            tu_pkb_init(&b);
            uint64_t rid = su_rid(c);
            MT_EQ_INT(maos_enc_count(&b.pk, rid, tu_sl("kv.tx"), tu_sl(prefix),
                                     (maos_slice){0}), 0);
            tu_result r = tu_call_sb(c, &b, rid);
            MT_EQ_INT(r.code, 0);
            if (r.count != evs.n)
                MT_FAIL("round %u writer %d: %zu events but %llu entries", round, w,
                        evs.n, (unsigned long long)r.count);
            MT_TRUE(evs.n >= n);
            su_evs_free(&evs);
        }
        su_close(c);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cas_race, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_liveness, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_lock_holder_killed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_watch_property, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_mixed_txn, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 600);
}
