/*
 * client/examples/uv_tail.c -- subscriptions inside a libuv loop, through
 * the header-only adapter maos/adapters/libuv.h.  Built by meson, not
 * installed.
 *
 *   uv_tail PREFIX PATTERN [COUNT]
 *
 * Prints every event of the streams whose name starts with PREFIX, from
 * the start of the log and then live, and every message published on a
 * channel matching the glob PATTERN, as they come; with COUNT it stops
 * after COUNT events + messages.  A timer ticks once a second next to it
 * to show that the loop is never blocked by the library.  The context
 * reconnects by itself (the adapter re-watches the new socket).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "maos/adapters/libuv.h"
#include "maos/client.h"
#include "maos/json.h"

struct app {
    unsigned long long want, got;
    uv_loop_t *loop;
    uv_timer_t tick;
    maos_uv *adapter;
    int status;
};

static void stop(struct app *app)
{
    maos_uv_detach(app->adapter);
    app->adapter = NULL;
    uv_timer_stop(&app->tick);
    uv_close((uv_handle_t *)&app->tick, NULL);
}

static void count(struct app *app, unsigned long long n)
{
    app->got += n;
    fflush(stdout);
    if (app->want && app->got >= app->want && app->adapter)
        stop(app);
}

static void on_events(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    for (size_t i = 0; i < d->n; i++) {
        const maos_event *e = &d->events[i];
        char *data = NULL;
        if (maos_msgpack_to_json_text(e->data, e->data_len, &data) != 0)
            data = NULL;
        printf("event %" PRIu64 "  %.*s@%" PRIu64 "  %.*s  %s\n", e->position,
               (int)e->stream_len, e->stream, e->version, (int)e->type_len, e->type,
               data ? data : "?");
        free(data);
    }
    count(user, d->n);
}

static void on_state(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    (void)user;
    printf("state %s (next position %" PRIu64 ")\n", maos_push_name(d->kind), d->next);
}

static void on_message(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    char *payload = NULL;
    if (maos_msgpack_to_json_text(d->payload, d->payload_len, &payload) != 0)
        payload = NULL;
    printf("message %.*s  %s\n", (int)d->channel_len, d->channel, payload ? payload : "?");
    free(payload);
    count(user, 1);
}

static void on_error(maos_uv *a, maos_ctx *c, int err, void *user)
{
    struct app *app = user;
    (void)a;
    fprintf(stderr, "uv_tail: %s: %s\n", maos_err_name(err), c->errstr);
    app->status = 3;
    stop(app);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "uv_tail: tick\n");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s PREFIX PATTERN [COUNT]\n", argv[0]);
        return 2;
    }
    struct app app = {.want = argc == 4 ? strtoull(argv[3], NULL, 10) : 0,
                      .loop = uv_default_loop()};
    maos_options opt = {.client_name = "uv_tail", .reconnect = 1};
    maos_ctx *c = maos_connect_with(&opt);
    if (!c || c->err) {
        fprintf(stderr, "uv_tail: %s\n", c ? c->errstr : "out of memory");
        maos_free(c);
        return 3;
    }
    maos_read_filter f = {.prefix = argv[1]};
    if (maos_subscribe(c, &f, MAOS_FROM_POSITION, 1, NULL) ||
        maos_subscribe_channel(c, argv[2], NULL)) {
        fprintf(stderr, "uv_tail: subscribe: %s\n", c->errstr);
        maos_free(c);
        return 1;
    }
    maos_push_handlers h = {on_events, on_state, on_message};
    app.adapter = maos_uv_attach(app.loop, c, &h, &app, on_error);
    if (!app.adapter) {
        fprintf(stderr, "uv_tail: cannot attach to the loop\n");
        maos_free(c);
        return 1;
    }
    uv_timer_init(app.loop, &app.tick);
    uv_timer_start(&app.tick, on_tick, 1000, 1000);
    uv_run(app.loop, UV_RUN_DEFAULT); /* ends once stop() closed everything */
    maos_free(c);
    uv_loop_close(app.loop);
    return app.status;
}
