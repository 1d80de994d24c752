/*
 * tests/fuzz/fuzz_frame.c -- libFuzzer target for maosd's input path.
 *
 * The input is the byte stream one client sends on one connection.  It goes
 * through the code maosd runs on it, in the same order:
 *
 *   maos_reader (frames) -> maos_mp_check -> maos_request_decode/free
 *
 * The stream is cut into chunks whose sizes come from a hash of the input,
 * so one mutation also changes how the bytes arrive (1-byte dribbles up to
 * large reads).  The hash also picks which of the reader's two APIs is used:
 * maos_reader_feed, or maos_reader_space + maos_reader_commit as the
 * daemon's libuv alloc/read callbacks use it.
 *
 * Beyond "no crash, leak, overflow or UB", it checks:
 *  - reader errors are one of its three codes and sticky;
 *  - every frame handed out has 1..max_frame bytes;
 *  - maos_request_decode fails on every frame maos_mp_check rejects, with a
 *    known code and a reason;
 *  - a decoded request, encoded again with the client's encoders
 *    (maos_enc_*), decodes to the same request: the one layout agrees with
 *    itself in both directions.  Every op has an encoder, so every op a
 *    frame can decode to is checked (a txn in both forms when it can be);
 *  - a write request's items are consistent: one per append/op, APPEND
 *    items pointing into appends, tables parsed, keys valid, put data a
 *    map; a watch's filter is its table's stream prefix + key prefix.
 *
 * max_frame is 1 MiB rather than the daemon's 16 MiB default only to keep
 * each run's allocations small; the code paths are the same.
 */
#include "fuzz.h"

#define FUZZ_MAX_FRAME (1u << 20)

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static size_t next_chunk(void)
{
    uint64_t r = rng();
    switch (r & 3) {
    case 0: return 1;                          /* byte by byte */
    case 1: return 1 + (size_t)((r >> 8) % 7); /* split headers */
    case 2: return 1 + (size_t)((r >> 8) % 300);
    default: return 1 + (size_t)((r >> 8) % 70000);
    }
}

/* ---- decoded request == re-encoded-and-decoded request ------------------- */

static void same_append(const maos_append_in *a, const maos_append_in *b)
{
    FUZZ_CHECK(fuzz_slice_eq(a->stream, b->stream), "stream");
    FUZZ_CHECK(a->expect == b->expect, "expect %lld != %lld",
               (long long)a->expect, (long long)b->expect);
    FUZZ_CHECK(a->n_events == b->n_events, "n_events %u != %u", a->n_events,
               b->n_events);
    for (uint32_t i = 0; i < a->n_events; i++) {
        const maos_event_in *x = &a->events[i], *y = &b->events[i];
        FUZZ_CHECK(x->has_id == y->has_id, "event %u has_id", i);
        FUZZ_CHECK(!x->has_id || memcmp(x->id, y->id, 16) == 0, "event %u id", i);
        FUZZ_CHECK(fuzz_slice_eq(x->type, y->type), "event %u type", i);
        FUZZ_CHECK(fuzz_slice_eq(x->data, y->data), "event %u data", i);
        FUZZ_CHECK(fuzz_slice_eq(x->meta, y->meta), "event %u meta", i);
    }
}

static void same_filter(const maos_filter *a, const maos_filter *b)
{
    FUZZ_CHECK(fuzz_slice_eq(a->stream, b->stream), "filter stream");
    FUZZ_CHECK(fuzz_slice_eq(a->prefix, b->prefix), "filter prefix");
    FUZZ_CHECK(fuzz_slice_eq(a->category, b->category), "filter category");
    FUZZ_CHECK(a->n_types == b->n_types, "n_types %u != %u", a->n_types,
               b->n_types);
    for (uint32_t i = 0; i < a->n_types; i++)
        FUZZ_CHECK(fuzz_slice_eq(a->types[i], b->types[i]), "type %u", i);
    FUZZ_CHECK(a->has_since == b->has_since && (!a->has_since || a->since == b->since),
               "since");
    FUZZ_CHECK(a->has_until == b->has_until && (!a->has_until || a->until == b->until),
               "until");
}

static int same_opt_value(maos_slice a, maos_slice b);

static void same_item(const maos_item_in *x, const maos_item_in *y)
{
    FUZZ_CHECK(x->kind == y->kind, "item kind %d != %d", x->kind, y->kind);
    switch (x->kind) {
    case MAOS_ITEM_APPEND:
        same_append(x->append, y->append);
        break;
    case MAOS_ITEM_PUT:
    case MAOS_ITEM_DELETE:
        FUZZ_CHECK(x->table.kind == y->table.kind &&
                       fuzz_slice_eq(x->table.name, y->table.name),
                   "item table");
        FUZZ_CHECK(fuzz_slice_eq(x->key, y->key), "item key");
        FUZZ_CHECK(x->expect == y->expect, "item expect %lld != %lld",
                   (long long)x->expect, (long long)y->expect);
        FUZZ_CHECK(fuzz_slice_eq(x->data, y->data), "item data");
        FUZZ_CHECK(!x->bind == !y->bind, "item bind");
        break;
    case MAOS_ITEM_CHECKPOINT:
        FUZZ_CHECK(fuzz_slice_eq(x->name, y->name) && x->position == y->position,
                   "checkpoint item");
        break;
    default: /* queue items */
        FUZZ_CHECK(fuzz_slice_eq(x->queue, y->queue), "item queue");
        FUZZ_CHECK(x->n_tasks == y->n_tasks && x->n_queues == y->n_queues, "item counts");
        for (uint32_t i = 0; i < x->n_tasks; i++) {
            const maos_task_in *a = &x->tasks[i], *b = &y->tasks[i];
            FUZZ_CHECK(same_opt_value(a->data, b->data) && fuzz_slice_eq(a->meta, b->meta) &&
                           a->priority == b->priority && a->delay_ms == b->delay_ms &&
                           a->not_before == b->not_before &&
                           a->max_attempts == b->max_attempts && a->lease_ms == b->lease_ms &&
                           a->backoff_ms == b->backoff_ms &&
                           fuzz_slice_eq(a->dedupe_key, b->dedupe_key) &&
                           fuzz_slice_eq(a->ordering_key, b->ordering_key),
                       "task spec %u", i);
        }
        for (uint32_t i = 0; i < x->n_queues; i++)
            FUZZ_CHECK(fuzz_slice_eq(x->queues[i], y->queues[i]), "claim queue %u", i);
        FUZZ_CHECK(x->has_task == y->has_task &&
                       (!x->has_task || !memcmp(x->task, y->task, 16)),
                   "item task");
        FUZZ_CHECK(x->token == y->token && x->retry_after_ms == y->retry_after_ms &&
                       x->lease_ms == y->lease_ms && x->wait_ms == y->wait_ms &&
                       x->max_tasks == y->max_tasks && !x->bind == !y->bind,
                   "queue item numbers");
        FUZZ_CHECK(same_opt_value(x->result, y->result) && fuzz_slice_eq(x->error, y->error),
                   "item result/error");
    }
}

static void same_items(const maos_request *a, const maos_request *b)
{
    FUZZ_CHECK(a->n_items == b->n_items, "n_items %u != %u", a->n_items, b->n_items);
    FUZZ_CHECK(a->n_appends == b->n_appends, "n_appends %u != %u", a->n_appends,
               b->n_appends);
    for (uint32_t i = 0; i < a->n_items; i++)
        same_item(&a->items[i], &b->items[i]);
}

/* A raw value that may be absent (len 0) or nil: the same on the wire. */
static int same_opt_value(maos_slice a, maos_slice b)
{
    static const maos_slice nil = {"\xc0", 1};
    if (!a.len)
        a = nil;
    if (!b.len)
        b = nil;
    return fuzz_slice_eq(a, b);
}

/* What the decoder promises about a write request's items. */
static void check_items(const maos_request *q)
{
    uint32_t appends = 0;
    for (uint32_t i = 0; i < q->n_items; i++) {
        const maos_item_in *it = &q->items[i];
        maos_table_ref t;
        switch (it->kind) {
        case MAOS_ITEM_APPEND:
            FUZZ_CHECK(it->append == &q->appends[appends], "item %u append pointer", i);
            FUZZ_CHECK(maos_stream_check(it->append->stream) == 0 &&
                           !maos_stream_is_table(it->append->stream),
                       "item %u stream", i);
            appends++;
            break;
        case MAOS_ITEM_PUT:
        case MAOS_ITEM_DELETE:
            FUZZ_CHECK(maos_table_parse(it->table.name, &t) == 0 && t.kind == it->table.kind,
                       "item %u table", i);
            FUZZ_CHECK(maos_key_check(it->key) == 0, "item %u key", i);
            FUZZ_CHECK(it->kind == MAOS_ITEM_DELETE ||
                           (it->data.len && maos_mp_check(it->data.ptr, it->data.len,
                                                          NULL) != MAOS_EBAD_FRAME &&
                            maos_mpr_peek(&(maos_mpr){(const uint8_t *)it->data.ptr,
                                                      (const uint8_t *)it->data.ptr +
                                                          it->data.len}) == MAOS_MP_MAP),
                       "item %u data", i);
            FUZZ_CHECK(it->expect >= MAOS_EXPECT_EXISTS, "item %u expect", i);
            break;
        case MAOS_ITEM_CHECKPOINT:
            FUZZ_CHECK(maos_name_check(it->name) == 0, "item %u checkpoint name", i);
            break;
        case MAOS_ITEM_ENQUEUE:
        case MAOS_ITEM_DEAD_RETRY:
        case MAOS_ITEM_DEAD_PURGE:
            FUZZ_CHECK(maos_queue_name_check(it->queue) == 0, "item %u queue", i);
            FUZZ_CHECK(it->kind != MAOS_ITEM_ENQUEUE || it->n_tasks >= 1, "item %u tasks", i);
            for (uint32_t j = 0; j < it->n_tasks; j++) {
                const maos_task_in *t = &it->tasks[j];
                FUZZ_CHECK(t->delay_ms <= MAOS_DELAY_MS_MAX && t->not_before >= 0 &&
                               (t->delay_ms < 0 || !t->not_before) &&
                               t->max_attempts <= MAOS_ATTEMPTS_MAX &&
                               t->lease_ms <= MAOS_LEASE_MS_MAX &&
                               (!t->dedupe_key.len || !maos_key_check(t->dedupe_key)) &&
                               (!t->ordering_key.len || !maos_key_check(t->ordering_key)),
                           "item %u task %u", i, j);
            }
            break;
        case MAOS_ITEM_CLAIM:
            FUZZ_CHECK(it->n_queues >= 1 && it->n_queues <= MAOS_CLAIM_QUEUES_MAX &&
                           it->max_tasks >= 1 && it->max_tasks <= MAOS_CLAIM_MAX &&
                           it->wait_ms <= MAOS_WAIT_MS_MAX && it->lease_ms <= MAOS_LEASE_MS_MAX,
                       "item %u claim", i);
            for (uint32_t j = 0; j < it->n_queues; j++)
                FUZZ_CHECK(maos_queue_name_check(it->queues[j]) == 0, "item %u queue %u", i, j);
            break;
        case MAOS_ITEM_ACK:
        case MAOS_ITEM_NACK:
        case MAOS_ITEM_EXTEND:
        case MAOS_ITEM_TASK_RELEASE:
            FUZZ_CHECK(it->has_task && it->token >= 1, "item %u task/token", i);
            FUZZ_CHECK(it->kind != MAOS_ITEM_EXTEND || it->lease_ms >= 1, "item %u lease", i);
            break;
        default:
            FUZZ_CHECK(0, "item %u kind %d", i, it->kind);
        }
    }
    FUZZ_CHECK(appends == q->n_appends, "%u APPEND items, %u appends", appends,
               q->n_appends);
    switch (q->op) {
    case MAOS_OP_APPEND:
    case MAOS_OP_PUT:
    case MAOS_OP_DELETE:
    case MAOS_OP_CHECKPOINT_SAVE:
        FUZZ_CHECK(q->n_items == 1, "%s with %u items", maos_op_name(q->op), q->n_items);
        break;
    case MAOS_OP_APPEND_BATCH:
        FUZZ_CHECK(q->n_items >= 1 && q->n_items == q->n_appends,
                   "append_batch with %u items, %u appends", q->n_items, q->n_appends);
        break;
    case MAOS_OP_TXN:
        FUZZ_CHECK(q->n_items >= 1, "txn without items");
        for (uint32_t i = 0; i < q->n_items; i++)
            FUZZ_CHECK(q->items[i].kind != MAOS_ITEM_CLAIM &&
                           q->items[i].kind != MAOS_ITEM_DEAD_RETRY &&
                           q->items[i].kind != MAOS_ITEM_DEAD_PURGE,
                       "txn item %u of a kind a txn cannot take", i);
        break;
    case MAOS_OP_ENQUEUE:
    case MAOS_OP_CLAIM:
    case MAOS_OP_ACK:
    case MAOS_OP_NACK:
    case MAOS_OP_EXTEND:
    case MAOS_OP_RELEASE:
    case MAOS_OP_DEAD_RETRY:
    case MAOS_OP_DEAD_PURGE:
        FUZZ_CHECK(q->n_items == 1, "%s with %u items", maos_op_name(q->op), q->n_items);
        break;
    default:
        FUZZ_CHECK(q->n_items == 0, "%s with %u items", maos_op_name(q->op), q->n_items);
    }
    if (q->op == MAOS_OP_WATCH) {
        char p[MAOS_STREAM_MAX];
        int n = maos_table_stream(&q->table, q->prefix, p);
        FUZZ_CHECK(n > 0 && fuzz_slice_eq(q->filter.prefix, (maos_slice){p, (uint32_t)n}),
                   "watch filter prefix");
        FUZZ_CHECK(q->filter.n_types == 2, "watch filter types");
    }
}

/* A C string copy of s (NULL when s holds a NUL: the encoders that take
 * C strings cannot send it). Freed by the caller. */
static char *cstr_of(maos_slice s)
{
    if (s.len && memchr(s.ptr, 0, s.len))
        return NULL;
    char *c = malloc(s.len + 1u);
    FUZZ_CHECK(c, "malloc");
    if (s.len)
        memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    return c;
}

/* token_create: its spec (maos_token_spec_decode of the frame) encoded
 * again, from texts, decodes to the same spec. */
static void token_create_roundtrip(const maos_request *a, maos_slice frame,
                                   const maos_limits *lim)
{
    maos_token_spec s, t;
    char why[256];
    if (maos_token_spec_decode(frame.ptr, frame.len, &s, why, sizeof why))
        return; /* the daemon refuses it before anything else */
    char *name = cstr_of(s.name);
    char *session = s.session.len ? cstr_of(s.session) : NULL;
    char *scopes[MAOS_SCOPES_MAX];
    uint32_t n = 0;
    int ok = name && (!s.session.len || session);
    for (; ok && n < s.n_scopes; n++) {
        const char *kind = maos_scope_kind_name(s.scopes[n].kind);
        FUZZ_CHECK(kind, "scope kind %d has no name", s.scopes[n].kind);
        maos_slice arg = s.scopes[n].arg;
        size_t kl = strlen(kind), len = kl + (arg.len ? 1u + arg.len : 0u);
        scopes[n] = malloc(len + 1u);
        FUZZ_CHECK(scopes[n], "malloc");
        memcpy(scopes[n], kind, kl);
        if (arg.len) {
            scopes[n][kl] = ':';
            memcpy(scopes[n] + kl + 1, arg.ptr, arg.len);
        }
        scopes[n][len] = 0;
    }
    if (ok) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        int rc = maos_enc_token_create(&pk, a->rid, name, (const char *const *)scopes, n,
                                       s.expires_ms, s.uid, session);
        FUZZ_CHECK(rc == 0, "encoding token_create failed: %d", rc);
        maos_request b;
        rc = maos_request_decode(sb.data, sb.size, lim, &b, why, sizeof why);
        FUZZ_CHECK(rc == 0, "re-encoded token_create does not decode: %s: %s",
                   maos_err_name(rc), why);
        FUZZ_CHECK(b.op == a->op && b.rid == a->rid, "token_create op/rid");
        FUZZ_CHECK(fuzz_slice_eq(a->name, b.name), "token_create name");
        maos_request_free(&b);
        rc = maos_token_spec_decode(sb.data, sb.size, &t, why, sizeof why);
        FUZZ_CHECK(rc == 0, "re-encoded token spec does not decode: %s: %s",
                   maos_err_name(rc), why);
        FUZZ_CHECK(fuzz_slice_eq(s.name, t.name) && fuzz_slice_eq(s.session, t.session) &&
                       s.expires_ms == t.expires_ms && s.uid == t.uid &&
                       s.n_scopes == t.n_scopes,
                   "token spec fields");
        for (uint32_t i = 0; i < s.n_scopes; i++)
            FUZZ_CHECK(s.scopes[i].kind == t.scopes[i].kind &&
                           fuzz_slice_eq(s.scopes[i].arg, t.scopes[i].arg),
                       "token scope %u", i);
        msgpack_sbuffer_destroy(&sb);
    }
    for (uint32_t i = 0; i < n; i++)
        free(scopes[i]);
    free(name);
    free(session);
}

static void roundtrip(const maos_request *a, maos_slice frame, const maos_limits *lim)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *name = NULL;
    int rc = 0;

    switch (a->op) {
    case MAOS_OP_HELLO:
        /* The encoder takes a C string: a name with a NUL cannot be sent. */
        if (a->client_name.ptr) {
            if (memchr(a->client_name.ptr, 0, a->client_name.len))
                goto out;
            name = malloc(a->client_name.len + 1u);
            FUZZ_CHECK(name, "malloc");
            memcpy(name, a->client_name.ptr, a->client_name.len);
            name[a->client_name.len] = 0;
        }
        rc = maos_enc_hello(&pk, a->rid, a->version, name);
        break;
    case MAOS_OP_PING:
    case MAOS_OP_STATS:
        rc = maos_enc_simple(&pk, a->rid, a->op);
        break;
    case MAOS_OP_APPEND:
        FUZZ_CHECK(a->n_appends == 1, "append with %u appends", a->n_appends);
        rc = maos_enc_append(&pk, a->rid, &a->appends[0]);
        break;
    case MAOS_OP_APPEND_BATCH:
        rc = maos_enc_append_batch(&pk, a->rid, a->appends, a->n_appends);
        break;
    case MAOS_OP_TXN:
        /* the old form when every item is an append (the ops form below) */
        if (a->n_appends == a->n_items)
            rc = maos_enc_txn(&pk, a->rid, a->appends, a->n_appends);
        else
            rc = maos_enc_txn_ops(&pk, a->rid, a->items, a->n_items);
        break;
    case MAOS_OP_READ:
        rc = maos_enc_read(&pk, a->rid, a->stream, a->has_from, a->from,
                           a->backward, a->limit);
        break;
    case MAOS_OP_READ_ALL:
        rc = maos_enc_read_all(&pk, a->rid, a->has_from, a->from, a->backward,
                               a->limit, &a->filter);
        break;
    case MAOS_OP_STREAMS:
        rc = maos_enc_streams(&pk, a->rid, a->prefix, a->after, a->limit);
        break;
    case MAOS_OP_SUBSCRIBE:
        rc = maos_enc_subscribe(&pk, a->rid, &a->filter,
                                a->has_from_version ? MAOS_FROM_VERSION
                                : a->has_from       ? MAOS_FROM_POSITION
                                                    : MAOS_FROM_LIVE,
                                a->has_from_version ? a->from_version : a->from);
        break;
    case MAOS_OP_UNSUBSCRIBE:
        rc = maos_enc_unsubscribe(&pk, a->rid, a->sub);
        break;
    case MAOS_OP_CHECKPOINT_SAVE:
        rc = maos_enc_checkpoint_save(&pk, a->rid, a->name, a->position);
        break;
    case MAOS_OP_CHECKPOINT_GET:
        rc = maos_enc_checkpoint_get(&pk, a->rid, a->name);
        break;
    case MAOS_OP_PUBLISH:
        rc = maos_enc_publish(&pk, a->rid, a->channel, a->payload);
        break;
    case MAOS_OP_SUBSCRIBE_CHANNEL:
        rc = maos_enc_subscribe_channel(&pk, a->rid, a->pattern);
        break;
    case MAOS_OP_PUT:
        rc = maos_enc_put(&pk, a->rid, a->items[0].table.name, a->items[0].key,
                          a->items[0].data, a->items[0].expect, a->items[0].bind);
        break;
    case MAOS_OP_DELETE:
        rc = maos_enc_delete(&pk, a->rid, a->items[0].table.name, a->items[0].key,
                             a->items[0].expect);
        break;
    case MAOS_OP_GET:
        rc = maos_enc_get(&pk, a->rid, a->table.name, a->key);
        break;
    case MAOS_OP_LIST:
        rc = maos_enc_list(&pk, a->rid, a->table.name, a->prefix, a->after, a->limit,
                           a->where);
        break;
    case MAOS_OP_COUNT:
        rc = maos_enc_count(&pk, a->rid, a->table.name, a->prefix, a->where);
        break;
    case MAOS_OP_WATCH:
        rc = maos_enc_watch(&pk, a->rid, a->table.name, a->prefix, a->watch_from,
                            a->watch_revision);
        break;
    case MAOS_OP_AGENT_REGISTER:
        rc = maos_enc_agent_register(&pk, a->rid, &a->agent);
        break;
    case MAOS_OP_AGENT_DEREGISTER:
        rc = maos_enc_agent_deregister(&pk, a->rid, a->agent.id);
        break;
    case MAOS_OP_AGENT_STATUS:
        rc = maos_enc_agent_status(&pk, a->rid, a->agent.status, a->agent.detail);
        break;
    case MAOS_OP_ENQUEUE:
        rc = maos_enc_enqueue(&pk, a->rid, a->items[0].queue, a->items[0].tasks,
                              a->items[0].n_tasks);
        break;
    case MAOS_OP_CLAIM:
        rc = maos_enc_claim(&pk, a->rid, a->items[0].queues, a->items[0].n_queues,
                            a->items[0].lease_ms, a->items[0].wait_ms, a->items[0].max_tasks,
                            a->items[0].bind);
        break;
    case MAOS_OP_ACK:
        rc = maos_enc_ack(&pk, a->rid, a->items[0].task, a->items[0].token,
                          a->items[0].result);
        break;
    case MAOS_OP_NACK:
        rc = maos_enc_nack(&pk, a->rid, a->items[0].task, a->items[0].token,
                           a->items[0].error, a->items[0].retry_after_ms);
        break;
    case MAOS_OP_EXTEND:
        rc = maos_enc_extend(&pk, a->rid, a->items[0].task, a->items[0].token,
                             a->items[0].lease_ms);
        break;
    case MAOS_OP_RELEASE:
        rc = maos_enc_task_release(&pk, a->rid, a->items[0].task, a->items[0].token);
        break;
    case MAOS_OP_DEAD_RETRY:
        rc = maos_enc_dead_retry(&pk, a->rid, a->items[0].queue,
                                 a->items[0].has_task ? a->items[0].task : NULL);
        break;
    case MAOS_OP_DEAD_PURGE:
        rc = maos_enc_dead_purge(&pk, a->rid, a->items[0].queue);
        break;
    case MAOS_OP_TASK:
        rc = maos_enc_task_get(&pk, a->rid, a->task);
        break;
    case MAOS_OP_QUEUE_STATS:
        rc = maos_enc_queue_stats(&pk, a->rid, a->queue);
        break;
    case MAOS_OP_DEAD_LIST:
        rc = maos_enc_dead_list(&pk, a->rid, a->queue, a->has_task ? a->task : NULL,
                                a->limit);
        break;
    case MAOS_OP_METRICS:
        rc = maos_enc_metrics(&pk, a->rid);
        break;
    case MAOS_OP_COMPACT:
        rc = maos_enc_compact(&pk, a->rid);
        break;
    case MAOS_OP_PUBKEY:
        rc = maos_enc_pubkey(&pk, a->rid);
        break;
    case MAOS_OP_TOKEN_LIST:
        rc = maos_enc_token_list(&pk, a->rid);
        break;
    case MAOS_OP_BACKUP:
        rc = maos_enc_backup(&pk, a->rid, a->path);
        break;
    case MAOS_OP_CHAIN_SIGN:
        rc = maos_enc_chain_sign(&pk, a->rid, a->position);
        break;
    case MAOS_OP_TASK_LIST:
        rc = maos_enc_task_list(&pk, a->rid, a->queue, a->has_task ? a->task : NULL,
                                a->limit);
        break;
    case MAOS_OP_STREAM_META:
        rc = maos_enc_stream_meta(&pk, a->rid, a->stream, &a->smeta);
        break;
    case MAOS_OP_TOKEN_CREATE:
        msgpack_sbuffer_destroy(&sb);
        token_create_roundtrip(a, frame, lim);
        return;
    case MAOS_OP_TOKEN_REVOKE:
        if (!(name = cstr_of(a->name)))
            goto out;
        rc = maos_enc_token_revoke(&pk, a->rid, name);
        break;
    default:
        FUZZ_CHECK(0, "decoded op %d has no encoder", (int)a->op);
    }
    FUZZ_CHECK(rc == 0, "encoding %s failed: %d", maos_op_name(a->op), rc);

    maos_request b;
    char why[256];
    rc = maos_request_decode(sb.data, sb.size, lim, &b, why, sizeof why);
    FUZZ_CHECK(rc == 0, "re-encoded %s does not decode: %s: %s",
               maos_op_name(a->op), maos_err_name(rc), why);
    FUZZ_CHECK(b.op == a->op && b.rid == a->rid, "op/rid");
    switch (a->op) {
    case MAOS_OP_BACKUP:
        FUZZ_CHECK(fuzz_slice_eq(a->path, b.path), "backup path");
        break;
    case MAOS_OP_CHAIN_SIGN:
        FUZZ_CHECK(a->position == b.position, "chain_sign position");
        break;
    case MAOS_OP_HELLO:
        FUZZ_CHECK(b.version == a->version, "version");
        FUZZ_CHECK(fuzz_slice_eq(a->client_name, b.client_name), "client");
        break;
    case MAOS_OP_TASK:
    case MAOS_OP_QUEUE_STATS:
    case MAOS_OP_DEAD_LIST:
    case MAOS_OP_TASK_LIST:
        FUZZ_CHECK(fuzz_slice_eq(a->queue, b.queue) && a->has_task == b.has_task &&
                       (!a->has_task || !memcmp(a->task, b.task, 16)),
                   "queue read fields");
        FUZZ_CHECK((a->op != MAOS_OP_DEAD_LIST && a->op != MAOS_OP_TASK_LIST) ||
                       a->limit == b.limit,
                   "page limit");
        break;
    case MAOS_OP_STREAM_META: {
        const maos_stream_meta_in *x = &a->smeta, *y = &b.smeta;
        FUZZ_CHECK(fuzz_slice_eq(a->stream, b.stream) &&
                       fuzz_slice_eq(x->category, y->category),
                   "stream_meta target");
        FUZZ_CHECK(!x->set == !y->set && (!x->set || (x->max_count == y->max_count &&
                                                      x->max_age_ms == y->max_age_ms)),
                   "stream_meta rule");
        FUZZ_CHECK(!x->clear == !y->clear && !x->delete_ == !y->delete_ &&
                       !x->has_truncate_before == !y->has_truncate_before &&
                       (!x->has_truncate_before || x->truncate_before == y->truncate_before),
                   "stream_meta actions");
        break;
    }
    case MAOS_OP_TOKEN_REVOKE:
        FUZZ_CHECK(fuzz_slice_eq(a->name, b.name), "token_revoke name");
        break;
    case MAOS_OP_ENQUEUE:
    case MAOS_OP_CLAIM:
    case MAOS_OP_ACK:
    case MAOS_OP_NACK:
    case MAOS_OP_EXTEND:
    case MAOS_OP_RELEASE:
    case MAOS_OP_DEAD_RETRY:
    case MAOS_OP_DEAD_PURGE:
    case MAOS_OP_APPEND:
    case MAOS_OP_TXN:
    case MAOS_OP_APPEND_BATCH:
    case MAOS_OP_PUT:
    case MAOS_OP_DELETE:
    case MAOS_OP_CHECKPOINT_SAVE:
        FUZZ_CHECK(a->n_appends == b.n_appends, "n_appends");
        for (uint32_t i = 0; i < a->n_appends; i++)
            same_append(&a->appends[i], &b.appends[i]);
        same_items(a, &b);
        break;
    case MAOS_OP_READ:
    case MAOS_OP_READ_ALL:
        if (a->op == MAOS_OP_READ)
            FUZZ_CHECK(fuzz_slice_eq(a->stream, b.stream), "stream");
        else
            same_filter(&a->filter, &b.filter);
        FUZZ_CHECK(a->has_from == b.has_from && (!a->has_from || a->from == b.from),
                   "from");
        FUZZ_CHECK(!a->backward == !b.backward, "backward");
        FUZZ_CHECK(a->limit == b.limit, "limit %u != %u", a->limit, b.limit);
        break;
    case MAOS_OP_STREAMS:
        FUZZ_CHECK(fuzz_slice_eq(a->prefix, b.prefix), "prefix");
        FUZZ_CHECK(fuzz_slice_eq(a->after, b.after), "after");
        FUZZ_CHECK(a->limit == b.limit, "limit %u != %u", a->limit, b.limit);
        break;
    case MAOS_OP_SUBSCRIBE:
        same_filter(&a->filter, &b.filter);
        FUZZ_CHECK(a->has_from == b.has_from && (!a->has_from || a->from == b.from),
                   "subscribe from");
        FUZZ_CHECK(a->has_from_version == b.has_from_version &&
                       (!a->has_from_version || a->from_version == b.from_version),
                   "subscribe from_version");
        FUZZ_CHECK((!a->has_from && !a->has_from_version) == (b.from_end != 0),
                   "subscribe live");
        break;
    case MAOS_OP_UNSUBSCRIBE:
        FUZZ_CHECK(a->sub == b.sub, "sub");
        break;
    case MAOS_OP_CHECKPOINT_GET:
        FUZZ_CHECK(fuzz_slice_eq(a->name, b.name), "checkpoint name");
        break;
    case MAOS_OP_PUBLISH:
        FUZZ_CHECK(fuzz_slice_eq(a->channel, b.channel), "channel");
        FUZZ_CHECK(same_opt_value(a->payload, b.payload), "payload");
        break;
    case MAOS_OP_SUBSCRIBE_CHANNEL:
        FUZZ_CHECK(fuzz_slice_eq(a->pattern, b.pattern), "pattern");
        break;
    case MAOS_OP_GET:
    case MAOS_OP_LIST:
    case MAOS_OP_COUNT:
    case MAOS_OP_WATCH:
        FUZZ_CHECK(a->table.kind == b.table.kind &&
                       fuzz_slice_eq(a->table.name, b.table.name),
                   "table");
        FUZZ_CHECK(fuzz_slice_eq(a->key, b.key), "key");
        FUZZ_CHECK(fuzz_slice_eq(a->prefix, b.prefix), "key prefix");
        FUZZ_CHECK(a->op != MAOS_OP_LIST || fuzz_slice_eq(a->after, b.after), "after");
        FUZZ_CHECK(a->op != MAOS_OP_LIST || a->limit == b.limit, "limit");
        FUZZ_CHECK(fuzz_slice_eq(a->where, b.where), "where");
        FUZZ_CHECK(a->watch_from == b.watch_from && a->watch_revision == b.watch_revision,
                   "watch from");
        FUZZ_CHECK(fuzz_slice_eq(a->filter.prefix, b.filter.prefix), "watch filter");
        break;
    case MAOS_OP_AGENT_REGISTER:
    case MAOS_OP_AGENT_DEREGISTER:
    case MAOS_OP_AGENT_STATUS:
        FUZZ_CHECK(fuzz_slice_eq(a->agent.id, b.agent.id), "agent id");
        FUZZ_CHECK(fuzz_slice_eq(a->agent.session, b.agent.session) &&
                       fuzz_slice_eq(a->agent.name, b.agent.name) &&
                       fuzz_slice_eq(a->agent.kind, b.agent.kind) &&
                       fuzz_slice_eq(a->agent.tags, b.agent.tags) &&
                       fuzz_slice_eq(a->agent.details, b.agent.details),
                   "agent fields");
        FUZZ_CHECK(fuzz_slice_eq(a->agent.status, b.agent.status) &&
                       fuzz_slice_eq(a->agent.detail, b.agent.detail),
                   "agent status");
        break;
    default:
        break;
    }
    maos_request_free(&b);

    /* A txn of appends only goes both ways in the ops form too, and a txn
     * of any items in the ops form. */
    if (a->op == MAOS_OP_TXN) {
        msgpack_sbuffer_clear(&sb);
        rc = maos_enc_txn_ops(&pk, a->rid, a->items, a->n_items);
        FUZZ_CHECK(rc == 0, "maos_enc_txn_ops: %d", rc);
        rc = maos_request_decode(sb.data, sb.size, lim, &b, why, sizeof why);
        FUZZ_CHECK(rc == 0, "re-encoded txn ops do not decode: %s: %s",
                   maos_err_name(rc), why);
        same_items(a, &b);
        maos_request_free(&b);
    }
out:
    free(name);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- one frame, as the daemon's dispatch sees it -------------------------- */

static void one_frame(maos_slice f, const maos_limits *lim)
{
    FUZZ_CHECK(f.len >= 1 && f.len <= lim->max_frame, "frame of %u bytes", f.len);
    int crc = maos_mp_check(f.ptr, f.len, lim);
    FUZZ_CHECK(crc == 0 || crc == MAOS_EBAD_FRAME || crc == MAOS_ELIMIT,
               "maos_mp_check returned %d", crc);

    maos_request req;
    char why[256];
    memset(why, 'x', sizeof why);
    int rc = maos_request_decode(f.ptr, f.len, lim, &req, why, sizeof why);
    FUZZ_CHECK(memchr(why, 0, sizeof why) != NULL, "why not terminated");
    if (rc == 0) {
        FUZZ_CHECK(crc == 0, "decoded a frame maos_mp_check rejects (%d)", crc);
        FUZZ_CHECK(req.op > MAOS_OP_NONE && req.op < MAOS_OP__COUNT, "op %d",
                   (int)req.op);
        FUZZ_CHECK(req.limit >= 1 && req.limit <= MAOS_READ_LIMIT_MAX, "limit %u",
                   req.limit);
        FUZZ_CHECK(req.error_index == -1, "error_index %lld on success",
                   (long long)req.error_index);
        check_items(&req);
        roundtrip(&req, f, lim);
    } else {
        FUZZ_CHECK(fuzz_known_err(rc), "unknown error code %d", rc);
        FUZZ_CHECK(why[0] != 0, "%s without a reason", maos_err_name(rc));
        FUZZ_CHECK(req.error_index == -1 ||
                       (req.op == MAOS_OP_TXN && req.error_index >= 0 &&
                        req.error_index < (int64_t)lim->max_appends) ||
                       (req.op == MAOS_OP_APPEND_BATCH && req.error_index >= 0 &&
                        req.error_index < (int64_t)lim->max_events),
                   "error_index %lld", (long long)req.error_index);
    }
    maos_request_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    maos_limits lim = {.max_frame = FUZZ_MAX_FRAME};
    maos_limits_defaults(&lim);
    uint64_t h = fnv1a(data, size);
    rng_state = h;
    int use_space = (int)(h >> 63);

    maos_reader r;
    maos_reader_init(&r, lim.max_frame);
    size_t off = 0;
    int rc = 0;
    while (off < size && rc >= 0) {
        size_t n = next_chunk();
        if (n > size - off)
            n = size - off;
        if (use_space) {
            char *p = NULL;
            long sp = maos_reader_space(&r, &p, 0);
            if (sp < 0) {
                rc = (int)sp;
                break;
            }
            FUZZ_CHECK(sp > 0 && p != NULL, "reader offered %ld bytes", sp);
            if ((size_t)sp < n)
                n = (size_t)sp;
            memcpy(p, data + off, n);
            maos_reader_commit(&r, n);
        } else {
            rc = maos_reader_feed(&r, data + off, n);
            if (rc < 0)
                break;
        }
        off += n;
        maos_slice f;
        while ((rc = maos_reader_next(&r, &f)) == 1)
            one_frame(f, &lim);
    }
    if (rc < 0) {
        FUZZ_CHECK(rc == MAOS_EFRAME_TOO_LARGE || rc == MAOS_EBAD_FRAME ||
                       rc == MAOS_ENOMEM,
                   "reader error %d", rc);
        FUZZ_CHECK(r.err == rc, "reader error %d not sticky (err %d)", rc, r.err);
        maos_slice f;
        char *p;
        FUZZ_CHECK(maos_reader_next(&r, &f) == rc, "next after error");
        FUZZ_CHECK(maos_reader_feed(&r, "x", 1) == rc, "feed after error");
        FUZZ_CHECK(maos_reader_space(&r, &p, 0) == rc, "space after error");
    }
    maos_reader_free(&r);
    return 0;
}
