/*
 * daemon/subs.h -- event and channel subscriptions (op_sub.c): the
 * catch-up pump, the live fan-out (a listener on committed groups) and
 * channels.  Loop thread only.
 */
#ifndef MAOSD_SUBS_H
#define MAOSD_SUBS_H

#include <stdint.h>

#include "commit.h"
#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;
typedef struct maosd_sub maosd_sub;

/*
 * A subscription (op_sub.c).  Event subscriptions are either live (fed by
 * the fan-out of each committed group) or catching up (on the pump list,
 * fed from disk up to srv->delivered_head); channel subscriptions only
 * receive what is published while they exist.
 */
struct maosd_sub {
    maosd_sub *next, *prev;  /* server's list: srv->subs or srv->chan_subs */
    maosd_sub *conn_next;    /* the connection's list */
    maosd_sub *pump_next;    /* srv->pump while catching up */
    maosd_conn *conn;
    uint64_t id;             /* unique per connection, from 1 */
    int channel;             /* 1: a channel subscription */
    int live;
    int pumping;
    struct pump_job *job;    /* a catch-up slice in flight (op_sub.c) */
    int waiting;             /* from_version past the head: skips the
                              * stream's versions below wait_version */
    uint64_t wait_version;
    uint64_t next_pos;       /* next position this subscription considers */
    maos_filter filter;      /* slices into mem */
    /* A prelude pushed before any event (a watch's entries), page by page
     * by the pump, like catch-up: one call writes one push and sets *done
     * on the last; 0 or an error (the connection is failed).  NULL when
     * none or finished; prelude_free releases prelude_arg. */
    int (*prelude)(maosd_server *srv, maosd_sub *s, int *done);
    void (*prelude_free)(maosd_server *srv, void *arg);
    void *prelude_arg;
    char *pattern;           /* channel: NUL-terminated glob, in mem */
    int scope_kind;          /* deliver only events whose stream the
                              * connection's rights allow for this kind
                              * (access.c; subscribe: MAOS_SCOPE_SUBSCRIBE);
                              * 0: all (a watch was authorized whole) */
    int form;                /* its records as stored (MAOS_FORM_MAP) or
                              * in the array form (subscribe's "form") */
    char *mem;
};

/* Subscriptions (op_sub.c): set-up, a closing connection's clean-up, and
 * the nudge when a connection's output drains. */
void maosd_subs_init(maosd_server *srv);
void maosd_subs_close(maosd_server *srv);
void maosd_sub_conn_closed(maosd_conn *c);
void maosd_sub_kick(maosd_server *srv);
void maosd_subs_stats(maosd_server *srv, maos_stats *st);
/* A new event subscription of c (filter copied) from position `from`
 * (waiting: for version wait_version of the filter's stream), not yet
 * running: the caller replies with s->id, then maosd_sub_run (its first
 * push may go out at once).  NULL: out of memory.  The caller checks
 * max_subscriptions. */
maosd_sub *maosd_sub_new(maosd_server *srv, maosd_conn *c, const maos_filter *f,
                         uint64_t from, int waiting, uint64_t wait_version);
/* Live at once when its position is past delivered_head (and it has no
 * prelude), else catching up. */
void maosd_sub_run(maosd_server *srv, maosd_sub *s);


/* Subscriptions' listener on committed groups (op_sub.c): delivers
 * their records to live subscriptions. */
void maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list);

#endif
