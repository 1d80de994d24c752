/*
 * daemon/reader.h -- the reader pool (reader.c): reads of RocksDB run off
 * the loop thread, as jobs.  docs/ARCHITECTURE.md "The path of a read".
 *
 * A job is built on the loop thread from what the read needs (its own copy
 * of the request, or fields copied out of a subscription), runs on a reader
 * thread (libuv's thread pool: uv_queue_work) into its own buffer, and
 * comes back to the loop thread, which hands the bytes to the connection
 * or drops them when the connection closed meanwhile.
 *
 * Threads: a reader thread reads only the job's own fields (request, copies,
 * budget) and the store; everything else -- the connection, subscriptions,
 * output buffers, counters of the loop -- is touched only by the loop
 * thread, in maosd_rjob_submit and in the done step.
 */
#ifndef MAOSD_READER_H
#define MAOSD_READER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;
typedef struct maosd_call maosd_call;
typedef struct maosd_rjob maosd_rjob;

struct maosd_rjob {
    uv_work_t work;
    maosd_server *srv;  /* loop thread only (the run step sees store) */
    struct maosd_store *store;
    maosd_conn *conn;   /* held (a reference and its cost) until done;
                         * loop thread only */
    size_t cost;        /* counted against conn's cap while in flight */
    /* Reader thread: fill out with whole reply frames (maosd_rjob_frame_*),
     * or set rc (and why).  Reads only the job and the store. */
    void (*run)(maosd_rjob *j);
    /* Loop thread, once, after run (or instead of it, with rc
     * MAOS_ECANCELLED, when maosd stops first): hand out the result.
     * NULL: maosd_rjob_reply. */
    void (*done)(maosd_rjob *j);
    /* what the read needs: its own request (frame copy) for a request job */
    maos_request req;
    char *frame;
    size_t frame_len;
    int has_req;
    size_t budget;      /* reply bytes (maosd_reply_budget at submit) */
    const struct maosd_rights *rights; /* conn's (set at submit), for
                                        * filtering: immutable, and conn
                                        * is held while the job runs */
    void *arg;          /* the done step's own */
    /* the outcome */
    msgpack_sbuffer out;/* whole frames, length headers patched */
    int rc;
    char why[256];
    int has_actual;     /* the error reply's actual (a get of nothing: -1) */
    int64_t actual;
    int log_why;        /* rc is a storage failure: the done step logs
                         * why once (maosd_rjob_reply does) */
    /* maosd_rjob_call_mem: run tries memory only, on the loop thread, and
     * sets not_in_memory (nothing else) when it would need a file. */
    int mem_only;
    int not_in_memory;
    uint64_t t0_ns;     /* a request's arrival (uv_hrtime; 0: not timed) */
    /* a read or read_all page (reader thread): the reply's next, if any
     * (readahead.c reads the next page ahead when it is full) */
    int page_more;
    uint64_t page_next;
#ifdef MAOS_FAULT_INJECTION
    const char *gate;   /* MAOS_FAULT_READ_GATE (reader.c) */
#endif
};

/* A job for the request of call (an op with MAOSD_OPF_OFFLOOP: call->frame
 * is the request's own copy): the request and frame move into the job.
 * NULL: out of memory (nothing moved). */
maosd_rjob *maosd_rjob_for(maosd_call *call, void (*run)(maosd_rjob *j));
/* The handler of an MAOSD_OPF_OFFLOOP op: the request moves into a job
 * that runs run on a reader thread and answers with maosd_rjob_reply.  0,
 * or a negative code with call->why set (nothing moved). */
int maosd_rjob_call(maosd_call *call, void (*run)(maosd_rjob *j));
/* The same for a point read that may be in memory: run is first called on
 * the loop thread with mem_only set (it must then read only with
 * maosd_store_*_mem, which never read a file); answered there when it did
 * not set not_in_memory, else the job goes to a reader thread as above.
 * What a hot read saves is two thread hand-offs; what it may cost the loop
 * is one memtable or block-cache lookup. */
int maosd_rjob_call_mem(maosd_call *call, void (*run)(maosd_rjob *j));
/* An empty job (no request) for c, e.g. a subscription's catch-up slice. */
maosd_rjob *maosd_rjob_new(maosd_server *srv, maosd_conn *c, void (*run)(maosd_rjob *j),
                           void (*done)(maosd_rjob *j), void *arg);
/* Hand j to a reader thread: its cost (the job, the request, its reply
 * budget) is counted against c's cap and the daemon's budget, and c is
 * held until the done step.  0, or a negative code (j freed, nothing
 * counted, the done step never runs). */
int maosd_rjob_submit(maosd_rjob *j);
void maosd_rjob_free(maosd_rjob *j);
/* The default done step of a request job: the frames in j->out go to the
 * connection (moved when its output is empty), or the error reply; nothing
 * when the connection closed meanwhile. */
void maosd_rjob_reply(maosd_rjob *j);

/* A scan's job (a read page, a catch-up slice) fills about its budget:
 * room for it at once, so the buffer is not grown (and copied) by
 * doubling as records go in.  On the reader thread, before the first
 * frame; out of memory leaves the buffer to grow as before. */
void maosd_rjob_reserve(maosd_rjob *j);
/* Frames in a job's buffer, on the reader thread: begin reserves the
 * 4-byte length and returns the mark; end patches it (0), or fails (out of
 * memory: the partial frame is dropped).  drop undoes a partial frame. */
size_t maosd_rjob_frame_begin(maosd_rjob *j, msgpack_packer *pk);
int maosd_rjob_frame_end(maosd_rjob *j, size_t mark);
/* A read failed (reader thread): drop the reply from mark on, set rc and
 * why as maosd_drop_reply does (storage failures keep RocksDB's words and
 * are logged by the done step). */
void maosd_rjob_fail(maosd_rjob *j, size_t mark, int rc);

#endif
