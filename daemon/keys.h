/*
 * daemon/keys.h -- key layouts of the column families.
 *
 * Integer key parts are fixed-width big-endian so that byte order (RocksDB's
 * default comparator) is numeric order.  Stream names never contain NUL
 * (maos_name_check), so 'v' + stream + 0x00 + version sorts every version
 * of one stream together and before any longer name with the same prefix.
 *
 *   events   : position(8)                         -> record bytes
 *   streams  : 'h' stream                          -> head_version(8) last_position(8)
 *              'v' stream 0x00 first_version(8)    -> first_position(8) count(4)
 *              'm' stream                          -> stream meta (retention:
 *              maosd_smeta below; no key: nothing removed, no own rule)
 *   ids      : id(16)                              -> position(8) index(4) count(4)
 *              (index of the event within its append, events in that
 *              append: an idempotent re-send must match the whole append);
 *              ids the client sent only: an id maosd made carries its
 *              event's position (maosd_id_name_position below) and needs no entry
 *              (stores written before hold entries for those too)
 *   meta     : "log_head"                          -> position(8) hash(32)
 *              "log_anchor"                        -> position(8) (retention:
 *              the stub the hash chain starts from; no key: position 1)
 *              "retention/" category               -> max_count(8) max_age_ms(8)
 *              "checkpoint/" name                  -> position(8)
 *              "bound/" table 0x00 key             -> "" (entries bound to
 *              a connection: released at start-up, written with the entry)
 *   sessions : key                                 -> entry
 *   agents   : key                                 -> entry
 *   tables   : table 0x00 key                      -> entry   (locks, kv.*)
 *              entry = revision(8) created_revision(8) created_us(8)
 *              updated_us(8) bound_conn(8) bound_pid(4) document (msgpack
 *              map); bound_conn 0: not bound.  Keys never contain NUL, so
 *              a table's entries sort together, by key.
 *
 * The stream index ('v' keys) has one entry per append (or per run of
 * appends of one stream staged one after the other in a group, commit.c
 * maosd_wx_stream_appended), not per event: the
 * events of one append get consecutive versions and consecutive positions
 * (one writer, the commit thread, stages them one after the other), so
 * versions first_version .. first_version+count-1 are at positions
 * first_position .. first_position+count-1.  Version v is found with a
 * seek to the last entry at or before v (v < first_version + count), and
 * a stream is replayed with one range scan of the events per entry.  The
 * entries of a stream tile its versions from 0 to the head: no gap, no
 * overlap.  A value of 8 bytes (first_position only) is an entry of count
 * 1: stores written before entries covered appends (one key per event)
 * read as they are, without a migration.
 */
#ifndef MAOSD_KEYS_H
#define MAOSD_KEYS_H

#include <stdint.h>
#include <string.h>

#include "maos/proto.h"
#include "store.h"

/* the longest streams key: 'v' + stream + 0x00 + version */
#define MAOSD_KEY_MAX (1 + MAOS_STREAM_MAX + 1 + 8)
#define MAOSD_META_LOG_HEAD "log_head"
#define MAOSD_ID_VALUE_LEN 16
#define MAOSD_CHECKPOINT_PREFIX "checkpoint/"
#define MAOSD_CHECKPOINT_KEY_MAX (sizeof(MAOSD_CHECKPOINT_PREFIX) + MAOS_NAME_MAX)

static inline size_t maosd_key_checkpoint(char *k, maos_slice name)
{
    size_t n = sizeof(MAOSD_CHECKPOINT_PREFIX) - 1;
    memcpy(k, MAOSD_CHECKPOINT_PREFIX, n);
    memcpy(k + n, name.ptr, name.len);
    return n + name.len;
}

#define MAOSD_BOUND_PREFIX "bound/"
#define MAOSD_ENTRY_HDR 44
/* table name (<= 3 + 64) + 0 + key (<= 512), with the bound/ prefix */
#define MAOSD_ENTRY_KEY_MAX (sizeof(MAOSD_BOUND_PREFIX) + 80 + 1 + 512)

static inline void maosd_put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static inline uint32_t maosd_get_u32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static inline void maosd_put_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t maosd_get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

/*
 * The id maosd gives an event that came without one: a UUIDv7 (RFC 9562)
 * whose 74 bits after the millisecond are 26 random bits and then the
 * event's position (48 bits, big-endian, the id's last 6 bytes):
 *
 *   ms(48) | 7 | rnd(12) | 10 | rnd(14) | position(48)
 *
 * Such an id is found again without an index: the event at the position
 * it names either carries it or not (write_stream.c check_duplicate), so
 * the ids column family holds only ids clients sent, and an append without
 * ids writes one key per event, not two.  Unique in a store (positions
 * are), and across stores as long as the millisecond, the position and 26
 * random bits do not all meet.  Positions from MAOSD_ID_POS_LIMIT on get a
 * random UUIDv7 and an ids entry, as every id did before.
 */
#define MAOSD_ID_POS_LIMIT ((uint64_t)1 << 48)

/* A UUIDv7 made into such an id: its last 6 bytes become position. */
static inline void maosd_id_name_position(uint8_t id[16], uint64_t position)
{
    for (int i = 15; i >= 10; i--) {
        id[i] = (uint8_t)position;
        position >>= 8;
    }
}

/* The position an id of that shape names (0: not that shape;
 * a client's id may have it too: the caller checks the event there). */
static inline uint64_t maosd_id_position(const uint8_t id[16])
{
    if ((id[6] & 0xf0) != 0x70 || (id[8] & 0xc0) != 0x80)
        return 0;
    uint64_t p = 0;
    for (int i = 10; i < 16; i++)
        p = p << 8 | id[i];
    return p;
}

/* events key; returns 8 */
static inline size_t maosd_key_event(char *k, uint64_t position)
{
    maosd_put_u64(k, position);
    return 8;
}

/* stream head key; k must hold MAOSD_KEY_MAX */
static inline size_t maosd_key_head(char *k, maos_slice stream)
{
    k[0] = 'h';
    if (stream.len) /* an empty prefix may come with a NULL pointer */
        memcpy(k + 1, stream.ptr, stream.len);
    return 1 + (size_t)stream.len;
}

/* stream index key (of the entry whose first version is version); k must
 * hold MAOSD_KEY_MAX */
static inline size_t maosd_key_version(char *k, maos_slice stream, uint64_t version)
{
    k[0] = 'v';
    if (stream.len)
        memcpy(k + 1, stream.ptr, stream.len);
    k[1 + stream.len] = 0;
    maosd_put_u64(k + 2 + stream.len, version);
    return 2 + (size_t)stream.len + 8;
}

/* One stream-index entry: versions first .. first+count-1 at positions
 * pos .. pos+count-1. */
typedef struct maosd_sindex {
    uint64_t first;
    uint64_t pos;
    uint32_t count;
} maosd_sindex;

#define MAOSD_SINDEX_VALUE_LEN 12 /* first_position(8) count(4) */
#define MAOSD_SINDEX_OLD_LEN 8    /* first_position(8): count 1 */

static inline void maosd_sindex_value(char *v, uint64_t pos, uint32_t count)
{
    maosd_put_u64(v, pos);
    maosd_put_u32(v + 8, count);
}

/*
 * Decode the index entry (k, klen) -> (v, vlen) of the stream whose key
 * prefix ('v' stream 0x00) is plen bytes long (the caller checked the
 * prefix).  0, or -1 when the entry is malformed: a key that is not
 * prefix + 8 bytes, a value of neither 8 nor 12 bytes, a count of 0, or
 * versions or positions that would run past 2^64.  *e is written only on
 * success.
 */
static inline int maosd_sindex_decode(const char *k, size_t klen, size_t plen,
                                      const char *v, size_t vlen, maosd_sindex *e)
{
    if (klen != plen + 8 ||
        (vlen != MAOSD_SINDEX_VALUE_LEN && vlen != MAOSD_SINDEX_OLD_LEN))
        return -1;
    uint64_t first = maosd_get_u64(k + plen), pos = maosd_get_u64(v);
    uint32_t count = vlen == MAOSD_SINDEX_OLD_LEN ? 1 : maosd_get_u32(v + 8);
    if (count == 0 || first > UINT64_MAX - (count - 1) || pos > UINT64_MAX - (count - 1))
        return -1;
    e->first = first;
    e->pos = pos;
    e->count = count;
    return 0;
}

/* The column family of a table's entries and the key of one entry (k
 * holds MAOSD_ENTRY_KEY_MAX).  bound: the meta key of its binding. */
static inline size_t maosd_key_entry(char *k, const maos_table_ref *t,
                                     maos_slice key, int bound, maosd_cf *cf)
{
    size_t n = 0;
    if (bound) {
        memcpy(k, MAOSD_BOUND_PREFIX, sizeof(MAOSD_BOUND_PREFIX) - 1);
        n = sizeof(MAOSD_BOUND_PREFIX) - 1;
        *cf = MAOSD_CF_META;
    } else {
        *cf = t->kind == MAOS_TABLE_SESSIONS ? MAOSD_CF_SESSIONS
            : t->kind == MAOS_TABLE_AGENTS   ? MAOSD_CF_AGENTS
                                             : MAOSD_CF_TABLES;
    }
    if (bound || *cf == MAOSD_CF_TABLES) {
        memcpy(k + n, t->name.ptr, t->name.len);
        n += t->name.len;
        k[n++] = 0;
    }
    if (key.len)
        memcpy(k + n, key.ptr, key.len);
    return n + key.len;
}

/* ---- retention (docs/ARCHITECTURE.md "Retention") ---------------------------- */

#define MAOSD_META_LOG_ANCHOR "log_anchor"
#define MAOSD_RETENTION_PREFIX "retention/"
#define MAOSD_RETENTION_KEY_MAX (sizeof(MAOSD_RETENTION_PREFIX) + MAOS_STREAM_MAX)
#define MAOSD_SMETA_LEN 36
#define MAOSD_SMETA_RULE 1u    /* the stream has a rule of its own */
#define MAOSD_SMETA_DELETED 2u /* deleted: first was set past the head */

/* A stream's meta ('m' key): first(8) done(8) max_count(8) max_age_ms(8)
 * flags(4).  Versions below `first` are removed: no read returns them;
 * versions below `done` (<= first) are stubs already. */
typedef struct maosd_smeta {
    uint64_t first;
    uint64_t done;
    uint64_t max_count;
    uint64_t max_age_ms;
    uint32_t flags;
} maosd_smeta;

static inline size_t maosd_key_smeta(char *k, maos_slice stream)
{
    k[0] = 'm';
    if (stream.len)
        memcpy(k + 1, stream.ptr, stream.len);
    return 1 + (size_t)stream.len;
}

static inline void maosd_smeta_value(char *v, const maosd_smeta *m)
{
    maosd_put_u64(v, m->first);
    maosd_put_u64(v + 8, m->done);
    maosd_put_u64(v + 16, m->max_count);
    maosd_put_u64(v + 24, m->max_age_ms);
    maosd_put_u32(v + 32, m->flags);
}

/* 0, or -1 for a value that is not one (length, done > first). */
static inline int maosd_smeta_decode(const char *v, size_t vlen, maosd_smeta *m)
{
    if (vlen != MAOSD_SMETA_LEN)
        return -1;
    maosd_smeta t = {maosd_get_u64(v), maosd_get_u64(v + 8), maosd_get_u64(v + 16),
                     maosd_get_u64(v + 24), maosd_get_u32(v + 32)};
    if (t.done > t.first)
        return -1;
    *m = t;
    return 0;
}

static inline size_t maosd_key_retention(char *k, maos_slice category)
{
    size_t n = sizeof(MAOSD_RETENTION_PREFIX) - 1;
    memcpy(k, MAOSD_RETENTION_PREFIX, n);
    memcpy(k + n, category.ptr, category.len);
    return n + category.len;
}

#endif
