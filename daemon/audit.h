/*
 * daemon/audit.h -- the $audit stream (docs/ARCHITECTURE.md "Audit"):
 * admin actions and refused requests, as events maosd appends.
 *
 * A record is built with maosd_audit_begin / _str / _u64 / _end (a msgpack
 * map of {op, uid, pid, conn, ...}), then appended either in the write that
 * does the action (commit thread: maosd_wx_record to $audit, so the action
 * and its record are one) or as a write of maosd's own (loop:
 * maosd_audit_emit).
 */
#ifndef MAOSD_AUDIT_H
#define MAOSD_AUDIT_H

#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;

#define MAOSD_AUDIT_STREAM "$audit"

typedef struct maosd_audit {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t n;                /* entries so far (the map header is patched) */
    int failed;                /* out of memory: end says so */
} maosd_audit;

/* {op, uid, pid, conn} to start with (conn 0: none, maosd itself). */
void maosd_audit_begin(maosd_audit *a, const char *op, uid_t uid, pid_t pid, uint64_t conn);
void maosd_audit_str(maosd_audit *a, const char *key, maos_slice v);
void maosd_audit_u64(maosd_audit *a, const char *key, uint64_t v);
void maosd_audit_bool(maosd_audit *a, const char *key, int v);
/* "token": the token's name, when the writer used one (rights NULL or
 * without a token: nothing). */
struct maosd_rights;
void maosd_audit_token(maosd_audit *a, const struct maosd_rights *rights);
/* What a request names (its stream, queue, table, name, path, channel,
 * agent: the first it has), for the "target" of a refusal. */
maos_slice maosd_audit_target(const maos_request *r);
/* Commit thread: begin with the writer of w (uid, pid, conn, token), and
 * stage the record (type "admin") into w's write, then free it: the
 * action and its record are one write.  0 or an error of the stage. */
struct maosd_wctx;
struct maosd_wreq;
void maosd_audit_begin_writer(maosd_audit *a, const char *op, const struct maosd_wreq *w);
int maosd_audit_stage(struct maosd_wctx *x, struct maosd_wreq *w, maosd_audit *a);
/* The record's bytes (into a->sb): 0 and *data, or MAOS_ENOMEM. */
int maosd_audit_end(maosd_audit *a, maos_slice *data);
void maosd_audit_free(maosd_audit *a);

/* Loop: append the record as a write of maosd's own, event type `type`
 * ("admin" or "refused"); frees a.  Logged when it cannot be queued. */
void maosd_audit_emit(maosd_server *srv, maosd_audit *a, const char *type);

/* Loop: a request of c refused for access (UNAUTHORIZED, FORBIDDEN, ...):
 * recorded, at most MAOSD_AUDIT_BURST records per connection per
 * MAOSD_AUDIT_WINDOW_MS; the ones over are counted, and the count goes
 * with the next record, or with one at the close (maosd_audit_conn_closed). */
#define MAOSD_AUDIT_BURST 10
#define MAOSD_AUDIT_WINDOW_MS 10000
/* and at most this many refusal records per window for the whole server
 * (a client that reconnects gets a fresh per-connection window) */
#define MAOSD_AUDIT_SERVER_BURST 100
int maosd_audit_is_refusal(int code);
void maosd_audit_refused(maosd_conn *c, const char *op, int code, const char *why,
                         maos_slice target);
void maosd_audit_conn_closed(maosd_conn *c);
/* A connection refused at accept (its uid may not connect): the same,
 * with one limit for all such refusals of the server. */
void maosd_audit_refused_connect(maosd_conn *c, const char *why);

#endif
