/*
 * proto/mpread.c -- a bounded msgpack cursor and structural checker.
 *
 * Why not msgpack-c's unpacker for input: it allocates from the counts a
 * header declares (an array32 header of 0xffffffff asks for ~100 GB of
 * msgpack_object), and it gives no byte spans of sub-values, which we need
 * to store `data` and `meta` exactly as sent.  This cursor never allocates.
 *
 * Invariants:
 *  - No read goes past r->end.  A header's declared size is checked against
 *    the bytes left before the cursor moves: a str/bin/ext of n bytes needs
 *    n bytes, an array of n elements needs n bytes (each element is at least
 *    one byte), a map of n entries needs 2n bytes.
 *  - On any error the cursor does not move.
 *  - maos_mp_check and maos_mpr_skip share one iterative walk with an
 *    explicit depth limit, so deep nesting cannot overflow the C stack.
 */
#include <string.h>

#include "maos/proto.h"

#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_ELEMS 1000000
#define DEFAULT_MAX_EVENTS 10000
#define DEFAULT_MAX_APPENDS 100
#define DEFAULT_MAX_TYPES 64

void maos_limits_defaults(maos_limits *l)
{
    if (!l->max_frame)
        l->max_frame = MAOS_DEFAULT_MAX_FRAME;
    if (!l->max_depth)
        l->max_depth = DEFAULT_MAX_DEPTH;
    if (!l->max_elems)
        l->max_elems = DEFAULT_MAX_ELEMS;
    if (!l->max_events)
        l->max_events = DEFAULT_MAX_EVENTS;
    if (!l->max_appends)
        l->max_appends = DEFAULT_MAX_APPENDS;
    if (!l->max_types)
        l->max_types = DEFAULT_MAX_TYPES;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Decode the header at p.  Sets *type, *hdr (header bytes), *n (payload
 * bytes for str/bin/ext/scalars, element count for array, entry count for
 * map) and *val for ints/bools.  Returns 0, or -1 when the header itself is
 * truncated or the byte is reserved (0xc1).
 */
typedef struct mp_head {
    int type;
    size_t hdr;
    uint64_t n;    /* payload bytes (str/bin/ext/float), or element count */
    uint64_t u;    /* uint value / bool */
    int64_t i;     /* negative int value */
} mp_head;

static int head(const uint8_t *p, const uint8_t *end, mp_head *h)
{
    size_t left = (size_t)(end - p);
    if (left < 1)
        return -1;
    uint8_t b = p[0];
    memset(h, 0, sizeof(*h));
    h->hdr = 1;
    if (b <= 0x7f) {
        h->type = MAOS_MP_UINT;
        h->u = b;
        return 0;
    }
    if (b >= 0xe0) {
        h->type = MAOS_MP_INT;
        h->i = (int8_t)b;
        return 0;
    }
    if ((b & 0xf0) == 0x80) {
        h->type = MAOS_MP_MAP;
        h->n = b & 0x0f;
        return 0;
    }
    if ((b & 0xf0) == 0x90) {
        h->type = MAOS_MP_ARRAY;
        h->n = b & 0x0f;
        return 0;
    }
    if ((b & 0xe0) == 0xa0) {
        h->type = MAOS_MP_STR;
        h->n = b & 0x1f;
        return 0;
    }
    /* sized headers: type, length-field bytes, fixed payload */
    int lenb = 0;
    switch (b) {
    case 0xc0: h->type = MAOS_MP_NIL; return 0;
    case 0xc2: case 0xc3: h->type = MAOS_MP_BOOL; h->u = b == 0xc3; return 0;
    case 0xc4: h->type = MAOS_MP_BIN; lenb = 1; break;
    case 0xc5: h->type = MAOS_MP_BIN; lenb = 2; break;
    case 0xc6: h->type = MAOS_MP_BIN; lenb = 4; break;
    case 0xc7: h->type = MAOS_MP_EXT; lenb = 1; break;
    case 0xc8: h->type = MAOS_MP_EXT; lenb = 2; break;
    case 0xc9: h->type = MAOS_MP_EXT; lenb = 4; break;
    case 0xca: h->type = MAOS_MP_FLOAT; h->n = 4; return 0;
    case 0xcb: h->type = MAOS_MP_FLOAT; h->n = 8; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int w = 1 << (b - 0xcc);
        if (left < 1 + (size_t)w)
            return -1;
        h->type = MAOS_MP_UINT;
        h->u = be(p + 1, w);
        h->hdr = 1 + (size_t)w;
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int w = 1 << (b - 0xd0);
        if (left < 1 + (size_t)w)
            return -1;
        uint64_t raw = be(p + 1, w);
        int64_t v;
        if (w == 1) v = (int8_t)raw;
        else if (w == 2) v = (int16_t)raw;
        else if (w == 4) v = (int32_t)raw;
        else v = (int64_t)raw;
        if (v >= 0) {
            h->type = MAOS_MP_UINT;
            h->u = (uint64_t)v;
        } else {
            h->type = MAOS_MP_INT;
            h->i = v;
        }
        h->hdr = 1 + (size_t)w;
        return 0;
    }
    case 0xd4: h->type = MAOS_MP_EXT; h->n = 2; return 0;
    case 0xd5: h->type = MAOS_MP_EXT; h->n = 3; return 0;
    case 0xd6: h->type = MAOS_MP_EXT; h->n = 5; return 0;
    case 0xd7: h->type = MAOS_MP_EXT; h->n = 9; return 0;
    case 0xd8: h->type = MAOS_MP_EXT; h->n = 17; return 0;
    case 0xd9: h->type = MAOS_MP_STR; lenb = 1; break;
    case 0xda: h->type = MAOS_MP_STR; lenb = 2; break;
    case 0xdb: h->type = MAOS_MP_STR; lenb = 4; break;
    case 0xdc: h->type = MAOS_MP_ARRAY; lenb = 2; break;
    case 0xdd: h->type = MAOS_MP_ARRAY; lenb = 4; break;
    case 0xde: h->type = MAOS_MP_MAP; lenb = 2; break;
    case 0xdf: h->type = MAOS_MP_MAP; lenb = 4; break;
    default: return -1; /* 0xc1 */
    }
    if (left < 1 + (size_t)lenb)
        return -1;
    h->n = be(p + 1, lenb);
    h->hdr = 1 + (size_t)lenb;
    if (h->type == MAOS_MP_EXT)
        h->n += 1; /* the ext type byte */
    return 0;
}

/* Bytes the header promises directly (payload for scalars, a lower bound of
 * one byte per element for containers). */
static uint64_t min_body(const mp_head *h)
{
    switch (h->type) {
    case MAOS_MP_ARRAY: return h->n;
    case MAOS_MP_MAP: return 2 * h->n;
    case MAOS_MP_STR: case MAOS_MP_BIN: case MAOS_MP_EXT: case MAOS_MP_FLOAT:
        return h->n;
    default: return 0;
    }
}

/*
 * Walk one value from p: every header's direct body must fit in the bytes
 * left, containers at most max_elems entries and max_depth deep (0: no
 * depth limit).  Sets *out to the first byte after the value.  Iterative:
 * with a depth limit an explicit stack of counts per level, without one a
 * single count of values still owed (each at least one byte, so it stays
 * below the bytes left); deep nesting never touches the C stack.  Returns
 * 0, MAOS_EBAD_FRAME (malformed/truncated) or MAOS_ELIMIT.
 */
#define WALK_MAX_DEPTH 256
static int walk(const uint8_t *p, const uint8_t *end, uint32_t max_depth,
                uint32_t max_elems, const uint8_t **out)
{
    uint64_t stack[WALK_MAX_DEPTH + 1];
    uint32_t maxd = max_depth < WALK_MAX_DEPTH ? max_depth : WALK_MAX_DEPTH;
    uint32_t depth = 0;
    uint64_t pending = 1; /* values still to read at the current level */

    for (;;) {
        while (pending == 0) {
            if (depth == 0) {
                *out = p;
                return 0;
            }
            pending = stack[--depth];
        }
        mp_head h;
        if (head(p, end, &h) < 0)
            return MAOS_EBAD_FRAME;
        uint64_t need = min_body(&h);
        if (need > (uint64_t)(end - p) - h.hdr)
            return MAOS_EBAD_FRAME;
        pending--;
        if (h.type == MAOS_MP_ARRAY || h.type == MAOS_MP_MAP) {
            if (h.n > max_elems)
                return MAOS_ELIMIT;
            p += h.hdr;
            uint64_t items = h.type == MAOS_MP_MAP ? 2 * h.n : h.n;
            if (items == 0)
                continue;
            if (!max_depth) {
                pending += items;
                if (pending > (uint64_t)(end - p))
                    return MAOS_EBAD_FRAME;
                continue;
            }
            if (depth >= maxd)
                return MAOS_ELIMIT;
            stack[depth++] = pending;
            pending = items;
        } else {
            p += h.hdr + need;
        }
    }
}

int maos_mp_check(const void *buf, size_t len, const maos_limits *lim)
{
    maos_limits l = lim ? *lim : (maos_limits){0};
    maos_limits_defaults(&l);
    const uint8_t *p = buf, *end = p + len, *after;
    int rc = walk(p, end, l.max_depth, l.max_elems, &after);
    if (rc)
        return rc;
    return after == end ? 0 : MAOS_EBAD_FRAME;
}

void maos_mpr_init(maos_mpr *r, const void *p, size_t len)
{
    r->p = p;
    r->end = r->p + len;
}

int maos_mpr_peek(const maos_mpr *r)
{
    mp_head h;
    if (head(r->p, r->end, &h) < 0)
        return 0;
    return h.type;
}

/* Read a header of the wanted type whose direct body fits. */
static int take(maos_mpr *r, int type, mp_head *h)
{
    if (head(r->p, r->end, h) < 0 || h->type != type)
        return MAOS_EBAD_REQUEST;
    if (min_body(h) > (uint64_t)(r->end - r->p) - h->hdr)
        return MAOS_EBAD_REQUEST;
    return 0;
}

int maos_mpr_nil(maos_mpr *r)
{
    mp_head h;
    if (take(r, MAOS_MP_NIL, &h))
        return MAOS_EBAD_REQUEST;
    r->p += h.hdr;
    return 0;
}

int maos_mpr_bool(maos_mpr *r, int *v)
{
    mp_head h;
    if (take(r, MAOS_MP_BOOL, &h))
        return MAOS_EBAD_REQUEST;
    r->p += h.hdr;
    *v = (int)h.u;
    return 0;
}

int maos_mpr_uint(maos_mpr *r, uint64_t *v)
{
    if (r->p < r->end && r->p[0] <= 0x7f) { /* positive fixint */
        *v = *r->p++;
        return 0;
    }
    mp_head h;
    if (take(r, MAOS_MP_UINT, &h))
        return MAOS_EBAD_REQUEST;
    r->p += h.hdr;
    *v = h.u;
    return 0;
}

int maos_mpr_int(maos_mpr *r, int64_t *v)
{
    mp_head h;
    if (head(r->p, r->end, &h) < 0)
        return MAOS_EBAD_REQUEST;
    if (h.type == MAOS_MP_UINT) {
        if (h.u > (uint64_t)INT64_MAX)
            return MAOS_EBAD_REQUEST;
        *v = (int64_t)h.u;
    } else if (h.type == MAOS_MP_INT) {
        *v = h.i;
    } else {
        return MAOS_EBAD_REQUEST;
    }
    r->p += h.hdr;
    return 0;
}

int maos_mpr_float(maos_mpr *r, double *v)
{
    mp_head h;
    if (take(r, MAOS_MP_FLOAT, &h))
        return MAOS_EBAD_REQUEST;
    const uint8_t *b = r->p + h.hdr;
    if (h.n == 4) {
        uint32_t u = (uint32_t)be(b, 4);
        float f;
        memcpy(&f, &u, 4);
        *v = f;
    } else {
        uint64_t u = be(b, 8);
        memcpy(v, &u, 8);
    }
    r->p += h.hdr + h.n;
    return 0;
}

int maos_mpr_ext(maos_mpr *r, int8_t *type, maos_slice *data)
{
    mp_head h;
    if (take(r, MAOS_MP_EXT, &h))
        return MAOS_EBAD_REQUEST;
    /* h.n counts the type byte that follows the header */
    *type = (int8_t)r->p[h.hdr];
    data->ptr = (const char *)r->p + h.hdr + 1;
    data->len = (uint32_t)(h.n - 1);
    r->p += h.hdr + h.n;
    return 0;
}

static int take_bytes(maos_mpr *r, int type, maos_slice *s)
{
    /* fixstr and bin8 at once: the names, types and ids of every record */
    size_t left = (size_t)(r->end - r->p);
    if (left >= 2) {
        uint8_t b = r->p[0];
        size_t hl = 0, n = 0;
        if (type == MAOS_MP_STR && (b & 0xe0) == 0xa0) {
            hl = 1;
            n = b & 0x1fu;
        } else if (b == (type == MAOS_MP_STR ? 0xd9 : 0xc4)) {
            hl = 2;
            n = r->p[1];
        }
        if (hl && left - hl >= n) {
            s->ptr = (const char *)r->p + hl;
            s->len = (uint32_t)n;
            r->p += hl + n;
            return 0;
        }
    }
    mp_head h;
    if (take(r, type, &h))
        return MAOS_EBAD_REQUEST;
    s->ptr = (const char *)r->p + h.hdr;
    s->len = (uint32_t)h.n;
    r->p += h.hdr + h.n;
    return 0;
}

int maos_mpr_str(maos_mpr *r, maos_slice *s)
{
    return take_bytes(r, MAOS_MP_STR, s);
}

int maos_mpr_bin(maos_mpr *r, maos_slice *s)
{
    return take_bytes(r, MAOS_MP_BIN, s);
}

int maos_mpr_array(maos_mpr *r, uint32_t *n)
{
    mp_head h;
    if (take(r, MAOS_MP_ARRAY, &h))
        return MAOS_EBAD_REQUEST;
    r->p += h.hdr;
    *n = (uint32_t)h.n;
    return 0;
}

int maos_mpr_map(maos_mpr *r, uint32_t *n)
{
    if (r->p < r->end && (r->p[0] & 0xf0) == 0x80 &&
        2u * (r->p[0] & 0x0fu) <= (size_t)(r->end - r->p) - 1) { /* fixmap */
        *n = *r->p++ & 0x0fu;
        return 0;
    }
    mp_head h;
    if (take(r, MAOS_MP_MAP, &h))
        return MAOS_EBAD_REQUEST;
    r->p += h.hdr;
    *n = (uint32_t)h.n;
    return 0;
}

/*
 * walk() with no depth or element limit, as maos_mpr_skip needs it, in one
 * tight loop: the same checks (each header and its direct body fit in the
 * bytes left, 0xc1 is refused, values still owed never exceed the bytes
 * left, so a lying count fails at once) without decoding values.  A
 * client's replay walks every event of a page with it (tests/bench/README.md
 * "replay"), the daemon every append's data.  0 and *out, or -1.
 */
static int skip(const uint8_t *p, const uint8_t *end, const uint8_t **out)
{
    uint64_t pending = 1; /* values still to skip */
    while (pending) {
        size_t left = (size_t)(end - p);
        if (left == 0)
            return -1;
        uint8_t b = *p;
        size_t hl, n = 0; /* header bytes, body bytes */
        uint64_t items = 0;
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            p++;
            continue;
        }
        if (b <= 0x8f) {
            hl = 1;
            items = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            hl = 1;
            items = b & 0x0fu;
        } else if (b <= 0xbf) {
            hl = 1;
            n = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: hl = 2; break;             /* bin8, str8 */
            case 0xc5: case 0xda: hl = 3; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: hl = 5; break;             /* bin32, str32 */
            case 0xc7: hl = 2; break;                        /* ext8 */
            case 0xc8: hl = 3; break;                        /* ext16 */
            case 0xc9: hl = 5; break;                        /* ext32 */
            case 0xca: hl = 1; n = 4; break;                 /* float32 */
            case 0xcb: hl = 1; n = 8; break;                 /* float64 */
            case 0xcc: case 0xd0: hl = 1; n = 1; break;
            case 0xcd: case 0xd1: hl = 1; n = 2; break;
            case 0xce: case 0xd2: hl = 1; n = 4; break;
            case 0xcf: case 0xd3: hl = 1; n = 8; break;
            case 0xd4: hl = 1; n = 2; break;                 /* fixext 1..16 */
            case 0xd5: hl = 1; n = 3; break;
            case 0xd6: hl = 1; n = 5; break;
            case 0xd7: hl = 1; n = 9; break;
            case 0xd8: hl = 1; n = 17; break;
            case 0xdc: case 0xde: hl = 3; break;             /* array16, map16 */
            case 0xdd: case 0xdf: hl = 5; break;             /* array32, map32 */
            default: return -1;                              /* 0xc1 */
            }
            if (left < hl)
                return -1;
            if (hl > 1 && !n) {
                uint64_t v = be(p + 1, (int)hl - 1);
                if (b >= 0xdc)
                    items = b >= 0xde ? 2 * v : v;
                else
                    n = (size_t)v + (b >= 0xc7 && b <= 0xc9); /* ext: its type byte */
            }
        }
        if (left - hl < n)
            return -1;
        p += hl + n;
        pending += items;
        if (items && pending > (uint64_t)(end - p))
            return -1;
    }
    *out = p;
    return 0;
}

int maos_mpr_skip(maos_mpr *r, maos_slice *raw)
{
    const uint8_t *after;
    if (skip(r->p, r->end, &after))
        return MAOS_EBAD_REQUEST;
    if (raw) {
        raw->ptr = (const char *)r->p;
        raw->len = (uint32_t)(after - r->p);
    }
    r->p = after;
    return 0;
}

int maos_mpr_find(maos_mpr *r, const char *key, maos_slice *raw)
{
    uint32_t n;
    size_t kl = strlen(key);
    if (maos_mpr_map(r, &n))
        return MAOS_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(r, &k))
            return MAOS_EPROTO;
        if (k.len == kl && !memcmp(k.ptr, key, kl))
            return maos_mpr_skip(r, raw) ? MAOS_EPROTO : 0;
        if (maos_mpr_skip(r, NULL))
            return MAOS_EPROTO;
    }
    return MAOS_ENOT_FOUND;
}
