/*
 * proto/msg.c -- every maos message's layout: request decoders and
 * encoders, the stored event record, and replies.  proto/PROTOCOL.md
 * describes the same layouts in prose; change both together.
 *
 * All messages are msgpack maps with short string keys.  Decoders accept
 * keys in any order and skip unknown keys (forward compatibility); a known
 * key with a value of the wrong type is a BAD_REQUEST (requests) or PROTO
 * (replies) error.  Decoding allocates only arrays whose element count has
 * already been checked against the bytes present and the limits.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maos/proto.h"

/* ---- ops ---------------------------------------------------------------- */

static const char *const op_names[MAOS_OP__COUNT] = {
    [MAOS_OP_NONE] = NULL,
#define MAOS_OP_NAME_(e, name) [MAOS_OP_##e] = name,
    MAOS_OPS_MAP(MAOS_OP_NAME_)
#undef MAOS_OP_NAME_
};

const char *maos_op_name(maos_op op)
{
    if ((int)op <= 0 || op >= MAOS_OP__COUNT)
        return NULL;
    return op_names[op];
}

maos_op maos_op_from_name(const char *name, size_t len)
{
    for (int i = 1; i < MAOS_OP__COUNT; i++)
        if (strlen(op_names[i]) == len && memcmp(op_names[i], name, len) == 0)
            return (maos_op)i;
    return MAOS_OP_NONE;
}

/* ---- small helpers -------------------------------------------------------- */

static int key_is(maos_slice k, const char *lit)
{
    size_t n = strlen(lit);
    return k.len == n && memcmp(k.ptr, lit, n) == 0;
}

static int pk_raw(msgpack_packer *pk, const void *p, size_t n)
{
    return pk->callback(pk->data, p, n) ? MAOS_ENOMEM : 0;
}

static int pk_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n))
        return MAOS_ENOMEM;
    return 0;
}

static int pk_slice(msgpack_packer *pk, maos_slice s)
{
    if (msgpack_pack_str(pk, s.len) || msgpack_pack_str_body(pk, s.ptr, s.len))
        return MAOS_ENOMEM;
    return 0;
}

static int pk_bin(msgpack_packer *pk, const void *p, size_t n)
{
    if (msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, p, n))
        return MAOS_ENOMEM;
    return 0;
}

/* Write key/value pairs; each returns nonzero on failure. */
#define KV_U64(pk, k, v) (pk_cstr(pk, k) || msgpack_pack_uint64(pk, v))
#define KV_I64(pk, k, v) (pk_cstr(pk, k) || msgpack_pack_int64(pk, v))
#define KV_STR(pk, k, s) (pk_cstr(pk, k) || pk_slice(pk, s))
#define KV_CSTR(pk, k, s) (pk_cstr(pk, k) || pk_cstr(pk, s))
#define KV_BOOL(pk, k, b) (pk_cstr(pk, k) || ((b) ? msgpack_pack_true(pk) : msgpack_pack_false(pk)))

static int head_rep(msgpack_packer *pk, uint32_t n, uint64_t rid, int ok);
static int head_req(msgpack_packer *pk, uint32_t n, uint64_t rid, maos_op op)
{
    if (msgpack_pack_map(pk, n + 2) || KV_CSTR(pk, "op", maos_op_name(op)) ||
        KV_U64(pk, "rid", rid))
        return MAOS_ENOMEM;
    return 0;
}

static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static int enc_filter_keys(msgpack_packer *pk, const maos_filter *f);
static uint32_t filter_keys(const maos_filter *f);
static int dec_list(maos_mpr *r, uint32_t *count, maos_slice *raw);
static int dec_records(maos_mpr *r, uint32_t *count, maos_slice *raw, maos_record_sink sink,
                       void *arg);
static uint32_t qitem_keys(const maos_item_in *it);
static int enc_qitem_body(msgpack_packer *pk, const maos_item_in *it);
static int kv_raw(msgpack_packer *pk, const char *k, maos_slice v);
static int kv_opt_str(msgpack_packer *pk, const char *k, maos_slice v);
static const char *qitem_op_name(int kind);
static int is_qitem(int kind);

/* ---- request arena -------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    max_align_t data[];
} chunk;

static void *req_alloc(maos_request *req, size_t n)
{
    chunk *c = calloc(1, sizeof(chunk) + n);
    if (!c)
        return NULL;
    c->next = req->mem_;
    req->mem_ = c;
    return c->data;
}

void maos_request_free(maos_request *req)
{
    if (!req)
        return;
    chunk *c = req->mem_;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    req->mem_ = NULL;
}

/* ---- request decoding ------------------------------------------------------ */

typedef struct dec {
    maos_request *req;
    const maos_limits *lim;
    char *why;
    size_t whylen;
    uint64_t events; /* events decoded so far, across a txn's appends */
} dec;

#define FAIL(d, code, ...) (why_set((d)->why, (d)->whylen, __VA_ARGS__), (code))

/* A string of min..max bytes of valid UTF-8 without NUL. */
static int dec_text(dec *d, maos_mpr *r, maos_slice *out, const char *what,
                    uint32_t min, uint32_t max)
{
    if (maos_mpr_str(r, out))
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must be a string", what);
    if (maos_utf8_check(*out, min, max)) {
        if (min)
            return FAIL(d, MAOS_EINVALID_NAME,
                        "%s must be %u..%u bytes of valid UTF-8 without NUL", what,
                        min, max);
        return FAIL(d, MAOS_EINVALID_NAME,
                    "%s must be at most %u bytes of valid UTF-8 without NUL", what, max);
    }
    return 0;
}

/* Types, checkpoint names, channels, patterns. */
static int dec_name(dec *d, maos_mpr *r, maos_slice *out, const char *what)
{
    return dec_text(d, r, out, what, 1, MAOS_NAME_MAX);
}

static int dec_stream(dec *d, maos_mpr *r, maos_slice *out, const char *what)
{
    return dec_text(d, r, out, what, 1, MAOS_STREAM_MAX);
}

/* Optional string that may be empty (prefixes, cursors) of at most max bytes. */
static int dec_opt_str(dec *d, maos_mpr *r, maos_slice *out, const char *what,
                       uint32_t max)
{
    return dec_text(d, r, out, what, 0, max);
}

static int dec_entry_key(dec *d, maos_mpr *r, maos_slice *out, const char *what)
{
    if (maos_mpr_str(r, out))
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must be a string", what);
    if (maos_key_check(*out))
        return FAIL(d, MAOS_EINVALID_NAME,
                    "%s must be 1..%u bytes of valid UTF-8 without NUL", what,
                    MAOS_KEY_MAX);
    return 0;
}

static int dec_table(dec *d, maos_mpr *r, maos_table_ref *t)
{
    maos_slice s;
    if (maos_mpr_str(r, &s))
        return FAIL(d, MAOS_EBAD_REQUEST, "table must be a string");
    if (maos_table_parse(s, t))
        return FAIL(d, MAOS_EINVALID_NAME,
                    "unknown table kind \"%.*s\" (sessions, agents, locks or kv.NAME, "
                    "NAME 1..%u bytes of A-Z a-z 0-9 _ .)",
                    (int)(s.len > 64 ? 64 : s.len), s.ptr, MAOS_KV_NAME_MAX);
    return 0;
}

static int dec_event(dec *d, maos_mpr *r, maos_event_in *ev)
{
    uint32_t n;
    int have_type = 0;
    if (maos_mpr_map(r, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "each event must be a map");
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(r, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "event keys must be strings");
        if (key_is(k, "id")) {
            maos_slice s;
            int t = maos_mpr_peek(r);
            if (t == MAOS_MP_BIN) {
                static const uint8_t zero[16];
                maos_mpr_bin(r, &s);
                if (s.len != 16 || memcmp(s.ptr, zero, 16) == 0)
                    return FAIL(d, MAOS_EINVALID_ID,
                                "event id must be 16 bytes and not the nil UUID");
                memcpy(ev->id, s.ptr, 16);
            } else if (t == MAOS_MP_STR) {
                maos_mpr_str(r, &s);
                if (maos_uuid_parse(s.ptr, s.len, ev->id))
                    return FAIL(d, MAOS_EINVALID_ID,
                                "event id must be a UUID (36 characters, not nil)");
            } else if (t == MAOS_MP_NIL) {
                maos_mpr_nil(r);
                continue;
            } else {
                return FAIL(d, MAOS_EINVALID_ID, "event id must be bin 16 or UUID text");
            }
            ev->has_id = 1;
        } else if (key_is(k, "type")) {
            int rc = dec_name(d, r, &ev->type, "event type");
            if (rc)
                return rc;
            have_type = 1;
        } else if (key_is(k, "data")) {
            if (maos_mpr_skip(r, &ev->data))
                return FAIL(d, MAOS_EBAD_REQUEST, "event data is malformed");
        } else if (key_is(k, "meta")) {
            int t = maos_mpr_peek(r);
            if (t == MAOS_MP_NIL) {
                maos_mpr_nil(r);
                ev->meta.len = 0;
            } else if (t == MAOS_MP_MAP) {
                maos_mpr_skip(r, &ev->meta);
            } else {
                return FAIL(d, MAOS_EBAD_REQUEST, "event meta must be a map");
            }
        } else if (maos_mpr_skip(r, NULL)) {
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value in event");
        }
    }
    if (!have_type)
        return FAIL(d, MAOS_EBAD_REQUEST, "event type is required");
    return 0;
}

static int dec_events(dec *d, maos_mpr *r, maos_append_in *a)
{
    uint32_t n;
    if (maos_mpr_array(r, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "events must be an array");
    if (n == 0)
        return FAIL(d, MAOS_EBAD_REQUEST, "events must not be empty");
    /* Checked against the running total before allocating, so a txn of
     * many appends cannot allocate more than one request's worth. */
    if (n > d->lim->max_events || d->events + n > d->lim->max_events)
        return FAIL(d, MAOS_ELIMIT, "too many events in one request (more than %u)",
                    d->lim->max_events);
    d->events += n;
    a->events = req_alloc(d->req, (size_t)n * sizeof(maos_event_in));
    if (!a->events)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    a->n_events = n;
    for (uint32_t i = 0; i < n; i++) {
        int rc = dec_event(d, r, &a->events[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* expect of an append (table 0: "no_stream") or of a put/delete (table 1:
 * "absent"); both take "any", "exists" and an exact number. */
static int dec_expect(dec *d, maos_mpr *r, int64_t *out, int table)
{
    int t = maos_mpr_peek(r);
    if (t == MAOS_MP_UINT) {
        uint64_t v;
        maos_mpr_uint(r, &v);
        if (v > (uint64_t)INT64_MAX)
            return FAIL(d, MAOS_EBAD_REQUEST, "expect is out of range");
        *out = (int64_t)v;
        return 0;
    }
    maos_slice s;
    if (t == MAOS_MP_STR) {
        maos_mpr_str(r, &s);
        if (key_is(s, "any")) { *out = MAOS_EXPECT_ANY; return 0; }
        if (key_is(s, "exists")) { *out = MAOS_EXPECT_EXISTS; return 0; }
        if (!table && key_is(s, "no_stream")) { *out = MAOS_EXPECT_NO_STREAM; return 0; }
        if (table && key_is(s, "absent")) { *out = MAOS_EXPECT_ABSENT; return 0; }
    }
    if (table)
        return FAIL(d, MAOS_EBAD_REQUEST,
                    "expect must be a revision or \"any\", \"absent\", \"exists\"");
    return FAIL(d, MAOS_EBAD_REQUEST,
                "expect must be a version or \"any\", \"no_stream\", \"exists\"");
}

/* One append body: keys stream, expect, events (used for append requests
 * at the top level and for each element of a txn). */
static int dec_append_key(dec *d, maos_mpr *r, maos_slice k, maos_append_in *a,
                          int *handled)
{
    *handled = 1;
    if (key_is(k, "stream"))
        return dec_stream(d, r, &a->stream, "stream");
    if (key_is(k, "expect"))
        return dec_expect(d, r, &a->expect, 0);
    if (key_is(k, "events"))
        return dec_events(d, r, a);
    *handled = 0;
    return 0;
}

static int check_append(dec *d, const maos_append_in *a)
{
    if (!a->stream.len)
        return FAIL(d, MAOS_EBAD_REQUEST, "stream is required");
    if (a->stream.ptr[0] == '$' && !d->lim->system)
        return FAIL(d, MAOS_EINVALID_NAME,
                    "streams starting with '$' are reserved for the system");
    if (!d->lim->system && maos_stream_is_table(a->stream)) {
        maos_slice c = maos_category(a->stream);
        return FAIL(d, MAOS_EINVALID_NAME,
                    "stream category %.*s is written by table operations",
                    (int)(c.len > 80 ? 80 : c.len), c.ptr);
    }
    if (!a->n_events)
        return FAIL(d, MAOS_EBAD_REQUEST, "events are required");
    return 0;
}

/* The keys of a put or delete (top level or a txn op) into *it. */
static int dec_put_key(dec *d, maos_mpr *r, maos_slice k, maos_item_in *it,
                       int *handled)
{
    *handled = 1;
    if (key_is(k, "table"))
        return dec_table(d, r, &it->table);
    if (key_is(k, "key"))
        return dec_entry_key(d, r, &it->key, "key");
    if (key_is(k, "expect"))
        return dec_expect(d, r, &it->expect, 1);
    if (it->kind == MAOS_ITEM_PUT && key_is(k, "data")) {
        if (maos_mpr_peek(r) != MAOS_MP_MAP)
            return FAIL(d, MAOS_EBAD_REQUEST, "data must be a map");
        maos_mpr_skip(r, &it->data);
        return 0;
    }
    if (it->kind == MAOS_ITEM_PUT && key_is(k, "bind")) {
        if (maos_mpr_bool(r, &it->bind))
            return FAIL(d, MAOS_EBAD_REQUEST, "bind must be a boolean");
        return 0;
    }
    *handled = 0;
    return 0;
}

static int check_put(dec *d, const maos_item_in *it)
{
    const char *op = it->kind == MAOS_ITEM_PUT ? "put" : "delete";
    if (!it->table.kind)
        return FAIL(d, MAOS_EBAD_REQUEST, "%s needs a table", op);
    if (!it->key.len)
        return FAIL(d, MAOS_EBAD_REQUEST, "%s needs a key", op);
    if (it->kind == MAOS_ITEM_PUT && !it->data.len)
        return FAIL(d, MAOS_EBAD_REQUEST, "data must be a map (put needs data)");
    if (it->kind == MAOS_ITEM_DELETE && it->expect == MAOS_EXPECT_ABSENT)
        return FAIL(d, MAOS_EBAD_REQUEST, "delete cannot expect \"absent\"");
    return 0;
}

static int same_slice(maos_slice a, maos_slice b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* A txn names each stream, each (table, key) and each checkpoint once. */
static int check_unique(dec *d, const maos_item_in *items, uint32_t i)
{
    const maos_item_in *it = &items[i];
    for (uint32_t j = 0; j < i; j++) {
        const maos_item_in *o = &items[j];
        if (it->has_task && o->has_task) {
            if (!memcmp(it->task, o->task, 16))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "a txn may name each task once (%u repeats %u's)", i, j);
            continue;
        }
        if (is_qitem(it->kind) || is_qitem(o->kind))
            continue;
        if (o->kind != it->kind &&
            !(it->kind == MAOS_ITEM_PUT && o->kind == MAOS_ITEM_DELETE) &&
            !(it->kind == MAOS_ITEM_DELETE && o->kind == MAOS_ITEM_PUT))
            continue;
        switch (it->kind) {
        case MAOS_ITEM_APPEND:
            if (same_slice(o->append->stream, it->append->stream))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "a txn may name each stream once (%u repeats %u's)", i, j);
            break;
        case MAOS_ITEM_PUT:
        case MAOS_ITEM_DELETE:
            if (same_slice(o->table.name, it->table.name) && same_slice(o->key, it->key))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "a txn may name each (table, key) once (%u repeats %u's)",
                            i, j);
            break;
        default:
            if (same_slice(o->name, it->name))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "a txn may name each checkpoint once (%u repeats %u's)", i, j);
            break;
        }
    }
    return 0;
}

/* txn's element array header: 1..max_appends elements (append_batch:
 * 1..max_events); allocates the items and (upper bound) the appends. */
static int dec_txn_head(dec *d, maos_mpr *r, const char *what, uint32_t *n)
{
    maos_request *req = d->req;
    int batch = req->op == MAOS_OP_APPEND_BATCH;
    uint32_t max = batch ? d->lim->max_events : d->lim->max_appends;
    if (req->n_items)
        return FAIL(d, MAOS_EBAD_REQUEST, "a txn has one appends or one ops list");
    if (maos_mpr_array(r, n))
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must be an array", what);
    if (*n == 0)
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must not be empty", what);
    if (*n > max)
        return FAIL(d, MAOS_ELIMIT, "too many %s in one %s (%u > %u)", what,
                    batch ? "append_batch" : "txn", *n, max);
    req->appends = req_alloc(req, (size_t)*n * sizeof(maos_append_in));
    req->items = req_alloc(req, (size_t)*n * sizeof(maos_item_in));
    if (!req->appends || !req->items)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    return 0;
}

/* One append map (the old form's elements and the ops form's "append"). */
static int dec_append_map(dec *d, maos_mpr *r, maos_append_in *a)
{
    uint32_t m;
    a->expect = MAOS_EXPECT_ANY;
    if (maos_mpr_map(r, &m))
        return FAIL(d, MAOS_EBAD_REQUEST, "each append must be a map");
    for (uint32_t j = 0; j < m; j++) {
        maos_slice k;
        int handled, rc;
        if (maos_mpr_str(r, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "keys must be strings");
        rc = dec_append_key(d, r, k, a, &handled);
        if (rc)
            return rc;
        if (!handled && maos_mpr_skip(r, NULL))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    }
    return check_append(d, a);
}

/* {appends: [{stream, expect?, events}, ...]}: a txn names each stream
 * once; an append_batch may name one again (its appends are applied in
 * order, each on its own). */
static int dec_txn(dec *d, maos_mpr *r)
{
    maos_request *req = d->req;
    uint32_t n;
    int rc = dec_txn_head(d, r, "appends", &n);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        maos_append_in *a = &req->appends[i];
        maos_item_in *it = &req->items[i];
        req->error_index = i;
        it->kind = MAOS_ITEM_APPEND;
        it->append = a;
        if ((rc = dec_append_map(d, r, a)) ||
            (req->op == MAOS_OP_TXN && (rc = check_unique(d, req->items, i))))
            return rc;
        req->n_appends = req->n_items = i + 1;
    }
    req->error_index = -1;
    return 0;
}

/* ---- queues ---------------------------------------------------------------- */

static int dec_queue_name(dec *d, maos_mpr *r, maos_slice *out)
{
    if (maos_mpr_str(r, out))
        return FAIL(d, MAOS_EBAD_REQUEST, "queue must be a string");
    if (maos_queue_name_check(*out))
        return FAIL(d, MAOS_EINVALID_NAME,
                    "queue name must be 1..%u bytes of A-Z a-z 0-9 _ . -",
                    MAOS_QUEUE_NAME_MAX);
    return 0;
}

/* A task id: bin 16 or UUID text, not the nil UUID. */
static int dec_task_id(dec *d, maos_mpr *r, uint8_t id[16], const char *what)
{
    static const uint8_t zero[16];
    maos_slice s;
    int t = maos_mpr_peek(r);
    if (t == MAOS_MP_BIN) {
        maos_mpr_bin(r, &s);
        if (s.len != 16 || memcmp(s.ptr, zero, 16) == 0)
            return FAIL(d, MAOS_EINVALID_ID, "%s must be a task id (bin 16, not nil)",
                        what);
        memcpy(id, s.ptr, 16);
        return 0;
    }
    if (t == MAOS_MP_STR) {
        maos_mpr_str(r, &s);
        if (maos_uuid_parse(s.ptr, s.len, id))
            return FAIL(d, MAOS_EINVALID_ID, "%s must be a task id (a UUID)", what);
        return 0;
    }
    return FAIL(d, MAOS_EINVALID_ID, "%s must be a task id (bin 16 or UUID text)", what);
}

/* An unsigned integer in min..max. */
static int dec_range(dec *d, maos_mpr *r, uint64_t min, uint64_t max,
                     const char *what, uint64_t *out)
{
    if (maos_mpr_uint(r, out) || *out < min || *out > max)
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must be an integer in %llu..%llu", what,
                    (unsigned long long)min, (unsigned long long)max);
    return 0;
}

static int dec_task_spec(dec *d, maos_mpr *r, maos_task_in *t)
{
    uint32_t m;
    uint64_t u;
    int64_t v;
    int rc = 0;
    t->delay_ms = -1;
    if (maos_mpr_map(r, &m))
        return FAIL(d, MAOS_EBAD_REQUEST, "each task must be a map");
    for (uint32_t j = 0; j < m && !rc; j++) {
        maos_slice k;
        if (maos_mpr_str(r, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "keys must be strings");
        if (key_is(k, "data")) {
            if (maos_mpr_skip(r, &t->data))
                rc = FAIL(d, MAOS_EBAD_REQUEST, "task data is malformed");
        } else if (key_is(k, "meta")) {
            if (maos_mpr_peek(r) == MAOS_MP_NIL)
                maos_mpr_nil(r);
            else if (maos_mpr_peek(r) != MAOS_MP_MAP)
                rc = FAIL(d, MAOS_EBAD_REQUEST, "task meta must be a map");
            else
                maos_mpr_skip(r, &t->meta);
        } else if (key_is(k, "priority")) {
            if (maos_mpr_int(r, &v) || v < INT32_MIN || v > INT32_MAX)
                rc = FAIL(d, MAOS_EBAD_REQUEST, "priority must be an integer in "
                          "-2147483648..2147483647");
            t->priority = (int32_t)v;
        } else if (key_is(k, "delay")) {
            rc = dec_range(d, r, 0, MAOS_DELAY_MS_MAX, "delay (ms)", &u);
            t->delay_ms = (int64_t)u;
        } else if (key_is(k, "not_before")) {
            if (maos_mpr_int(r, &t->not_before) || t->not_before < 0)
                rc = FAIL(d, MAOS_EBAD_REQUEST,
                          "not_before must be microseconds since the epoch (>= 0)");
        } else if (key_is(k, "max_attempts")) {
            rc = dec_range(d, r, 1, MAOS_ATTEMPTS_MAX, "max_attempts", &u);
            t->max_attempts = (uint32_t)u;
        } else if (key_is(k, "lease_ms")) {
            rc = dec_range(d, r, 1, MAOS_LEASE_MS_MAX, "lease_ms", &u);
            t->lease_ms = (uint32_t)u;
        } else if (key_is(k, "backoff_ms")) {
            rc = dec_range(d, r, 0, MAOS_BACKOFF_MAX_MS, "backoff_ms", &u);
            t->backoff_ms = (uint32_t)u;
        } else if (key_is(k, "dedupe_key")) {
            rc = dec_entry_key(d, r, &t->dedupe_key, "dedupe_key");
        } else if (key_is(k, "ordering_key")) {
            rc = dec_entry_key(d, r, &t->ordering_key, "ordering_key");
        } else if (maos_mpr_skip(r, NULL)) {
            rc = FAIL(d, MAOS_EBAD_REQUEST, "malformed value in a task");
        }
    }
    if (!rc && t->delay_ms >= 0 && t->not_before)
        rc = FAIL(d, MAOS_EBAD_REQUEST, "give delay or not_before, not both");
    return rc;
}

/* enqueue's tasks: 1..max_events (counted with a txn's events). */
static int dec_tasks(dec *d, maos_mpr *r, maos_item_in *it)
{
    uint32_t n;
    if (it->tasks)
        return FAIL(d, MAOS_EBAD_REQUEST, "tasks given twice");
    if (maos_mpr_array(r, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "tasks must be an array");
    if (!n)
        return FAIL(d, MAOS_EBAD_REQUEST, "tasks must not be empty");
    d->events += n;
    if (d->events > d->lim->max_events)
        return FAIL(d, MAOS_ELIMIT, "too many tasks and events in one request (> %u)",
                    d->lim->max_events);
    it->tasks = req_alloc(d->req, (size_t)n * sizeof(maos_task_in));
    if (!it->tasks)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        int rc = dec_task_spec(d, r, &it->tasks[i]);
        if (rc)
            return rc;
        it->n_tasks = i + 1;
    }
    return 0;
}

static int dec_queues(dec *d, maos_mpr *r, maos_item_in *it)
{
    uint32_t n;
    if (it->queues)
        return FAIL(d, MAOS_EBAD_REQUEST, "queues given twice");
    if (maos_mpr_array(r, &n) || n == 0)
        return FAIL(d, MAOS_EBAD_REQUEST, "queues must be a non-empty array of names");
    if (n > MAOS_CLAIM_QUEUES_MAX)
        return FAIL(d, MAOS_ELIMIT, "a claim names at most %u queues",
                    MAOS_CLAIM_QUEUES_MAX);
    it->queues = req_alloc(d->req, (size_t)n * sizeof(maos_slice));
    if (!it->queues)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        int rc = dec_queue_name(d, r, &it->queues[i]);
        if (rc)
            return rc;
        it->n_queues = i + 1;
    }
    return 0;
}

/* The keys of a queue write item (top level or a txn op). */
static int dec_qitem_key(dec *d, maos_mpr *r, maos_slice k, maos_item_in *it,
                         int *handled)
{
    uint64_t u;
    int kind = it->kind, rc;
    int leased = kind == MAOS_ITEM_ACK || kind == MAOS_ITEM_NACK ||
                 kind == MAOS_ITEM_EXTEND || kind == MAOS_ITEM_TASK_RELEASE;
    *handled = 1;
    if (key_is(k, "queue") && (kind == MAOS_ITEM_ENQUEUE ||
                               kind == MAOS_ITEM_DEAD_RETRY ||
                               kind == MAOS_ITEM_DEAD_PURGE))
        return dec_queue_name(d, r, &it->queue);
    if (key_is(k, "tasks") && kind == MAOS_ITEM_ENQUEUE)
        return dec_tasks(d, r, it);
    if (key_is(k, "queues") && kind == MAOS_ITEM_CLAIM)
        return dec_queues(d, r, it);
    if (key_is(k, "task") && (leased || kind == MAOS_ITEM_DEAD_RETRY)) {
        if (kind == MAOS_ITEM_DEAD_RETRY && maos_mpr_peek(r) == MAOS_MP_NIL) {
            maos_mpr_nil(r);
            return 0;
        }
        it->has_task = 1;
        return dec_task_id(d, r, it->task, "task");
    }
    if (key_is(k, "token") && leased) {
        if (maos_mpr_uint(r, &it->token) || !it->token)
            return FAIL(d, MAOS_EBAD_REQUEST, "token must be a lease token (>= 1)");
        return 0;
    }
    if (key_is(k, "result") && kind == MAOS_ITEM_ACK) {
        if (maos_mpr_skip(r, &it->result))
            return FAIL(d, MAOS_EBAD_REQUEST, "result is malformed");
        return 0;
    }
    if (key_is(k, "error") && kind == MAOS_ITEM_NACK)
        return dec_text(d, r, &it->error, "error", 1, MAOS_TASK_ERROR_MAX);
    if (key_is(k, "retry_after_ms") && kind == MAOS_ITEM_NACK) {
        rc = dec_range(d, r, 0, MAOS_DELAY_MS_MAX, "retry_after_ms", &u);
        it->retry_after_ms = (int64_t)u;
        return rc;
    }
    if (key_is(k, "lease_ms") && (kind == MAOS_ITEM_CLAIM || kind == MAOS_ITEM_EXTEND)) {
        rc = dec_range(d, r, 1, MAOS_LEASE_MS_MAX, "lease_ms", &u);
        it->lease_ms = (uint32_t)u;
        return rc;
    }
    if (key_is(k, "wait_ms") && kind == MAOS_ITEM_CLAIM) {
        rc = dec_range(d, r, 0, MAOS_WAIT_MS_MAX, "wait_ms", &u);
        it->wait_ms = (uint32_t)u;
        return rc;
    }
    if (key_is(k, "max") && kind == MAOS_ITEM_CLAIM) {
        rc = dec_range(d, r, 1, MAOS_CLAIM_MAX, "max", &u);
        it->max_tasks = (uint32_t)u;
        return rc;
    }
    if (key_is(k, "bind") && kind == MAOS_ITEM_CLAIM) {
        if (maos_mpr_bool(r, &it->bind))
            return FAIL(d, MAOS_EBAD_REQUEST, "bind must be a boolean");
        return 0;
    }
    *handled = 0;
    return 0;
}

static void qitem_defaults(maos_item_in *it)
{
    it->retry_after_ms = -1;
    it->max_tasks = 1;
}

static int check_qitem(dec *d, const maos_item_in *it)
{
    switch (it->kind) {
    case MAOS_ITEM_ENQUEUE:
        if (!it->queue.len || !it->n_tasks)
            return FAIL(d, MAOS_EBAD_REQUEST, "enqueue needs a queue and tasks");
        return 0;
    case MAOS_ITEM_CLAIM:
        if (!it->n_queues)
            return FAIL(d, MAOS_EBAD_REQUEST, "claim needs queues");
        return 0;
    case MAOS_ITEM_DEAD_RETRY:
    case MAOS_ITEM_DEAD_PURGE:
        if (!it->queue.len)
            return FAIL(d, MAOS_EBAD_REQUEST, "%s needs a queue",
                        it->kind == MAOS_ITEM_DEAD_RETRY ? "dead_retry" : "dead_purge");
        return 0;
    default:
        if (!it->has_task || !it->token)
            return FAIL(d, MAOS_EBAD_REQUEST, "a task op needs task and token");
        if (it->kind == MAOS_ITEM_EXTEND && !it->lease_ms)
            return FAIL(d, MAOS_EBAD_REQUEST, "extend needs lease_ms");
        return 0;
    }
}

static int is_qitem(int kind)
{
    return kind >= MAOS_ITEM_ENQUEUE && kind < MAOS_ITEM__WIRE_END;
}

/* The ops a txn's ops form takes, by item kind. */
static const char *const txn_op_names[MAOS_ITEM__WIRE_END] = {
    [MAOS_ITEM_APPEND] = "append", [MAOS_ITEM_PUT] = "put",
    [MAOS_ITEM_DELETE] = "delete", [MAOS_ITEM_CHECKPOINT] = "checkpoint",
    [MAOS_ITEM_ENQUEUE] = "enqueue", [MAOS_ITEM_ACK] = "ack",
    [MAOS_ITEM_NACK] = "nack", [MAOS_ITEM_EXTEND] = "extend",
    [MAOS_ITEM_TASK_RELEASE] = "release"};

static const char *qitem_op_name(int kind)
{
    return kind > 0 && kind < MAOS_ITEM__WIRE_END ? txn_op_names[kind] : NULL;
}

/* The value of an op map's "op" key (read ahead, so that the other keys
 * can be read knowing the kind). */
static int op_kind(dec *d, maos_mpr r, int *kind)
{
    const char *const *kinds = txn_op_names;
    uint32_t m;
    maos_mpr_map(&r, &m); /* checked by the caller */
    for (uint32_t j = 0; j < m; j++) {
        maos_slice k, v;
        if (maos_mpr_str(&r, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "keys must be strings");
        if (!key_is(k, "op")) {
            if (maos_mpr_skip(&r, NULL))
                return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
            continue;
        }
        if (maos_mpr_str(&r, &v))
            return FAIL(d, MAOS_EBAD_REQUEST, "op must be a string");
        for (int kd = MAOS_ITEM_APPEND; kd < MAOS_ITEM__WIRE_END; kd++) {
            if (kinds[kd] && key_is(v, kinds[kd])) {
                *kind = kd;
                return 0;
            }
        }
        return FAIL(d, MAOS_EBAD_REQUEST,
                    "unknown op \"%.*s\" in a txn (append, put, delete, checkpoint, "
                    "enqueue, ack, nack, extend, release)",
                    (int)(v.len > 32 ? 32 : v.len), v.ptr);
    }
    return FAIL(d, MAOS_EBAD_REQUEST, "each op of a txn needs an op");
}

/* One element of the ops form. */
static int dec_op(dec *d, maos_mpr *r, maos_item_in *it, maos_append_in *a)
{
    uint32_t m;
    int rc;
    if (maos_mpr_peek(r) != MAOS_MP_MAP)
        return FAIL(d, MAOS_EBAD_REQUEST, "each op must be a map");
    if ((rc = op_kind(d, *r, &it->kind)))
        return rc;
    if (it->kind == MAOS_ITEM_APPEND) {
        it->append = a;
        return dec_append_map(d, r, a);
    }
    it->expect = MAOS_EXPECT_ANY;
    qitem_defaults(it);
    maos_mpr_map(r, &m);
    int have_position = 0;
    for (uint32_t j = 0; j < m; j++) {
        maos_slice k;
        int handled = 0;
        if (maos_mpr_str(r, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "keys must be strings");
        if (it->kind == MAOS_ITEM_CHECKPOINT) {
            if (key_is(k, "name")) {
                rc = dec_name(d, r, &it->name, "checkpoint name");
                handled = 1;
            } else if (key_is(k, "position")) {
                rc = maos_mpr_uint(r, &it->position)
                         ? FAIL(d, MAOS_EBAD_REQUEST,
                                "position must be an unsigned integer")
                         : 0;
                have_position = handled = 1;
            }
        } else if (is_qitem(it->kind)) {
            rc = dec_qitem_key(d, r, k, it, &handled);
        } else {
            rc = dec_put_key(d, r, k, it, &handled);
        }
        if (rc)
            return rc;
        if (!handled && maos_mpr_skip(r, NULL))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    }
    if (is_qitem(it->kind))
        return check_qitem(d, it);
    if (it->kind == MAOS_ITEM_CHECKPOINT) {
        if (!it->name.len || !have_position)
            return FAIL(d, MAOS_EBAD_REQUEST, "checkpoint needs name and position");
        return 0;
    }
    return check_put(d, it);
}

/* {ops: [{op: "append" | "put" | "delete" | "checkpoint", ...}, ...]} */
static int dec_txn_ops(dec *d, maos_mpr *r)
{
    maos_request *req = d->req;
    uint32_t n;
    int rc = dec_txn_head(d, r, "ops", &n);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        maos_item_in *it = &req->items[i];
        req->error_index = i;
        if ((rc = dec_op(d, r, it, &req->appends[req->n_appends])) ||
            (rc = check_unique(d, req->items, i)))
            return rc;
        if (it->kind == MAOS_ITEM_APPEND)
            req->n_appends++;
        req->n_items = i + 1;
    }
    req->error_index = -1;
    return 0;
}

static int dec_types(dec *d, maos_mpr *r, maos_filter *f)
{
    uint32_t n;
    if (maos_mpr_array(r, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "types must be an array of strings");
    if (n > d->lim->max_types)
        return FAIL(d, MAOS_ELIMIT, "too many types in a filter (%u > %u)", n,
                    d->lim->max_types);
    f->types = req_alloc(d->req, (size_t)(n ? n : 1) * sizeof(maos_slice));
    if (!f->types)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    f->n_types = n;
    for (uint32_t i = 0; i < n; i++) {
        int rc = dec_name(d, r, &f->types[i], "type");
        if (rc)
            return rc;
    }
    return 0;
}

/* where: a map of field -> value with string keys, at most max_types pairs. */
static int dec_where(dec *d, maos_mpr *r, maos_slice *out)
{
    maos_mpr c = *r;
    uint32_t n;
    if (maos_mpr_map(&c, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "where must be a map (field -> value)");
    if (n > d->lim->max_types)
        return FAIL(d, MAOS_ELIMIT, "too many pairs in where (%u > %u)", n,
                    d->lim->max_types);
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(&c, &k))
            return FAIL(d, MAOS_EBAD_REQUEST, "where keys must be strings (field names)");
        if (maos_mpr_skip(&c, NULL))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value in where");
    }
    maos_mpr_skip(r, out);
    return 0;
}

static int is_table_op(maos_op op)
{
    return op == MAOS_OP_PUT || op == MAOS_OP_GET || op == MAOS_OP_DELETE ||
           op == MAOS_OP_LIST || op == MAOS_OP_COUNT || op == MAOS_OP_WATCH;
}

static int is_agent_op(maos_op op)
{
    return op == MAOS_OP_AGENT_REGISTER || op == MAOS_OP_AGENT_DEREGISTER ||
           op == MAOS_OP_AGENT_STATUS;
}

static int dec_limit(dec *d, maos_mpr *r)
{
    uint64_t u;
    if (maos_mpr_uint(r, &u) || u == 0)
        return FAIL(d, MAOS_EBAD_REQUEST, "limit must be a positive integer");
    d->req->limit = u > MAOS_READ_LIMIT_MAX ? MAOS_READ_LIMIT_MAX : (uint32_t)u;
    return 0;
}

/* Keys of put, get, delete, list, count, watch; unknown keys are skipped. */
static int dec_table_key(dec *d, maos_mpr *r, maos_slice k)
{
    maos_request *req = d->req;
    maos_op op = req->op;
    int handled = 0, rc;
    if (op == MAOS_OP_PUT || op == MAOS_OP_DELETE) {
        rc = dec_put_key(d, r, k, &req->items[0], &handled);
        if (rc || handled)
            return rc;
    } else if (key_is(k, "table")) {
        return dec_table(d, r, &req->table);
    } else if (op == MAOS_OP_GET && key_is(k, "key")) {
        return dec_entry_key(d, r, &req->key, "key");
    } else if (op != MAOS_OP_GET && key_is(k, "prefix")) {
        return dec_opt_str(d, r, &req->prefix, "prefix (of keys)", MAOS_KEY_MAX);
    } else if (op == MAOS_OP_LIST && key_is(k, "after")) {
        return dec_opt_str(d, r, &req->after, "after (a key)", MAOS_KEY_MAX);
    } else if (op == MAOS_OP_LIST && key_is(k, "limit")) {
        return dec_limit(d, r);
    } else if ((op == MAOS_OP_LIST || op == MAOS_OP_COUNT) && key_is(k, "where")) {
        return dec_where(d, r, &req->where);
    } else if (op == MAOS_OP_WATCH && key_is(k, "from")) {
        maos_slice s;
        if (maos_mpr_peek(r) == MAOS_MP_UINT) {
            maos_mpr_uint(r, &req->watch_revision);
            req->watch_from = MAOS_WATCH_FROM_REVISION;
            return 0;
        }
        if (maos_mpr_str(r, &s) == 0 && key_is(s, "now")) {
            req->watch_from = MAOS_WATCH_FROM_NOW;
            return 0;
        }
        return FAIL(d, MAOS_EBAD_REQUEST, "from must be a revision or \"now\"");
    }
    if (maos_mpr_skip(r, NULL))
        return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    return 0;
}

/* tags: an array of strings, 1..255 bytes of UTF-8 each. */
static int dec_tags(dec *d, maos_mpr *r, maos_slice *out)
{
    maos_mpr c = *r;
    uint32_t n;
    if (maos_mpr_array(&c, &n))
        return FAIL(d, MAOS_EBAD_REQUEST, "tags must be an array of strings");
    for (uint32_t i = 0; i < n; i++) {
        maos_slice s;
        if (maos_mpr_str(&c, &s) || maos_name_check(s))
            return FAIL(d, MAOS_EBAD_REQUEST,
                        "tags must be strings of 1..%u bytes of valid UTF-8 without NUL",
                        MAOS_NAME_MAX);
    }
    maos_mpr_skip(r, out);
    return 0;
}

/* Keys of agent_register, agent_deregister, agent_status. */
static int dec_agent_key(dec *d, maos_mpr *r, maos_slice k)
{
    maos_request *req = d->req;
    maos_agent_in *a = &req->agent;
    maos_op op = req->op;
    if (op != MAOS_OP_AGENT_STATUS && key_is(k, "id"))
        return dec_entry_key(d, r, &a->id, "agent id");
    if (op == MAOS_OP_AGENT_REGISTER) {
        if (key_is(k, "session"))
            return dec_entry_key(d, r, &a->session, "session");
        if (key_is(k, "name") || key_is(k, "kind")) {
            maos_slice *s = k.ptr[0] == 'n' ? &a->name : &a->kind;
            if (maos_mpr_str(r, s) || maos_name_check(*s))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "agent %.*s must be 1..%u bytes of valid UTF-8 without NUL",
                            (int)k.len, k.ptr, MAOS_NAME_MAX);
            return 0;
        }
        if (key_is(k, "tags"))
            return dec_tags(d, r, &a->tags);
        if (key_is(k, "details")) {
            if (maos_mpr_peek(r) != MAOS_MP_MAP)
                return FAIL(d, MAOS_EBAD_REQUEST, "details must be a map");
            maos_mpr_skip(r, &a->details);
            return 0;
        }
    }
    if (op == MAOS_OP_AGENT_STATUS) {
        if (key_is(k, "status")) {
            if (maos_mpr_str(r, &a->status) ||
                maos_utf8_check(a->status, 1, MAOS_STATUS_MAX))
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "status must be 1..%u bytes of valid UTF-8 without NUL",
                            MAOS_STATUS_MAX);
            return 0;
        }
        if (key_is(k, "detail")) {
            if (maos_mpr_skip(r, &a->detail))
                return FAIL(d, MAOS_EBAD_REQUEST, "detail is malformed");
            return 0;
        }
    }
    if (maos_mpr_skip(r, NULL))
        return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    return 0;
}

static int dec_smeta_u64(dec *d, maos_mpr *r, uint64_t *v, const char *what)
{
    if (maos_mpr_uint(r, v))
        return FAIL(d, MAOS_EBAD_REQUEST, "%s must be an unsigned integer", what);
    return 0;
}

/* stream_meta's keys (stream is read as every op's). */
static int dec_smeta_key(dec *d, maos_mpr *r, maos_slice k)
{
    maos_stream_meta_in *m = &d->req->smeta;
    if (key_is(k, "category")) {
        int rc = dec_stream(d, r, &m->category, "category");
        if (!rc && memchr(m->category.ptr, '-', m->category.len))
            return FAIL(d, MAOS_EBAD_REQUEST, "a category is the part of a stream name "
                        "before the first '-': it has none");
        return rc;
    }
    if (key_is(k, "max_count")) {
        m->set = 1;
        return dec_smeta_u64(d, r, &m->max_count, "max_count");
    }
    if (key_is(k, "max_age_ms")) {
        m->set = 1;
        return dec_smeta_u64(d, r, &m->max_age_ms, "max_age_ms");
    }
    if (key_is(k, "truncate_before")) {
        m->has_truncate_before = 1;
        return dec_smeta_u64(d, r, &m->truncate_before, "truncate_before");
    }
    if (key_is(k, "clear") || key_is(k, "delete")) {
        if (maos_mpr_bool(r, k.ptr[0] == 'c' ? &m->clear : &m->delete_))
            return FAIL(d, MAOS_EBAD_REQUEST, "%.*s must be a boolean", (int)k.len, k.ptr);
        return 0;
    }
    if (maos_mpr_skip(r, NULL))
        return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    return 0;
}

/* Ops whose stream/prefix keys are a read filter. */
static int filter_op(maos_op op)
{
    return op == MAOS_OP_READ_ALL || op == MAOS_OP_SUBSCRIBE;
}

static int dec_key(dec *d, maos_mpr *r, maos_slice k)
{
    maos_request *req = d->req;
    maos_filter *f = &req->filter;
    int handled = 0, rc;

    if (is_table_op(req->op))
        return dec_table_key(d, r, k);
    if (is_agent_op(req->op))
        return dec_agent_key(d, r, k);
    if (req->op != MAOS_OP_TXN && req->n_items == 1 && is_qitem(req->items[0].kind)) {
        rc = dec_qitem_key(d, r, k, &req->items[0], &handled);
        if (rc || handled)
            return rc;
        if (maos_mpr_skip(r, NULL))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
        return 0;
    }
    if (req->op == MAOS_OP_TASK || req->op == MAOS_OP_QUEUE_STATS ||
        req->op == MAOS_OP_DEAD_LIST || req->op == MAOS_OP_TASK_LIST) {
        int paged = req->op == MAOS_OP_DEAD_LIST || req->op == MAOS_OP_TASK_LIST;
        if (key_is(k, "queue") && req->op != MAOS_OP_TASK)
            return dec_queue_name(d, r, &req->queue);
        if ((key_is(k, "task") && req->op == MAOS_OP_TASK) ||
            (key_is(k, "after") && paged)) {
            if (paged && maos_mpr_peek(r) == MAOS_MP_NIL)
                return maos_mpr_nil(r) ? FAIL(d, MAOS_EBAD_REQUEST, "bad after") : 0;
            req->has_task = 1;
            return dec_task_id(d, r, req->task, k.ptr[0] == 't' ? "task" : "after");
        }
        if (key_is(k, "limit") && paged)
            return dec_limit(d, r);
        if (maos_mpr_skip(r, NULL))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
        return 0;
    }
    if (req->op == MAOS_OP_STREAM_META && !key_is(k, "stream"))
        return dec_smeta_key(d, r, k);
    if (req->op == MAOS_OP_APPEND) {
        rc = dec_append_key(d, r, k, &req->appends[0], &handled);
        if (rc || handled)
            return rc;
    }
    if (key_is(k, "version")) {
        if (maos_mpr_uint(r, &req->version))
            return FAIL(d, MAOS_EBAD_REQUEST, "version must be an unsigned integer");
    } else if (key_is(k, "client")) {
        if (maos_mpr_str(r, &req->client_name))
            return FAIL(d, MAOS_EBAD_REQUEST, "client must be a string");
    } else if (key_is(k, "token")) {
        if (maos_mpr_skip(r, &req->token))
            return FAIL(d, MAOS_EBAD_REQUEST, "malformed token");
    } else if (key_is(k, "appends") &&
               (req->op == MAOS_OP_TXN || req->op == MAOS_OP_APPEND_BATCH)) {
        return dec_txn(d, r);
    } else if (key_is(k, "ops") && req->op == MAOS_OP_TXN) {
        return dec_txn_ops(d, r);
    } else if (key_is(k, "stream")) {
        if (filter_op(req->op))
            return dec_stream(d, r, &f->stream, "stream");
        return dec_stream(d, r, &req->stream, "stream");
    } else if (key_is(k, "from")) {
        maos_slice fs;
        if (req->op == MAOS_OP_SUBSCRIBE && maos_mpr_peek(r) == MAOS_MP_STR) {
            maos_mpr_str(r, &fs);
            if (key_is(fs, "start")) {
                req->from = 1;
                req->has_from = 1;
            } else if (key_is(fs, "end")) {
                req->from_end = 1;
            } else {
                return FAIL(d, MAOS_EBAD_REQUEST,
                            "from must be a position, \"start\" or \"end\"");
            }
            return 0;
        }
        if (maos_mpr_uint(r, &req->from))
            return FAIL(d, MAOS_EBAD_REQUEST, "from must be an unsigned integer");
        req->has_from = 1;
    } else if (key_is(k, "from_version")) {
        if (maos_mpr_uint(r, &req->from_version))
            return FAIL(d, MAOS_EBAD_REQUEST, "from_version must be an unsigned integer");
        req->has_from_version = 1;
    } else if (key_is(k, "sub")) {
        if (maos_mpr_uint(r, &req->sub) || req->sub == 0)
            return FAIL(d, MAOS_EBAD_REQUEST, "sub must be a subscription id (>= 1)");
    } else if (key_is(k, "name")) {
        return dec_name(d, r, &req->name, "checkpoint name");
    } else if (key_is(k, "position")) {
        if (maos_mpr_uint(r, &req->position))
            return FAIL(d, MAOS_EBAD_REQUEST, "position must be an unsigned integer");
        req->has_position = 1;
    } else if (key_is(k, "channel")) {
        return dec_name(d, r, &req->channel, "channel");
    } else if (key_is(k, "path")) {
        return dec_text(d, r, &req->path, "path", 1, MAOS_PATH_MAX);
    } else if (key_is(k, "pattern")) {
        return dec_name(d, r, &req->pattern, "pattern");
    } else if (key_is(k, "payload")) {
        if (maos_mpr_skip(r, &req->payload))
            return FAIL(d, MAOS_EBAD_REQUEST, "payload is malformed");
    } else if (key_is(k, "form") && (req->op == MAOS_OP_READ || req->op == MAOS_OP_READ_ALL ||
                                     req->op == MAOS_OP_SUBSCRIBE ||
                                     req->op == MAOS_OP_APPEND_BATCH)) {
        maos_slice v;
        if (maos_mpr_str(r, &v) || !(key_is(v, "map") || key_is(v, "array")))
            return FAIL(d, MAOS_EBAD_REQUEST, "form must be \"map\" or \"array\"");
        req->form = key_is(v, "array") ? MAOS_FORM_ARRAY : MAOS_FORM_MAP;
    } else if (key_is(k, "removed") && req->op == MAOS_OP_READ_ALL) {
        if (maos_mpr_bool(r, &req->removed))
            return FAIL(d, MAOS_EBAD_REQUEST, "removed must be a boolean");
    } else if (key_is(k, "backward")) {
        if (maos_mpr_bool(r, &req->backward))
            return FAIL(d, MAOS_EBAD_REQUEST, "backward must be a boolean");
    } else if (key_is(k, "limit")) {
        return dec_limit(d, r);
    } else if (key_is(k, "prefix")) {
        if (filter_op(req->op))
            return dec_opt_str(d, r, &f->prefix, "prefix", MAOS_STREAM_MAX);
        return dec_opt_str(d, r, &req->prefix, "prefix", MAOS_STREAM_MAX);
    } else if (key_is(k, "after")) {
        return dec_opt_str(d, r, &req->after, "after", MAOS_STREAM_MAX);
    } else if (key_is(k, "category")) {
        return dec_stream(d, r, &f->category, "category");
    } else if (key_is(k, "types")) {
        return dec_types(d, r, f);
    } else if (key_is(k, "since")) {
        if (maos_mpr_int(r, &f->since))
            return FAIL(d, MAOS_EBAD_REQUEST, "since must be an integer (microseconds)");
        f->has_since = 1;
    } else if (key_is(k, "until")) {
        if (maos_mpr_int(r, &f->until))
            return FAIL(d, MAOS_EBAD_REQUEST, "until must be an integer (microseconds)");
        f->has_until = 1;
    } else if (maos_mpr_skip(r, NULL)) {
        return FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
    }
    return 0;
}

/* Find "op" and "rid" first, so that errors in other keys can be answered
 * with the right rid and so the op steers how keys are read. */
static int dec_envelope(dec *d, const void *frame, size_t len, uint32_t *n)
{
    maos_request *req = d->req;
    maos_mpr r;
    maos_mpr_init(&r, frame, len);
    if (maos_mpr_map(&r, n))
        return FAIL(d, MAOS_EBAD_REQUEST, "a request must be a map");
    int have_rid = 0, rc = 0;
    maos_slice op = {0};
    /* Read every key before failing, so that the reply carries the rid
     * whatever order the keys came in. */
    for (uint32_t i = 0; i < *n; i++) {
        maos_slice k;
        if (maos_mpr_str(&r, &k))
            return rc ? rc : FAIL(d, MAOS_EBAD_REQUEST, "request keys must be strings");
        if (key_is(k, "rid")) {
            if (maos_mpr_uint(&r, &req->rid)) {
                if (!rc)
                    rc = FAIL(d, MAOS_EBAD_REQUEST, "rid must be an unsigned integer");
                maos_mpr_skip(&r, NULL);
            } else {
                have_rid = 1;
            }
        } else if (key_is(k, "op")) {
            if (maos_mpr_str(&r, &op)) {
                if (!rc)
                    rc = FAIL(d, MAOS_EBAD_REQUEST, "op must be a string");
                maos_mpr_skip(&r, NULL);
            }
        } else if (maos_mpr_skip(&r, NULL)) {
            return rc ? rc : FAIL(d, MAOS_EBAD_REQUEST, "malformed value");
        }
    }
    if (rc)
        return rc;
    if (!op.ptr)
        return FAIL(d, MAOS_EBAD_REQUEST, "op is required");
    req->op = maos_op_from_name(op.ptr, op.len);
    if (req->op == MAOS_OP_NONE)
        return FAIL(d, MAOS_EUNKNOWN_OP, "unknown op \"%.*s\"",
                    (int)(op.len > 64 ? 64 : op.len), op.ptr);
    if (!have_rid)
        return FAIL(d, MAOS_EBAD_REQUEST, "rid is required");
    return 0;
}

/* Before the keys: the one item of append, put, delete and checkpoint_save. */
static int prepare(dec *d)
{
    maos_request *req = d->req;
    int kind;
    switch (req->op) {
    case MAOS_OP_APPEND: kind = MAOS_ITEM_APPEND; break;
    case MAOS_OP_PUT: kind = MAOS_ITEM_PUT; break;
    case MAOS_OP_DELETE: kind = MAOS_ITEM_DELETE; break;
    case MAOS_OP_CHECKPOINT_SAVE: kind = MAOS_ITEM_CHECKPOINT; break;
    case MAOS_OP_ENQUEUE: kind = MAOS_ITEM_ENQUEUE; break;
    case MAOS_OP_CLAIM: kind = MAOS_ITEM_CLAIM; break;
    case MAOS_OP_ACK: kind = MAOS_ITEM_ACK; break;
    case MAOS_OP_NACK: kind = MAOS_ITEM_NACK; break;
    case MAOS_OP_EXTEND: kind = MAOS_ITEM_EXTEND; break;
    case MAOS_OP_RELEASE: kind = MAOS_ITEM_TASK_RELEASE; break;
    case MAOS_OP_DEAD_RETRY: kind = MAOS_ITEM_DEAD_RETRY; break;
    case MAOS_OP_DEAD_PURGE: kind = MAOS_ITEM_DEAD_PURGE; break;
    default: return 0;
    }
    req->items = req_alloc(req, sizeof(maos_item_in));
    if (!req->items)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    req->n_items = 1;
    req->items[0].kind = kind;
    req->items[0].expect = MAOS_EXPECT_ANY;
    qitem_defaults(&req->items[0]);
    if (kind == MAOS_ITEM_APPEND) {
        req->appends = req_alloc(req, sizeof(maos_append_in));
        if (!req->appends)
            return FAIL(d, MAOS_ENOMEM, "out of memory");
        req->n_appends = 1;
        req->appends[0].expect = MAOS_EXPECT_ANY;
        req->items[0].append = &req->appends[0];
    }
    return 0;
}

/* watch's subscription filter: the table's streams under the key prefix,
 * types put and deleted. */
static int watch_filter(dec *d)
{
    maos_request *req = d->req;
    static const char *const types[] = {"put", "deleted"};
    char *p = req_alloc(req, MAOS_STREAM_MAX);
    maos_slice *t = req_alloc(req, 2 * sizeof(maos_slice));
    if (!p || !t)
        return FAIL(d, MAOS_ENOMEM, "out of memory");
    int n = maos_table_stream(&req->table, req->prefix, p);
    if (n < 0)
        return FAIL(d, MAOS_EINVALID_NAME, "bad table or prefix");
    req->filter.prefix = (maos_slice){p, (uint32_t)n};
    for (int i = 0; i < 2; i++)
        t[i] = (maos_slice){types[i], (uint32_t)strlen(types[i])};
    req->filter.types = t;
    req->filter.n_types = 2;
    return 0;
}

int maos_request_decode(const void *frame, size_t len, const maos_limits *lim_in,
                        maos_request *req, char *why, size_t whylen)
{
    maos_limits lim = lim_in ? *lim_in : (maos_limits){0};
    maos_limits_defaults(&lim);
    memset(req, 0, sizeof(*req));
    req->error_index = -1;
    dec d = {req, &lim, why, whylen, 0};
    why_set(why, whylen, "%s", "");

    /* The envelope first (the cursor is bounded, so this is safe on any
     * bytes): an error about the rest of the frame can then carry the rid
     * and a pipelining client can tell which request it answers. */
    uint32_t n;
    int env = dec_envelope(&d, frame, len, &n);
    int rc = maos_mp_check(frame, len, &lim);
    if (rc == MAOS_ELIMIT)
        return FAIL(&d, rc, "request exceeds nesting or element limits");
    if (rc)
        return FAIL(&d, rc, "frame is not one well-formed msgpack value");
    if (env)
        return env;

    if ((rc = prepare(&d)))
        return rc;
    req->limit = MAOS_READ_LIMIT_DEFAULT;

    maos_mpr r;
    maos_mpr_init(&r, frame, len);
    maos_mpr_map(&r, &n);
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        maos_mpr_str(&r, &k);
        if (key_is(k, "rid") || key_is(k, "op")) {
            maos_mpr_skip(&r, NULL);
            continue;
        }
        rc = dec_key(&d, &r, k);
        if (rc)
            return rc;
    }

    switch (req->op) {
    case MAOS_OP_HELLO:
        if (!req->version)
            return FAIL(&d, MAOS_EBAD_REQUEST, "hello needs a protocol version");
        break;
    case MAOS_OP_APPEND:
        return check_append(&d, &req->appends[0]);
    case MAOS_OP_TXN:
        if (!req->n_items)
            return FAIL(&d, MAOS_EBAD_REQUEST, "txn needs appends or ops");
        break;
    case MAOS_OP_APPEND_BATCH:
        if (!req->n_items)
            return FAIL(&d, MAOS_EBAD_REQUEST, "append_batch needs appends");
        break;
    case MAOS_OP_READ:
        if (!req->stream.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "stream is required");
        break;
    case MAOS_OP_SUBSCRIBE:
        if (req->has_from_version && !req->filter.stream.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "from_version needs a stream filter");
        if ((req->has_from != 0) + (req->from_end != 0) + (req->has_from_version != 0) > 1)
            return FAIL(&d, MAOS_EBAD_REQUEST,
                        "give at most one of from and from_version");
        break;
    case MAOS_OP_UNSUBSCRIBE:
        if (!req->sub)
            return FAIL(&d, MAOS_EBAD_REQUEST, "sub is required");
        break;
    case MAOS_OP_CHECKPOINT_SAVE:
        if (!req->name.len || !req->has_position)
            return FAIL(&d, MAOS_EBAD_REQUEST, "checkpoint_save needs name and position");
        req->items[0].name = req->name;
        req->items[0].position = req->position;
        break;
    case MAOS_OP_STREAM_META: {
        const maos_stream_meta_in *m = &req->smeta;
        if ((req->stream.len != 0) == (m->category.len != 0))
            return FAIL(&d, MAOS_EBAD_REQUEST, "stream_meta needs a stream or a category");
        if (m->set && m->clear)
            return FAIL(&d, MAOS_EBAD_REQUEST, "give a rule (max_count, max_age_ms) or "
                        "clear, not both");
        if (m->category.len && (m->has_truncate_before || m->delete_))
            return FAIL(&d, MAOS_EBAD_REQUEST, "truncate_before and delete are for a "
                        "stream, not a category");
        if (m->has_truncate_before && m->delete_)
            return FAIL(&d, MAOS_EBAD_REQUEST, "give truncate_before or delete, not both");
        break;
    }
    case MAOS_OP_CHAIN_SIGN:
        if (!req->has_position || req->position == 0)
            return FAIL(&d, MAOS_EBAD_REQUEST, "chain_sign needs a position (>= 1)");
        break;
    case MAOS_OP_TOKEN_CREATE:
        if (!req->name.len || maos_token_name_check(req->name))
            return FAIL(&d, MAOS_EINVALID_NAME, "token_create needs a name: 1..64 bytes "
                        "of [A-Za-z0-9_.-]");
        break;
    case MAOS_OP_TOKEN_REVOKE:
        if (!req->name.len || maos_token_name_check(req->name))
            return FAIL(&d, MAOS_EINVALID_NAME, "token_revoke needs a token name");
        break;
    case MAOS_OP_BACKUP:
        if (!req->path.len || req->path.ptr[0] != '/')
            return FAIL(&d, MAOS_EBAD_REQUEST, "backup needs path, an absolute path");
        break;
    case MAOS_OP_CHECKPOINT_GET:
        if (!req->name.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "checkpoint_get needs a name");
        break;
    case MAOS_OP_PUBLISH:
        if (!req->channel.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "publish needs a channel");
        break;
    case MAOS_OP_SUBSCRIBE_CHANNEL:
        if (!req->pattern.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "subscribe_channel needs a pattern");
        break;
    case MAOS_OP_PUT:
    case MAOS_OP_DELETE:
        return check_put(&d, &req->items[0]);
    case MAOS_OP_GET:
    case MAOS_OP_LIST:
    case MAOS_OP_COUNT:
    case MAOS_OP_WATCH:
        if (!req->table.kind)
            return FAIL(&d, MAOS_EBAD_REQUEST, "%s needs a table", maos_op_name(req->op));
        if (req->op == MAOS_OP_GET && !req->key.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "get needs a key");
        if (req->op == MAOS_OP_WATCH)
            return watch_filter(&d);
        break;
    case MAOS_OP_AGENT_REGISTER:
    case MAOS_OP_AGENT_DEREGISTER:
        if (!req->agent.id.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "%s needs an id", maos_op_name(req->op));
        break;
    case MAOS_OP_AGENT_STATUS:
        if (!req->agent.status.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "agent_status needs a status");
        break;
    case MAOS_OP_ENQUEUE:
    case MAOS_OP_CLAIM:
    case MAOS_OP_ACK:
    case MAOS_OP_NACK:
    case MAOS_OP_EXTEND:
    case MAOS_OP_RELEASE:
    case MAOS_OP_DEAD_RETRY:
    case MAOS_OP_DEAD_PURGE:
        return check_qitem(&d, &req->items[0]);
    case MAOS_OP_TASK:
        if (!req->has_task)
            return FAIL(&d, MAOS_EBAD_REQUEST, "task needs a task id");
        break;
    case MAOS_OP_DEAD_LIST:
        if (!req->queue.len)
            return FAIL(&d, MAOS_EBAD_REQUEST, "dead_list needs a queue");
        break;
    default:
        break;
    }
    return 0;
}

/* ---- request encoding ----------------------------------------------------- */

int maos_enc_hello_token(msgpack_packer *pk, uint64_t rid, uint64_t version,
                         const char *client_name, const char *token)
{
    if (!token)
        return maos_enc_hello(pk, rid, version, client_name);
    if (head_req(pk, client_name ? 3 : 2, rid, MAOS_OP_HELLO) ||
        KV_U64(pk, "version", version) || KV_CSTR(pk, "token", token))
        return MAOS_ENOMEM;
    if (client_name && KV_CSTR(pk, "client", client_name))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_token_create(msgpack_packer *pk, uint64_t rid, const char *name,
                          const char *const *scopes, uint32_t n, uint64_t expires_ms,
                          int64_t uid, const char *session)
{
    uint32_t keys = 1 + (n ? 1 : 0) + (expires_ms ? 1 : 0) + (uid >= 0 ? 1 : 0) +
                    (session ? 1 : 0);
    if (head_req(pk, keys, rid, MAOS_OP_TOKEN_CREATE) || KV_CSTR(pk, "name", name))
        return MAOS_ENOMEM;
    if (n) {
        if (msgpack_pack_str_with_body(pk, "scopes", 6) || msgpack_pack_array(pk, n))
            return MAOS_ENOMEM;
        for (uint32_t i = 0; i < n; i++)
            if (msgpack_pack_str_with_body(pk, scopes[i], strlen(scopes[i])))
                return MAOS_ENOMEM;
    }
    if (expires_ms && KV_U64(pk, "expires_ms", expires_ms))
        return MAOS_ENOMEM;
    if (uid >= 0 && KV_U64(pk, "uid", (uint64_t)uid))
        return MAOS_ENOMEM;
    if (session && KV_CSTR(pk, "session", session))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_token_list(msgpack_packer *pk, uint64_t rid)
{
    return maos_enc_simple(pk, rid, MAOS_OP_TOKEN_LIST);
}

int maos_enc_token_revoke(msgpack_packer *pk, uint64_t rid, const char *name)
{
    if (head_req(pk, 1, rid, MAOS_OP_TOKEN_REVOKE) || KV_CSTR(pk, "name", name))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_hello(msgpack_packer *pk, uint64_t rid, uint64_t version,
                   const char *client_name)
{
    if (head_req(pk, client_name ? 2 : 1, rid, MAOS_OP_HELLO) ||
        KV_U64(pk, "version", version))
        return MAOS_ENOMEM;
    if (client_name && KV_CSTR(pk, "client", client_name))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_simple(msgpack_packer *pk, uint64_t rid, maos_op op)
{
    return head_req(pk, 0, rid, op);
}

/* expect of an append (table 0) or of a put/delete (table 1). */
static int enc_expect(msgpack_packer *pk, int64_t expect, int table)
{
    if (pk_cstr(pk, "expect"))
        return MAOS_ENOMEM;
    switch (expect) {
    case MAOS_EXPECT_ANY: return pk_cstr(pk, "any");
    case MAOS_EXPECT_NO_STREAM: return pk_cstr(pk, table ? "absent" : "no_stream");
    case MAOS_EXPECT_EXISTS: return pk_cstr(pk, "exists");
    default:
        if (expect < 0)
            return MAOS_EINVALID_ARG;
        return msgpack_pack_uint64(pk, (uint64_t)expect) ? MAOS_ENOMEM : 0;
    }
}

static int enc_event(msgpack_packer *pk, const maos_event_in *e)
{
    uint32_t n = 1 + (e->has_id != 0) + (e->data.len != 0) + (e->meta.len != 0);
    if (msgpack_pack_map(pk, n) || KV_STR(pk, "type", e->type))
        return MAOS_ENOMEM;
    if (e->has_id && (pk_cstr(pk, "id") || pk_bin(pk, e->id, 16)))
        return MAOS_ENOMEM;
    if (e->data.len && (pk_cstr(pk, "data") || pk_raw(pk, e->data.ptr, e->data.len)))
        return MAOS_ENOMEM;
    if (e->meta.len && (pk_cstr(pk, "meta") || pk_raw(pk, e->meta.ptr, e->meta.len)))
        return MAOS_ENOMEM;
    return 0;
}

/* The three append keys: stream, expect, events. */
static int enc_append_body(msgpack_packer *pk, const maos_append_in *a)
{
    int rc;
    if (KV_STR(pk, "stream", a->stream))
        return MAOS_ENOMEM;
    if ((rc = enc_expect(pk, a->expect, 0)))
        return rc;
    if (pk_cstr(pk, "events") || msgpack_pack_array(pk, a->n_events))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < a->n_events; i++)
        if ((rc = enc_event(pk, &a->events[i])))
            return rc;
    return 0;
}

int maos_enc_append(msgpack_packer *pk, uint64_t rid, const maos_append_in *a)
{
    if (head_req(pk, 3, rid, MAOS_OP_APPEND))
        return MAOS_ENOMEM;
    return enc_append_body(pk, a);
}

/* {op, rid, appends: [...]}: txn's old form and append_batch. */
static uint32_t form_keys(int form);
static int enc_form(msgpack_packer *pk, int form);

static int enc_appends(msgpack_packer *pk, uint64_t rid, maos_op op,
                       const maos_append_in *a, uint32_t n, int form)
{
    if (head_req(pk, 1 + form_keys(form), rid, op) || pk_cstr(pk, "appends") ||
        msgpack_pack_array(pk, n))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        int rc;
        if (msgpack_pack_map(pk, 3))
            return MAOS_ENOMEM;
        if ((rc = enc_append_body(pk, &a[i])))
            return rc;
    }
    return enc_form(pk, form);
}

int maos_enc_txn(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                 uint32_t n)
{
    return enc_appends(pk, rid, MAOS_OP_TXN, a, n, MAOS_FORM_MAP);
}

int maos_enc_append_batch(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                          uint32_t n)
{
    return enc_appends(pk, rid, MAOS_OP_APPEND_BATCH, a, n, MAOS_FORM_MAP);
}

int maos_enc_append_batch_as(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                             uint32_t n, int form)
{
    return enc_appends(pk, rid, MAOS_OP_APPEND_BATCH, a, n, form);
}

/* from, backward, limit: shared by read and read_all. */
static int enc_range(msgpack_packer *pk, int has_from, uint64_t from,
                     int backward, uint32_t limit)
{
    if (has_from && KV_U64(pk, "from", from))
        return MAOS_ENOMEM;
    if (backward && KV_BOOL(pk, "backward", 1))
        return MAOS_ENOMEM;
    if (limit && KV_U64(pk, "limit", limit))
        return MAOS_ENOMEM;
    return 0;
}

static uint32_t range_keys(int has_from, int backward, uint32_t limit)
{
    return (has_from != 0) + (backward != 0) + (limit != 0);
}

/* form: its key (none for the default, MAOS_FORM_MAP) */
static uint32_t form_keys(int form)
{
    return form == MAOS_FORM_ARRAY;
}

static int enc_form(msgpack_packer *pk, int form)
{
    if (form == MAOS_FORM_ARRAY && KV_CSTR(pk, "form", "array"))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_read_as(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                     int has_from, uint64_t from, int backward, uint32_t limit,
                     int form)
{
    uint32_t n = 1 + range_keys(has_from, backward, limit) + form_keys(form);
    if (head_req(pk, n, rid, MAOS_OP_READ) || KV_STR(pk, "stream", stream) ||
        enc_range(pk, has_from, from, backward, limit) || enc_form(pk, form))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_read(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                  int has_from, uint64_t from, int backward, uint32_t limit)
{
    return maos_enc_read_as(pk, rid, stream, has_from, from, backward, limit,
                            MAOS_FORM_MAP);
}

int maos_enc_read_all_as(msgpack_packer *pk, uint64_t rid, int has_from,
                         uint64_t from, int backward, uint32_t limit,
                         const maos_filter *f, int removed, int form)
{
    static const maos_filter none;
    if (!f)
        f = &none;
    uint32_t n = range_keys(has_from, backward, limit) + filter_keys(f) +
                 (removed != 0) + form_keys(form);
    if (head_req(pk, n, rid, MAOS_OP_READ_ALL) ||
        enc_range(pk, has_from, from, backward, limit) || enc_filter_keys(pk, f) ||
        (removed && KV_BOOL(pk, "removed", 1)) || enc_form(pk, form))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_read_all(msgpack_packer *pk, uint64_t rid, int has_from,
                      uint64_t from, int backward, uint32_t limit,
                      const maos_filter *f)
{
    return maos_enc_read_all_as(pk, rid, has_from, from, backward, limit, f, 0,
                                MAOS_FORM_MAP);
}

int maos_enc_streams(msgpack_packer *pk, uint64_t rid, maos_slice prefix,
                     maos_slice after, uint32_t limit)
{
    uint32_t n = (prefix.len != 0) + (after.len != 0) + (limit != 0);
    if (head_req(pk, n, rid, MAOS_OP_STREAMS))
        return MAOS_ENOMEM;
    if (prefix.len && KV_STR(pk, "prefix", prefix))
        return MAOS_ENOMEM;
    if (after.len && KV_STR(pk, "after", after))
        return MAOS_ENOMEM;
    if (limit && KV_U64(pk, "limit", limit))
        return MAOS_ENOMEM;
    return 0;
}

static int enc_filter_keys(msgpack_packer *pk, const maos_filter *f)
{
    if (f->stream.len && KV_STR(pk, "stream", f->stream))
        return MAOS_ENOMEM;
    if (f->prefix.len && KV_STR(pk, "prefix", f->prefix))
        return MAOS_ENOMEM;
    if (f->category.len && KV_STR(pk, "category", f->category))
        return MAOS_ENOMEM;
    if (f->n_types) {
        if (pk_cstr(pk, "types") || msgpack_pack_array(pk, f->n_types))
            return MAOS_ENOMEM;
        for (uint32_t i = 0; i < f->n_types; i++)
            if (pk_slice(pk, f->types[i]))
                return MAOS_ENOMEM;
    }
    if (f->has_since && KV_I64(pk, "since", f->since))
        return MAOS_ENOMEM;
    if (f->has_until && KV_I64(pk, "until", f->until))
        return MAOS_ENOMEM;
    return 0;
}

static uint32_t filter_keys(const maos_filter *f)
{
    return (f->stream.len != 0) + (f->prefix.len != 0) + (f->category.len != 0) +
           (f->n_types != 0) + (f->has_since != 0) + (f->has_until != 0);
}

int maos_enc_subscribe_as(msgpack_packer *pk, uint64_t rid, const maos_filter *f,
                          int from_kind, uint64_t from, int form)
{
    static const maos_filter none;
    if (!f)
        f = &none;
    if (head_req(pk, filter_keys(f) + 1 + form_keys(form), rid,
                 MAOS_OP_SUBSCRIBE) ||
        enc_filter_keys(pk, f))
        return MAOS_ENOMEM;
    int rc;
    switch (from_kind) {
    case MAOS_FROM_LIVE: rc = KV_CSTR(pk, "from", "end"); break;
    case MAOS_FROM_VERSION: rc = KV_U64(pk, "from_version", from); break;
    default: rc = KV_U64(pk, "from", from); break;
    }
    return rc || enc_form(pk, form) ? MAOS_ENOMEM : 0;
}

int maos_enc_subscribe(msgpack_packer *pk, uint64_t rid, const maos_filter *f,
                       int from_kind, uint64_t from)
{
    return maos_enc_subscribe_as(pk, rid, f, from_kind, from, MAOS_FORM_MAP);
}

int maos_enc_unsubscribe(msgpack_packer *pk, uint64_t rid, uint64_t sub)
{
    if (head_req(pk, 1, rid, MAOS_OP_UNSUBSCRIBE) || KV_U64(pk, "sub", sub))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_checkpoint_save(msgpack_packer *pk, uint64_t rid, maos_slice name,
                             uint64_t position)
{
    if (head_req(pk, 2, rid, MAOS_OP_CHECKPOINT_SAVE) || KV_STR(pk, "name", name) ||
        KV_U64(pk, "position", position))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_checkpoint_get(msgpack_packer *pk, uint64_t rid, maos_slice name)
{
    if (head_req(pk, 1, rid, MAOS_OP_CHECKPOINT_GET) || KV_STR(pk, "name", name))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_backup(msgpack_packer *pk, uint64_t rid, maos_slice path)
{
    if (head_req(pk, 1, rid, MAOS_OP_BACKUP) || KV_STR(pk, "path", path))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_read_log(msgpack_packer *pk, uint64_t rid, int has_from, uint64_t from,
                      int backward, uint32_t limit, const maos_filter *f)
{
    return maos_enc_read_all_as(pk, rid, has_from, from, backward, limit, f, 1,
                                MAOS_FORM_MAP);
}

int maos_enc_stream_meta(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                         const maos_stream_meta_in *m)
{
    uint32_t n = 1 + (m->set ? 2 : 0) + (m->clear != 0) + (m->has_truncate_before != 0) +
                 (m->delete_ != 0);
    if (head_req(pk, n, rid, MAOS_OP_STREAM_META))
        return MAOS_ENOMEM;
    if (stream.len ? KV_STR(pk, "stream", stream) : KV_STR(pk, "category", m->category))
        return MAOS_ENOMEM;
    if (m->set && (KV_U64(pk, "max_count", m->max_count) ||
                   KV_U64(pk, "max_age_ms", m->max_age_ms)))
        return MAOS_ENOMEM;
    if (m->clear && KV_BOOL(pk, "clear", 1))
        return MAOS_ENOMEM;
    if (m->has_truncate_before && KV_U64(pk, "truncate_before", m->truncate_before))
        return MAOS_ENOMEM;
    if (m->delete_ && KV_BOOL(pk, "delete", 1))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_stream_meta(msgpack_packer *pk, uint64_t rid,
                               const maos_stream_meta_out *m)
{
    int s = m->is_stream;
    if (head_rep(pk, 5, rid, 1) || KV_U64(pk, "max_count", m->max_count) ||
        KV_U64(pk, "max_age_ms", m->max_age_ms) ||
        KV_U64(pk, "first_version", s ? m->first_version : 0) ||
        KV_I64(pk, "head", s ? m->head : -1) || KV_BOOL(pk, "deleted", s && m->deleted))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_compact(msgpack_packer *pk, uint64_t rid)
{
    return head_req(pk, 0, rid, MAOS_OP_COMPACT) ? MAOS_ENOMEM : 0;
}

int maos_enc_pubkey(msgpack_packer *pk, uint64_t rid)
{
    return head_req(pk, 0, rid, MAOS_OP_PUBKEY) ? MAOS_ENOMEM : 0;
}

int maos_enc_chain_sign(msgpack_packer *pk, uint64_t rid, uint64_t position)
{
    if (head_req(pk, 1, rid, MAOS_OP_CHAIN_SIGN) || KV_U64(pk, "position", position))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_pubkey(msgpack_packer *pk, uint64_t rid, const uint8_t key[32])
{
    if (head_rep(pk, 1, rid, 1) || pk_cstr(pk, "key") || pk_bin(pk, key, 32))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_chain_sign(msgpack_packer *pk, uint64_t rid, uint64_t position,
                              const uint8_t hash[32], uint64_t head, const uint8_t sig[64])
{
    if (head_rep(pk, 4, rid, 1) || KV_U64(pk, "position", position) ||
        pk_cstr(pk, "hash") || pk_bin(pk, hash, 32) || KV_I64(pk, "head", (int64_t)head) ||
        pk_cstr(pk, "signature") || pk_bin(pk, sig, 64))
        return MAOS_ENOMEM;
    return 0;
}

void maos_export_message(uint64_t position, const uint8_t hash[32], uint64_t head,
                         uint8_t out[MAOS_EXPORT_MSG_LEN])
{
    memcpy(out, "maos-export-1", 13);
    for (int i = 0; i < 8; i++) {
        out[13 + i] = (uint8_t)(position >> (56 - 8 * i));
        out[21 + i] = (uint8_t)(head >> (56 - 8 * i));
    }
    memcpy(out + 29, hash, 32);
}

void maos_chain_message(uint64_t position, const uint8_t hash[32],
                        uint8_t out[MAOS_CHAIN_MSG_LEN])
{
    memcpy(out, "maos-chain-1", 12);
    for (int i = 0; i < 8; i++)
        out[12 + i] = (uint8_t)(position >> (56 - 8 * i));
    memcpy(out + 20, hash, 32);
}

int maos_enc_metrics(msgpack_packer *pk, uint64_t rid)
{
    return head_req(pk, 0, rid, MAOS_OP_METRICS) ? MAOS_ENOMEM : 0;
}

int maos_enc_reply_text(msgpack_packer *pk, uint64_t rid, maos_slice text)
{
    if (maos_enc_reply_head(pk, rid, 1) || KV_STR(pk, "text", text))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_publish(msgpack_packer *pk, uint64_t rid, maos_slice channel,
                     maos_slice payload)
{
    if (head_req(pk, 2, rid, MAOS_OP_PUBLISH) || KV_STR(pk, "channel", channel) ||
        pk_cstr(pk, "payload"))
        return MAOS_ENOMEM;
    if (payload.len ? pk_raw(pk, payload.ptr, payload.len) : msgpack_pack_nil(pk) != 0)
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_subscribe_channel(msgpack_packer *pk, uint64_t rid,
                               maos_slice pattern)
{
    if (head_req(pk, 1, rid, MAOS_OP_SUBSCRIBE_CHANNEL) ||
        KV_STR(pk, "pattern", pattern))
        return MAOS_ENOMEM;
    return 0;
}

/* The keys of a put or delete: table, key, expect, and for put data, bind. */
static int enc_put_body(msgpack_packer *pk, int kind, maos_slice table, maos_slice key,
                        maos_slice data, int64_t expect, int bind)
{
    int rc;
    if (KV_STR(pk, "table", table) || KV_STR(pk, "key", key))
        return MAOS_ENOMEM;
    if ((rc = enc_expect(pk, expect, 1)))
        return rc;
    if (kind == MAOS_ITEM_PUT) {
        if (pk_cstr(pk, "data"))
            return MAOS_ENOMEM;
        if (data.len ? pk_raw(pk, data.ptr, data.len) : msgpack_pack_map(pk, 0) != 0)
            return MAOS_ENOMEM;
        if (KV_BOOL(pk, "bind", bind))
            return MAOS_ENOMEM;
    }
    return 0;
}

int maos_enc_txn_ops(msgpack_packer *pk, uint64_t rid, const maos_item_in *items,
                     uint32_t n)
{
    if (head_req(pk, 1, rid, MAOS_OP_TXN) || pk_cstr(pk, "ops") ||
        msgpack_pack_array(pk, n))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const maos_item_in *it = &items[i];
        int rc;
        switch (it->kind) {
        case MAOS_ITEM_APPEND:
            if (!it->append)
                return MAOS_EINVALID_ARG;
            if (msgpack_pack_map(pk, 4) || KV_CSTR(pk, "op", "append"))
                return MAOS_ENOMEM;
            rc = enc_append_body(pk, it->append);
            break;
        case MAOS_ITEM_PUT:
        case MAOS_ITEM_DELETE:
            if (msgpack_pack_map(pk, it->kind == MAOS_ITEM_PUT ? 6 : 4) ||
                KV_CSTR(pk, "op", it->kind == MAOS_ITEM_PUT ? "put" : "delete"))
                return MAOS_ENOMEM;
            rc = enc_put_body(pk, it->kind, it->table.name, it->key, it->data,
                              it->expect, it->bind);
            break;
        case MAOS_ITEM_ENQUEUE:
        case MAOS_ITEM_ACK:
        case MAOS_ITEM_NACK:
        case MAOS_ITEM_EXTEND:
        case MAOS_ITEM_TASK_RELEASE:
            rc = msgpack_pack_map(pk, qitem_keys(it) + 1) ||
                         KV_CSTR(pk, "op", qitem_op_name(it->kind))
                     ? MAOS_ENOMEM
                     : enc_qitem_body(pk, it);
            break;
        case MAOS_ITEM_CHECKPOINT:
            rc = msgpack_pack_map(pk, 3) || KV_CSTR(pk, "op", "checkpoint") ||
                         KV_STR(pk, "name", it->name) ||
                         KV_U64(pk, "position", it->position)
                     ? MAOS_ENOMEM
                     : 0;
            break;
        default:
            return MAOS_EINVALID_ARG;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int maos_enc_put(msgpack_packer *pk, uint64_t rid, maos_slice table, maos_slice key,
                 maos_slice data, int64_t expect, int bind)
{
    if (head_req(pk, 5, rid, MAOS_OP_PUT))
        return MAOS_ENOMEM;
    return enc_put_body(pk, MAOS_ITEM_PUT, table, key, data, expect, bind);
}

int maos_enc_get(msgpack_packer *pk, uint64_t rid, maos_slice table, maos_slice key)
{
    if (head_req(pk, 2, rid, MAOS_OP_GET) || KV_STR(pk, "table", table) ||
        KV_STR(pk, "key", key))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_delete(msgpack_packer *pk, uint64_t rid, maos_slice table,
                    maos_slice key, int64_t expect)
{
    if (head_req(pk, 3, rid, MAOS_OP_DELETE))
        return MAOS_ENOMEM;
    return enc_put_body(pk, MAOS_ITEM_DELETE, table, key, (maos_slice){0}, expect, 0);
}

/* table, prefix?, where? of list and count */
static int enc_table_query(msgpack_packer *pk, maos_slice table, maos_slice prefix,
                           maos_slice where)
{
    if (KV_STR(pk, "table", table))
        return MAOS_ENOMEM;
    if (prefix.len && KV_STR(pk, "prefix", prefix))
        return MAOS_ENOMEM;
    if (where.len && (pk_cstr(pk, "where") || pk_raw(pk, where.ptr, where.len)))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_list(msgpack_packer *pk, uint64_t rid, maos_slice table,
                  maos_slice prefix, maos_slice after, uint32_t limit,
                  maos_slice where)
{
    uint32_t n = 1 + (prefix.len != 0) + (where.len != 0) + (after.len != 0) + (limit != 0);
    if (head_req(pk, n, rid, MAOS_OP_LIST) || enc_table_query(pk, table, prefix, where))
        return MAOS_ENOMEM;
    if (after.len && KV_STR(pk, "after", after))
        return MAOS_ENOMEM;
    if (limit && KV_U64(pk, "limit", limit))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_count(msgpack_packer *pk, uint64_t rid, maos_slice table,
                   maos_slice prefix, maos_slice where)
{
    uint32_t n = 1 + (prefix.len != 0) + (where.len != 0);
    if (head_req(pk, n, rid, MAOS_OP_COUNT) || enc_table_query(pk, table, prefix, where))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_watch(msgpack_packer *pk, uint64_t rid, maos_slice table,
                   maos_slice prefix, int from_kind, uint64_t revision)
{
    if (from_kind != MAOS_WATCH_FROM_ENTRIES && from_kind != MAOS_WATCH_FROM_REVISION &&
        from_kind != MAOS_WATCH_FROM_NOW)
        return MAOS_EINVALID_ARG;
    uint32_t n = 1 + (prefix.len != 0) + (from_kind != MAOS_WATCH_FROM_ENTRIES);
    if (head_req(pk, n, rid, MAOS_OP_WATCH) ||
        enc_table_query(pk, table, prefix, (maos_slice){0}))
        return MAOS_ENOMEM;
    if (from_kind == MAOS_WATCH_FROM_REVISION && KV_U64(pk, "from", revision))
        return MAOS_ENOMEM;
    if (from_kind == MAOS_WATCH_FROM_NOW && KV_CSTR(pk, "from", "now"))
        return MAOS_ENOMEM;
    return 0;
}

/* An optional key whose value is raw msgpack (len 0: left out). */
static int kv_raw(msgpack_packer *pk, const char *k, maos_slice v)
{
    if (v.len && (pk_cstr(pk, k) || pk_raw(pk, v.ptr, v.len)))
        return MAOS_ENOMEM;
    return 0;
}

/* An optional string key (len 0: left out). */
static int kv_opt_str(msgpack_packer *pk, const char *k, maos_slice v)
{
    if (v.len && KV_STR(pk, k, v))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_agent_register(msgpack_packer *pk, uint64_t rid, const maos_agent_in *a)
{
    uint32_t n = 1 + (a->session.len != 0) + (a->name.len != 0) + (a->kind.len != 0) +
                 (a->tags.len != 0) + (a->details.len != 0);
    if (head_req(pk, n, rid, MAOS_OP_AGENT_REGISTER) || KV_STR(pk, "id", a->id) ||
        kv_opt_str(pk, "session", a->session) || kv_opt_str(pk, "name", a->name) ||
        kv_opt_str(pk, "kind", a->kind) || kv_raw(pk, "tags", a->tags) ||
        kv_raw(pk, "details", a->details))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_agent_deregister(msgpack_packer *pk, uint64_t rid, maos_slice id)
{
    if (head_req(pk, 1, rid, MAOS_OP_AGENT_DEREGISTER) || KV_STR(pk, "id", id))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_agent_status(msgpack_packer *pk, uint64_t rid, maos_slice status,
                          maos_slice detail)
{
    if (head_req(pk, 1 + (detail.len != 0), rid, MAOS_OP_AGENT_STATUS) ||
        KV_STR(pk, "status", status) || kv_raw(pk, "detail", detail))
        return MAOS_ENOMEM;
    return 0;
}

/* ---- queue requests ---------------------------------------------------------- */

static int kv_bin(msgpack_packer *pk, const char *k, const void *p, size_t n)
{
    return pk_cstr(pk, k) || pk_bin(pk, p, n);
}

static uint32_t task_spec_keys(const maos_task_in *t)
{
    return (t->data.len != 0) + (t->meta.len != 0) + (t->priority != 0) +
           (t->delay_ms >= 0) + (t->not_before != 0) + (t->max_attempts != 0) +
           (t->lease_ms != 0) + (t->backoff_ms != 0) + (t->dedupe_key.len != 0) +
           (t->ordering_key.len != 0);
}

static int enc_task_spec(msgpack_packer *pk, const maos_task_in *t)
{
    if (msgpack_pack_map(pk, task_spec_keys(t)) || kv_raw(pk, "data", t->data) ||
        kv_raw(pk, "meta", t->meta))
        return MAOS_ENOMEM;
    if (t->priority && KV_I64(pk, "priority", t->priority))
        return MAOS_ENOMEM;
    if (t->delay_ms >= 0 && KV_U64(pk, "delay", (uint64_t)t->delay_ms))
        return MAOS_ENOMEM;
    if (t->not_before && KV_I64(pk, "not_before", t->not_before))
        return MAOS_ENOMEM;
    if (t->max_attempts && KV_U64(pk, "max_attempts", t->max_attempts))
        return MAOS_ENOMEM;
    if (t->lease_ms && KV_U64(pk, "lease_ms", t->lease_ms))
        return MAOS_ENOMEM;
    if (t->backoff_ms && KV_U64(pk, "backoff_ms", t->backoff_ms))
        return MAOS_ENOMEM;
    if (kv_opt_str(pk, "dedupe_key", t->dedupe_key) ||
        kv_opt_str(pk, "ordering_key", t->ordering_key))
        return MAOS_ENOMEM;
    return 0;
}

/* Keys of a queue item besides op (and rid). */
static uint32_t qitem_keys(const maos_item_in *it)
{
    switch (it->kind) {
    case MAOS_ITEM_ENQUEUE: return 2;
    case MAOS_ITEM_CLAIM:
        return 2 + (it->lease_ms != 0) + (it->wait_ms != 0) + (it->bind != 0);
    case MAOS_ITEM_ACK: return 2 + (it->result.len != 0);
    case MAOS_ITEM_NACK: return 2 + (it->error.len != 0) + (it->retry_after_ms >= 0);
    case MAOS_ITEM_EXTEND: return 3;
    case MAOS_ITEM_TASK_RELEASE: return 2;
    case MAOS_ITEM_DEAD_RETRY: return 1 + (it->has_task != 0);
    default: return 1; /* DEAD_PURGE */
    }
}

static int enc_qitem_body(msgpack_packer *pk, const maos_item_in *it)
{
    int rc;
    switch (it->kind) {
    case MAOS_ITEM_ENQUEUE:
        if (KV_STR(pk, "queue", it->queue) || pk_cstr(pk, "tasks") ||
            msgpack_pack_array(pk, it->n_tasks))
            return MAOS_ENOMEM;
        for (uint32_t i = 0; i < it->n_tasks; i++)
            if ((rc = enc_task_spec(pk, &it->tasks[i])))
                return rc;
        return 0;
    case MAOS_ITEM_CLAIM:
        if (pk_cstr(pk, "queues") || msgpack_pack_array(pk, it->n_queues))
            return MAOS_ENOMEM;
        for (uint32_t i = 0; i < it->n_queues; i++)
            if (pk_slice(pk, it->queues[i]))
                return MAOS_ENOMEM;
        if (KV_U64(pk, "max", it->max_tasks ? it->max_tasks : 1) ||
            (it->lease_ms && KV_U64(pk, "lease_ms", it->lease_ms)) ||
            (it->wait_ms && KV_U64(pk, "wait_ms", it->wait_ms)) ||
            (it->bind && KV_BOOL(pk, "bind", 1)))
            return MAOS_ENOMEM;
        return 0;
    case MAOS_ITEM_DEAD_RETRY:
    case MAOS_ITEM_DEAD_PURGE:
        if (KV_STR(pk, "queue", it->queue) ||
            (it->has_task && kv_bin(pk, "task", it->task, 16)))
            return MAOS_ENOMEM;
        return 0;
    default:
        break;
    }
    if (kv_bin(pk, "task", it->task, 16) || KV_U64(pk, "token", it->token))
        return MAOS_ENOMEM;
    switch (it->kind) {
    case MAOS_ITEM_ACK:
        return kv_raw(pk, "result", it->result);
    case MAOS_ITEM_NACK:
        if (kv_opt_str(pk, "error", it->error) ||
            (it->retry_after_ms >= 0 &&
             KV_U64(pk, "retry_after_ms", (uint64_t)it->retry_after_ms)))
            return MAOS_ENOMEM;
        return 0;
    case MAOS_ITEM_EXTEND:
        return KV_U64(pk, "lease_ms", it->lease_ms) ? MAOS_ENOMEM : 0;
    default:
        return 0;
    }
}

static int enc_qitem(msgpack_packer *pk, uint64_t rid, maos_op op, const maos_item_in *it)
{
    if (head_req(pk, qitem_keys(it), rid, op))
        return MAOS_ENOMEM;
    return enc_qitem_body(pk, it);
}

int maos_enc_enqueue(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                     const maos_task_in *tasks, uint32_t n)
{
    maos_item_in it = {.kind = MAOS_ITEM_ENQUEUE, .queue = queue,
                       .tasks = (maos_task_in *)tasks, .n_tasks = n};
    return enc_qitem(pk, rid, MAOS_OP_ENQUEUE, &it);
}

int maos_enc_claim(msgpack_packer *pk, uint64_t rid, const maos_slice *queues,
                   uint32_t n, uint32_t lease_ms, uint32_t wait_ms, uint32_t max,
                   int bind)
{
    maos_item_in it = {.kind = MAOS_ITEM_CLAIM, .queues = (maos_slice *)queues,
                       .n_queues = n, .lease_ms = lease_ms, .wait_ms = wait_ms,
                       .max_tasks = max, .bind = bind};
    return enc_qitem(pk, rid, MAOS_OP_CLAIM, &it);
}

static maos_item_in task_item(int kind, const uint8_t id[16], uint64_t token)
{
    maos_item_in it = {.kind = kind, .has_task = 1, .token = token,
                       .retry_after_ms = -1};
    memcpy(it.task, id, 16);
    return it;
}

int maos_enc_ack(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                 uint64_t token, maos_slice result)
{
    maos_item_in it = task_item(MAOS_ITEM_ACK, id, token);
    it.result = result;
    return enc_qitem(pk, rid, MAOS_OP_ACK, &it);
}

int maos_enc_nack(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                  uint64_t token, maos_slice error, int64_t retry_after_ms)
{
    maos_item_in it = task_item(MAOS_ITEM_NACK, id, token);
    it.error = error;
    it.retry_after_ms = retry_after_ms;
    return enc_qitem(pk, rid, MAOS_OP_NACK, &it);
}

int maos_enc_extend(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                    uint64_t token, uint32_t lease_ms)
{
    maos_item_in it = task_item(MAOS_ITEM_EXTEND, id, token);
    it.lease_ms = lease_ms;
    return enc_qitem(pk, rid, MAOS_OP_EXTEND, &it);
}

int maos_enc_task_release(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                          uint64_t token)
{
    maos_item_in it = task_item(MAOS_ITEM_TASK_RELEASE, id, token);
    return enc_qitem(pk, rid, MAOS_OP_RELEASE, &it);
}

int maos_enc_task_get(msgpack_packer *pk, uint64_t rid, const uint8_t id[16])
{
    if (head_req(pk, 1, rid, MAOS_OP_TASK) || kv_bin(pk, "task", id, 16))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_queue_stats(msgpack_packer *pk, uint64_t rid, maos_slice queue)
{
    if (head_req(pk, queue.len != 0, rid, MAOS_OP_QUEUE_STATS) ||
        kv_opt_str(pk, "queue", queue))
        return MAOS_ENOMEM;
    return 0;
}

/* dead_list and task_list: a page of tasks {queue?, after?, limit?}. */
static int enc_task_page(msgpack_packer *pk, uint64_t rid, maos_op op, maos_slice queue,
                         const uint8_t *after, uint32_t limit)
{
    if (head_req(pk, (queue.len != 0) + (after != NULL) + (limit != 0), rid, op) ||
        (queue.len && KV_STR(pk, "queue", queue)) || (after && kv_bin(pk, "after", after, 16)) ||
        (limit && KV_U64(pk, "limit", limit)))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_dead_list(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                       const uint8_t *after, uint32_t limit)
{
    return enc_task_page(pk, rid, MAOS_OP_DEAD_LIST, queue, after, limit);
}

int maos_enc_task_list(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                       const uint8_t *after, uint32_t limit)
{
    return enc_task_page(pk, rid, MAOS_OP_TASK_LIST, queue, after, limit);
}

int maos_enc_dead_retry(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                        const uint8_t *id)
{
    maos_item_in it = {.kind = MAOS_ITEM_DEAD_RETRY, .queue = queue,
                       .has_task = id != NULL};
    if (id)
        memcpy(it.task, id, 16);
    return enc_qitem(pk, rid, MAOS_OP_DEAD_RETRY, &it);
}

int maos_enc_dead_purge(msgpack_packer *pk, uint64_t rid, maos_slice queue)
{
    maos_item_in it = {.kind = MAOS_ITEM_DEAD_PURGE, .queue = queue};
    return enc_qitem(pk, rid, MAOS_OP_DEAD_PURGE, &it);
}

/* ---- records -------------------------------------------------------------- */

/* A record's bytes gathered in a buffer and handed to the packer's
 * callback once (twice or more only for a record over REC_BUF): the
 * commit thread encodes one per event, and the packer's ~25 calls, each a
 * write through the callback, were most of the cost.  The bytes are those
 * msgpack-c writes (fixmap, fixstr keys, uint64/int64 in their fixed
 * forms, the shortest str header). */
#define REC_BUF 4096

typedef struct recw {
    msgpack_packer *pk;
    size_t n;
    int err;
    uint8_t b[REC_BUF];
} recw;

static void rw_flush(recw *w)
{
    if (w->n && !w->err)
        w->err = pk_raw(w->pk, w->b, w->n);
    w->n = 0;
}

static void rw_put(recw *w, const void *p, size_t len)
{
    if (w->n + len > REC_BUF) {
        rw_flush(w);
        if (len > REC_BUF / 2) {
            if (!w->err)
                w->err = pk_raw(w->pk, p, len);
            return;
        }
    }
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void rw_be(recw *w, uint8_t tag, uint64_t v)
{
    uint8_t b[9] = {tag};
    for (int i = 8; i >= 1; i--, v >>= 8)
        b[i] = (uint8_t)v;
    rw_put(w, b, 9);
}

/* msgpack_pack_str's header, then the body */
static void rw_str(recw *w, maos_slice s)
{
    uint8_t h[5];
    size_t n = 0;
    if (s.len < 32) {
        h[n++] = (uint8_t)(0xa0 | s.len);
    } else if (s.len < 256) {
        h[n++] = 0xd9;
        h[n++] = (uint8_t)s.len;
    } else if (s.len < 65536) {
        h[n++] = 0xda;
        h[n++] = (uint8_t)(s.len >> 8);
        h[n++] = (uint8_t)s.len;
    } else {
        h[n++] = 0xdb;
        for (int i = 3; i >= 0; i--)
            h[n++] = (uint8_t)(s.len >> (8 * i));
    }
    rw_put(w, h, n);
    rw_put(w, s.ptr, s.len);
}

int maos_enc_record(msgpack_packer *pk, uint64_t position, int64_t time,
                    uint64_t version, maos_slice stream, maos_slice type,
                    const uint8_t id[16], const uint8_t prev[32],
                    maos_slice data, maos_slice meta)
{
    recw w;
    w.pk = pk;
    w.n = 0;
    w.err = 0;
    rw_put(&w, "\x89\xa8position", 10);
    rw_be(&w, 0xcf, position);
    rw_put(&w, "\xa4time", 5);
    rw_be(&w, 0xd3, (uint64_t)time);
    rw_put(&w, "\xa7version", 8);
    rw_be(&w, 0xcf, version);
    rw_put(&w, "\xa6stream", 7);
    rw_str(&w, stream);
    rw_put(&w, "\xa4type", 5);
    rw_str(&w, type);
    rw_put(&w, "\xa2id\xc4\x10", 5);
    rw_put(&w, id, 16);
    rw_put(&w, "\xa4prev\xc4\x20", 7);
    rw_put(&w, prev, MAOS_HASH_BYTES);
    rw_put(&w, "\xa4" "data", 5);
    if (data.len)
        rw_put(&w, data.ptr, data.len);
    else
        rw_put(&w, "\xc0", 1);
    rw_put(&w, "\xa4meta", 5);
    if (meta.len)
        rw_put(&w, meta.ptr, meta.len);
    else
        rw_put(&w, "\x80", 1);
    rw_flush(&w);
    return w.err ? MAOS_ENOMEM : 0;
}

int maos_enc_stub(msgpack_packer *pk, const maos_record *rec,
                  const uint8_t hash[MAOS_HASH_BYTES])
{
    if (msgpack_pack_map(pk, 10) || pk_cstr(pk, "position") ||
        msgpack_pack_fix_uint64(pk, rec->position) || pk_cstr(pk, "time") ||
        msgpack_pack_fix_int64(pk, rec->time) || pk_cstr(pk, "version") ||
        msgpack_pack_fix_uint64(pk, rec->version) || KV_STR(pk, "stream", rec->stream) ||
        KV_STR(pk, "type", rec->type) || pk_cstr(pk, "id") ||
        pk_bin(pk, rec->id.ptr, rec->id.len) || pk_cstr(pk, "prev") ||
        pk_bin(pk, rec->prev.ptr, rec->prev.len) || pk_cstr(pk, "data") ||
        msgpack_pack_nil(pk) || pk_cstr(pk, "meta") || msgpack_pack_map(pk, 0) ||
        pk_cstr(pk, "removed") || pk_bin(pk, hash, MAOS_HASH_BYTES))
        return MAOS_ENOMEM;
    return 0;
}

/* The fields of a record, in the order of the stored map and of the array
 * form (PROTOCOL.md "Stored event records", "Record forms"); a stub's
 * "removed" follows them. */
#define RECORD_FIELDS 9
/* Field i of a record (record_key's order) from c into rec: 0 or 1
 * (malformed). */
static inline int record_field(maos_mpr *c, unsigned i, maos_record *rec)
{
    switch (i) {
    case 0: return maos_mpr_uint(c, &rec->position) != 0;
    case 1: return maos_mpr_int(c, &rec->time) != 0;
    case 2: return maos_mpr_uint(c, &rec->version) != 0;
    case 3: return maos_mpr_str(c, &rec->stream) != 0;
    case 4: return maos_mpr_str(c, &rec->type) != 0;
    case 5: return maos_mpr_bin(c, &rec->id) || rec->id.len != 16;
    case 6: return maos_mpr_bin(c, &rec->prev) || rec->prev.len != MAOS_HASH_BYTES;
    case 7: return maos_mpr_skip(c, &rec->data) != 0;
    default: return maos_mpr_peek(c) != MAOS_MP_MAP || maos_mpr_skip(c, &rec->meta);
    }
}

/* The index of a record's key in the order of the stored map and of the
 * array form, RECORD_FIELDS if none.  Compares with literals (the compiler
 * makes each a load and a compare), in the stored order. */
static inline unsigned record_key(maos_slice k)
{
    return key_is(k, "position") ? 0
           : key_is(k, "time")   ? 1
           : key_is(k, "version") ? 2
           : key_is(k, "stream") ? 3
           : key_is(k, "type")   ? 4
           : key_is(k, "id")     ? 5
           : key_is(k, "prev")   ? 6
           : key_is(k, "data")   ? 7
           : key_is(k, "meta")   ? 8
                                 : RECORD_FIELDS;
}

int maos_record_to_array(const void *p, size_t len, msgpack_sbuffer *out)
{
    maos_slice v[RECORD_FIELDS + 1] = {{0}}; /* each value's bytes */
    maos_mpr r;
    uint32_t n;
    unsigned seen = 0;
    maos_mpr_init(&r, p, len);
    if (maos_mpr_map(&r, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(&r, &k))
            return MAOS_EPROTO;
        unsigned f = record_key(k);
        if (f == RECORD_FIELDS && !key_is(k, "removed"))
            f = RECORD_FIELDS + 1; /* another key: skipped */
        if (f > RECORD_FIELDS) {
            if (maos_mpr_skip(&r, NULL))
                return MAOS_EPROTO;
            continue;
        }
        if (maos_mpr_skip(&r, &v[f]))
            return MAOS_EPROTO;
        seen |= 1u << f;
    }
    if ((seen & 511) != 511 || r.p != r.end)
        return MAOS_EPROTO;
    uint8_t head = (uint8_t)(0x90 | (seen > 511 ? RECORD_FIELDS + 1 : RECORD_FIELDS));
    if (msgpack_sbuffer_write(out, (const char *)&head, 1))
        return MAOS_ENOMEM;
    for (unsigned f = 0; f <= RECORD_FIELDS; f++)
        if (v[f].len && msgpack_sbuffer_write(out, v[f].ptr, v[f].len))
            return MAOS_ENOMEM;
    return 0;
}

int maos_record_stub(const void *p, size_t len, maos_slice *hash)
{
    if (len >= 1 && *(const uint8_t *)p == 0x9a) { /* the array form */
        maos_mpr r;
        uint32_t n;
        maos_slice h;
        maos_mpr_init(&r, p, len);
        if (maos_mpr_array(&r, &n))
            return 0;
        for (unsigned i = 0; i < RECORD_FIELDS; i++)
            if (maos_mpr_skip(&r, NULL))
                return 0;
        if (maos_mpr_bin(&r, &h) || h.len != MAOS_HASH_BYTES)
            return 0;
        *hash = h;
        return 1;
    }
    if (len < 1 || *(const uint8_t *)p != 0x8a)
        return 0;
    maos_mpr r, v;
    maos_slice raw, h;
    maos_mpr_init(&r, p, len);
    if (maos_mpr_find(&r, "removed", &raw))
        return 0;
    maos_mpr_init(&v, raw.ptr, raw.len);
    if (maos_mpr_bin(&v, &h) || h.len != MAOS_HASH_BYTES)
        return 0;
    *hash = h;
    return 1;
}

/* 8 bytes big-endian (the fixed-width numbers of a stored record, read in
 * place: through a cursor, the stored-layout read below took a third
 * longer). */
static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The next key is lit (inlined: a compare with a constant). */
static inline int next_key(maos_mpr *c, const char *lit)
{
    maos_slice k;
    return maos_mpr_str(c, &k) == 0 && key_is(k, lit);
}

/*
 * A record laid out as maos_enc_record writes it (every stored record): a
 * map of nine whose keys come in the stored order, position, time and
 * version fixed-width at fixed offsets.  Read in order, each key checked in
 * place; 1 and *c past it, or 0 (another layout: the caller walks it).
 */
static int record_stored(maos_mpr *c, maos_record *rec)
{
    const uint8_t *p = c->p;
    if (c->end - p < 50 || p[0] != 0x89 || memcmp(p + 1, "\xa8position\xcf", 10) ||
        memcmp(p + 19, "\xa4time\xd3", 6) || memcmp(p + 33, "\xa7version\xcf", 9))
        return 0;
    maos_mpr r = {p + 50, c->end};
    rec->position = get_be64(p + 11);
    rec->time = (int64_t)get_be64(p + 25);
    rec->version = get_be64(p + 42);
    if (!next_key(&r, "stream") || record_field(&r, 3, rec) || !next_key(&r, "type") ||
        record_field(&r, 4, rec) || !next_key(&r, "id") || record_field(&r, 5, rec) ||
        !next_key(&r, "prev") || record_field(&r, 6, rec) || !next_key(&r, "data") ||
        record_field(&r, 7, rec) || !next_key(&r, "meta") || record_field(&r, 8, rec))
        return 0;
    *c = r;
    return 1;
}

/* Any other record: the array form (the nine in order, a stub's removed
 * hash 10th), or a map with the nine keys in any order (others skipped).
 * 0 and *c past it, or MAOS_EPROTO. */
static int record_walk(maos_mpr *c, maos_record *rec)
{
    uint32_t n;
    unsigned seen = 0;
    memset(rec, 0, sizeof(*rec));
    if (maos_mpr_peek(c) == MAOS_MP_ARRAY) {
        maos_slice h;
        if (maos_mpr_array(c, &n) || n < RECORD_FIELDS || n > RECORD_FIELDS + 1)
            return MAOS_EPROTO;
        for (unsigned i = 0; i < RECORD_FIELDS; i++)
            if (record_field(c, i, rec))
                return MAOS_EPROTO;
        if (n > RECORD_FIELDS && (maos_mpr_bin(c, &h) || h.len != MAOS_HASH_BYTES))
            return MAOS_EPROTO;
        return 0;
    }
    if (maos_mpr_map(c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(c, &k))
            return MAOS_EPROTO;
        unsigned f = record_key(k);
        if (f < RECORD_FIELDS ? record_field(c, f, rec) : maos_mpr_skip(c, NULL) != 0)
            return MAOS_EPROTO;
        if (f < RECORD_FIELDS)
            seen |= 1u << f;
    }
    return seen == 511 ? 0 : MAOS_EPROTO;
}

int maos_record_next(maos_mpr *r, maos_record *rec)
{
    maos_mpr c = *r;
    memset(rec, 0, sizeof(*rec));
    if (!record_stored(&c, rec)) {
        c = *r;
        if (record_walk(&c, rec))
            return MAOS_EPROTO;
    }
    rec->raw.ptr = (const char *)r->p;
    rec->raw.len = (uint32_t)(c.p - r->p);
    *r = c;
    return 0;
}

int maos_record_decode(const void *p, size_t len, maos_record *rec)
{
    maos_mpr r;
    maos_mpr_init(&r, p, len);
    int rc = maos_record_next(&r, rec);
    if (rc == 0 && r.p != r.end)
        return MAOS_EPROTO;
    return rc;
}

/* ---- replies -------------------------------------------------------------- */

static int head_rep(msgpack_packer *pk, uint32_t n, uint64_t rid, int ok)
{
    if (msgpack_pack_map(pk, n + 2) || KV_U64(pk, "rid", rid) ||
        KV_BOOL(pk, "ok", ok))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_head(msgpack_packer *pk, uint64_t rid, uint32_t n)
{
    return head_rep(pk, n, rid, 1);
}

int maos_enc_error(msgpack_packer *pk, uint64_t rid, int code,
                   const char *message, int has_actual, int64_t actual,
                   int64_t index)
{
    return maos_enc_error_entry(pk, rid, code, message, has_actual, actual, index,
                                (maos_slice){NULL, 0});
}

int maos_enc_error_entry(msgpack_packer *pk, uint64_t rid, int code,
                         const char *message, int has_actual, int64_t actual,
                         int64_t index, maos_slice entry)
{
    uint32_t n = 2 + (has_actual != 0) + (index >= 0) + (entry.len > 0);
    if (head_rep(pk, n, rid, 0) || KV_CSTR(pk, "code", maos_err_name(code)) ||
        KV_CSTR(pk, "message", message && *message ? message : maos_strerror(code)))
        return MAOS_ENOMEM;
    if (has_actual && KV_I64(pk, "actual", actual))
        return MAOS_ENOMEM;
    if (index >= 0 && KV_I64(pk, "index", index))
        return MAOS_ENOMEM;
    /* entry: one encoded map, written as it is */
    if (entry.len && (pk_cstr(pk, "entry") || pk_raw(pk, entry.ptr, entry.len)))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_hello(msgpack_packer *pk, uint64_t rid, uint64_t version,
                         const char *server, uint32_t max_frame)
{
    if (head_rep(pk, 3, rid, 1) || KV_U64(pk, "version", version) ||
        KV_CSTR(pk, "server", server) || KV_U64(pk, "max_frame", max_frame))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_ok(msgpack_packer *pk, uint64_t rid)
{
    return head_rep(pk, 0, rid, 1);
}

static int enc_result_fields(msgpack_packer *pk, const maos_append_result *r)
{
    if (KV_STR(pk, "stream", r->stream) ||
        KV_U64(pk, "first_version", r->first_version) ||
        KV_U64(pk, "first_position", r->first_position) ||
        KV_U64(pk, "count", r->count) || KV_BOOL(pk, "duplicate", r->duplicate) ||
        pk_cstr(pk, "ids") || pk_bin(pk, r->ids.ptr, r->ids.len))
        return MAOS_ENOMEM;
    return 0;
}
#define RESULT_FIELDS 6

int maos_enc_append_result_array(msgpack_packer *pk, const maos_append_result *r)
{
    if (msgpack_pack_array(pk, RESULT_FIELDS) || pk_slice(pk, r->stream) ||
        msgpack_pack_uint64(pk, r->first_version) ||
        msgpack_pack_uint64(pk, r->first_position) || msgpack_pack_uint64(pk, r->count) ||
        (r->duplicate ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ||
        pk_bin(pk, r->ids.ptr, r->ids.len))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_append(msgpack_packer *pk, uint64_t rid, int txn,
                          const maos_append_result *res, uint32_t n)
{
    if (!txn) {
        if (n != 1)
            return MAOS_EINVALID_ARG;
        if (head_rep(pk, RESULT_FIELDS, rid, 1))
            return MAOS_ENOMEM;
        return enc_result_fields(pk, res);
    }
    if (head_rep(pk, 1, rid, 1) || pk_cstr(pk, "results") ||
        msgpack_pack_array(pk, n))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        if (msgpack_pack_map(pk, RESULT_FIELDS) || enc_result_fields(pk, &res[i]))
            return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_stats(msgpack_packer *pk, uint64_t rid, const maos_stats *s)
{
    uint32_t n = 4 + (s->data_dir.len > 0);
#define MAOS_STATS_COUNT_(name) n++;
    MAOS_STATS_MAP(MAOS_STATS_COUNT_)
#undef MAOS_STATS_COUNT_
    if (head_rep(pk, n, rid, 1) || KV_STR(pk, "server", s->server) ||
        KV_STR(pk, "state", s->state) || KV_STR(pk, "durability", s->durability) ||
        pk_cstr(pk, "head_hash") || msgpack_pack_bin(pk, s->head_hash.len) ||
        (s->head_hash.len &&
         msgpack_pack_bin_body(pk, s->head_hash.ptr, s->head_hash.len)) ||
        (s->data_dir.len && KV_STR(pk, "data_dir", s->data_dir)))
        return MAOS_ENOMEM;
#define MAOS_STATS_ENC_(name)                                                  \
    if (KV_U64(pk, #name, s->name))                                            \
        return MAOS_ENOMEM;
    MAOS_STATS_MAP(MAOS_STATS_ENC_)
#undef MAOS_STATS_ENC_
    return 0;
}

int maos_enc_list_begin(msgpack_sbuffer *sb, uint64_t rid, const char *key,
                        maos_list_mark *mark)
{
    msgpack_packer pk;
    mark->count_off = 0;
    mark->map_off = sb->size;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (head_rep(&pk, 2, rid, 1) || pk_cstr(&pk, key))
        return MAOS_ENOMEM;
    static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
    mark->count_off = sb->size + 1;
    return msgpack_sbuffer_write(sb, arr32, 5) ? MAOS_ENOMEM : 0;
}

int maos_enc_stream_info(msgpack_packer *pk, const maos_stream_info *si)
{
    if (msgpack_pack_map(pk, 4) || KV_STR(pk, "stream", si->stream) ||
        KV_U64(pk, "head", si->head) || KV_U64(pk, "count", si->count) ||
        KV_U64(pk, "last_position", si->last_position))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_list_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                      uint32_t count, int next_kind, uint64_t next_u,
                      maos_slice next_s)
{
    if (!mark->count_off || mark->count_off + 4 > sb->size)
        return MAOS_EINVALID_ARG; /* list_begin failed or was not called */
    maos_frame_put_len(sb->data + mark->count_off, count);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (pk_cstr(&pk, "next"))
        return MAOS_ENOMEM;
    switch (next_kind) {
    case MAOS_NEXT_UINT: return msgpack_pack_uint64(&pk, next_u) ? MAOS_ENOMEM : 0;
    case MAOS_NEXT_STR: return pk_slice(&pk, next_s);
    default: return msgpack_pack_nil(&pk) ? MAOS_ENOMEM : 0;
    }
}

/* ---- tables ---------------------------------------------------------------- */

int maos_enc_entries_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                         uint32_t count, maos_slice next, uint64_t revision)
{
    /* list_begin opened a fixmap of 4 (rid, ok, entries, next): one more */
    if (!mark->count_off || mark->map_off >= sb->size ||
        (uint8_t)sb->data[mark->map_off] != 0x84)
        return MAOS_EINVALID_ARG;
    int rc = maos_enc_list_end(sb, mark, count, next.len ? MAOS_NEXT_STR : MAOS_NEXT_NONE,
                               0, next);
    if (rc)
        return rc;
    sb->data[mark->map_off] = (char)0x85;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return KV_U64(&pk, "revision", revision) ? MAOS_ENOMEM : 0;
}

int maos_enc_entry(msgpack_packer *pk, maos_slice table, maos_slice key,
                   uint64_t revision, uint64_t created_revision, int64_t created,
                   int64_t updated, int bound, maos_slice data)
{
    if (msgpack_pack_map(pk, 8) || KV_STR(pk, "table", table) || KV_STR(pk, "key", key) ||
        KV_U64(pk, "revision", revision) ||
        KV_U64(pk, "created_revision", created_revision) ||
        KV_I64(pk, "created", created) || KV_I64(pk, "updated", updated) ||
        pk_cstr(pk, "data"))
        return MAOS_ENOMEM;
    if (data.len ? pk_raw(pk, data.ptr, data.len) : msgpack_pack_map(pk, 0) != 0)
        return MAOS_ENOMEM;
    if (KV_BOOL(pk, "bound", bound))
        return MAOS_ENOMEM;
    return 0;
}

int maos_entry_next(maos_mpr *r, maos_entry *e)
{
    const uint8_t *start = r->p;
    maos_mpr c = *r;
    uint32_t n;
    unsigned seen = 0;
    memset(e, 0, sizeof(*e));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int bad;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        if (key_is(k, "table")) {
            bad = maos_mpr_str(&c, &e->table); seen |= 1;
        } else if (key_is(k, "key")) {
            bad = maos_mpr_str(&c, &e->key); seen |= 2;
        } else if (key_is(k, "revision")) {
            bad = maos_mpr_uint(&c, &e->revision); seen |= 4;
        } else if (key_is(k, "created_revision")) {
            bad = maos_mpr_uint(&c, &e->created_revision); seen |= 8;
        } else if (key_is(k, "created")) {
            bad = maos_mpr_int(&c, &e->created); seen |= 16;
        } else if (key_is(k, "updated")) {
            bad = maos_mpr_int(&c, &e->updated); seen |= 32;
        } else if (key_is(k, "data")) {
            bad = maos_mpr_peek(&c) != MAOS_MP_MAP || maos_mpr_skip(&c, &e->data);
            seen |= 64;
        } else if (key_is(k, "bound")) {
            bad = maos_mpr_bool(&c, &e->bound); seen |= 128;
        } else {
            bad = maos_mpr_skip(&c, NULL);
        }
        if (bad)
            return MAOS_EPROTO;
    }
    if (seen != 255)
        return MAOS_EPROTO;
    e->raw.ptr = (const char *)start;
    e->raw.len = (uint32_t)(c.p - start);
    *r = c;
    return 0;
}

int maos_entry_decode(const void *p, size_t len, maos_entry *e)
{
    maos_mpr r;
    maos_entry tmp;
    maos_mpr_init(&r, p, len);
    if (maos_entry_next(&r, &tmp) || r.p != r.end)
        return MAOS_EPROTO;
    *e = tmp;
    return 0;
}

int maos_enc_reply_revision(msgpack_packer *pk, uint64_t rid, uint64_t revision,
                            uint64_t created_revision)
{
    int created = created_revision != UINT64_MAX;
    if (head_rep(pk, 1 + created, rid, 1) || KV_U64(pk, "revision", revision))
        return MAOS_ENOMEM;
    if (created && KV_U64(pk, "created_revision", created_revision))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_get_begin(msgpack_packer *pk, uint64_t rid)
{
    if (head_rep(pk, 1, rid, 1) || pk_cstr(pk, "entry"))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_count(msgpack_packer *pk, uint64_t rid, uint64_t count,
                         uint64_t revision)
{
    if (head_rep(pk, 2, rid, 1) || KV_U64(pk, "count", count) ||
        KV_U64(pk, "revision", revision))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_watch(msgpack_packer *pk, uint64_t rid, uint64_t sub,
                         uint64_t revision)
{
    if (head_rep(pk, 2, rid, 1) || KV_U64(pk, "sub", sub) ||
        KV_U64(pk, "revision", revision))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_reply_txn_begin(msgpack_packer *pk, uint64_t rid, uint32_t n)
{
    if (head_rep(pk, 1, rid, 1) || pk_cstr(pk, "results") || msgpack_pack_array(pk, n))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_batch_refusal(msgpack_packer *pk, int code, const char *message,
                           int has_actual, int64_t actual)
{
    if (msgpack_pack_map(pk, 2 + (has_actual != 0)) ||
        KV_CSTR(pk, "code", maos_err_name(code)) ||
        KV_CSTR(pk, "message", message && *message ? message : maos_strerror(code)))
        return MAOS_ENOMEM;
    if (has_actual && KV_I64(pk, "actual", actual))
        return MAOS_ENOMEM;
    return 0;
}

/* A txn element (top 0: a map of the fields) or a whole reply (top 1:
 * {rid, ok, the fields}). */
static int enc_result(msgpack_packer *pk, const maos_txn_result *res, int top, uint64_t rid)
{
    static const uint32_t fields[MAOS_ITEM__WIRE_END] = {
        [MAOS_ITEM_APPEND] = RESULT_FIELDS, [MAOS_ITEM_PUT] = 2, [MAOS_ITEM_DELETE] = 1,
        [MAOS_ITEM_CHECKPOINT] = 0,          [MAOS_ITEM_ENQUEUE] = 3, [MAOS_ITEM_ACK] = 1,
        [MAOS_ITEM_TASK_RELEASE] = 1,        [MAOS_ITEM_NACK] = 2, [MAOS_ITEM_EXTEND] = 1};
    int k = res->kind;
    if (k < MAOS_ITEM_APPEND || k >= MAOS_ITEM__WIRE_END || k == MAOS_ITEM_CLAIM ||
        k == MAOS_ITEM_DEAD_RETRY || k == MAOS_ITEM_DEAD_PURGE)
        return MAOS_EINVALID_ARG;
    if (top ? head_rep(pk, fields[k], rid, 1) : msgpack_pack_map(pk, fields[k]))
        return MAOS_ENOMEM;
    int bad;
    switch (k) {
    case MAOS_ITEM_APPEND:
        return enc_result_fields(pk, &res->append) ? MAOS_ENOMEM : 0;
    case MAOS_ITEM_PUT:
        bad = KV_U64(pk, "revision", res->revision) ||
              KV_U64(pk, "created_revision", res->created_revision);
        break;
    case MAOS_ITEM_CHECKPOINT:
        bad = 0;
        break;
    case MAOS_ITEM_ENQUEUE:
        bad = kv_bin(pk, "task_ids", res->task_ids.ptr, res->task_ids.len) ||
              pk_cstr(pk, "duplicates") ||
              pk_raw(pk, res->duplicates.ptr, res->duplicates.len) ||
              KV_U64(pk, "revision", res->revision);
        break;
    case MAOS_ITEM_NACK:
        bad = KV_U64(pk, "revision", res->revision) || KV_STR(pk, "state", res->state);
        break;
    case MAOS_ITEM_EXTEND:
        bad = KV_I64(pk, "lease_until", res->lease_until);
        break;
    default: /* DELETE, ACK, TASK_RELEASE */
        bad = KV_U64(pk, "revision", res->revision);
        break;
    }
    return bad ? MAOS_ENOMEM : 0;
}

int maos_enc_txn_result(msgpack_packer *pk, const maos_txn_result *res)
{
    return enc_result(pk, res, 0, 0);
}

int maos_enc_reply_result(msgpack_packer *pk, uint64_t rid, const maos_txn_result *res)
{
    return enc_result(pk, res, 1, rid);
}

/* ---- tasks and queue figures ---------------------------------------------------- */

static int kv_nil_str(msgpack_packer *pk, const char *k, maos_slice v)
{
    if (pk_cstr(pk, k))
        return MAOS_ENOMEM;
    return v.len ? pk_slice(pk, v) : msgpack_pack_nil(pk);
}

int maos_enc_task(msgpack_packer *pk, const maos_task *t)
{
    if (msgpack_pack_map(pk, 17) || kv_bin(pk, "id", t->id, 16) ||
        KV_STR(pk, "queue", t->queue) || KV_STR(pk, "state", t->state) ||
        KV_U64(pk, "attempt", t->attempt) || KV_U64(pk, "max_attempts", t->max_attempts) ||
        KV_I64(pk, "priority", t->priority) || pk_cstr(pk, "data") ||
        (t->data.len ? pk_raw(pk, t->data.ptr, t->data.len) : msgpack_pack_nil(pk)) ||
        pk_cstr(pk, "meta") ||
        (t->meta.len ? pk_raw(pk, t->meta.ptr, t->meta.len) : msgpack_pack_map(pk, 0)) ||
        KV_I64(pk, "enqueued", t->enqueued) || KV_I64(pk, "not_before", t->not_before) ||
        kv_nil_str(pk, "dedupe_key", t->dedupe_key) ||
        kv_nil_str(pk, "ordering_key", t->ordering_key) ||
        kv_nil_str(pk, "last_error", t->last_error) || pk_cstr(pk, "result") ||
        (t->result.len ? pk_raw(pk, t->result.ptr, t->result.len) : msgpack_pack_nil(pk)) ||
        KV_U64(pk, "token", t->token) || KV_I64(pk, "lease_until", t->lease_until) ||
        pk_cstr(pk, "history") || msgpack_pack_array(pk, t->n_history))
        return MAOS_ENOMEM;
    for (uint32_t i = 0; i < t->n_history; i++) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++)
            v = (v << 8) | (uint8_t)t->history_be[8 * i + b];
        if (msgpack_pack_uint64(pk, v))
            return MAOS_ENOMEM;
    }
    return 0;
}

/* A str or nil into *out (nil: len 0). */
static int dec_nil_str(maos_mpr *r, maos_slice *out)
{
    if (maos_mpr_peek(r) == MAOS_MP_NIL) {
        *out = (maos_slice){NULL, 0};
        return maos_mpr_nil(r);
    }
    return maos_mpr_str(r, out);
}

int maos_task_next(maos_mpr *r, maos_task *t)
{
    static const char *const keys[] = {
        "id", "queue", "state", "attempt", "max_attempts", "priority", "data", "meta",
        "enqueued", "not_before", "dedupe_key", "ordering_key", "last_error",
        "result", "token", "lease_until", "history"};
    enum { N_KEYS = sizeof(keys) / sizeof(keys[0]) };
    maos_mpr c = *r;
    uint32_t n, have = 0;
    memset(t, 0, sizeof(*t));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, s;
        int bad = 0, which = -1;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        for (int j = 0; j < N_KEYS && which < 0; j++)
            if (key_is(k, keys[j]))
                which = j;
        switch (which) {
        case 0: bad = maos_mpr_bin(&c, &s) || s.len != 16; if (!bad) memcpy(t->id, s.ptr, 16); break;
        case 1: bad = maos_mpr_str(&c, &t->queue); break;
        case 2: bad = maos_mpr_str(&c, &t->state); break;
        case 3: bad = maos_mpr_uint(&c, &t->attempt); break;
        case 4: bad = maos_mpr_uint(&c, &t->max_attempts); break;
        case 5: bad = maos_mpr_int(&c, &t->priority); break;
        case 6: bad = maos_mpr_skip(&c, &t->data); break;
        case 7: bad = maos_mpr_peek(&c) != MAOS_MP_MAP || maos_mpr_skip(&c, &t->meta); break;
        case 8: bad = maos_mpr_int(&c, &t->enqueued); break;
        case 9: bad = maos_mpr_int(&c, &t->not_before); break;
        case 10: bad = dec_nil_str(&c, &t->dedupe_key); break;
        case 11: bad = dec_nil_str(&c, &t->ordering_key); break;
        case 12: bad = dec_nil_str(&c, &t->last_error); break;
        case 13: bad = maos_mpr_skip(&c, &t->result); break;
        case 14: bad = maos_mpr_uint(&c, &t->token); break;
        case 15: bad = maos_mpr_int(&c, &t->lease_until); break;
        case 16: bad = dec_list(&c, &t->n_history, &t->history); break;
        default: bad = maos_mpr_skip(&c, NULL); break;
        }
        if (bad)
            return MAOS_EPROTO;
        if (which >= 0)
            have |= 1u << which;
    }
    if (have != (1u << N_KEYS) - 1)
        return MAOS_EPROTO;
    *r = c;
    return 0;
}

int maos_task_decode(const void *p, size_t len, maos_task *t)
{
    maos_mpr r;
    maos_mpr_init(&r, p, len);
    return maos_task_next(&r, t);
}

int maos_enc_queue_info(msgpack_packer *pk, const maos_queue_info *q)
{
    if (msgpack_pack_map(pk, 9) || KV_STR(pk, "queue", q->queue) ||
        KV_U64(pk, "ready", q->ready) || KV_U64(pk, "delayed", q->delayed) ||
        KV_U64(pk, "blocked", q->blocked) || KV_U64(pk, "leased", q->leased) ||
        KV_U64(pk, "done", q->done) || KV_U64(pk, "dead", q->dead) ||
        KV_U64(pk, "waiting", q->waiting) || KV_I64(pk, "oldest_ready", q->oldest_ready))
        return MAOS_ENOMEM;
    return 0;
}

int maos_queue_info_next(maos_mpr *r, maos_queue_info *q)
{
    maos_mpr c = *r;
    uint32_t n, have = 0;
    memset(q, 0, sizeof(*q));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int bad;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        if (key_is(k, "queue")) bad = maos_mpr_str(&c, &q->queue), have |= 1;
        else if (key_is(k, "ready")) bad = maos_mpr_uint(&c, &q->ready), have |= 2;
        else if (key_is(k, "delayed")) bad = maos_mpr_uint(&c, &q->delayed), have |= 4;
        else if (key_is(k, "blocked")) bad = maos_mpr_uint(&c, &q->blocked), have |= 8;
        else if (key_is(k, "leased")) bad = maos_mpr_uint(&c, &q->leased), have |= 16;
        else if (key_is(k, "done")) bad = maos_mpr_uint(&c, &q->done), have |= 32;
        else if (key_is(k, "dead")) bad = maos_mpr_uint(&c, &q->dead), have |= 64;
        else if (key_is(k, "waiting")) bad = maos_mpr_uint(&c, &q->waiting), have |= 128;
        else if (key_is(k, "oldest_ready")) bad = maos_mpr_int(&c, &q->oldest_ready), have |= 256;
        else bad = maos_mpr_skip(&c, NULL);
        if (bad)
            return MAOS_EPROTO;
    }
    if (have != 511)
        return MAOS_EPROTO;
    *r = c;
    return 0;
}

int maos_enc_reply_fields(msgpack_packer *pk, uint64_t rid, uint64_t sub,
                          uint64_t from, uint64_t position, uint64_t receivers)
{
    uint32_t n = (sub != UINT64_MAX) + (from != UINT64_MAX) +
                 (position != UINT64_MAX) + (receivers != UINT64_MAX);
    if (head_rep(pk, n, rid, 1))
        return MAOS_ENOMEM;
    if (sub != UINT64_MAX && KV_U64(pk, "sub", sub))
        return MAOS_ENOMEM;
    if (from != UINT64_MAX && KV_U64(pk, "from", from))
        return MAOS_ENOMEM;
    if (position != UINT64_MAX && KV_U64(pk, "position", position))
        return MAOS_ENOMEM;
    if (receivers != UINT64_MAX && KV_U64(pk, "receivers", receivers))
        return MAOS_ENOMEM;
    return 0;
}

static const char *const push_names[MAOS_PUSH__COUNT] = {
    [MAOS_PUSH_NONE] = NULL,
#define MAOS_PUSH_NAME_(e, name) [MAOS_PUSH_##e] = name,
    MAOS_PUSH_MAP(MAOS_PUSH_NAME_)
#undef MAOS_PUSH_NAME_
};

const char *maos_push_name(maos_push_kind k)
{
    if ((int)k <= 0 || k >= MAOS_PUSH__COUNT)
        return NULL;
    return push_names[k];
}

static int head_push(msgpack_packer *pk, uint32_t n, maos_push_kind kind,
                     uint64_t sub)
{
    if (msgpack_pack_map(pk, n + 2) || KV_CSTR(pk, "push", maos_push_name(kind)) ||
        KV_U64(pk, "sub", sub))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_push_events_begin(msgpack_sbuffer *sb, uint64_t sub,
                               maos_list_mark *mark)
{
    msgpack_packer pk;
    mark->count_off = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (head_push(&pk, 2, MAOS_PUSH_EVENTS, sub) || pk_cstr(&pk, "events"))
        return MAOS_ENOMEM;
    static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
    mark->count_off = sb->size + 1;
    return msgpack_sbuffer_write(sb, arr32, 5) ? MAOS_ENOMEM : 0;
}

int maos_enc_push_events_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                             uint32_t count, uint64_t next)
{
    return maos_enc_list_end(sb, mark, count, MAOS_NEXT_UINT, next, (maos_slice){0});
}

int maos_enc_push_entries_begin(msgpack_sbuffer *sb, uint64_t sub,
                                maos_list_mark *mark)
{
    msgpack_packer pk;
    mark->count_off = 0;
    mark->map_off = sb->size;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (head_push(&pk, 3, MAOS_PUSH_ENTRIES, sub) || pk_cstr(&pk, "entries"))
        return MAOS_ENOMEM;
    static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
    mark->count_off = sb->size + 1;
    return msgpack_sbuffer_write(sb, arr32, 5) ? MAOS_ENOMEM : 0;
}

int maos_enc_push_entries_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                              uint32_t count, uint64_t revision, int more)
{
    if (!mark->count_off || mark->count_off + 4 > sb->size)
        return MAOS_EINVALID_ARG;
    maos_frame_put_len(sb->data + mark->count_off, count);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (KV_U64(&pk, "revision", revision) || KV_BOOL(&pk, "more", more))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_push_state(msgpack_packer *pk, maos_push_kind kind, uint64_t sub,
                        uint64_t next)
{
    if (head_push(pk, 1, kind, sub) || KV_U64(pk, "next", next))
        return MAOS_ENOMEM;
    return 0;
}

int maos_enc_push_message(msgpack_packer *pk, uint64_t sub, maos_slice channel,
                          maos_slice payload)
{
    if (head_push(pk, 2, MAOS_PUSH_MESSAGE, sub) || KV_STR(pk, "channel", channel) ||
        pk_cstr(pk, "payload"))
        return MAOS_ENOMEM;
    if (payload.len ? pk_raw(pk, payload.ptr, payload.len) : msgpack_pack_nil(pk) != 0)
        return MAOS_ENOMEM;
    return 0;
}

int maos_push_decode(const void *frame, size_t len, maos_push *p)
{
    return maos_push_decode_sink(frame, len, p, NULL, NULL);
}

int maos_push_decode_sink(const void *frame, size_t len, maos_push *p, maos_record_sink sink,
                          void *arg)
{
    maos_mpr r;
    uint32_t n;
    memset(p, 0, sizeof(*p));
    maos_mpr_init(&r, frame, len);
    if (maos_mpr_map(&r, &n))
        return 0;
    int is_push = 0, have_sub = 0;
    unsigned have_entries = 0; /* entries, revision, more */
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        int bad = 0;
        if (maos_mpr_str(&r, &k))
            return is_push ? MAOS_EPROTO : 0;
        if (key_is(k, "push")) {
            if (maos_mpr_str(&r, &v))
                return MAOS_EPROTO;
            is_push = 1;
            for (int kd = 1; kd < MAOS_PUSH__COUNT; kd++)
                if (key_is(v, push_names[kd]))
                    p->kind = (maos_push_kind)kd;
        } else if (key_is(k, "rid")) {
            return 0; /* a reply */
        } else if (key_is(k, "sub")) {
            bad = maos_mpr_uint(&r, &p->sub);
            have_sub = 1;
        } else if (key_is(k, "next")) {
            bad = maos_mpr_uint(&r, &p->next);
        } else if (key_is(k, "events")) {
            bad = sink ? dec_records(&r, &p->n_items, &p->items, sink, arg)
                       : dec_list(&r, &p->n_items, &p->items);
        } else if (key_is(k, "entries")) {
            bad = dec_list(&r, &p->n_items, &p->items);
            have_entries |= 1;
        } else if (key_is(k, "revision")) {
            bad = maos_mpr_uint(&r, &p->revision);
            have_entries |= 2;
        } else if (key_is(k, "more")) {
            bad = maos_mpr_bool(&r, &p->more);
            have_entries |= 4;
        } else if (key_is(k, "channel")) {
            bad = maos_mpr_str(&r, &p->channel);
        } else if (key_is(k, "payload")) {
            bad = maos_mpr_skip(&r, &p->payload);
        } else {
            bad = maos_mpr_skip(&r, NULL);
        }
        if (bad)
            return MAOS_EPROTO;
    }
    if (!is_push)
        return 0;
    if (p->kind == MAOS_PUSH_NONE || !have_sub || r.p != r.end)
        return MAOS_EPROTO;
    if (p->kind == MAOS_PUSH_ENTRIES && have_entries != 7)
        return MAOS_EPROTO;
    return 1;
}

/* ---- reply decoding ------------------------------------------------------- */

/*
 * Reply fields a decoder can see, one bit each in maos_reply.have_, so
 * that maos_reply_check can tell "absent" from "zero".  X(ENUM, "key").
 */
#define REPLY_FIELDS(X)                                                        \
    X(CODE, "code")                                                            \
    X(MESSAGE, "message")                                                      \
    X(VERSION, "version")                                                      \
    X(SERVER, "server")                                                        \
    X(MAX_FRAME, "max_frame")                                                  \
    X(STREAM, "stream")                                                        \
    X(FIRST_VERSION, "first_version")                                          \
    X(FIRST_POSITION, "first_position")                                        \
    X(COUNT, "count")                                                          \
    X(DUPLICATE, "duplicate")                                                  \
    X(IDS, "ids")                                                              \
    X(RESULTS, "results")                                                      \
    X(EVENTS, "events")                                                        \
    X(STREAMS, "streams")                                                      \
    X(NEXT, "next")                                                            \
    X(STATE, "state")                                                          \
    X(DURABILITY, "durability")                                                \
    X(HEAD_HASH, "head_hash")                                                  \
    X(SUB, "sub")                                                              \
    X(FROM, "from")                                                            \
    X(POSITION, "position")                                                    \
    X(RECEIVERS, "receivers")                                                  \
    X(REVISION, "revision")                                                    \
    X(CREATED_REVISION, "created_revision")                                    \
    X(ENTRY, "entry")                                                          \
    X(ENTRIES, "entries")                                                      \
    X(TASKS, "tasks")                                                          \
    X(TASK, "task")                                                            \
    X(TASK_IDS, "task_ids")                                                    \
    X(DUPLICATES, "duplicates")                                                \
    X(LEASE_UNTIL, "lease_until")                                              \
    X(QUEUES, "queues")                                                        \
    X(MORE, "more")                                                            \
    X(TEXT, "text")                                                            \
    X(MAX_COUNT, "max_count")                                                  \
    X(MAX_AGE_MS, "max_age_ms")                                                \
    X(HEAD, "head")                                                            \
    X(DELETED, "deleted")                                                      \
    X(KEY, "key")                                                              \
    X(HASH, "hash")                                                            \
    X(SIGNATURE, "signature")                                                  \
    X(TOKEN, "token")                                                          \
    X(TOKENS, "tokens")

enum {
#define RF_IDX_(e, key) RFI_##e,
    REPLY_FIELDS(RF_IDX_)
#undef RF_IDX_
    RFI__COUNT
};
#define RF(e) (1ull << RFI_##e)
_Static_assert(RFI__COUNT <= 64, "maos_reply.have_ holds 64 fields");

static const char *const reply_field_names[RFI__COUNT] = {
#define RF_NAME_(e, key) [RFI_##e] = key,
    REPLY_FIELDS(RF_NAME_)
#undef RF_NAME_
};

/* The stats counters, one bit each in maos_reply.have_stats_. */
enum {
#define STAT_IDX_(name) STI_##name,
    MAOS_STATS_MAP(STAT_IDX_)
#undef STAT_IDX_
    STI__COUNT
};
enum {
#define STAT_V1_IDX_(name) STV1_##name,
    MAOS_STATS_MAP_V1(STAT_V1_IDX_)
#undef STAT_V1_IDX_
    STI__V1_COUNT
};
_Static_assert(STI__COUNT <= 64, "maos_reply.have_stats_ holds 64 counters");

/* Every field of one append's result (PROTOCOL.md "append"). */
#define RESULT_REQUIRED                                                        \
    (RF(STREAM) | RF(FIRST_VERSION) | RF(FIRST_POSITION) | RF(COUNT) |          \
     RF(DUPLICATE) | RF(IDS))

/* What a successful reply to each op promises (PROTOCOL.md). */
static const uint64_t reply_required[MAOS_OP__COUNT] = {
    [MAOS_OP_HELLO] = RF(VERSION) | RF(SERVER) | RF(MAX_FRAME),
    [MAOS_OP_APPEND] = RESULT_REQUIRED,
    [MAOS_OP_TXN] = RF(RESULTS),
    [MAOS_OP_APPEND_BATCH] = RF(RESULTS),
    [MAOS_OP_READ] = RF(EVENTS) | RF(NEXT),
    [MAOS_OP_READ_ALL] = RF(EVENTS) | RF(NEXT),
    [MAOS_OP_STREAMS] = RF(STREAMS) | RF(NEXT),
    [MAOS_OP_STATS] = RF(SERVER) | RF(STATE) | RF(DURABILITY) | RF(MAX_FRAME) |
                      RF(HEAD_HASH),
    [MAOS_OP_SUBSCRIBE] = RF(SUB) | RF(FROM),
    [MAOS_OP_CHECKPOINT_GET] = RF(POSITION),
    [MAOS_OP_PUBLISH] = RF(RECEIVERS),
    [MAOS_OP_SUBSCRIBE_CHANNEL] = RF(SUB),
    [MAOS_OP_PUT] = RF(REVISION) | RF(CREATED_REVISION),
    [MAOS_OP_GET] = RF(ENTRY),
    [MAOS_OP_DELETE] = RF(REVISION),
    [MAOS_OP_LIST] = RF(ENTRIES) | RF(NEXT) | RF(REVISION),
    [MAOS_OP_COUNT] = RF(COUNT) | RF(REVISION),
    [MAOS_OP_WATCH] = RF(SUB) | RF(REVISION),
    [MAOS_OP_AGENT_REGISTER] = RF(REVISION) | RF(CREATED_REVISION),
    [MAOS_OP_AGENT_DEREGISTER] = RF(REVISION),
    [MAOS_OP_AGENT_STATUS] = RF(REVISION),
    [MAOS_OP_ENQUEUE] = RF(TASK_IDS) | RF(DUPLICATES) | RF(REVISION),
    [MAOS_OP_CLAIM] = RF(TASKS),
    [MAOS_OP_ACK] = RF(REVISION),
    [MAOS_OP_NACK] = RF(REVISION) | RF(STATE),
    [MAOS_OP_EXTEND] = RF(LEASE_UNTIL),
    [MAOS_OP_RELEASE] = RF(REVISION),
    [MAOS_OP_TASK] = RF(TASK),
    [MAOS_OP_QUEUE_STATS] = RF(QUEUES),
    [MAOS_OP_DEAD_LIST] = RF(TASKS) | RF(NEXT),
    [MAOS_OP_DEAD_RETRY] = RF(COUNT) | RF(MORE),
    [MAOS_OP_DEAD_PURGE] = RF(COUNT) | RF(MORE),
    [MAOS_OP_BACKUP] = RF(POSITION),
    [MAOS_OP_METRICS] = RF(TEXT),
    [MAOS_OP_TASK_LIST] = RF(TASKS) | RF(NEXT),
    [MAOS_OP_PUBKEY] = RF(KEY),
    [MAOS_OP_CHAIN_SIGN] = RF(POSITION) | RF(HASH) | RF(HEAD) | RF(SIGNATURE),
    [MAOS_OP_STREAM_META] = RF(MAX_COUNT) | RF(MAX_AGE_MS) | RF(FIRST_VERSION) | RF(HEAD) |
                            RF(DELETED),
    [MAOS_OP_TOKEN_CREATE] = RF(TOKEN),
    [MAOS_OP_TOKEN_LIST] = RF(TOKENS),
    [MAOS_OP_TOKEN_REVOKE] = RF(COUNT),
    /* ping, unsubscribe, checkpoint_save: {rid, ok} only */
};

/* An error reply promises these whatever the op. */
#define ERROR_REQUIRED (RF(CODE) | RF(MESSAGE))

/* Name of the first field of `need` missing from `have`. */
static const char *first_missing(uint64_t need, uint64_t have)
{
    for (int i = 0; i < RFI__COUNT; i++)
        if ((need & (1ull << i)) && !(have & (1ull << i)))
            return reply_field_names[i];
    return "?";
}

static int dec_result_key(maos_mpr *r, maos_slice k, maos_append_result *res,
                          uint64_t *have, int *handled)
{
    uint64_t u;
    *handled = 1;
    if (key_is(k, "stream")) {
        *have |= RF(STREAM);
        return maos_mpr_str(r, &res->stream);
    }
    if (key_is(k, "first_version")) {
        *have |= RF(FIRST_VERSION);
        return maos_mpr_uint(r, &res->first_version);
    }
    if (key_is(k, "first_position")) {
        *have |= RF(FIRST_POSITION);
        return maos_mpr_uint(r, &res->first_position);
    }
    if (key_is(k, "count")) {
        *have |= RF(COUNT);
        if (maos_mpr_uint(r, &u) || u > UINT32_MAX)
            return MAOS_EPROTO;
        res->count = (uint32_t)u;
        return 0;
    }
    if (key_is(k, "duplicate")) {
        *have |= RF(DUPLICATE);
        return maos_mpr_bool(r, &res->duplicate);
    }
    if (key_is(k, "ids")) {
        *have |= RF(IDS);
        return maos_mpr_bin(r, &res->ids);
    }
    *handled = 0;
    return 0;
}

int maos_append_result_next(maos_mpr *r, maos_append_result *res)
{
    maos_mpr c = *r;
    uint32_t n;
    uint64_t have = 0;
    memset(res, 0, sizeof(*res));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int handled;
        if (maos_mpr_str(&c, &k) || dec_result_key(&c, k, res, &have, &handled) ||
            (!handled && maos_mpr_skip(&c, NULL)))
            return MAOS_EPROTO;
    }
    if ((have & RESULT_REQUIRED) != RESULT_REQUIRED ||
        res->ids.len != (uint64_t)res->count * 16)
        return MAOS_EPROTO;
    *r = c;
    return 0;
}

int maos_batch_result_next(maos_mpr *r, maos_batch_result *res)
{
    maos_mpr c = *r;
    uint32_t n;
    uint64_t have = 0;
    memset(res, 0, sizeof(*res));
    if (maos_mpr_peek(&c) == MAOS_MP_ARRAY) { /* maos_enc_append_result_array's */
        maos_append_result *a = &res->append;
        if (maos_mpr_array(&c, &n) || n != RESULT_FIELDS || maos_mpr_str(&c, &a->stream) ||
            maos_mpr_uint(&c, &a->first_version) || maos_mpr_uint(&c, &a->first_position) ||
            maos_mpr_uint(&c, &have) || have > UINT32_MAX ||
            maos_mpr_bool(&c, &a->duplicate) || maos_mpr_bin(&c, &a->ids) ||
            a->ids.len != have * 16)
            return MAOS_EPROTO;
        a->count = (uint32_t)have;
        *r = c;
        return 0;
    }
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, s;
        int handled, bad = 0;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        if (key_is(k, "code")) {
            bad = maos_mpr_str(&c, &s);
            if (!bad && !(res->code = maos_err_from_name(s.ptr, s.len)))
                res->code = MAOS_EPROTO;
            have |= RF(CODE);
        } else if (key_is(k, "message")) {
            bad = maos_mpr_str(&c, &res->message);
            have |= RF(MESSAGE);
        } else if (key_is(k, "actual")) {
            bad = maos_mpr_int(&c, &res->actual);
            res->has_actual = 1;
        } else {
            bad = dec_result_key(&c, k, &res->append, &have, &handled) ||
                  (!handled && maos_mpr_skip(&c, NULL));
        }
        if (bad)
            return MAOS_EPROTO;
    }
    if (have & RF(CODE)) {
        if ((have & ERROR_REQUIRED) != ERROR_REQUIRED)
            return MAOS_EPROTO;
    } else if ((have & RESULT_REQUIRED) != RESULT_REQUIRED ||
               res->append.ids.len != (uint64_t)res->append.count * 16) {
        return MAOS_EPROTO;
    }
    *r = c;
    return 0;
}

int maos_txn_result_next(maos_mpr *r, int kind, maos_txn_result *res)
{
    maos_mpr c = *r;
    uint32_t n;
    uint64_t have = 0;
    if (kind < 0 || kind >= MAOS_ITEM__WIRE_END || kind == MAOS_ITEM_CLAIM ||
        kind == MAOS_ITEM_DEAD_RETRY || kind == MAOS_ITEM_DEAD_PURGE)
        return MAOS_EINVALID_ARG;
    memset(res, 0, sizeof(*res));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int handled, bad;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        if (key_is(k, "revision")) {
            bad = maos_mpr_uint(&c, &res->revision);
            have |= RF(REVISION);
        } else if (key_is(k, "created_revision")) {
            bad = maos_mpr_uint(&c, &res->created_revision);
            have |= RF(CREATED_REVISION);
        } else if (key_is(k, "task_ids")) {
            bad = maos_mpr_bin(&c, &res->task_ids);
            have |= RF(TASK_IDS);
        } else if (key_is(k, "duplicates")) {
            bad = dec_list(&c, &res->n_duplicates, &res->duplicates);
            have |= RF(DUPLICATES);
        } else if (key_is(k, "state")) {
            bad = maos_mpr_str(&c, &res->state);
            have |= RF(STATE);
        } else if (key_is(k, "lease_until")) {
            bad = maos_mpr_int(&c, &res->lease_until);
            have |= RF(LEASE_UNTIL);
        } else {
            bad = dec_result_key(&c, k, &res->append, &have, &handled) ||
                  (!handled && maos_mpr_skip(&c, NULL));
        }
        if (bad)
            return MAOS_EPROTO;
    }
    if (!kind)
        kind = (have & RF(STREAM)) ? MAOS_ITEM_APPEND
               : (have & RF(CREATED_REVISION)) ? MAOS_ITEM_PUT
               : (have & RF(REVISION)) ? MAOS_ITEM_DELETE
                                       : MAOS_ITEM_CHECKPOINT;
    static const uint64_t need[MAOS_ITEM__WIRE_END] = {
        [MAOS_ITEM_APPEND] = RESULT_REQUIRED,
        [MAOS_ITEM_PUT] = RF(REVISION) | RF(CREATED_REVISION),
        [MAOS_ITEM_DELETE] = RF(REVISION),
        [MAOS_ITEM_CHECKPOINT] = 0,
        [MAOS_ITEM_ENQUEUE] = RF(TASK_IDS) | RF(DUPLICATES) | RF(REVISION),
        [MAOS_ITEM_ACK] = RF(REVISION),
        [MAOS_ITEM_NACK] = RF(REVISION) | RF(STATE),
        [MAOS_ITEM_EXTEND] = RF(LEASE_UNTIL),
        [MAOS_ITEM_TASK_RELEASE] = RF(REVISION),
    };
    if ((have & need[kind]) != need[kind])
        return MAOS_EPROTO;
    if (kind == MAOS_ITEM_ENQUEUE && res->task_ids.len != (uint64_t)res->n_duplicates * 16)
        return MAOS_EPROTO;
    if (kind == MAOS_ITEM_APPEND && res->append.ids.len != (uint64_t)res->append.count * 16)
        return MAOS_EPROTO;
    res->kind = kind;
    *r = c;
    return 0;
}

int maos_stream_info_next(maos_mpr *r, maos_stream_info *si)
{
    maos_mpr c = *r;
    uint32_t n;
    unsigned have = 0; /* stream, head, count, last_position: all promised */
    memset(si, 0, sizeof(*si));
    if (maos_mpr_map(&c, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int bad;
        if (maos_mpr_str(&c, &k))
            return MAOS_EPROTO;
        if (key_is(k, "stream")) bad = maos_mpr_str(&c, &si->stream), have |= 1;
        else if (key_is(k, "head")) bad = maos_mpr_uint(&c, &si->head), have |= 2;
        else if (key_is(k, "count")) bad = maos_mpr_uint(&c, &si->count), have |= 4;
        else if (key_is(k, "last_position"))
            bad = maos_mpr_uint(&c, &si->last_position), have |= 8;
        else bad = maos_mpr_skip(&c, NULL);
        if (bad)
            return MAOS_EPROTO;
    }
    if (have != 15)
        return MAOS_EPROTO;
    *r = c;
    return 0;
}

/* A raw array value: its element count and its bytes (header included). */
static int dec_list(maos_mpr *r, uint32_t *count, maos_slice *raw)
{
    maos_mpr c = *r;
    if (maos_mpr_array(&c, count) || maos_mpr_skip(r, raw))
        return MAOS_EPROTO;
    return 0;
}

/* An `events` list, each record to sink as it is read (see
 * maos_reply_decode_sink). */
static int dec_records(maos_mpr *r, uint32_t *count, maos_slice *raw, maos_record_sink sink,
                       void *arg)
{
    const char *start = (const char *)r->p;
    maos_record rec;
    if (maos_mpr_array(r, count))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < *count; i++)
        if (maos_record_next(r, &rec) || sink(arg, i, *count, &rec))
            return MAOS_EPROTO;
    raw->ptr = start;
    raw->len = (uint32_t)((const char *)r->p - start);
    return 0;
}

int maos_reply_decode(const void *frame, size_t len, maos_reply *rep)
{
    return maos_reply_decode_sink(frame, len, rep, NULL, NULL);
}

int maos_reply_decode_sink(const void *frame, size_t len, maos_reply *rep,
                           maos_record_sink sink, void *arg)
{
    maos_mpr r;
    uint32_t n;
    int have_rid = 0, have_ok = 0;
    memset(rep, 0, sizeof(*rep));
    rep->index = -1;
    maos_mpr_init(&r, frame, len);
    if (maos_mpr_map(&r, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, s;
        uint64_t u;
        int bad = 0, handled;
        if (maos_mpr_str(&r, &k))
            return MAOS_EPROTO;
        if (key_is(k, "rid")) {
            bad = maos_mpr_uint(&r, &rep->rid);
            have_rid = 1;
        } else if (key_is(k, "ok")) {
            bad = maos_mpr_bool(&r, &rep->ok);
            have_ok = 1;
        } else if (key_is(k, "code")) {
            bad = maos_mpr_str(&r, &s);
            if (!bad) {
                rep->code = maos_err_from_name(s.ptr, s.len);
                if (!rep->code)
                    rep->code = MAOS_EPROTO;
            }
            rep->have_ |= RF(CODE);
        } else if (key_is(k, "message")) {
            bad = maos_mpr_str(&r, &rep->message);
            rep->have_ |= RF(MESSAGE);
        } else if (key_is(k, "actual")) {
            bad = maos_mpr_int(&r, &rep->actual);
            rep->has_actual = 1;
        } else if (key_is(k, "index")) {
            bad = maos_mpr_int(&r, &rep->index);
        } else if (key_is(k, "version")) {
            bad = maos_mpr_uint(&r, &rep->version);
            rep->have_ |= RF(VERSION);
        } else if (key_is(k, "server")) {
            bad = maos_mpr_str(&r, &rep->server);
            rep->stats.server = rep->server;
            rep->have_ |= RF(SERVER);
        } else if (key_is(k, "max_frame")) {
            bad = maos_mpr_uint(&r, &u) || u > UINT32_MAX;
            rep->max_frame = (uint32_t)u;
            rep->stats.max_frame = u;
            rep->have_ |= RF(MAX_FRAME);
            rep->have_stats_ |= 1ull << STI_max_frame;
        } else if (key_is(k, "results")) {
            bad = dec_list(&r, &rep->n_results, &rep->results);
            rep->have_ |= RF(RESULTS);
        } else if (key_is(k, "tasks") || key_is(k, "queues")) {
            bad = dec_list(&r, &rep->n_items, &rep->items);
            rep->have_ |= k.ptr[0] == 't' ? RF(TASKS) : RF(QUEUES);
        } else if (key_is(k, "task")) {
            bad = maos_mpr_peek(&r) != MAOS_MP_MAP || maos_mpr_skip(&r, &rep->task);
            rep->have_ |= RF(TASK);
        } else if (key_is(k, "task_ids")) {
            bad = maos_mpr_bin(&r, &rep->task_ids);
            rep->have_ |= RF(TASK_IDS);
        } else if (key_is(k, "duplicates")) {
            bad = dec_list(&r, &rep->n_duplicates, &rep->duplicates);
            rep->have_ |= RF(DUPLICATES);
        } else if (key_is(k, "lease_until")) {
            bad = maos_mpr_int(&r, &rep->lease_until);
            rep->have_ |= RF(LEASE_UNTIL);
        } else if (key_is(k, "more")) {
            bad = maos_mpr_bool(&r, &rep->more);
            rep->have_ |= RF(MORE);
        } else if (key_is(k, "token")) {
            /* token_create's token (the client reads it from the frame) */
            maos_slice t;
            bad = maos_mpr_str(&r, &t);
            rep->have_ |= RF(TOKEN);
        } else if (key_is(k, "tokens")) {
            bad = maos_mpr_peek(&r) != MAOS_MP_ARRAY || maos_mpr_skip(&r, NULL);
            rep->have_ |= RF(TOKENS);
        } else if (key_is(k, "text")) {
            bad = maos_mpr_str(&r, &rep->text);
            rep->have_ |= RF(TEXT);
        } else if (key_is(k, "events") || key_is(k, "streams") ||
                   key_is(k, "entries")) {
            bad = sink && k.len == 6 ? dec_records(&r, &rep->n_items, &rep->items, sink, arg)
                                     : dec_list(&r, &rep->n_items, &rep->items);
            rep->have_ |= k.ptr[0] == 's' ? RF(STREAMS) : k.len == 6 ? RF(EVENTS)
                                                                    : RF(ENTRIES);
        } else if (key_is(k, "entry")) {
            bad = maos_mpr_peek(&r) != MAOS_MP_MAP || maos_mpr_skip(&r, &rep->entry);
            rep->have_ |= RF(ENTRY);
        } else if (key_is(k, "revision")) {
            bad = maos_mpr_uint(&r, &rep->revision);
            rep->have_ |= RF(REVISION);
        } else if (key_is(k, "created_revision")) {
            bad = maos_mpr_uint(&r, &rep->created_revision);
            rep->have_ |= RF(CREATED_REVISION);
        } else if (key_is(k, "count")) {
            /* an append's count (uint32) or a count reply's (uint64) */
            bad = maos_mpr_uint(&r, &rep->count);
            rep->result.count = rep->count > UINT32_MAX ? 0 : (uint32_t)rep->count;
            rep->have_ |= RF(COUNT);
        } else if (key_is(k, "next")) {
            int t = maos_mpr_peek(&r);
            if (t == MAOS_MP_UINT) {
                bad = maos_mpr_uint(&r, &rep->next_u);
                rep->next_kind = MAOS_NEXT_UINT;
            } else if (t == MAOS_MP_STR) {
                bad = maos_mpr_str(&r, &rep->next_s);
                rep->next_kind = MAOS_NEXT_STR;
            } else if (t == MAOS_MP_BIN) {
                bad = maos_mpr_bin(&r, &rep->next_s) || rep->next_s.len != 16;
                rep->next_kind = MAOS_NEXT_BIN;
            } else {
                bad = maos_mpr_nil(&r);
            }
            rep->have_ |= RF(NEXT);
        } else if (key_is(k, "sub")) {
            bad = maos_mpr_uint(&r, &rep->sub);
            rep->have_ |= RF(SUB);
        } else if (key_is(k, "from")) {
            bad = maos_mpr_uint(&r, &rep->from);
            rep->have_ |= RF(FROM);
        } else if (key_is(k, "position")) {
            bad = maos_mpr_uint(&r, &rep->position);
            rep->have_ |= RF(POSITION);
        } else if (key_is(k, "receivers")) {
            bad = maos_mpr_uint(&r, &rep->receivers);
            rep->have_ |= RF(RECEIVERS);
        } else if (key_is(k, "state")) {
            bad = maos_mpr_str(&r, &rep->stats.state);
            rep->state = rep->stats.state;
            rep->has_stats = 1;
            rep->have_ |= RF(STATE);
        } else if (key_is(k, "durability")) {
            bad = maos_mpr_str(&r, &rep->stats.durability);
            rep->have_ |= RF(DURABILITY);
        } else if (key_is(k, "key")) {
            bad = maos_mpr_bin(&r, &rep->key) || rep->key.len != 32;
            rep->have_ |= RF(KEY);
        } else if (key_is(k, "hash")) {
            bad = maos_mpr_bin(&r, &rep->hash) || rep->hash.len != 32;
            rep->have_ |= RF(HASH);
        } else if (key_is(k, "signature")) {
            bad = maos_mpr_bin(&r, &rep->signature) || rep->signature.len != 64;
            rep->have_ |= RF(SIGNATURE);
        } else if (key_is(k, "max_count")) {
            bad = maos_mpr_uint(&r, &rep->smeta.max_count);
            rep->have_ |= RF(MAX_COUNT);
        } else if (key_is(k, "max_age_ms")) {
            bad = maos_mpr_uint(&r, &rep->smeta.max_age_ms);
            rep->have_ |= RF(MAX_AGE_MS);
        } else if (key_is(k, "head")) {
            bad = maos_mpr_int(&r, &rep->smeta.head);
            rep->have_ |= RF(HEAD);
        } else if (key_is(k, "deleted")) {
            bad = maos_mpr_bool(&r, &rep->smeta.deleted);
            rep->have_ |= RF(DELETED);
        } else if (key_is(k, "data_dir")) { /* optional: older daemons lack it */
            bad = maos_mpr_str(&r, &rep->stats.data_dir);
        } else if (key_is(k, "head_hash")) {
            bad = maos_mpr_bin(&r, &rep->stats.head_hash) ||
                  rep->stats.head_hash.len != MAOS_HASH_BYTES;
            rep->have_ |= RF(HEAD_HASH);
        } else if ((bad = dec_result_key(&r, k, &rep->result, &rep->have_, &handled)),
                   handled) {
            /* append result field */
        }
#define MAOS_STATS_DEC_(name)                                                  \
        else if (key_is(k, #name)) {                                           \
            bad = maos_mpr_uint(&r, &rep->stats.name);                         \
            rep->have_stats_ |= 1ull << STI_##name;                            \
        }
        MAOS_STATS_MAP(MAOS_STATS_DEC_)
#undef MAOS_STATS_DEC_
        else
            bad = maos_mpr_skip(&r, NULL);
        if (bad)
            return MAOS_EPROTO;
    }
    if (!have_rid || !have_ok || r.p != r.end)
        return MAOS_EPROTO;
    rep->smeta.first_version = rep->result.first_version;
    if (!rep->ok && rep->code == 0)
        rep->code = MAOS_EPROTO;
    /* an append result's ids hold count ids (a count reply has no ids) */
    if ((rep->have_ & RF(TASK_IDS)) &&
        rep->task_ids.len != (uint64_t)rep->n_duplicates * 16)
        return MAOS_EPROTO;
    if ((rep->have_ & RF(IDS)) &&
        (rep->count > UINT32_MAX || rep->result.ids.len != rep->count * 16))
        return MAOS_EPROTO;
    return 0;
}

static const char *const stat_names[STI__COUNT] = {
#define STAT_NAME_(name) [STI_##name] = #name,
    MAOS_STATS_MAP(STAT_NAME_)
#undef STAT_NAME_
};

int maos_reply_check(const maos_reply *rep, maos_op op, char *why, size_t whylen)
{
    const char *name = maos_op_name(op);
    uint64_t need;
    if (!name) {
        why_set(why, whylen, "reply to an unknown op %d", (int)op);
        return MAOS_EINVALID_ARG;
    }
    if (!rep->ok) {
        if ((rep->have_ & ERROR_REQUIRED) != ERROR_REQUIRED) {
            why_set(why, whylen, "%s error reply without %s", name,
                    first_missing(ERROR_REQUIRED, rep->have_));
            return MAOS_EPROTO;
        }
        return 0;
    }
    need = reply_required[op];
    if ((rep->have_ & need) != need) {
        why_set(why, whylen, "%s reply without %s", name, first_missing(need, rep->have_));
        return MAOS_EPROTO;
    }
    switch (op) {
    case MAOS_OP_READ:
    case MAOS_OP_READ_ALL:
        if (rep->next_kind == MAOS_NEXT_STR) {
            why_set(why, whylen, "%s reply with a string next (a position or nil)", name);
            return MAOS_EPROTO;
        }
        break;
    case MAOS_OP_STREAMS:
    case MAOS_OP_LIST:
        if (rep->next_kind == MAOS_NEXT_UINT) {
            why_set(why, whylen, "%s reply with a numeric next (a %s or nil)", name,
                    op == MAOS_OP_LIST ? "key" : "name");
            return MAOS_EPROTO;
        }
        break;
    case MAOS_OP_TASK: {
        maos_task t;
        if (maos_task_decode(rep->task.ptr, rep->task.len, &t)) {
            why_set(why, whylen, "task reply with a task without all of its fields");
            return MAOS_EPROTO;
        }
        break;
    }
    case MAOS_OP_DEAD_LIST:
    case MAOS_OP_TASK_LIST:
        if (rep->next_kind == MAOS_NEXT_UINT || rep->next_kind == MAOS_NEXT_STR) {
            why_set(why, whylen, "%s reply with a next that is not a task id", name);
            return MAOS_EPROTO;
        }
        break;
    case MAOS_OP_GET: {
        maos_entry e;
        if (maos_entry_decode(rep->entry.ptr, rep->entry.len, &e)) {
            why_set(why, whylen, "get reply with an entry without all of its fields");
            return MAOS_EPROTO;
        }
        break;
    }
    case MAOS_OP_STATS:
        /* the counters of protocol 1; later ones are optional (a newer
         * client may talk to an older daemon) */
        for (int i = 0; i < STI__V1_COUNT; i++) {
            if (!(rep->have_stats_ & (1ull << i))) {
                why_set(why, whylen, "stats reply without %s", stat_names[i]);
                return MAOS_EPROTO;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}
