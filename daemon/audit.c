/*
 * daemon/audit.c -- the $audit stream (audit.h; docs/ARCHITECTURE.md
 * "Audit").
 *
 * Admin actions are recorded by the write that does them where there is
 * one (stream_meta, dead_purge: the record is staged with the change, so
 * both are in the log or neither), else once they are done (backup,
 * compact: maosd_audit_emit).  Refused requests are recorded as they are
 * refused, rate-limited per connection so that a client cannot flood the
 * log with its own refusals; what the limit holds back is counted and
 * reported.  $audit is maosd's own stream ('$'): no client writes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "audit.h"
#include "dispatch.h"

/* The map header is written as map32 (0xdf + 4 bytes) and patched at the
 * end, when the number of entries is known. */
#define MAP32_HDR 5

static void key(maosd_audit *a, const char *k)
{
    size_t n = strlen(k);
    a->failed |= msgpack_pack_str_with_body(&a->pk, k, n) != 0;
    a->n++;
}

void maosd_audit_begin(maosd_audit *a, const char *op, uid_t uid, pid_t pid, uint64_t conn)
{
    static const char hdr[MAP32_HDR] = {(char)0xdf, 0, 0, 0, 0};
    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
    a->n = 0;
    a->failed = msgpack_sbuffer_write(&a->sb, hdr, sizeof hdr) != 0;
    maosd_audit_str(a, "op", (maos_slice){op, (uint32_t)strlen(op)});
    maosd_audit_u64(a, "uid", (uint64_t)uid);
    maosd_audit_u64(a, "pid", (uint64_t)pid);
    maosd_audit_u64(a, "conn", conn);
}

void maosd_audit_str(maosd_audit *a, const char *k, maos_slice v)
{
    key(a, k);
    a->failed |= msgpack_pack_str_with_body(&a->pk, v.ptr ? v.ptr : "", v.len) != 0;
}

void maosd_audit_u64(maosd_audit *a, const char *k, uint64_t v)
{
    key(a, k);
    a->failed |= msgpack_pack_uint64(&a->pk, v) != 0;
}

void maosd_audit_bool(maosd_audit *a, const char *k, int v)
{
    key(a, k);
    a->failed |= (v ? msgpack_pack_true(&a->pk) : msgpack_pack_false(&a->pk)) != 0;
}

void maosd_audit_token(maosd_audit *a, const maosd_rights *rights)
{
    if (rights && rights->has_token)
        maosd_audit_str(a, "token", (maos_slice){rights->token_name,
                                                 (uint32_t)strlen(rights->token_name)});
}

maos_slice maosd_audit_target(const maos_request *r)
{
    const maos_slice cand[] = {r->stream, r->filter.stream, r->queue, r->table.name,
                               r->name, r->path, r->channel, r->pattern, r->agent.id,
                               r->filter.prefix, r->prefix};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (cand[i].len)
            return cand[i];
    if (r->n_items && r->items[0].queue.len)
        return r->items[0].queue;
    return (maos_slice){NULL, 0};
}

int maosd_audit_end(maosd_audit *a, maos_slice *data)
{
    if (a->failed || !a->sb.data)
        return MAOS_ENOMEM;
    unsigned char *p = (unsigned char *)a->sb.data;
    p[1] = (unsigned char)(a->n >> 24);
    p[2] = (unsigned char)(a->n >> 16);
    p[3] = (unsigned char)(a->n >> 8);
    p[4] = (unsigned char)a->n;
    *data = (maos_slice){a->sb.data, (uint32_t)a->sb.size};
    return 0;
}

void maosd_audit_free(maosd_audit *a)
{
    msgpack_sbuffer_destroy(&a->sb);
}

void maosd_audit_begin_writer(maosd_audit *a, const char *op, const maosd_wreq *w)
{
    maosd_audit_begin(a, op, w->who.uid, w->who.pid, w->who.conn_id);
    maosd_audit_token(a, w->who.rights);
}

int maosd_audit_stage(maosd_wctx *x, maosd_wreq *w, maosd_audit *a)
{
    maos_slice d;
    uint64_t pos;
    int rc = maosd_audit_end(a, &d);
    if (!rc)
        rc = maosd_wx_record(x, w, (maos_slice){MAOSD_AUDIT_STREAM, 6},
                             (maos_slice){"admin", 5}, d, &pos);
    maosd_audit_free(a);
    return rc;
}

void maosd_audit_emit(maosd_server *srv, maosd_audit *a, const char *type)
{
    maos_slice d;
    if (atomic_load(&srv->no_space)) {
        /* below the disk reserve maosd's own writes still pass: a flood of
         * records must not eat it; counted and logged instead */
        if (srv->audit_dropped++ % 1000 == 0)
            maosd_log(MAOSD_LOG_WARN, "audit record (%s) not written: below min_free_mb "
                      "(%llu so far)", type, (unsigned long long)srv->audit_dropped);
        maosd_audit_free(a);
        return;
    }
    if (maosd_audit_end(a, &d) ||
        maosd_append_internal(srv, MAOSD_AUDIT_STREAM, type, d.ptr, d.len))
        maosd_log(MAOSD_LOG_ERROR, "cannot record an audit event (%s)", type);
    maosd_audit_free(a);
}

/* ---- refusals ------------------------------------------------------------------------ */

int maosd_audit_is_refusal(int code)
{
    return code == MAOS_EUNAUTHORIZED || code == MAOS_EFORBIDDEN ||
           code == MAOS_EUNAUTHENTICATED;
}

static void refusal(maosd_conn *c, const char *op, int code, const char *why,
                    maos_slice target, uint64_t suppressed)
{
    maosd_audit a;
    maosd_audit_begin(&a, op, c->uid, c->pid, c->id);
    maosd_audit_token(&a, c->rights);
    if (target.len)
        maosd_audit_str(&a, "target", target);
    if (code) {
        const char *name = maos_err_name(code);
        maosd_audit_str(&a, "code", (maos_slice){name, (uint32_t)strlen(name)});
        maosd_audit_str(&a, "message", (maos_slice){why, (uint32_t)strlen(why)});
    }
    if (suppressed)
        maosd_audit_u64(&a, "suppressed", suppressed);
    maosd_audit_emit(c->srv, &a, "refused");
}

void maosd_audit_refused(maosd_conn *c, const char *op, int code, const char *why,
                         maos_slice target)
{
    int64_t now = maosd_now_us() / 1000;
    if (!c->audit_window_ms || now - c->audit_window_ms >= MAOSD_AUDIT_WINDOW_MS) {
        c->audit_window_ms = now ? now : 1;
        c->audit_in_window = 0;
    }
    maosd_server *srv = c->srv;
    if (!srv->audit_req_window_ms || now - srv->audit_req_window_ms >= MAOSD_AUDIT_WINDOW_MS) {
        srv->audit_req_window_ms = now ? now : 1;
        srv->audit_req_in_window = 0;
    }
    if (c->audit_in_window >= MAOSD_AUDIT_BURST ||
        srv->audit_req_in_window >= MAOSD_AUDIT_SERVER_BURST) {
        c->audit_suppressed++;
        return;
    }
    c->audit_in_window++;
    srv->audit_req_in_window++;
    uint64_t held = c->audit_suppressed;
    c->audit_suppressed = 0;
    refusal(c, op ? op : "?", code, why ? why : "", target, held);
}

void maosd_audit_refused_connect(maosd_conn *c, const char *why)
{
    /* one record per connection would let a refused user write the log
     * by connecting again and again: these share one limit, server-wide */
    maosd_server *srv = c->srv;
    int64_t now = maosd_now_us() / 1000;
    if (!srv->audit_window_ms || now - srv->audit_window_ms >= MAOSD_AUDIT_WINDOW_MS) {
        srv->audit_window_ms = now ? now : 1;
        srv->audit_in_window = 0;
    }
    if (srv->audit_in_window >= MAOSD_AUDIT_BURST) {
        srv->audit_suppressed++;
        return;
    }
    srv->audit_in_window++;
    uint64_t held = srv->audit_suppressed;
    srv->audit_suppressed = 0;
    refusal(c, "connect", MAOS_EFORBIDDEN, why, (maos_slice){NULL, 0}, held);
}

void maosd_audit_conn_closed(maosd_conn *c)
{
    if (c->audit_suppressed) /* what the limit held back, counted */
        refusal(c, "close", 0, "", (maos_slice){NULL, 0}, c->audit_suppressed);
    c->audit_suppressed = 0;
}
