/*
 * tests/python/gen_vectors.c -- proto/vectors/vectors.json: request, reply
 * and push payloads made by the C encoders of proto/msg.c, with their
 * meaning as JSON, so that every client checks its bytes against the same
 * fixtures (issue 11, "One protocol, checked the same way for every
 * client").
 *
 *   gen_vectors write FILE   write the vectors (made once, checked in:
 *                            build/tests/python/gen_vectors write proto/vectors/vectors.json)
 *   gen_vectors check FILE   the C test: make them again and require FILE
 *                            to be the same bytes; every request decodes
 *                            (maos_request_decode) to its op and rid, every
 *                            reply decodes (maos_reply_decode) and holds
 *                            what maos_reply_check requires for its op,
 *                            every push decodes (maos_push_decode)
 *
 * FILE: {"version": 1, "vectors": [V, ...]} with one V per line:
 *   {"name", "kind": "request"|"reply"|"push", "op", "hex", "value"}
 * hex is the msgpack payload (no length prefix: the frame is the 4-byte
 * big-endian length + these bytes); value is its meaning: msgpack maps as
 * JSON objects in the order of the bytes, str as strings, bin as
 * {"$bin": "HEX"}, nil/bool/int/float as themselves.  For replies `op` is
 * the request they answer.  Output is deterministic: fixed ids, times,
 * rids.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "maos/proto.h"

#define S(lit) ((maos_slice){lit, sizeof(lit) - 1})
#define NOSL ((maos_slice){NULL, 0})

static msgpack_sbuffer out;   /* the JSON being made */
static int n_vec, failed;

static void die(const char *what)
{
    fprintf(stderr, "gen_vectors: %s\n", what);
    exit(1);
}

static void emit(const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        die("emit overflow");
    msgpack_sbuffer_write(&out, tmp, (size_t)n);
}

static void emit_hex(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        emit("%02x", b[i]);
}

static void emit_jstr(const char *p, size_t n)
{
    emit("\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\')
            emit("\\%c", ch);
        else if (ch < 0x20)
            emit("\\u%04x", ch);
        else
            emit("%c", ch);
    }
    emit("\"");
}

/* msgpack object -> the JSON of the file header's conventions */
static void emit_obj(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: emit("null"); break;
    case MSGPACK_OBJECT_BOOLEAN: emit(o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: emit("%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: emit("%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: emit("%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: emit_jstr(o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN:
        emit("{\"$bin\": \"");
        emit_hex(o->via.bin.ptr, o->via.bin.size);
        emit("\"}");
        break;
    case MSGPACK_OBJECT_ARRAY:
        emit("[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                emit(", ");
            emit_obj(&o->via.array.ptr[i]);
        }
        emit("]");
        break;
    case MSGPACK_OBJECT_MAP:
        emit("{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                die("a map key that is not a str");
            if (i)
                emit(", ");
            emit_jstr(kv->key.via.str.ptr, kv->key.via.str.size);
            emit(": ");
            emit_obj(&kv->val);
        }
        emit("}");
        break;
    default: die("unsupported msgpack type");
    }
}

static void bad(const char *name, const char *why)
{
    fprintf(stderr, "gen_vectors: %s: %s\n", name, why);
    failed = 1;
}

/* Check one payload with the decoders, then append it to the file. */
static void vec(const char *name, const char *kind, maos_op op, const msgpack_sbuffer *sb)
{
    char why[256];
    if (!strcmp(kind, "request")) {
        maos_request req;
        maos_limits lim = {0};
        memset(&req, 0, sizeof req);
        maos_limits_defaults(&lim);
        if (maos_request_decode(sb->data, sb->size, &lim, &req, why, sizeof why))
            bad(name, why);
        else if (req.op != op)
            bad(name, "decodes to another op");
        maos_request_free(&req);
    } else if (!strcmp(kind, "reply")) {
        maos_reply rep;
        if (maos_reply_decode(sb->data, sb->size, &rep))
            bad(name, "reply does not decode");
        else if (rep.ok && maos_reply_check(&rep, op, why, sizeof why))
            bad(name, why);
        else if (rep.ok && op == MAOS_OP_APPEND_BATCH) { /* every element reads */
            maos_mpr r;
            maos_batch_result br;
            uint32_t n;
            maos_mpr_init(&r, rep.results.ptr, rep.results.len);
            int b = maos_mpr_array(&r, &n);
            for (uint32_t i = 0; !b && i < n; i++)
                b = maos_batch_result_next(&r, &br);
            if (b)
                bad(name, "an append_batch result does not read");
        }
    } else {
        maos_push p;
        if (maos_push_decode(sb->data, sb->size, &p) != 1)
            bad(name, "push does not decode as a push");
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != sb->size)
        die("a vector is not one msgpack value");
    emit("%s{\"name\": \"%s\", \"kind\": \"%s\", \"op\": \"%s\", \"hex\": \"", n_vec ? ",\n" : "",
         name, kind, maos_op_name(op));
    emit_hex(sb->data, sb->size);
    emit("\", \"value\": ");
    emit_obj(&u.data);
    emit("}");
    msgpack_unpacked_destroy(&u);
    n_vec++;
}

/* ---- building blocks ----------------------------------------------------- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void begin(void)
{
    msgpack_sbuffer_clear(&sb);
}

static void must(int rc, const char *what)
{
    if (rc)
        die(what);
}

/* raw msgpack made with a scratch packer, kept in static storage */
static maos_slice raw(msgpack_sbuffer *b)
{
    return (maos_slice){b->data, b->size};
}

static const uint8_t ID1[16] = {0x01, 0x90, 0xf0, 0xf0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t ID2[16] = {0x01, 0x90, 0xf0, 0xf0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t ID3[16] = {0x01, 0x90, 0xf0, 0xf0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 3};
static const uint8_t ID4[16] = {0x01, 0x90, 0xf0, 0xf0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 4};

static void pstr(msgpack_packer *p, const char *s)
{
    msgpack_pack_str(p, strlen(s));
    msgpack_pack_str_body(p, s, strlen(s));
}

static void requests(void)
{
    msgpack_sbuffer data, meta, doc, tags, details, where, result, detail;
    msgpack_packer q;
    msgpack_sbuffer_init(&data);
    msgpack_packer_init(&q, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 3);
    pstr(&q, "title"); pstr(&q, "write the report");
    pstr(&q, "priority"); msgpack_pack_int64(&q, 2);
    pstr(&q, "tags"); msgpack_pack_array(&q, 2); pstr(&q, "a"); msgpack_pack_int64(&q, -300);
    msgpack_sbuffer_init(&meta);
    msgpack_packer_init(&q, &meta, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1);
    pstr(&q, "agent"); pstr(&q, "planner");
    msgpack_sbuffer_init(&doc);
    msgpack_packer_init(&q, &doc, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 2);
    pstr(&q, "state"); pstr(&q, "open");
    pstr(&q, "n"); msgpack_pack_uint64(&q, 70000);
    msgpack_sbuffer_init(&tags);
    msgpack_packer_init(&q, &tags, msgpack_sbuffer_write);
    msgpack_pack_array(&q, 2); pstr(&q, "llm"); pstr(&q, "writer");
    msgpack_sbuffer_init(&details);
    msgpack_packer_init(&q, &details, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "model"); pstr(&q, "m-1");
    msgpack_sbuffer_init(&where);
    msgpack_packer_init(&q, &where, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "state"); pstr(&q, "open");
    msgpack_sbuffer_init(&result);
    msgpack_packer_init(&q, &result, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "ok"); msgpack_pack_true(&q);
    msgpack_sbuffer_init(&detail);
    msgpack_packer_init(&q, &detail, msgpack_sbuffer_write);
    pstr(&q, "step 3 of 5");

    begin(); must(maos_enc_hello(&pk, 1, 1, "maos-python"), "hello");
    vec("hello", "request", MAOS_OP_HELLO, &sb);
    begin(); must(maos_enc_simple(&pk, 2, MAOS_OP_PING), "ping");
    vec("ping", "request", MAOS_OP_PING, &sb);
    begin(); must(maos_enc_simple(&pk, 3, MAOS_OP_STATS), "stats");
    vec("stats", "request", MAOS_OP_STATS, &sb);

    maos_event_in ev[3];
    memset(ev, 0, sizeof ev);
    ev[0].type = S("created");
    ev[0].data = raw(&data);
    ev[0].meta = raw(&meta);
    memcpy(ev[0].id, ID1, 16);
    ev[0].has_id = 1;
    ev[1].type = S("assigned");
    ev[2].type = S("note");
    ev[2].data = raw(&detail);
    maos_append_in a = {.stream = S("task-42"), .expect = MAOS_EXPECT_NO_STREAM,
                        .n_events = 3, .events = ev};
    begin(); must(maos_enc_append(&pk, 4, &a), "append");
    vec("append_no_stream", "request", MAOS_OP_APPEND, &sb);
    a.expect = MAOS_EXPECT_ANY;
    a.n_events = 1;
    a.events = &ev[1];
    begin(); must(maos_enc_append(&pk, 5, &a), "append");
    vec("append_any", "request", MAOS_OP_APPEND, &sb);
    a.expect = MAOS_EXPECT_EXISTS;
    begin(); must(maos_enc_append(&pk, 6, &a), "append");
    vec("append_exists", "request", MAOS_OP_APPEND, &sb);
    a.expect = 300;
    begin(); must(maos_enc_append(&pk, 70000, &a), "append");
    vec("append_version", "request", MAOS_OP_APPEND, &sb);

    maos_append_in ta[2] = {
        {.stream = S("task-1"), .expect = 0, .n_events = 1, .events = &ev[1]},
        {.stream = S("job-1"), .expect = MAOS_EXPECT_ANY, .n_events = 1, .events = &ev[2]},
    };
    begin(); must(maos_enc_txn(&pk, 8, ta, 2), "txn");
    vec("txn_appends", "request", MAOS_OP_TXN, &sb);
    /* append_batch: the same stream twice, each append on its own (one
     * expect for all, as the Python client sends them) */
    maos_append_in ba[3] = {ta[0], ta[1], ta[0]};
    ba[0].expect = ba[2].expect = MAOS_EXPECT_ANY;
    begin(); must(maos_enc_append_batch_as(&pk, 10, ba, 3, MAOS_FORM_ARRAY), "append_batch");
    vec("append_batch", "request", MAOS_OP_APPEND_BATCH, &sb); /* results as arrays */

    maos_task_in tk[2];
    memset(tk, 0, sizeof tk);
    tk[0].data = raw(&data);
    tk[0].delay_ms = -1;
    tk[1].data = raw(&detail);
    tk[1].meta = raw(&meta);
    tk[1].priority = -3;
    tk[1].delay_ms = 5000;
    tk[1].max_attempts = 3;
    tk[1].lease_ms = 60000;
    tk[1].backoff_ms = 100;
    tk[1].dedupe_key = S("d-1");
    tk[1].ordering_key = S("o-1");
    maos_item_in it[9];
    memset(it, 0, sizeof it);
    it[0].kind = MAOS_ITEM_APPEND;
    it[0].append = &ta[0];
    it[1].kind = MAOS_ITEM_PUT;
    it[1].table.name = S("kv.plan");
    it[1].key = S("step-1");
    it[1].data = raw(&doc);
    it[1].expect = MAOS_EXPECT_ABSENT;
    it[2].kind = MAOS_ITEM_DELETE;
    it[2].table.name = S("kv.plan");
    it[2].key = S("step-0");
    it[2].expect = 12;
    it[3].kind = MAOS_ITEM_CHECKPOINT;
    it[3].name = S("indexer");
    it[3].position = 99;
    it[4].kind = MAOS_ITEM_ENQUEUE;
    it[4].queue = S("jobs");
    it[4].n_tasks = 1;
    it[4].tasks = &tk[0];
    it[5].kind = MAOS_ITEM_ACK;
    memcpy(it[5].task, ID1, 16);
    it[5].token = 41;
    it[5].result = raw(&result);
    it[6].kind = MAOS_ITEM_NACK;
    memcpy(it[6].task, ID2, 16);
    it[6].token = 42;
    it[6].error = S("boom");
    it[6].retry_after_ms = 250;
    it[7].kind = MAOS_ITEM_EXTEND;
    memcpy(it[7].task, ID3, 16);
    it[7].token = 43;
    it[7].lease_ms = 30000;
    it[8].kind = MAOS_ITEM_TASK_RELEASE;
    memcpy(it[8].task, ID4, 16);
    it[8].token = 44;
    begin(); must(maos_enc_txn_ops(&pk, 9, it, 9), "txn ops");
    vec("txn_ops", "request", MAOS_OP_TXN, &sb);

    begin(); must(maos_enc_read(&pk, 10, S("task-42"), 0, 0, 0, 0), "read");
    vec("read_default", "request", MAOS_OP_READ, &sb);
    begin(); must(maos_enc_read(&pk, 11, S("task-42"), 1, 7, 1, 50), "read");
    vec("read_backward", "request", MAOS_OP_READ, &sb);
    maos_slice types[2] = {S("created"), S("done")};
    maos_filter f = {.prefix = S("task-"), .category = S("task"), .n_types = 2,
                     .types = types, .has_since = 1, .since = 1700000000000000,
                     .has_until = 1, .until = 1800000000000000};
    begin(); must(maos_enc_read_all(&pk, 12, 1, 1000, 0, 500, &f), "read_all");
    vec("read_all_filter", "request", MAOS_OP_READ_ALL, &sb);
    begin(); must(maos_enc_read_all(&pk, 13, 0, 0, 1, 0, NULL), "read_all");
    vec("read_all_backward", "request", MAOS_OP_READ_ALL, &sb);
    /* the array form of records (PROTOCOL.md "Record forms") */
    begin(); must(maos_enc_read_as(&pk, 11, S("task-42"), 1, 7, 1, 50, MAOS_FORM_ARRAY),
                  "read");
    vec("read_array", "request", MAOS_OP_READ, &sb);
    begin(); must(maos_enc_read_all_as(&pk, 12, 1, 1000, 0, 500, &f, 0, MAOS_FORM_ARRAY),
                  "read_all");
    vec("read_all_array", "request", MAOS_OP_READ_ALL, &sb);
    begin(); must(maos_enc_streams(&pk, 14, S("task-"), S("task-1"), 100), "streams");
    vec("streams", "request", MAOS_OP_STREAMS, &sb);

    maos_filter fs = {.stream = S("task-42")};
    begin(); must(maos_enc_subscribe(&pk, 15, &fs, MAOS_FROM_POSITION, 1), "subscribe");
    vec("subscribe_start", "request", MAOS_OP_SUBSCRIBE, &sb);
    maos_filter ft = {.category = S("task"), .n_types = 1, .types = types};
    begin(); must(maos_enc_subscribe(&pk, 16, &ft, MAOS_FROM_LIVE, 0), "subscribe");
    vec("subscribe_end", "request", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_subscribe(&pk, 17, &fs, MAOS_FROM_VERSION, 5), "subscribe");
    vec("subscribe_from_version", "request", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_subscribe(&pk, 18, NULL, MAOS_FROM_POSITION, 1234), "subscribe");
    vec("subscribe_position", "request", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_subscribe_as(&pk, 16, &ft, MAOS_FROM_POSITION, 1, MAOS_FORM_ARRAY),
                  "subscribe");
    vec("subscribe_array", "request", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_unsubscribe(&pk, 19, 3), "unsubscribe");
    vec("unsubscribe", "request", MAOS_OP_UNSUBSCRIBE, &sb);
    begin(); must(maos_enc_checkpoint_save(&pk, 20, S("indexer"), 4096), "cp save");
    vec("checkpoint_save", "request", MAOS_OP_CHECKPOINT_SAVE, &sb);
    begin(); must(maos_enc_checkpoint_get(&pk, 21, S("indexer")), "cp get");
    vec("checkpoint_get", "request", MAOS_OP_CHECKPOINT_GET, &sb);
    begin(); must(maos_enc_publish(&pk, 22, S("cancel.job-1"), raw(&result)), "publish");
    vec("publish", "request", MAOS_OP_PUBLISH, &sb);
    begin(); must(maos_enc_publish(&pk, 23, S("tick"), NOSL), "publish");
    vec("publish_nil", "request", MAOS_OP_PUBLISH, &sb);
    begin(); must(maos_enc_subscribe_channel(&pk, 24, S("cancel.*")), "subscribe_channel");
    vec("subscribe_channel", "request", MAOS_OP_SUBSCRIBE_CHANNEL, &sb);

    begin(); must(maos_enc_put(&pk, 25, S("kv.plan"), S("step-1"), raw(&doc), MAOS_EXPECT_ANY, 0),
                  "put");
    vec("put", "request", MAOS_OP_PUT, &sb);
    begin(); must(maos_enc_put(&pk, 26, S("locks"), S("printer"), raw(&doc), MAOS_EXPECT_ABSENT, 1),
                  "put");
    vec("put_lock", "request", MAOS_OP_PUT, &sb);
    begin(); must(maos_enc_put(&pk, 27, S("kv.plan"), S("step-1"), raw(&doc), 77, 0), "put");
    vec("put_revision", "request", MAOS_OP_PUT, &sb);
    begin(); must(maos_enc_get(&pk, 28, S("kv.plan"), S("step-1")), "get");
    vec("get", "request", MAOS_OP_GET, &sb);
    begin(); must(maos_enc_delete(&pk, 29, S("kv.plan"), S("step-1"), MAOS_EXPECT_EXISTS), "del");
    vec("delete", "request", MAOS_OP_DELETE, &sb);
    begin(); must(maos_enc_list(&pk, 30, S("kv.plan"), S("step-"), S("step-2"), 10, raw(&where)),
                  "list");
    vec("list", "request", MAOS_OP_LIST, &sb);
    begin(); must(maos_enc_list(&pk, 31, S("sessions"), NOSL, NOSL, 0, NOSL), "list");
    vec("list_plain", "request", MAOS_OP_LIST, &sb);
    begin(); must(maos_enc_count(&pk, 32, S("kv.plan"), S("step-"), raw(&where)), "count");
    vec("count", "request", MAOS_OP_COUNT, &sb);
    begin(); must(maos_enc_watch(&pk, 33, S("kv.plan"), S("step-"), MAOS_WATCH_FROM_ENTRIES, 0),
                  "watch");
    vec("watch_entries", "request", MAOS_OP_WATCH, &sb);
    begin(); must(maos_enc_watch(&pk, 34, S("kv.plan"), NOSL, MAOS_WATCH_FROM_REVISION, 88),
                  "watch");
    vec("watch_revision", "request", MAOS_OP_WATCH, &sb);
    begin(); must(maos_enc_watch(&pk, 35, S("locks"), NOSL, MAOS_WATCH_FROM_NOW, 0), "watch");
    vec("watch_now", "request", MAOS_OP_WATCH, &sb);
    maos_agent_in ag = {.id = S("writer-1"), .session = S("s-1"), .name = S("Writer"),
                        .kind = S("llm"), .tags = raw(&tags), .details = raw(&details)};
    begin(); must(maos_enc_agent_register(&pk, 36, &ag), "agent_register");
    vec("agent_register", "request", MAOS_OP_AGENT_REGISTER, &sb);
    maos_agent_in ag2 = {.id = S("writer-2")};
    begin(); must(maos_enc_agent_register(&pk, 37, &ag2), "agent_register");
    vec("agent_register_plain", "request", MAOS_OP_AGENT_REGISTER, &sb);
    begin(); must(maos_enc_agent_deregister(&pk, 38, S("writer-1")), "agent_deregister");
    vec("agent_deregister", "request", MAOS_OP_AGENT_DEREGISTER, &sb);
    begin(); must(maos_enc_agent_status(&pk, 39, S("busy"), raw(&detail)), "agent_status");
    vec("agent_status", "request", MAOS_OP_AGENT_STATUS, &sb);

    begin(); must(maos_enc_enqueue(&pk, 40, S("jobs"), tk, 2), "enqueue");
    vec("enqueue", "request", MAOS_OP_ENQUEUE, &sb);
    maos_slice qs[2] = {S("jobs"), S("urgent")};
    begin(); must(maos_enc_claim(&pk, 41, qs, 2, 60000, 5000, 10, 1), "claim");
    vec("claim", "request", MAOS_OP_CLAIM, &sb);
    begin(); must(maos_enc_claim(&pk, 42, qs, 1, 0, 0, 0, 0), "claim");
    vec("claim_plain", "request", MAOS_OP_CLAIM, &sb);
    begin(); must(maos_enc_ack(&pk, 43, ID1, 41, raw(&result)), "ack");
    vec("ack", "request", MAOS_OP_ACK, &sb);
    begin(); must(maos_enc_ack(&pk, 44, ID1, 41, NOSL), "ack");
    vec("ack_plain", "request", MAOS_OP_ACK, &sb);
    begin(); must(maos_enc_nack(&pk, 45, ID2, 42, S("boom"), 250), "nack");
    vec("nack", "request", MAOS_OP_NACK, &sb);
    begin(); must(maos_enc_nack(&pk, 46, ID2, 42, NOSL, -1), "nack");
    vec("nack_plain", "request", MAOS_OP_NACK, &sb);
    begin(); must(maos_enc_extend(&pk, 47, ID1, 43, 30000), "extend");
    vec("extend", "request", MAOS_OP_EXTEND, &sb);
    begin(); must(maos_enc_task_release(&pk, 48, ID2, 44), "release");
    vec("release", "request", MAOS_OP_RELEASE, &sb);
    begin(); must(maos_enc_task_get(&pk, 49, ID1), "task");
    vec("task", "request", MAOS_OP_TASK, &sb);
    begin(); must(maos_enc_queue_stats(&pk, 50, S("jobs")), "queue_stats");
    vec("queue_stats", "request", MAOS_OP_QUEUE_STATS, &sb);
    begin(); must(maos_enc_queue_stats(&pk, 51, NOSL), "queue_stats");
    vec("queue_stats_all", "request", MAOS_OP_QUEUE_STATS, &sb);
    begin(); must(maos_enc_dead_list(&pk, 52, S("jobs"), ID1, 100), "dead_list");
    vec("dead_list", "request", MAOS_OP_DEAD_LIST, &sb);
    begin(); must(maos_enc_dead_retry(&pk, 53, S("jobs"), ID2), "dead_retry");
    vec("dead_retry", "request", MAOS_OP_DEAD_RETRY, &sb);
    begin(); must(maos_enc_dead_retry(&pk, 54, S("jobs"), NULL), "dead_retry");
    vec("dead_retry_all", "request", MAOS_OP_DEAD_RETRY, &sb);
    begin(); must(maos_enc_dead_purge(&pk, 55, S("jobs")), "dead_purge");
    vec("dead_purge", "request", MAOS_OP_DEAD_PURGE, &sb);
    {
        static const char *const scopes[] = {"read:s42-", "kv.write:kv.plan/s42/", "admin"};
        begin(); must(maos_enc_token_create(&pk, 56, "agent-7", scopes, 3, 3600000, 1000, "s42"),
                      "token_create");
        vec("token_create", "request", MAOS_OP_TOKEN_CREATE, &sb);
        begin(); must(maos_enc_token_list(&pk, 57), "token_list");
        vec("token_list", "request", MAOS_OP_TOKEN_LIST, &sb);
        begin(); must(maos_enc_token_revoke(&pk, 58, "agent-7"), "token_revoke");
        vec("token_revoke", "request", MAOS_OP_TOKEN_REVOKE, &sb);
    }

    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&meta);
    msgpack_sbuffer_destroy(&doc);
    msgpack_sbuffer_destroy(&tags);
    msgpack_sbuffer_destroy(&details);
    msgpack_sbuffer_destroy(&where);
    msgpack_sbuffer_destroy(&result);
    msgpack_sbuffer_destroy(&detail);
}

static void replies(void)
{
    msgpack_sbuffer data, meta, doc;
    msgpack_packer q;
    maos_list_mark mark;
    uint8_t prev[32], ids[32];
    memset(prev, 0xab, sizeof prev);
    memcpy(ids, ID1, 16);
    memcpy(ids + 16, ID2, 16);
    msgpack_sbuffer_init(&data);
    msgpack_packer_init(&q, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "title"); pstr(&q, "x");
    msgpack_sbuffer_init(&meta);
    msgpack_packer_init(&q, &meta, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "agent"); pstr(&q, "planner");
    msgpack_sbuffer_init(&doc);
    msgpack_packer_init(&q, &doc, msgpack_sbuffer_write);
    msgpack_pack_map(&q, 1); pstr(&q, "state"); pstr(&q, "open");

    begin(); must(maos_enc_reply_hello(&pk, 1, 1, "maosd 0.1.0", 16777216), "hello");
    vec("reply_hello", "reply", MAOS_OP_HELLO, &sb);
    begin(); must(maos_enc_reply_ok(&pk, 2), "ok");
    vec("reply_ping", "reply", MAOS_OP_PING, &sb);
    begin(); must(maos_enc_error(&pk, 4, MAOS_EWRONG_EXPECTED_VERSION,
                                 "stream task-42 is at version 0, expected no stream", 1, 0, -1),
                  "error");
    vec("reply_error_wrong_expected_version", "reply", MAOS_OP_APPEND, &sb);
    begin(); must(maos_enc_error(&pk, 8, MAOS_EWRONG_EXPECTED_VERSION, "txn append 1", 1, -1, 1),
                  "error");
    vec("reply_error_txn_index", "reply", MAOS_OP_TXN, &sb);
    begin(); must(maos_enc_error(&pk, 0, MAOS_EOVERLOADED, "too many connections", 0, 0, -1),
                  "error");
    vec("reply_error_rid0", "reply", MAOS_OP_HELLO, &sb);
    maos_append_result ar = {.stream = S("task-42"), .first_version = 0, .first_position = 1,
                             .count = 2, .duplicate = 0, .ids = {(const char *)ids, 32}};
    begin(); must(maos_enc_reply_append(&pk, 4, 0, &ar, 1), "append");
    vec("reply_append", "reply", MAOS_OP_APPEND, &sb);
    /* append_batch: a result, a refusal with actual, one without */
    maos_txn_result btr = {.kind = MAOS_ITEM_APPEND, .append = ar};
    begin();
    must(maos_enc_reply_txn_begin(&pk, 10, 3) || maos_enc_txn_result(&pk, &btr) ||
         maos_enc_batch_refusal(&pk, MAOS_EWRONG_EXPECTED_VERSION,
                                "stream job-1 is at version 4, expected version 0", 1, 4) ||
         maos_enc_batch_refusal(&pk, MAOS_ECONFLICT,
                                "event id 0190f0f0-0000-7000-8000-000000000001 is already "
                                "used in stream task-9", 0, 0),
         "append_batch reply");
    vec("reply_append_batch", "reply", MAOS_OP_APPEND_BATCH, &sb);
    /* the same with the result in the array form the request may ask for */
    begin();
    must(maos_enc_reply_txn_begin(&pk, 10, 3) || maos_enc_append_result_array(&pk, &ar) ||
         maos_enc_batch_refusal(&pk, MAOS_EWRONG_EXPECTED_VERSION,
                                "stream job-1 is at version 4, expected version 0", 1, 4) ||
         maos_enc_batch_refusal(&pk, MAOS_ECONFLICT,
                                "event id 0190f0f0-0000-7000-8000-000000000001 is already "
                                "used in stream task-9", 0, 0),
         "append_batch reply, array form");
    vec("reply_append_batch_array", "reply", MAOS_OP_APPEND_BATCH, &sb);

    /* a read page with one stored record, and the end */
    begin();
    must(maos_enc_list_begin(&sb, 10, "events", &mark), "list begin");
    must(maos_enc_record(&pk, 1, 1700000000123456, 0, S("task-42"), S("created"), ID1, prev,
                         raw(&data), raw(&meta)), "record");
    must(maos_enc_list_end(&sb, &mark, 1, MAOS_NEXT_UINT, 1, NOSL), "list end");
    vec("reply_read", "reply", MAOS_OP_READ, &sb);
    {
        /* the same page in the array form, and the stub of a removed
         * event after it */
        msgpack_sbuffer one, stub;
        msgpack_packer opk, spk;
        maos_record rec;
        uint8_t gone[MAOS_HASH_BYTES];
        memset(gone, 0xab, sizeof gone);
        msgpack_sbuffer_init(&one);
        msgpack_sbuffer_init(&stub);
        msgpack_packer_init(&opk, &one, msgpack_sbuffer_write);
        msgpack_packer_init(&spk, &stub, msgpack_sbuffer_write);
        must(maos_enc_record(&opk, 1, 1700000000123456, 0, S("task-42"), S("created"), ID1,
                             prev, raw(&data), raw(&meta)), "record");
        must(maos_record_decode(one.data, one.size, &rec), "record decode");
        rec.position = 2;
        rec.version = 1;
        must(maos_enc_stub(&spk, &rec, gone), "stub");
        begin();
        must(maos_enc_list_begin(&sb, 11, "events", &mark), "list begin");
        must(maos_record_to_array(one.data, one.size, &sb), "array record");
        must(maos_record_to_array(stub.data, stub.size, &sb), "array stub");
        must(maos_enc_list_end(&sb, &mark, 2, MAOS_NEXT_UINT, 1, NOSL), "list end");
        vec("reply_read_array", "reply", MAOS_OP_READ, &sb);
        msgpack_sbuffer_destroy(&one);
        msgpack_sbuffer_destroy(&stub);
    }
    begin();
    must(maos_enc_list_begin(&sb, 12, "events", &mark), "list begin");
    must(maos_enc_list_end(&sb, &mark, 0, MAOS_NEXT_NONE, 0, NOSL), "list end");
    vec("reply_read_all_end", "reply", MAOS_OP_READ_ALL, &sb);
    maos_stream_info si = {.stream = S("task-42"), .head = 2, .count = 3, .last_position = 9};
    begin();
    must(maos_enc_list_begin(&sb, 14, "streams", &mark), "list begin");
    must(maos_enc_stream_info(&pk, &si), "stream info");
    must(maos_enc_list_end(&sb, &mark, 1, MAOS_NEXT_STR, 0, S("task-42")), "list end");
    vec("reply_streams", "reply", MAOS_OP_STREAMS, &sb);
    begin(); must(maos_enc_reply_fields(&pk, 15, 1, 1, UINT64_MAX, UINT64_MAX), "fields");
    vec("reply_subscribe", "reply", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_reply_fields(&pk, 21, UINT64_MAX, UINT64_MAX, 4096, UINT64_MAX),
                  "fields");
    vec("reply_checkpoint_get", "reply", MAOS_OP_CHECKPOINT_GET, &sb);
    begin(); must(maos_enc_reply_fields(&pk, 22, UINT64_MAX, UINT64_MAX, UINT64_MAX, 2), "fields");
    vec("reply_publish", "reply", MAOS_OP_PUBLISH, &sb);
    begin(); must(maos_enc_reply_revision(&pk, 25, 12, 10), "revision");
    vec("reply_put", "reply", MAOS_OP_PUT, &sb);
    begin();
    must(maos_enc_reply_get_begin(&pk, 28), "get");
    must(maos_enc_entry(&pk, S("kv.plan"), S("step-1"), 12, 10, 1700000000000000,
                        1700000000500000, 0, raw(&doc)), "entry");
    vec("reply_get", "reply", MAOS_OP_GET, &sb);
    begin(); must(maos_enc_reply_count(&pk, 32, 5, 99), "count");
    vec("reply_count", "reply", MAOS_OP_COUNT, &sb);
    begin(); must(maos_enc_reply_watch(&pk, 33, 2, 99), "watch");
    vec("reply_watch", "reply", MAOS_OP_WATCH, &sb);

    /* pushes */
    begin();
    must(maos_enc_push_events_begin(&sb, 1, &mark), "push begin");
    must(maos_enc_record(&pk, 2, 1700000000123457, 1, S("task-42"), S("assigned"), ID2, prev,
                         NOSL, NOSL), "record");
    must(maos_enc_push_events_end(&sb, &mark, 1, 3), "push end");
    vec("push_events", "push", MAOS_OP_SUBSCRIBE, &sb);
    {
        /* the same push in the array form */
        msgpack_sbuffer one;
        msgpack_packer opk;
        msgpack_sbuffer_init(&one);
        msgpack_packer_init(&opk, &one, msgpack_sbuffer_write);
        must(maos_enc_record(&opk, 2, 1700000000123457, 1, S("task-42"), S("assigned"), ID2,
                             prev, NOSL, NOSL), "record");
        begin();
        must(maos_enc_push_events_begin(&sb, 1, &mark), "push begin");
        must(maos_record_to_array(one.data, one.size, &sb), "array record");
        must(maos_enc_push_events_end(&sb, &mark, 1, 3), "push end");
        vec("push_events_array", "push", MAOS_OP_SUBSCRIBE, &sb);
        msgpack_sbuffer_destroy(&one);
    }
    begin(); must(maos_enc_push_state(&pk, MAOS_PUSH_CAUGHT_UP, 1, 3), "caught_up");
    vec("push_caught_up", "push", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_push_state(&pk, MAOS_PUSH_FELL_BEHIND, 1, 3), "fell_behind");
    vec("push_fell_behind", "push", MAOS_OP_SUBSCRIBE, &sb);
    begin(); must(maos_enc_push_message(&pk, 4, S("cancel.job-1"), raw(&meta)), "message");
    vec("push_message", "push", MAOS_OP_SUBSCRIBE_CHANNEL, &sb);
    begin();
    must(maos_enc_push_entries_begin(&sb, 2, &mark), "entries begin");
    must(maos_enc_entry(&pk, S("kv.plan"), S("step-1"), 12, 10, 1700000000000000,
                        1700000000500000, 1, raw(&doc)), "entry");
    must(maos_enc_push_entries_end(&sb, &mark, 1, 99, 0), "entries end");
    vec("push_entries", "push", MAOS_OP_WATCH, &sb);

    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&meta);
    msgpack_sbuffer_destroy(&doc);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "check"))) {
        fprintf(stderr, "usage: gen_vectors write|check FILE\n");
        return 2;
    }
    msgpack_sbuffer_init(&out);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    emit("{\"version\": 1, \"vectors\": [\n");
    requests();
    replies();
    emit("\n]}\n");
    if (failed)
        return 1;
    int rc = 0;
    if (!strcmp(argv[1], "write")) {
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(out.data, 1, out.size, f) != out.size || fclose(f))
            die("cannot write the file");
        printf("gen_vectors: %d vectors written to %s\n", n_vec, argv[2]);
    } else {
        FILE *f = fopen(argv[2], "rb");
        char *buf = malloc(out.size + 1);
        size_t n = f && buf ? fread(buf, 1, out.size + 1, f) : 0;
        if (f)
            fclose(f);
        if (n != out.size || memcmp(buf, out.data, out.size)) {
            fprintf(stderr, "gen_vectors: %s differs from what the C encoders make now "
                            "(%zu vs %zu bytes); if the wire changed on purpose, "
                            "regenerate it with: gen_vectors write %s\n",
                    argv[2], n, out.size, argv[2]);
            rc = 1;
        } else {
            printf("gen_vectors: all %d vectors of %s match the C encoders byte for byte\n",
                   n_vec, argv[2]);
        }
        free(buf);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&out);
    return rc;
}
