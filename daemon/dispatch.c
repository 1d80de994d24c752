/*
 * daemon/dispatch.c -- the one path every request takes (redis'
 * processCommand): decode, look up, validate, authorize, storage gate,
 * handler, in that order.  The op table is built from MAOS_OPS_MAP order;
 * adding an op means one row here and one handler in an op_*.c file.
 *
 * Write ops leave this path through maosd_queue_write (op_stream.c), the
 * one place that hands a request to the commit thread; maosd_wreq_cost
 * here says what a queued write costs: the
 * connection's cap and the daemon's budget (server.c) count that cost, so
 * a pipelining client is stopped by what its queued writes really hold,
 * not by their frame bytes alone.
 */
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "audit.h"
#include "chain.h"
#include "retention.h"

static const maosd_op op_table[MAOS_OP__COUNT] = {
    [MAOS_OP_HELLO] = {MAOS_OP_HELLO, "hello", maosd_op_hello, MAOSD_OPF_NO_HELLO},
    [MAOS_OP_PING] = {MAOS_OP_PING, "ping", maosd_op_ping, 0},
    [MAOS_OP_APPEND] = {MAOS_OP_APPEND, "append", maosd_op_append, MAOSD_OPF_WRITE},
    [MAOS_OP_TXN] = {MAOS_OP_TXN, "txn", maosd_op_append, MAOSD_OPF_WRITE},
    [MAOS_OP_APPEND_BATCH] = {MAOS_OP_APPEND_BATCH, "append_batch", maosd_op_append,
                              MAOSD_OPF_WRITE},
    [MAOS_OP_READ] = {MAOS_OP_READ, "read", maosd_op_read, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_READ_ALL] = {MAOS_OP_READ_ALL, "read_all", maosd_op_read_all, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_STREAMS] = {MAOS_OP_STREAMS, "streams", maosd_op_streams, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_STATS] = {MAOS_OP_STATS, "stats", maosd_op_stats, 0},
    [MAOS_OP_SUBSCRIBE] = {MAOS_OP_SUBSCRIBE, "subscribe", maosd_op_subscribe, 0},
    [MAOS_OP_UNSUBSCRIBE] = {MAOS_OP_UNSUBSCRIBE, "unsubscribe", maosd_op_unsubscribe, 0},
    [MAOS_OP_CHECKPOINT_SAVE] = {MAOS_OP_CHECKPOINT_SAVE, "checkpoint_save",
                                 maosd_op_checkpoint_save, MAOSD_OPF_WRITE},
    [MAOS_OP_CHECKPOINT_GET] = {MAOS_OP_CHECKPOINT_GET, "checkpoint_get",
                                maosd_op_checkpoint_get, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_PUBLISH] = {MAOS_OP_PUBLISH, "publish", maosd_op_publish, 0},
    [MAOS_OP_SUBSCRIBE_CHANNEL] = {MAOS_OP_SUBSCRIBE_CHANNEL, "subscribe_channel",
                                   maosd_op_subscribe_channel, 0},
    [MAOS_OP_PUT] = {MAOS_OP_PUT, "put", maosd_op_put, MAOSD_OPF_WRITE},
    [MAOS_OP_GET] = {MAOS_OP_GET, "get", maosd_op_get, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_DELETE] = {MAOS_OP_DELETE, "delete", maosd_op_delete, MAOSD_OPF_WRITE},
    [MAOS_OP_LIST] = {MAOS_OP_LIST, "list", maosd_op_list, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_COUNT] = {MAOS_OP_COUNT, "count", maosd_op_count, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_WATCH] = {MAOS_OP_WATCH, "watch", maosd_op_watch, 0},
    [MAOS_OP_AGENT_REGISTER] = {MAOS_OP_AGENT_REGISTER, "agent_register",
                                maosd_op_agent_register, MAOSD_OPF_WRITE},
    [MAOS_OP_AGENT_DEREGISTER] = {MAOS_OP_AGENT_DEREGISTER, "agent_deregister",
                                  maosd_op_agent_deregister, MAOSD_OPF_WRITE},
    [MAOS_OP_AGENT_STATUS] = {MAOS_OP_AGENT_STATUS, "agent_status",
                              maosd_op_agent_status, MAOSD_OPF_WRITE},
    [MAOS_OP_ENQUEUE] = {MAOS_OP_ENQUEUE, "enqueue", maosd_op_queue_write, MAOSD_OPF_WRITE},
    [MAOS_OP_CLAIM] = {MAOS_OP_CLAIM, "claim", maosd_op_claim, MAOSD_OPF_WRITE},
    [MAOS_OP_ACK] = {MAOS_OP_ACK, "ack", maosd_op_queue_write, MAOSD_OPF_WRITE},
    [MAOS_OP_NACK] = {MAOS_OP_NACK, "nack", maosd_op_queue_write, MAOSD_OPF_WRITE},
    [MAOS_OP_EXTEND] = {MAOS_OP_EXTEND, "extend", maosd_op_queue_write, MAOSD_OPF_WRITE},
    [MAOS_OP_RELEASE] = {MAOS_OP_RELEASE, "release", maosd_op_queue_write, MAOSD_OPF_WRITE},
    [MAOS_OP_TASK] = {MAOS_OP_TASK, "task", maosd_op_task, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_QUEUE_STATS] = {MAOS_OP_QUEUE_STATS, "queue_stats", maosd_op_queue_stats, 0},
    [MAOS_OP_DEAD_LIST] = {MAOS_OP_DEAD_LIST, "dead_list", maosd_op_dead_list, MAOSD_OPF_OFFLOOP},
    [MAOS_OP_DEAD_RETRY] = {MAOS_OP_DEAD_RETRY, "dead_retry", maosd_op_queue_write,
                            MAOSD_OPF_WRITE},
    [MAOS_OP_DEAD_PURGE] = {MAOS_OP_DEAD_PURGE, "dead_purge", maosd_op_queue_write,
                            MAOSD_OPF_WRITE},
    [MAOS_OP_BACKUP] = {MAOS_OP_BACKUP, "backup", maosd_op_backup, MAOSD_OPF_WRITE},
    /* a write, or a read when it changes nothing: the handler tells
     * (retention.c) */
    [MAOS_OP_STREAM_META] = {MAOS_OP_STREAM_META, "stream_meta", maosd_op_stream_meta,
                             MAOSD_OPF_OFFLOOP},
    [MAOS_OP_COMPACT] = {MAOS_OP_COMPACT, "compact", maosd_op_compact, MAOSD_OPF_WRITE},
    [MAOS_OP_PUBKEY] = {MAOS_OP_PUBKEY, "pubkey", maosd_op_pubkey, 0},
    [MAOS_OP_CHAIN_SIGN] = {MAOS_OP_CHAIN_SIGN, "chain_sign", maosd_op_chain_sign,
                            MAOSD_OPF_OFFLOOP},
    [MAOS_OP_METRICS] = {MAOS_OP_METRICS, "metrics", maosd_op_metrics, 0},
    [MAOS_OP_TASK_LIST] = {MAOS_OP_TASK_LIST, "task_list", maosd_op_task_list,
                           MAOSD_OPF_OFFLOOP},
    [MAOS_OP_TOKEN_CREATE] = {MAOS_OP_TOKEN_CREATE, "token_create", maosd_op_token_create,
                              MAOSD_OPF_WRITE},
    [MAOS_OP_TOKEN_LIST] = {MAOS_OP_TOKEN_LIST, "token_list", maosd_op_token_list, 0},
    [MAOS_OP_TOKEN_REVOKE] = {MAOS_OP_TOKEN_REVOKE, "token_revoke", maosd_op_token_revoke,
                              MAOSD_OPF_WRITE},
};

const char *maosd_read_only_why(const maosd_server *srv)
{
    return srv->cfg->read_only
               ? "store is read-only: maosd runs with --read-only (inspection)"
               : "store is read-only after a write failure; restart maosd";
}

/* ---- what a queued write costs --------------------------------------------- */

/* Heap bytes of one malloc(n) with glibc: an 8-byte header, rounded up to
 * 16. */
static size_t heap(size_t n)
{
    return (n + 8 + 15) & ~(size_t)15;
}

/* A stored record's bytes besides its stream, type, data and meta
 * (maos_enc_record: 9 keys, position, time, version, the id and prev bin
 * headers and bytes, string headers: 138), rounded up. */
#define RECORD_OVERHEAD 160

size_t maosd_wreq_records_bound(const maos_request *req, size_t frame_len)
{
    /* type, data and meta of every event are in the frame; the stream is
     * in the frame once per append but in every record */
    size_t b = frame_len;
    for (uint32_t i = 0; i < req->n_appends; i++)
        b += (size_t)req->appends[i].n_events * (RECORD_OVERHEAD + req->appends[i].stream.len);
    /* a table item's event: its stream (table + key), the event data's
     * table, key and field names, and the document (put: in the frame;
     * delete, release: the stored one, not known here) */
    for (uint32_t i = 0; i < req->n_items; i++)
        if (req->items[i].kind != MAOS_ITEM_APPEND &&
            req->items[i].kind != MAOS_ITEM_CHECKPOINT)
            b += RECORD_OVERHEAD + 64 +
                 2 * ((size_t)req->items[i].table.name.len + req->items[i].key.len);
    return b;
}

size_t maosd_wreq_cost(const maosd_wreq *w)
{
    const maos_request *r = &w->req;
    size_t events = 0, c = heap(sizeof(*w)) + heap(w->frame_len);
    /* the items and their results */
    c += heap(r->n_items * sizeof(maos_item_in)) + heap(r->n_items * sizeof(maosd_item_out));
    if (r->n_appends) {
        /* the decoder's arena: one chunk for the appends, one per append
         * for its events (proto/msg.c) */
        c += heap(16 + r->n_appends * sizeof(maos_append_in));
        for (uint32_t i = 0; i < r->n_appends; i++) {
            events += r->appends[i].n_events;
            c += heap(16 + r->appends[i].n_events * sizeof(maos_event_in));
        }
        c += heap(16 * events);
    }
    return c + heap(maosd_wreq_records_bound(r, w->frame_len));
}


/* ---- the request path --------------------------------------------------------- */

/* index: which element of a txn or append_batch the refusal is about
 * (PROTOCOL.md), or -1. */
static void refuse(maosd_conn *c, uint64_t rid, int code, const char *why, int64_t index)
{
    maosd_logf_req(MAOSD_LOG_DEBUG, c->id, rid, NULL, code, why);
    maosd_reply_error(c, rid, code, why, 0, 0, index);
}

void maosd_dispatch(maosd_conn *c, const char *frame, size_t len)
{
    maosd_server *srv = c->srv;
    maosd_call call = {.srv = srv, .conn = c, .index = -1};
    maos_request req;
    uint64_t t0 = uv_hrtime();
    int later = 0; /* a write or read job answers it (and times it) */
    atomic_fetch_add(&srv->counters.requests, 1);

    /* A write or a read job outlives this frame (the reader's buffer): the
     * request is decoded once, from its own copy, which a handler of
     * either kind takes; for the other ops it is freed below.  Without
     * memory for the copy, it is decoded in place: enough for the others,
     * and for the rid of the refusal of a write or read. */
    call.frame = malloc(len ? len : 1);
    if (call.frame) {
        memcpy(call.frame, frame, len);
        call.frame_len = len;
    }
    /* decode + validate (shape, names, ids, limits) */
    int rc = maos_request_decode(call.frame ? call.frame : frame, len, &srv->lim, &req,
                                 call.why, sizeof(call.why));
    if (rc) {
        refuse(c, req.rid, rc, call.why, req.error_index);
        goto out;
    }
    /* look up */
    const maosd_op *op = &op_table[req.op];
    if (!op->handler) {
        refuse(c, req.rid, MAOS_EUNKNOWN_OP, "operation not served by this daemon", -1);
        goto out;
    }
    /* authorize: who may connect was decided at accept (server.c
     * peer_allowed); the handshake comes first, and gives the connection
     * its rights (access.c: its uid's, intersected with its token's);
     * then the scope the op needs (maos_op_scope, one table in proto/). */
    if (!c->hello && !(op->flags & MAOSD_OPF_NO_HELLO)) {
        refuse(c, req.rid, MAOS_EHELLO_REQUIRED, "send hello first", -1);
        goto out;
    }
    if (c->hello) {
        call.req = &req;
        if ((rc = maosd_access_check(&call))) {
            refuse(c, req.rid, rc, call.why, call.index);
            maosd_audit_refused(c, op->name, rc, call.why, maosd_audit_target(&req));
            goto out;
        }
    }
    /* storage gate */
    if (op->flags & MAOSD_OPF_WRITE) {
        if (srv->stopping) {
            refuse(c, req.rid, MAOS_ESHUTTING_DOWN, "maosd is shutting down", -1);
            goto out;
        }
        if (maosd_store_state(srv->store) != MAOSD_STORE_OK) {
            refuse(c, req.rid, MAOS_EREAD_ONLY, maosd_read_only_why(srv), -1);
            goto out;
        }
    }
    if (!call.frame && (op->flags & (MAOSD_OPF_WRITE | MAOSD_OPF_OFFLOOP))) {
        refuse(c, req.rid, MAOS_EOVERLOADED, "out of memory", -1);
        goto out;
    }
    call.req = &req;
    rc = op->handler(&call);
    later = !rc && !call.frame && (op->flags & (MAOSD_OPF_WRITE | MAOSD_OPF_OFFLOOP));
    if (c->hello && c->greeting)
        maosd_conn_greeted(c); /* no more hello timeout */
    if (rc) {
        maosd_logf_req(MAOSD_LOG_DEBUG, c->id, req.rid, op->name, rc, call.why);
        maosd_reply_error(c, req.rid, rc, call.why, call.has_actual, call.actual, -1);
        if (maosd_audit_is_refusal(rc)) /* a refusal for access: in $audit */
            maosd_audit_refused(c, op->name, rc, call.why, maosd_audit_target(&req));
    }
out:
    if (!later)
        maosd_metrics_observe(srv, req.op, t0);
    free(call.frame); /* NULL when a handler took it */
    maos_request_free(&req);
}
