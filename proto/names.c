/*
 * proto/names.c -- validation of names (stream names, types, table keys)
 * and event ids, stream categories, table names and the streams of table
 * entries, and the read filter predicate shared by read_all and
 * subscriptions, so that both select exactly the same events.
 *
 * Invariant: a table entry's stream is its table's stream prefix followed
 * by the key, and that prefix ends in the first '-' of the stream name
 * (table names and their categories contain no '-'), so the category of a
 * table stream always names its table and maos_stream_is_table holds for
 * it.
 */
#include <string.h>

#include "maos/proto.h"

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF. */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2; cp = c & 0x1f; min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3; cp = c & 0x0f; min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4; cp = c & 0x07; min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int maos_utf8_check(maos_slice s, uint32_t min, uint32_t max)
{
    if (s.len < min || s.len > max || (s.len && !s.ptr))
        return MAOS_EINVALID_NAME;
    return utf8_ok((const uint8_t *)s.ptr, s.len) ? 0 : MAOS_EINVALID_NAME;
}

int maos_name_check(maos_slice s)
{
    return maos_utf8_check(s, 1, MAOS_NAME_MAX);
}

int maos_stream_check(maos_slice s)
{
    return maos_utf8_check(s, 1, MAOS_STREAM_MAX);
}

int maos_key_check(maos_slice key)
{
    return maos_utf8_check(key, 1, MAOS_KEY_MAX);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int maos_uuid_parse(const char *s, size_t len, uint8_t out[16])
{
    uint8_t id[16];
    if (len != 36)
        return MAOS_EINVALID_ID;
    int k = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return MAOS_EINVALID_ID;
            i++;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return MAOS_EINVALID_ID;
        id[k++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    static const uint8_t zero[16];
    if (memcmp(id, zero, 16) == 0)
        return MAOS_EINVALID_ID; /* the nil UUID identifies nothing */
    memcpy(out, id, 16);
    return 0;
}

void maos_uuid_format(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[id[i] >> 4];
        *o++ = hex[id[i] & 15];
    }
    *o = 0;
}

maos_slice maos_category(maos_slice stream)
{
    if (!stream.len)
        return stream; /* an empty prefix may come with a NULL pointer */
    const char *dash = memchr(stream.ptr, '-', stream.len);
    if (dash)
        stream.len = (uint32_t)(dash - stream.ptr);
    return stream;
}

static int slice_eq(maos_slice a, maos_slice b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* ---- tables ------------------------------------------------------------------ */

#define KV_PREFIX "kv."
#define KV_PREFIX_LEN 3

/* Built-in tables: wire name and the category of their streams. */
static const struct {
    const char *name;
    const char *category;
} builtin[] = {
    [MAOS_TABLE_SESSIONS] = {"sessions", "session"},
    [MAOS_TABLE_AGENTS] = {"agents", "agent"},
    [MAOS_TABLE_LOCKS] = {"locks", "lock"},
};
#define N_BUILTIN ((int)(sizeof builtin / sizeof builtin[0]))

static int is_lit(maos_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static int kv_name_ok(const char *p, uint32_t n)
{
    if (n < 1 || n > MAOS_KV_NAME_MAX)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

int maos_table_parse(maos_slice name, maos_table_ref *t)
{
    if (!name.ptr)
        return MAOS_EINVALID_NAME;
    for (int k = 1; k < N_BUILTIN; k++) {
        if (is_lit(name, builtin[k].name)) {
            t->kind = k;
            t->name = name;
            return 0;
        }
    }
    if (name.len > KV_PREFIX_LEN && memcmp(name.ptr, KV_PREFIX, KV_PREFIX_LEN) == 0 &&
        kv_name_ok(name.ptr + KV_PREFIX_LEN, name.len - KV_PREFIX_LEN)) {
        t->kind = MAOS_TABLE_KV;
        t->name = name;
        return 0;
    }
    return MAOS_EINVALID_NAME;
}

int maos_table_stream_prefix(const maos_table_ref *t, char *out)
{
    size_t n;
    if (t->kind >= 1 && t->kind < N_BUILTIN) {
        n = strlen(builtin[t->kind].category);
        memcpy(out, builtin[t->kind].category, n);
    } else if (t->kind == MAOS_TABLE_KV && t->name.ptr &&
               t->name.len > KV_PREFIX_LEN &&
               t->name.len <= KV_PREFIX_LEN + MAOS_KV_NAME_MAX) {
        n = t->name.len;
        memcpy(out, t->name.ptr, n);
    } else {
        return MAOS_EINVALID_ARG;
    }
    out[n++] = '-';
    return (int)n;
}

int maos_table_stream(const maos_table_ref *t, maos_slice key, char *out)
{
    if (key.len > MAOS_KEY_MAX || (key.len && !key.ptr))
        return MAOS_EINVALID_ARG;
    int n = maos_table_stream_prefix(t, out);
    if (n < 0)
        return n;
    if (key.len)
        memcpy(out + n, key.ptr, key.len);
    return n + (int)key.len;
}

int maos_stream_is_table(maos_slice stream)
{
    if (!stream.ptr)
        return 0;
    maos_slice c = maos_category(stream);
    for (int k = 1; k < N_BUILTIN; k++)
        if (is_lit(c, builtin[k].category))
            return 1;
    if (is_lit(c, "queue"))
        return 1; /* queue-NAME: written by the queue ops */
    return c.len >= KV_PREFIX_LEN && memcmp(c.ptr, KV_PREFIX, KV_PREFIX_LEN) == 0;
}

int maos_queue_name_check(maos_slice s)
{
    if (!s.ptr || s.len < 1 || s.len > MAOS_QUEUE_NAME_MAX)
        return MAOS_EINVALID_NAME;
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return MAOS_EINVALID_NAME;
    }
    return 0;
}

size_t maos_queue_stream(maos_slice queue, char *out)
{
    memcpy(out, "queue-", 6);
    memcpy(out + 6, queue.ptr, queue.len);
    return 6 + (size_t)queue.len;
}

int maos_filter_match(const maos_filter *f, const maos_record *rec)
{
    if (f->stream.len && !slice_eq(f->stream, rec->stream))
        return 0;
    if (f->prefix.len && (rec->stream.len < f->prefix.len ||
                          memcmp(rec->stream.ptr, f->prefix.ptr, f->prefix.len)))
        return 0;
    if (f->category.len && !slice_eq(f->category, maos_category(rec->stream)))
        return 0;
    if (f->has_since && rec->time < f->since)
        return 0;
    if (f->has_until && rec->time > f->until)
        return 0;
    if (f->n_types) {
        uint32_t i;
        for (i = 0; i < f->n_types; i++)
            if (slice_eq(f->types[i], rec->type))
                break;
        if (i == f->n_types)
            return 0;
    }
    return 1;
}
