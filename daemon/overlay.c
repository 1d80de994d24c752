/*
 * daemon/overlay.c -- overlay.h: the keys a write group has staged.
 *
 * Responsibilities
 *  - Map (cf, key) to the latest pending put (a place in the caller's
 *    buffer) or delete mark: one entry per key in a dense array, found
 *    through an open-addressing hash table of entry indexes.
 *  - Save points: a stack of undo-log lengths; the undo log records each
 *    entry's state before every change made while a mark is set.
 *  - Per column family, the entries in key order for iterators (a sorted
 *    run plus an unsorted tail merged in on demand).
 *
 * Invariants: see overlay.h.  In addition:
 *  - slots[] has cap_slots entries (a power of two, 0 when nothing was
 *    ever set); a slot holds 0 (empty) or entry index + 1; entries never
 *    leave the table until clear, so probing needs no tombstones.
 *  - entry.slot is the slot that points at it (clear empties exactly
 *    those slots instead of the whole table).
 *  - Keys live in one growing byte arena (koff, klen); nothing points
 *    into it from outside except a view's caller, until the next change.
 */
#include "overlay.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

enum { OV_ABSENT = 0, OV_PUT = 1, OV_DEL = 2 };

typedef struct ov_entry {
    uint64_t hash;
    uint64_t koff;
    uint64_t voff;
    uint64_t vlen;
    uint32_t klen;
    uint32_t slot;
    uint8_t cf;
    uint8_t state;
} ov_entry;

typedef struct ov_undo {
    uint64_t voff;
    uint64_t vlen;
    uint32_t entry;
    uint8_t state;
} ov_undo;

typedef struct ov_sorted {
    uint32_t *v;  /* [0, nsorted) in key order, then the unsorted tail */
    size_t n;     /* entries of this cf */
    size_t nsorted;
    size_t cap;
    uint32_t *tmp; /* merge buffer */
    size_t tmpcap;
} ov_sorted;

struct maosd_overlay {
    ov_entry *e;
    size_t n, cap;
    uint32_t *slots;
    size_t cap_slots; /* 0 or a power of two */
    char *keys;
    size_t keys_len, keys_cap;
    ov_undo *undo;
    size_t nundo, undo_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    ov_sorted sorted[MAOSD_OVERLAY_CFS];
    uint64_t version;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
};

/* Grow *p (elements of size sz, capacity *cap) to hold at least need. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * sz);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

int maosd_overlay_keycmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

maosd_overlay *maosd_overlay_new(void)
{
    maosd_overlay *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    randombytes_buf(o->hkey, sizeof o->hkey);
    return o;
}

static void release_all(maosd_overlay *o);

void maosd_overlay_free(maosd_overlay *o)
{
    if (!o)
        return;
    release_all(o);
    free(o);
}

/* Past this many entries of capacity, a clear after a group that used
 * less than a quarter of it gives the memory back (one huge group must not
 * pin its tables for the daemon's life). */
#define OV_KEEP_ENTRIES 65536

static void release_all(maosd_overlay *o)
{
    for (unsigned c = 0; c < MAOSD_OVERLAY_CFS; c++) {
        ov_sorted *sv = &o->sorted[c];
        free(sv->v);
        free(sv->tmp);
        sv->v = sv->tmp = NULL;
        sv->cap = sv->tmpcap = 0;
    }
    free(o->e);
    free(o->slots);
    free(o->keys);
    free(o->undo);
    free(o->marks);
    o->e = NULL;
    o->slots = NULL;
    o->keys = NULL;
    o->undo = NULL;
    o->marks = NULL;
    o->cap = o->cap_slots = o->keys_cap = o->undo_cap = o->marks_cap = 0;
}

void maosd_overlay_clear(maosd_overlay *o)
{
    if (o->cap > OV_KEEP_ENTRIES && o->n < o->cap / 4) {
        release_all(o);
    } else if (o->n * 8 < o->cap_slots) {
        for (size_t i = 0; i < o->n; i++)
            o->slots[o->e[i].slot] = 0;
    } else if (o->cap_slots) {
        memset(o->slots, 0, o->cap_slots * sizeof *o->slots);
    }
    o->n = 0;
    o->keys_len = 0;
    o->nundo = 0;
    o->nmarks = 0;
    for (unsigned c = 0; c < MAOSD_OVERLAY_CFS; c++)
        o->sorted[c].n = o->sorted[c].nsorted = 0;
    o->version++;
}

static uint64_t hash_key(const maosd_overlay *o, const void *key, size_t klen)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;
    crypto_shorthash(h, key, klen, o->hkey);
    memcpy(&v, h, sizeof v);
    return v;
}

/* The entry of (cf, key) or -1; *slot: where it is, or the empty slot
 * where it would go.  Needs cap_slots > 0. */
static long find(const maosd_overlay *o, unsigned cf, const void *key, size_t klen,
                 uint64_t h, size_t *slot)
{
    size_t mask = o->cap_slots - 1;
    for (size_t i = (size_t)(h + cf) & mask;; i = (i + 1) & mask) {
        uint32_t s = o->slots[i];
        if (!s) {
            *slot = i;
            return -1;
        }
        const ov_entry *e = &o->e[s - 1];
        if (e->hash == h && e->cf == cf && e->klen == klen &&
            !memcmp(o->keys + e->koff, key, klen)) {
            *slot = i;
            return (long)(s - 1);
        }
    }
}

/* Double the table (or make the first one) and re-insert every entry. */
static int rehash(maosd_overlay *o)
{
    size_t cap = o->cap_slots ? o->cap_slots * 2 : 64;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s)
        return -1;
    for (size_t k = 0; k < o->n; k++) {
        ov_entry *e = &o->e[k];
        size_t i = (size_t)(e->hash + e->cf) & (cap - 1);
        while (s[i])
            i = (i + 1) & (cap - 1);
        s[i] = (uint32_t)k + 1;
        e->slot = (uint32_t)i;
    }
    free(o->slots);
    o->slots = s;
    o->cap_slots = cap;
    return 0;
}

int maosd_overlay_set(maosd_overlay *o, unsigned cf, const void *key, size_t klen,
                      int del, uint64_t voff, size_t vlen)
{
    if (cf >= MAOSD_OVERLAY_CFS || klen > UINT32_MAX || o->n >= UINT32_MAX - 1)
        return -1;
    if ((o->n + 1) * 2 > o->cap_slots && rehash(o))
        return -1;
    uint64_t h = hash_key(o, key, klen);
    size_t slot;
    long k = find(o, cf, key, klen, h, &slot);
    if (o->nmarks && grow((void **)&o->undo, &o->undo_cap, o->nundo + 1, sizeof *o->undo))
        return -1;
    if (k < 0) { /* a new key: entry, key bytes, place in its sorted view */
        ov_sorted *sv = &o->sorted[cf];
        if (grow((void **)&o->e, &o->cap, o->n + 1, sizeof *o->e) ||
            grow((void **)&o->keys, &o->keys_cap, o->keys_len + klen, 1) ||
            grow((void **)&sv->v, &sv->cap, sv->n + 1, sizeof *sv->v))
            return -1;
        k = (long)o->n++;
        ov_entry *e = &o->e[k];
        e->hash = h;
        e->koff = o->keys_len;
        e->klen = (uint32_t)klen;
        e->slot = (uint32_t)slot;
        e->cf = (uint8_t)cf;
        e->state = OV_ABSENT;
        e->voff = e->vlen = 0;
        if (klen)
            memcpy(o->keys + o->keys_len, key, klen);
        o->keys_len += klen;
        o->slots[slot] = (uint32_t)k + 1;
        sv->v[sv->n++] = (uint32_t)k;
    }
    ov_entry *e = &o->e[k];
    if (o->nmarks)
        o->undo[o->nundo++] = (ov_undo){.voff = e->voff, .vlen = e->vlen,
                                        .entry = (uint32_t)k, .state = e->state};
    e->state = del ? OV_DEL : OV_PUT;
    e->voff = del ? 0 : voff;
    e->vlen = del ? 0 : vlen;
    o->version++;
    return 0;
}

int maosd_overlay_get(const maosd_overlay *o, unsigned cf, const void *key,
                      size_t klen, uint64_t *voff, size_t *vlen)
{
    if (!o->n || cf >= MAOSD_OVERLAY_CFS)
        return -1;
    size_t slot;
    long k = find(o, cf, key, klen, hash_key(o, key, klen), &slot);
    if (k < 0)
        return -1;
    return maosd_overlay_entry(o, (uint32_t)k, NULL, NULL, voff, vlen);
}

int maosd_overlay_mark(maosd_overlay *o)
{
    if (grow((void **)&o->marks, &o->marks_cap, o->nmarks + 1, sizeof *o->marks))
        return -1;
    o->marks[o->nmarks++] = o->nundo;
    return 0;
}

int maosd_overlay_rollback(maosd_overlay *o)
{
    if (!o->nmarks)
        return -1;
    size_t to = o->marks[--o->nmarks];
    while (o->nundo > to) {
        const ov_undo *u = &o->undo[--o->nundo];
        ov_entry *e = &o->e[u->entry];
        e->state = u->state;
        e->voff = u->voff;
        e->vlen = u->vlen;
    }
    o->version++;
    return 0;
}

/* Sort key order of entry indexes (qsort_r's comparator). */
static int cmp_entries(const void *pa, const void *pb, void *arg)
{
    const maosd_overlay *o = arg;
    const ov_entry *a = &o->e[*(const uint32_t *)pa];
    const ov_entry *b = &o->e[*(const uint32_t *)pb];
    return maosd_overlay_keycmp(o->keys + a->koff, a->klen, o->keys + b->koff, b->klen);
}

int maosd_overlay_sorted(maosd_overlay *o, unsigned cf, const uint32_t **idx,
                         size_t *n)
{
    if (cf >= MAOSD_OVERLAY_CFS)
        return -1;
    ov_sorted *sv = &o->sorted[cf];
    size_t ns = sv->nsorted, nt = sv->n - ns;
    if (nt) {
        qsort_r(sv->v + ns, nt, sizeof *sv->v, cmp_entries, o);
        if (ns && nt * 16 <= ns) {
            /* A few new keys into a long run (puts and iterators taking
             * turns): each by binary search and a move, not a merge that
             * compares the whole run every time. */
            for (size_t t = 0; t < nt; t++) {
                uint32_t x = sv->v[ns + t];
                size_t lo = 0, hi = ns + t;
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (cmp_entries(&sv->v[mid], &x, o) < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                memmove(sv->v + lo + 1, sv->v + lo, (ns + t - lo) * sizeof *sv->v);
                sv->v[lo] = x;
            }
        } else if (ns) { /* merge the two runs through tmp */
            if (grow((void **)&sv->tmp, &sv->tmpcap, sv->n, sizeof *sv->tmp))
                return -1;
            size_t i = 0, j = ns, w = 0;
            while (i < ns && j < sv->n)
                sv->tmp[w++] = cmp_entries(&sv->v[j], &sv->v[i], o) < 0 ? sv->v[j++]
                                                                         : sv->v[i++];
            while (i < ns)
                sv->tmp[w++] = sv->v[i++];
            while (j < sv->n)
                sv->tmp[w++] = sv->v[j++];
            uint32_t *t = sv->v; /* swap buffers: tmp holds the merged run */
            size_t tc = sv->cap;
            sv->v = sv->tmp;
            sv->cap = sv->tmpcap;
            sv->tmp = t;
            sv->tmpcap = tc;
        }
        sv->nsorted = sv->n;
        o->version++;
    }
    *idx = sv->v;
    *n = sv->n;
    return 0;
}

int maosd_overlay_entry(const maosd_overlay *o, uint32_t k, const char **key,
                        size_t *klen, uint64_t *voff, size_t *vlen)
{
    const ov_entry *e = &o->e[k];
    if (key) {
        *key = o->keys + e->koff;
        *klen = e->klen;
    }
    if (e->state == OV_PUT) {
        *voff = e->voff;
        *vlen = (size_t)e->vlen;
        return 1;
    }
    return e->state == OV_DEL ? 0 : -1;
}

uint64_t maosd_overlay_version(const maosd_overlay *o)
{
    return o->version;
}
