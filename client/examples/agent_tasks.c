/*
 * client/examples/agent_tasks.c -- an agent that works through its task
 * stream, resuming where it left off.  Built by meson, not installed.
 *
 *   agent_tasks AGENT [COUNT]
 *
 * Tasks for agent AGENT are events on the stream "task-AGENT", appended by
 * anyone, e.g.
 *
 *   maosctl append task-a7 build '{"target":"docs"}'
 *
 * The agent
 *  1. connects with reconnect on, so a daemon restart or a dropped socket
 *     is survived: the library reconnects with backoff and re-subscribes
 *     from the last position it delivered, without gap or duplicate;
 *  2. reads its checkpoint "agent-AGENT/tasks", the position of the last
 *     task it finished (none yet: start at the beginning of the log);
 *  3. subscribes to the stream from that position + 1: the stored tasks
 *     it has not done come first, then new ones as they are appended;
 *  4. for each delivery: does every task in it (here: prints it and
 *     appends a "done" event to "done-AGENT"), then saves the checkpoint
 *     once for the batch.
 * With COUNT it exits after COUNT tasks (for scripts and tests).
 *
 * No retry loop: the library re-sends by itself what is safe to send twice
 * across a reconnect -- the checkpoint read, and the "done" appends, whose
 * ids are given (derived ids: a re-sent append is recognized as a
 * duplicate).  A checkpoint save that meets a lost connection fails (its
 * outcome unknown); that is harmless here: the next batch saves a later
 * position, and a task done twice is deduplicated by its id.
 *
 * Processing is at least once: an agent killed between doing a task and
 * saving the checkpoint does that task again when it restarts.  Its output
 * is made idempotent instead: the "done" event's id is derived from the
 * task's id (same task, same id), so the daemon recognizes a repeated
 * append as a duplicate and does not store it twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maos/client.h"
#include "maos/json.h"

/* A v8 ("custom") UUID derived from the task's id: a bijection of the
 * UUIDv7 ids the daemon makes, so distinct tasks get distinct ids. */
static void done_id(const uint8_t task_id[16], uint8_t out[16])
{
    memcpy(out, task_id, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80);
    out[15] ^= 0xff;
}

/* The "work": print the task and record that it is done. */
static int do_task(maos_ctx *c, const char *agent, const maos_event *e)
{
    char *data = NULL, done_stream[300];
    if (maos_msgpack_to_json_text(e->data, e->data_len, &data) != 0)
        data = NULL;
    printf("%s: task %.*s at position %" PRIu64 ": %s\n", agent, (int)e->type_len,
           e->type, e->position, data ? data : "(undisplayable)");
    free(data);

    uint8_t id[16];
    done_id(e->id, id);
    maos_event_spec done = {.id = id, .type = "done", .data = e->data,
                            .data_len = e->data_len};
    snprintf(done_stream, sizeof done_stream, "done-%s", agent);
    return maos_append(c, done_stream, MAOS_EXPECT_ANY, &done, 1, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s AGENT [COUNT]\n", argv[0]);
        return 2;
    }
    const char *agent = argv[1];
    unsigned long long want = argc == 3 ? strtoull(argv[2], NULL, 10) : 0, done = 0;
    char stream[300], checkpoint[300];
    snprintf(stream, sizeof stream, "task-%s", agent);
    snprintf(checkpoint, sizeof checkpoint, "agent-%s/tasks", agent);

    maos_options opt = {.client_name = "agent_tasks", .reconnect = 1};
    maos_ctx *c = maos_connect_with(&opt); /* $MAOS_SOCKET or the default */
    if (!c || c->err) {
        fprintf(stderr, "%s: %s\n", agent, c ? c->errstr : "out of memory");
        maos_free(c);
        return 3;
    }

    uint64_t last = 0; /* position of the last task done; 0: none */
    int rc;
    rc = maos_checkpoint_get(c, checkpoint, &last);
    if (rc && rc != MAOS_ENOT_FOUND)
        goto fail;

    maos_read_filter f = {.stream = stream};
    rc = maos_subscribe(c, &f, MAOS_FROM_POSITION, last + 1, NULL);
    if (rc)
        goto fail;
    printf("%s: waiting for tasks on %s after position %" PRIu64 "\n", agent, stream, last);
    fflush(stdout);

    while (!want || done < want) {
        maos_delivery *d;
        if ((rc = maos_next(c, -1, &d)))
            goto fail; /* only when reconnecting gave up, or a refusal */
        if (d->kind == MAOS_PUSH_CAUGHT_UP)
            printf("%s: no older tasks left, now live\n", agent);
        for (size_t i = 0; i < d->n && (!want || done < want); i++) {
            if ((rc = do_task(c, agent, &d->events[i]))) {
                maos_delivery_free(d);
                goto fail;
            }
            last = d->events[i].position;
            done++;
        }
        maos_delivery_free(d);
        if (last && (rc = maos_checkpoint_save(c, checkpoint, last)) &&
            (!maos_err_is_fatal(rc) || maos_is_dead(c)))
            goto fail; /* a lost connection alone is not: see above */
        fflush(stdout);
    }
    printf("%s: %llu tasks done, checkpoint %" PRIu64 "\n", agent, done, last);
    maos_free(c);
    return 0;
fail:
    fprintf(stderr, "%s: %s: %s\n", agent, maos_err_name(rc), c->errstr);
    maos_free(c);
    return 1;
}
