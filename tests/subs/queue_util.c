/*
 * tests/subs/queue_util.c -- queue requests for the daemon-level queue
 * tests (queue_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_util.h"

void qu_copy(qu_task *out, const maos_task *t)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->id, t->id, 16);
    out->token = t->token;
    out->attempt = t->attempt;
    out->priority = t->priority;
    out->lease_until = t->lease_until;
    out->not_before = t->not_before;
    out->enqueued = t->enqueued;
    out->n_history = t->n_history;
    snprintf(out->state, sizeof out->state, "%.*s", (int)t->state.len, t->state.ptr);
    snprintf(out->last_error, sizeof out->last_error, "%.*s", (int)t->last_error.len,
             t->last_error.ptr);
    maos_mpr r;
    maos_slice s;
    maos_mpr_init(&r, t->data.ptr, t->data.len);
    if (maos_mpr_str(&r, &s) == 0)
        snprintf(out->data, sizeof out->data, "%.*s", (int)s.len, s.ptr);
}

tu_result qu_enqueue(su_conn *c, const char *queue, const char *data,
                     const qu_opts *o, uint8_t id[16], int *dup)
{
    tu_pkb d, b;
    tu_pkb_init(&d);
    tu_pk_str(&d.pk, data);
    maos_task_in t = {.data = {d.sb.data, (uint32_t)d.sb.size}, .delay_ms = -1};
    if (o) {
        t.priority = o->priority;
        t.delay_ms = o->delay_ms ? o->delay_ms : -1;
        t.max_attempts = o->max_attempts;
        t.lease_ms = o->lease_ms;
        t.backoff_ms = o->backoff_ms;
        if (o->dedupe_key)
            t.dedupe_key = tu_sl(o->dedupe_key);
        if (o->ordering_key)
            t.ordering_key = tu_sl(o->ordering_key);
    }
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_enqueue(&b.pk, rid, tu_sl(queue), &t, 1), 0);
    msgpack_sbuffer_destroy(&d.sb);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    if (code == 0) {
        MT_EQ_INT(rep.task_ids.len, 16);
        MT_EQ_INT(rep.n_duplicates, 1);
        if (id)
            memcpy(id, rep.task_ids.ptr, 16);
        if (dup) {
            maos_mpr r;
            maos_mpr_init(&r, rep.duplicates.ptr, rep.duplicates.len);
            uint32_t n;
            MT_EQ_INT(maos_mpr_array(&r, &n), 0);
            MT_EQ_INT(maos_mpr_bool(&r, dup), 0);
        }
    }
    tu_result res;
    tu_take(&res, code, &rep, frame);
    return res;
}

uint64_t qu_claim_send(su_conn *c, const char *queue, uint32_t lease_ms,
                       uint32_t wait_ms, int bind)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    maos_slice q = tu_sl(queue);
    MT_EQ_INT(maos_enc_claim(&b.pk, rid, &q, 1, lease_ms, wait_ms, 1, bind), 0);
    su_send_sb(c, &b.sb);
    msgpack_sbuffer_destroy(&b.sb);
    return rid;
}

static tu_result take_tasks(int code, maos_reply *rep, char *frame, qu_task *out,
                            uint32_t max)
{
    uint32_t n = 0;
    if (code == 0) {
        maos_mpr r;
        maos_mpr_init(&r, rep->items.ptr, rep->items.len);
        uint32_t cnt;
        MT_EQ_INT(maos_mpr_array(&r, &cnt), 0);
        MT_TRUE(cnt <= max);
        for (; n < cnt; n++) {
            maos_task t;
            MT_EQ_INT(maos_task_next(&r, &t), 0);
            qu_copy(&out[n], &t);
        }
    }
    tu_result res;
    tu_take(&res, code, rep, frame);
    res.count = n;
    return res;
}

tu_result qu_claim_wait(su_conn *c, uint64_t rid, int timeout_ms, qu_task *out,
                        uint32_t max)
{
    maos_reply rep;
    memset(&rep, 0, sizeof rep);
    char *frame = su_wait_reply(c, rid, &rep, timeout_ms);
    int code = rep.ok ? 0 : rep.code;
    return take_tasks(code, &rep, frame, out, max);
}

tu_result qu_claim(su_conn *c, const char *queue, uint32_t lease_ms, uint32_t wait_ms,
                   uint32_t max, int bind, qu_task *out)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    maos_slice q = tu_sl(queue);
    MT_EQ_INT(maos_enc_claim(&b.pk, rid, &q, 1, lease_ms, wait_ms, max, bind), 0);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    return take_tasks(code, &rep, frame, out, max);
}

tu_result qu_ack(su_conn *c, const uint8_t id[16], uint64_t token, const char *result)
{
    tu_pkb d, b;
    tu_pkb_init(&d);
    if (result)
        tu_pk_str(&d.pk, result);
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_ack(&b.pk, rid, id, token,
                           (maos_slice){d.sb.data, (uint32_t)d.sb.size}), 0);
    msgpack_sbuffer_destroy(&d.sb);
    return tu_call_sb(c, &b, rid);
}

tu_result qu_nack(su_conn *c, const uint8_t id[16], uint64_t token, const char *error,
                  int64_t retry_after_ms)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_nack(&b.pk, rid, id, token, error ? tu_sl(error) : (maos_slice){0},
                            retry_after_ms), 0);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    tu_result r;
    char st[16];
    snprintf(st, sizeof st, "%.*s", (int)rep.state.len, rep.state.ptr);
    tu_take(&r, code, &rep, frame);
    if (code == 0) /* the new state in msg */
        snprintf(r.msg, sizeof r.msg, "%s", st);
    return r;
}

tu_result qu_extend(su_conn *c, const uint8_t id[16], uint64_t token, uint32_t lease_ms)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_extend(&b.pk, rid, id, token, lease_ms), 0);
    return tu_call_sb(c, &b, rid);
}

tu_result qu_release(su_conn *c, const uint8_t id[16], uint64_t token)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_task_release(&b.pk, rid, id, token), 0);
    return tu_call_sb(c, &b, rid);
}

int qu_get(su_conn *c, const uint8_t id[16], qu_task *t)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_task_get(&b.pk, rid, id), 0);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    if (code == 0) {
        maos_task d;
        MT_EQ_INT(maos_task_decode(rep.task.ptr, rep.task.len, &d), 0);
        qu_copy(t, &d);
    }
    free(frame);
    return code;
}

int qu_stats(su_conn *c, const char *queue, maos_queue_info *qi)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_queue_stats(&b.pk, rid, tu_sl(queue)), 0);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    if (code == 0) {
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        MT_EQ_INT(maos_mpr_array(&r, &n), 0);
        MT_EQ_INT(n, 1);
        MT_EQ_INT(maos_queue_info_next(&r, qi), 0);
        qi->queue = (maos_slice){NULL, 0};
    }
    free(frame);
    return code;
}

tu_result qu_dead_retry(su_conn *c, const char *queue, const uint8_t *id)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_dead_retry(&b.pk, rid, tu_sl(queue), id), 0);
    return tu_call_sb(c, &b, rid);
}

tu_result qu_dead_purge(su_conn *c, const char *queue)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_dead_purge(&b.pk, rid, tu_sl(queue)), 0);
    return tu_call_sb(c, &b, rid);
}

tu_result qu_dead_list(su_conn *c, const char *queue, qu_task *out, uint32_t max)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_dead_list(&b.pk, rid, tu_sl(queue), NULL, max), 0);
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&b.sb);
    return take_tasks(code, &rep, frame, out, max);
}
