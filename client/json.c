/*
 * client/json.c -- JSON <-> msgpack for event data and meta, and the one
 * JSON form of an event (maos/json.h documents the mapping).
 *
 * msgpack is walked with proto's bounded cursor (maos_mpr_*), never with
 * msgpack-c's unpacker, so a declared length is never trusted.  Depth is
 * bounded in both directions by MAOS_JSON_MAX_DEPTH, which also bounds the
 * recursion of this file.
 */
#include "maos/json.h"
#include "client_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static void put_why(char *why, size_t whylen, const char *fmt, const char *a)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, a);
}

/* ---- JSON -> msgpack ---------------------------------------------------- */

static int pack_value(msgpack_packer *pk, const json_t *v, int depth)
{
    int bad = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        if (depth >= MAOS_JSON_MAX_DEPTH)
            return MAOS_ELIMIT;
        bad = msgpack_pack_map(pk, json_object_size(v));
        /* jansson's iteration API is not const-correct; nothing is changed. */
        json_object_foreach((json_t *)v, key, val) {
            size_t klen = json_object_iter_key_len(json_object_key_to_iter(key));
            if (bad || msgpack_pack_str(pk, klen) || msgpack_pack_str_body(pk, key, klen))
                return MAOS_ENOMEM;
            int rc = pack_value(pk, val, depth + 1);
            if (rc)
                return rc;
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (depth >= MAOS_JSON_MAX_DEPTH)
            return MAOS_ELIMIT;
        if (msgpack_pack_array(pk, n))
            return MAOS_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            int rc = pack_value(pk, json_array_get(v, i), depth + 1);
            if (rc)
                return rc;
        }
        break;
    }
    case JSON_STRING: {
        size_t n = json_string_length(v);
        bad = msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, json_string_value(v), n);
        break;
    }
    case JSON_INTEGER:
        bad = msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        bad = msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        bad = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        bad = msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        bad = msgpack_pack_nil(pk);
        break;
    default:
        return MAOS_EINVALID_ARG;
    }
    return bad ? MAOS_ENOMEM : 0;
}

int maos_json_pack(msgpack_packer *pk, const json_t *v)
{
    if (!pk || !v)
        return MAOS_EINVALID_ARG;
    return pack_value(pk, v, 0);
}

int maos_json_to_msgpack(const json_t *v, char **out, size_t *out_len,
                         char *why, size_t whylen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (!v || !out || !out_len) {
        put_why(why, whylen, "%s", "missing argument");
        return MAOS_EINVALID_ARG;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = pack_value(&pk, v, 0);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        if (rc == MAOS_ELIMIT)
            put_why(why, whylen, "JSON nested deeper than %s levels", "64");
        else
            put_why(why, whylen, "%s", maos_strerror(rc));
        return rc;
    }
    if (!sb.data) { /* an sbuffer allocates lazily; never hand out NULL */
        msgpack_sbuffer_destroy(&sb);
        return MAOS_ENOMEM;
    }
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}

static int json_parse(const char *text, size_t len, json_t **out, char *why,
                      size_t whylen)
{
    json_error_t e;
    json_t *v;
    if (!text) {
        put_why(why, whylen, "%s", "no JSON text");
        return MAOS_EINVALID_ARG;
    }
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!v) {
        if (why && whylen)
            snprintf(why, whylen, "invalid JSON: %s (line %d, column %d)", e.text,
                     e.line, e.column);
        return MAOS_EINVALID_ARG;
    }
    *out = v;
    return 0;
}

int maos_json_text_to_msgpack(const char *text, size_t len, char **out,
                              size_t *out_len, char *why, size_t whylen)
{
    json_t *v;
    int rc = json_parse(text, len, &v, why, whylen);
    if (rc)
        return rc;
    rc = maos_json_to_msgpack(v, out, out_len, why, whylen);
    json_decref(v);
    return rc;
}

/* ---- msgpack -> JSON ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs,
 * no surrogates, at most U+10FFFF), or 0 if it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* A JSON string from bytes that should be UTF-8: invalid sequences become
 * U+FFFD, so that any stored str can be shown. */
static json_t *string_from(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, k;
    while (i < n && (k = utf8_seq(s + i, n - i)) != 0)
        i += k;
    if (i == n)
        return json_stringn(p, n);
    /* Each invalid byte becomes 3 bytes. */
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *buf = malloc(n * 3 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        k = utf8_seq(s + i, n - i);
        if (k) {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *v = json_stringn(buf, o);
    free(buf);
    return v;
}

static json_t *base64_from(const void *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    sodium_bin2base64(buf, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    json_t *v = json_string(buf);
    free(buf);
    return v;
}

/* The shortest of %.15g/%.16g/%.17g that reads back to the same double
 * (finite d).  JSON readers take "1e+21" and "-0" as numbers; a ".0" is
 * added where needed so that the value stays a real when read back. */
static void fmt_real(double d, char *t, size_t cap)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, cap, "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    if (!strpbrk(t, ".eEn")) /* n: nan/inf never reach here, but be safe */
        strncat(t, ".0", cap - strlen(t) - 1);
}

static int unpack_value(maos_mpr *r, int depth, json_t **out);

/* The text a scalar map key becomes. */
static int key_text(maos_mpr *r, char *buf, size_t cap, const char **kp,
                    size_t *kl, json_t **tmp)
{
    uint64_t u;
    int64_t i;
    int b;
    double d;
    maos_slice s;
    *tmp = NULL;
    switch (maos_mpr_peek(r)) {
    case MAOS_MP_STR:
        if (maos_mpr_str(r, &s))
            return MAOS_EINVALID_ARG;
        *tmp = string_from(s.ptr, s.len);
        if (!*tmp)
            return MAOS_ENOMEM;
        *kp = json_string_value(*tmp);
        *kl = json_string_length(*tmp);
        return 0;
    case MAOS_MP_BIN:
        if (maos_mpr_bin(r, &s))
            return MAOS_EINVALID_ARG;
        *tmp = base64_from(s.ptr, s.len);
        if (!*tmp)
            return MAOS_ENOMEM;
        *kp = json_string_value(*tmp);
        *kl = json_string_length(*tmp);
        return 0;
    case MAOS_MP_NIL:
        if (maos_mpr_nil(r))
            return MAOS_EINVALID_ARG;
        snprintf(buf, cap, "null");
        break;
    case MAOS_MP_BOOL:
        if (maos_mpr_bool(r, &b))
            return MAOS_EINVALID_ARG;
        snprintf(buf, cap, "%s", b ? "true" : "false");
        break;
    case MAOS_MP_UINT:
        if (maos_mpr_uint(r, &u))
            return MAOS_EINVALID_ARG;
        snprintf(buf, cap, "%llu", (unsigned long long)u);
        break;
    case MAOS_MP_INT:
        if (maos_mpr_int(r, &i))
            return MAOS_EINVALID_ARG;
        snprintf(buf, cap, "%lld", (long long)i);
        break;
    case MAOS_MP_FLOAT:
        if (maos_mpr_float(r, &d))
            return MAOS_EINVALID_ARG;
        fmt_real(d, buf, cap);
        break;
    default:
        return MAOS_EINVALID_ARG;
    }
    *kp = buf;
    *kl = strlen(buf);
    return 0;
}

static int unpack_value(maos_mpr *r, int depth, json_t **out)
{
    json_t *v = NULL;
    uint64_t u;
    int64_t i;
    int b;
    double d;
    uint32_t n;
    maos_slice s;
    switch (maos_mpr_peek(r)) {
    case MAOS_MP_NIL:
        if (maos_mpr_nil(r))
            return MAOS_EINVALID_ARG;
        v = json_null();
        break;
    case MAOS_MP_BOOL:
        if (maos_mpr_bool(r, &b))
            return MAOS_EINVALID_ARG;
        v = json_boolean(b);
        break;
    case MAOS_MP_UINT:
        if (maos_mpr_uint(r, &u))
            return MAOS_EINVALID_ARG;
        if (u > (uint64_t)INT64_MAX) {
            char buf[24];
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)u);
            v = json_string(buf);
        } else {
            v = json_integer((json_int_t)u);
        }
        break;
    case MAOS_MP_INT:
        if (maos_mpr_int(r, &i))
            return MAOS_EINVALID_ARG;
        v = json_integer((json_int_t)i);
        break;
    case MAOS_MP_FLOAT:
        if (maos_mpr_float(r, &d))
            return MAOS_EINVALID_ARG;
        v = isfinite(d) ? json_real(d) : json_null();
        break;
    case MAOS_MP_STR:
        if (maos_mpr_str(r, &s))
            return MAOS_EINVALID_ARG;
        v = string_from(s.ptr, s.len);
        break;
    case MAOS_MP_BIN:
        if (maos_mpr_bin(r, &s))
            return MAOS_EINVALID_ARG;
        v = base64_from(s.ptr, s.len);
        break;
    case MAOS_MP_EXT: {
        int8_t type;
        if (maos_mpr_ext(r, &type, &s))
            return MAOS_EINVALID_ARG;
        json_t *data = base64_from(s.ptr, s.len);
        v = data ? json_pack("{s:i,s:o}", "$ext", (int)type, "data", data) : NULL;
        break;
    }
    case MAOS_MP_ARRAY:
        if (depth >= MAOS_JSON_MAX_DEPTH)
            return MAOS_ELIMIT;
        if (maos_mpr_array(r, &n))
            return MAOS_EINVALID_ARG;
        v = json_array();
        if (!v)
            return MAOS_ENOMEM;
        for (uint32_t k = 0; k < n; k++) {
            json_t *e;
            int rc = unpack_value(r, depth + 1, &e);
            if (rc || json_array_append_new(v, e)) {
                json_decref(v);
                return rc ? rc : MAOS_ENOMEM;
            }
        }
        break;
    case MAOS_MP_MAP:
        if (depth >= MAOS_JSON_MAX_DEPTH)
            return MAOS_ELIMIT;
        if (maos_mpr_map(r, &n))
            return MAOS_EINVALID_ARG;
        v = json_object();
        if (!v)
            return MAOS_ENOMEM;
        for (uint32_t k = 0; k < n; k++) {
            char kbuf[40];
            const char *kp;
            size_t kl;
            json_t *tmp, *e;
            int rc = key_text(r, kbuf, sizeof kbuf, &kp, &kl, &tmp);
            if (!rc)
                rc = unpack_value(r, depth + 1, &e);
            if (!rc && json_object_setn_new(v, kp, kl, e))
                rc = MAOS_ENOMEM;
            json_decref(tmp);
            if (rc) {
                json_decref(v);
                return rc;
            }
        }
        break;
    default:
        return MAOS_EINVALID_ARG;
    }
    if (!v)
        return MAOS_ENOMEM;
    *out = v;
    return 0;
}

int maos_msgpack_to_json(const void *p, size_t len, json_t **out)
{
    maos_mpr r;
    json_t *v;
    if (!out || (len && !p))
        return MAOS_EINVALID_ARG;
    if (len == 0) {
        *out = json_null();
        return 0;
    }
    maos_mpr_init(&r, p, len);
    int rc = unpack_value(&r, 0, &v);
    if (rc)
        return rc;
    if (r.p != r.end) {
        json_decref(v);
        return MAOS_EINVALID_ARG;
    }
    *out = v;
    return 0;
}

/* ---- JSON text out ------------------------------------------------------------ */

/*
 * A compact dumper instead of json_dumps, for one reason: jansson prints
 * reals with 17 significant digits (0.1 -> 0.10000000000000001).  Here a
 * real gets the shortest of %.15g/%.16g/%.17g that reads back to the same
 * double, like JavaScript and Python print it.  Strings are UTF-8 as is,
 * with the escapes JSON requires.
 */
struct dbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void db_put(struct dbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void db_str(struct dbuf *b, const char *s, size_t n)
{
    size_t run = 0;
    db_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        db_put(b, s + i - run, run);
        run = 0;
        db_put(b, esc, strlen(esc));
    }
    db_put(b, s + n - run, run);
    db_put(b, "\"", 1);
}

static void db_real(struct dbuf *b, double d)
{
    char t[40];
    if (!isfinite(d)) { /* jansson never holds these; be safe anyway */
        db_put(b, "null", 4);
        return;
    }
    fmt_real(d, t, sizeof t);
    db_put(b, t, strlen(t));
}

static void db_value(struct dbuf *b, const json_t *v)
{
    char t[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        db_put(b, "{", 1);
        json_object_foreach((json_t *)v, key, val) {
            if (!first)
                db_put(b, ",", 1);
            first = 0;
            db_str(b, key, json_object_iter_key_len(json_object_key_to_iter(key)));
            db_put(b, ":", 1);
            db_value(b, val);
        }
        db_put(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        db_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                db_put(b, ",", 1);
            db_value(b, json_array_get(v, i));
        }
        db_put(b, "]", 1);
        break;
    case JSON_STRING:
        db_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        db_put(b, t, strlen(t));
        break;
    case JSON_REAL:
        db_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        db_put(b, "true", 4);
        break;
    case JSON_FALSE:
        db_put(b, "false", 5);
        break;
    default:
        db_put(b, "null", 4);
        break;
    }
}

int maos_json_dump(const json_t *v, char **out)
{
    struct dbuf b = {0};
    if (!v || !out)
        return MAOS_EINVALID_ARG;
    db_value(&b, v);
    if (b.oom || !b.p) {
        free(b.p);
        return MAOS_ENOMEM;
    }
    *out = b.p;
    return 0;
}

int maos_msgpack_to_json_text(const void *p, size_t len, char **out)
{
    json_t *v;
    if (!out)
        return MAOS_EINVALID_ARG;
    int rc = maos_msgpack_to_json(p, len, &v);
    if (rc)
        return rc;
    rc = maos_json_dump(v, out);
    json_decref(v);
    return rc;
}

int maos_event_to_json(const maos_event *ev, json_t **out)
{
    char idtxt[37], t[40];
    json_t *data = NULL, *meta = NULL, *o;
    int rc;
    if (!ev || !out)
        return MAOS_EINVALID_ARG;
    if ((rc = maos_msgpack_to_json(ev->data, ev->data_len, &data)))
        return rc;
    if (ev->meta_len == 0)
        meta = json_object();
    else if ((rc = maos_msgpack_to_json(ev->meta, ev->meta_len, &meta))) {
        json_decref(data);
        return rc;
    }
    maos_uuid_format(ev->id, idtxt);
    if (maos_time_format(ev->time, t, sizeof t) < 0)
        snprintf(t, sizeof t, "%lld", (long long)ev->time);
    json_t *stream = string_from(ev->stream, ev->stream_len);
    json_t *type = string_from(ev->type, ev->type_len);
    /* json_pack "o" steals references, also on failure. */
    o = json_pack("{s:I,s:o*,s:I,s:s,s:o*,s:o*,s:o*,s:s}",
                  "position", (json_int_t)ev->position, "stream", stream,
                  "version", (json_int_t)ev->version, "id", idtxt, "type", type,
                  "data", data, "meta", meta, "time", t);
    if (!o || !stream || !type || !data || !meta) {
        json_decref(o);
        return MAOS_ENOMEM;
    }
    *out = o;
    return 0;
}

int maos_entry_to_json(const maos_table_entry *e, json_t **out)
{
    char created[40], updated[40];
    json_t *data = NULL, *o;
    int rc;
    if (!e || !out)
        return MAOS_EINVALID_ARG;
    if (e->data.len == 0)
        data = json_object();
    else if ((rc = maos_msgpack_to_json(e->data.ptr, e->data.len, &data)))
        return rc;
    if (maos_time_format(e->created, created, sizeof created) < 0)
        snprintf(created, sizeof created, "%lld", (long long)e->created);
    if (maos_time_format(e->updated, updated, sizeof updated) < 0)
        snprintf(updated, sizeof updated, "%lld", (long long)e->updated);
    json_t *table = string_from(e->table.ptr, e->table.len);
    json_t *key = string_from(e->key.ptr, e->key.len);
    /* json_pack "o" steals references, also on failure. */
    o = json_pack("{s:o*,s:o*,s:I,s:I,s:s,s:s,s:o*,s:b}", "table", table, "key", key,
                  "revision", (json_int_t)e->revision, "created_revision",
                  (json_int_t)e->created_revision, "created", created, "updated",
                  updated, "data", data, "bound", e->bound ? 1 : 0);
    if (!o || !table || !key || !data) {
        json_decref(o);
        return MAOS_ENOMEM;
    }
    *out = o;
    return 0;
}

/* A time as RFC 3339 text (its integer when it cannot be formatted). */
static json_t *time_from(int64_t us)
{
    char t[40];
    if (maos_time_format(us, t, sizeof t) < 0)
        return json_integer((json_int_t)us);
    return json_string(t);
}

/* A value of a task: nil/absent -> null. */
static int value_from(maos_str v, json_t **out)
{
    if (!v.len) {
        *out = json_null();
        return *out ? 0 : MAOS_ENOMEM;
    }
    return maos_msgpack_to_json(v.ptr, v.len, out);
}

static json_t *opt_string_from(maos_str s)
{
    return s.len ? string_from(s.ptr, s.len) : json_null();
}

int maos_task_to_json(const maos_task_info *t, json_t **out)
{
    char id[37];
    json_t *data = NULL, *meta = NULL, *result = NULL, *hist = NULL, *o = NULL;
    int rc;
    if (!t || !out)
        return MAOS_EINVALID_ARG;
    if ((rc = value_from(t->data, &data)))
        return rc;
    if (t->meta.len)
        rc = maos_msgpack_to_json(t->meta.ptr, t->meta.len, &meta);
    else if (!(meta = json_object()))
        rc = MAOS_ENOMEM;
    if (!rc)
        rc = value_from(t->result, &result);
    if (!rc && !(hist = json_array()))
        rc = MAOS_ENOMEM;
    if (!rc && t->history.len) {
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, t->history.ptr, t->history.len);
        if (maos_mpr_array(&r, &n))
            rc = MAOS_EINVALID_ARG;
        for (uint32_t i = 0; !rc && i < n; i++) {
            uint64_t pos;
            if (maos_mpr_uint(&r, &pos))
                rc = MAOS_EINVALID_ARG;
            else if (json_array_append_new(hist, json_integer((json_int_t)pos)))
                rc = MAOS_ENOMEM;
        }
    }
    if (!rc && !(o = json_object()))
        rc = MAOS_ENOMEM;
    if (rc) {
        json_decref(data);
        json_decref(meta);
        json_decref(result);
        json_decref(hist);
        return rc;
    }
    maos_uuid_format(t->id, id);
    /* json_object_set_new steals the value, also on failure */
    int bad = 0;
    bad |= json_object_set_new(o, "id", json_string(id));
    bad |= json_object_set_new(o, "queue", string_from(t->queue.ptr, t->queue.len));
    bad |= json_object_set_new(o, "state", string_from(t->state.ptr, t->state.len));
    bad |= json_object_set_new(o, "attempt", json_integer((json_int_t)t->attempt));
    bad |= json_object_set_new(o, "max_attempts", json_integer((json_int_t)t->max_attempts));
    bad |= json_object_set_new(o, "priority", json_integer((json_int_t)t->priority));
    bad |= json_object_set_new(o, "data", data);
    bad |= json_object_set_new(o, "meta", meta);
    bad |= json_object_set_new(o, "enqueued", time_from(t->enqueued));
    bad |= json_object_set_new(o, "not_before",
                               t->not_before ? time_from(t->not_before) : json_null());
    bad |= json_object_set_new(o, "dedupe_key", opt_string_from(t->dedupe_key));
    bad |= json_object_set_new(o, "ordering_key", opt_string_from(t->ordering_key));
    bad |= json_object_set_new(o, "last_error", opt_string_from(t->last_error));
    bad |= json_object_set_new(o, "result", result);
    if (t->token) {
        bad |= json_object_set_new(o, "token", json_integer((json_int_t)t->token));
        bad |= json_object_set_new(o, "lease_until", time_from(t->lease_until));
    }
    bad |= json_object_set_new(o, "history", hist);
    if (bad) {
        json_decref(o);
        return MAOS_ENOMEM;
    }
    *out = o;
    return 0;
}

/* The data (any JSON, NULL: none) and meta (a JSON object, NULL: none) of
 * an event or a task as msgpack (*data, *meta malloc'ed, the caller frees;
 * NULL when absent).  0, or the error set on c ("data: ...", "meta: ..."):
 * a dead context reports its sticky error. */
static int data_meta(maos_ctx *c, const char *data_json, const char *meta_json,
                     char **data, size_t *data_len, char **meta, size_t *meta_len)
{
    char why[200];
    json_t *mv = NULL;
    int rc = 0;
    *data = *meta = NULL;
    *data_len = *meta_len = 0;
    if (maos_is_dead(c))
        return maos_ping(c);
    if (data_json &&
        (rc = maos_json_text_to_msgpack(data_json, strlen(data_json), data, data_len, why,
                                        sizeof why))) {
        c->err = rc;
        snprintf(c->errstr, sizeof c->errstr, "data: %s", why);
        return rc;
    }
    if (meta_json) {
        rc = json_parse(meta_json, strlen(meta_json), &mv, why, sizeof why);
        if (!rc && !json_is_object(mv)) {
            rc = MAOS_EINVALID_ARG;
            snprintf(why, sizeof why, "not a JSON object");
        }
        if (!rc)
            rc = maos_json_to_msgpack(mv, meta, meta_len, why, sizeof why);
        json_decref(mv);
        if (rc) {
            free(*data);
            *data = NULL;
            c->err = rc;
            snprintf(c->errstr, sizeof c->errstr, "meta: %s", why);
            return rc;
        }
    }
    return 0;
}

int maos_enqueue_json(maos_ctx *c, const char *queue, const char *data_json,
                      const char *meta_json, const maos_task_opts *o, uint8_t id[16],
                      int *duplicate)
{
    char *data, *meta;
    size_t data_len, meta_len;
    if (!c)
        return MAOS_EINVALID_ARG;
    int rc = data_meta(c, data_json, meta_json, &data, &data_len, &meta, &meta_len);
    if (rc)
        return rc;
    maos_task_opts opts = {0};
    if (o)
        opts = *o;
    opts.meta = meta;
    opts.meta_len = meta_len;
    /* null data travels as nil, which is what an absent payload is */
    rc = maos_enqueue(c, queue, data, data_len, &opts, id, duplicate);
    free(data);
    free(meta);
    return rc;
}

int maos_append_json(maos_ctx *c, const char *stream, int64_t expect,
                     const char *type, const char *data_json,
                     const char *meta_json, maos_append_info *out)
{
    char *data, *meta;
    size_t data_len, meta_len;
    if (!c)
        return MAOS_EINVALID_ARG;
    int rc = data_meta(c, data_json, meta_json, &data, &data_len, &meta, &meta_len);
    if (rc)
        return rc;
    maos_event_spec ev = {NULL, type, data, data_len, meta, meta_len};
    rc = maos_append(c, stream, expect, &ev, 1, out);
    free(data);
    free(meta);
    return rc;
}

int maos_publish_json(maos_ctx *c, const char *channel, const char *payload_json,
                      uint64_t *receivers)
{
    char why[200];
    char *payload = NULL;
    size_t len = 0;
    int rc;
    if (!c)
        return MAOS_EINVALID_ARG;
    if (maos_is_dead(c))
        return maos_ping(c); /* a dead context: report its sticky error */
    if (payload_json &&
        (rc = maos_json_text_to_msgpack(payload_json, strlen(payload_json), &payload,
                                        &len, why, sizeof why))) {
        c->err = rc;
        snprintf(c->errstr, sizeof c->errstr, "payload: %s", why);
        return rc;
    }
    rc = maos_publish(c, channel, payload, len, receivers);
    free(payload);
    return rc;
}

/* ---- asynchronous forms (client.h "Asynchronous requests") ---- */

int maos_async_append_json(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                           int64_t expect, const char *type, const char *data_json,
                           const char *meta_json)
{
    maos_append_info ai;
    int rc = maosc_async_begin(c, cb, privdata);
    return rc ? rc
              : maosc_async_end(c, maos_append_json(c, stream, expect, type, data_json,
                                                    meta_json, &ai));
}

int maos_async_enqueue_json(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                            const char *data_json, const char *meta_json,
                            const maos_task_opts *o)
{
    int rc = maosc_async_begin(c, cb, privdata);
    return rc ? rc
              : maosc_async_end(c, maos_enqueue_json(c, queue, data_json, meta_json, o, NULL,
                                                     NULL));
}

int maos_async_publish_json(maos_ctx *c, maos_callback cb, void *privdata,
                            const char *channel, const char *payload_json)
{
    int rc = maosc_async_begin(c, cb, privdata);
    return rc ? rc : maosc_async_end(c, maos_publish_json(c, channel, payload_json, NULL));
}
