/*
 * tests/subs/test_queues_worker.c -- maos_worker_run against a real maosd
 * (issue 8, "A worker helper ... extends the lease while the handler runs
 * ... and survives a daemon restart"):
 *
 *  - the keeper: a handler that runs for more than twice its lease still
 *    holds the task (same token, state leased, looked at all along) and
 *    its ack is taken, attempt 1;  with opts.no_keeper the same handler
 *    loses the task to the expiry and its ack is skipped (opts.lost);
 *  - maos_worker_lease_lost: a handler whose task went back (here it
 *    releases it itself) hears it from the keeper, and the ack is skipped;
 *  - a graceful restart of maosd (SIGTERM, start again): maosd refuses new
 *    writes with SHUTTING_DOWN while it stops, and the worker waits and
 *    goes on after the reconnect (kill -9 is test_queues_client's);
 *  - bad input: a bad queue name ends maos_worker_run with INVALID_NAME;
 *  - the JSON helpers: maos_enqueue_json (payload and meta as JSON text,
 *    bad JSON refused before anything is sent) and maos_task_to_json (the
 *    one JSON form of a task, fields in order), and task meta through
 *    maos_task_opts (a meta that is no map: INVALID_ARG, nothing sent);
 *  - maos_txn_items_ex: an extend, a nack and an enqueue of two in one txn
 *    give their lease_until, state and task ids; a failing item changes
 *    nothing and names its index;
 *  - maos_claim_start across a kill -9 of maosd: the claim in flight is
 *    answered MAOS_ECLOSED, and a new one is served after the reconnect;
 *  - out-of-range options through the library (negative delay: refused
 *    before sending; delays, attempts, leases, waits, claim sizes, nack
 *    beyond the limits: BAD_REQUEST; long queue names, nack errors too
 *    long or not UTF-8: INVALID_NAME): typed errors, the task untouched,
 *    the daemon serves on.
 *
 * Time: the keeper tests wait for the clock to pass a lease (1 s): that is
 * the condition under test, not a synchronisation.  Each poll of the task
 * is 20 ms apart so the handler does not flood the daemon.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */
#include "maos/json.h"
#include "subs_util.h"
#include "tables_util.h"

#define LEASE_MS 1000

/* The daemon's times (lease_until) are wall-clock microseconds. */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct hold {
    volatile int stop;
    int64_t run_until;    /* µs: the handler returns after this */
    int still_ours;       /* every look found it leased with our token */
    int looks;
    int release_it;       /* release the task, wait for lease_lost */
    int heard_lost;
};

/* Runs until the clock passes the claim's lease_until + 2 leases (or,
 * without a keeper, until the task is seen given back). */
static int hold_task(maos_ctx *c, maos_worker_task *t, void *arg)
{
    struct hold *h = arg;
    h->stop = 1; /* one task per run */
    h->still_ours = 1;
    h->run_until = t->task->lease_until + 2LL * LEASE_MS * 1000;
    if (h->release_it) {
        MT_EQ_ERR(maos_task_release(c, t->task->id, t->task->token), 0);
        int64_t dl = mt_now_us() + 30000000;
        while (!maos_worker_lease_lost(t)) {
            MT_TRUE(mt_now_us() < dl);
            poll(NULL, 0, 20);
        }
        h->heard_lost = 1;
        return 0;
    }
    while (wall_us() < h->run_until) {
        maos_task_page *pg = NULL;
        MT_EQ_ERR(maos_task_get(c, t->task->id, &pg), 0);
        h->looks++;
        if (pg->tasks[0].token != t->task->token ||
            pg->tasks[0].state.len != 6 || memcmp(pg->tasks[0].state.ptr, "leased", 6)) {
            h->still_ours = 0;
            maos_task_page_free(pg);
            break; /* it went back: no use waiting */
        }
        maos_task_page_free(pg);
        poll(NULL, 0, 20);
    }
    return 0;
}

static void run_hold(int no_keeper, int release_it, struct hold *h, maos_worker_opts *o,
                     uint8_t id[16])
{
    maos_ctx *c = tu_conn(0);
    MT_EQ_ERR(maos_enqueue(c, "long", NULL, 0, NULL, id, NULL), 0);
    const char *qs[1] = {"long"};
    memset(h, 0, sizeof *h);
    h->release_it = release_it;
    memset(o, 0, sizeof *o);
    o->lease_ms = LEASE_MS;
    o->wait_ms = 200;
    o->stop = &h->stop;
    o->no_keeper = no_keeper;
    MT_EQ_ERR(maos_worker_run(c, qs, 1, hold_task, h, o), 0);
    maos_free(c);
}

static void test_keeper_holds_lease(void **state)
{
    (void)state;
    struct hold h;
    maos_worker_opts o;
    uint8_t id[16];
    run_hold(0, 0, &h, &o, id);
    MT_EQ_INT(o.keeper_failed, 0);
    MT_TRUE(h.looks > 1);
    MT_EQ_INT(h.still_ours, 1);
    MT_EQ_U64(o.done, 1);
    MT_EQ_U64(o.lost, 0);
    MT_TRUE(o.extends >= 2); /* 2 leases long, one every third of one */
    maos_ctx *c = tu_conn(0);
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_task_get(c, id, &pg), 0);
    MT_EQ_MEM_STR(pg->tasks[0].state.ptr, pg->tasks[0].state.len, "done");
    MT_EQ_U64(pg->tasks[0].attempt, 1);
    maos_task_page_free(pg);
    maos_free(c);
}

static void test_no_keeper_loses_lease(void **state)
{
    (void)state;
    struct hold h;
    maos_worker_opts o;
    uint8_t id[16];
    run_hold(1, 0, &h, &o, id);
    MT_EQ_INT(h.still_ours, 0); /* the lease ran out under the handler */
    MT_EQ_U64(o.done, 0);
    MT_EQ_U64(o.lost, 1);
    MT_EQ_U64(o.extends, 0);
    maos_ctx *c = tu_conn(0);
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_task_get(c, id, &pg), 0);
    MT_TRUE(pg->tasks[0].state.len != 4 || memcmp(pg->tasks[0].state.ptr, "done", 4));
    maos_task_page_free(pg);
    maos_free(c);
}

static void test_lease_lost_told(void **state)
{
    (void)state;
    struct hold h;
    maos_worker_opts o;
    uint8_t id[16];
    run_hold(0, 1, &h, &o, id);
    MT_EQ_INT(h.heard_lost, 1);
    MT_EQ_U64(o.done, 0);
    MT_EQ_U64(o.lost, 1);
    maos_ctx *c = tu_conn(0);
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_task_get(c, id, &pg), 0);
    MT_EQ_MEM_STR(pg->tasks[0].state.ptr, pg->tasks[0].state.len, "ready");
    maos_task_page_free(pg);
    maos_free(c);
}

/* ---- a graceful restart of maosd ------------------------------------------------------- */

#define RESTART_TASKS 6

static int tick(maos_ctx *c, maos_worker_task *t, void *arg)
{
    (void)c;
    (void)t;
    return write(*(int *)arg, "w", 1) == 1 ? 0 : -1;
}

static volatile int worker_stop;

static void on_term(int sig)
{
    (void)sig;
    worker_stop = 1;
}

static uint64_t done_of(maos_ctx *c, const char *queue)
{
    maos_queue_stat *qi = NULL;
    size_t n = 0;
    MT_EQ_ERR(maos_queue_stats(c, queue, &qi, &n), 0);
    uint64_t d = qi[0].done;
    free(qi);
    return d;
}

static void test_worker_graceful_restart(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(1);
    for (int i = 0; i < RESTART_TASKS / 2; i++)
        MT_EQ_ERR(maos_enqueue(c, "jobs", NULL, 0, NULL, NULL, NULL), 0);
    int pfd[2];
    MT_EQ_INT(pipe(pfd), 0);
    pid_t kid = su_fork("worker");
    if (kid == 0) {
        maos_ctx *w = maos_connect_timeout(tu_daemon->sock, 30000);
        SU_TRUE(w && !w->err);
        maos_set_reconnect(w, 1, 60000);
        signal(SIGTERM, on_term);
        const char *qs[1] = {"jobs"};
        maos_worker_opts o = {.lease_ms = 60000, .wait_ms = 200, .stop = &worker_stop};
        int rc = maos_worker_run(w, qs, 1, tick, &pfd[1], &o);
        if (rc)
            fprintf(stderr, "worker: %s: %s\n", maos_err_name(rc), w->errstr);
        maos_free(w);
        _exit(rc == 0 ? 0 : 1);
    }
    int64_t dl = mt_now_us() + 60000000;
    while (done_of(c, "jobs") < RESTART_TASKS / 2) {
        MT_TRUE(mt_now_us() < dl);
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        char b;
        if (poll(&pf, 1, 100) == 1)
            (void)!read(pfd[0], &b, 1);
    }
    maos_free(c);
    /* SIGTERM (exit 0 asserted) and start again: the worker's claim in
     * flight meets SHUTTING_DOWN or a closed connection */
    mt_daemon_restart(tu_daemon);
    MT_TRUE(!mt_exited(kid));
    c = tu_conn(1);
    for (int i = 0; i < RESTART_TASKS / 2; i++)
        MT_EQ_ERR(maos_enqueue(c, "jobs", NULL, 0, NULL, NULL, NULL), 0);
    while (done_of(c, "jobs") < RESTART_TASKS) {
        MT_TRUE(mt_now_us() < dl);
        MT_TRUE(!mt_exited(kid));
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        char b;
        if (poll(&pf, 1, 100) == 1)
            (void)!read(pfd[0], &b, 1);
    }
    MT_EQ_INT(kill(kid, SIGTERM), 0);
    MT_EQ_INT(mt_wait(kid, 60000), 0);
    close(pfd[0]);
    close(pfd[1]);
    maos_free(c);
}

static int never(maos_ctx *c, maos_worker_task *t, void *arg)
{
    (void)c;
    (void)t;
    (void)arg;
    return 0;
}

static void test_worker_bad_queue(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    const char *qs[1] = {"no such queue"};
    maos_worker_opts o = {.wait_ms = 100};
    MT_EQ_ERR(maos_worker_run(c, qs, 1, never, NULL, &o), MAOS_EINVALID_NAME);
    MT_EQ_ERR(maos_worker_run(c, qs, 1, NULL, NULL, &o), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_ping(c), 0); /* the context goes on */
    maos_free(c);
}

/* ---- JSON helpers and task meta ------------------------------------------------------ */

static void test_json_helpers(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    uint8_t id[16];
    int dup = -1;
    maos_task_opts o = {.priority = 2, .dedupe_key = "k1"};
    MT_EQ_ERR(maos_enqueue_json(c, "j", "{\"a\":[1,2]}", "{\"session\":\"s1\"}", &o, id,
                                &dup),
              0);
    MT_EQ_INT(dup, 0);
    const char *qs[1] = {"j"};
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->n, 1);
    json_t *tj = NULL;
    MT_EQ_ERR(maos_task_to_json(&pg->tasks[0], &tj), 0);
    char *text = NULL, idtext[37], want[256];
    MT_EQ_ERR(maos_json_dump(tj, &text), 0);
    maos_uuid_format(id, idtext);
    snprintf(want, sizeof want,
             "{\"id\":\"%s\",\"queue\":\"j\",\"state\":\"leased\",\"attempt\":1,"
             "\"max_attempts\":5,\"priority\":2,\"data\":{\"a\":[1,2]},"
             "\"meta\":{\"session\":\"s1\"},\"enqueued\":\"20",
             idtext);
    MT_TRUE(!strncmp(text, want, strlen(want)));
    MT_TRUE(strstr(text, "\"not_before\":null,\"dedupe_key\":\"k1\",\"ordering_key\":null,"
                         "\"last_error\":null,\"result\":null,\"token\":") != NULL);
    MT_TRUE(strstr(text, "\"lease_until\":\"20") != NULL);
    json_t *h = json_object_get(tj, "history");
    MT_EQ_U64(json_array_size(h), 2); /* enqueued, claimed */
    MT_EQ_U64((uint64_t)json_integer_value(json_object_get(tj, "token")),
              (uint64_t)json_integer_value(json_array_get(h, 1))); /* token: claimed's position */
    free(text);
    json_decref(tj);
    maos_task_page_free(pg);

    /* bad JSON: refused before anything is sent; the context goes on */
    MT_EQ_ERR(maos_enqueue_json(c, "j", "{bad", NULL, NULL, id, NULL), MAOS_EINVALID_ARG);
    MT_TRUE(strstr(c->errstr, "data") != NULL);
    MT_EQ_ERR(maos_enqueue_json(c, "j", "1", "[1]", NULL, id, NULL), MAOS_EINVALID_ARG);
    MT_TRUE(strstr(c->errstr, "meta") != NULL);
    maos_task_opts nomap = {.meta = "\x01", .meta_len = 1};
    MT_EQ_ERR(maos_enqueue(c, "j", NULL, 0, &nomap, id, NULL), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_enqueue_json(c, "bad queue", "1", NULL, NULL, id, NULL), MAOS_EINVALID_NAME);
    maos_queue_stat *qi = NULL;
    size_t n = 0;
    MT_EQ_ERR(maos_queue_stats(c, "j", &qi, &n), 0);
    MT_EQ_U64(qi[0].ready + qi[0].leased, 1); /* nothing else was enqueued */
    free(qi);
    maos_free(c);
}

/* ---- txn results of queue items ------------------------------------------------------- */

static void test_txn_results(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    uint8_t a[16], b[16];
    MT_EQ_ERR(maos_enqueue(c, "t", NULL, 0, NULL, a, NULL), 0);
    MT_EQ_ERR(maos_enqueue(c, "t", NULL, 0, NULL, b, NULL), 0);
    const char *qs[1] = {"t"};
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 2, 0, &pg), 0);
    MT_EQ_U64(pg->n, 2);
    maos_task_opts follow[2] = {{.priority = 0}, {.priority = 1}};
    uint8_t ids[2][16];
    maos_txn_item it[3];
    memset(it, 0, sizeof it);
    it[0].kind = MAOS_ITEM_EXTEND;
    memcpy(it[0].task, pg->tasks[0].id, 16);
    it[0].token = pg->tasks[0].token;
    it[0].lease_ms = 90000;
    it[1].kind = MAOS_ITEM_NACK;
    memcpy(it[1].task, pg->tasks[1].id, 16);
    it[1].token = pg->tasks[1].token;
    it[1].error = "no";
    it[1].retry_after_ms = -1;
    it[2].kind = MAOS_ITEM_ENQUEUE;
    it[2].queue = "f";
    it[2].opts = follow;
    it[2].n_tasks = 2;
    it[2].ids = ids;
    maos_item_result res[3];
    memset(res, 0, sizeof res);
    MT_EQ_ERR(maos_txn_items_ex(c, it, 3, res), 0);
    MT_TRUE(res[0].lease_until > pg->tasks[0].lease_until);
    MT_EQ_STR(res[1].state, "ready");
    MT_TRUE(res[1].revision > 0);
    MT_EQ_U64(res[2].n_ids, 2);
    MT_TRUE(res[2].revision > res[1].revision);
    for (int i = 0; i < 2; i++) {
        maos_task_page *tp = NULL;
        MT_EQ_ERR(maos_task_get(c, ids[i], &tp), 0);
        MT_EQ_MEM_STR(tp->tasks[0].queue.ptr, tp->tasks[0].queue.len, "f");
        MT_EQ_U64((uint64_t)tp->tasks[0].priority, (uint64_t)i);
        maos_task_page_free(tp);
    }
    /* a failing item (the nacked task's lease is gone): nothing written,
     * the results untouched */
    res[0].lease_until = -5;
    MT_EQ_ERR(maos_txn_items_ex(c, it, 3, res), MAOS_ELEASE_LOST);
    MT_EQ_INT(maos_err_index(c), 1);
    MT_TRUE(res[0].lease_until == -5);
    maos_queue_stat *qi = NULL;
    size_t n = 0;
    MT_EQ_ERR(maos_queue_stats(c, "f", &qi, &n), 0);
    MT_EQ_U64(qi[0].ready, 2);
    free(qi);
    maos_task_page_free(pg);
    maos_free(c);
}

/* ---- a claim from an event loop across a restart of maosd ----------------------------- */

static void test_claim_start_restart(void **state)
{
    (void)state;
    maos_ctx *w = tu_conn(1);
    const char *qs[1] = {"loop"};
    uint64_t rid = 0;
    MT_EQ_ERR(maos_claim_start(w, qs, 1, 60000, 60000, 1, 0, &rid), 0);
    mt_daemon_kill9(tu_daemon);
    mt_daemon_up(tu_daemon);
    /* the claim in flight is answered: no task, MAOS_ECLOSED (claim again) */
    maos_delivery *d = NULL;
    MT_EQ_ERR(maos_next(w, 30000, &d), 0);
    MT_TRUE(d->kind == MAOS_DELIVERY_TASKS);
    MT_EQ_U64(d->sub, rid);
    MT_EQ_INT(d->code, MAOS_ECLOSED);
    MT_EQ_U64(d->n_tasks, 0);
    maos_delivery_free(d);
    /* claimed again (the call reconnects), it is served by the enqueue */
    MT_EQ_ERR(maos_claim_start(w, qs, 1, 60000, 60000, 1, 0, &rid), 0);
    maos_ctx *p = tu_conn(0);
    uint8_t id[16];
    MT_EQ_ERR(maos_enqueue(p, "loop", NULL, 0, NULL, id, NULL), 0);
    MT_EQ_ERR(maos_next(w, 30000, &d), 0);
    MT_TRUE(d->kind == MAOS_DELIVERY_TASKS);
    MT_EQ_INT(d->code, 0);
    MT_EQ_U64(d->n_tasks, 1);
    MT_TRUE(!memcmp(d->tasks[0].id, id, 16));
    MT_EQ_ERR(maos_ack(w, id, d->tasks[0].token, NULL, 0), 0);
    maos_delivery_free(d);
    maos_free(p);
    maos_free(w);
}

/* ---- out-of-range options through the library: typed errors, nothing breaks ----------- */

static void test_bad_options(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    uint8_t id[16];
    maos_task_opts neg = {.delay_ms = -1};
    MT_EQ_ERR(maos_enqueue(c, "b", NULL, 0, &neg, id, NULL), MAOS_EINVALID_ARG);
    maos_task_opts far = {.delay_ms = MAOS_DELAY_MS_MAX + 1};
    MT_EQ_ERR(maos_enqueue(c, "b", NULL, 0, &far, id, NULL), MAOS_EBAD_REQUEST);
    maos_task_opts both = {.delay_ms = 10, .not_before = 1};
    MT_EQ_ERR(maos_enqueue(c, "b", NULL, 0, &both, id, NULL), MAOS_EBAD_REQUEST);
    maos_task_opts tries = {.max_attempts = MAOS_ATTEMPTS_MAX + 1};
    MT_EQ_ERR(maos_enqueue(c, "b", NULL, 0, &tries, id, NULL), MAOS_EBAD_REQUEST);
    char longq[MAOS_QUEUE_NAME_MAX + 2];
    memset(longq, 'q', sizeof longq - 1);
    longq[sizeof longq - 1] = 0;
    MT_EQ_ERR(maos_enqueue(c, longq, NULL, 0, NULL, id, NULL), MAOS_EINVALID_NAME);
    MT_EQ_ERR(maos_enqueue(c, "b", NULL, 0, NULL, id, NULL), 0);
    const char *qs[1] = {"b"};
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_claim(c, qs, 1, MAOS_LEASE_MS_MAX + 1, 0, 1, 0, &pg), MAOS_EBAD_REQUEST);
    MT_EQ_ERR(maos_claim(c, qs, 1, 0, MAOS_WAIT_MS_MAX + 1, 1, 0, &pg), MAOS_EBAD_REQUEST);
    MT_EQ_ERR(maos_claim(c, qs, 1, 0, 0, MAOS_CLAIM_MAX + 1, 0, &pg), MAOS_EBAD_REQUEST);
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->n, 1);
    uint64_t token = pg->tasks[0].token;
    maos_task_page_free(pg);
    char *big = malloc(MAOS_TASK_ERROR_MAX + 2);
    memset(big, 'e', MAOS_TASK_ERROR_MAX + 1);
    big[MAOS_TASK_ERROR_MAX + 1] = 0;
    /* text fields share the names' rule and code (proto dec_text) */
    MT_EQ_ERR(maos_nack(c, id, token, big, -1, NULL), MAOS_EINVALID_NAME);
    MT_TRUE(strstr(c->errstr, "error must be 1..4096 bytes") != NULL);
    free(big);
    MT_EQ_ERR(maos_nack(c, id, token, "bad \xff utf-8", -1, NULL), MAOS_EINVALID_NAME);
    MT_EQ_ERR(maos_nack(c, id, token, "fine", MAOS_DELAY_MS_MAX + 1, NULL), MAOS_EBAD_REQUEST);
    MT_EQ_ERR(maos_extend(c, id, token, MAOS_LEASE_MS_MAX + 1, NULL), MAOS_EBAD_REQUEST);
    MT_EQ_ERR(maos_ack(c, id, token, "\xc1", 1), MAOS_EINVALID_ARG); /* not msgpack */
    /* none of it changed the task: still ours, attempt 1 */
    MT_EQ_ERR(maos_task_get(c, id, &pg), 0);
    MT_EQ_MEM_STR(pg->tasks[0].state.ptr, pg->tasks[0].state.len, "leased");
    MT_EQ_U64(pg->tasks[0].attempt, 1);
    MT_EQ_U64(pg->tasks[0].token, token);
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_ack(c, id, token, NULL, 0), 0);
    /* dead letters of a queue never used */
    uint32_t cnt = 7;
    int more = 1;
    MT_EQ_ERR(maos_dead_retry(c, "never-used", NULL, &cnt, &more), 0);
    MT_EQ_U64(cnt, 0);
    MT_EQ_INT(more, 0);
    maos_queue_stat *qi = NULL;
    size_t n = 0;
    MT_EQ_ERR(maos_queue_stats(c, "never-used", &qi, &n), MAOS_ENOT_FOUND);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keeper_holds_lease, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_no_keeper_loses_lease, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_lease_lost_told, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_worker_graceful_restart, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_worker_bad_queue, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_json_helpers, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_txn_results, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_claim_start_restart, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
