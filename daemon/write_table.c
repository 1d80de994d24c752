/*
 * daemon/write_table.c -- the tables' write kinds (commit.h): put, delete,
 * release (maosd's own: a closed connection's bound entry), and the agent
 * kinds (register, status, deregister).  docs/ARCHITECTURE.md "Tables".
 *
 * Every change of an entry appends one event to the entry's stream
 * (maos_table_stream: "agent-ID", "kv.plan-step-3", ...) in the same
 * batch, type "put" or "deleted", data {table, key, data, created_revision,
 * bound}; the event's position is the entry's new revision.  So the log
 * stays the one ordered history, revisions order table changes against
 * events, and a watch is a subscription to the table's streams.
 *
 * Bound entries (put with bind): the entry records the writer's connection
 * id and pid, and meta "bound/<table>\0<key>" indexes it.  When that
 * connection closes, the loop submits a release (tables.c); at start-up
 * every indexed entry is released (its connection died with the previous
 * maosd).  A release does nothing when the entry is no longer bound to
 * that connection (rewritten or deleted since).  Releasing deletes the
 * entry, except agents, which stay with status "offline".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"

/* ---- entries ----------------------------------------------------------------- */

int maosd_entry_parse(const char *v, size_t n, maosd_entry *e)
{
    if (n < MAOSD_ENTRY_HDR + 1)
        return MAOS_ECORRUPT;
    e->revision = maosd_get_u64(v);
    e->created_revision = maosd_get_u64(v + 8);
    e->created = (int64_t)maosd_get_u64(v + 16);
    e->updated = (int64_t)maosd_get_u64(v + 24);
    e->bound_conn = maosd_get_u64(v + 32);
    e->bound_pid = maosd_get_u32(v + 40);
    e->data.ptr = v + MAOSD_ENTRY_HDR;
    e->data.len = (uint32_t)(n - MAOSD_ENTRY_HDR);
    return 0;
}

int maosd_enc_entry(msgpack_packer *pk, const maos_table_ref *t, maos_slice key,
                    const maosd_entry *e)
{
    return maos_enc_entry(pk, t->name, key, e->revision, e->created_revision,
                          e->created, e->updated, e->bound_conn != 0, e->data);
}

size_t maosd_table_stream(const maos_table_ref *t, maos_slice key, char *out)
{
    int n = maos_table_stream(t, key, out); /* t and key were checked */
    return n < 0 ? 0 : (size_t)n;
}

/* ---- documents ------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    pack_str(pk, s, strlen(s));
}

static int pack_raw(msgpack_packer *pk, maos_slice raw)
{
    return msgpack_pack_str_body(pk, raw.ptr, raw.len) ? MAOS_ENOMEM : 0;
}

/* 1 when the raw msgpack key is one of over[]'s names. */
static int overridden(maos_slice rawkey, const maosd_field *over, uint32_t n_over)
{
    maos_mpr r;
    maos_slice s;
    maos_mpr_init(&r, rawkey.ptr, rawkey.len);
    if (maos_mpr_str(&r, &s))
        return 0;
    for (uint32_t j = 0; j < n_over; j++)
        if (strlen(over[j].name) == s.len && !memcmp(over[j].name, s.ptr, s.len))
            return 1;
    return 0;
}

int maosd_doc_merge(msgpack_sbuffer *sb, maos_slice base, const maosd_field *over,
                    uint32_t n_over)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    maos_mpr r;
    uint32_t n = 0, keep = 0;
    maos_mpr_init(&r, base.ptr, base.len);
    if (base.len && maos_mpr_map(&r, &n))
        return MAOS_ECORRUPT;
    maos_mpr scan = r;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        if (maos_mpr_skip(&scan, &k) || maos_mpr_skip(&scan, &v))
            return MAOS_ECORRUPT;
        keep += !overridden(k, over, n_over);
    }
    if (msgpack_pack_map(&pk, keep + n_over))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        maos_mpr_skip(&r, &k);
        maos_mpr_skip(&r, &v);
        if (!overridden(k, over, n_over) && (pack_raw(&pk, k) || pack_raw(&pk, v)))
            return MAOS_ENOMEM;
    }
    for (uint32_t j = 0; j < n_over; j++) {
        pack_cstr(&pk, over[j].name);
        if (pack_raw(&pk, over[j].raw))
            return MAOS_ENOMEM;
    }
    return 0;
}

/* Small msgpack values for overrides, encoded into one scratch buffer. */
typedef struct scratch {
    char buf[512];
    size_t used;
} scratch;

static int scratch_write(void *data, const char *b, size_t n)
{
    scratch *s = data;
    if (s->used + n > sizeof(s->buf))
        return -1;
    memcpy(s->buf + s->used, b, n);
    s->used += n;
    return 0;
}

static maos_slice scratch_str(scratch *s, const char *p, size_t n)
{
    msgpack_packer pk;
    size_t at = s->used;
    msgpack_packer_init(&pk, s, scratch_write);
    if (msgpack_pack_str(&pk, n) || msgpack_pack_str_body(&pk, p, n))
        return (maos_slice){NULL, 0};
    return (maos_slice){s->buf + at, (uint32_t)(s->used - at)};
}

static maos_slice scratch_int(scratch *s, int64_t v)
{
    msgpack_packer pk;
    size_t at = s->used;
    msgpack_packer_init(&pk, s, scratch_write);
    if (msgpack_pack_int64(&pk, v))
        return (maos_slice){NULL, 0};
    return (maos_slice){s->buf + at, (uint32_t)(s->used - at)};
}

/* ---- the common part: read, check, write an entry ---------------------------- */

static int64_t item_index(const maosd_wreq *w, uint32_t i)
{
    return w->req.op == MAOS_OP_TXN ? (int64_t)i : -1;
}

/* Read item i's entry through the batch into *e (x->getbuf).  Returns 1
 * found, 0 absent, or an error recorded on w. */
static int read_entry(maosd_wctx *x, maosd_wreq *w, uint32_t i, maosd_entry *e)
{
    const maos_item_in *it = &w->req.items[i];
    char k[MAOSD_ENTRY_KEY_MAX];
    maosd_cf cf;
    size_t klen = maosd_key_entry(k, &it->table, it->key, 0, &cf), vlen;
    int rc = maosd_wx_get(x, cf, k, klen, &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    if (!rc && maosd_entry_parse(x->getbuf, vlen, e))
        rc = maosd_store_corrupt("the entry %.*s of table %.*s is %zu bytes",
                                 (int)it->key.len, it->key.ptr,
                                 (int)it->table.name.len, it->table.name.ptr, vlen);
    if (rc)
        return maosd_wfail(w, rc, item_index(w, i), "cannot read the entry: %s",
                           maosd_store_errmsg());
    return 1;
}

/* The expectation of item i against what was found. */
static int check_expect(maosd_wreq *w, uint32_t i, int found, const maosd_entry *e)
{
    const maos_item_in *it = &w->req.items[i];
    int ok;
    switch (it->expect) {
    case MAOS_EXPECT_ANY: ok = 1; break;
    case MAOS_EXPECT_ABSENT: ok = !found; break;
    case MAOS_EXPECT_EXISTS: ok = found; break;
    default: ok = found && e->revision == (uint64_t)it->expect; break;
    }
    if (ok)
        return 0;
    w->has_actual = 1;
    w->actual = found ? (int64_t)e->revision : -1;
    if (found && w->req.op != MAOS_OP_TXN) {
        /* The entry as it is, so a compare-and-set loop retries without a
         * get.  Not for a txn: its earlier items' writes, read through
         * the batch, are rolled back.  Without memory it is left out. */
        msgpack_packer pk;
        msgpack_packer_init(&pk, &w->current, msgpack_sbuffer_write);
        if (maosd_enc_entry(&pk, &it->table, it->key, e))
            w->current.size = 0;
    }
    char want[48];
    if (it->expect >= 0)
        snprintf(want, sizeof(want), "revision %lld", (long long)it->expect);
    else
        snprintf(want, sizeof(want), "%s",
                 it->expect == MAOS_EXPECT_ABSENT ? "no entry" : "an entry");
    if (found)
        return maosd_wfail(w, MAOS_EWRONG_REVISION, item_index(w, i),
                           "%.*s %.*s is at revision %llu, expected %s",
                           (int)it->table.name.len, it->table.name.ptr,
                           (int)it->key.len, it->key.ptr,
                           (unsigned long long)e->revision, want);
    return maosd_wfail(w, MAOS_EWRONG_REVISION, item_index(w, i),
                       "%.*s %.*s does not exist, expected %s",
                       (int)it->table.name.len, it->table.name.ptr, (int)it->key.len,
                       it->key.ptr, want);
}

static maosd_change *add_change(maosd_wreq *w)
{
    /* at most one change per item: sized on first use */
    if (!w->changes) {
        w->changes = calloc(w->req.n_items, sizeof(*w->changes));
        if (!w->changes)
            return NULL;
    }
    return &w->changes[w->n_changes++];
}

/* The change event of item i and the entry write.  doc: the new document
 * (put) or the old one (deleted); it may point into x->getbuf (the entry
 * as read): nothing here reads through that buffer.  bind_conn/bind_pid: the binding after
 * the change (0: none).  was_bound: it had one. */
static int write_entry(maosd_wctx *x, maosd_wreq *w, uint32_t i, int deleted,
                       maos_slice doc, uint64_t created_rev, int64_t created,
                       uint64_t bind_conn, uint32_t bind_pid, int was_bound)
{
    const maos_item_in *it = &w->req.items[i];
    char stream[MAOS_STREAM_MAX];
    maos_slice s = {stream, (uint32_t)maosd_table_stream(&it->table, it->key, stream)};
    int exists;
    uint64_t head, pos;
    int rc = maosd_wx_stream_head(x, s, &exists, &head);
    if (rc)
        return rc;
    uint64_t version = exists ? head + 1 : 0;
    if (!created_rev)
        created_rev = x->st->log_pos + 1; /* a new entry: this event */

    /* event data {table, key, data, created_revision, bound} */
    msgpack_sbuffer ev;
    msgpack_sbuffer_init(&ev);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ev, msgpack_sbuffer_write);
    rc = msgpack_pack_map(&pk, 5);
    pack_cstr(&pk, "table");
    pack_str(&pk, it->table.name.ptr, it->table.name.len);
    pack_cstr(&pk, "key");
    pack_str(&pk, it->key.ptr, it->key.len);
    pack_cstr(&pk, "data");
    rc |= pack_raw(&pk, doc);
    pack_cstr(&pk, "created_revision");
    msgpack_pack_uint64(&pk, created_rev);
    pack_cstr(&pk, "bound");
    rc |= bind_conn ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    /* meta: the writer's agent, stamped like an append's */
    scratch sc = {.used = 0};
    msgpack_sbuffer meta;
    msgpack_sbuffer_init(&meta);
    if (w->who.agent.len) {
        maosd_field f = {"agent", scratch_str(&sc, w->who.agent.ptr, w->who.agent.len)};
        rc |= maosd_doc_merge(&meta, (maos_slice){NULL, 0}, &f, 1);
    }
    static const char put_t[] = "put", del_t[] = "deleted";
    maos_slice type = deleted ? (maos_slice){del_t, 7} : (maos_slice){put_t, 3};
    if (!rc && ev.data)
        rc = maosd_wx_event(x, w, s, version, type, NULL, NULL, 0, 1,
                            (maos_slice){ev.data, (uint32_t)ev.size},
                            (maos_slice){meta.data, (uint32_t)meta.size}, &pos);
    else
        rc = MAOS_ENOMEM;
    msgpack_sbuffer_destroy(&ev);
    msgpack_sbuffer_destroy(&meta);
    if (rc)
        return rc;
    maosd_wx_stream_appended(x, s, version, pos, 1);

    char k[MAOSD_ENTRY_KEY_MAX];
    maosd_cf cf;
    size_t klen = maosd_key_entry(k, &it->table, it->key, 0, &cf);
    if (deleted) {
        maosd_batch_delete(x->batch, cf, k, klen);
    } else {
        size_t vlen = MAOSD_ENTRY_HDR + doc.len;
        char *v = malloc(vlen);
        if (!v)
            return MAOS_ENOMEM;
        maosd_put_u64(v, pos);
        maosd_put_u64(v + 8, created_rev);
        maosd_put_u64(v + 16, (uint64_t)created);
        maosd_put_u64(v + 24, (uint64_t)x->now);
        maosd_put_u64(v + 32, bind_conn);
        maosd_put_u32(v + 40, bind_pid);
        memcpy(v + MAOSD_ENTRY_HDR, doc.ptr, doc.len);
        maosd_batch_put(x->batch, cf, k, klen, v, vlen);
        free(v);
    }
    if (bind_conn != 0 || was_bound) {
        klen = maosd_key_entry(k, &it->table, it->key, 1, &cf);
        if (bind_conn)
            maosd_batch_put(x->batch, cf, k, klen, "", 0);
        else
            maosd_batch_delete(x->batch, cf, k, klen);
    }
    w->out[i].revision = pos;
    w->out[i].created_revision = deleted ? 0 : created_rev;
    maosd_change *ch = add_change(w);
    if (!ch)
        return MAOS_ENOMEM;
    ch->table = it->table;
    ch->key = it->key;
    ch->revision = pos;
    ch->deleted = deleted;
    ch->bound_conn = bind_conn;
    return 0;
}

/* ---- put ---------------------------------------------------------------------- */

/* The agents table is written by the agent ops only: a put or delete
 * could fake an agent's liveness. */
static int agents_refused(maosd_wreq *w, uint32_t i)
{
    if (w->req.items[i].table.kind != MAOS_TABLE_AGENTS)
        return 0;
    return maosd_wfail(w, MAOS_EUNAUTHORIZED, item_index(w, i),
                       "the agents table is written by agent_register, agent_status "
                       "and agent_deregister only");
}

int maosd_check_put(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    if (agents_refused(w, i))
        return w->code;
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    if (w->req.items[i].bind && !w->who.conn_id)
        return maosd_wfail(w, MAOS_EINTERNAL, item_index(w, i),
                           "maosd's own writes cannot be bound to a connection");
    maosd_item_out *o = &w->out[i];
    o->exists = found;
    o->cur_created_rev = found ? e.created_revision : 0;
    o->cur_created = found ? e.created : x->now;
    o->was_bound = found && e.bound_conn != 0;
    return check_expect(w, i, found, &e);
}

int maosd_stage_put(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    uint64_t conn = it->bind ? w->who.conn_id : 0;
    return write_entry(x, w, i, 0, it->data, o->cur_created_rev,
                       o->exists ? o->cur_created : x->now, conn,
                       conn ? (uint32_t)w->who.pid : 0, o->was_bound);
}

int maosd_reply_put(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    const maosd_item_out *o = &w->out[i];
    if (top)
        return maos_enc_reply_revision(pk, w->req.rid, o->revision,
                                       o->created_revision);
    maos_txn_result r = {.kind = MAOS_ITEM_PUT, .revision = o->revision,
                         .created_revision = o->created_revision};
    return maos_enc_txn_result(pk, &r);
}

/* ---- delete ------------------------------------------------------------------- */

int maosd_check_delete(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    if (agents_refused(w, i))
        return w->code;
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    const maos_item_in *it = &w->req.items[i];
    if (!found && it->expect == MAOS_EXPECT_ANY) {
        w->has_actual = 1;
        w->actual = -1;
        return maosd_wfail(w, MAOS_ENOT_FOUND, item_index(w, i),
                           "%.*s %.*s does not exist", (int)it->table.name.len,
                           it->table.name.ptr, (int)it->key.len, it->key.ptr);
    }
    int rc = check_expect(w, i, found, &e);
    if (rc)
        return rc;
    maosd_item_out *o = &w->out[i];
    o->exists = found;
    o->cur_created_rev = e.created_revision;
    o->cur_created = e.created;
    o->was_bound = e.bound_conn != 0;
    /* the document as it was goes into the event: copy it out of getbuf */
    return 0;
}

/* The current entry of item i, read again at stage time (check's read
 * went through the same shared x->getbuf); its data points into getbuf. */
static int current_doc(maosd_wctx *x, maosd_wreq *w, uint32_t i, maosd_entry *e)
{
    int found = read_entry(x, w, i, e);
    return found == 1 ? 0 : found == 0 ? MAOS_EINTERNAL : found;
}

int maosd_stage_delete(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_entry e;
    int rc0 = current_doc(x, w, i, &e);
    if (rc0)
        return rc0;
    return write_entry(x, w, i, 1, e.data, e.created_revision, e.created, 0, 0,
                       e.bound_conn != 0);
}

int maosd_reply_delete(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    if (top)
        return maos_enc_reply_revision(pk, w->req.rid, w->out[i].revision, UINT64_MAX);
    maos_txn_result r = {.kind = MAOS_ITEM_DELETE, .revision = w->out[i].revision};
    return maos_enc_txn_result(pk, &r);
}

/* ---- release: a bound entry whose connection is gone --------------------------- */

/* item->position: the connection id the entry must still be bound to (0:
 * any binding -- start-up, every connection is gone). */
int maosd_check_release(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    uint64_t conn = w->req.items[i].position;
    if (!found || !e.bound_conn || (conn && e.bound_conn != conn))
        return 1; /* rewritten, unbound or deleted since: nothing to do */
    return 0;
}

int maosd_stage_release(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_entry e;
    int rc0 = current_doc(x, w, i, &e);
    if (rc0)
        return rc0;
    if (it->table.kind != MAOS_TABLE_AGENTS)
        return write_entry(x, w, i, 1, e.data, e.created_revision, e.created, 0, 0, 1);
    static const char off[] = "offline";
    scratch sc = {.used = 0};
    maosd_field f[2] = {{"status", scratch_str(&sc, off, sizeof off - 1)},
                        {"last_seen", scratch_int(&sc, x->now)}};
    msgpack_sbuffer doc;
    msgpack_sbuffer_init(&doc);
    int rc = maosd_doc_merge(&doc, e.data, f, 2);
    if (!rc)
        rc = write_entry(x, w, i, 0, (maos_slice){doc.data, (uint32_t)doc.size},
                         e.created_revision, e.created, 0, 0, 1);
    msgpack_sbuffer_destroy(&doc);
    return rc;
}

int maosd_reply_release(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    return maosd_reply_delete(pk, w, i, top);
}

/* ---- agents ------------------------------------------------------------------- */

/* 1 when the process pid of a binding still runs (or cannot be asked). */
static int pid_alive(uint32_t pid)
{
    return pid && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* agent_register: item data is the client's fields {id, session, name,
 * kind, tags, details} (built by op_table.c); bound to the writer. */
int maosd_check_agent_register(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    const maos_item_in *it = &w->req.items[i];
    /* a live holder keeps it; the same process registering again (a
     * client library reconnecting) takes it over */
    if (found && e.bound_conn && e.bound_conn != w->who.conn_id &&
        e.bound_pid != (uint32_t)w->who.pid && pid_alive(e.bound_pid))
        return maosd_wfail(w, MAOS_ECONFLICT, item_index(w, i),
                           "agent %.*s is registered by pid %u (a live connection)",
                           (int)it->key.len, it->key.ptr, e.bound_pid);
    maosd_item_out *o = &w->out[i];
    o->exists = found;
    o->cur_created_rev = found ? e.created_revision : 0;
    o->cur_created = found ? e.created : x->now;
    o->was_bound = found && e.bound_conn != 0;
    return 0;
}

int maosd_stage_agent_register(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    static const char on[] = "online";
    scratch sc = {.used = 0};
    maosd_field f[5] = {{"status", scratch_str(&sc, on, sizeof on - 1)},
                  {"pid", scratch_int(&sc, w->who.pid)},
                  {"uid", scratch_int(&sc, w->who.uid)},
                  {"registered", scratch_int(&sc, x->now)},
                  {"last_seen", scratch_int(&sc, x->now)}};
    msgpack_sbuffer doc;
    msgpack_sbuffer_init(&doc);
    int rc = maosd_doc_merge(&doc, it->data, f, 5);
    if (!rc)
        rc = write_entry(x, w, i, 0, (maos_slice){doc.data, (uint32_t)doc.size},
                         o->cur_created_rev, o->cur_created, w->who.conn_id,
                         (uint32_t)w->who.pid, o->was_bound);
    msgpack_sbuffer_destroy(&doc);
    return rc;
}

/* agent_status: item data {status, detail} for the writer's own agent. */
int maosd_check_agent_status(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    if (!found || e.bound_conn != w->who.conn_id)
        return maosd_wfail(w, MAOS_ENOT_FOUND, item_index(w, i),
                           "this connection has no registered agent");
    return 0;
}

int maosd_stage_agent_status(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_entry e;
    int rc0 = current_doc(x, w, i, &e);
    if (rc0)
        return rc0;
    /* it->data is {status, detail?}: its pairs become overrides */
    maosd_field f[3];
    uint32_t n = 0, m = 0;
    maos_mpr r;
    maos_mpr_init(&r, it->data.ptr, it->data.len);
    if (maos_mpr_map(&r, &m) || m > 2)
        return MAOS_ENOMEM;
    char names[2][16];
    for (uint32_t j = 0; j < m; j++) {
        maos_slice k;
        if (maos_mpr_str(&r, &k) || k.len >= sizeof names[0] ||
            maos_mpr_skip(&r, &f[n].raw))
            return MAOS_ENOMEM;
        memcpy(names[n], k.ptr, k.len);
        names[n][k.len] = 0;
        f[n].name = names[n];
        n++;
    }
    scratch sc = {.used = 0};
    f[n].name = "last_seen";
    f[n++].raw = scratch_int(&sc, x->now);
    msgpack_sbuffer doc;
    msgpack_sbuffer_init(&doc);
    int rc = maosd_doc_merge(&doc, e.data, f, n);
    if (!rc)
        rc = write_entry(x, w, i, 0, (maos_slice){doc.data, (uint32_t)doc.size},
                         e.created_revision, e.created, e.bound_conn, e.bound_pid, 1);
    msgpack_sbuffer_destroy(&doc);
    return rc;
}

/* agent_deregister: only its own connection, or anyone once offline. */
int maosd_check_agent_deregister(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_entry e;
    int found = read_entry(x, w, i, &e);
    if (found < 0)
        return found;
    const maos_item_in *it = &w->req.items[i];
    if (!found)
        return maosd_wfail(w, MAOS_ENOT_FOUND, item_index(w, i),
                           "agent %.*s is not registered", (int)it->key.len,
                           it->key.ptr);
    if (e.bound_conn && e.bound_conn != w->who.conn_id && pid_alive(e.bound_pid))
        return maosd_wfail(w, MAOS_EUNAUTHORIZED, item_index(w, i),
                           "agent %.*s is registered by another connection (pid %u)",
                           (int)it->key.len, it->key.ptr, e.bound_pid);
    return 0;
}

int maosd_stage_agent_deregister(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    return maosd_stage_delete(x, w, i);
}

int maosd_reply_agent_register(msgpack_packer *pk, const maosd_wreq *w, uint32_t i,
                               int top)
{
    return maosd_reply_put(pk, w, i, top);
}

int maosd_reply_agent_status(msgpack_packer *pk, const maosd_wreq *w, uint32_t i,
                             int top)
{
    return maosd_reply_delete(pk, w, i, top);
}

int maosd_reply_agent_deregister(msgpack_packer *pk, const maosd_wreq *w, uint32_t i,
                                 int top)
{
    return maosd_reply_delete(pk, w, i, top);
}
