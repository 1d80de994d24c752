/*
 * proto/names.c -- validation of stream/type names and event ids, stream
 * categories and the read filter predicate shared by read_all and (later)
 * subscriptions, so that both select exactly the same events.
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

int maos_name_check(maos_slice s)
{
    if (s.len < 1 || s.len > MAOS_NAME_MAX || !s.ptr)
        return MAOS_EINVALID_NAME;
    return utf8_ok((const uint8_t *)s.ptr, s.len) ? 0 : MAOS_EINVALID_NAME;
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
    const char *dash = memchr(stream.ptr, '-', stream.len);
    if (dash)
        stream.len = (uint32_t)(dash - stream.ptr);
    return stream;
}

static int slice_eq(maos_slice a, maos_slice b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
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
