/*
 * tests/fuzz/fuzz_reply.c -- libFuzzer target for libmaos-client's input
 * path: one frame's payload, as a (possibly hostile or broken) server
 * sends it: a push or a reply, told apart the way the client does.
 *
 *   maos_push_decode  -> maos_record_next / maos_entry_next over its list
 *   maos_reply_decode -> maos_append_result_next, maos_txn_result_next
 *                        over "results"
 *                     -> maos_record_next / maos_stream_info_next /
 *                        maos_entry_next over the "events" / "streams" /
 *                        "entries" list; maos_entry_decode on "entry"
 *
 * A client does not know from the bytes whether a list holds records or
 * stream infos (it knows from its request), so both walkers run over every
 * list.  Beyond "no crash, leak, overflow or UB", it checks:
 *  - failures are MAOS_EPROTO; a decoded error reply carries a known code;
 *  - the two msgpack walkers agree: a value maos_mp_check accepts is one
 *    maos_mpr_skip consumes exactly, and the reverse up to limits;
 *  - every record walked decodes alone from its raw bytes to the same
 *    fields, and re-encoded with maos_enc_record decodes to them again;
 *  - maos_filter_match accepts a record for filters built from the record
 *    itself and refuses it for a time range that ends before it;
 *  - stream infos, entries, append results and mixed txn results (put,
 *    delete, checkpoint) survive their encoders the same way;
 *  - maos_reply_check, for every op, returns 0 or MAOS_EPROTO with a
 *    reason, and passes what the encoders make (issue 15: a reply without
 *    a promised field is refused, never taken for a success).
 */
#include "fuzz.h"

static void same_record(const maos_record *a, const maos_record *b)
{
    FUZZ_CHECK(a->position == b->position, "position");
    FUZZ_CHECK(a->version == b->version, "version");
    FUZZ_CHECK(a->time == b->time, "time");
    FUZZ_CHECK(fuzz_slice_eq(a->stream, b->stream), "stream");
    FUZZ_CHECK(fuzz_slice_eq(a->type, b->type), "type");
    FUZZ_CHECK(fuzz_slice_eq(a->id, b->id), "id");
    FUZZ_CHECK(fuzz_slice_eq(a->prev, b->prev), "prev");
    FUZZ_CHECK(fuzz_slice_eq(a->data, b->data), "data");
    FUZZ_CHECK(fuzz_slice_eq(a->meta, b->meta), "meta");
}

static void check_filters(const maos_record *rec)
{
    maos_filter f;
    maos_slice types[2];

    memset(&f, 0, sizeof f);
    FUZZ_CHECK(maos_filter_match(&f, rec) == 1, "empty filter");

    f.stream = rec->stream;
    f.prefix = rec->stream;
    f.prefix.len /= 2;
    f.category = maos_category(rec->stream);
    FUZZ_CHECK(f.category.len <= rec->stream.len, "category longer than stream");
    types[0] = (maos_slice){"\xff", 1}; /* never a valid type, never matches */
    types[1] = rec->type;
    f.types = types;
    f.n_types = 2;
    f.has_since = f.has_until = 1;
    f.since = f.until = rec->time;
    FUZZ_CHECK(maos_filter_match(&f, rec) == 1, "filter made from the record");

    if (rec->time > INT64_MIN) {
        f.until = rec->time - 1;
        f.since = INT64_MIN;
        FUZZ_CHECK(maos_filter_match(&f, rec) == 0, "until before the record");
    }
}

static void walk_records(maos_slice items, uint32_t n_items)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, items.ptr, items.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_items, "items list");
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec, again;
        const uint8_t *before = r.p;
        if (maos_record_next(&r, &rec)) {
            FUZZ_CHECK(r.p == before, "cursor moved on error");
            return;
        }
        FUZZ_CHECK(rec.raw.ptr == (const char *)before &&
                       (const uint8_t *)rec.raw.ptr + rec.raw.len == r.p,
                   "raw span");
        FUZZ_CHECK(rec.id.len == 16 && rec.prev.len == MAOS_HASH_BYTES,
                   "id/prev sizes %u/%u", rec.id.len, rec.prev.len);
        FUZZ_CHECK(rec.data.len >= 1 && rec.meta.len >= 1, "data/meta present");
        FUZZ_CHECK(maos_record_decode(rec.raw.ptr, rec.raw.len, &again) == 0,
                   "record does not decode alone");
        same_record(&rec, &again);
        check_filters(&rec);

        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        FUZZ_CHECK(maos_enc_record(&pk, rec.position, rec.time, rec.version,
                                   rec.stream, rec.type, (const uint8_t *)rec.id.ptr,
                                   (const uint8_t *)rec.prev.ptr, rec.data,
                                   rec.meta) == 0,
                   "maos_enc_record");
        FUZZ_CHECK(maos_record_decode(sb.data, sb.size, &again) == 0,
                   "re-encoded record does not decode");
        same_record(&rec, &again);
        msgpack_sbuffer_destroy(&sb);
    }
    FUZZ_CHECK(r.p == r.end, "records do not fill the list");
}

static void walk_infos(maos_slice items, uint32_t n_items)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, items.ptr, items.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_items, "items list");
    for (uint32_t i = 0; i < n; i++) {
        maos_stream_info si, again;
        if (maos_stream_info_next(&r, &si))
            return;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        FUZZ_CHECK(maos_enc_stream_info(&pk, &si) == 0, "maos_enc_stream_info");
        maos_mpr c;
        maos_mpr_init(&c, sb.data, sb.size);
        FUZZ_CHECK(maos_stream_info_next(&c, &again) == 0 && c.p == c.end,
                   "re-encoded stream info");
        FUZZ_CHECK(fuzz_slice_eq(si.stream, again.stream) && si.head == again.head &&
                       si.count == again.count &&
                       si.last_position == again.last_position,
                   "stream info fields");
        msgpack_sbuffer_destroy(&sb);
    }
}

static void same_result(const maos_append_result *a, const maos_append_result *b)
{
    FUZZ_CHECK(fuzz_slice_eq(a->stream, b->stream) &&
                   a->first_version == b->first_version &&
                   a->first_position == b->first_position && a->count == b->count &&
                   !a->duplicate == !b->duplicate && fuzz_slice_eq(a->ids, b->ids),
               "append result fields");
}

static void walk_results(maos_slice results, uint32_t n_results)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, results.ptr, results.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_results, "results list");
    for (uint32_t i = 0; i < n; i++) {
        maos_append_result res, again;
        maos_reply rep;
        if (maos_append_result_next(&r, &res))
            return;
        FUZZ_CHECK(res.ids.len == (uint64_t)res.count * 16, "ids/count");
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        FUZZ_CHECK(maos_enc_reply_append(&pk, 7, 1, &res, 1) == 0, "encode txn reply");
        FUZZ_CHECK(maos_reply_decode(sb.data, sb.size, &rep) == 0 && rep.ok &&
                       rep.rid == 7 && rep.n_results == 1,
                   "re-encoded txn reply");
        FUZZ_CHECK(maos_reply_check(&rep, MAOS_OP_TXN, NULL, 0) == 0,
                   "re-encoded txn reply fails maos_reply_check");
        maos_mpr c;
        maos_mpr_init(&c, rep.results.ptr, rep.results.len);
        FUZZ_CHECK(maos_mpr_array(&c, &n_results) == 0 &&
                       maos_append_result_next(&c, &again) == 0,
                   "re-encoded result");
        same_result(&res, &again);
        /* the same result as a single append's reply passes the check */
        msgpack_sbuffer_clear(&sb);
        FUZZ_CHECK(maos_enc_reply_append(&pk, 8, 0, &res, 1) == 0, "encode append reply");
        FUZZ_CHECK(maos_reply_decode(sb.data, sb.size, &rep) == 0 &&
                       maos_reply_check(&rep, MAOS_OP_APPEND, NULL, 0) == 0,
                   "re-encoded append reply fails maos_reply_check");
        msgpack_sbuffer_destroy(&sb);
    }
}

/* append_batch results: each element a result or a refusal; one that
 * reads is encoded again (maos_enc_txn_result / maos_enc_batch_refusal)
 * and must read back the same. */
static void walk_batch_results(maos_slice results, uint32_t n_results)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, results.ptr, results.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_results, "results list");
    for (uint32_t i = 0; i < n; i++) {
        maos_batch_result res, again;
        if (maos_batch_result_next(&r, &res))
            return;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        char msg[300];
        snprintf(msg, sizeof msg, "%.*s", (int)(res.message.len > 200 ? 200 : res.message.len),
                 res.message.ptr ? res.message.ptr : "");
        int code = res.code == MAOS_EPROTO ? MAOS_EINTERNAL : res.code;
        maos_txn_result tr = {.kind = MAOS_ITEM_APPEND, .append = res.append};
        FUZZ_CHECK((res.code ? maos_enc_batch_refusal(&pk, code, msg, res.has_actual,
                                                      res.actual)
                             : maos_enc_txn_result(&pk, &tr)) == 0,
                   "encode batch result");
        maos_mpr c;
        maos_mpr_init(&c, sb.data, sb.size);
        FUZZ_CHECK(maos_batch_result_next(&c, &again) == 0 && c.p == c.end,
                   "re-encoded batch result");
        FUZZ_CHECK(again.code == code && !again.has_actual == !res.has_actual &&
                       (!res.has_actual || again.actual == res.actual),
                   "batch refusal fields");
        if (!res.code)
            same_result(&res.append, &again.append);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void same_entry(const maos_entry *a, const maos_entry *b)
{
    FUZZ_CHECK(fuzz_slice_eq(a->table, b->table) && fuzz_slice_eq(a->key, b->key) &&
                   a->revision == b->revision &&
                   a->created_revision == b->created_revision &&
                   a->created == b->created && a->updated == b->updated &&
                   fuzz_slice_eq(a->data, b->data) && !a->bound == !b->bound,
               "entry fields");
}

/* An entry decoded from a frame, encoded again and decoded. */
static void entry_again(const maos_entry *e)
{
    maos_entry again;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    FUZZ_CHECK(e->data.len >= 1 && e->raw.len >= 1, "entry data/raw present");
    FUZZ_CHECK(maos_entry_decode(e->raw.ptr, e->raw.len, &again) == 0,
               "entry does not decode alone");
    same_entry(e, &again);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    FUZZ_CHECK(maos_enc_entry(&pk, e->table, e->key, e->revision, e->created_revision,
                              e->created, e->updated, e->bound, e->data) == 0,
               "maos_enc_entry");
    FUZZ_CHECK(maos_entry_decode(sb.data, sb.size, &again) == 0,
               "re-encoded entry does not decode");
    same_entry(e, &again);
    msgpack_sbuffer_destroy(&sb);
}

static void walk_entries(maos_slice items, uint32_t n_items)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, items.ptr, items.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_items, "items list");
    for (uint32_t i = 0; i < n; i++) {
        maos_entry e;
        const uint8_t *before = r.p;
        if (maos_entry_next(&r, &e)) {
            FUZZ_CHECK(r.p == before, "cursor moved on error");
            return;
        }
        FUZZ_CHECK(e.raw.ptr == (const char *)before &&
                       (const uint8_t *)e.raw.ptr + e.raw.len == r.p,
                   "raw span");
        entry_again(&e);
    }
    FUZZ_CHECK(r.p == r.end, "entries do not fill the list");
}

/* Mixed txn results: each element read as every kind and as the kind its
 * fields tell, then encoded again. */
static void walk_txn_results(maos_slice results, uint32_t n_results)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, results.ptr, results.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_results, "results list");
    for (uint32_t i = 0; i < n; i++) {
        maos_txn_result res, again;
        const uint8_t *before = r.p;
        for (int kind = 1; kind < MAOS_ITEM__WIRE_END; kind++) {
            if (kind == MAOS_ITEM_CLAIM || kind == MAOS_ITEM_DEAD_RETRY ||
                kind == MAOS_ITEM_DEAD_PURGE)
                continue; /* not ops of a txn */
            maos_mpr c = r;
            int rc = maos_txn_result_next(&c, kind, &res);
            FUZZ_CHECK(rc == 0 || rc == MAOS_EPROTO, "txn_result_next(%d) %d", kind, rc);
            FUZZ_CHECK(rc ? c.p == r.p : res.kind == kind, "txn_result_next(%d)", kind);
        }
        if (maos_txn_result_next(&r, 0, &res)) {
            FUZZ_CHECK(r.p == before, "cursor moved on error");
            return;
        }
        FUZZ_CHECK(res.kind >= MAOS_ITEM_APPEND && res.kind <= MAOS_ITEM_CHECKPOINT,
                   "inferred kind %d", res.kind);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        FUZZ_CHECK(maos_enc_txn_result(&pk, &res) == 0, "maos_enc_txn_result");
        maos_mpr c;
        maos_mpr_init(&c, sb.data, sb.size);
        FUZZ_CHECK(maos_txn_result_next(&c, res.kind, &again) == 0 && c.p == c.end,
                   "re-encoded txn result");
        FUZZ_CHECK(again.kind == res.kind && again.revision == res.revision &&
                       again.created_revision == res.created_revision,
                   "txn result fields");
        if (res.kind == MAOS_ITEM_APPEND)
            same_result(&res.append, &again.append);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* issue 8: a task list (claim, dead_list) or queue figures (queue_stats):
 * each element decodes whole or not at all, and a task encodes again to
 * the same fields. */
static void task_again(const maos_task *t)
{
    maos_mpr h;
    uint32_t n;
    maos_mpr_init(&h, t->history.ptr, t->history.len);
    FUZZ_CHECK(maos_mpr_array(&h, &n) == 0 && n == t->n_history, "history list");
    char *be = malloc(8 * (size_t)n + 1);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        if (maos_mpr_uint(&h, &v)) {
            free(be);
            return; /* a history of non-integers: the decoder does not look inside */
        }
        for (int b = 7; b >= 0; b--, v >>= 8)
            be[8 * i + (uint32_t)b] = (char)(v & 0xff);
    }
    maos_task w = *t;
    w.history_be = be;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    FUZZ_CHECK(maos_enc_task(&pk, &w) == 0, "maos_enc_task");
    maos_task again;
    FUZZ_CHECK(maos_task_decode(sb.data, sb.size, &again) == 0, "re-encoded task");
    FUZZ_CHECK(!memcmp(again.id, t->id, 16) && again.attempt == t->attempt &&
                   again.token == t->token && again.n_history == t->n_history &&
                   again.priority == t->priority && again.lease_until == t->lease_until,
               "task fields");
    msgpack_sbuffer_destroy(&sb);
    free(be);
}

static void walk_tasks(maos_slice items, uint32_t n_items)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, items.ptr, items.len);
    FUZZ_CHECK(maos_mpr_array(&r, &n) == 0 && n == n_items, "items list");
    for (uint32_t i = 0; i < n; i++) {
        maos_task t;
        const uint8_t *before = r.p;
        if (maos_task_next(&r, &t)) {
            FUZZ_CHECK(r.p == before, "cursor moved on error");
            break;
        }
        task_again(&t);
    }
    maos_mpr_init(&r, items.ptr, items.len);
    maos_mpr_array(&r, &n);
    for (uint32_t i = 0; i < n; i++) {
        maos_queue_info q;
        const uint8_t *before = r.p;
        if (maos_queue_info_next(&r, &q)) {
            FUZZ_CHECK(r.p == before, "cursor moved on error");
            break;
        }
    }
}

static void check_push(const maos_push *p)
{
    FUZZ_CHECK(p->kind > MAOS_PUSH_NONE && p->kind < MAOS_PUSH__COUNT, "push kind %d",
               (int)p->kind);
    if (p->kind == MAOS_PUSH_ENTRIES) {
        if (p->items.len)
            walk_entries(p->items, p->n_items);
        /* an entries push made from this one's fields decodes to them */
        msgpack_sbuffer sb;
        maos_list_mark mark;
        maos_push q;
        msgpack_sbuffer_init(&sb);
        FUZZ_CHECK(maos_enc_push_entries_begin(&sb, p->sub, &mark) == 0, "entries begin");
        FUZZ_CHECK(maos_enc_push_entries_end(&sb, &mark, 0, p->revision, p->more) == 0,
                   "entries end");
        FUZZ_CHECK(maos_push_decode(sb.data, sb.size, &q) == 1 &&
                       q.kind == MAOS_PUSH_ENTRIES && q.sub == p->sub &&
                       q.revision == p->revision && !q.more == !p->more && q.n_items == 0,
                   "re-encoded entries push");
        msgpack_sbuffer_destroy(&sb);
    } else if (p->items.len) {
        walk_records(p->items, p->n_items);
    }
}

/* Whatever the op, the check says yes or names what is missing. */
static void check_every_op(const maos_reply *rep)
{
    int c_ping = maos_reply_check(rep, MAOS_OP_PING, NULL, 0);
    for (int op = 1; op < MAOS_OP__COUNT; op++) {
        char why[200] = "";
        int c = maos_reply_check(rep, (maos_op)op, why, sizeof why);
        FUZZ_CHECK(c == 0 || c == MAOS_EPROTO, "reply_check(%s) returned %d",
                   maos_op_name((maos_op)op), c);
        if (c)
            FUZZ_CHECK(strstr(why, " without ") || strstr(why, " next "),
                       "reply_check(%s) reason \"%s\"", maos_op_name((maos_op)op), why);
        if (!rep->ok)
            FUZZ_CHECK(c == c_ping, "an error reply's check depends on the op");
    }
}

/* maos_reply_decode_sink's records: handed in order, each one whole
 * record inside the frame. */
typedef struct sink_st {
    uint32_t seen, n;
    const uint8_t *lo, *hi;
} sink_st;

static int sink(void *arg, uint32_t i, uint32_t n, const maos_record *rec)
{
    sink_st *st = arg;
    FUZZ_CHECK(i == st->seen || i == 0, "record %u handed after %u", i, st->seen);
    FUZZ_CHECK(i < n, "record %u of %u", i, n);
    FUZZ_CHECK((const uint8_t *)rec->raw.ptr >= st->lo &&
                   (const uint8_t *)rec->raw.ptr + rec->raw.len <= st->hi,
               "record outside the frame");
    maos_record again;
    FUZZ_CHECK(maos_record_decode(rec->raw.ptr, rec->raw.len, &again) == 0,
               "a handed record does not decode alone");
    same_record(rec, &again);
    st->seen = i + 1;
    st->n = n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The two walkers of proto/mpread.c must agree on what one value is. */
    maos_mpr r;
    maos_slice raw;
    maos_mpr_init(&r, data, size);
    int check = maos_mp_check(data, size, NULL);
    int skip = maos_mpr_skip(&r, &raw);
    if (check == 0)
        FUZZ_CHECK(skip == 0 && raw.len == size, "mp_check ok, skip %d", skip);
    if (skip == 0 && raw.len == size)
        FUZZ_CHECK(check == 0 || check == MAOS_ELIMIT, "skip ok, mp_check %d", check);

    maos_push p, p2;
    int prc = maos_push_decode(data, size, &p);
    FUZZ_CHECK(prc == 0 || prc == 1 || prc == MAOS_EPROTO, "push_decode returned %d", prc);
    /* with a sink: the same push where it succeeds, every record handed */
    sink_st pst = {0, 0, data, data + size};
    int prc2 = maos_push_decode_sink(data, size, &p2, sink, &pst);
    FUZZ_CHECK(prc2 == 0 || prc2 == 1 || prc2 == MAOS_EPROTO, "push_decode_sink returned %d",
               prc2);
    FUZZ_CHECK(prc2 != 0 || prc == 0, "the sink decode took a push for a reply");
    if (prc2 == 1) {
        FUZZ_CHECK(prc == 1 && p2.kind == p.kind && p2.sub == p.sub && p2.next == p.next &&
                       p2.n_items == p.n_items && fuzz_slice_eq(p2.items, p.items) &&
                       fuzz_slice_eq(p2.channel, p.channel) &&
                       fuzz_slice_eq(p2.payload, p.payload),
                   "the sink push decode differs");
        FUZZ_CHECK(pst.seen == pst.n, "%u of %u push records handed", pst.seen, pst.n);
    }
    if (prc == 1) {
        check_push(&p);
        return 0;
    }

    maos_reply rep, rep2;
    int rc = maos_reply_decode(data, size, &rep);
    /* the same decode with every events record handed out as it is read:
     * it succeeds only where the plain one does, with the same reply */
    sink_st st = {0, 0, data, data + size};
    int rc2 = maos_reply_decode_sink(data, size, &rep2, sink, &st);
    FUZZ_CHECK(rc2 == 0 || rc2 == MAOS_EPROTO, "reply_decode_sink returned %d", rc2);
    if (rc2 == 0) {
        FUZZ_CHECK(rc == 0, "the sink decode took a reply the plain one refuses");
        FUZZ_CHECK(rep2.rid == rep.rid && rep2.ok == rep.ok && rep2.code == rep.code &&
                       rep2.n_results == rep.n_results && fuzz_slice_eq(rep2.results, rep.results) &&
                       rep2.n_items == rep.n_items && fuzz_slice_eq(rep2.items, rep.items),
                   "the sink decode differs");
        FUZZ_CHECK(st.seen == st.n, "%u of %u records handed", st.seen, st.n);
    }
    if (rc) {
        FUZZ_CHECK(rc == MAOS_EPROTO, "reply_decode returned %d", rc);
        return 0;
    }
    FUZZ_CHECK(skip == 0 && raw.len == size, "decoded a reply that is not one value");
    if (!rep.ok)
        FUZZ_CHECK(fuzz_known_err(rep.code), "error reply with code %d", rep.code);
    /* a count reply has a count and no ids; with ids, they hold count ids */
    FUZZ_CHECK(!rep.result.ids.ptr || rep.result.ids.len == (uint64_t)rep.result.count * 16,
               "ids/count");
    check_every_op(&rep);
    if (rep.results.len) {
        walk_results(rep.results, rep.n_results);
        walk_txn_results(rep.results, rep.n_results);
        walk_batch_results(rep.results, rep.n_results);
    }
    if (rep.items.len) {
        walk_records(rep.items, rep.n_items);
        walk_infos(rep.items, rep.n_items);
        walk_entries(rep.items, rep.n_items);
        walk_tasks(rep.items, rep.n_items);
    }
    if (rep.task.len) {
        maos_task t;
        if (maos_task_decode(rep.task.ptr, rep.task.len, &t) == 0)
            task_again(&t);
        else if (rep.ok)
            FUZZ_CHECK(maos_reply_check(&rep, MAOS_OP_TASK, NULL, 0) == MAOS_EPROTO,
                       "a reply with a broken task passes the task check");
    }
    if (rep.entry.len) {
        maos_entry e;
        if (maos_entry_decode(rep.entry.ptr, rep.entry.len, &e) == 0) {
            entry_again(&e);
            FUZZ_CHECK(!rep.ok || maos_reply_check(&rep, MAOS_OP_GET, NULL, 0) == 0,
                       "a reply with a whole entry fails the get check");
        } else if (rep.ok) {
            /* (an error reply's check does not look at entry) */
            FUZZ_CHECK(maos_reply_check(&rep, MAOS_OP_GET, NULL, 0) == MAOS_EPROTO,
                       "a reply with a broken entry passes the get check");
        }
    }
    return 0;
}
