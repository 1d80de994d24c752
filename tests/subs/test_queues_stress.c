/*
 * tests/subs/test_queues_stress.c -- queues under many processes, against a
 * real maosd (issue 8, "Tests"):
 *
 *  - exactly once: 8 worker processes race for 5,000 tasks; every task is
 *    acked exactly once, and the event history of the queue never shows a
 *    task held under two leases at once (each `claimed` is followed by the
 *    end of that lease before the next `claimed`); none is lost;
 *  - worker death: a registered worker SIGKILLed while it holds a (bound)
 *    claim: a waiting worker has the task at once, the attempt counted;
 *    20 times.  An unbound claim of a killed worker comes back when its
 *    lease runs out;
 *  - a poison task that kills every worker that takes it ends in the dead
 *    letters after max_attempts deaths; retry brings it back;
 *  - kill -9 of maosd with tasks in every state and timers pending, 5
 *    rounds: every acknowledged transition is there after the restart, the
 *    queue's counts match its tasks, due timers fire.
 * Latencies are printed as figures, never asserted.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "queue_util.h"
#include "subs_util.h"
#include "tables_util.h"

#define RACE_TASKS 5000
#define RACE_WORKERS 8
#define DEATH_REPS 20
#define CRASH_ROUNDS 5

/* ---- exactly once -------------------------------------------------------------------- */

static void race_worker(int n)
{
    su_conn *c = su_open(tu_daemon->sock);
    char path[512];
    snprintf(path, sizeof path, "%s/acked-%d.bin", mt_test_dir(), n);
    FILE *f = fopen(path, "wb");
    SU_TRUE(f != NULL);
    for (;;) {
        qu_task t[4];
        tu_result r = qu_claim(c, "race", 120000, 300, 4, 0, t);
        SU_TRUE(r.code == 0);
        if (r.count == 0) {
            maos_queue_info qi;
            SU_TRUE(qu_stats(c, "race", &qi) == 0);
            if (qi.done == RACE_TASKS)
                break;
            continue;
        }
        for (uint64_t i = 0; i < r.count; i++) {
            SU_TRUE(qu_ack(c, t[i].id, t[i].token, NULL).code == 0);
            SU_TRUE(fwrite(t[i].id, 16, 1, f) == 1);
        }
    }
    SU_TRUE(fclose(f) == 0);
    su_close(c);
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Read the whole stream queue-NAME: for each task, the events must run
 * enqueued (claimed end)* with end one of acked, nacked, expired,
 * released; returns the number of acked. */
static uint64_t check_history(su_conn *c, const char *queue, uint64_t want_tasks)
{
    char stream[80];
    snprintf(stream, sizeof stream, "queue-%s", queue);
    typedef struct th {
        uint8_t id[16];
        int leased, acked;
    } th;
    th *tasks = calloc(want_tasks, sizeof(*tasks));
    uint64_t n = 0, acked = 0, from = 0;
    for (;;) {
        tu_pkb b;
        tu_pkb_init(&b);
        uint64_t rid = su_rid(c);
        MT_EQ_INT(maos_enc_read(&b.pk, rid, tu_sl(stream), 1, from, 0, 1000), 0);
        maos_reply rep;
        char *frame = NULL;
        MT_EQ_INT(su_call(c, &b.sb, rid, &rep, &frame), 0);
        msgpack_sbuffer_destroy(&b.sb);
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        MT_EQ_INT(maos_mpr_array(&r, &cnt), 0);
        for (uint32_t i = 0; i < cnt; i++) {
            maos_record rec;
            MT_EQ_INT(maos_record_next(&r, &rec), 0);
            /* data: {task: bin16, ...} */
            maos_mpr d;
            uint32_t m;
            uint8_t id[16];
            int have = 0;
            maos_mpr_init(&d, rec.data.ptr, rec.data.len);
            MT_EQ_INT(maos_mpr_map(&d, &m), 0);
            for (uint32_t j = 0; j < m; j++) {
                maos_slice k, v;
                MT_EQ_INT(maos_mpr_str(&d, &k), 0);
                if (k.len == 4 && !memcmp(k.ptr, "task", 4)) {
                    MT_EQ_INT(maos_mpr_bin(&d, &v), 0);
                    memcpy(id, v.ptr, 16);
                    have = 1;
                } else {
                    MT_EQ_INT(maos_mpr_skip(&d, NULL), 0);
                }
            }
            MT_TRUE(have);
            char type[32];
            snprintf(type, sizeof type, "%.*s", (int)rec.type.len, rec.type.ptr);
            th *t = NULL;
            if (!strcmp(type, "enqueued")) {
                MT_TRUE(n < want_tasks);
                t = &tasks[n++];
                memcpy(t->id, id, 16);
                continue;
            }
            for (uint64_t k = n; k-- > 0 && !t;)
                if (!memcmp(tasks[k].id, id, 16))
                    t = &tasks[k];
            MT_TRUE(t != NULL);
            if (!strcmp(type, "claimed")) {
                if (t->leased || t->acked)
                    MT_FAIL("a task was claimed while %s (position %llu)",
                            t->acked ? "done" : "leased",
                            (unsigned long long)rec.position);
                t->leased = 1;
            } else if (!strcmp(type, "acked")) {
                MT_TRUE(t->leased);
                t->leased = 0;
                t->acked++;
                acked++;
            } else if (!strcmp(type, "nacked") || !strcmp(type, "expired") ||
                       !strcmp(type, "released")) {
                MT_TRUE(t->leased);
                t->leased = 0;
            }
        }
        free(frame);
        if (rep.next_kind != MAOS_NEXT_UINT)
            break;
        from = rep.next_u;
    }
    MT_EQ_U64(n, want_tasks);
    for (uint64_t k = 0; k < n; k++)
        if (tasks[k].acked != 1)
            MT_FAIL("task %llu was acked %d times", (unsigned long long)k, tasks[k].acked);
    free(tasks);
    return acked;
}

static void test_exactly_once(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    pid_t kids[RACE_WORKERS];
    for (int w = 0; w < RACE_WORKERS; w++) {
        kids[w] = su_fork("race-%d", w);
        if (kids[w] == 0) {
            race_worker(w);
            _exit(0);
        }
    }
    /* enqueue while the workers race, 100 per request */
    tu_pkb d;
    tu_pkb_init(&d);
    tu_pk_str(&d.pk, "t");
    maos_task_in spec[100];
    for (int i = 0; i < 100; i++)
        spec[i] = (maos_task_in){.data = {d.sb.data, (uint32_t)d.sb.size}, .delay_ms = -1};
    for (int i = 0; i < RACE_TASKS / 100; i++) {
        tu_pkb b;
        tu_pkb_init(&b);
        uint64_t rid = su_rid(c);
        MT_EQ_INT(maos_enc_enqueue(&b.pk, rid, tu_sl("race"), spec, 100), 0);
        MT_EQ_INT(tu_call_sb(c, &b, rid).code, 0);
    }
    msgpack_sbuffer_destroy(&d.sb);
    for (int w = 0; w < RACE_WORKERS; w++)
        MT_EQ_INT(mt_wait(kids[w], 300000), 0);
    /* what the workers acked: every task once */
    uint8_t *all = malloc(16 * (size_t)RACE_TASKS * 2);
    size_t total = 0;
    int busy = 0;
    for (int w = 0; w < RACE_WORKERS; w++) {
        char path[512];
        snprintf(path, sizeof path, "%s/acked-%d.bin", mt_test_dir(), w);
        size_t len = 0;
        char *buf = mt_read_file(path, &len);
        MT_TRUE(len % 16 == 0 && total + len / 16 <= (size_t)RACE_TASKS * 2);
        memcpy(all + 16 * total, buf, len);
        total += len / 16;
        busy += len > 0;
        free(buf);
    }
    MT_EQ_U64(total, RACE_TASKS);
    qsort(all, total, 16, cmp16);
    for (size_t i = 1; i < total; i++)
        MT_TRUE(memcmp(all + 16 * (i - 1), all + 16 * i, 16) != 0);
    free(all);
    MT_EQ_U64(check_history(c, "race", RACE_TASKS), RACE_TASKS);
    maos_queue_info qi;
    MT_EQ_INT(qu_stats(c, "race", &qi), 0);
    MT_EQ_U64(qi.done, RACE_TASKS);
    MT_EQ_U64(qi.ready + qi.leased + qi.delayed + qi.dead, 0);
    print_message("exactly once: %d tasks, %d of %d workers got some\n", RACE_TASKS, busy,
                  RACE_WORKERS);
    su_close(c);
}

/* ---- worker death --------------------------------------------------------------------- */

/* A worker that claims one task of queue (registered as an agent when id
 * is set, so its claim is bound; else bind 0), writes one byte to fd, and
 * waits to be killed (or aborts at once when crash). */
static pid_t doomed_worker(const char *queue, const char *agent, uint32_t lease_ms,
                           int fd, int crash)
{
    pid_t pid = su_fork("doomed-%s", agent ? agent : "plain");
    if (pid)
        return pid;
    su_conn *c = su_open(tu_daemon->sock);
    if (agent)
        SU_TRUE(tu_agent_register(c, agent).code == 0);
    qu_task t;
    tu_result r = qu_claim(c, queue, lease_ms, 30000, 1, 0, &t);
    SU_TRUE(r.code == 0 && r.count == 1);
    if (crash)
        abort(); /* the handler crashes */
    SU_TRUE(write(fd, "c", 1) == 1);
    for (;;)
        pause();
}

static void test_worker_death(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    int64_t worst = 0, total = 0;
    for (int i = 0; i < DEATH_REPS; i++) {
        uint8_t id[16];
        MT_EQ_INT(qu_enqueue(c, "dying", "job", NULL, id, NULL).code, 0);
        int pfd[2];
        MT_EQ_INT(pipe(pfd), 0);
        char agent[32];
        snprintf(agent, sizeof agent, "worker-%d", i);
        pid_t kid = doomed_worker("dying", agent, 600000, pfd[1], 0);
        char one;
        MT_EQ_INT((int)read(pfd[0], &one, 1), 1);
        uint64_t rid = qu_claim_send(c, "dying", 60000, 60000, 0);
        /* the waiting claim is parked before the kill (so the figure is
         * the hand-over, not the claim's own trip) */
        maos_queue_info qi;
        int64_t dl = mt_now_us() + 30000000;
        su_conn *p = su_open(tu_daemon->sock);
        while (qu_stats(p, "dying", &qi) != 0 || qi.waiting != 1)
            MT_TRUE(mt_now_us() < dl);
        su_close(p);
        int64_t t0 = mt_now_us();
        MT_EQ_INT(kill(kid, SIGKILL), 0);
        qu_task t;
        tu_result r = qu_claim_wait(c, rid, 30000, &t, 1);
        int64_t dt = mt_now_us() - t0;
        MT_EQ_U64(r.count, 1);
        MT_TRUE(!memcmp(t.id, id, 16));
        MT_EQ_U64(t.attempt, 2);
        MT_EQ_STR(t.last_error, "worker connection closed");
        MT_EQ_INT(qu_ack(c, id, t.token, NULL).code, 0);
        total += dt;
        if (dt > worst)
            worst = dt;
        mt_wait(kid, 10000);
        close(pfd[0]);
        close(pfd[1]);
    }
    print_message("worker death: %d SIGKILLs, task handed over after %.2f ms mean, "
                  "%.2f ms worst (figures, not a test bound)\n", DEATH_REPS,
                  (double)total / DEATH_REPS / 1000.0, (double)worst / 1000.0);

    /* an unbound claim lives by its lease alone */
    uint8_t id[16];
    MT_EQ_INT(qu_enqueue(c, "plain", "job", NULL, id, NULL).code, 0);
    int pfd[2];
    MT_EQ_INT(pipe(pfd), 0);
    pid_t kid = doomed_worker("plain", NULL, 400, pfd[1], 0);
    char one;
    MT_EQ_INT((int)read(pfd[0], &one, 1), 1);
    MT_EQ_INT(kill(kid, SIGKILL), 0);
    mt_wait(kid, 10000);
    qu_task t;
    tu_result r = qu_claim(c, "plain", 60000, 30000, 1, 0, &t);
    MT_EQ_U64(r.count, 1);
    MT_EQ_U64(t.attempt, 2);
    MT_EQ_STR(t.last_error, "lease expired");
    close(pfd[0]);
    close(pfd[1]);
    su_close(c);
}

/* ---- a poison task ---------------------------------------------------------------------- */

static void test_poison(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t id[16];
    qu_opts o = {.max_attempts = 3};
    MT_EQ_INT(qu_enqueue(c, "toxic", "kills its worker", &o, id, NULL).code, 0);
    /* workers that crash on it, one after another, until it is dead */
    int deaths = 0;
    qu_task t;
    for (;;) {
        MT_EQ_INT(qu_get(c, id, &t), 0);
        if (!strcmp(t.state, "dead"))
            break;
        MT_TRUE(deaths < 3);
        char agent[32];
        snprintf(agent, sizeof agent, "crasher-%d", deaths);
        pid_t kid = doomed_worker("toxic", agent, 600000, -1, 1);
        MT_TRUE(mt_wait(kid, 30000) != 0); /* it aborted */
        deaths++;
        /* its death gives the claim back; wait for it */
        int64_t dl = mt_now_us() + 30000000;
        for (;;) {
            MT_EQ_INT(qu_get(c, id, &t), 0);
            if (strcmp(t.state, "leased"))
                break;
            MT_TRUE(mt_now_us() < dl);
        }
    }
    MT_EQ_INT(deaths, 3);
    MT_EQ_U64(t.attempt, 3);
    qu_task dead[2];
    MT_EQ_U64(qu_dead_list(c, "toxic", dead, 2).count, 1);
    MT_EQ_INT(qu_dead_retry(c, "toxic", NULL).code, 0);
    MT_EQ_INT(qu_get(c, id, &t), 0);
    MT_EQ_STR(t.state, "ready");
    MT_EQ_U64(t.attempt, 0);
    su_close(c);
}

/* ---- kill -9 of maosd ----------------------------------------------------------------- */

/* The states of the queue's tasks, counted from each task, against its
 * counts.  A delayed task may fall due between the two reads (its timer
 * fires meanwhile: seen under TSan), so a count that differs is read
 * again, until both agree or the deadline passes. */
static void counts_match(su_conn *c, const char *queue, uint8_t (*ids)[16], int n,
                         uint64_t *per_state)
{
    static const char *const names[] = {"ready", "delayed", "blocked", "leased", "done",
                                        "dead"};
    int64_t deadline = mt_now_us() + 30000000;
    for (;;) {
        uint64_t got[6] = {0};
        for (int i = 0; i < n; i++) {
            qu_task t;
            MT_EQ_INT(qu_get(c, ids[i], &t), 0);
            for (int s = 0; s < 6; s++)
                got[s] += !strcmp(t.state, names[s]);
        }
        maos_queue_info qi;
        MT_EQ_INT(qu_stats(c, queue, &qi), 0);
        uint64_t want[6] = {qi.ready, qi.delayed, qi.blocked, qi.leased, qi.done, qi.dead};
        int s = 0;
        while (s < 6 && got[s] == want[s])
            s++;
        if (s == 6) {
            if (per_state)
                memcpy(per_state, got, sizeof got);
            return;
        }
        if (mt_now_us() >= deadline)
            MT_FAIL("%s: %llu tasks are %s, its counts say %llu", queue,
                    (unsigned long long)got[s], names[s], (unsigned long long)want[s]);
    }
}

static void test_crash_rounds(void **state)
{
    (void)state;
    enum { PER_ROUND = 12 };
    uint8_t ids[CRASH_ROUNDS * PER_ROUND][16];
    char expect[CRASH_ROUNDS * PER_ROUND][16];
    int n = 0;
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        su_conn *c = su_open(tu_daemon->sock);
        char q[32];
        snprintf(q, sizeof q, "crash%d", round);
        /* every state, each acknowledged before the kill */
        qu_opts late = {.delay_ms = 300}, one = {.max_attempts = 1},
                ok = {.ordering_key = "k"};
        int base = n;
        for (int i = 0; i < PER_ROUND; i++) {
            const qu_opts *o = i % 4 == 1 ? &late : i % 4 == 2 ? &one : i % 4 == 3 ? &ok : NULL;
            MT_EQ_INT(qu_enqueue(c, q, "x", o, ids[n], NULL).code, 0);
            snprintf(expect[n], 16, "%s", i % 4 == 1 ? "delayed" : i % 4 == 3 && i > 3 ? "blocked" : "ready");
            n++;
        }
        /* claim the ready ones: ack some, nack the one-attempt ones, keep
         * the rest leased */
        qu_task t[PER_ROUND];
        tu_result r = qu_claim(c, q, 600000, 0, PER_ROUND, 0, t);
        for (uint64_t k = 0; k < r.count; k++) {
            int at = -1;
            for (int j = base; j < n; j++)
                if (!memcmp(ids[j], t[k].id, 16))
                    at = j;
            MT_TRUE(at >= 0);
            int i = at - base;
            if (i % 4 == 2) {
                MT_EQ_INT(qu_nack(c, t[k].id, t[k].token, "no", -1).code, 0);
                snprintf(expect[at], 16, "dead");
            } else if (i % 4 == 0 && i % 8 == 0) {
                MT_EQ_INT(qu_ack(c, t[k].id, t[k].token, NULL).code, 0);
                snprintf(expect[at], 16, "done");
            } else {
                snprintf(expect[at], 16, "leased");
            }
        }
        su_close(c);
        mt_daemon_kill9(tu_daemon);
        mt_daemon_up(tu_daemon);
        c = su_open(tu_daemon->sock);
        uint64_t per[6];
        counts_match(c, q, ids + base, PER_ROUND, per);
        for (int j = base; j < n; j++) {
            qu_task g;
            MT_EQ_INT(qu_get(c, ids[j], &g), 0);
            /* a delayed one may have fired meanwhile */
            if (strcmp(g.state, expect[j]) &&
                !(!strcmp(expect[j], "delayed") && !strcmp(g.state, "ready")))
                MT_FAIL("round %d task %d: %s after the restart, want %s", round, j - base,
                        g.state, expect[j]);
        }
        /* the delayed ones fire: all are ready within the deadline */
        int64_t dl = mt_now_us() + 30000000;
        for (;;) {
            maos_queue_info qi;
            MT_EQ_INT(qu_stats(c, q, &qi), 0);
            if (qi.delayed == 0)
                break;
            MT_TRUE(mt_now_us() < dl);
            qu_task w;
            qu_claim(c, "never", 1000, 20, 1, 0, &w); /* a bounded pause */
        }
        counts_match(c, q, ids + base, PER_ROUND, NULL);
        su_close(c);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_worker_death, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_poison, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_crash_rounds, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 300);
}
