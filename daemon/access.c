/*
 * daemon/access.c -- access control: a connection's rights, the authorize
 * step of the request path, and the tokens (docs/ARCHITECTURE.md "Access
 * control"; PROTOCOL.md "Access control" is the wire and the op table).
 *
 * Rights.  At hello a connection gets the rights of its uid (root and the
 * daemon's own uid: everything; any other uid: its `uid_scopes` entry,
 * nothing without one), and, with a token, those intersected with the
 * token's scopes: a request is allowed when both halves allow it.  The
 * intersection is never computed as a set (prefixes and globs do not
 * intersect into one scope); each check asks both halves.  A connection
 * that may do everything has no rights object (c->rights NULL: the fast
 * path for the single-user machine).
 *
 * Tokens.  32 random bytes (libsodium), shown once as "maos_" + base64url;
 * maosd keeps only their BLAKE2b-256 hash, in the meta column family under
 * "token/NAME" (written by the commit thread: write kinds TOKEN_PUT and
 * TOKEN_DELETE), and a copy of every record in memory (the loop's table
 * below, loaded at start, changed in the done step of a committed write,
 * so it always equals what is durable).  hello hashes the token it is
 * given and compares it with every record's hash with sodium_memcmp
 * (constant time per record, and every record is compared: the time does
 * not say which record was close).
 *
 * Invariants:
 *  - A connection's rights never change after hello and are freed with the
 *    connection (never before its jobs are back: jobs hold it), so reader
 *    threads may read them while filtering a read_all or a catch-up slice.
 *  - A revoked token's connections are closed in the done step of the
 *    revocation's write, before its reply: when `token revoke` returns,
 *    no connection of that token is served any more.
 *  - The secret is never stored, logged, or kept after the reply that
 *    shows it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "access.h"
#include "audit.h"
#include "dispatch.h"
#include "keys.h"
#include "queues.h"
#include "log.h"

#define TOKEN_KEY_PREFIX "token/"
#define TOKENS_MAX 4096  /* tokens stored at most (LIMIT beyond) */

/* ---- rights ---------------------------------------------------------------------- */

static int half_allows(int all, const maos_scope *v, uint32_t n, int kind, maos_slice t)
{
    return all || maos_scopes_allow(v, n, kind, t);
}

/* A stream written by table or queue ops (sessions-K, agents-K, locks-K,
 * kv.NAME-K, queue-NAME) carries their contents: reading it needs what
 * reading the table entry or the queue needs too (kv.read TABLE/KEY,
 * queue.work NAME).  -1: not such a stream; else 0 or 1. */
static int derived_allow(const maosd_rights *r, maos_slice stream)
{
    if (!stream.len)
        return -1; /* a prefix "": not one stream */
    maos_slice cat = maos_category(stream);
    if (cat.len == stream.len)
        return -1;
    maos_slice rest = {stream.ptr + cat.len + 1, stream.len - cat.len - 1};
    if (cat.len == 5 && !memcmp(cat.ptr, "queue", 5))
        return maosd_rights_allow(r, MAOS_SCOPE_QUEUE_WORK, rest);
    if (!maos_stream_is_table(stream))
        return -1;
    char buf[MAOS_STREAM_MAX + 1];
    memcpy(buf, cat.ptr, cat.len);
    buf[cat.len] = '/';
    memcpy(buf + cat.len + 1, rest.ptr, rest.len);
    return maosd_rights_allow(r, MAOS_SCOPE_KV_READ,
                              (maos_slice){buf, cat.len + 1 + rest.len});
}

int maosd_rights_allow(const maosd_rights *r, int kind, maos_slice target)
{
    if (!r)
        return 1;
    if (atomic_load_explicit(&r->revoked, memory_order_relaxed))
        return 0;
    if ((kind == MAOS_SCOPE_READ || kind == MAOS_SCOPE_SUBSCRIBE) &&
        derived_allow(r, target) == 0)
        return 0;
    /* $audit (audit.c) is read with admin only */
    if ((kind == MAOS_SCOPE_READ || kind == MAOS_SCOPE_SUBSCRIBE) &&
        target.len >= sizeof(MAOSD_AUDIT_STREAM) - 1 &&
        !memcmp(target.ptr, MAOSD_AUDIT_STREAM, sizeof(MAOSD_AUDIT_STREAM) - 1) &&
        !maosd_rights_have(r, MAOS_SCOPE_ADMIN))
        return 0;
    return half_allows(r->uid_all, r->uid, r->n_uid, kind, target) &&
           (!r->has_token || maos_scopes_allow(r->tok, r->n_tok, kind, target));
}

int maosd_rights_have(const maosd_rights *r, int kind)
{
    if (!r)
        return 1;
    if (atomic_load_explicit(&r->revoked, memory_order_relaxed))
        return 0;
    return (r->uid_all || maos_scopes_have(r->uid, r->n_uid, kind)) &&
           (!r->has_token || maos_scopes_have(r->tok, r->n_tok, kind));
}

void maosd_access_conn_free(maosd_conn *c)
{
    if (c->rights) {
        free(c->rights->mem);
        free(c->rights);
        c->rights = NULL;
    }
}

/* ---- the token table (loop thread) -------------------------------------------- */

typedef struct token {
    char name[65];
    uint8_t hash[crypto_generichash_BYTES];
    char *texts;          /* the scopes, NUL after each */
    uint32_t n_scopes;
    int64_t created, expires, last_used; /* µs; expires 0: never; last_used
                                          * 0: not since maosd started */
    int64_t uid;          /* -1: any */
    char session[49];
    uint64_t serial;
} token;

static token *toks;
static size_t n_toks, cap_toks;
static uint64_t next_serial;

static token *tok_find(maos_slice name)
{
    for (size_t i = 0; i < n_toks; i++)
        if (strlen(toks[i].name) == name.len && !memcmp(toks[i].name, name.ptr, name.len))
            return &toks[i];
    return NULL;
}

void maosd_tokens_free(void)
{
    for (size_t i = 0; i < n_toks; i++)
        free(toks[i].texts);
    free(toks);
    toks = NULL;
    n_toks = cap_toks = 0;
}

/*
 * The stored record: a msgpack map {hash: bin 32, scopes: [str], created:
 * int, expires: int, uid: int, session: str}.
 */
static int tok_encode(msgpack_sbuffer *sb, const uint8_t hash[32], const maos_scope *sc,
                      const char *const *texts, const uint32_t *lens, uint32_t n,
                      int64_t created, int64_t expires, int64_t uid, maos_slice session)
{
    msgpack_packer pk;
    (void)sc;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 6) || msgpack_pack_str_with_body(&pk, "hash", 4) ||
             msgpack_pack_bin_with_body(&pk, hash, 32) ||
             msgpack_pack_str_with_body(&pk, "scopes", 6) || msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; !rc && i < n; i++)
        rc = msgpack_pack_str_with_body(&pk, texts[i], lens[i]);
    rc = rc || msgpack_pack_str_with_body(&pk, "created", 7) ||
         msgpack_pack_int64(&pk, created) || msgpack_pack_str_with_body(&pk, "expires", 7) ||
         msgpack_pack_int64(&pk, expires) || msgpack_pack_str_with_body(&pk, "uid", 3) ||
         msgpack_pack_int64(&pk, uid) || msgpack_pack_str_with_body(&pk, "session", 7) ||
         msgpack_pack_str_with_body(&pk, session.len ? session.ptr : "", session.len);
    return rc ? MAOS_ENOMEM : 0;
}

static int skey(maos_slice k, const char *s)
{
    return k.len == strlen(s) && !memcmp(k.ptr, s, k.len);
}

/* Decode a stored record into t (name set by the caller).  0, MAOS_ENOMEM
 * or MAOS_ECORRUPT (logged by the caller with the key). */
static int tok_decode(const char *v, size_t len, token *t)
{
    maos_mpr r;
    uint32_t n, have = 0;
    maos_mpr_init(&r, v, len);
    if (maos_mp_check(v, len, NULL) || maos_mpr_map(&r, &n))
        return MAOS_ECORRUPT;
    t->uid = -1;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, s;
        if (maos_mpr_str(&r, &k))
            return MAOS_ECORRUPT;
        if (skey(k, "hash")) {
            if (maos_mpr_bin(&r, &s) || s.len != 32)
                return MAOS_ECORRUPT;
            memcpy(t->hash, s.ptr, 32);
            have |= 1;
        } else if (skey(k, "scopes")) {
            uint32_t ns;
            if (maos_mpr_array(&r, &ns) || ns > MAOS_SCOPES_MAX || t->texts)
                return MAOS_ECORRUPT;
            maos_mpr a = r;
            size_t total = 1;
            for (uint32_t j = 0; j < ns; j++) {
                if (maos_mpr_str(&a, &s))
                    return MAOS_ECORRUPT;
                total += s.len + 1;
            }
            t->texts = malloc(total);
            if (!t->texts)
                return MAOS_ENOMEM;
            char *o = t->texts;
            for (uint32_t j = 0; j < ns; j++) {
                maos_scope sc;
                maos_mpr_str(&r, &s);
                if (maos_scope_parse(s.ptr, s.len, &sc, NULL, 0))
                    return MAOS_ECORRUPT;
                memcpy(o, s.ptr, s.len);
                o[s.len] = 0;
                o += s.len + 1;
            }
            t->n_scopes = ns;
            have |= 2;
        } else if (skey(k, "created") || skey(k, "expires") || skey(k, "uid")) {
            int64_t x;
            if (maos_mpr_int(&r, &x))
                return MAOS_ECORRUPT;
            *(k.ptr[0] == 'c' ? &t->created : k.ptr[0] == 'e' ? &t->expires : &t->uid) = x;
        } else if (skey(k, "session")) {
            if (maos_mpr_str(&r, &s) || s.len >= sizeof t->session)
                return MAOS_ECORRUPT;
            memcpy(t->session, s.ptr, s.len);
            t->session[s.len] = 0;
        } else if (maos_mpr_skip(&r, NULL)) {
            return MAOS_ECORRUPT;
        }
    }
    return have == 3 ? 0 : MAOS_ECORRUPT;
}

/* Add t (its texts moved in) to the table.  0 or MAOS_ENOMEM. */
static int tok_add(token *t)
{
    if (n_toks == cap_toks) {
        size_t nc = cap_toks ? cap_toks * 2 : 16;
        token *nt = realloc(toks, nc * sizeof(*nt));
        if (!nt)
            return MAOS_ENOMEM;
        toks = nt;
        cap_toks = nc;
    }
    t->serial = ++next_serial;
    toks[n_toks++] = *t;
    return 0;
}

int maosd_tokens_load(maosd_server *srv)
{
    static const char upper[] = "token0"; /* '/' + 1 */
    maosd_iter *it = maosd_iter_new_bounded(srv->store, MAOSD_CF_META, upper, 6);
    if (!it)
        return MAOS_ENOMEM;
    int rc = 0;
    maosd_iter_seek(it, TOKEN_KEY_PREFIX, sizeof(TOKEN_KEY_PREFIX) - 1);
    for (; maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, vlen;
        const char *k = maosd_iter_key(it, &klen);
        const char *v = maosd_iter_value(it, &vlen);
        size_t pl = sizeof(TOKEN_KEY_PREFIX) - 1;
        token t;
        memset(&t, 0, sizeof t);
        maos_slice name = {k + pl, (uint32_t)(klen - pl)};
        if (klen <= pl || maos_token_name_check(name)) {
            rc = maosd_store_corrupt("meta key %.*s is not a token's", (int)klen, k);
        } else {
            memcpy(t.name, name.ptr, name.len);
            rc = tok_decode(v, vlen, &t);
            if (rc == MAOS_ECORRUPT)
                rc = maosd_store_corrupt("the token record %.*s does not decode", (int)klen, k);
        }
        if (!rc)
            rc = tok_add(&t);
        if (rc) {
            free(t.texts);
            break;
        }
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (rc)
        maosd_log(MAOSD_LOG_ERROR, "cannot load the tokens: %s", maos_strerror(rc));
    else if (n_toks)
        maosd_logf(MAOSD_LOG_INFO, "%zu access tokens", n_toks);
    return rc;
}

/* ---- hello ------------------------------------------------------------------------ */

/* Collect scope texts into a growing buffer (their views are made after). */
typedef struct collect {
    char *buf;
    size_t len, cap;
    uint32_t n;
    int over;
} collect;

static int collect_one(void *arg, const char *s, size_t len)
{
    collect *cl = arg;
    if (cl->n == MAOS_SCOPES_MAX) {
        cl->over = 1;
        return 0;
    }
    if (cl->len + len + 1 > cl->cap) {
        size_t nc = (cl->cap ? cl->cap * 2 : 256) + len + 1;
        char *nb = realloc(cl->buf, nc);
        if (!nb)
            return -1;
        cl->buf = nb;
        cl->cap = nc;
    }
    memcpy(cl->buf + cl->len, s, len);
    cl->buf[cl->len + len] = 0;
    cl->len += len + 1;
    cl->n++;
    return 0;
}

/* Views of n NUL-separated scope texts at p into v.  Returns the bytes
 * they took. */
static size_t views(const char *p, uint32_t n, maos_scope *v)
{
    const char *s = p;
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(s);
        maos_scope_parse(s, l, &v[i], NULL, 0); /* checked before */
        s += l + 1;
    }
    return (size_t)(s - p);
}

static int say(maosd_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int say(maosd_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->why, sizeof(call->why), fmt, ap);
    va_end(ap);
    return code;
}

int maosd_access_hello(maosd_call *call)
{
    maosd_server *srv = call->srv;
    maosd_conn *c = call->conn;
    const maos_request *req = call->req;
    int privileged = c->uid == 0 || c->uid == srv->euid;
    maos_slice text = {0};
    if (req->token.len) {
        maos_mpr r;
        maos_mpr_init(&r, req->token.ptr, req->token.len);
        int t = maos_mpr_peek(&r);
        if (t == MAOS_MP_STR)
            maos_mpr_str(&r, &text);
        else if (t != MAOS_MP_NIL)
            return say(call, MAOS_EBAD_REQUEST, "token must be a string (the text "
                       "`maosctl token create` printed), not another msgpack type");
    }
    if (!text.len && privileged)
        return 0; /* everything: no rights object */
    token *found = NULL;
    if (text.len) {
        uint8_t raw[MAOS_TOKEN_BYTES], h[crypto_generichash_BYTES];
        if (maos_token_parse(text.ptr, text.len, raw))
            return say(call, MAOS_EUNAUTHENTICATED, "malformed token: want \"maos_\" and 43 "
                       "base64url characters (%u bytes given)", (unsigned)text.len);
        crypto_generichash(h, sizeof h, raw, sizeof raw, NULL, 0);
        sodium_memzero(raw, sizeof raw);
        /* every record is compared, in constant time each */
        for (size_t i = 0; i < n_toks; i++)
            if (!sodium_memcmp(toks[i].hash, h, sizeof h))
                found = &toks[i];
        if (!found)
            return say(call, MAOS_EUNAUTHENTICATED, "unknown or revoked token");
        int64_t now = maosd_now_us();
        if (found->expires && now >= found->expires)
            return say(call, MAOS_EUNAUTHENTICATED, "token %s expired", found->name);
        if (found->uid >= 0 && (int64_t)c->uid != found->uid)
            return say(call, MAOS_EUNAUTHENTICATED, "token %s is for uid %lld, not uid %u",
                       found->name, (long long)found->uid, (unsigned)c->uid);
        found->last_used = now;
    }
    /* the uid's half */
    collect cl = {0};
    char err[256];
    if (!privileged && srv->cfg->uid_scopes &&
        maosd_uid_scopes_walk(srv->cfg->uid_scopes, (long long)c->uid, collect_one, &cl, err,
                        sizeof err)) {
        free(cl.buf);
        return say(call, MAOS_EOVERLOADED, "out of memory");
    }
    uint32_t n_uid = cl.n;
    if (found) {
        const char *s = found->texts;
        for (uint32_t i = 0; i < found->n_scopes; i++) {
            size_t l = strlen(s);
            if (collect_one(&cl, s, l)) {
                free(cl.buf);
                return say(call, MAOS_EOVERLOADED, "out of memory");
            }
            s += l + 1;
        }
    }
    maosd_rights *r = calloc(1, sizeof(*r));
    if (!r) {
        free(cl.buf);
        return say(call, MAOS_EOVERLOADED, "out of memory");
    }
    r->mem = cl.buf;
    r->uid_all = privileged;
    r->n_uid = n_uid;
    size_t off = cl.buf ? views(cl.buf, n_uid, r->uid) : 0;
    if (found) {
        r->has_token = 1;
        r->n_tok = cl.n - n_uid;
        views(cl.buf + off, r->n_tok, r->tok);
        r->token_serial = found->serial;
        r->expires = found->expires;
        snprintf(r->token_name, sizeof r->token_name, "%s", found->name);
    }
    maosd_access_conn_free(c);
    c->rights = r;
    maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rights: uid %u%s, token %s (%u scopes)",
               (unsigned long long)c->id, (unsigned)c->uid, privileged ? " (all)" : "",
               found ? found->name : "none", (unsigned)r->n_tok);
    return 0;
}

/* Close c, whose token went: one UNAUTHENTICATED frame (rid 0), then the
 * close once it is written. */
static void close_revoked(maosd_conn *c, const char *why)
{
    maosd_logf(MAOSD_LOG_INFO, "conn %llu: %s", (unsigned long long)c->id, why);
    /* nothing more for it from now on, though the close waits for its
     * queued writes: no delivery, no publish, no page (rights_allow), and
     * its waiting claims end now (empty) */
    if (c->rights)
        atomic_store(&c->rights->revoked, 1);
    maosd_queues_end_waits(c);
    maosd_reply_error(c, 0, MAOS_EUNAUTHENTICATED, why, 0, 0, -1);
    maosd_conn_fail(c);
}

static void close_for_token(maosd_conn *c, const char *name, const char *what)
{
    char why[128];
    snprintf(why, sizeof why, "token %s %s; closing", name, what);
    close_revoked(c, why);
}

void maosd_access_reloaded(maosd_server *srv)
{
    /* rights are set at hello: a connection of a uid the settings limit
     * would keep the old ones; it is closed and reconnects with the new */
    for (maosd_conn *c = srv->conns; c; c = c->next)
        if (c->rights && !c->rights->uid_all && c->hello && !c->closing &&
            !c->close_after_flush)
            close_revoked(c, "the daemon's access settings changed (reload): reconnect");
}

void maosd_access_tick(maosd_server *srv)
{
    int any = 0;
    for (size_t i = 0; i < n_toks && !any; i++)
        any = toks[i].expires != 0;
    if (!any) /* no token expires: nothing to look at */
        return;
    int64_t now = maosd_now_us();
    for (maosd_conn *c = srv->conns; c; c = c->next)
        if (c->rights && c->rights->expires && now >= c->rights->expires && !c->closing &&
            !c->close_after_flush)
            close_for_token(c, c->rights->token_name, "expired");
}

/* ---- authorize --------------------------------------------------------------------- */

/* "TABLE/KEY" of a table op's target into buf. */
static maos_slice kv_target(char *buf, maos_slice table, maos_slice key)
{
    size_t n = table.len;
    memcpy(buf, table.ptr, n);
    buf[n++] = '/';
    if (key.len)
        memcpy(buf + n, key.ptr, key.len);
    return (maos_slice){buf, (uint32_t)(n + key.len)};
}

/* FORBIDDEN naming the scope missing. */
static int forbid(maosd_call *call, int kind, maos_slice target, int any)
{
    const maosd_rights *r = call->conn->rights;
    const char *who = r->has_token ? "its token" : "its uid";
    if (r->has_token && (any ? (r->uid_all || maos_scopes_have(r->uid, r->n_uid, kind))
                             : half_allows(r->uid_all, r->uid, r->n_uid, kind, target)))
        who = "its token";
    else if (r->has_token)
        who = "its uid (uid_scopes)";
    if (kind == MAOS_SCOPE_ADMIN)
        return say(call, MAOS_EFORBIDDEN, "%s needs scope admin, which %s does not give",
                   maos_op_name(call->req->op), who);
    if (any)
        return say(call, MAOS_EFORBIDDEN, "%s needs a scope %s:..., which %s does not give",
                   maos_op_name(call->req->op), maos_scope_kind_name(kind), who);
    return say(call, MAOS_EFORBIDDEN, "%s needs scope %s:%.*s, which %s does not give",
               maos_op_name(call->req->op), maos_scope_kind_name(kind),
               (int)(target.len > 200 ? 200 : target.len), target.ptr ? target.ptr : "", who);
}

static int need(maosd_call *call, int kind, maos_slice target)
{
    if (maosd_rights_allow(call->conn->rights, kind, target))
        return 0;
    return forbid(call, kind, target, 0);
}

static int need_any(maosd_call *call, int kind)
{
    if (maosd_rights_have(call->conn->rights, kind))
        return 0;
    return forbid(call, kind, (maos_slice){0}, 1);
}

/* meta.agent is maosd's: a restricted connection without a registered
 * agent may not send one (with an agent, maosd stamps over it). */
static int meta_agent_forged(const maos_append_in *a)
{
    for (uint32_t i = 0; i < a->n_events; i++) {
        maos_slice m = a->events[i].meta;
        maos_mpr r;
        uint32_t n;
        if (!m.len)
            continue;
        maos_mpr_init(&r, m.ptr, m.len);
        if (maos_mpr_map(&r, &n))
            continue;
        for (uint32_t j = 0; j < n; j++) {
            maos_slice k;
            if (maos_mpr_peek(&r) == MAOS_MP_STR && !maos_mpr_str(&r, &k)) {
                if (skey(k, "agent"))
                    return 1;
            } else {
                maos_mpr_skip(&r, NULL);
            }
            maos_mpr_skip(&r, NULL);
        }
    }
    return 0;
}

/* One write item (a txn's op, or the one item of a write op). */
static int check_item(maosd_call *call, const maos_item_in *it)
{
    char buf[MAOSD_ENTRY_KEY_MAX + 8];
    switch (it->kind) {
    case MAOS_ITEM_APPEND:
        if (!call->conn->agent && meta_agent_forged(it->append))
            return say(call, MAOS_EFORBIDDEN, "meta.agent is written by maosd for the "
                       "connection's registered agent; this connection has none and may "
                       "not set it");
        return need(call, MAOS_SCOPE_APPEND, it->append->stream);
    case MAOS_ITEM_PUT:
    case MAOS_ITEM_DELETE:
        return need(call, MAOS_SCOPE_KV_WRITE, kv_target(buf, it->table.name, it->key));
    case MAOS_ITEM_CHECKPOINT:
        return need(call, MAOS_SCOPE_SUBSCRIBE, it->name);
    case MAOS_ITEM_ENQUEUE:
        return need(call, MAOS_SCOPE_QUEUE_ENQUEUE, it->queue);
    case MAOS_ITEM_CLAIM:
        for (uint32_t i = 0; i < it->n_queues; i++)
            if (need(call, MAOS_SCOPE_QUEUE_WORK, it->queues[i]))
                return MAOS_EFORBIDDEN;
        return 0;
    case MAOS_ITEM_DEAD_RETRY:
    case MAOS_ITEM_DEAD_PURGE:
        return need_any(call, MAOS_SCOPE_ADMIN);
    default: /* ack, nack, extend, release: some queue.work scope here; the
              * task's queue where the task is read (write_queue.c
              * check_lease) */
        return need_any(call, maos_item_scope(it->kind));
    }
}

int maosd_access_check(maosd_call *call)
{
    maosd_conn *c = call->conn;
    const maosd_rights *r = c->rights;
    const maos_request *req = call->req;
    if (!r)
        return 0;
    if (r->expires && maosd_now_us() >= r->expires)
        return say(call, MAOS_EUNAUTHENTICATED, "token %s expired", r->token_name);
    char buf[MAOSD_ENTRY_KEY_MAX + 8];
    int scope = maos_op_scope(req->op);
    switch (scope) {
    case MAOS_SCOPE_NOT_NEEDED:
        return 0;
    case MAOS_SCOPE_UNLISTED:
        return say(call, MAOS_EFORBIDDEN, "%s has no scope in maosd's table: only root "
                   "and maosd's uid without a token may use it", maos_op_name(req->op));
    case MAOS_SCOPE_PER_ITEM:
        for (uint32_t i = 0; i < req->n_items; i++)
            if (check_item(call, &req->items[i])) {
                call->index = i;
                return MAOS_EFORBIDDEN;
            }
        return 0;
    default:
        break;
    }
    switch (req->op) {
    case MAOS_OP_READ:
        return need(call, MAOS_SCOPE_READ, req->stream);
    case MAOS_OP_STREAMS:
        return need(call, MAOS_SCOPE_READ, req->prefix);
    case MAOS_OP_READ_ALL: /* filtered (maosd_scan.rights) */
    case MAOS_OP_SUBSCRIBE:
    case MAOS_OP_SUBSCRIBE_CHANNEL: /* deliveries filtered */
        return need_any(call, scope);
    case MAOS_OP_CHECKPOINT_GET:
        return need(call, MAOS_SCOPE_SUBSCRIBE, req->name);
    case MAOS_OP_PUBLISH:
        return need(call, MAOS_SCOPE_CHANNEL, req->channel);
    case MAOS_OP_GET:
        return need(call, MAOS_SCOPE_KV_READ, kv_target(buf, req->table.name, req->key));
    case MAOS_OP_LIST:
    case MAOS_OP_COUNT:
    case MAOS_OP_WATCH:
        return need(call, MAOS_SCOPE_KV_READ, kv_target(buf, req->table.name, req->prefix));
    case MAOS_OP_AGENT_REGISTER:
    case MAOS_OP_AGENT_DEREGISTER:
        return need(call, MAOS_SCOPE_AGENT_REGISTER, req->agent.id);
    case MAOS_OP_AGENT_STATUS: /* its own agent; none: the op says NOT_FOUND */
        return c->agent ? need(call, MAOS_SCOPE_AGENT_REGISTER,
                               (maos_slice){c->agent, (uint32_t)strlen(c->agent)})
                        : 0;
    case MAOS_OP_TASK: /* and the task's queue in the read job (queues.c) */
        return need_any(call, MAOS_SCOPE_QUEUE_WORK);
    case MAOS_OP_QUEUE_STATS:
        return req->queue.len ? need(call, MAOS_SCOPE_QUEUE_WORK, req->queue)
                              : need_any(call, MAOS_SCOPE_ADMIN);
    default:
        if (req->n_items) /* append, put, delete, checkpoint_save, queue writes */
            return check_item(call, &req->items[0]);
        return need_any(call, scope); /* admin */
    }
}

/* ---- token ops -------------------------------------------------------------------- */

/* What a token_create carries to its done step. */
typedef struct create_arg {
    char text[MAOS_TOKEN_TEXT_LEN + 1]; /* the secret, shown once */
    token t;                            /* the record, for the table */
} create_arg;

/* The scopes of a session token besides those given (PROTOCOL.md). */
static int session_scopes(maos_slice s, collect *cl)
{
    static const char *const fmt[] = {
        "read:%.*s-", "append:%.*s-", "subscribe:%.*s-", "kv.read:sessions/%.*s",
        "kv.read:*/%.*s/", "kv.write:*/%.*s/", "queue.enqueue:%.*s-", "queue.work:%.*s-",
        "channel:%.*s-*", "agent.register:%.*s-",
    };
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        char b[128];
        int n = snprintf(b, sizeof b, fmt[i], (int)s.len, s.ptr);
        if (collect_one(cl, b, (size_t)n))
            return -1;
    }
    return 0;
}

static void token_done(maosd_server *srv, maosd_wreq *w);

int maosd_op_token_create(maosd_call *call)
{
    maos_token_spec spec;
    int rc = maos_token_spec_decode(call->frame, call->frame_len, &spec, call->why,
                                    sizeof(call->why));
    if (rc)
        return rc;
    if (tok_find(spec.name))
        return say(call, MAOS_ECONFLICT, "a token named %.*s exists (revoke it first)",
                   (int)spec.name.len, spec.name.ptr);
    if (n_toks >= TOKENS_MAX)
        return say(call, MAOS_ELIMIT, "%d tokens exist: revoke some first", TOKENS_MAX);
    collect cl = {0};
    for (uint32_t i = 0; i < spec.n_scopes; i++) {
        /* the scope's whole text: kind, ':' and argument are contiguous */
        const maos_scope *sc = &spec.scopes[i];
        const char *kn = maos_scope_kind_name(sc->kind);
        size_t kl = strlen(kn);
        const char *start = sc->kind == MAOS_SCOPE_ADMIN ? sc->arg.ptr - kl
                                                         : sc->arg.ptr - kl - 1;
        if (collect_one(&cl, start, (size_t)(sc->arg.ptr + sc->arg.len - start)))
            goto oom;
    }
    if (spec.session.len) {
        /* its scopes are prefixes "S-": a session named "a" must not get
         * "a-b"'s, nor one named like a table or the queues all of them */
        maos_slice s = spec.session;
        int table = (s.len == 8 && !memcmp(s.ptr, "sessions", 8)) ||
                    (s.len == 6 && !memcmp(s.ptr, "agents", 6)) ||
                    (s.len == 5 && !memcmp(s.ptr, "locks", 5)) ||
                    (s.len == 5 && !memcmp(s.ptr, "queue", 5)) ||
                    (s.len >= 3 && !memcmp(s.ptr, "kv.", 3)) || s.ptr[0] == '$';
        if (memchr(s.ptr, '-', s.len) || table) {
            free(cl.buf);
            return say(call, MAOS_EINVALID_NAME, "session %.*s: a session of a token may "
                       "not contain '-' nor be named like a table, the queues or a $ "
                       "stream", (int)s.len, s.ptr);
        }
        if (session_scopes(spec.session, &cl))
            goto oom;
    }
    if (cl.over) {
        free(cl.buf);
        return say(call, MAOS_ELIMIT, "more than %d scopes (with the session's)",
                   MAOS_SCOPES_MAX);
    }
    /* a token gives at most what its maker may do: admin cannot mint more */
    for (size_t off = 0; call->conn->rights && off < cl.len;) {
        const char *t = cl.buf + off;
        size_t tl = strlen(t);
        maos_scope sc;
        int ok = !maos_scope_parse(t, tl, &sc, NULL, 0) &&
                 (sc.kind == MAOS_SCOPE_ADMIN
                      ? maosd_rights_have(call->conn->rights, MAOS_SCOPE_ADMIN)
                      : maosd_rights_allow(call->conn->rights, sc.kind, sc.arg));
        if (!ok) {
            rc = say(call, MAOS_EFORBIDDEN, "may not give scope %s: the connection's own "
                     "rights do not cover it", t);
            free(cl.buf);
            return rc;
        }
        off += tl + 1;
    }
    create_arg *a = calloc(1, sizeof(*a));
    maos_item_in *it = calloc(1, sizeof(*it));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (!a || !it)
        goto oom2;
    uint8_t raw[MAOS_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    crypto_generichash(a->t.hash, sizeof a->t.hash, raw, sizeof raw, NULL, 0);
    maos_token_format(raw, a->text);
    sodium_memzero(raw, sizeof raw);
    memcpy(a->t.name, spec.name.ptr, spec.name.len);
    a->t.texts = cl.buf;
    a->t.n_scopes = cl.n;
    a->t.created = maosd_now_us();
    a->t.expires = spec.expires_ms ? a->t.created + (int64_t)spec.expires_ms * 1000 : 0;
    a->t.uid = spec.uid;
    memcpy(a->t.session, spec.session.ptr ? spec.session.ptr : "", spec.session.len);
    cl.buf = NULL;
    {
        const char *texts[MAOS_SCOPES_MAX];
        uint32_t lens[MAOS_SCOPES_MAX];
        const char *s = a->t.texts;
        for (uint32_t i = 0; i < a->t.n_scopes; i++) {
            texts[i] = s;
            lens[i] = (uint32_t)strlen(s);
            s += lens[i] + 1;
        }
        if (tok_encode(&sb, a->t.hash, NULL, texts, lens, a->t.n_scopes, a->t.created,
                       a->t.expires, a->t.uid, spec.session))
            goto oom2;
    }
    maos_slice name = spec.name; /* into the frame, which w takes */
    maosd_wreq *w = maosd_wreq_for(call->conn, call->req, &call->frame, call->frame_len);
    if (!w)
        goto oom2;
    it->kind = MAOSD_ITEM_TOKEN_PUT;
    it->name = name;
    it->data = (maos_slice){sb.data, (uint32_t)sb.size};
    w->doc_mem = msgpack_sbuffer_release(&sb);
    maosd_submit_item(call->srv, w, it, token_done, a);
    return 0;
oom2:
    msgpack_sbuffer_destroy(&sb);
    if (a)
        free(a->t.texts);
    free(a);
    free(it);
oom:
    free(cl.buf);
    return say(call, MAOS_EOVERLOADED, "out of memory");
}

int maosd_op_token_revoke(maosd_call *call)
{
    maos_item_in *it = calloc(1, sizeof(*it));
    maos_slice name = call->req->name;
    maosd_wreq *w = it ? maosd_wreq_for(call->conn, call->req, &call->frame, call->frame_len)
                       : NULL;
    if (!w) {
        free(it);
        return say(call, MAOS_EOVERLOADED, "out of memory");
    }
    it->kind = MAOSD_ITEM_TOKEN_DELETE;
    it->name = name;
    maosd_submit_item(call->srv, w, it, token_done, NULL);
    return 0;
}

int maosd_op_token_list(maosd_call *call)
{
    maosd_conn *c = call->conn;
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    int rc = maos_enc_reply_head(&pk, call->req->rid, 1) ||
             msgpack_pack_str_with_body(&pk, "tokens", 6) ||
             msgpack_pack_array(&pk, (uint32_t)n_toks);
    for (size_t i = 0; !rc && i < n_toks; i++) {
        const token *t = &toks[i];
        rc = msgpack_pack_map(&pk, 7) || msgpack_pack_str_with_body(&pk, "name", 4) ||
             msgpack_pack_str_with_body(&pk, t->name, strlen(t->name)) ||
             msgpack_pack_str_with_body(&pk, "scopes", 6) ||
             msgpack_pack_array(&pk, t->n_scopes);
        const char *s = t->texts;
        for (uint32_t j = 0; !rc && j < t->n_scopes; j++) {
            size_t l = strlen(s);
            rc = msgpack_pack_str_with_body(&pk, s, l);
            s += l + 1;
        }
        rc = rc || msgpack_pack_str_with_body(&pk, "created", 7) ||
             msgpack_pack_int64(&pk, t->created) ||
             msgpack_pack_str_with_body(&pk, "expires", 7) ||
             msgpack_pack_int64(&pk, t->expires) ||
             msgpack_pack_str_with_body(&pk, "last_used", 9) ||
             msgpack_pack_int64(&pk, t->last_used) ||
             msgpack_pack_str_with_body(&pk, "uid", 3) || msgpack_pack_int64(&pk, t->uid) ||
             msgpack_pack_str_with_body(&pk, "session", 7) ||
             (t->session[0] ? msgpack_pack_str_with_body(&pk, t->session, strlen(t->session))
                            : msgpack_pack_nil(&pk));
    }
    if (rc)
        c->out_broken = 1; /* maosd_reply_end closes c */
    maosd_reply_end(c, mark);
    return 0;
}

/* The committed token write, back on the loop: the table follows the
 * store, a revocation closes its connections, then the reply. */
static void token_done(maosd_server *srv, maosd_wreq *w)
{
    create_arg *a = w->done_arg;
    const maos_item_in *it = &w->req.items[0];
    if (!w->code && it->kind == MAOSD_ITEM_TOKEN_PUT) {
        if (tok_add(&a->t)) {
            /* stored, but not usable until a restart loads it */
            maosd_log(MAOSD_LOG_ERROR, "token %s: out of memory adding it to the table; "
                      "it works after a restart", a->t.name);
            free(a->t.texts);
        }
        a->t.texts = NULL;
    } else if (!w->code && it->kind == MAOSD_ITEM_TOKEN_DELETE) {
        token *t = tok_find(it->name);
        uint32_t closed = 0;
        if (t) {
            for (maosd_conn *c = srv->conns; c; c = c->next) {
                if (!c->rights || !c->rights->has_token ||
                    c->rights->token_serial != t->serial || c->closing)
                    continue;
                close_for_token(c, t->name, "was revoked");
                closed++;
            }
            maosd_logf(MAOSD_LOG_INFO, "token %s revoked: %u connections closed", t->name,
                       closed);
            free(t->texts);
            *t = toks[--n_toks];
        }
        w->out[0].q_n = closed;
    }
    if (a)
        free(a->t.texts);
    maosd_write_reply(srv, w);
    if (a)
        sodium_memzero(a->text, sizeof a->text);
    free(a);
}

/* ---- the write kinds (commit thread) ------------------------------------------ */

static size_t tok_key(char *k, maos_slice name)
{
    size_t pl = sizeof(TOKEN_KEY_PREFIX) - 1;
    memcpy(k, TOKEN_KEY_PREFIX, pl);
    memcpy(k + pl, name.ptr, name.len);
    return pl + name.len;
}

int maosd_check_token_put(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    char k[80];
    size_t vlen;
    const maos_item_in *it = &w->req.items[i];
    int rc = maosd_wx_get(x, MAOSD_CF_META, k, tok_key(k, it->name), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    if (rc)
        return maosd_wfail(w, rc, -1, "cannot read the token record");
    return maosd_wfail(w, MAOS_ECONFLICT, -1, "a token named %.*s exists",
                       (int)it->name.len, it->name.ptr);
}

/* The admin record of a token's creation or revocation, in the same write
 * (audit.h). */
static int token_audit(maosd_wctx *x, maosd_wreq *w, const char *op, maos_slice name)
{
    maosd_audit a;
    maosd_audit_begin_writer(&a, op, w);
    maosd_audit_str(&a, "name", name);
    return maosd_audit_stage(x, w, &a);
}

int maosd_stage_token_put(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    char k[80];
    const maos_item_in *it = &w->req.items[i];
    maosd_batch_put(x->batch, MAOSD_CF_META, k, tok_key(k, it->name), it->data.ptr,
                    it->data.len);
    return token_audit(x, w, "token_create", it->name);
}

int maosd_reply_token_put(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    const create_arg *a = w->done_arg;
    const maos_item_in *it = &w->req.items[i];
    (void)top;
    if (maos_enc_reply_head(pk, w->req.rid, 2) || msgpack_pack_str_with_body(pk, "name", 4) ||
        msgpack_pack_str_with_body(pk, it->name.ptr, it->name.len) ||
        msgpack_pack_str_with_body(pk, "token", 5) ||
        msgpack_pack_str_with_body(pk, a->text, strlen(a->text)))
        return MAOS_ENOMEM;
    return 0;
}

int maosd_check_token_delete(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    char k[80];
    size_t vlen;
    const maos_item_in *it = &w->req.items[i];
    int rc = maosd_wx_get(x, MAOSD_CF_META, k, tok_key(k, it->name), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return maosd_wfail(w, rc, -1, "no token named %.*s", (int)it->name.len,
                           it->name.ptr);
    if (rc)
        return maosd_wfail(w, rc, -1, "cannot read the token record");
    return 0;
}

int maosd_stage_token_delete(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    char k[80];
    maosd_batch_delete(x->batch, MAOSD_CF_META, k, tok_key(k, w->req.items[i].name));
    return token_audit(x, w, "token_revoke", w->req.items[i].name);
}

int maosd_reply_token_delete(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)top;
    if (maos_enc_reply_head(pk, w->req.rid, 1) || msgpack_pack_str_with_body(pk, "count", 5) ||
        msgpack_pack_uint64(pk, w->out[i].q_n))
        return MAOS_ENOMEM;
    return 0;
}
