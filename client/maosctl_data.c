/*
 * client/maosctl_data.c -- maosctl export / import (maosctl_data.h; the
 * format is docs/EXPORT.md).
 *
 * Export pages through read_all up to a fixed last position (the head
 * when it starts, so writers that go on do not make it endless) and
 * writes each event as it comes: one header line, one line per event in
 * exactly the `read --json` shape (maos_event_to_json), then the current
 * entries of the user tables (kv.*) and sessions whose events it met, as
 * `"kind":"entry"` records (maos_entry_to_json plus kind), then one
 * trailer line with the counts and the hash of the last event's stored
 * record, so a cut file is told from a whole one.  The table names met
 * are the only state that grows (a few names).
 *
 * Import reads the file twice: once to check it whole (header, every line
 * an event object with the fields import needs, the trailer last and its
 * count right), so a truncated or damaged file writes nothing; then to
 * append, in transactions of consecutive events (IMPORT_TXN_EVENTS at
 * most, and cut before a stream would come back after another one, as a
 * txn names each stream once: cut at the same lines on every run), each
 * event with its id: a
 * transaction already stored is answered as a duplicate and skipped, so a
 * re-run after a partial import completes it and duplicates nothing.
 * Events of streams written by table and queue operations cannot be
 * appended (maos_stream_is_table): they are skipped, and the tables come
 * back from the entry records, put with expect absent (an entry already
 * there is kept: idempotent too).
 * stdin is spooled to a temporary file for the two passes.  Memory holds
 * one line and one transaction.
 */
#include "maosctl_data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "maos/json.h"
#include "maos/proto.h" /* maos_slice, maos_stream_is_table, maos_utf8_check */

#define EXPORT_PAGE 10000
#define EXPORT_FORMAT "maos-export"
#define EXPORT_VERSION 1
#define IMPORT_TXN_EVENTS 100 /* the protocol's cap on appends per txn */
#define IMPORT_TXN_BYTES (4u << 20)
#define PROGRESS_EVERY_MS 250

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int refused(maos_ctx *c, const char *what)
{
    fprintf(stderr, "maosctl: %s: %s: %s\n", what, maos_err_name(c->err), c->errstr);
    return 1;
}

/* One compact JSON line; consumes v.  0, or -1 (out of memory, write). */
static int put_line(FILE *out, json_t *v)
{
    char *s = NULL;
    int rc = v && maos_json_dump(v, &s) == 0 && fputs(s, out) >= 0 && fputc('\n', out) >= 0
                 ? 0
                 : -1;
    free(s);
    json_decref(v);
    return rc;
}

static json_t *now_json(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char t[40];
    maos_time_format((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, t, sizeof t);
    return json_string(t);
}

/* ---- export --------------------------------------------------------------------- */

static json_t *filter_json(const maos_read_filter *f)
{
    json_t *o = json_object();
    if (!f || !o)
        return o;
    if (f->stream)
        json_object_set_new(o, "stream", json_string(f->stream));
    if (f->prefix)
        json_object_set_new(o, "prefix", json_string(f->prefix));
    if (f->category)
        json_object_set_new(o, "category", json_string(f->category));
    if (f->n_types) {
        json_t *t = json_array();
        for (size_t i = 0; i < f->n_types; i++)
            json_array_append_new(t, json_string(f->types[i]));
        json_object_set_new(o, "types", t);
    }
    if (f->has_since)
        json_object_set_new(o, "since", json_integer(f->since));
    if (f->has_until)
        json_object_set_new(o, "until", json_integer(f->until));
    return o;
}

/* COPY text format: backslash, tab, newline and CR escaped. */
static int put_copy_field(FILE *out, const char *s, size_t n, int last)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '\\' ? "\\\\" : s[i] == '\t' ? "\\t" : s[i] == '\n' ? "\\n"
                        : s[i] == '\r' ? "\\r" : NULL;
        if (e ? fputs(e, out) < 0 : fputc(s[i], out) < 0)
            return -1;
    }
    return fputc(last ? '\n' : '\t', out) < 0 ? -1 : 0;
}

static int put_copy_row(FILE *out, const maos_event *e)
{
    char num[32], id[37], t[40], *data = NULL, *meta = NULL;
    int rc = maos_msgpack_to_json_text(e->data, e->data_len, &data) ||
             maos_msgpack_to_json_text(e->meta_len ? e->meta : "\x80",
                                       e->meta_len ? e->meta_len : 1, &meta);
    maos_uuid_format(e->id, id);
    maos_time_format(e->time, t, sizeof t);
    if (!rc) {
        snprintf(num, sizeof num, "%" PRIu64, e->position);
        rc = put_copy_field(out, num, strlen(num), 0) ||
             put_copy_field(out, e->stream, e->stream_len, 0);
        snprintf(num, sizeof num, "%" PRIu64, e->version);
        rc = rc || put_copy_field(out, num, strlen(num), 0) ||
             put_copy_field(out, id, strlen(id), 0) ||
             put_copy_field(out, e->type, e->type_len, 0) ||
             put_copy_field(out, data, strlen(data), 0) ||
             put_copy_field(out, meta, strlen(meta), 0) ||
             put_copy_field(out, t, strlen(t), 1);
    }
    free(data);
    free(meta);
    return rc ? -1 : 0;
}

static void progress(uint64_t n, uint64_t pos, uint64_t from, uint64_t to, double t0, int end)
{
    double s = (mono_ms() - t0) / 1e3;
    double rate = s > 0 ? (double)n / s : 0;
    double prate = s > 0 ? (double)(pos - from + 1) / s : 0;
    double eta = prate > 0 && to > pos ? (double)(to - pos) / prate : 0;
    fprintf(stderr, "\rmaosctl: export: %" PRIu64 " events, %.0f events/s, position %" PRIu64
            " of %" PRIu64 ", ETA %.0f s   %s", n, rate, pos, to, eta, end ? "\n" : "");
}

/* Tasks go with an export of the whole log only (a filtered or bounded one
 * is a slice of history, not a store). */
static int full_export(const export_opts *o)
{
    const maos_read_filter *f = o->filter;
    return !o->to && (!o->from || o->from == 1) &&
           (!f || (!f->stream && !f->prefix && !f->category && !f->n_types && !f->has_since &&
                   !f->has_until));
}

/* ---- records and their JSON lines ----------------------------------------------- */

/* The stored record of an event line (which carries no prev: given).
 * 0, or -1 when a field is missing or does not convert. */
static int record_from_json(json_t *o, const uint8_t prev[32], msgpack_sbuffer *sb)
{
    json_t *pos = json_object_get(o, "position"), *ver = json_object_get(o, "version");
    const char *time = json_string_value(json_object_get(o, "time"));
    const char *stream = json_string_value(json_object_get(o, "stream"));
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *id = json_string_value(json_object_get(o, "id"));
    json_t *meta = json_object_get(o, "meta");
    uint8_t raw[16];
    int64_t us;
    char *data_mp = NULL, *meta_mp = NULL;
    size_t data_len = 0, meta_len = 0;
    if (!json_is_integer(pos) || !json_is_integer(ver) || !time || !stream || !type ||
        !id || maos_uuid_parse(id, strlen(id), raw) || maos_time_parse(time, &us) ||
        maos_json_to_msgpack(json_object_get(o, "data"), &data_mp, &data_len, NULL, 0) ||
        (meta && maos_json_to_msgpack(meta, &meta_mp, &meta_len, NULL, 0))) {
        free(data_mp);
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = maos_enc_record(&pk, (uint64_t)json_integer_value(pos), us,
                             (uint64_t)json_integer_value(ver),
                             (maos_slice){stream, (uint32_t)strlen(stream)},
                             (maos_slice){type, (uint32_t)strlen(type)}, raw, prev,
                             (maos_slice){data_mp, (uint32_t)data_len},
                             (maos_slice){meta_mp, (uint32_t)meta_len});
    free(data_mp);
    free(meta_mp);
    return rc ? -1 : 0;
}

/* base64 of n bytes as a new JSON string (NULL: out of memory). */
static json_t *b64_json(const void *p, size_t n)
{
    size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(cap);
    if (!b)
        return NULL;
    sodium_bin2base64(b, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    json_t *s = json_string(b);
    free(b);
    return s;
}

/* The bytes of a base64 JSON string (malloc'd), or NULL. */
static unsigned char *b64_bytes(json_t *s, size_t *n)
{
    const char *t = json_string_value(s);
    if (!t)
        return NULL;
    size_t len = strlen(t);
    unsigned char *b = malloc(len ? len : 1);
    if (b && sodium_base642bin(b, len, t, len, NULL, n, NULL,
                               sodium_base64_VARIANT_ORIGINAL) == 0)
        return b;
    free(b);
    return NULL;
}

/* An event's line: its JSON, and when that does not give back the stored
 * record byte for byte (bin, ext, float32, integers in a longer form than
 * needed: what JSON cannot tell), the record itself in "record", so that
 * an import keeps it exactly and verify --export can hash it. */
static json_t *event_line(const maos_event *e)
{
    json_t *j = NULL;
    if (maos_event_to_json(e, &j))
        return NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (record_from_json(j, e->prev, &sb) || sb.size != e->raw_len ||
        memcmp(sb.data, e->raw, sb.size))
        json_object_set_new(j, "record", b64_json(e->raw, e->raw_len));
    msgpack_sbuffer_destroy(&sb);
    return j;
}

/* A $chain checkpoint at e (after the chain up to e was checked, so e->prev
 * is the hash of position - 1): NULL when it is signed by key for the
 * position before it, else why not. */
const char *maosctl_checkpoint_bad(const maos_event *e, const uint8_t key[32])
{
    maos_mpr r;
    uint32_t n;
    uint64_t pos = 0;
    maos_slice hash = {0}, sig = {0};
    maos_mpr_init(&r, e->data, e->data_len);
    if (maos_mpr_map(&r, &n))
        return "a checkpoint whose data is not a map";
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int bad = maos_mpr_str(&r, &k);
        if (!bad && k.len == 8 && !memcmp(k.ptr, "position", 8))
            bad = maos_mpr_uint(&r, &pos);
        else if (!bad && k.len == 4 && !memcmp(k.ptr, "hash", 4))
            bad = maos_mpr_bin(&r, &hash);
        else if (!bad && k.len == 9 && !memcmp(k.ptr, "signature", 9))
            bad = maos_mpr_bin(&r, &sig);
        else if (!bad)
            bad = maos_mpr_skip(&r, NULL);
        if (bad)
            return "a checkpoint whose data does not decode";
    }
    if (hash.len != 32 || sig.len != 64)
        return "a checkpoint without a 32-byte hash and a 64-byte signature";
    if (pos + 1 != e->position || memcmp(hash.ptr, e->prev, 32))
        return "a checkpoint of another position or hash than the one before it";
    uint8_t msg[MAOS_CHAIN_MSG_LEN];
    maos_chain_message(pos, (const uint8_t *)hash.ptr, msg);
    if (crypto_sign_verify_detached((const uint8_t *)sig.ptr, msg, sizeof msg, key))
        return "a checkpoint whose signature does not verify with the given public key";
    return NULL;
}

/* The names of the tables whose entries an export carries. */
typedef struct tables_seen {
    char **name;
    size_t n, cap;
} tables_seen;

static void tables_note(tables_seen *ts, const maos_event *e)
{
    maos_slice st = {e->stream, (uint32_t)e->stream_len};
    if (!maos_stream_is_table(st) || e->type_len != 3 || memcmp(e->type, "put", 3))
        return;
    json_t *d = NULL;
    if (maos_msgpack_to_json(e->data, e->data_len, &d))
        return;
    const char *t = json_string_value(json_object_get(d, "table"));
    int wanted = t && (!strncmp(t, "kv.", 3) || !strcmp(t, "sessions"));
    for (size_t i = 0; wanted && i < ts->n; i++)
        if (!strcmp(ts->name[i], t))
            wanted = 0;
    if (wanted && ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 8;
        char **nn = realloc(ts->name, cap * sizeof *nn);
        if (nn) {
            ts->name = nn;
            ts->cap = cap;
        }
    }
    if (wanted && ts->n < ts->cap && (ts->name[ts->n] = strdup(t)))
        ts->n++;
    json_decref(d);
}

/* Every entry of the tables met, as entry records.  0, -1 (write or
 * memory), or 1 (refused: said). */
static int put_entries(maos_ctx *c, const tables_seen *ts, FILE *out, uint64_t *n)
{
    for (size_t i = 0; i < ts->n; i++) {
        char *after = NULL;
        for (;;) {
            maos_table_page *p = NULL;
            if (maos_list(c, ts->name[i], NULL, after, NULL, 0, MAOS_READ_LIMIT_MAX, &p)) {
                free(after);
                return refused(c, "export");
            }
            int rc = 0;
            for (size_t k = 0; k < p->n && !rc; k++) {
                json_t *j = NULL;
                rc = maos_entry_to_json(&p->entries[k], &j) ||
                     json_object_set_new(j, "kind", json_string("entry")) || put_line(out, j);
                (*n)++;
            }
            free(after);
            after = p->has_next && p->next ? strdup(p->next) : NULL;
            maos_table_page_free(p);
            if (rc)
                return -1;
            if (!after)
                break;
        }
    }
    return 0;
}

/* The unfinished and dead tasks of every queue, as task records (done
 * ones are history: their events are in the export).  0, -1, or 1. */
static int put_tasks(maos_ctx *c, FILE *out, uint64_t *n)
{
    uint8_t after[16];
    int have_after = 0;
    for (;;) {
        maos_task_page *p = NULL;
        if (maos_task_list(c, NULL, have_after ? after : NULL, MAOS_READ_LIMIT_MAX, &p))
            return refused(c, "export");
        int rc = 0;
        for (size_t k = 0; k < p->n && !rc; k++) {
            const maos_task_info *t = &p->tasks[k];
            if (t->state.len == 4 && !memcmp(t->state.ptr, "done", 4))
                continue;
            json_t *j = NULL;
            rc = maos_task_to_json(t, &j) || json_object_set_new(j, "kind", json_string("task")) ||
                 put_line(out, j);
            (*n)++;
        }
        int more = p->has_next;
        if (more)
            memcpy(after, p->next, 16);
        have_after = 1;
        maos_task_page_free(p);
        if (rc)
            return -1;
        if (!more)
            return 0;
    }
}

int maosctl_export(maos_ctx *c, const export_opts *o, FILE *out)
{
    tables_seen ts = {0};
    int ret = 1;
    maos_stats_info st;
    if (maos_stats_get(c, &st))
        return refused(c, "export");
    uint64_t from = o->from ? o->from : 1, to = o->to ? o->to : st.head_position;
    int jsonl = o->format == EXPORT_JSONL;
    /* a whole export carries the stubs of removed events too (as
     * "removed" lines), so that verify --export checks its whole chain */
    int whole = jsonl && full_export(o);
    if (jsonl) {
        json_t *h = json_pack("{s:s,s:s,s:i,s:s,s:s,s:I,s:I,s:I,s:o,s:o}", "kind", "header",
                              "format", EXPORT_FORMAT, "version", EXPORT_VERSION,
                              "server", st.server, "data_dir", st.data_dir, "head",
                              (json_int_t)st.head_position, "from", (json_int_t)from,
                              "to", (json_int_t)to, "filter", filter_json(o->filter),
                              "time", now_json());
        if (put_line(out, h))
            goto write_failed;
    }
    uint64_t n = 0, last = 0, entries = 0, tasks = 0, removed = 0;
    uint8_t hash[32] = {0};
    double t0 = mono_ms(), shown = t0;
    while (from <= to && from != 0) {
        maos_page *pg = NULL;
        if (whole ? maos_read_log(c, from, EXPORT_PAGE, &pg)
                  : maos_read_all(c, o->filter, from, 0, EXPORT_PAGE, &pg)) {
            refused(c, "export");
            goto out;
        }
        int rc = 0;
        for (size_t i = 0; i < pg->n && !rc; i++) {
            const maos_event *e = &pg->events[i];
            if (e->position > to)
                break;
            if (maos_event_removed(e, hash)) { /* only in a whole export */
                json_t *j = json_pack("{s:s,s:I,s:o}", "kind", "removed", "position",
                                      (json_int_t)e->position, "record",
                                      b64_json(e->raw, e->raw_len));
                rc = put_line(out, j);
                last = e->position;
                removed++;
                continue;
            }
            if (jsonl)
                rc = put_line(out, event_line(e));
            else
                rc = put_copy_row(out, e);
            crypto_generichash(hash, sizeof hash, e->raw, e->raw_len, NULL, 0);
            if (jsonl)
                tables_note(&ts, e);
            last = e->position;
            n++;
        }
        int more = pg->has_next && pg->next <= to;
        from = pg->next;
        maos_page_free(pg);
        if (rc)
            goto write_failed;
        if (o->progress && mono_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = mono_ms();
            progress(n, last, o->from ? o->from : 1, to, t0, 0);
        }
        if (!more)
            break;
    }
    if (jsonl) {
        int rc = put_entries(c, &ts, out, &entries);
        if (!rc && full_export(o))
            rc = put_tasks(c, out, &tasks);
        if (rc > 0)
            goto out;
        if (rc)
            goto write_failed;
        char hex[65], sighex[129];
        uint8_t shash[32], sig[64];
        uint64_t shead = 0;
        int have_sig = 0;
        sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
        /* the daemon signs the last record's hash (it hashes it itself) */
        if (last) {
            if (maos_chain_sign(c, last, shash, sig, &shead) == 0) {
                if (memcmp(shash, hash, 32)) {
                    fprintf(stderr, "maosctl: export: the daemon's hash of position %" PRIu64
                            " is not the one exported\n", last);
                    goto out;
                }
                sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
                have_sig = 1;
            } else if (c->err != MAOS_ENOT_FOUND && c->err != MAOS_EUNKNOWN_OP &&
                       c->err != MAOS_EFORBIDDEN) { /* no key, an older maosd, no admin:
                                                      * an export without a signature */
                refused(c, "export");
                goto out;
            }
        }
        json_t *t = json_pack("{s:s,s:I,s:I,s:s*,s:I,s:I,s:I,s:s*,s:I}", "kind", "trailer",
                              "count", (json_int_t)n, "last_position", (json_int_t)last,
                              "last_hash", last ? hex : NULL, "entries", (json_int_t)entries,
                              "tasks", (json_int_t)tasks, "removed", (json_int_t)removed,
                              "signature", have_sig ? sighex : NULL, "signed_head",
                              (json_int_t)shead);
        if (put_line(out, t))
            goto write_failed;
    }
    if (fflush(out) || ferror(out))
        goto write_failed;
    if (o->progress)
        progress(n, last ? last : to, o->from ? o->from : 1, to, t0, 1);
    ret = 0;
    goto out;
write_failed:
    fprintf(stderr, "maosctl: export: cannot write the output: %s\n",
            errno ? strerror(errno) : "out of memory");
out:
    for (size_t i = 0; i < ts.n; i++)
        free(ts.name[i]);
    free(ts.name);
    return ret;
}

/* ---- import --------------------------------------------------------------------- */

typedef struct line_reader {
    FILE *f;
    char *buf;
    size_t cap;
    unsigned long no;
} line_reader;

/* The next line without its newline: its length, or -1 at the end. */
static ssize_t next_line(line_reader *r)
{
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0)
        return -1;
    r->no++;
    if (n && r->buf[n - 1] == '\n')
        r->buf[--n] = 0;
    return n;
}

static const char *kind_of(json_t *o)
{
    json_t *k = json_object_get(o, "kind");
    return json_is_string(k) ? json_string_value(k) : NULL;
}

/* Pass 1 on an event line: what pass 2 needs to append it, so that a bad
 * line refuses the file before anything is written.  NULL, or why not. */
static const char *check_event(json_t *o)
{
    const char *stream = json_string_value(json_object_get(o, "stream"));
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *id = json_string_value(json_object_get(o, "id"));
    json_t *meta = json_object_get(o, "meta");
    uint8_t raw[16];
    if (!stream || !type || !id || !json_object_get(o, "data") || (meta && !json_is_object(meta)))
        return "not an event (stream, type, id and data are needed)";
    if (maos_uuid_parse(id, strlen(id), raw))
        return "an event id that is not a UUID";
    if (maos_utf8_check((maos_slice){stream, (uint32_t)strlen(stream)}, 1, MAOS_STREAM_MAX) ||
        maos_utf8_check((maos_slice){type, (uint32_t)strlen(type)}, 1, MAOS_NAME_MAX))
        return "a stream or type name that is not 1..1024 (stream) or 1..255 (type) bytes "
               "of UTF-8 without NUL";
    char *mp = NULL;
    size_t len = 0;
    int bad = maos_json_to_msgpack(json_object_get(o, "data"), &mp, &len, NULL, 0);
    free(mp);
    if (!bad && meta) {
        bad = maos_json_to_msgpack(meta, &mp, &len, NULL, 0);
        free(mp);
    }
    if (bad)
        return "data or meta that cannot be stored (too deep?)";
    json_t *rj = json_object_get(o, "record");
    if (rj) { /* the stored record, when the JSON could not carry it exactly */
        maos_record r;
        unsigned char *rec = b64_bytes(rj, &len);
        bad = !rec || maos_record_decode(rec, len, &r) || r.id.len != 16 ||
              memcmp(r.id.ptr, raw, 16) || r.stream.len != strlen(stream) ||
              memcmp(r.stream.ptr, stream, r.stream.len);
        free(rec);
        if (bad)
            return "a record field that is not this event's stored record";
    }
    return NULL;
}

/* A "removed" line: the stub of a removed event (whole exports). */
static const char *check_removed(json_t *o)
{
    size_t len;
    maos_slice h;
    maos_record r;
    unsigned char *rec = b64_bytes(json_object_get(o, "record"), &len);
    int bad = !rec || maos_record_decode(rec, len, &r) || !maos_record_stub(rec, len, &h) ||
              (json_int_t)r.position != json_integer_value(json_object_get(o, "position"));
    free(rec);
    return bad ? "a removed line without the stub of its position" : NULL;
}

/* Pass 1: the whole file checked.  0 and *events, or 1 (said). */
static int check_file(line_reader *r, const char *name, uint64_t *events)
{
    json_error_t je;
    uint64_t n = 0, ne = 0, nt = 0, nr = 0;
    int trailer = 0;
    ssize_t len;
    while ((len = next_line(r)) >= 0) {
        json_t *o = json_loadb(r->buf, (size_t)len, 0, &je);
        const char *why = NULL;
        const char *kind = o ? kind_of(o) : NULL;
        if (!json_is_object(o))
            why = "not a JSON object (the file is cut here, or damaged)";
        else if (r->no == 1 &&
                 (!kind || strcmp(kind, "header") ||
                  !json_is_string(json_object_get(o, "format")) ||
                  strcmp(json_string_value(json_object_get(o, "format")), EXPORT_FORMAT)))
            why = "not the header of a maos export";
        else if (r->no == 1 && json_integer_value(json_object_get(o, "version")) !=
                                   EXPORT_VERSION)
            why = "an export format version this maosctl does not read";
        else if (trailer)
            why = "a line after the trailer";
        else if (r->no > 1 && kind && !strcmp(kind, "trailer")) {
            trailer = 1;
            if (json_integer_value(json_object_get(o, "count")) != (json_int_t)n ||
                json_integer_value(json_object_get(o, "entries")) != (json_int_t)ne ||
                json_integer_value(json_object_get(o, "tasks")) != (json_int_t)nt ||
                json_integer_value(json_object_get(o, "removed")) != (json_int_t)nr)
                why = "the trailer's counts are not the numbers of records before it";
        } else if (r->no > 1 && kind && !strcmp(kind, "task")) {
            const char *id = json_string_value(json_object_get(o, "id"));
            uint8_t raw[16];
            if (!json_is_string(json_object_get(o, "queue")) || !id ||
                !json_is_string(json_object_get(o, "state")) || !json_object_get(o, "data"))
                why = "not a task (id, queue, state and data are needed)";
            else if (maos_uuid_parse(id, strlen(id), raw))
                why = "a task id that is not a UUID";
            nt++;
        } else if (r->no > 1 && kind && !strcmp(kind, "removed")) {
            why = check_removed(o);
            nr++;
        } else if (r->no > 1 && kind && !strcmp(kind, "entry")) {
            if (!json_is_string(json_object_get(o, "table")) ||
                !json_is_string(json_object_get(o, "key")) ||
                !json_is_object(json_object_get(o, "data")))
                why = "not an entry (table, key and data are needed)";
            ne++;
        } else if (r->no > 1 && kind) {
            why = "a record kind this maosctl does not import";
        } else if (r->no > 1) {
            why = check_event(o);
            n++;
        }
        json_decref(o);
        if (why) {
            fprintf(stderr, "maosctl: import: %s, line %lu: %s; nothing imported\n", name,
                    r->no, why);
            return 1;
        }
    }
    if (ferror(r->f)) {
        fprintf(stderr, "maosctl: import: cannot read %s: %s\n", name, strerror(errno));
        return 1;
    }
    if (!trailer) {
        fprintf(stderr, "maosctl: import: %s is truncated: no trailer after line %lu; "
                "nothing imported\n", name, r->no);
        return 1;
    }
    *events = n;
    return 0;
}

typedef struct pending {
    char *stream;
    char *type;
    uint8_t id[16];
    char *data, *meta;
    size_t data_len, meta_len;
} pending;

typedef struct txn {
    pending ev[IMPORT_TXN_EVENTS];
    size_t n, bytes;
    unsigned long first_line, last_line;
} txn;

static void txn_clear(txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->ev[i].stream);
        free(t->ev[i].type);
        free(t->ev[i].data);
        free(t->ev[i].meta);
    }
    t->n = t->bytes = 0;
}

/* Append t as one transaction.  0, or 1 (said). */
static int txn_flush(maos_ctx *c, txn *t, uint64_t *written, uint64_t *skipped)
{
    maos_event_spec specs[IMPORT_TXN_EVENTS];
    maos_txn_append apps[IMPORT_TXN_EVENTS];
    maos_append_info infos[IMPORT_TXN_EVENTS];
    size_t na = 0;
    if (!t->n)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        pending *p = &t->ev[i];
        specs[i] = (maos_event_spec){p->id, p->type, p->data, p->data_len, p->meta,
                                     p->meta_len};
        if (na && !strcmp(apps[na - 1].stream, p->stream)) {
            apps[na - 1].n_events++;
        } else {
            apps[na++] = (maos_txn_append){p->stream, MAOS_EXPECT_ANY, &specs[i], 1, NULL};
        }
    }
    memset(infos, 0, sizeof infos);
    int rc = maos_txn(c, apps, na, infos);
    if (rc == MAOS_ECONFLICT) {
        /* some of its appends are there and some not (an earlier import
         * of another export that holds part of this one): append by
         * append, each stored or a duplicate; the first that is neither
         * ends the import (an append that is there only in part was
         * grouped otherwise: nothing here can complete it) */
        size_t i = 0;
        for (rc = 0; i < na && !rc; i++) {
            maos_append_info one;
            memset(&one, 0, sizeof one);
            rc = maos_append(c, apps[i].stream, MAOS_EXPECT_ANY, apps[i].events,
                             apps[i].n_events, &one);
            if (!rc)
                *(one.duplicate ? skipped : written) += apps[i].n_events;
        }
        if (rc == MAOS_ECONFLICT) {
            fprintf(stderr, "maosctl: import: lines %lu-%lu: stream %s: %s; its events are "
                    "stored here in part, by an import cut elsewhere: import an export "
                    "that starts after the last event stored here (export --from)\n",
                    t->first_line, t->last_line, apps[i - 1].stream, c->errstr);
            return 1;
        }
        if (!rc) {
            txn_clear(t);
            return 0;
        }
    }
    if (rc) {
        fprintf(stderr, "maosctl: import: lines %lu-%lu: %s: %s (a re-run of the same file "
                "resumes here)\n", t->first_line, t->last_line, maos_err_name(c->err),
                c->errstr);
        return 1;
    }
    for (size_t i = 0; i < na; i++)
        *(infos[i].duplicate ? skipped : written) += apps[i].n_events;
    txn_clear(t);
    return 0;
}

/* 1 when stream is in t already, but not as its last append. */
static int repeats(const txn *t, const char *stream)
{
    if (!t->n || !strcmp(t->ev[t->n - 1].stream, stream))
        return 0;
    for (size_t i = 0; i + 1 < t->n; i++)
        if (!strcmp(t->ev[i].stream, stream))
            return 1;
    return 0;
}

/* One event line into t.  0, or 1 (said). */
static int take_event(json_t *o, unsigned long line, txn *t)
{
    pending *p = &t->ev[t->n];
    memset(p, 0, sizeof *p);
    const char *id = json_string_value(json_object_get(o, "id"));
    char why[200] = "";
    if (maos_uuid_parse(id, strlen(id), p->id)) {
        fprintf(stderr, "maosctl: import: line %lu: bad id '%s'\n", line, id);
        return 1;
    }
    /* where and when it was in the source, unless an earlier import kept
     * them already (docs/EXPORT.md) */
    json_t *meta = json_object_get(o, "meta");
    meta = meta ? json_deep_copy(meta) : json_object();
    json_t *pos = json_object_get(o, "position"), *time = json_object_get(o, "time");
    if (meta && pos && !json_object_get(meta, "source_position"))
        json_object_set(meta, "source_position", pos);
    if (meta && time && !json_object_get(meta, "source_time"))
        json_object_set(meta, "source_time", time);
    p->stream = strdup(json_string_value(json_object_get(o, "stream")));
    p->type = strdup(json_string_value(json_object_get(o, "type")));
    int rc = !meta || !p->stream || !p->type ||
             maos_json_to_msgpack(json_object_get(o, "data"), &p->data, &p->data_len, why,
                                  sizeof why) ||
             maos_json_to_msgpack(meta, &p->meta, &p->meta_len, why, sizeof why);
    json_t *rj = json_object_get(o, "record");
    if (!rc && rj) { /* data exactly as stored (bin, ext, ...): from the record */
        size_t len;
        maos_record r;
        unsigned char *rec = b64_bytes(rj, &len);
        rc = !rec || maos_record_decode(rec, len, &r);
        if (!rc) {
            free(p->data);
            p->data_len = r.data.len;
            p->data = malloc(r.data.len ? r.data.len : 1);
            rc = !p->data;
            if (!rc)
                memcpy(p->data, r.data.ptr, r.data.len);
        }
        free(rec);
    }
    json_decref(meta);
    t->n++; /* freed with the others, whole or not */
    if (rc) {
        fprintf(stderr, "maosctl: import: line %lu: %s\n", line, why[0] ? why : "out of memory");
        return 1;
    }
    if (t->n == 1)
        t->first_line = line;
    t->last_line = line;
    t->bytes += p->data_len + p->meta_len + strlen(p->stream) + strlen(p->type) + 64;
    return 0;
}

/* An entry record: put with expect absent; one already there is kept. */
static int put_entry(maos_ctx *c, json_t *o, unsigned long line, uint64_t *put,
                     uint64_t *kept)
{
    char why[200] = "", *doc = NULL;
    size_t len = 0;
    const char *table = json_string_value(json_object_get(o, "table"));
    const char *key = json_string_value(json_object_get(o, "key"));
    if (maos_json_to_msgpack(json_object_get(o, "data"), &doc, &len, why, sizeof why)) {
        fprintf(stderr, "maosctl: import: line %lu: %s\n", line, why);
        return 1;
    }
    int rc = maos_put(c, table, key, doc, len, MAOS_EXPECT_ABSENT, 0, NULL);
    free(doc);
    if (rc == MAOS_EWRONG_REVISION) {
        (*kept)++;
        return 0;
    }
    if (rc) {
        fprintf(stderr, "maosctl: import: line %lu: entry %s/%s: %s: %s (a re-run of the "
                "same file resumes here)\n", line, table, key, maos_err_name(c->err), c->errstr);
        return 1;
    }
    (*put)++;
    return 0;
}

/* A task record: an unfinished task is enqueued again (ready, or delayed
 * until its not_before), with its payload, meta (plus source_task),
 * priority, attempts allowed, ordering key, and a dedupe key -- its own, or
 * "maos-import:ID" -- so that a re-run finds it and writes nothing.  Dead
 * letters are counted, not imported (docs/EXPORT.md).  0, or 1 (said). */
static int put_task(maos_ctx *c, json_t *o, unsigned long line, uint64_t *count)
{
    const char *state = json_string_value(json_object_get(o, "state"));
    if (!strcmp(state, "dead")) {
        count[2]++;
        return 0;
    }
    if (!strcmp(state, "done"))
        return 0;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *queue = json_string_value(json_object_get(o, "queue"));
    const char *dk = json_string_value(json_object_get(o, "dedupe_key"));
    const char *ok = json_string_value(json_object_get(o, "ordering_key"));
    char dedupe[64], why[200] = "", *data = NULL, *meta = NULL;
    size_t dlen = 0, mlen = 0;
    if (!dk) {
        snprintf(dedupe, sizeof dedupe, "maos-import:%s", id);
        dk = dedupe;
    }
    json_t *m = json_object_get(o, "meta");
    m = json_is_object(m) ? json_deep_copy(m) : json_object();
    if (m && !json_object_get(m, "source_task"))
        json_object_set_new(m, "source_task", json_string(id));
    int rc = !m || maos_json_to_msgpack(json_object_get(o, "data"), &data, &dlen, why,
                                        sizeof why) ||
             maos_json_to_msgpack(m, &meta, &mlen, why, sizeof why);
    json_decref(m);
    if (rc) {
        free(data);
        free(meta);
        fprintf(stderr, "maosctl: import: line %lu: %s\n", line, why[0] ? why : "out of memory");
        return 1;
    }
    maos_task_opts to = {
        .priority = (int32_t)json_integer_value(json_object_get(o, "priority")),
        .max_attempts = (uint32_t)json_integer_value(json_object_get(o, "max_attempts")),
        .dedupe_key = dk,
        .ordering_key = ok,
        .meta = meta,
        .meta_len = mlen,
    };
    const char *nb = json_string_value(json_object_get(o, "not_before"));
    int64_t when = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (nb && !strcmp(state, "delayed") && maos_time_parse(nb, &when) == 0 &&
        when > (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000)
        to.not_before = when;
    int dup = 0;
    rc = maos_enqueue(c, queue, data, dlen, &to, NULL, &dup);
    free(data);
    free(meta);
    if (rc) {
        fprintf(stderr, "maosctl: import: line %lu: task %s: %s: %s (a re-run of the same file "
                "resumes here)\n",
                line, id, maos_err_name(c->err), c->errstr);
        return 1;
    }
    count[dup ? 1 : 0]++;
    return 0;
}

/* stdin into an unnamed temporary file, for the two passes. */
static FILE *spool_stdin(void)
{
    FILE *f = tmpfile();
    char buf[1 << 16];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (fwrite(buf, 1, n, f) != n) {
            fclose(f);
            return NULL;
        }
    if (f && (ferror(stdin) || fflush(f) || fseek(f, 0, SEEK_SET))) {
        fclose(f);
        return NULL;
    }
    return f;
}

int maosctl_import(maos_ctx *c, const char *path, int json, FILE *out)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "stdin" : path;
    line_reader r = {.f = is_stdin ? spool_stdin() : fopen(path, "r")};
    if (!r.f) {
        fprintf(stderr, "maosctl: import: cannot read %s: %s\n", name, strerror(errno));
        return 1;
    }
    uint64_t events = 0, written = 0, skipped = 0, tabled = 0, eput = 0, ekept = 0;
    uint64_t tcount[3] = {0, 0, 0}; /* enqueued, there already, dead (not imported) */
    int rc = check_file(&r, name, &events);
    txn *t = rc ? NULL : calloc(1, sizeof *t);
    if (!rc && (!t || fseek(r.f, 0, SEEK_SET))) {
        fprintf(stderr, "maosctl: import: out of memory or cannot rewind %s\n", name);
        rc = 1;
    }
    r.no = 0;
    /* a transaction's frame stays well under the daemon's max_frame */
    size_t txn_bytes = maos_max_frame(c) / 4;
    if (txn_bytes > IMPORT_TXN_BYTES)
        txn_bytes = IMPORT_TXN_BYTES;
    ssize_t len;
    while (!rc && (len = next_line(&r)) >= 0) {
        if (r.no == 1)
            continue; /* the header, checked */
        json_t *o = json_loadb(r.buf, (size_t)len, 0, NULL);
        const char *kind = kind_of(o);
        if (!o) {
            fprintf(stderr, "maosctl: import: %s, line %lu changed while importing\n", name,
                    r.no);
            rc = 1;
            break;
        }
        if (kind && !strcmp(kind, "entry")) {
            if (!(rc = txn_flush(c, t, &written, &skipped)))
                rc = put_entry(c, o, r.no, &eput, &ekept);
            json_decref(o);
            continue;
        }
        if (kind && !strcmp(kind, "task")) {
            if (!(rc = txn_flush(c, t, &written, &skipped)))
                rc = put_task(c, o, r.no, tcount);
            json_decref(o);
            continue;
        }
        if (kind && !strcmp(kind, "removed")) { /* a stub: nothing to import */
            json_decref(o);
            continue;
        }
        if (kind) { /* the trailer, checked: the end */
            json_decref(o);
            break;
        }
        const char *st = json_string_value(json_object_get(o, "stream"));
        if (!st || check_event(o)) { /* the file changed since pass 1 */
            fprintf(stderr, "maosctl: import: %s, line %lu changed while importing\n", name,
                    r.no);
            json_decref(o);
            rc = 1;
            break;
        }
        if (st[0] == '$' || maos_stream_is_table((maos_slice){st, (uint32_t)strlen(st)})) {
            /* written by table/queue ops (the entries and tasks bring them
             * back) or by maosd itself ($system): not appended */
            tabled++;
            json_decref(o);
            continue;
        }
        if (repeats(t, st)) /* a txn names each stream once */
            rc = txn_flush(c, t, &written, &skipped);
        if (!rc)
            rc = take_event(o, r.no, t);
        json_decref(o);
        if (!rc && (t->n == IMPORT_TXN_EVENTS || t->bytes >= txn_bytes))
            rc = txn_flush(c, t, &written, &skipped);
    }
    if (!rc)
        rc = txn_flush(c, t, &written, &skipped);
    if (t)
        txn_clear(t);
    free(t);
    free(r.buf);
    fclose(r.f);
    if (rc)
        return 1;
    if (json)
        put_line(out, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "events",
                                (json_int_t)events, "imported", (json_int_t)written,
                                "already_there", (json_int_t)skipped, "table_events",
                                (json_int_t)tabled, "entries_put", (json_int_t)eput,
                                "entries_kept", (json_int_t)ekept, "tasks_enqueued",
                                (json_int_t)tcount[0], "tasks_kept", (json_int_t)tcount[1],
                                "tasks_dead", (json_int_t)tcount[2]));
    else
        fprintf(out, "imported %" PRIu64 " events (%" PRIu64 " were there already; %" PRIu64
                " of tables and queues skipped), %" PRIu64 " table entries (%" PRIu64
                " were there already) and %" PRIu64 " tasks (%" PRIu64 " were there already; %"
                PRIu64 " dead letters not imported) from %s\n",
                written, skipped, tabled, eput, ekept, tcount[0], tcount[1], tcount[2], name);
    return 0;
}

/* ---- verify --export ----------------------------------------------------------- */

/* An event of a record's fields (views into rec). */
static int verify_bad_line(FILE *out, int json, unsigned long line, uint64_t pos,
                           const char *why)
{
    if (json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:s}", "ok", 0, "line", (json_int_t)line,
                              "position", (json_int_t)pos, "error", why);
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        fprintf(out, "%s\n", t ? t : "{\"ok\":false}");
        free(t);
        json_decref(o);
    } else {
        fprintf(out, "BAD: line %lu, position %" PRIu64 ": %s\n", line, pos, why);
    }
    return 1;
}

/* The stored bytes of one line's record into sb, and *e decoded from them
 * (views into sb): "record" when the line has one (and then its JSON must
 * say the same), else rebuilt from the JSON with prev.  NULL, or why not. */
static const char *line_record(json_t *o, int removed, const uint8_t prev[32],
                               msgpack_sbuffer *sb, maos_event *e)
{
    json_t *rj = json_object_get(o, "record");
    if (rj) {
        size_t len;
        unsigned char *b = b64_bytes(rj, &len);
        if (!b)
            return "a record field that is not base64";
        msgpack_sbuffer_write(sb, (const char *)b, len);
        free(b);
    } else if (removed) {
        return "a removed line without its record";
    } else if (record_from_json(o, prev, sb)) {
        return "an event line that does not give back a record";
    }
    if (!sb->data || maos_event_decode(sb->data, sb->size, e))
        return "a record that does not decode";
    if (rj && !removed) { /* the line's JSON must be the record's */
        json_t *j = NULL, *copy = json_copy(o);
        json_object_del(copy, "record");
        int same = !maos_event_to_json(e, &j) && json_equal(j, copy);
        json_decref(j);
        json_decref(copy);
        if (!same)
            return "an event line whose fields are not those of its record";
    }
    return NULL;
}

int maosctl_verify_export(const char *path, const uint8_t *key, int json, FILE *out)
{
    int is_stdin = !strcmp(path, "-");
    line_reader r = {.f = is_stdin ? stdin : fopen(path, "r")};
    uint8_t prev[32] = {0}, h[32];
    uint64_t expect = 1, n = 0, nr = 0, n_signed = 0, signed_to = 0;
    /* the last position whose hash a stored prev confirmed: an event line
     * rebuilt from JSON carries no prev, so a change shows at the next
     * record that does (a "record" line, a stub, the trailer) */
    uint64_t confirmed = 0;
    char whybuf[200];
    int rc = 0, trailer = 0;
    ssize_t len;
    if (!r.f) {
        fprintf(stderr, "maosctl: verify: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    while (!rc && (len = next_line(&r)) >= 0) {
        json_t *o = json_loadb(r.buf, (size_t)len, 0, NULL);
        const char *kind = o ? kind_of(o) : NULL, *why = NULL;
        if (!json_is_object(o)) {
            rc = verify_bad_line(out, json, r.no, expect, "not a JSON object (cut or damaged)");
        } else if (r.no == 1) {
            json_t *f = json_object_get(o, "filter");
            if (!kind || strcmp(kind, "header") ||
                json_integer_value(json_object_get(o, "version")) != EXPORT_VERSION) {
                rc = verify_bad_line(out, json, r.no, 0, "not the header of a maos export");
            } else if ((f && json_object_size(f)) ||
                       json_integer_value(json_object_get(o, "from")) != 1) {
                fprintf(stderr, "maosctl: verify: %s is a filtered or partial export: it "
                        "holds only part of the hash chain; export the whole log to "
                        "verify it\n", path);
                rc = 2;
            }
        } else if (trailer) {
            rc = verify_bad_line(out, json, r.no, expect, "a line after the trailer");
        } else if (kind && !strcmp(kind, "trailer")) {
            trailer = 1;
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, prev, 32);
            const char *lh = json_string_value(json_object_get(o, "last_hash"));
            const char *sg = json_string_value(json_object_get(o, "signature"));
            uint8_t sig[64], msg[MAOS_EXPORT_MSG_LEN];
            size_t sl;
            uint64_t shead = (uint64_t)json_integer_value(json_object_get(o, "signed_head"));
            if (json_integer_value(json_object_get(o, "count")) != (json_int_t)n ||
                json_integer_value(json_object_get(o, "removed")) != (json_int_t)nr)
                why = "the trailer's counts are not the numbers of records before it";
            else if (json_integer_value(json_object_get(o, "last_position")) !=
                     (json_int_t)(expect - 1))
                why = "the trailer's last position is not the last record's";
            else if (expect > 1 && (!lh || strcmp(lh, hex))) {
                snprintf(whybuf, sizeof whybuf, "the trailer's last hash is not the hash of "
                         "the last record: a record of positions %" PRIu64 "..%" PRIu64
                         " was changed", confirmed + 1, expect - 1);
                why = whybuf;
            }
            else if (key && !sg)
                why = "the export is not signed (its daemon had no key)";
            else if (key && (sodium_hex2bin(sig, 64, sg, strlen(sg), NULL, &sl, NULL) ||
                             sl != 64 ||
                             (maos_export_message(expect - 1, prev, shead, msg),
                              crypto_sign_verify_detached(sig, msg, sizeof msg, key))))
                why = "the trailer's signature does not verify with the given public key";
            if (why)
                rc = verify_bad_line(out, json, r.no, expect - 1, why);
        } else if (!kind || !strcmp(kind, "removed")) {
            int removed = kind != NULL;
            msgpack_sbuffer sb;
            maos_event e;
            msgpack_sbuffer_init(&sb);
            why = line_record(o, removed, prev, &sb, &e);
            if (!why && removed && !maos_event_removed(&e, h)) /* h: the stub's hash */
                why = "a removed line whose record is not a stub";
            if (!why && n + nr == 0 && removed && e.position > 1) {
                expect = e.position; /* the retention anchor: the chain starts here */
                memcpy(prev, e.prev, 32);
            }
            if (!why && e.position != expect)
                why = "a position out of sequence (a record missing, added or moved)";
            else if (!why && memcmp(e.prev, prev, 32)) {
                snprintf(whybuf, sizeof whybuf, "the chain breaks here: a record of positions "
                         "%" PRIu64 "..%" PRIu64 " was changed (their lines carry no hash of "
                         "their own)", confirmed + 1, expect - 1);
                why = whybuf;
            }
            if (!why && (removed || json_object_get(o, "record")))
                confirmed = expect - 1; /* its stored prev matched */
            if (!why) {
                if (!removed) /* a stub's h is the hash it carries */
                    crypto_generichash(h, 32, (const unsigned char *)sb.data, sb.size, NULL, 0);
                if (!removed && key && e.stream_len == 6 && !memcmp(e.stream, "$chain", 6) &&
                    e.type_len == 10 && !memcmp(e.type, "checkpoint", 10)) {
                    why = maosctl_checkpoint_bad(&e, key);
                    n_signed++;
                    signed_to = expect - 1;
                }
                memcpy(prev, h, 32);
            }
            if (why)
                rc = verify_bad_line(out, json, r.no, expect, why);
            expect++;
            if (removed)
                nr++;
            else
                n++;
            msgpack_sbuffer_destroy(&sb);
        }
        /* entry and task records are not in the chain */
        json_decref(o);
    }
    if (!rc && !trailer)
        rc = verify_bad_line(out, json, r.no, expect, "no trailer: the export was cut");
    if (!is_stdin)
        fclose(r.f);
    free(r.buf);
    if (rc)
        return rc;
    if (json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:b,s:I}", "ok", 1, "events", (json_int_t)n,
                              "removed", (json_int_t)nr, "last_position",
                              (json_int_t)(expect - 1), "signed", key != NULL, "checkpoints",
                              (json_int_t)n_signed);
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        fprintf(out, "%s\n", t ? t : "{\"ok\":true}");
        free(t);
        json_decref(o);
    } else {
        fprintf(out, "OK: export of %" PRIu64 " events (%" PRIu64 " removed), last position %"
                PRIu64 ", hash chain intact%s\n", n, nr, expect - 1,
                key ? "; its trailer is signed by the key" : "");
        if (key)
            fprintf(out, "signed: %" PRIu64 " checkpoints in it, the last of position %" PRIu64
                    "\n", n_signed, signed_to);
    }
    return 0;
}
