/*
 * tests/subs/queue_util.h -- queue requests over a raw connection (su_conn)
 * for the daemon-level queue tests: each call sends one request and waits
 * for its reply (tu_result: code 0 or the error).
 */
#ifndef QUEUE_UTIL_H
#define QUEUE_UTIL_H

#include <stdint.h>

#include "tables_util.h"

/* A claimed task, copied out of its reply. */
typedef struct qu_task {
    uint8_t id[16];
    uint64_t token, attempt;
    int64_t priority, lease_until, not_before, enqueued;
    char state[16];
    char data[128];     /* the payload when it is a string */
    char last_error[128];
    uint32_t n_history;
} qu_task;

/* Options of one enqueued task (zero: defaults). */
typedef struct qu_opts {
    int32_t priority;
    int64_t delay_ms;   /* 0: none */
    uint32_t max_attempts, lease_ms, backoff_ms;
    const char *dedupe_key, *ordering_key;
} qu_opts;

/* Enqueue one task whose data is the string `data`: its id, *dup. */
tu_result qu_enqueue(su_conn *c, const char *queue, const char *data,
                     const qu_opts *o, uint8_t id[16], int *dup);
/* Claim from one queue: up to max tasks into out; r.code, r.count = n. */
tu_result qu_claim(su_conn *c, const char *queue, uint32_t lease_ms, uint32_t wait_ms,
                   uint32_t max, int bind, qu_task *out);
/* Send a claim without waiting for its reply (its rid). */
uint64_t qu_claim_send(su_conn *c, const char *queue, uint32_t lease_ms,
                       uint32_t wait_ms, int bind);
/* The reply to a claim sent with qu_claim_send (timeout_ms), as qu_claim. */
tu_result qu_claim_wait(su_conn *c, uint64_t rid, int timeout_ms, qu_task *out,
                        uint32_t max);
tu_result qu_ack(su_conn *c, const uint8_t id[16], uint64_t token, const char *result);
tu_result qu_nack(su_conn *c, const uint8_t id[16], uint64_t token, const char *error,
                  int64_t retry_after_ms);
tu_result qu_extend(su_conn *c, const uint8_t id[16], uint64_t token, uint32_t lease_ms);
tu_result qu_release(su_conn *c, const uint8_t id[16], uint64_t token);
/* task: 0 and *t, or the error. */
int qu_get(su_conn *c, const uint8_t id[16], qu_task *t);
/* queue_stats of one queue: 0 and *qi (queue name not kept), or the error. */
int qu_stats(su_conn *c, const char *queue, maos_queue_info *qi);
/* dead_retry (id NULL: all) / dead_purge: r.count. */
tu_result qu_dead_retry(su_conn *c, const char *queue, const uint8_t *id);
tu_result qu_dead_purge(su_conn *c, const char *queue);
/* dead_list: n tasks into out (max). */
tu_result qu_dead_list(su_conn *c, const char *queue, qu_task *out, uint32_t max);
/* Copy a decoded task. */
void qu_copy(qu_task *out, const maos_task *t);

#endif
