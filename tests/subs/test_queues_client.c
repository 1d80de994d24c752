/*
 * tests/subs/test_queues_client.c -- the queue calls of libmaos-client
 * against a real maosd (issue 8, "Client library"):
 *
 *  - every call's round trip: enqueue (one, several, with options and a
 *    dedupe key), claim, extend, nack (the new state), release, ack,
 *    task (state and history), queue_stats, dead_list/retry/purge, and a
 *    txn of an ack and an enqueue through maos_txn_items;
 *  - bad input: an unknown task (NOT_FOUND), a wrong token (LEASE_LOST), a
 *    bad queue name (INVALID_NAME), a payload that is not msgpack
 *    (INVALID_ARG, nothing sent): typed errors, the context goes on;
 *  - maos_worker_run in a child process survives a kill -9 and restart of
 *    maosd and finishes every task (the one in hand when maosd died comes
 *    back to it, its attempt counted).
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */
#include "maos/json.h"
#include "subs_util.h"
#include "tables_util.h"

static void to_mp(const char *json, char **mp, size_t *len)
{
    MT_EQ_INT(maos_json_text_to_msgpack(json, strlen(json), mp, len, NULL, 0), 0);
}

static void test_calls(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    char *mp;
    size_t len;
    to_mp("{\"file\":\"a.c\"}", &mp, &len);
    uint8_t id[16], id2[16];
    int dup = -1;
    maos_task_opts o = {.priority = 3, .max_attempts = 2, .dedupe_key = "a.c"};
    MT_EQ_ERR(maos_enqueue(c, "lint", mp, len, &o, id, &dup), 0);
    MT_EQ_INT(dup, 0);
    MT_EQ_ERR(maos_enqueue(c, "lint", mp, len, &o, id2, &dup), 0);
    MT_EQ_INT(dup, 1);
    MT_TRUE(!memcmp(id, id2, 16));
    /* several at once */
    const void *datas[3] = {mp, mp, NULL};
    size_t lens[3] = {len, len, 0};
    uint8_t ids[48];
    int dups[3];
    MT_EQ_ERR(maos_enqueue_n(c, "lint", datas, lens, NULL, 3, ids, dups), 0);
    MT_EQ_INT(dups[0] + dups[1] + dups[2], 0);

    /* the priority 3 one first */
    const char *qs[1] = {"lint"};
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->n, 1);
    MT_TRUE(!memcmp(pg->tasks[0].id, id, 16));
    MT_EQ_U64(pg->tasks[0].attempt, 1);
    MT_EQ_MEM_STR(pg->tasks[0].state.ptr, pg->tasks[0].state.len, "leased");
    uint64_t token = pg->tasks[0].token;
    maos_task_page_free(pg);
    int64_t until = 0;
    MT_EQ_ERR(maos_extend(c, id, token, 120000, &until), 0);
    MT_TRUE(until > 0);
    char st[16];
    MT_EQ_ERR(maos_nack(c, id, token, "lint crashed", 0, st), 0);
    MT_EQ_STR(st, "ready");
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->tasks[0].attempt, 2);
    token = pg->tasks[0].token;
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_task_release(c, id, token), 0); /* the attempt is given back */
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->tasks[0].attempt, 2);
    token = pg->tasks[0].token;
    maos_task_page_free(pg);
    char *res;
    size_t rlen;
    to_mp("{\"warnings\":0}", &res, &rlen);
    MT_EQ_ERR(maos_ack(c, id, token, res, rlen), 0);
    MT_EQ_ERR(maos_task_get(c, id, &pg), 0);
    MT_EQ_MEM_STR(pg->tasks[0].state.ptr, pg->tasks[0].state.len, "done");
    MT_TRUE(pg->tasks[0].n_history >= 6); /* enqueued, claimed x3, nacked, released, acked */
    char *rj = NULL;
    MT_EQ_INT(maos_msgpack_to_json_text(pg->tasks[0].result.ptr, pg->tasks[0].result.len, &rj), 0);
    MT_EQ_STR(rj, "{\"warnings\":0}");
    free(rj);
    maos_task_page_free(pg);

    /* figures */
    maos_queue_stat *qi = NULL;
    size_t nq = 0;
    MT_EQ_ERR(maos_queue_stats(c, "lint", &qi, &nq), 0);
    MT_EQ_U64(nq, 1);
    MT_EQ_STR(qi[0].queue.ptr, "lint");
    MT_EQ_U64(qi[0].done, 1);
    MT_EQ_U64(qi[0].ready, 3);
    MT_TRUE(qi[0].oldest_ready > 0);
    free(qi);

    /* dead letters */
    uint8_t dead[16];
    maos_task_opts once = {.max_attempts = 1};
    MT_EQ_ERR(maos_enqueue(c, "fragile", NULL, 0, &once, dead, NULL), 0);
    const char *fq[1] = {"fragile"};
    MT_EQ_ERR(maos_claim(c, fq, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_ERR(maos_nack(c, dead, pg->tasks[0].token, NULL, -1, st), 0);
    MT_EQ_STR(st, "dead");
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_dead_list(c, "fragile", NULL, 0, &pg), 0);
    MT_EQ_U64(pg->n, 1);
    MT_EQ_INT(pg->has_next, 0);
    maos_task_page_free(pg);
    uint32_t cnt = 0;
    int more = 1;
    MT_EQ_ERR(maos_dead_retry(c, "fragile", NULL, &cnt, &more), 0);
    MT_EQ_U64(cnt, 1);
    MT_EQ_INT(more, 0);
    MT_EQ_ERR(maos_dead_retry(c, "fragile", dead, NULL, NULL), MAOS_ECONFLICT);
    MT_EQ_ERR(maos_claim(c, fq, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_ERR(maos_nack(c, dead, pg->tasks[0].token, "again", -1, NULL), 0);
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_dead_purge(c, "fragile", &cnt, &more), 0);
    MT_EQ_U64(cnt, 1);
    MT_EQ_ERR(maos_task_get(c, dead, &pg), MAOS_ENOT_FOUND);

    /* a txn: ack one task and enqueue its follow-up */
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    const void *next = mp;
    maos_txn_item items[2];
    memset(items, 0, sizeof items);
    items[0].kind = MAOS_ITEM_ACK;
    memcpy(items[0].task, pg->tasks[0].id, 16);
    items[0].token = pg->tasks[0].token;
    items[1].kind = MAOS_ITEM_ENQUEUE;
    items[1].queue = "follow";
    items[1].datas = &next;
    items[1].lens = &len;
    items[1].n_tasks = 1;
    uint64_t revs[2];
    MT_EQ_ERR(maos_txn_items(c, items, 2, revs), 0);
    MT_TRUE(revs[1] > revs[0]);
    /* the same again: the ack's lease is gone, nothing happens */
    MT_EQ_ERR(maos_txn_items(c, items, 2, revs), MAOS_ELEASE_LOST);
    MT_TRUE(maos_err_index(c) == 0);
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_queue_stats(c, "follow", &qi, &nq), 0);
    MT_EQ_U64(qi[0].ready, 1);
    free(qi);
    free(mp);
    free(res);
    maos_free(c);
}

static void test_bad_input(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(0);
    uint8_t nobody[16];
    memset(nobody, 7, 16);
    MT_EQ_ERR(maos_ack(c, nobody, 3, NULL, 0), MAOS_ENOT_FOUND);
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_task_get(c, nobody, &pg), MAOS_ENOT_FOUND);
    uint8_t id[16];
    MT_EQ_ERR(maos_enqueue(c, "q1", NULL, 0, NULL, id, NULL), 0);
    const char *qs[1] = {"q1"};
    MT_EQ_ERR(maos_claim(c, qs, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_ERR(maos_ack(c, id, pg->tasks[0].token + 7, NULL, 0), MAOS_ELEASE_LOST);
    MT_EQ_ERR(maos_extend(c, id, pg->tasks[0].token + 7, 1000, NULL), MAOS_ELEASE_LOST);
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_enqueue(c, "no such/queue", NULL, 0, NULL, NULL, NULL), MAOS_EINVALID_NAME);
    const char *bad[1] = {"x y"};
    MT_EQ_ERR(maos_claim(c, bad, 1, 1000, 0, 1, 0, &pg), MAOS_EINVALID_NAME);
    MT_EQ_ERR(maos_enqueue(c, "q1", "\xc1", 1, NULL, NULL, NULL), MAOS_EINVALID_ARG);
    maos_task_opts huge = {.lease_ms = MAOS_LEASE_MS_MAX + 1};
    MT_EQ_ERR(maos_enqueue(c, "q1", NULL, 0, &huge, NULL, NULL), MAOS_EBAD_REQUEST);
    /* the context goes on */
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
}

/* ---- a claim from an event loop ------------------------------------------------------ */

static void on_claim(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    maos_delivery *got = user;
    if (d->kind == MAOS_DELIVERY_TASKS && d->n_tasks == 1) {
        got->sub = d->sub;
        got->n_tasks = 1;
        got->tasks = malloc(sizeof(maos_task_info));
        *got->tasks = d->tasks[0]; /* slices die with d: only id/token kept */
    }
}

static void test_claim_start(void **state)
{
    (void)state;
    maos_ctx *w = tu_conn(0), *p = tu_conn(0);
    const char *qs[1] = {"loop"};
    uint64_t rid = 0;
    MT_EQ_ERR(maos_claim_start(w, qs, 1, 60000, 60000, 1, 0, &rid), 0);
    MT_TRUE(rid > 0);
    /* synchronous calls go on while the claim waits */
    MT_EQ_ERR(maos_ping(w), 0);
    uint8_t id[16];
    MT_EQ_ERR(maos_enqueue(p, "loop", NULL, 0, NULL, id, NULL), 0);
    /* the answer comes through maos_process (the loop's readable event;
     * here: poll the fd until it arrives) */
    maos_push_handlers h = {.on_events = on_claim};
    maos_delivery got;
    memset(&got, 0, sizeof got);
    int64_t dl = mt_now_us() + 30000000;
    while (!got.n_tasks) {
        MT_TRUE(mt_now_us() < dl);
        struct pollfd pf = {.fd = maos_fd(w), .events = POLLIN};
        poll(&pf, 1, 100);
        MT_TRUE(maos_process(w, &h, &got) >= 0);
    }
    MT_EQ_U64(got.sub, rid);
    MT_TRUE(!memcmp(got.tasks[0].id, id, 16));
    MT_EQ_ERR(maos_ack(w, id, got.tasks[0].token, NULL, 0), 0);
    free(got.tasks);
    /* and through maos_next: a wait that runs out answers with no task */
    MT_EQ_ERR(maos_claim_start(w, qs, 1, 60000, 50, 1, 0, &rid), 0);
    maos_delivery *d = NULL;
    MT_EQ_ERR(maos_next(w, 30000, &d), 0);
    MT_TRUE(d->kind == MAOS_DELIVERY_TASKS);
    MT_EQ_U64(d->sub, rid);
    MT_EQ_U64(d->n_tasks, 0);
    MT_EQ_INT(d->code, 0);
    maos_delivery_free(d);
    maos_free(w);
    maos_free(p);
}

/* ---- maos_worker_run across a restart of maosd -------------------------------------- */

#define WORKER_TASKS 6

static int work(maos_ctx *c, maos_worker_task *t, void *arg)
{
    (void)c;
    (void)t;
    int fd = *(int *)arg;
    return write(fd, "w", 1) == 1 ? 0 : -1; /* "I am working on one" */
}

static volatile int worker_stop;

static void on_term(int sig)
{
    (void)sig;
    worker_stop = 1;
}

static void test_worker_restart(void **state)
{
    (void)state;
    maos_ctx *c = tu_conn(1);
    for (int i = 0; i < WORKER_TASKS / 2; i++)
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
        /* runs until told to stop: an ack whose reply died with maosd
         * counts as failed here although the task is done */
        maos_worker_opts o = {.lease_ms = 60000, .wait_ms = 200, .stop = &worker_stop};
        int rc = maos_worker_run(w, qs, 1, work, &pfd[1], &o);
        maos_free(w);
        _exit(rc == 0 ? 0 : 1);
    }
    /* the first half is worked on */
    char buf[8];
    for (int seen = 0; seen < WORKER_TASKS / 2;)
        seen += (int)read(pfd[0], buf, 1);
    maos_free(c);
    mt_daemon_kill9(tu_daemon);
    mt_daemon_up(tu_daemon);
    c = tu_conn(1);
    for (int i = 0; i < WORKER_TASKS / 2; i++)
        MT_EQ_ERR(maos_enqueue(c, "jobs", NULL, 0, NULL, NULL, NULL), 0);
    /* every task is done, by the one worker that lived through it */
    maos_queue_stat *qi = NULL;
    size_t n = 0;
    int64_t dl = mt_now_us() + 120000000;
    for (;;) {
        MT_EQ_ERR(maos_queue_stats(c, "jobs", &qi, &n), 0);
        int all = qi[0].done == WORKER_TASKS;
        free(qi);
        if (all)
            break;
        MT_TRUE(mt_now_us() < dl);
        /* until the worker takes another (or 100 ms, to look again) */
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        char b;
        if (poll(&pf, 1, 100) == 1)
            (void)!read(pfd[0], &b, 1);
    }
    MT_EQ_INT(kill(kid, SIGTERM), 0);
    MT_EQ_INT(mt_wait(kid, 60000), 0);
    MT_EQ_ERR(maos_queue_stats(c, "jobs", &qi, &n), 0);
    MT_EQ_U64(qi[0].done, WORKER_TASKS);
    MT_EQ_U64(qi[0].ready + qi[0].leased, 0);
    free(qi);
    close(pfd[0]);
    close(pfd[1]);
    maos_free(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_claim_start, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_worker_restart, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
