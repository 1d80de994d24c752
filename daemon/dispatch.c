/*
 * daemon/dispatch.c -- the one path every request takes (redis'
 * processCommand): decode, look up, validate, authorize, storage gate,
 * handler, in that order.  The op table is built from MAOS_OPS_MAP order;
 * adding an op means one row here and one handler in an op_*.c file.
 */
#include <stdlib.h>
#include <string.h>

#include "maosd.h"

static const maosd_op op_table[MAOS_OP__COUNT] = {
    [MAOS_OP_HELLO] = {MAOS_OP_HELLO, "hello", maosd_op_hello, MAOSD_OPF_NO_HELLO},
    [MAOS_OP_PING] = {MAOS_OP_PING, "ping", maosd_op_ping, 0},
    [MAOS_OP_APPEND] = {MAOS_OP_APPEND, "append", maosd_op_append, MAOSD_OPF_WRITE},
    [MAOS_OP_TXN] = {MAOS_OP_TXN, "txn", maosd_op_append, MAOSD_OPF_WRITE},
    [MAOS_OP_READ] = {MAOS_OP_READ, "read", maosd_op_read, 0},
    [MAOS_OP_READ_ALL] = {MAOS_OP_READ_ALL, "read_all", maosd_op_read_all, 0},
    [MAOS_OP_STREAMS] = {MAOS_OP_STREAMS, "streams", maosd_op_streams, 0},
    [MAOS_OP_STATS] = {MAOS_OP_STATS, "stats", maosd_op_stats, 0},
    [MAOS_OP_SUBSCRIBE] = {MAOS_OP_SUBSCRIBE, "subscribe", maosd_op_subscribe, 0},
    [MAOS_OP_UNSUBSCRIBE] = {MAOS_OP_UNSUBSCRIBE, "unsubscribe", maosd_op_unsubscribe, 0},
    [MAOS_OP_CHECKPOINT_SAVE] = {MAOS_OP_CHECKPOINT_SAVE, "checkpoint_save",
                                 maosd_op_checkpoint_save, MAOSD_OPF_WRITE},
    [MAOS_OP_CHECKPOINT_GET] = {MAOS_OP_CHECKPOINT_GET, "checkpoint_get",
                                maosd_op_checkpoint_get, 0},
    [MAOS_OP_PUBLISH] = {MAOS_OP_PUBLISH, "publish", maosd_op_publish, 0},
    [MAOS_OP_SUBSCRIBE_CHANNEL] = {MAOS_OP_SUBSCRIBE_CHANNEL, "subscribe_channel",
                                   maosd_op_subscribe_channel, 0},
};

static void refuse(maosd_conn *c, uint64_t rid, int code, const char *why)
{
    maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rid %llu: %s: %s",
               (unsigned long long)c->id, (unsigned long long)rid,
               maos_err_name(code), why);
    maosd_reply_error(c, rid, code, why, 0, 0, -1);
}

void maosd_dispatch(maosd_conn *c, const char *frame, size_t len)
{
    maosd_server *srv = c->srv;
    maosd_call call = {.srv = srv, .conn = c};
    maos_request req;
    atomic_fetch_add(&srv->counters.requests, 1);

    /* decode + validate (shape, names, ids, limits) */
    int rc = maos_request_decode(frame, len, &srv->lim, &req, call.why, sizeof(call.why));
    if (rc) {
        refuse(c, req.rid, rc, call.why);
        goto out;
    }
    /* look up */
    const maosd_op *op = &op_table[req.op];
    if (!op->handler) {
        refuse(c, req.rid, MAOS_EUNKNOWN_OP, "operation not served by this daemon");
        goto out;
    }
    /* authorize: the socket's mode and directory admit only the owner or the
     * socket group (SO_PEERCRED is logged at accept); the handshake comes
     * first.  Scoped tokens will plug in here, carried by hello. */
    if (!c->hello && !(op->flags & MAOSD_OPF_NO_HELLO)) {
        refuse(c, req.rid, MAOS_EHELLO_REQUIRED, "send hello first");
        goto out;
    }
    /* storage gate */
    if (op->flags & MAOSD_OPF_WRITE) {
        if (srv->stopping) {
            refuse(c, req.rid, MAOS_ESHUTTING_DOWN, "maosd is shutting down");
            goto out;
        }
        if (maosd_store_state(srv->store) != MAOSD_STORE_OK) {
            refuse(c, req.rid, MAOS_EREAD_ONLY,
                   "store is read-only after a write failure; restart maosd");
            goto out;
        }
        /* The request outlives this frame: give it its own bytes. */
        call.frame = malloc(len);
        if (!call.frame) {
            refuse(c, req.rid, MAOS_EOVERLOADED, "out of memory");
            goto out;
        }
        memcpy(call.frame, frame, len);
        call.frame_len = len;
        maos_request_free(&req);
        rc = maos_request_decode(call.frame, len, &srv->lim, &req, call.why,
                                 sizeof(call.why));
        if (rc) { /* cannot differ from the first decode */
            refuse(c, req.rid, rc, call.why);
            goto out;
        }
    }
    call.req = &req;
    rc = op->handler(&call);
    if (rc) {
        maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rid %llu %s: %s: %s",
                   (unsigned long long)c->id, (unsigned long long)req.rid, op->name,
                   maos_err_name(rc), call.why);
        maosd_reply_error(c, req.rid, rc, call.why, call.has_actual, call.actual, -1);
    }
out:
    free(call.frame); /* NULL when a handler took it */
    maos_request_free(&req);
}
