/*
 * tests/subs/test_tables_client.c -- tables through libmaos-client and
 * maosctl, against a real maosd (issue 7, "Client library, maosctl").
 *
 *  - put/get/list/count/delete; WRONG_REVISION gives the actual revision
 *    (maos_err_actual), NOT_FOUND -1; list pages with `after` and `where`;
 *  - a refused compare-and-set carries the entry as it is (maos_err_entry),
 *    and a retry from it wins; none for an absent entry, a txn, or after a
 *    later call;
 *  - maos_txn_items: a failing part names its index, nothing is written;
 *    the whole txn then succeeds with a revision per item;
 *  - maos_watch blocking: the entries, then the changes; after a daemon
 *    restart (reconnect on) the watch goes on after the last change, with
 *    no duplicate and the entries not sent again;
 *  - an agent registered by the library is online again after a restart
 *    of maosd (re-registered by the library on reconnect);
 *  - maos_lock: a waiter is told by push when the holder (another
 *    process) is SIGKILLed and gets a higher fencing token;
 *  - sessions create, close, list by state;
 *  - maosctl kv put/get (a failed --expect exits 1), lock runs its command
 *    with MAOS_LOCK_TOKEN, agent run registers for the command's lifetime.
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


/* {"v": "value"} */
static size_t doc(char *buf, const char *value)
{
    size_t n = strlen(value);
    buf[0] = (char)0x81;
    buf[1] = (char)0xa1;
    buf[2] = 'v';
    buf[3] = (char)0xd9;
    buf[4] = (char)n;
    memcpy(buf + 5, value, n);
    return 5 + n;
}

static void test_crud(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    char d[64];
    uint64_t r1, r2, count, rev;
    MT_EQ_ERR(maos_put(c, "kv.c", "a", d, doc(d, "1"), MAOS_EXPECT_ABSENT, 0, &r1), 0);
    MT_EQ_INT(maos_put(c, "kv.c", "a", d, doc(d, "2"), MAOS_EXPECT_ABSENT, 0, NULL),
              MAOS_EWRONG_REVISION);
    int64_t actual;
    MT_TRUE(maos_err_actual(c, &actual) && actual == (int64_t)r1);
    MT_EQ_ERR(maos_put(c, "kv.c", "a", d, doc(d, "2"), (int64_t)r1, 0, &r2), 0);
    MT_TRUE(r2 > r1);
    maos_table_page *pg = NULL;
    MT_EQ_ERR(maos_get(c, "kv.c", "a", &pg), 0);
    MT_EQ_INT((int)pg->n, 1);
    MT_EQ_U64(pg->entries[0].revision, r2);
    MT_EQ_U64(pg->entries[0].created_revision, r1);
    maos_table_page_free(pg);
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof k, "b-%02d", i);
        MT_EQ_ERR(maos_put(c, "kv.c", k, d, doc(d, i % 3 ? "x" : "y"), MAOS_EXPECT_ANY, 0,
                           NULL), 0);
    }
    /* pages of 7 over b-: 30 in order */
    char *after = NULL;
    int seen = 0;
    do {
        MT_EQ_ERR(maos_list(c, "kv.c", "b-", after, NULL, 0, 7, &pg), 0);
        for (size_t i = 0; i < pg->n; i++, seen++) {
            char k[16];
            snprintf(k, sizeof k, "b-%02d", seen);
            MT_EQ_MEM_STR(pg->entries[i].key.ptr, pg->entries[i].key.len, k);
        }
        free(after);
        after = pg->has_next ? strdup(pg->next) : NULL;
        maos_table_page_free(pg);
    } while (after);
    MT_EQ_INT(seen, 30);
    char where[16];
    size_t wl = doc(where, "y");
    MT_EQ_ERR(maos_count(c, "kv.c", "b-", where, wl, &count, &rev), 0);
    MT_EQ_U64(count, 10);
    MT_TRUE(rev >= r2);
    MT_EQ_ERR(maos_delete(c, "kv.c", "a", (int64_t)r2, NULL), 0);
    MT_EQ_INT(maos_get(c, "kv.c", "a", &pg), MAOS_ENOT_FOUND);
    MT_EQ_INT(maos_delete(c, "kv.c", "a", MAOS_EXPECT_ANY, NULL), MAOS_ENOT_FOUND);
    /* bad arguments stay on this side */
    MT_EQ_INT(maos_put(c, "kv.c", "a", "\x93\x01\x02\x03", 4, MAOS_EXPECT_ANY, 0, NULL),
              MAOS_EINVALID_ARG);
    MT_EQ_INT(maos_put(c, "kv.c", "", d, doc(d, "1"), MAOS_EXPECT_ANY, 0, NULL),
              MAOS_EINVALID_NAME);
    maos_free(c);
}

/* maos_err_entry: the current entry of a refused put/delete, nothing
 * otherwise; a compare-and-set retried from it wins. */
static void test_cas_entry(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    char d[64];
    uint64_t r1, r2, r3;
    maos_table_page *pg = NULL;
    MT_EQ_INT(maos_err_entry(c, &pg), MAOS_ENOT_FOUND); /* nothing refused yet */
    MT_EQ_ERR(maos_put(c, "kv.e", "a", d, doc(d, "1"), MAOS_EXPECT_ABSENT, 0, &r1), 0);
    MT_EQ_ERR(maos_put(c, "kv.e", "a", d, doc(d, "two"), (int64_t)r1, 0, &r2), 0);
    /* a stale compare-and-set: the entry at r2 comes back */
    MT_EQ_INT(maos_put(c, "kv.e", "a", d, doc(d, "3"), (int64_t)r1, 0, NULL),
              MAOS_EWRONG_REVISION);
    MT_EQ_ERR(maos_err_entry(c, &pg), 0);
    MT_EQ_INT((int)pg->n, 1);
    MT_EQ_MEM_STR(pg->entries[0].table.ptr, pg->entries[0].table.len, "kv.e");
    MT_EQ_MEM_STR(pg->entries[0].key.ptr, pg->entries[0].key.len, "a");
    MT_EQ_U64(pg->entries[0].revision, r2);
    MT_EQ_U64(pg->entries[0].created_revision, r1);
    MT_EQ_INT((int)pg->entries[0].data.len, (int)doc(d, "two"));
    MT_TRUE(memcmp(pg->entries[0].data.ptr, d, pg->entries[0].data.len) == 0);
    /* retried from it: wins */
    MT_EQ_ERR(maos_put(c, "kv.e", "a", d, doc(d, "3"), (int64_t)pg->entries[0].revision,
                       0, &r3), 0);
    maos_table_page_free(pg);
    MT_EQ_INT(maos_err_entry(c, &pg), MAOS_ENOT_FOUND); /* cleared by the success */
    /* put-if-absent on an existing entry, and a stale delete: the entry */
    MT_EQ_INT(maos_put(c, "kv.e", "a", d, doc(d, "4"), MAOS_EXPECT_ABSENT, 0, NULL),
              MAOS_EWRONG_REVISION);
    MT_EQ_ERR(maos_err_entry(c, &pg), 0);
    MT_EQ_U64(pg->entries[0].revision, r3);
    maos_table_page_free(pg);
    MT_EQ_INT(maos_delete(c, "kv.e", "a", (int64_t)r2, NULL), MAOS_EWRONG_REVISION);
    MT_EQ_ERR(maos_err_entry(c, &pg), 0);
    MT_EQ_U64(pg->entries[0].revision, r3);
    maos_table_page_free(pg);
    /* an absent entry: a revision of -1 and no entry */
    MT_EQ_INT(maos_put(c, "kv.e", "b", d, doc(d, "1"), (int64_t)r1, 0, NULL),
              MAOS_EWRONG_REVISION);
    int64_t actual;
    MT_TRUE(maos_err_actual(c, &actual) && actual == -1);
    MT_EQ_INT(maos_err_entry(c, &pg), MAOS_ENOT_FOUND);
    /* a txn's refusal: none (its earlier items were rolled back) */
    size_t dl = doc(d, "5");
    maos_txn_item items[1] = {
        {.kind = MAOS_ITEM_PUT, .table = "kv.e", .key = "a", .doc = d, .doc_len = dl,
         .expect = (int64_t)r1},
    };
    uint64_t revs[1];
    MT_EQ_INT(maos_txn_items(c, items, 1, revs), MAOS_EWRONG_REVISION);
    MT_EQ_INT(maos_err_entry(c, &pg), MAOS_ENOT_FOUND);
    MT_EQ_INT(maos_err_entry(c, NULL), MAOS_EINVALID_ARG);
    maos_free(c);
}

static void test_txn_items(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    char d[64];
    size_t dl = doc(d, "t");
    uint64_t rb;
    MT_EQ_ERR(maos_put(c, "kv.t", "b", d, dl, MAOS_EXPECT_ANY, 0, &rb), 0);
    /* the append's ids come back through its own ids buffer */
    uint8_t got_id[1][16];
    memset(got_id, 0, sizeof got_id);
    maos_event_spec ev = {.type = "x"};
    maos_txn_append ap = {.stream = "txn-c", .expect = MAOS_EXPECT_ANY, .events = &ev,
                          .n_events = 1, .ids = got_id};
    maos_txn_item items[3] = {
        {.kind = MAOS_ITEM_APPEND, .append = &ap},
        {.kind = MAOS_ITEM_PUT, .table = "kv.t", .key = "a", .doc = d, .doc_len = dl,
         .expect = MAOS_EXPECT_ANY},
        {.kind = MAOS_ITEM_DELETE, .table = "kv.t", .key = "b", .expect = (int64_t)rb + 99},
    };
    uint64_t revs[3];
    MT_EQ_INT(maos_txn_items(c, items, 3, revs), MAOS_EWRONG_REVISION);
    MT_EQ_INT((int)maos_err_index(c), 2);
    maos_table_page *pg = NULL;
    MT_EQ_INT(maos_get(c, "kv.t", "a", &pg), MAOS_ENOT_FOUND);
    items[2].expect = (int64_t)rb;
    MT_EQ_ERR(maos_txn_items(c, items, 3, revs), 0);
    MT_TRUE(revs[0] < revs[1] && revs[1] < revs[2]);
    maos_page *ep = NULL;
    MT_EQ_ERR(maos_read(c, "txn-c", MAOS_FROM_START, 0, 1, &ep), 0);
    MT_EQ_U64(ep->n, 1);
    MT_TRUE(memcmp(ep->events[0].id, got_id[0], 16) == 0);
    maos_page_free(ep);
    /* an item the library refuses before sending: a clear error */
    maos_txn_item bad = {.kind = 99};
    MT_EQ_INT(maos_txn_items(c, &bad, 1, NULL), MAOS_EINVALID_ARG);
    MT_TRUE(strstr(c->errstr, "unknown kind") != NULL);
    MT_EQ_ERR(maos_get(c, "kv.t", "a", &pg), 0);
    MT_EQ_U64(pg->entries[0].revision, revs[1]);
    maos_table_page_free(pg);
    maos_free(c);
}

/* Deliveries of sub until n changes arrived: entries counted in *entries,
 * change revisions appended to revs. */
static void take_changes(maos_ctx *c, size_t want, size_t *entries, uint64_t *revs,
                         size_t *n)
{
    int64_t deadline = mt_now_us() + 30LL * 1000000;
    while (*n < want) {
        maos_delivery *dl = NULL;
        int rc = maos_next(c, 200, &dl);
        if (rc == MAOS_ETIMEOUT) {
            if (mt_now_us() > deadline)
                MT_FAIL("%zu of %zu changes within 30 s", *n, want);
            continue;
        }
        MT_EQ_ERR(rc, 0);
        if (dl->kind == MAOS_PUSH_ENTRIES)
            *entries += dl->n_entries;
        for (size_t i = 0; i < dl->n; i++)
            revs[(*n)++] = dl->events[i].position;
        maos_delivery_free(dl);
    }
}

static void test_watch_resume(void **state)
{
    (void)state;
    maos_ctx *w = tu_conn(1), *c = tu_conn(1);
    char d[64];
    size_t dl = doc(d, "w");
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        MT_EQ_ERR(maos_put(c, "kv.w", k, d, dl, MAOS_EXPECT_ANY, 0, NULL), 0);
    }
    uint64_t sub;
    MT_EQ_ERR(maos_watch(w, "kv.w", "", MAOS_WATCH_FROM_ENTRIES, 0, &sub), 0);
    uint64_t revs[16], r;
    size_t n = 0, entries = 0;
    MT_EQ_ERR(maos_put(c, "kv.w", "k9", d, dl, MAOS_EXPECT_ANY, 0, &r), 0);
    take_changes(w, 1, &entries, revs, &n);
    MT_EQ_INT((int)entries, 5);
    MT_EQ_U64(revs[0], r);
    mt_daemon_restart(tu_daemon);
    maos_free(c);
    c = tu_conn(1);
    uint64_t r2, r3;
    MT_EQ_ERR(maos_put(c, "kv.w", "k1", d, dl, MAOS_EXPECT_ANY, 0, &r2), 0);
    MT_EQ_ERR(maos_delete(c, "kv.w", "k2", MAOS_EXPECT_ANY, &r3), 0);
    take_changes(w, 3, &entries, revs, &n);
    MT_EQ_INT((int)entries, 5); /* not sent again */
    MT_EQ_U64(revs[1], r2);
    MT_EQ_U64(revs[2], r3);
    maos_free(w);
    maos_free(c);
}

static void test_agent_reregistered(void **state)
{
    (void)state;
    maos_ctx *a = tu_conn(1), *obs = tu_conn(0);
    const char *tags[] = {"review", "c"};
    maos_agent_spec sp = {.id = "rev-1", .session = "s9", .name = "reviewer",
                          .kind = "llm", .tags = tags, .n_tags = 2};
    MT_EQ_ERR(maos_agent_register(a, &sp, NULL), 0);
    MT_EQ_ERR(maos_agent_status(a, "busy", NULL, 0), 0);
    maos_free(obs);
    mt_daemon_restart(tu_daemon); /* offline at start-up, then back */
    /* the call that meets the lost connection fails; the context
     * reconnects and registers the agent again */
    int64_t deadline = mt_now_us() + 30LL * 1000000;
    while (maos_ping(a) != 0) {
        if (maos_is_dead(a))
            MT_FAIL("dead: %s", a->errstr);
        if (mt_now_us() > deadline)
            MT_FAIL("no reconnect within 30 s: %s", a->errstr);
    }
    obs = tu_conn(0);
    maos_table_page *pg = NULL;
    MT_EQ_ERR(maos_get(obs, "agents", "rev-1", &pg), 0);
    char st[32];
    tu_doc_field((maos_slice){pg->entries[0].data.ptr, (uint32_t)pg->entries[0].data.len}, "status",
                 st, sizeof st);
    MT_EQ_STR(st, "online");
    MT_TRUE(pg->entries[0].bound);
    maos_table_page_free(pg);
    /* list by capability */
    char where[32] = "\x81\xa4tags\xa6review";
    MT_EQ_ERR(maos_list(obs, "agents", NULL, NULL, where, 13, 0, &pg), 0);
    MT_EQ_INT((int)pg->n, 1);
    maos_table_page_free(pg);
    MT_EQ_ERR(maos_agent_deregister(a, "rev-1"), 0);
    MT_EQ_INT(maos_get(obs, "agents", "rev-1", &pg), MAOS_ENOT_FOUND);
    maos_free(a);
    maos_free(obs);
}

static void test_lock_waiter(void **state)
{
    (void)state;
    int pfd[2];
    MT_EQ_INT(pipe(pfd), 0);
    pid_t kid = su_fork("holder");
    if (kid == 0) {
        maos_ctx *h = maos_connect_timeout(tu_daemon->sock, 30000);
        uint64_t t;
        SU_TRUE(h && h->err == 0 && maos_lock(h, "deploy", 0, &t) == 0);
        char one = 1;
        SU_TRUE(write(pfd[1], &one, 1) == 1);
        for (;;)
            pause();
    }
    char one;
    MT_EQ_INT((int)read(pfd[0], &one, 1), 1);
    maos_ctx *c = tu_conn(0);
    uint64_t sub0;
    MT_EQ_ERR(maos_subscribe_channel(c, "unrelated", &sub0), 0);
    MT_EQ_INT(maos_lock(c, "deploy", 0, NULL), MAOS_EWRONG_REVISION);
    int64_t held;
    MT_TRUE(maos_err_actual(c, &held));
    MT_EQ_INT(kill(kid, SIGKILL), 0);
    uint64_t token;
    MT_EQ_ERR(maos_lock(c, "deploy", 30000, &token), 0);
    MT_TRUE((int64_t)token > held);
    MT_EQ_ERR(maos_unlock(c, "deploy", token), 0);
    mt_wait(kid, 10000);
    close(pfd[0]);
    close(pfd[1]);
    maos_free(c);
}

static void test_sessions(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    char id1[37], id2[37];
    MT_EQ_ERR(maos_session_create(c, NULL, "\x81\xa4goal\xa1x", 8, id1, NULL), 0);
    MT_EQ_ERR(maos_session_create(c, "named", NULL, 0, id2, NULL), 0);
    MT_EQ_STR(id2, "named");
    MT_EQ_ERR(maos_session_close(c, id1, "\xa2ok", 3, NULL), 0);
    maos_table_page *pg = NULL;
    MT_EQ_ERR(maos_list(c, "sessions", NULL, NULL, "\x81\xa5state\xa6" "closed", 14, 0, &pg),
              0);
    MT_EQ_INT((int)pg->n, 1);
    MT_EQ_MEM_STR(pg->entries[0].key.ptr, pg->entries[0].key.len, id1);
    maos_table_page_free(pg);
    MT_EQ_ERR(maos_list(c, "sessions", NULL, NULL, "\x81\xa5state\xa4open", 12, 0, &pg), 0);
    MT_EQ_INT((int)pg->n, 1);
    maos_table_page_free(pg);
    maos_free(c);
}

static void test_maosctl(void **state)
{
    (void)state;
    mt_run r;
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "put", "plan", "s1", "{\"x\":1}", NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "kv", "put", "plan", "s1", "{\"x\":2}", "--expect",
                     "absent", NULL), 1);
    MT_TRUE(strstr(r.err, "WRONG_REVISION") != NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "kv", "get", "plan", "s1", NULL), 0);
    MT_TRUE(strstr(r.out, "\"table\":\"kv.plan\"") && strstr(r.out, "\"data\":{\"x\":1}") &&
            strstr(r.out, "\"created_revision\"") && strstr(r.out, "\"updated\""));
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "lock", "L", "--", "sh", "-c",
                     "test -n \"$MAOS_LOCK_TOKEN\" && exit 7", NULL), 7);
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "agent", "run", "--id", "sh-1", "--", "sh", "-c",
                     "exit 0", NULL), 0);
    mt_run_free(&r);
    /* offline once maosd saw the connection close: wait for it */
    int64_t deadline = mt_now_us() + 30LL * 1000000;
    for (;;) {
        MT_EQ_INT(mt_ctl(tu_daemon, &r, "--json", "agent", "show", "sh-1", NULL), 0);
        int offline = strstr(r.out, "\"status\":\"offline\"") != NULL;
        MT_TRUE(strstr(r.out, "\"last_seen\"") != NULL);
        mt_run_free(&r);
        if (offline)
            break;
        if (mt_now_us() > deadline)
            MT_FAIL("sh-1 still online 30 s after its command exited");
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --socket '%s' agent list --tag deploy --status online",
             mt_maosctl_bin(), tu_daemon->sock);
    MT_EQ_INT(mt_ctl(tu_daemon, &r, "agent", "run", "--id", "sh-2", "--tag", "deploy",
                     "--", "sh", "-c", cmd, NULL), 0);
    MT_TRUE(strstr(r.out, "sh-2  online") != NULL && !strstr(r.out, "sh-1"));
    mt_run_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cas_entry, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_txn_items, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_watch_resume, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_agent_reregistered, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_lock_waiter, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sessions, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_maosctl, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
