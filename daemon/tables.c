/*
 * daemon/tables.c -- tables (tables.h): the table and
 * agent ops, reads at a snapshot, watches, and connection bindings.
 *
 * Bindings.  A committed put with bind (or an agent registration) binds
 * its entry to the writing connection: the listener on committed groups
 * adds it to conn->bound.  When the connection closes -- however it dies,
 * the kernel closes the socket and the loop sees it -- one request of
 * maosd's own releases every entry on the list (write_table.c: a release
 * does nothing when the entry is no longer bound to that connection, so a
 * stale list item is harmless).  A bound write that commits after its
 * connection closed is released as soon as it comes back.  Entries left
 * bound by a previous run are released before the socket opens
 * (maosd_tables_release_all), each as a normal write with its event.
 *
 * Reads (list, count) and a watch's first entries read one RocksDB
 * snapshot each, with the log head of that snapshot as their revision: a
 * page, its revision, and the watch's changes after that revision fit
 * together exactly.  get, list and count run on a reader thread
 * (reader.c), their snapshot taken there; a watch's prelude pages are
 * read on the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"

/* Items of one release request, at most (a connection holding more gets
 * several). */
#define RELEASE_BATCH 1000

/* ---- maosd's own table writes -------------------------------------------------- */

/* A request of maosd's own with n items whose table names and keys are
 * copied into its frame memory.  The caller fills kind/position. */
typedef struct own_req {
    maosd_wreq *w;
    size_t used, cap;
} own_req;

static int own_new(own_req *o, uint32_t n, size_t bytes)
{
    maos_request req;
    memset(&req, 0, sizeof(req));
    req.op = MAOS_OP_NONE;
    req.items = calloc(n, sizeof(*req.items));
    char *frame = malloc(bytes ? bytes : 1);
    if (!req.items || !frame) {
        free(req.items);
        free(frame);
        return MAOS_ENOMEM;
    }
    req.n_items = n;
    o->w = maosd_wreq_new(&req, &frame, bytes);
    if (!o->w) {
        free(req.items);
        free(frame);
        return MAOS_ENOMEM;
    }
    o->w->items_owned = 1;
    o->used = 0;
    o->cap = bytes;
    return 0;
}

static maos_slice own_copy(own_req *o, maos_slice s)
{
    char *p = o->w->frame + o->used;
    memcpy(p, s.ptr, s.len);
    o->used += s.len;
    return (maos_slice){p, s.len};
}

static void own_done(maosd_server *srv, maosd_wreq *w)
{
    (void)srv;
    uint32_t released = 0;
    for (uint32_t i = 0; i < w->req.n_items; i++)
        released += !w->out[i].nothing;
    if (w->code)
        maosd_log(MAOSD_LOG_ERROR, "releasing %u bound entries failed: %s: %s",
                  w->req.n_items, maos_err_name(w->code), w->why ? w->why : "-");
    else
        maosd_logf(MAOSD_LOG_DEBUG, "released %u bound entries (%u still bound)",
                   released, released);
    maosd_wreq_free(w);
}

/* Queue the release of n bound entries (conn: the connection they must
 * still be bound to, 0 any). */
static int queue_release(maosd_server *srv, const maos_table_ref *tables,
                         const maos_slice *keys, uint32_t n, uint64_t conn)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += tables[i].name.len + keys[i].len;
    own_req o;
    int rc = own_new(&o, n, bytes);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        maos_item_in *it = &o.w->req.items[i];
        it->kind = MAOSD_ITEM_RELEASE;
        it->table.kind = tables[i].kind;
        it->table.name = own_copy(&o, tables[i].name);
        it->key = own_copy(&o, keys[i]);
        it->position = conn;
    }
    o.w->done = own_done;
    maosd_submit(srv, o.w);
    return 0;
}

/* ---- bindings -------------------------------------------------------------------- */

static maosd_bound *bound_new(const maos_table_ref *t, maos_slice key)
{
    maosd_bound *b = malloc(sizeof(*b) + t->name.len + key.len);
    if (!b)
        return NULL;
    memcpy(b->mem, t->name.ptr, t->name.len);
    memcpy(b->mem + t->name.len, key.ptr, key.len);
    b->table.kind = t->kind;
    b->table.name = (maos_slice){b->mem, t->name.len};
    b->key = (maos_slice){b->mem + t->name.len, key.len};
    b->next = NULL;
    return b;
}

static int same_entry(const maosd_bound *b, const maos_table_ref *t, maos_slice key)
{
    return b->table.name.len == t->name.len && b->key.len == key.len &&
           !memcmp(b->table.name.ptr, t->name.ptr, t->name.len) &&
           !memcmp(b->key.ptr, key.ptr, key.len);
}

/* Take (table, key) off c's list, if it is there. */
static void bound_forget(maosd_conn *c, const maos_table_ref *t, maos_slice key)
{
    for (maosd_bound **pp = &c->bound; *pp; pp = &(*pp)->next)
        if (same_entry(*pp, t, key)) {
            maosd_bound *b = *pp;
            *pp = b->next;
            free(b);
            return;
        }
}

static void release_one(maosd_server *srv, const maos_table_ref *t, maos_slice key,
                        uint64_t conn)
{
    if (queue_release(srv, t, &key, 1, conn))
        maosd_log(MAOSD_LOG_ERROR, "out of memory: entry %.*s of %.*s stays bound "
                  "to a closed connection until maosd restarts", (int)key.len,
                  key.ptr, (int)t->name.len, t->name.ptr);
}

/* The listener: keep each connection's list of bound entries. */
static void on_commit(maosd_server *srv, void *arg, maosd_wreq *list)
{
    (void)arg;
    for (maosd_wreq *w = list; w; w = w->next) {
        maosd_conn *c = w->conn;
        if (w->code || !c)
            continue;
        for (uint32_t i = 0; i < w->n_changes; i++) {
            const maosd_change *ch = &w->changes[i];
            if (!ch->bound_conn) {
                bound_forget(c, &ch->table, ch->key);
                continue;
            }
            if (c->closing) { /* it closed while this write was queued */
                release_one(srv, &ch->table, ch->key, ch->bound_conn);
                continue;
            }
            int known = 0;
            for (maosd_bound *b = c->bound; b && !known; b = b->next)
                known = same_entry(b, &ch->table, ch->key);
            if (known)
                continue;
            maosd_bound *b = bound_new(&ch->table, ch->key);
            if (!b) {
                release_one(srv, &ch->table, ch->key, ch->bound_conn);
                continue;
            }
            b->next = c->bound;
            c->bound = b;
        }
        /* the connection's agent: registered, or deregistered */
        for (uint32_t i = 0; i < w->req.n_items; i++) {
            const maos_item_in *it = &w->req.items[i];
            if (it->kind == MAOSD_ITEM_AGENT_REGISTER && !c->agent && !c->closing) {
                c->agent = malloc(it->key.len + 1);
                if (c->agent) {
                    memcpy(c->agent, it->key.ptr, it->key.len);
                    c->agent[it->key.len] = 0;
                }
            } else if (it->kind == MAOSD_ITEM_AGENT_DEREGISTER && c->agent &&
                       strlen(c->agent) == it->key.len &&
                       !memcmp(c->agent, it->key.ptr, it->key.len)) {
                free(c->agent);
                c->agent = NULL;
            }
        }
    }
}

int maosd_tables_init(maosd_server *srv)
{
    return maosd_commit_listen(srv->commit, on_commit, NULL);
}

void maosd_tables_conn_closed(maosd_conn *c)
{
    free(c->agent);
    c->agent = NULL;
    while (c->bound) {
        maos_table_ref t[RELEASE_BATCH];
        maos_slice k[RELEASE_BATCH];
        maosd_bound *taken[RELEASE_BATCH];
        uint32_t n = 0;
        for (maosd_bound *b = c->bound; b && n < RELEASE_BATCH; b = b->next) {
            t[n] = b->table;
            k[n] = b->key;
            taken[n++] = b;
        }
        if (queue_release(c->srv, t, k, n, c->id))
            maosd_log(MAOSD_LOG_ERROR, "out of memory: %u entries stay bound to "
                      "closed connection %llu until maosd restarts", n,
                      (unsigned long long)c->id);
        c->bound = taken[n - 1]->next;
        for (uint32_t i = 0; i < n; i++)
            free(taken[i]);
    }
}

/* Parse a meta "bound/" key into table and key. */
static int parse_bound_key(const char *k, size_t klen, maos_table_ref *t,
                           maos_slice *key)
{
    size_t p = sizeof(MAOSD_BOUND_PREFIX) - 1;
    const char *z = memchr(k + p, 0, klen - p);
    if (!z)
        return MAOS_ECORRUPT;
    maos_slice name = {k + p, (uint32_t)(z - (k + p))};
    if (maos_table_parse(name, t))
        return MAOS_ECORRUPT;
    key->ptr = z + 1;
    key->len = (uint32_t)(klen - (size_t)(z + 1 - k));
    return key->len ? 0 : MAOS_ECORRUPT;
}

int maosd_tables_release_all(maosd_server *srv)
{
    maosd_iter *it = maosd_iter_new(srv->store, MAOSD_CF_META);
    if (!it)
        return MAOS_ENOMEM;
    const size_t plen = sizeof(MAOSD_BOUND_PREFIX) - 1;
    maos_table_ref t[RELEASE_BATCH];
    maos_slice k[RELEASE_BATCH];
    char *copies[RELEASE_BATCH];
    uint32_t n = 0, total = 0;
    int rc = 0;
    maosd_iter_seek(it, MAOSD_BOUND_PREFIX, plen);
    for (;;) {
        size_t klen;
        const char *key = NULL;
        if (maosd_iter_valid(it)) {
            key = maosd_iter_key(it, &klen);
            if (klen < plen || memcmp(key, MAOSD_BOUND_PREFIX, plen))
                key = NULL;
        }
        if (key) {
            copies[n] = malloc(klen);
            if (!copies[n]) {
                rc = MAOS_ENOMEM;
                break;
            }
            memcpy(copies[n], key, klen);
            if (parse_bound_key(copies[n], klen, &t[n], &k[n])) {
                maosd_log(MAOSD_LOG_WARN, "ignoring a malformed binding key in meta");
                free(copies[n]);
            } else {
                n++;
            }
            maosd_iter_next(it);
        }
        if (n && (n == RELEASE_BATCH || !key)) {
            rc = queue_release(srv, t, k, n, 0);
            total += n;
            for (uint32_t i = 0; i < n; i++)
                free(copies[i]);
            n = 0;
            if (rc)
                break;
        }
        if (!key)
            break;
    }
    for (uint32_t i = 0; i < n; i++)
        free(copies[i]);
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (rc)
        maosd_log(MAOSD_LOG_ERROR, "cannot release the entries bound by the last run: %s",
                  maos_strerror(rc));
    else if (total)
        maosd_log(MAOSD_LOG_INFO, "releasing %u entries bound to connections of the "
                  "last run (agents go offline, locks are freed)", total);
    return rc;
}

/* ---- meta.agent --------------------------------------------------------------- */

/* meta (a map; len 0: {}) with "agent" set to id, appended to sb. */
static int stamp_meta(msgpack_sbuffer *sb, maos_slice meta, const char *id)
{
    char v[3 + MAOS_KEY_MAX];
    size_t n = strlen(id), h;
    /* the id as a msgpack str (str8/str16: keys are at most 512 bytes) */
    if (n < 256) {
        v[0] = (char)0xd9;
        v[1] = (char)n;
        h = 2;
    } else {
        v[0] = (char)0xda;
        v[1] = (char)(n >> 8);
        v[2] = (char)n;
        h = 3;
    }
    memcpy(v + h, id, n);
    maosd_field f = {"agent", {v, (uint32_t)(h + n)}};
    return maosd_doc_merge(sb, meta, &f, 1);
}

int maosd_tables_stamp(maosd_conn *c, maosd_wreq *w)
{
    if (!c->agent)
        return 0;
    size_t idlen = strlen(c->agent);
    /* every stamped meta into one buffer; slices are set once it is full
     * (it may move while growing) */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; i < w->req.n_appends; i++) {
        maos_append_in *a = &w->req.appends[i];
        for (uint32_t j = 0; j < a->n_events; j++)
            if (stamp_meta(&sb, a->events[j].meta, c->agent)) {
                msgpack_sbuffer_destroy(&sb);
                return MAOS_ENOMEM;
            }
    }
    size_t total = sb.size;
    char *agent = malloc(idlen + 1 + (total ? total : 1));
    if (!agent) {
        msgpack_sbuffer_destroy(&sb);
        return MAOS_ENOMEM;
    }
    memcpy(agent, c->agent, idlen + 1);
    char *metas = agent + idlen + 1;
    if (total)
        memcpy(metas, sb.data, total);
    msgpack_sbuffer_destroy(&sb);
    size_t off = 0;
    for (uint32_t i = 0; i < w->req.n_appends; i++) {
        maos_append_in *a = &w->req.appends[i];
        for (uint32_t j = 0; j < a->n_events; j++) {
            maos_mpr r;
            maos_slice one;
            maos_mpr_init(&r, metas + off, total - off);
            maos_mpr_skip(&r, &one);
            a->events[j].meta = one;
            off += one.len;
        }
    }
    w->agent_mem = agent;
    w->who.agent = (maos_slice){agent, (uint32_t)idlen};
    return 0;
}

/* ---- reads -------------------------------------------------------------------- */

/* 1 when doc (a map) matches every pair of where (a map; len 0: all):
 * the field's value has the same msgpack bytes, or the field is an array
 * holding an element with those bytes. */
static int where_match(maos_slice doc, maos_slice where)
{
    if (!where.len)
        return 1;
    maos_mpr w;
    uint32_t nw;
    maos_mpr_init(&w, where.ptr, where.len);
    if (maos_mpr_map(&w, &nw))
        return 0;
    for (uint32_t i = 0; i < nw; i++) {
        maos_slice wk, wv;
        if (maos_mpr_skip(&w, &wk) || maos_mpr_skip(&w, &wv))
            return 0;
        maos_mpr d;
        uint32_t nd;
        int hit = 0;
        maos_mpr_init(&d, doc.ptr, doc.len);
        if (maos_mpr_map(&d, &nd))
            return 0;
        for (uint32_t j = 0; j < nd && !hit; j++) {
            maos_slice dk, dv;
            if (maos_mpr_skip(&d, &dk) || maos_mpr_skip(&d, &dv))
                return 0;
            if (dk.len != wk.len || memcmp(dk.ptr, wk.ptr, wk.len))
                continue;
            if (dv.len == wv.len && !memcmp(dv.ptr, wv.ptr, wv.len)) {
                hit = 1;
                break;
            }
            maos_mpr a;
            uint32_t na;
            maos_mpr_init(&a, dv.ptr, dv.len);
            if (maos_mpr_peek(&a) != MAOS_MP_ARRAY || maos_mpr_array(&a, &na))
                break;
            for (uint32_t k = 0; k < na && !hit; k++) {
                maos_slice e;
                if (maos_mpr_skip(&a, &e))
                    break;
                hit = e.len == wv.len && !memcmp(e.ptr, wv.ptr, wv.len);
            }
        }
        if (!hit)
            return 0;
    }
    return 1;
}

/* The log head (revision) a snapshot holds. */
static int snap_revision(maosd_store *st, const maosd_snap *snap, uint64_t *rev)
{
    char *buf = NULL;
    size_t cap = 0, vlen;
    int rc = maosd_snap_get_buf(st, snap, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                                strlen(MAOSD_META_LOG_HEAD), &buf, &cap, &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        *rev = 0; /* an empty log */
        rc = 0;
    } else if (!rc) {
        if (vlen < 8)
            rc = maosd_store_corrupt("meta log_head is %zu bytes", vlen);
        else
            *rev = maosd_get_u64(buf);
    }
    free(buf);
    return rc;
}

/*
 * A scan of a table's entries at one snapshot: from the first key with
 * prefix (after `after`, if set), at most limit matching entries, each
 * handed to fn; stops early at the byte budget.  *next: the last key
 * handed out when more may follow (else len 0).
 */
typedef struct table_scan {
    maos_table_ref table;
    maos_slice prefix, after, where;
    uint32_t limit;          /* 0: no limit (count) */
    size_t budget;           /* bytes of documents, 0: none */
    uint32_t count;          /* out */
    int more;                /* out */
    char next[MAOS_KEY_MAX]; /* out: the last key, when more */
    uint32_t next_len;
} table_scan;

typedef int (*entry_fn)(void *arg, maos_slice key, const maosd_entry *e);

static int scan_table(maosd_store *st, const maosd_snap *snap, table_scan *ts,
                      entry_fn fn, void *arg)
{
    char k[MAOSD_ENTRY_KEY_MAX];
    maosd_cf cf;
    size_t base = maosd_key_entry(k, &ts->table, (maos_slice){NULL, 0}, 0, &cf);
    size_t plen = base + ts->prefix.len;
    if (ts->prefix.len)
        memcpy(k + base, ts->prefix.ptr, ts->prefix.len);
    char prefix_key[MAOSD_ENTRY_KEY_MAX];
    memcpy(prefix_key, k, plen);
    maosd_iter *it = maosd_iter_new_at(st, cf, snap);
    if (!it)
        return MAOS_ENOMEM;
    size_t used = 0;
    int rc = 0;
    /* start after `after` when it sorts past the prefix's first key */
    size_t alen = ts->after.len ? maosd_key_entry(k, &ts->table, ts->after, 0, &cf) : 0;
    size_t m = alen < plen ? alen : plen;
    int cmp = memcmp(k, prefix_key, m);
    if (alen && (cmp > 0 || (cmp == 0 && alen >= plen))) {
        maosd_iter_seek(it, k, alen);
        if (maosd_iter_valid(it)) {
            size_t klen;
            const char *ik = maosd_iter_key(it, &klen);
            if (klen == alen && !memcmp(ik, k, alen))
                maosd_iter_next(it);
        }
    } else {
        maosd_iter_seek(it, prefix_key, plen);
    }
    for (; maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        if (klen < plen || memcmp(ik, prefix_key, plen))
            break;
        if (klen <= base)
            continue;
        const char *v = maosd_iter_value(it, &vlen);
        maosd_entry e;
        maos_slice key = {ik + base, (uint32_t)(klen - base)};
        if (maosd_entry_parse(v, vlen, &e)) {
            rc = maosd_store_corrupt("entry %.*s of table %.*s is %zu bytes",
                                     (int)key.len, key.ptr, (int)ts->table.name.len,
                                     ts->table.name.ptr, vlen);
            break;
        }
        if (!where_match(e.data, ts->where))
            continue;
        if ((ts->limit && ts->count == ts->limit) ||
            (ts->budget && ts->count && used + vlen > ts->budget)) {
            ts->more = 1;
            break;
        }
        if (fn && (rc = fn(arg, key, &e)) != 0)
            break;
        used += vlen;
        ts->count++;
        memcpy(ts->next, key.ptr, key.len);
        ts->next_len = key.len;
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!ts->more)
        ts->next_len = 0;
    return rc;
}

/* ---- the ops ------------------------------------------------------------------- */

static int queue(maosd_call *call)
{
    int rc = maosd_queue_write(call->srv, call->conn, call->req, &call->frame,
                               call->frame_len);
    if (rc)
        snprintf(call->why, sizeof(call->why), "out of memory");
    return rc;
}

int maosd_op_put(maosd_call *call)
{
    return queue(call);
}

int maosd_op_delete(maosd_call *call)
{
    return queue(call);
}

/*
 * get, list and count run on a reader thread (reader.c): the handler moves
 * the request into a job, and the run steps below read (list and count at
 * a snapshot taken there) into the job's own reply frame.  They touch only
 * the job and the store.  get is a point read: it is first tried from
 * memory on the loop thread (maosd_rjob_call_mem), and goes to a reader
 * thread only when it needs a file.
 */
static void run_get(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char k[MAOSD_ENTRY_KEY_MAX];
    maosd_cf cf;
    size_t klen = maosd_key_entry(k, &req->table, req->key, 0, &cf), vlen;
    char *v = NULL;
    int rc = j->mem_only ? maosd_store_get_alloc_mem(j->store, cf, k, klen, &v, &vlen)
                         : maosd_store_get_alloc(j->store, cf, k, klen, &v, &vlen);
    if (rc == MAOSD_NOT_IN_MEMORY) {
        j->not_in_memory = 1;
        return;
    }
    if (rc == MAOS_ENOT_FOUND) {
        j->rc = rc;
        j->has_actual = 1;
        j->actual = -1;
        snprintf(j->why, sizeof(j->why), "%.*s %.*s does not exist",
                 (int)req->table.name.len, req->table.name.ptr, (int)req->key.len,
                 req->key.ptr);
        return;
    }
    maosd_entry e;
    if (!rc && maosd_entry_parse(v, vlen, &e))
        rc = maosd_store_corrupt("entry %.*s of table %.*s is %zu bytes",
                                 (int)req->key.len, req->key.ptr,
                                 (int)req->table.name.len, req->table.name.ptr, vlen);
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (!rc && (maos_enc_reply_get_begin(&pk, req->rid) ||
                maosd_enc_entry(&pk, &req->table, req->key, &e)))
        rc = MAOS_ENOMEM;
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
    free(v);
}

int maosd_op_get(maosd_call *call)
{
    return maosd_rjob_call_mem(call, run_get);
}

typedef struct list_out {
    msgpack_packer pk;
    const maos_table_ref *table;
} list_out;

static int list_one(void *arg, maos_slice key, const maosd_entry *e)
{
    list_out *lo = arg;
    return maosd_enc_entry(&lo->pk, lo->table, key, e) ? MAOS_ENOMEM : 0;
}

/* list and count: one snapshot, its revision */
static void list_or_count(maosd_rjob *j, int count_only)
{
    const maos_request *req = &j->req;
    list_out lo = {.table = &req->table};
    size_t mark = maosd_rjob_frame_begin(j, &lo.pk);
    maosd_snap *snap = maosd_snap_new(j->store);
    if (!snap) {
        maosd_rjob_fail(j, mark, MAOS_ENOMEM);
        return;
    }
    uint64_t rev;
    int rc = snap_revision(j->store, snap, &rev);
    table_scan ts = {
        .table = req->table,
        .prefix = req->prefix,
        .after = req->after,
        .where = req->where,
        .limit = count_only ? 0 : (req->limit ? req->limit : MAOS_READ_LIMIT_DEFAULT),
        .budget = count_only ? 0 : j->budget,
    };
    if (count_only) {
        if (!rc)
            rc = scan_table(j->store, snap, &ts, NULL, NULL);
        if (!rc && maos_enc_reply_count(&lo.pk, req->rid, ts.count, rev))
            rc = MAOS_ENOMEM;
    } else {
        maos_list_mark lm;
        if (!rc)
            rc = maos_enc_list_begin(&j->out, req->rid, "entries", &lm);
        if (!rc)
            rc = scan_table(j->store, snap, &ts, list_one, &lo);
        if (!rc)
            rc = maos_enc_entries_end(&j->out, &lm, ts.count,
                                      (maos_slice){ts.next, ts.next_len}, rev);
    }
    maosd_snap_free(j->store, snap);
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

static void run_list(maosd_rjob *j)
{
    list_or_count(j, 0);
}

static void run_count(maosd_rjob *j)
{
    list_or_count(j, 1);
}

int maosd_op_list(maosd_call *call)
{
    return maosd_rjob_call(call, run_list);
}

int maosd_op_count(maosd_call *call)
{
    return maosd_rjob_call(call, run_count);
}

/* ---- watch ------------------------------------------------------------------------ */

/* A watch's entries as of its revision: pushed by the pump, a page at a
 * time (the subscription's prelude), from one snapshot held until the
 * last page. */
typedef struct watch_snap {
    maosd_snap *snap;
    uint64_t revision;
    maos_table_ref table;    /* name in mem */
    maos_slice prefix;       /* in mem */
    char after[MAOS_KEY_MAX];
    uint32_t after_len;
    char mem[];
} watch_snap;

static void watch_snap_free(maosd_server *srv, void *arg)
{
    watch_snap *ws = arg;
    if (!ws)
        return;
    maosd_snap_free(srv->store, ws->snap);
    free(ws);
}

static int watch_snap_page(maosd_server *srv, maosd_sub *s, int *done)
{
    watch_snap *ws = s->prelude_arg;
    maosd_conn *c = s->conn;
    table_scan ts = {
        .table = ws->table,
        .prefix = ws->prefix,
        .after = {ws->after, ws->after_len},
        .limit = MAOS_READ_LIMIT_DEFAULT,
        .budget = maosd_reply_budget(srv),
    };
    list_out lo = {.table = &ws->table};
    size_t mark = maosd_reply_begin(c, &lo.pk);
    maos_list_mark lm;
    int rc = maos_enc_push_entries_begin(&c->out, s->id, &lm);
    if (!rc)
        rc = scan_table(srv->store, ws->snap, &ts, list_one, &lo);
    if (!rc)
        rc = maos_enc_push_entries_end(&c->out, &lm, ts.count, ws->revision, ts.more);
    if (rc) {
        c->out.size = mark;
        return rc;
    }
    maosd_reply_end(c, mark);
    srv->push_frames++;
    memcpy(ws->after, ts.next, ts.next_len);
    ws->after_len = ts.next_len;
    *done = !ts.more;
    return 0;
}

int maosd_op_watch(maosd_call *call)
{
    maosd_server *srv = call->srv;
    maosd_conn *c = call->conn;
    const maos_request *req = call->req;
    if (c->n_subs >= srv->cfg->max_subscriptions) {
        snprintf(call->why, sizeof(call->why),
                 "a connection may hold %u subscriptions (max_subscriptions)",
                 srv->cfg->max_subscriptions);
        return MAOS_ELIMIT;
    }
    watch_snap *ws = NULL;
    uint64_t rev, head = maosd_commit_head(srv->commit);
    if (req->watch_from == MAOS_WATCH_FROM_REVISION) {
        if (req->watch_revision > head) {
            snprintf(call->why, sizeof(call->why),
                     "from revision %llu is past the head %llu",
                     (unsigned long long)req->watch_revision, (unsigned long long)head);
            return MAOS_EBAD_REQUEST;
        }
        rev = req->watch_revision;
    } else if (req->watch_from == MAOS_WATCH_FROM_NOW) {
        rev = srv->delivered_head;
    } else {
        ws = calloc(1, sizeof(*ws) + req->table.name.len + req->prefix.len);
        if (ws)
            ws->snap = maosd_snap_new(srv->store);
        if (!ws || !ws->snap) {
            watch_snap_free(srv, ws);
            snprintf(call->why, sizeof(call->why), "out of memory");
            return MAOS_EOVERLOADED;
        }
        int rc = snap_revision(srv->store, ws->snap, &rev);
        if (rc) {
            watch_snap_free(srv, ws);
            snprintf(call->why, sizeof(call->why), "%s", maosd_store_errmsg());
            return rc;
        }
        ws->revision = rev;
        ws->table.kind = req->table.kind;
        memcpy(ws->mem, req->table.name.ptr, req->table.name.len);
        ws->table.name = (maos_slice){ws->mem, req->table.name.len};
        if (req->prefix.len)
            memcpy(ws->mem + req->table.name.len, req->prefix.ptr, req->prefix.len);
        ws->prefix = (maos_slice){ws->mem + req->table.name.len, req->prefix.len};
    }
    /* req->filter: the table's streams with the key prefix, put/deleted */
    maosd_sub *s = maosd_sub_new(srv, c, &req->filter, rev + 1, 0, 0);
    if (!s) {
        watch_snap_free(srv, ws);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    if (ws) {
        s->prelude = watch_snap_page;
        s->prelude_free = watch_snap_free;
        s->prelude_arg = ws;
    }
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    if (maos_enc_reply_watch(&pk, req->rid, s->id, rev))
        c->out_broken = 1;
    maosd_reply_end(c, mark);
    maosd_sub_run(srv, s);
    return 0;
}

/* ---- agents ---------------------------------------------------------------------- */

static const maos_table_ref agents_table = {MAOS_TABLE_AGENTS, {"agents", 6}};

/* A request of c with one item of `kind` on agents/key and document doc
 * (malloc'ed, taken; may be NULL). */
static int queue_agent(maosd_call *call, int kind, maos_slice key, char *doc,
                       size_t doclen)
{
    maos_item_in *it = calloc(1, sizeof(*it));
    maosd_wreq *w = it ? maosd_wreq_for(call->conn, call->req, &call->frame,
                                        call->frame_len)
                       : NULL;
    if (!w) {
        free(it);
        free(doc);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    it->kind = kind;
    it->table = agents_table;
    it->key = key;
    it->data = (maos_slice){doc, (uint32_t)doclen};
    it->expect = MAOS_EXPECT_ANY;
    w->doc_mem = doc;
    maosd_submit_item(call->srv, w, it, NULL, NULL);
    return 0;
}

static void kv_str(msgpack_packer *pk, const char *k, maos_slice v)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    if (v.len) {
        msgpack_pack_str(pk, v.len);
        msgpack_pack_str_body(pk, v.ptr, v.len);
    } else {
        msgpack_pack_nil(pk);
    }
}

static void kv_raw(msgpack_packer *pk, const char *k, maos_slice raw, int empty_map)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    if (raw.len)
        msgpack_pack_str_body(pk, raw.ptr, raw.len);
    else if (empty_map)
        msgpack_pack_map(pk, 0);
    else
        msgpack_pack_array(pk, 0);
}

int maosd_op_agent_register(maosd_call *call)
{
    const maos_request *req = call->req;
    maosd_conn *c = call->conn;
    maos_slice id = req->agent.id;
    if (c->agent && (strlen(c->agent) != id.len || memcmp(c->agent, id.ptr, id.len))) {
        snprintf(call->why, sizeof(call->why),
                 "this connection registered agent %s already (one agent per "
                 "connection)", c->agent);
        return MAOS_ECONFLICT;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    kv_str(&pk, "id", id);
    kv_str(&pk, "session", req->agent.session);
    kv_str(&pk, "name", req->agent.name);
    kv_str(&pk, "kind", req->agent.kind);
    kv_raw(&pk, "tags", req->agent.tags, 0);
    kv_raw(&pk, "details", req->agent.details, 1);
    if (!sb.data) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    return queue_agent(call, MAOSD_ITEM_AGENT_REGISTER, id, sb.data, sb.size);
}

int maosd_op_agent_status(maosd_call *call)
{
    const maos_request *req = call->req;
    maosd_conn *c = call->conn;
    if (!c->agent) {
        snprintf(call->why, sizeof(call->why), "this connection has no registered agent");
        return MAOS_ENOT_FOUND;
    }
    size_t idlen = strlen(c->agent);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, req->agent.detail.len ? 2 : 1);
    kv_str(&pk, "status", req->agent.status);
    if (req->agent.detail.len) {
        msgpack_pack_str(&pk, 6);
        msgpack_pack_str_body(&pk, "detail", 6);
        msgpack_pack_str_body(&pk, req->agent.detail.ptr, req->agent.detail.len);
    }
    /* the key (the agent id) is kept after the document, in its memory */
    if (sb.data)
        msgpack_sbuffer_write(&sb, c->agent, idlen);
    if (!sb.data || sb.size < idlen) {
        msgpack_sbuffer_destroy(&sb);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    size_t doclen = sb.size - idlen;
    return queue_agent(call, MAOSD_ITEM_AGENT_STATUS,
                       (maos_slice){sb.data + doclen, (uint32_t)idlen}, sb.data, doclen);
}

int maosd_op_agent_deregister(maosd_call *call)
{
    return queue_agent(call, MAOSD_ITEM_AGENT_DEREGISTER, call->req->agent.id, NULL, 0);
}
