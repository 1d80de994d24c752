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
 *              'v' stream 0x00 version(8)          -> position(8)
 *   ids      : id(16)                              -> position(8) index(4) count(4)
 *              (index of the event within its append, events in that
 *              append: an idempotent re-send must match the whole append)
 *   meta     : "log_head"                          -> position(8) hash(32)
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

/* stream version index key; k must hold MAOSD_KEY_MAX */
static inline size_t maosd_key_version(char *k, maos_slice stream, uint64_t version)
{
    k[0] = 'v';
    if (stream.len)
        memcpy(k + 1, stream.ptr, stream.len);
    k[1 + stream.len] = 0;
    maosd_put_u64(k + 2 + stream.len, version);
    return 2 + (size_t)stream.len + 8;
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

#endif
