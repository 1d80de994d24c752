/*
 * daemon/reader.c -- the reader pool: RocksDB reads off the loop thread
 * (docs/ARCHITECTURE.md "The path of a read").
 *
 * The pool is libuv's thread pool (uv_queue_work): its workers take jobs
 * in submission order, and libuv hands each finished job back to the loop
 * thread (its own uv_async) where the done step runs.  Its size is libuv's,
 * UV_THREADPOOL_SIZE (default 4); maosd uses the pool for nothing else.
 *
 * Invariants:
 *  - A reader thread touches only its job (the request copy, copies of
 *    what else the read needs, its output buffer) and the store.  The
 *    loop thread is the only one that touches connections,
 *    subscriptions and output buffers: in maosd_rjob_submit and in the
 *    done step, never in between.
 *  - Connection lifetime: a job holds a reference to its connection
 *    (c->refs, as a queued write does), so the connection struct outlives
 *    the job even when the peer goes away; the done step drops the result
 *    of a connection that is closing.  The job's cost (struct, request
 *    copy, reply budget) is counted in the connection's load (pending
 *    reads) while it is in flight, so a client that pipelines reads is
 *    stopped by its cap like one that pipelines writes, and at shutdown a
 *    connection drains only after its reads came back.
 *  - Replies: each job writes whole frames (length patched) into its own
 *    buffer; the loop appends them to the connection's output in one piece,
 *    so a frame is never interleaved with another.  The protocol promises
 *    order only among the replies to writes (PROTOCOL.md "Requests"), and
 *    reads never promised their place among those; replies to reads come
 *    back when their job ends.
 *  - Read-your-writes: the loop answers a write only after the group's
 *    RocksDB write returned (commit.c), and a job for a read that arrives
 *    after that reply is submitted after it and makes its iterator or
 *    snapshot on the reader thread after taking the job (the pool's mutex
 *    orders the hand-off): RocksDB publishes a write's sequence number
 *    before the write returns, so every iterator made later, on any
 *    thread, sees it.  This holds as long as the write the loop waits for
 *    is the one that makes the data visible in RocksDB (a journal that
 *    acknowledges before its data reaches RocksDB would have to keep it).
 *
 * Fault injection (builds with -DMAOS_FAULT_INJECTION only): with
 * MAOS_FAULT_READ_GATE=PATH in the environment, every job (a request's
 * read, a catch-up slice) waits on its reader thread until PATH exists (at most 60 s), so tests can hold a
 * read in flight and see what the loop does meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MAOS_FAULT_INJECTION
#include <time.h>
#include <unistd.h>
#endif

#include "audit.h"
#include "dispatch.h"

#ifdef MAOS_FAULT_INJECTION
static void fault_gate(const char *path)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
        nanosleep(&ms, NULL);
}
#endif

#define RESERVE_SLACK (64u << 10)

void maosd_rjob_reserve(maosd_rjob *j)
{
    size_t want = j->budget + RESERVE_SLACK; /* the last record may overshoot */
    if (j->out.alloc >= want)
        return;
    char *p = realloc(j->out.data, want);
    if (p) {
        j->out.data = p;
        j->out.alloc = want;
    }
}

/* After the run: what the reply did not use of a reservation is given
 * back (a short page must not count as a full one in the connection's
 * load, nor hold the memory while it waits in a read-ahead slot). */
static void rjob_fit(maosd_rjob *j)
{
    if (j->out.alloc - j->out.size <= RESERVE_SLACK)
        return;
    if (!j->out.size) {
        msgpack_sbuffer_destroy(&j->out);
        msgpack_sbuffer_init(&j->out);
        return;
    }
    char *p = realloc(j->out.data, j->out.size);
    if (p) {
        j->out.data = p;
        j->out.alloc = j->out.size;
    }
}

static void rjob_run(uv_work_t *w)
{
    maosd_rjob *j = w->data;
    maosd_store_thread_init(); /* a pool thread: once is enough, again is cheap */
#ifdef MAOS_FAULT_INJECTION
    if (j->gate)
        fault_gate(j->gate);
#endif
    j->run(j);
    rjob_fit(j);
}

static void rjob_after(uv_work_t *w, int status)
{
    maosd_rjob *j = w->data;
    maosd_conn *c = j->conn;
    if (status == UV_ECANCELED) {
        j->out.size = 0;
        j->rc = MAOS_ESHUTTING_DOWN;
        snprintf(j->why, sizeof(j->why), "maosd is shutting down");
    }
    if (j->done)
        j->done(j);
    else
        maosd_rjob_reply(j);
    if (c) {
        maosd_conn_read_done(c, j->cost);
        maosd_conn_unref(c);
    }
    maosd_rjob_free(j);
}

maosd_rjob *maosd_rjob_new(maosd_server *srv, maosd_conn *c, void (*run)(maosd_rjob *j),
                           void (*done)(maosd_rjob *j), void *arg)
{
    maosd_rjob *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->work.data = j;
    j->srv = srv;
    j->store = srv->store;
    j->conn = c;
    j->run = run;
    j->done = done;
    j->arg = arg;
    j->budget = maosd_reply_budget(srv);
    msgpack_sbuffer_init(&j->out);
#ifdef MAOS_FAULT_INJECTION
    j->gate = getenv("MAOS_FAULT_READ_GATE"); /* loop thread: no setenv races */
#endif
    return j;
}

maosd_rjob *maosd_rjob_for(maosd_call *call, void (*run)(maosd_rjob *j))
{
    maosd_rjob *j = maosd_rjob_new(call->srv, call->conn, run, NULL, NULL);
    if (!j)
        return NULL;
    j->req = *call->req;
    call->req->mem_ = NULL; /* the job frees the request's memory */
    j->has_req = 1;
    j->t0_ns = uv_hrtime();
    j->frame = call->frame;
    j->frame_len = call->frame_len;
    call->frame = NULL;
    return j;
}

int maosd_rjob_call(maosd_call *call, void (*run)(maosd_rjob *j))
{
    maosd_rjob *j = maosd_rjob_for(call, run);
    if (!j) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    int rc = maosd_rjob_submit(j);
    if (rc)
        snprintf(call->why, sizeof(call->why), "cannot queue the read");
    return rc;
}

int maosd_rjob_call_mem(maosd_call *call, void (*run)(maosd_rjob *j))
{
    maosd_rjob *j = maosd_rjob_for(call, run);
    if (!j) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
#ifdef MAOS_FAULT_INJECTION
    if (!j->gate) /* a gated read is held on a reader thread, always */
#endif
    {
        j->mem_only = 1;
        j->run(j);
        j->mem_only = 0;
        if (!j->not_in_memory) {
            j->srv->reads_in_memory++;
            maosd_rjob_reply(j);
            maosd_rjob_free(j);
            return 0;
        }
        j->not_in_memory = 0; /* it wrote nothing else: on to a reader */
    }
    int rc = maosd_rjob_submit(j);
    if (rc)
        snprintf(call->why, sizeof(call->why), "cannot queue the read");
    return rc;
}

void maosd_rjob_free(maosd_rjob *j)
{
    if (!j)
        return;
    if (j->has_req)
        maos_request_free(&j->req);
    free(j->frame);
    msgpack_sbuffer_destroy(&j->out);
    free(j);
}

/* Heap bytes of one malloc(n) with glibc (as dispatch.c counts). */
static size_t heap(size_t n)
{
    return (n + 8 + 15) & ~(size_t)15;
}

int maosd_rjob_submit(maosd_rjob *j)
{
    maosd_conn *c = j->conn;
    /* what the job holds at most: itself, the request, the reply */
    j->cost = heap(sizeof(*j)) + (j->frame ? 2 * heap(j->frame_len) : 0) +
              heap(j->budget + 4096);
    j->rights = c ? c->rights : NULL;
    int rc = uv_queue_work(j->srv->loop, &j->work, rjob_run, rjob_after);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot queue a read: %s", uv_strerror(rc));
        maosd_rjob_free(j);
        return MAOS_EINTERNAL;
    }
    j->srv->reads_pooled++;
    if (c) {
        c->refs++;
        maosd_conn_read_queued(c, j->cost);
    }
    return 0;
}

void maosd_rjob_reply(maosd_rjob *j)
{
    maosd_conn *c = j->conn;
    if (j->t0_ns)
        maosd_metrics_observe(j->srv, j->req.op, j->t0_ns);
    if (j->log_why) /* logged once, here, where it is handled */
        maosd_log_req(MAOSD_LOG_ERROR, c ? c->id : 0, j->req.rid, maos_op_name(j->req.op),
                      j->rc, j->why);
    if (!c || c->closing)
        return; /* nobody to answer: the bytes go with the job */
    if (j->rc) {
        maosd_logf_req(MAOSD_LOG_DEBUG, c->id, j->req.rid, maos_op_name(j->req.op), j->rc,
                       j->why);
        maosd_reply_error(c, j->req.rid, j->rc, j->why, j->has_actual, j->actual, -1);
        if (maosd_audit_is_refusal(j->rc)) /* e.g. a task of another queue */
            maosd_audit_refused(c, maos_op_name(j->req.op), j->rc, j->why,
                                maosd_audit_target(&j->req));
        return;
    }
    maosd_conn_put_frames(c, &j->out);
}

/* ---- the reader thread's side ------------------------------------------- */

size_t maosd_rjob_frame_begin(maosd_rjob *j, msgpack_packer *pk)
{
    static const char hdr[4];
    size_t mark = j->out.size;
    msgpack_packer_init(pk, &j->out, msgpack_sbuffer_write);
    if (msgpack_sbuffer_write(&j->out, hdr, 4))
        j->out.size = mark; /* frame_end sees no header and fails */
    return mark;
}

int maosd_rjob_frame_end(maosd_rjob *j, size_t mark)
{
    if (j->out.size < mark + 4) {
        j->out.size = mark;
        return MAOS_ENOMEM;
    }
    maos_frame_put_len(j->out.data + mark, (uint32_t)(j->out.size - mark - 4));
    return 0;
}

void maosd_rjob_fail(maosd_rjob *j, size_t mark, int rc)
{
    j->out.size = mark;
    j->rc = maosd_read_failure(rc, j->why, sizeof(j->why), &j->log_why);
}
