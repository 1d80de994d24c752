/*
 * tests/subs/test_tables_wire.c -- the table ops over raw sockets, against
 * a real maosd (issue 7: tables, bindings, agents, watch, txn; the bad
 * inputs a client library would refuse before sending).
 *
 *  - put/get/delete with every expect form; WRONG_REVISION and NOT_FOUND
 *    carry the current revision (-1 when absent); each change appends one
 *    event to the entry's stream whose position is the revision;
 *  - list pages with `after`, `where` on a field and in an array, count,
 *    the snapshot revision;
 *  - a txn of an append, a put, a delete and a checkpoint is all or
 *    nothing: a failing part leaves no event and no entry changed, and
 *    its index is named;
 *  - an entry bound to a connection is deleted when the connection
 *    closes; an agent goes offline and keeps its entry; a second live
 *    registration of the same id is refused naming the pid; meta.agent is
 *    stamped over a forged value;
 *  - entries bound at a kill -9 of maosd are released at the next start,
 *    as events;
 *  - a watch sends the entries as of its revision, then every later
 *    change, and `from` past the head is refused;
 *  - bad input: keys empty/too long/invalid UTF-8, documents that are not
 *    maps, unknown table kinds, watch from a future revision, deregister
 *    of another connection's agent: typed errors, the daemon serves on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "subs_util.h"
#include "tables_util.h"


static void still_serves(void)
{
    su_conn *c = su_open(tu_daemon->sock);
    su_ping(c);
    su_close(c);
}


/* ---- put / get / delete / compare-and-set ------------------------------------------ */

static void test_cas(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    tu_result r = tu_put(c, "kv.plan", "step-1", "state", "todo", MAOS_EXPECT_ABSENT, 0);
    MT_EQ_INT(r.code, 0);
    uint64_t r1 = r.revision;
    MT_EQ_U64(r.created_revision, r1);
    char stream[1100], type[64];
    tu_record_at(c, r1, stream, type, NULL);
    MT_EQ_STR(stream, "kv.plan-step-1");
    MT_EQ_STR(type, "put");

    /* absent again: refused with the current revision */
    r = tu_put(c, "kv.plan", "step-1", "state", "x", MAOS_EXPECT_ABSENT, 0);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    MT_EQ_INT(r.has_actual, 1);
    MT_TRUE((int64_t)(r.actual) == (int64_t)((int64_t)r1));
    /* exact revision: one winner */
    r = tu_put(c, "kv.plan", "step-1", "state", "doing", (int64_t)r1, 0);
    MT_EQ_INT(r.code, 0);
    uint64_t r2 = r.revision;
    MT_TRUE(r2 > r1);
    MT_EQ_U64(r.created_revision, r1);
    r = tu_put(c, "kv.plan", "step-1", "state", "lost", (int64_t)r1, 0);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    MT_TRUE((int64_t)(r.actual) == (int64_t)((int64_t)r2));

    maos_entry e;
    char *frame = NULL;
    MT_EQ_INT(tu_get(c, "kv.plan", "step-1", &e, &frame, NULL), 0);
    MT_EQ_U64(e.revision, r2);
    MT_EQ_U64(e.created_revision, r1);
    char v[64];
    tu_doc_field(e.data, "state", v, sizeof v);
    MT_EQ_STR(v, "doing");
    MT_EQ_INT(e.bound, 0);
    free(frame);

    /* delete with a stale revision, then the right one */
    r = tu_del(c, "kv.plan", "step-1", (int64_t)r1);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    MT_TRUE((int64_t)(r.actual) == (int64_t)((int64_t)r2));
    r = tu_del(c, "kv.plan", "step-1", (int64_t)r2);
    MT_EQ_INT(r.code, 0);
    tu_record_at(c, r.revision, stream, type, NULL);
    MT_EQ_STR(type, "deleted");
    tu_result gr;
    MT_EQ_INT(tu_get(c, "kv.plan", "step-1", &e, &frame, &gr), MAOS_ENOT_FOUND);
    free(frame);
    MT_EQ_INT(gr.has_actual, 1);
    MT_TRUE((int64_t)(gr.actual) == (int64_t)(-1));
    r = tu_del(c, "kv.plan", "step-1", MAOS_EXPECT_ANY);
    MT_EQ_INT(r.code, MAOS_ENOT_FOUND);
    r = tu_del(c, "kv.plan", "step-1", 5);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    MT_TRUE((int64_t)(r.actual) == (int64_t)(-1));
    /* exists on a missing entry */
    r = tu_put(c, "kv.plan", "step-9", "state", "x", MAOS_EXPECT_EXISTS, 0);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    su_close(c);
}

/* ---- list, count, where ---------------------------------------------------------- */

static int list_page(su_conn *c, const char *table, const char *prefix,
                     const char *after, uint32_t limit, maos_slice where,
                     maos_reply *rep, char **frame)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_list(&b.pk, rid, tu_sl(table), tu_sl(prefix), tu_sl(after), limit, where),
              0);
    int code = su_call(c, &b.sb, rid, rep, frame);
    msgpack_sbuffer_destroy(&b.sb);
    return code;
}

static void test_list(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    char key[32];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "f-%02d", i);
        MT_EQ_INT(tu_put(c, "kv.files", key, "owner", i % 2 ? "odd" : "even",
                      MAOS_EXPECT_ANY, 0).code, 0);
    }
    MT_EQ_INT(tu_put(c, "kv.files", "g-1", "owner", "even", MAOS_EXPECT_ANY, 0).code, 0);
    MT_EQ_INT(tu_put(c, "kv.other", "f-00", "owner", "even", MAOS_EXPECT_ANY, 0).code, 0);
    uint64_t head = su_head(c);

    /* pages of 10 over prefix f-: 25 keys in order, revision = head */
    char after[64] = "";
    int seen = 0;
    for (int page = 0; page < 5; page++) {
        maos_reply rep;
        char *frame = NULL;
        MT_EQ_INT(list_page(c, "kv.files", "f-", after, 10, (maos_slice){0}, &rep,
                            &frame), 0);
        MT_EQ_U64(rep.revision, head);
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        MT_EQ_INT(maos_mpr_array(&r, &n), 0);
        for (uint32_t i = 0; i < n; i++) {
            maos_entry e;
            MT_EQ_INT(maos_entry_next(&r, &e), 0);
            snprintf(key, sizeof key, "f-%02d", seen++);
            MT_EQ_INT((int)e.key.len, (int)strlen(key));
            MT_TRUE(!memcmp(e.key.ptr, key, e.key.len));
        }
        int more = rep.next_kind == MAOS_NEXT_STR;
        if (more)
            snprintf(after, sizeof after, "%.*s", (int)rep.next_s.len, rep.next_s.ptr);
        free(frame);
        if (!more)
            break;
    }
    MT_EQ_INT(seen, 25);
    /* an `after` that sorts before the prefix starts at the prefix */
    {
        maos_reply rep0;
        char *frame0 = NULL;
        MT_EQ_INT(list_page(c, "kv.files", "f-", "a", 5, (maos_slice){0}, &rep0,
                            &frame0), 0);
        MT_EQ_INT(rep0.n_items, 5);
        maos_mpr r;
        uint32_t n;
        maos_entry e;
        maos_mpr_init(&r, rep0.items.ptr, rep0.items.len);
        MT_EQ_INT(maos_mpr_array(&r, &n), 0);
        MT_EQ_INT(maos_entry_next(&r, &e), 0);
        MT_EQ_MEM_STR(e.key.ptr, e.key.len, "f-00");
        free(frame0);
    }

    /* where owner = "odd": 12 of the f- keys; count agrees */
    tu_pkb w;
    tu_pkb_init(&w);
    msgpack_pack_map(&w.pk, 1);
    tu_pk_str(&w.pk, "owner");
    tu_pk_str(&w.pk, "odd");
    maos_slice where = {w.sb.data, (uint32_t)w.sb.size};
    maos_reply rep;
    char *frame = NULL;
    MT_EQ_INT(list_page(c, "kv.files", "", "", 100, where, &rep, &frame), 0);
    MT_EQ_INT(rep.n_items, 12);
    free(frame);
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_count(&b.pk, rid, tu_sl("kv.files"), tu_sl(""), where), 0);
    tu_result cr = tu_call_sb(c, &b, rid);
    MT_EQ_INT(cr.code, 0);
    MT_EQ_U64(cr.count, 12);
    tu_pkb_init(&b);
    rid = su_rid(c);
    MT_EQ_INT(maos_enc_count(&b.pk, rid, tu_sl("kv.files"), tu_sl(""), (maos_slice){0}), 0);
    cr = tu_call_sb(c, &b, rid);
    MT_EQ_U64(cr.count, 26);
    msgpack_sbuffer_destroy(&w.sb);
    su_close(c);
}

/* ---- txn across primitives ------------------------------------------------------- */

static void test_txn(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    MT_EQ_INT(tu_put(c, "kv.t", "a", "v", "1", MAOS_EXPECT_ANY, 0).code, 0);
    uint64_t ra = tu_put(c, "kv.t", "b", "v", "1", MAOS_EXPECT_ANY, 0).revision;
    tu_pkb d;
    tu_doc1(&d, "v", "2");
    maos_event_in ev = {.type = tu_sl("x")};
    maos_append_in ap = {.stream = tu_sl("txn-s"), .expect = MAOS_EXPECT_ANY,
                         .n_events = 1, .events = &ev};
    maos_item_in items[4] = {
        {.kind = MAOS_ITEM_APPEND, .append = &ap},
        {.kind = MAOS_ITEM_PUT, .table = {MAOS_TABLE_KV, tu_sl("kv.t")}, .key = tu_sl("a"),
         .data = {d.sb.data, (uint32_t)d.sb.size}, .expect = MAOS_EXPECT_ANY},
        {.kind = MAOS_ITEM_DELETE, .table = {MAOS_TABLE_KV, tu_sl("kv.t")}, .key = tu_sl("b"),
         .expect = (int64_t)ra + 1000}, /* wrong: the txn fails at index 2 */
        {.kind = MAOS_ITEM_CHECKPOINT, .name = tu_sl("cp-t"), .position = 1},
    };
    uint64_t head0 = su_head(c);
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_txn_ops(&b.pk, rid, items, 4), 0);
    tu_result r = tu_call_sb(c, &b, rid);
    MT_EQ_INT(r.code, MAOS_EWRONG_REVISION);
    MT_TRUE((int64_t)(r.index) == (int64_t)(2));
    MT_EQ_U64(su_head(c), head0); /* nothing appended */
    maos_entry e;
    char *frame = NULL;
    char v[16];
    MT_EQ_INT(tu_get(c, "kv.t", "a", &e, &frame, NULL), 0);
    tu_doc_field(e.data, "v", v, sizeof v);
    MT_EQ_STR(v, "1");
    free(frame);

    items[2].expect = (int64_t)ra;
    tu_pkb_init(&b);
    rid = su_rid(c);
    MT_EQ_INT(maos_enc_txn_ops(&b.pk, rid, items, 4), 0);
    maos_reply rep;
    MT_EQ_INT(su_call(c, &b.sb, rid, &rep, &frame), 0);
    msgpack_sbuffer_destroy(&b.sb);
    MT_EQ_INT(rep.n_results, 4);
    free(frame);
    MT_EQ_U64(su_head(c), head0 + 3); /* append, put, delete events */
    MT_EQ_INT(tu_get(c, "kv.t", "a", &e, &frame, NULL), 0);
    tu_doc_field(e.data, "v", v, sizeof v);
    MT_EQ_STR(v, "2");
    free(frame);
    MT_EQ_INT(tu_get(c, "kv.t", "b", &e, &frame, NULL), MAOS_ENOT_FOUND);
    free(frame);
    msgpack_sbuffer_destroy(&d.sb);
    su_close(c);
}

/* ---- bindings and agents ------------------------------------------------------- */

static void test_bindings(void **state)
{
    (void)state;
    su_conn *obs = su_open(tu_daemon->sock);
    su_conn *c = su_open(tu_daemon->sock);
    MT_EQ_INT(tu_put(c, "locks", "build", "owner", "c", MAOS_EXPECT_ABSENT, 1).code, 0);
    MT_EQ_INT(tu_put(obs, "locks", "build", "owner", "obs", MAOS_EXPECT_ABSENT, 1).code,
              MAOS_EWRONG_REVISION);
    MT_EQ_INT(tu_agent_register(c, "writer-1").code, 0);
    /* a second live registration, from another process, names the
     * holder's pid (the same process may take its own id back) */
    pid_t kid = su_fork("second-registration");
    if (kid == 0) {
        su_conn *k = su_open(tu_daemon->sock);
        tu_result kr = tu_agent_register(k, "writer-1");
        char pid[32];
        snprintf(pid, sizeof pid, "pid %d", (int)getppid());
        SU_TRUE(kr.code == MAOS_ECONFLICT);
        SU_TRUE(strstr(kr.msg, pid) != NULL);
        _exit(0);
    }
    MT_EQ_INT(mt_wait(kid, 30000), 0);
    /* deregister of someone else's live agent */
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(obs);
    MT_EQ_INT(maos_enc_agent_deregister(&b.pk, rid, tu_sl("writer-1")), 0);
    MT_EQ_INT(tu_call_sb(obs, &b, rid).code, MAOS_EUNAUTHORIZED);
    tu_wait_field(obs, "agents", "writer-1", "status", "online");

    /* meta.agent is stamped over a forged one */
    tu_pkb m;
    tu_pkb_init(&m);
    msgpack_pack_map(&m.pk, 1);
    tu_pk_str(&m.pk, "agent");
    tu_pk_str(&m.pk, "someone-else");
    maos_event_in ev = {.type = tu_sl("note"), .meta = {m.sb.data, (uint32_t)m.sb.size}};
    maos_append_in ap = {.stream = tu_sl("notes"), .expect = MAOS_EXPECT_ANY,
                         .n_events = 1, .events = &ev};
    tu_pkb_init(&b);
    rid = su_rid(c);
    MT_EQ_INT(maos_enc_append(&b.pk, rid, &ap), 0);
    maos_reply rep;
    char *frame = NULL;
    MT_EQ_INT(su_call(c, &b.sb, rid, &rep, &frame), 0);
    uint64_t pos = rep.result.first_position;
    free(frame);
    msgpack_sbuffer_destroy(&b.sb);
    msgpack_sbuffer_destroy(&m.sb);
    char stream[1100], type[64], agent[256];
    tu_record_at(obs, pos, stream, type, agent);
    MT_EQ_STR(agent, "writer-1");

    /* the connection goes: lock deleted, agent offline (entry kept) */
    su_close(c);
    tu_wait_field(obs, "locks", "build", "owner", "");
    tu_wait_field(obs, "agents", "writer-1", "status", "offline");
    /* the id can be taken back now */
    MT_EQ_INT(tu_agent_register(obs, "writer-1").code, 0);
    tu_wait_field(obs, "agents", "writer-1", "status", "online");

    /* kill -9 of maosd with a bound lock and an online agent: released at
     * the next start, as events */
    MT_EQ_INT(tu_put(obs, "locks", "deploy", "owner", "obs", MAOS_EXPECT_ABSENT, 1).code, 0);
    mt_daemon_kill9(tu_daemon); /* obs still connected: nothing released before */
    su_close(obs);
    mt_daemon_up(tu_daemon);
    c = su_open(tu_daemon->sock);
    tu_wait_field(c, "locks", "deploy", "owner", "");
    tu_wait_field(c, "agents", "writer-1", "status", "offline");
    char *log = mt_read_file(tu_daemon->log, NULL);
    MT_TRUE(log && strstr(log, "releasing 2 entries bound"));
    free(log);
    su_close(c);
    still_serves();
}

/* ---- watch ------------------------------------------------------------------------ */

typedef struct watch_seen {
    uint64_t sub;
    uint32_t entries;
    int snapshot_done;
    uint64_t snapshot_rev;
    uint32_t puts, deletes;
    uint64_t last_pos;
} watch_seen;

static void on_watch_push(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    watch_seen *w = user;
    if (p->sub != w->sub)
        MT_FAIL("push for sub %llu, watching %llu", (unsigned long long)p->sub,
                (unsigned long long)w->sub);
    if (p->kind == MAOS_PUSH_ENTRIES) {
        MT_TRUE(!w->snapshot_done);
        w->entries += p->n_items;
        w->snapshot_rev = p->revision;
        w->snapshot_done = !p->more;
    } else if (p->kind == MAOS_PUSH_EVENTS) {
        MT_TRUE(w->snapshot_done);
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, p->items.ptr, p->items.len);
        MT_EQ_INT(maos_mpr_array(&r, &n), 0);
        for (uint32_t i = 0; i < n; i++) {
            maos_record rec;
            MT_EQ_INT(maos_record_next(&r, &rec), 0);
            MT_TRUE(rec.position > w->snapshot_rev);
            MT_TRUE(rec.position > w->last_pos);
            w->last_pos = rec.position;
            MT_TRUE(rec.stream.len > 8 && !memcmp(rec.stream.ptr, "kv.w-a/", 7));
            if (rec.type.len == 3)
                w->puts++;
            else
                w->deletes++;
        }
    }
}

static void test_watch(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    char key[32];
    for (int i = 0; i < 1500; i++) { /* more than one page */
        snprintf(key, sizeof key, "a/%04d", i);
        MT_EQ_INT(tu_put(c, "kv.w", key, "v", "0", MAOS_EXPECT_ANY, 0).code, 0);
    }
    MT_EQ_INT(tu_put(c, "kv.w", "b/0", "v", "0", MAOS_EXPECT_ANY, 0).code, 0);
    uint64_t head = su_head(c);

    su_conn *w = su_open(tu_daemon->sock);
    watch_seen seen = {0};
    su_set_push(w, on_watch_push, &seen);
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(w);
    MT_EQ_INT(maos_enc_watch(&b.pk, rid, tu_sl("kv.w"), tu_sl("a/"), MAOS_WATCH_FROM_ENTRIES, 0),
              0);
    maos_reply rep;
    char *frame = NULL;
    MT_EQ_INT(su_call(w, &b.sb, rid, &rep, &frame), 0);
    msgpack_sbuffer_destroy(&b.sb);
    seen.sub = rep.sub;
    MT_EQ_U64(rep.revision, head);
    free(frame);
    /* changes after the snapshot: 3 puts (one outside the prefix), 1 delete */
    MT_EQ_INT(tu_put(c, "kv.w", "a/0001", "v", "1", MAOS_EXPECT_ANY, 0).code, 0);
    MT_EQ_INT(tu_put(c, "kv.w", "a/9999", "v", "1", MAOS_EXPECT_ANY, 0).code, 0);
    MT_EQ_INT(tu_put(c, "kv.w", "b/1", "v", "1", MAOS_EXPECT_ANY, 0).code, 0);
    MT_EQ_INT(tu_del(c, "kv.w", "a/0002", MAOS_EXPECT_ANY).code, 0);
    int64_t deadline = mt_now_us() + 10LL * 1000000;
    while (seen.puts + seen.deletes < 3 && mt_now_us() < deadline)
        su_pump(w, 100, NULL);
    MT_EQ_INT(seen.entries, 1500);
    MT_EQ_U64(seen.snapshot_rev, head);
    MT_EQ_INT(seen.puts, 2);
    MT_EQ_INT(seen.deletes, 1);

    /* from a future revision: refused; the daemon serves on */
    tu_pkb_init(&b);
    rid = su_rid(c);
    MT_EQ_INT(maos_enc_watch(&b.pk, rid, tu_sl("kv.w"), tu_sl(""), MAOS_WATCH_FROM_REVISION,
                             su_head(c) + 100),
              0);
    MT_EQ_INT(tu_call_sb(c, &b, rid).code, MAOS_EBAD_REQUEST);
    su_close(w);
    su_close(c);
    still_serves();
}

/* ---- bad input -------------------------------------------------------------------- */

/* A put built by hand: any table/key bytes, data as raw msgpack. */
static int raw_put(su_conn *c, const char *table, const char *key, size_t klen,
                   const char *data, size_t dlen)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    msgpack_pack_map(&b.pk, 5);
    tu_pk_str(&b.pk, "op");
    tu_pk_str(&b.pk, "put");
    tu_pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, rid);
    tu_pk_str(&b.pk, "table");
    tu_pk_str(&b.pk, table);
    tu_pk_str(&b.pk, "key");
    msgpack_pack_str(&b.pk, klen);
    msgpack_pack_str_body(&b.pk, key, klen);
    tu_pk_str(&b.pk, "data");
    msgpack_pack_str_body(&b.pk, data, dlen);
    return tu_call_sb(c, &b, rid).code;
}

static void test_bad_input(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    static const char map0[] = "\x80", notmap[] = "\x93\x01\x02\x03", num[] = "\x05";
    char big[600];
    memset(big, 'k', sizeof big);
    MT_EQ_INT(raw_put(c, "kv.x", "", 0, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.x", big, 513, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.x", big, 512, map0, 1), 0);
    MT_EQ_INT(raw_put(c, "kv.x", "a\xff", 2, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.x", "a\0b", 3, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.x", "k", 1, notmap, 4), MAOS_EBAD_REQUEST);
    MT_EQ_INT(raw_put(c, "kv.x", "k", 1, num, 1), MAOS_EBAD_REQUEST);
    MT_EQ_INT(raw_put(c, "foo", "k", 1, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.", "k", 1, map0, 1), MAOS_EINVALID_NAME);
    MT_EQ_INT(raw_put(c, "kv.a-b", "k", 1, map0, 1), MAOS_EINVALID_NAME);
    /* the agents table is written by the agent ops only */
    MT_EQ_INT(tu_put(c, "agents", "fake", "status", "online", MAOS_EXPECT_ANY, 0).code,
              MAOS_EUNAUTHORIZED);
    MT_EQ_INT(tu_del(c, "agents", "fake", MAOS_EXPECT_ANY).code, MAOS_EUNAUTHORIZED);
    /* agent_status without a registered agent */
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_agent_status(&b.pk, rid, tu_sl("busy"), (maos_slice){0}), 0);
    MT_EQ_INT(tu_call_sb(c, &b, rid).code, MAOS_ENOT_FOUND);
    /* an append into a table's stream */
    su_ev_in ev = {.type = "put"};
    MT_EQ_INT(su_append(c, "kv.x-k", &ev, 1, NULL), MAOS_EINVALID_NAME);
    MT_EQ_INT(su_append(c, "agent-me", &ev, 1, NULL), MAOS_EINVALID_NAME);
    su_ping(c);
    su_close(c);
    still_serves();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cas, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_list, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_txn, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bindings, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_watch, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
