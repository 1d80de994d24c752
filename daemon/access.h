/*
 * daemon/access.h -- what a connection may do (access.c): its rights, made
 * at hello from its uid's configuration and its token; the authorize step
 * of the request path; the filter reads and subscriptions apply; the
 * tokens (memory table, ops, write kinds).  docs/ARCHITECTURE.md "Access
 * control" has the long form, PROTOCOL.md "Access control" the wire.
 *
 * Threads: everything is the loop thread's, except that a connection's
 * rights are read by reader threads while a job of that connection runs
 * (maosd_rights_allow): rights never change after hello and are freed
 * only with the connection, which a job holds.
 */
#ifndef MAOSD_ACCESS_H
#define MAOSD_ACCESS_H

#include <stdatomic.h>
#include <stdint.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;
struct maosd_call;

/* A restricted connection's rights: allowed = (uid_all or one of uid[]
 * allows) and (no token or one of tok[] allows).  An unrestricted
 * connection (root or the daemon's uid, no token) has none (NULL). */
typedef struct maosd_rights {
    int uid_all;             /* its uid is not limited (root, the daemon's) */
    int has_token;
    uint32_t n_uid, n_tok;
    maos_scope uid[MAOS_SCOPES_MAX];
    maos_scope tok[MAOS_SCOPES_MAX];
    uint64_t token_serial;   /* which token (revocation closes by it) */
    int64_t expires;         /* µs since the epoch; 0: never */
    char token_name[65];
    atomic_int revoked;      /* its token was revoked or expired: nothing
                              * more is allowed (set on the loop, read by
                              * reader jobs too) */
    char *mem;               /* the texts the scopes' args point into */
} maosd_rights;

/* 1 when r (NULL: unrestricted) allows kind on target. */
int maosd_rights_allow(const maosd_rights *r, int kind, maos_slice target);
/* 1 when r has some scope of kind (both halves). */
int maosd_rights_have(const maosd_rights *r, int kind);

/* The authorize step of maosd_dispatch, after hello: 0, or FORBIDDEN
 * (the scope missing is named in call->why) or UNAUTHENTICATED (the
 * token expired: the connection is closed after the reply). */
int maosd_access_check(struct maosd_call *call);
/* hello: check the token (if any) and give the connection its rights.
 * 0, or BAD_REQUEST / UNAUTHENTICATED with call->why (no hello then). */
int maosd_access_hello(struct maosd_call *call);
/* After a reload that changed uid_scopes or the allow lists: close the
 * connections of uids those settings limit (root's and the daemon's stay),
 * one UNAUTHENTICATED frame each; they reconnect with the new rights. */
void maosd_access_reloaded(struct maosd_server *srv);
/* The connection is freed: its rights go. */
void maosd_access_conn_free(maosd_conn *c);
/* Once a second (server.c): close the connections whose token expired
 * (one UNAUTHENTICATED frame with rid 0, then the close), so that their
 * subscriptions stop too. */
void maosd_access_tick(maosd_server *srv);

/* Start-up: read the tokens of the meta column family into memory.  0 or
 * a negative code (logged). */
int maosd_tokens_load(maosd_server *srv);
/* Exit: free the memory table. */
void maosd_tokens_free(void);


#endif
