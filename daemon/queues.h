/*
 * daemon/queues.h -- task queues: the stored task record, the key layout
 * of the queues column family, and the loop side's entry points
 * (docs/ARCHITECTURE.md "Queues"; PROTOCOL.md "Queues").
 *
 * write_queue.c has the write kinds (commit thread): enqueue, claim, ack,
 * nack, extend, release, dead_retry, dead_purge, and maosd's own tick
 * (delays and leases that fell due) and release of bound claims.
 * queues.c has the loop side: the ops, waiting claims, the timer, reads
 * (task and dead_list run on a reader thread, reader.c).
 *
 * Column family "queues" (big-endian integers, so byte order is numeric
 * order; queue names and keys never contain NUL):
 *
 *   'T' id(16)                          -> task record (below)
 *   'R' queue 0 rprio(4) seq(8) id(16)  -> ""   ready, best first:
 *                                          rprio = INT32_MAX - priority
 *   'A' queue 0 seq(8) id(16)           -> ""   ready, oldest first
 *   'D' due(8) id(16)                   -> ""   timers: delayed (not_before)
 *                                          and leased (lease_until), µs
 *   'K' queue 0 dedupe_key              -> id   while that task is unfinished
 *   'O' queue 0 ordering_key 0 seq(8)   -> id   unfinished tasks of a key, in
 *                                          order: the first is handed out,
 *                                          the others are blocked
 *   'X' queue 0 seq(8) id(16)           -> ""   dead letters, oldest first
 *   'B' conn(8) id(16)                  -> ""   claims bound to a connection
 *   'Q' queue                           -> counts: ready, delayed, blocked,
 *                                          leased, done, dead (6 x u64)
 *
 * seq is the position of the task's `enqueued` (or `retried`) event: FIFO
 * order within a priority.  A task's indexes always match its state: only
 * leave() and enter() in write_queue.c touch them, and the counts with them.
 */
#ifndef MAOSD_QUEUES_H
#define MAOSD_QUEUES_H

#include <stdint.h>

#include <msgpack.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;

enum {
    MAOSD_TASK_READY = 1,
    MAOSD_TASK_DELAYED,
    MAOSD_TASK_BLOCKED,
    MAOSD_TASK_LEASED,
    MAOSD_TASK_DONE,
    MAOSD_TASK_DEAD,
    MAOSD_TASK__END
};
#define MAOSD_TASK_STATES (MAOSD_TASK__END - 1)

/* "ready", ...; "?" for anything else. */
const char *maosd_task_state_name(int state);

/*
 * The task record: a fixed header, the history, then seven msgpack values.
 *   state(1) pad(3) priority(i32) attempt(u32) max_attempts(u32)
 *   lease_ms(u32) backoff_ms(u32) seq(u64) enqueued(i64) due(i64)
 *   token(u64) bound_conn(u64) bound_pid(u32) n_history(u32)   = 72 bytes
 *   history: n_history positions (u64)
 *   queue (str), data (any), meta (map), dedupe_key (str|nil),
 *   ordering_key (str|nil), last_error (str|nil), result (any)
 * due is not_before while delayed, lease_until while leased, else 0; token
 * is the current lease's while leased, else 0.
 */
#define MAOSD_TASK_HDR 72
/* History kept per task: the first event and the latest ones. */
#define MAOSD_TASK_HISTORY_MAX 1024

typedef struct maosd_task {
    int state;
    int32_t priority;
    uint32_t attempt, max_attempts, lease_ms, backoff_ms;
    uint64_t seq;
    int64_t enqueued;
    int64_t due;
    uint64_t token;
    uint64_t bound_conn;
    uint32_t bound_pid;
    uint32_t n_history;
    const char *history;      /* n_history * 8 bytes */
    maos_slice queue, data, meta, dedupe_key, ordering_key, last_error, result;
} maosd_task;

/* Parse a stored record (slices point into v).  0 or MAOS_ECORRUPT. */
int maosd_task_parse(const char *v, size_t n, maosd_task *t);
/* Encode t into sb with up to two positions added to its history.  0 or
 * MAOS_ENOMEM. */
int maosd_task_encode(msgpack_sbuffer *sb, const maosd_task *t, const uint64_t *add,
                      uint32_t n_add);
/* The wire form of a task (maos_enc_task). */
int maosd_enc_task(msgpack_packer *pk, const uint8_t id[16], const maosd_task *t);

/* ---- keys (k holds MAOSD_QKEY_MAX) ------------------------------------------- */

#define MAOSD_QKEY_MAX (1 + MAOS_QUEUE_NAME_MAX + 1 + MAOS_KEY_MAX + 1 + 8 + 16)
#define MAOSD_QCOUNTS_LEN (8 * MAOSD_TASK_STATES)

size_t maosd_qkey_task(char *k, const uint8_t id[16]);
size_t maosd_qkey_ready(char *k, maos_slice queue, int32_t prio, uint64_t seq,
                        const uint8_t id[16]);
size_t maosd_qkey_age(char *k, maos_slice queue, uint64_t seq, const uint8_t id[16]);
size_t maosd_qkey_due(char *k, int64_t due, const uint8_t id[16]);
size_t maosd_qkey_dedupe(char *k, maos_slice queue, maos_slice dedupe_key);
/* with_seq 0: the prefix of every task of that ordering key */
size_t maosd_qkey_order(char *k, maos_slice queue, maos_slice okey, int with_seq,
                        uint64_t seq);
size_t maosd_qkey_dead(char *k, maos_slice queue, uint64_t seq, const uint8_t id[16]);
size_t maosd_qkey_bound(char *k, uint64_t conn, const uint8_t id[16]);
size_t maosd_qkey_counts(char *k, maos_slice queue);
/* The prefix 'c' queue 0 of an index (R, A, X). */
size_t maosd_qkey_prefix(char *k, char c, maos_slice queue);

/* ---- the loop side (queues.c) --------------------------------------------------- */

/* Set-up: the listener on committed groups, the timer.  0 or an error. */
int maosd_queues_init(maosd_server *srv);
/* Before the socket opens: give back every claim bound to a connection of
 * the last run, and arm the timer for what is due.  The caller runs the
 * loop until the commit thread is idle.  0 or an error (logged). */
int maosd_queues_start(maosd_server *srv);
/* End c's waiting claims now (they come back empty): its token went. */
void maosd_queues_end_waits(maosd_conn *c);
/* c closed: its waiting claims end, its bound claims go back. */
void maosd_queues_conn_closed(maosd_conn *c);
/* Shutdown: close the timer and end every waiting claim. */
void maosd_queues_close(maosd_server *srv);
/* At the very end (no more requests): free what the reads kept. */
void maosd_queues_free(maosd_server *srv);
/* Claims waiting now (stats). */
uint64_t maosd_queues_waiting(const maosd_server *srv, maos_slice queue);

#endif
