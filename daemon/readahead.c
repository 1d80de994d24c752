/*
 * daemon/readahead.c -- read-ahead of the next page of a read or read_all.
 * docs/ARCHITECTURE.md "Read-ahead".
 *
 * A client replaying a log asks for page after page, each request sent
 * when it has the previous reply: without read-ahead, maosd reads while
 * the client waits, then the client decodes while maosd waits.  So when
 * a read or read_all page is full (its reply has `next`), maosd at once
 * queues a job that reads the page at `next` into the connection's slot
 * (one per connection).  The client's request for that page is answered
 * from the slot (the page's rid rewritten), or, when it comes while the
 * job runs, by the job as it ends.
 *
 * Invariants:
 *  - Only a full page (`more`: an event exists past it) is ever served
 *    from the slot.  Every event before a full page's `next` was committed
 *    before the page was read, and events never change, so the page is
 *    the same whenever the request comes: read-your-writes holds.  A page
 *    that reached the end of the log or stream could miss a write
 *    answered after it was read, so it is dropped, and a request that
 *    waits for it is read afresh.
 *  - The slot is keyed by the request as encoded by proto with rid 0 and
 *    from = the page's start: a request answered from it is exactly one
 *    that would have read it.  A read or read_all that does not match
 *    drops the slot; other ops leave it alone.
 *  - Loop thread only.  The job is an ordinary read job (reader.c): while
 *    it runs it counts as one against the connection's cap; a page held in
 *    the slot counts in the connection's load (maosd_conn_hold) until it
 *    is served or dropped.  No read-ahead starts on a connection above
 *    half its cap or while the daemon is over its budget, and pausing a
 *    connection drops its slot: a held page never keeps a connection
 *    unread (its own request may be in the unread input).  A dropped slot whose job still runs is freed
 *    by the job as it ends (after answering a request that waits for it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "dispatch.h"
#include "readahead.h"
#include "reader.h"
#include "server.h"

struct maosd_ahead {
    msgpack_sbuffer key;     /* the request it answers, rid 0 */
    void (*run)(maosd_rjob *j);
    int running;             /* its job is at the reader pool */
    uint64_t rid_waiting;    /* a matching request came while it ran */
    msgpack_sbuffer page;    /* the reply frame (rid 0), once read */
    uint64_t next;           /* the page's next (a kept page is always full) */
};

/* The request of a read or read_all at `from`, encoded with rid. */
static int encode_req(msgpack_sbuffer *sb, const maos_request *r, uint64_t rid,
                      uint64_t from)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (r->op == MAOS_OP_READ)
        return maos_enc_read_as(&pk, rid, r->stream, 1, from, r->backward, r->limit,
                                r->form);
    return maos_enc_read_all_as(&pk, rid, 1, from, r->backward, r->limit, &r->filter,
                                r->removed, r->form);
}

static void ahead_free(maosd_ahead *a)
{
    msgpack_sbuffer_destroy(&a->key);
    msgpack_sbuffer_destroy(&a->page);
    free(a);
}

void maosd_ahead_drop(maosd_conn *c)
{
    maosd_ahead *a = c->ahead;
    if (!a)
        return;
    c->ahead = NULL;
    if (a->running)
        return; /* its done step frees it */
    maosd_conn_hold(c, -(ssize_t)a->page.alloc);
    ahead_free(a);
}

/* Answer rid with a page read for rid 0: the same frame, its rid replaced.
 * 0, or -1 when the frame is not the shape this expects (then nothing is
 * written and the caller reads afresh). */
static int serve(maosd_conn *c, uint64_t rid, const msgpack_sbuffer *page)
{
    /* [len:4][fixmap][a3 'rid'][00] ... : head_rep in proto/msg.c */
    const unsigned char *f = (const unsigned char *)page->data;
    if (page->size < 10 || (f[4] & 0xf0) != 0x80 || memcmp(f + 5, "\xa3rid", 4) != 0 ||
        f[9] != 0x00)
        return -1;
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    if (msgpack_pack_map(&pk, f[4] & 0x0f) || msgpack_pack_str_with_body(&pk, "rid", 3) ||
        msgpack_pack_uint64(&pk, rid) ||
        pk.callback(pk.data, (const char *)f + 10, page->size - 10))
        c->out_broken = 1; /* maosd_reply_end closes c */
    maosd_reply_end(c, mark);
    c->srv->reads_ahead++;
    return 0;
}

static void start(maosd_conn *c, const maos_request *r, uint64_t next,
                  void (*run)(maosd_rjob *j));
static int read_job(maosd_conn *c, maosd_call *call, const maos_request *r, uint64_t rid,
                    void (*run)(maosd_rjob *j));

/* The done step of a read-ahead job. */
static void ahead_done(maosd_rjob *j)
{
    maosd_ahead *a = j->arg;
    maosd_conn *c = j->conn;
    int mine = c->ahead == a; /* still the slot: not dropped */
    uint64_t rid = a->rid_waiting;
    a->running = 0;
    if (mine && (c->closing || rid || j->rc || !j->page_more))
        c->ahead = NULL; /* kept only below */
    if (c->closing) {
        ahead_free(a);
        return;
    }
    if (rid) {
        /* its request is here: a full page answers it (and the next one
         * is read ahead); else it is read afresh, as it would have been */
        if (!j->rc && j->page_more && serve(c, rid, &j->out) == 0) {
            if (mine)
                start(c, &j->req, j->page_next, a->run);
        } else if (read_job(c, NULL, &j->req, rid, a->run)) {
            maosd_reply_error(c, rid, MAOS_EOVERLOADED, "cannot queue the read", 0, 0, -1);
        }
        ahead_free(a);
        return;
    }
    if (!mine || j->rc || !j->page_more) {
        /* dropped, failed, or a page that could miss a later write */
        ahead_free(a);
        return;
    }
    a->page = j->out; /* moved: the job's buffer is left empty */
    msgpack_sbuffer_init(&j->out);
    a->next = j->page_next;
    maosd_conn_hold(c, (ssize_t)a->page.alloc);
}

/* A job reading r's page at from, answered with rid (its own request:
 * r encoded afresh and decoded into it), or NULL (no memory). */
static maosd_rjob *job_at(maosd_conn *c, const maos_request *r, uint64_t rid, uint64_t from,
                          void (*run)(maosd_rjob *j), void (*done)(maosd_rjob *j), void *arg)
{
    maosd_rjob *j = maosd_rjob_new(c->srv, c, run, done, arg);
    if (!j)
        return NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char why[64];
    if (encode_req(&sb, r, rid, from)) {
        msgpack_sbuffer_destroy(&sb);
        maosd_rjob_free(j);
        return NULL;
    }
    j->frame = sb.data; /* taken */
    j->frame_len = sb.size;
    if (maos_request_decode(j->frame, j->frame_len, &c->srv->lim, &j->req, why,
                            sizeof why)) {
        maosd_rjob_free(j); /* cannot be: proto encoded it */
        return NULL;
    }
    j->has_req = 1;
    return j;
}

/* Queue the read-ahead of r's page at next into c's (empty) slot; nothing
 * when memory is short (it is only ever a gain). */
static void start(maosd_conn *c, const maos_request *r, uint64_t next,
                  void (*run)(maosd_rjob *j))
{
    const maosd_server *srv = c->srv;
    if (c->ahead || c->closing || c->paused || srv->over_budget ||
        maosd_conn_load(c) > srv->cfg->max_output / 2)
        return; /* a connection near its cap, or the daemon at its budget */
    maosd_ahead *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    msgpack_sbuffer_init(&a->key);
    msgpack_sbuffer_init(&a->page);
    a->run = run;
    maosd_rjob *j = NULL;
    if (encode_req(&a->key, r, 0, next) || !(j = job_at(c, r, 0, next, run, ahead_done, a))) {
        ahead_free(a);
        return;
    }
    a->running = 1;
    c->ahead = a;
    if (maosd_rjob_submit(j)) { /* freed j */
        c->ahead = NULL;
        ahead_free(a);
    }
}

/* The done step of a read: its reply, then the read-ahead of the next
 * page when this one was full. */
static void read_done(maosd_rjob *j)
{
    maosd_rjob_reply(j);
    maosd_conn *c = j->conn;
    if (!j->rc && j->page_more && c && !c->closing)
        start(c, &j->req, j->page_next, j->run);
}

/* A read job for call's request (call != NULL: it moves into the job), or
 * for r at its own from with rid (a request whose read-ahead could not
 * answer it).  0 or a negative code (nothing queued). */
static int read_job(maosd_conn *c, maosd_call *call, const maos_request *r, uint64_t rid,
                    void (*run)(maosd_rjob *j))
{
    maosd_rjob *j = call ? maosd_rjob_for(call, run)
                         : job_at(c, r, rid, r->from, run, read_done, NULL);
    if (!j)
        return MAOS_EOVERLOADED;
    j->done = read_done;
    return maosd_rjob_submit(j);
}

/* Whether c's slot answers req: 1 (answered, or it will be when its job
 * ends), 0 (read it; the slot was dropped if it held another page). */
static int from_slot(maosd_conn *c, const maos_request *req)
{
    maosd_ahead *a = c->ahead;
    if (!a)
        return 0;
    msgpack_sbuffer k;
    msgpack_sbuffer_init(&k);
    int same = req->has_from && !encode_req(&k, req, 0, req->from) &&
               k.size == a->key.size && !memcmp(k.data, a->key.data, k.size);
    msgpack_sbuffer_destroy(&k);
    if (!same) {
        maosd_ahead_drop(c);
        return 0;
    }
    if (a->running) {
        if (a->rid_waiting)
            return 0; /* the same page asked twice: the second is read */
        a->rid_waiting = req->rid;
        return 1;
    }
    c->ahead = NULL;
    maosd_conn_hold(c, -(ssize_t)a->page.alloc);
    int served = serve(c, req->rid, &a->page) == 0;
    if (served)
        start(c, req, a->next, a->run);
    ahead_free(a);
    return served;
}

int maosd_read_call(maosd_call *call, void (*run)(maosd_rjob *j))
{
    if (from_slot(call->conn, call->req))
        return 0;
    int rc = read_job(call->conn, call, NULL, 0, run);
    if (rc)
        snprintf(call->why, sizeof(call->why), "cannot queue the read");
    return rc;
}
