/*
 * tests/subs/test_tables_edges.c -- edges of the table client calls and
 * maosctl commands against a real maosd (issue 7, "Client library,
 * maosctl"), beside the happy paths of test_tables_client.c:
 *
 *  - a watch whose entries were cut by a lost connection (maosd killed
 *    while the watcher had not read them all) gets the whole table after
 *    the reconnect: the library starts the entries over (a new revision)
 *    instead of going on with changes only;
 *  - a watch taken from an event loop (maos_process): the entries, then a
 *    put and a deleted change, each to on_events;
 *  - maosctl lock --wait that runs out exits 1 (the lock is held: a
 *    refusal), not 3 (connection trouble), and never runs COMMAND;
 *  - maosctl session create/list/show/close and kv list/del/watch, with a
 *    failed --expect exiting 1;
 *  - bad input through the library: a watch from a future revision, an
 *    unknown table, an unlock with a stale token.
 */
#include <poll.h>
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


/* {"v": value, "pad": pad_len bytes} */
static size_t doc_pad(char *buf, const char *value, size_t pad_len)
{
    size_t n = strlen(value), o = 0;
    buf[o++] = (char)0x82;
    buf[o++] = (char)0xa1;
    buf[o++] = 'v';
    buf[o++] = (char)0xd9;
    buf[o++] = (char)n;
    memcpy(buf + o, value, n);
    o += n;
    buf[o++] = (char)0xa3;
    memcpy(buf + o, "pad", 3);
    o += 3;
    buf[o++] = (char)0xda;
    buf[o++] = (char)(pad_len >> 8);
    buf[o++] = (char)pad_len;
    memset(buf + o, 'p', pad_len);
    return o + pad_len;
}

/* n entries k-00000.. of table, 100 per txn. */
static void fill(maos_ctx *c, const char *table, int n, size_t pad)
{
    static char docs[100][1200];
    static char keys[100][16];
    maos_txn_item items[100];
    for (int base = 0; base < n; base += 100) {
        int k = n - base < 100 ? n - base : 100;
        for (int i = 0; i < k; i++) {
            snprintf(keys[i], sizeof keys[i], "k-%05d", base + i);
            size_t dl = doc_pad(docs[i], keys[i], pad);
            memset(&items[i], 0, sizeof items[i]);
            items[i].kind = MAOS_ITEM_PUT;
            items[i].table = table;
            items[i].key = keys[i];
            items[i].doc = docs[i];
            items[i].doc_len = dl;
            items[i].expect = MAOS_EXPECT_ANY;
        }
        MT_EQ_ERR(maos_txn_items(c, items, (size_t)k, NULL), 0);
    }
}

#define CUT_ENTRIES 3000

static void test_watch_snapshot_cut(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0), *w = tu_conn(1);
    /* ~3.3 MB of entries: far more than a socket buffer holds, so most
     * pages are still in maosd when it dies */
    fill(c, "kv.big", CUT_ENTRIES, 1000);
    maos_free(c);
    uint64_t sub;
    MT_EQ_ERR(maos_watch(w, "kv.big", "", MAOS_WATCH_FROM_ENTRIES, 0, &sub), 0);
    /* one page taken before maosd dies: the entries are cut in the middle */
    maos_delivery *first = NULL;
    MT_EQ_ERR(maos_next(w, 30000, &first), 0);
    MT_EQ_INT(first->kind, MAOS_PUSH_ENTRIES);
    MT_TRUE(first->first && first->more && first->n_entries > 0);
    mt_daemon_kill9(tu_daemon);
    mt_daemon_up(tu_daemon);

    /* entries of the current snapshot (a page with `first` starts over) */
    static char seen[CUT_ENTRIES];
    size_t got = 0, pages = 0, restarts = 0;
    int done = 0;
    for (size_t i = 0; i < first->n_entries; i++, got++)
        seen[atoi(first->entries[i].key.ptr + 2)] = 1;
    pages++;
    maos_delivery_free(first);
    int64_t deadline = mt_now_us() + 60LL * 1000000;
    while (!done) {
        maos_delivery *d = NULL;
        int rc = maos_next(w, 200, &d);
        if (rc == MAOS_ETIMEOUT) {
            if (mt_now_us() > deadline)
                MT_FAIL("the entries ended at %zu of %d (%zu pages, %zu restarts)", got,
                        CUT_ENTRIES, pages, restarts);
            continue;
        }
        MT_EQ_ERR(rc, 0);
        MT_EQ_U64(d->sub, sub);
        if (d->kind == MAOS_PUSH_ENTRIES) {
            if (d->first) {
                memset(seen, 0, sizeof seen);
                got = 0;
                restarts++;
            }
            pages++;
            for (size_t i = 0; i < d->n_entries; i++) {
                int k = atoi(d->entries[i].key.ptr + 2);
                MT_TRUE(k >= 0 && k < CUT_ENTRIES);
                MT_EQ_INT(seen[k], 0); /* once per snapshot */
                seen[k] = 1;
                got++;
            }
            done = !d->more;
        } else {
            MT_EQ_INT(d->kind, MAOS_PUSH_CAUGHT_UP); /* no change was made */
        }
        maos_delivery_free(d);
    }
    MT_EQ_INT((int)got, CUT_ENTRIES);
    MT_EQ_INT((int)restarts, 1);
    MT_CMP_INT(maos_reconnects(w), >=, 1);
    /* and the changes follow the finished entries */
    c = tu_conn(0);
    char d[1200];
    uint64_t r;
    MT_EQ_ERR(maos_put(c, "kv.big", "k-00007", d, doc_pad(d, "new", 10), MAOS_EXPECT_ANY,
                       0, &r), 0);
    for (;;) {
        maos_delivery *dl = NULL;
        MT_EQ_ERR(maos_next(w, 30000, &dl), 0);
        int hit = dl->kind == MAOS_PUSH_EVENTS;
        if (hit) {
            MT_EQ_U64(dl->events[0].position, r);
            MT_EQ_MEM_STR(dl->events[0].type, dl->events[0].type_len, "put");
        }
        maos_delivery_free(dl);
        if (hit)
            break;
    }
    maos_free(c);
    maos_free(w);
}

/* ---- a watch from an event loop --------------------------------------------------- */

struct loop_seen {
    size_t entries, puts, deletes;
    uint64_t last_pos;
    int bad;
};

static void on_events(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    struct loop_seen *s = user;
    if (d->kind == MAOS_PUSH_ENTRIES) {
        s->entries += d->n_entries;
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        const maos_event *e = &d->events[i];
        if (e->position <= s->last_pos)
            s->bad = 1;
        s->last_pos = e->position;
        if (e->type_len == 3 && !memcmp(e->type, "put", 3))
            s->puts++;
        else if (e->type_len == 7 && !memcmp(e->type, "deleted", 7))
            s->deletes++;
        else
            s->bad = 1;
    }
}

/* poll + maos_process until cond or 30 s. */
#define PROCESS_UNTIL(w, h, s, cond)                                                   \
    do {                                                                               \
        int64_t dl_ = mt_now_us() + 30LL * 1000000;                                    \
        while (!(cond)) {                                                              \
            struct pollfd pfd_ = {.fd = maos_fd(w), .events = POLLIN};                 \
            if (maos_queued(w) == 0)                                                   \
                poll(&pfd_, 1, 100);                                                   \
            MT_CMP_INT(maos_process(w, &(h), &(s)), >=, 0);                            \
            if (mt_now_us() > dl_)                                                     \
                MT_FAIL("not within 30 s: %s", #cond);                                 \
        }                                                                              \
    } while (0)

static void test_watch_process(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0), *w = tu_conn(0);
    fill(c, "kv.loop", 250, 10);
    MT_EQ_ERR(maos_watch(w, "kv.loop", "k-001", MAOS_WATCH_FROM_ENTRIES, 0, NULL), 0);
    maos_push_handlers h = {.on_events = on_events};
    struct loop_seen s = {0};
    PROCESS_UNTIL(w, h, s, s.entries == 100); /* k-00100 .. k-00199 */
    char d[64];
    MT_EQ_ERR(maos_put(c, "kv.loop", "k-00150", d, doc_pad(d, "x", 1), MAOS_EXPECT_ANY, 0,
                       NULL), 0);
    MT_EQ_ERR(maos_put(c, "kv.loop", "k-00250", d, doc_pad(d, "x", 1), MAOS_EXPECT_ANY, 0,
                       NULL), 0); /* outside the prefix */
    MT_EQ_ERR(maos_delete(c, "kv.loop", "k-00199", MAOS_EXPECT_ANY, NULL), 0);
    PROCESS_UNTIL(w, h, s, s.puts + s.deletes == 2);
    MT_EQ_INT((int)s.puts, 1);
    MT_EQ_INT((int)s.deletes, 1);
    MT_EQ_INT(s.bad, 0);
    MT_EQ_INT((int)s.entries, 100);
    maos_free(c);
    maos_free(w);
}

/* ---- maosctl ----------------------------------------------------------------------- */

static void test_maosctl_lock_wait_runs_out(void **state)
{
    (void)state;
    maos_ctx *h = tu_conn(0);
    uint64_t t;
    MT_EQ_ERR(maos_lock(h, "busy", 0, &t), 0);
    char marker[512], cmd[600];
    snprintf(marker, sizeof marker, "%s/ran", mt_test_dir());
    snprintf(cmd, sizeof cmd, "touch '%s'", marker);
    mt_run r;
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "lock", "busy", "--wait", "0.3", "--", "sh", "-c", cmd,
                     NULL), 1);
    MT_TRUE(strstr(r.err, "busy") != NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "lock", "busy", "--wait", "0", "--", "sh", "-c", cmd,
                     NULL), 1);
    MT_TRUE(strstr(r.err, "WRONG_REVISION") != NULL);
    mt_run_free(&r);
    MT_TRUE(access(marker, F_OK) != 0); /* COMMAND never ran */
    MT_EQ_ERR(maos_unlock(h, "busy", t), 0);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "lock", "busy", "--wait", "0", "--", "sh", "-c", cmd,
                     NULL), 0);
    mt_run_free(&r);
    MT_TRUE(access(marker, F_OK) == 0);
    maos_free(h);
}

static void test_maosctl_session_kv(void **state)
{
    (void)state;
    mt_run r;
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "session", "create", "--id", "s-1", "{\"goal\":\"g\"}",
                     NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "session", "create", "{}", NULL), 0);
    MT_EQ_INT((int)strlen(r.out), 37); /* a UUIDv7 and a newline */
    MT_EQ_INT(r.out[14], '7');
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "session", "create", "--id", "s-1", "{}", NULL), 1);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "session", "close", "s-1", "\"done\"", NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "session", "show", "s-1", NULL), 0);
    MT_TRUE(strstr(r.out, "\"state\":\"closed\"") && strstr(r.out, "\"result\":\"done\"") &&
            strstr(r.out, "\"goal\":\"g\""));
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "session", "list", "--state", "open", NULL), 0);
    MT_TRUE(strstr(r.out, "s-1") == NULL && strstr(r.out, "\"state\":\"open\"") != NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "session", "show", "nope", NULL), 1);
    MT_TRUE(strstr(r.err, "NOT_FOUND") != NULL);
    mt_run_free(&r);

    /* kv: put, list, del with a stale --expect (1), del, watch --from REV */
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "kv", "put", "cfg", "a", "{\"n\":1}", NULL), 0);
    long rev_a = strtol(strstr(r.out, "\"revision\":") + 11, NULL, 10);
    MT_CMP_INT(rev_a, >, 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "put", "cfg", "b", "{\"n\":2}", NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "kv", "list", "cfg", NULL), 0);
    MT_TRUE(strstr(r.out, "\"key\":\"a\"") && strstr(r.out, "\"key\":\"b\"") &&
            strstr(r.out, "\"table\":\"kv.cfg\""));
    mt_run_free(&r);
    char stale[32];
    snprintf(stale, sizeof stale, "%ld", rev_a + 1000);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "del", "cfg", "a", "--expect", stale, NULL), 1);
    MT_TRUE(strstr(r.err, "WRONG_REVISION") != NULL);
    mt_run_free(&r);
    snprintf(stale, sizeof stale, "%ld", rev_a);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "del", "cfg", "a", "--expect", stale, NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "get", "cfg", "a", NULL), 1);
    mt_run_free(&r);
    /* the changes after rev_a: b's put and a's delete */
    snprintf(stale, sizeof stale, "%ld", rev_a);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--timeout", "20", "kv", "watch", "cfg", "--from",
                     stale, "--count", "2", NULL), 0);
    MT_TRUE(strstr(r.out, "put  b") && strstr(r.out, "deleted  a"));
    mt_run_free(&r);
    /* a document that is not an object: a usage error, nothing sent */
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "put", "cfg", "c", "[1]", NULL), 2);
    MT_TRUE(strstr(r.err, "map") != NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "put", "bad-name", "c", "{}", NULL), 1);
    MT_TRUE(strstr(r.err, "INVALID_NAME") != NULL);
    mt_run_free(&r);
}

/* ---- bad input ----------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    MT_EQ_INT(maos_watch(c, "kv.x", "", MAOS_WATCH_FROM_REVISION, 1000000, NULL),
              MAOS_EBAD_REQUEST);
    MT_TRUE(strstr(c->errstr, "past the head") != NULL);
    MT_EQ_INT(maos_watch(c, "nosuch", "", MAOS_WATCH_FROM_NOW, 0, NULL),
              MAOS_EINVALID_NAME);
    MT_EQ_INT(maos_watch(c, "kv.x", "", 7, 0, NULL), MAOS_EINVALID_ARG);
    uint64_t t;
    MT_EQ_ERR(maos_lock(c, "L", 0, &t), 0);
    MT_EQ_INT(maos_unlock(c, "L", t + 1), MAOS_EWRONG_REVISION);
    int64_t actual;
    MT_TRUE(maos_err_actual(c, &actual));
    MT_EQ_INT(actual, (int64_t)t);
    MT_EQ_ERR(maos_unlock(c, "L", t), 0);
    MT_EQ_INT(maos_unlock(c, "L", t), MAOS_EWRONG_REVISION);
    MT_TRUE(maos_err_actual(c, &actual));
    MT_EQ_INT(actual, -1);
    maos_table_page *pg = NULL;
    MT_EQ_INT(maos_get(c, "kv.x", "missing", &pg), MAOS_ENOT_FOUND);
    MT_TRUE(maos_err_actual(c, &actual));
    MT_EQ_INT(actual, -1);
    MT_TRUE(pg == NULL);
    MT_EQ_INT(maos_agent_status(c, "busy", NULL, 0), MAOS_ENOT_FOUND);
    MT_EQ_ERR(maos_ping(c), 0); /* the context lives on */
    maos_free(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watch_snapshot_cut, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_watch_process, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_maosctl_lock_wait_runs_out, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_maosctl_session_kv, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
