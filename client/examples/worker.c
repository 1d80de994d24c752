/*
 * client/examples/worker.c -- a queue worker that survives daemon restarts.
 * Built by meson, not installed.
 *
 *   worker QUEUE [COUNT]
 *
 * Tasks are enqueued by anyone, e.g.
 *
 *   maosctl queue enqueue resize '{"image":"a.png","width":640}'
 *
 * The worker
 *  1. connects with reconnect on: when maosd restarts (or the socket
 *     drops) the library reconnects with backoff, and the loop goes on;
 *  2. registers as an agent, so every claim it makes is bound to its
 *     connection: if the worker dies (crash, kill -9, OOM), maosd puts its
 *     task back at once, the attempt counted -- not when the lease runs
 *     out -- and after max_attempts deaths the task is a dead letter, not
 *     a loop;
 *  3. runs maos_worker_run: claim one task at a time (waiting for work,
 *     served by push), call the handler, ack with its result or nack with
 *     its error.  While the handler runs, the library's keeper thread
 *     (its own connection) extends the lease every 20 s by 60 s, so a
 *     slow task is not handed to another worker.  A lease lost anyway
 *     (the task went to someone else) is skipped; the ack carries the
 *     lease token, so a late worker can never overwrite the new owner's
 *     result (fencing).  A graceful restart of maosd (SHUTTING_DOWN while
 *     it stops) is waited out like a crash.
 * The handler here "resizes" by printing the task and returns the payload
 * as its result; a payload {"fail": true} makes it fail (nack).  With COUNT
 * the worker exits after COUNT tasks (for scripts and tests); SIGINT or
 * SIGTERM stop it after the task in hand.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maos/client.h"
#include "maos/json.h"

static volatile int stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int handle(maos_ctx *c, maos_worker_task *t, void *arg)
{
    (void)c;
    (void)arg;
    const maos_task_info *task = t->task;
    char id[37], *json = NULL;
    maos_uuid_format(task->id, id);
    if (maos_msgpack_to_json_text(task->data.ptr, task->data.len, &json))
        json = NULL;
    printf("task %s attempt %llu token %llu: %s\n", id, (unsigned long long)task->attempt,
           (unsigned long long)task->token, json ? json : "?");
    fflush(stdout);
    int fail = json && strstr(json, "\"fail\":true") != NULL;
    free(json);
    if (fail) {
        snprintf(t->error, sizeof t->error, "the payload asked to fail");
        return -1;
    }
    /* the result: the payload itself (a msgpack value the library frees) */
    t->result = malloc(task->data.len ? task->data.len : 1);
    if (t->result && task->data.len) {
        memcpy(t->result, task->data.ptr, task->data.len);
        t->result_len = task->data.len;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: worker QUEUE [COUNT]\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    maos_options o = {.reconnect = 1, .client_name = "example-worker"};
    maos_ctx *c = maos_connect_with(&o);
    if (!c || c->err) {
        fprintf(stderr, "worker: %s\n", c ? c->errstr : "out of memory");
        maos_free(c);
        return 1;
    }
    char agent[64];
    snprintf(agent, sizeof agent, "worker-%s-%ld", argv[1], (long)getpid());
    maos_agent_spec a = {.id = agent, .kind = "worker"};
    int rc = maos_agent_register(c, &a, NULL);
    if (rc) {
        fprintf(stderr, "worker: register: %s\n", c->errstr);
        maos_free(c);
        return 1;
    }
    const char *queues[1] = {argv[1]};
    maos_worker_opts wo = {.lease_ms = 60000, .wait_ms = 1000, .stop = &stop,
                           .max_tasks = argc == 3 ? strtoull(argv[2], NULL, 10) : 0};
    rc = maos_worker_run(c, queues, 1, handle, NULL, &wo);
    if (rc)
        fprintf(stderr, "worker: %s\n", c->errstr);
    printf("worker: %llu done, %llu failed, %llu leases lost\n",
           (unsigned long long)wo.done, (unsigned long long)wo.failed,
           (unsigned long long)wo.lost);
    maos_free(c);
    return rc ? 1 : 0;
}
