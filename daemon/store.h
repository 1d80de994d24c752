/*
 * daemon/store.h -- the daemon's narrow storage interface.
 *
 * store.c is the only file that calls rocksdb_*; no RocksDB type leaves it.
 * Everything above speaks in column families (maosd_cf), byte keys built by
 * keys.h, write groups (maosd_batch) and iterators.  A later engine
 * (PostgreSQL, should maos ever span machines) would implement this
 * same header.
 *
 * Store states (sticky, docs/ARCHITECTURE.md "House rules"):
 *
 *     open() --> OK --(write or fsync fails)--> READ_ONLY --close()--> closed
 *                 \__________________________________________close()__/
 *
 * In READ_ONLY, maosd_store_write refuses with MAOS_EREAD_ONLY and never
 * retries; reads go on.  Only a reopen (daemon restart) clears it.
 *
 * Threads: the store handle and iterators may be used from any thread
 * (RocksDB is thread-safe); a maosd_batch belongs to one thread (the
 * commit thread).
 */
#ifndef MAOSD_STORE_H
#define MAOSD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "maos/errors.h"

typedef enum maosd_cf {
    MAOSD_CF_META = 0, /* RocksDB "default" */
    MAOSD_CF_EVENTS,   /* position(8) -> record */
    MAOSD_CF_STREAMS,  /* 'h'+stream -> head;  'v'+stream+0+version(8) -> index entry */
    MAOSD_CF_IDS,      /* id(16) -> position(8) index(4) count(4), see keys.h */
    MAOSD_CF_SESSIONS, /* key -> entry (keys.h) */
    MAOSD_CF_AGENTS,   /* key -> entry */
    MAOSD_CF_QUEUES,   /* tasks and their indexes (queues.h) */
    MAOSD_CF_TABLES,   /* the other tables' entries: table 0x00 key -> entry */
    MAOSD_CF__COUNT
} maosd_cf;

enum maosd_store_state { MAOSD_STORE_OK = 0, MAOSD_STORE_READ_ONLY = 1 };

typedef struct maosd_store maosd_store;
typedef struct maosd_batch maosd_batch;
typedef struct maosd_iter maosd_iter;

typedef struct maosd_store_opts {
    const char *dir;           /* data directory; created (0700) if missing */
    int sync;                  /* 1: every write is fsynced (WAL sync) */
    size_t block_cache_bytes;  /* 0: default 32 MiB */
    int create;                /* 1: make a new database (the caller checked
                                * that the directory is empty); 0: it must
                                * exist, and is never re-created */
    int salvage;               /* 1: open up to any damage (see below) */
    uint64_t acked_head;       /* last position ever acknowledged (MAOS-HEAD),
                                * UINT64_MAX when unknown */
    uint64_t journal_bytes;    /* maosd's journal (journal.h) of this size when
                                * one is created; 0: RocksDB's WAL instead
                                * (an existing journal is replayed first) */
    int read_only;             /* 1: RocksDB's read-only open: nothing in dir
                                * is written (no journal replay, no WAL
                                * recovery write, no LOCK); the store is
                                * MAOSD_STORE_READ_ONLY from the start */
} maosd_store_opts;

/*
 * What opening found and did about damage (docs/ARCHITECTURE.md "Storage
 * integrity").  WAL replay tolerates only a torn tail: a newest WAL file
 * that ends inside a record (a crash mid-write), or whose last records
 * fail their checksum while nothing after them is readable and nothing
 * acknowledged is in them.  Anything else refuses to open (damaged), or
 * with salvage opens up to the damage (point-in-time replay; RocksDB's
 * repair when the MANIFEST or CURRENT is gone).
 */
typedef struct maosd_store_report {
    int torn_tail;        /* a torn tail was dropped (details in wal) */
    int damaged;          /* refused: the message in err names the damage */
    int salvaged;         /* salvage opened up to the damage */
    int repaired;         /* salvage rebuilt MANIFEST/CURRENT (RepairDB) */
    uint64_t intact_head; /* damaged/salvaged WAL: last position before the
                           * damage (UINT64_MAX unknown) */
    uint64_t beyond_head; /* last position that exists past the damage
                           * (UINT64_MAX unknown) */
    char wal[768];        /* what replay met, "" if nothing: file names,
                           * offsets, RocksDB's words */
} maosd_store_report;

/*
 * Open the database with every column family.  Never scans, except the
 * WAL files' record headers (bounded by max_total_wal_size) and, only when
 * replay met damage, read-only trial opens to measure it.  On failure
 * returns a negative code and writes a message to err[0..errlen):
 * MAOS_ECONFLICT when another process holds the database lock ("data
 * directory ... is in use by another maosd"), MAOS_EIO (rep->damaged set
 * when the cause is damage to the store rather than e.g. permissions) or
 * MAOS_EINTERNAL otherwise.  *out is written only on success; rep (may be
 * NULL) always.
 */
/* Call first on each thread that reads or writes the store: turns off
 * RocksDB's per-thread perf counters there (they cost a TLS lookup and an
 * init check on every memtable insert and read; maosd reads none). */
void maosd_store_thread_init(void);
int maosd_store_open(const maosd_store_opts *o, maosd_store **out,
                     maosd_store_report *rep, char *err, size_t errlen);
/* Flush and close; accepts NULL. */
void maosd_store_close(maosd_store *s);

int maosd_store_state(const maosd_store *s);
/* Put the store into READ_ONLY (also done internally on a write error). */
void maosd_store_set_read_only(maosd_store *s);
/*
 * The RocksDB message of the storage error that made the store READ_ONLY,
 * verbatim (e.g. "IO error: No space left on device: ..."), for the one
 * log line and for stats.  NULL while no storage error happened (also when
 * READ_ONLY came only from maosd_store_set_read_only).  Any thread; the
 * string is owned by the store, never changes once visible, and lives
 * until maosd_store_close.
 */
const char *maosd_store_last_error(const maosd_store *s);

/* RocksDB's message for the last read (get, iterator status) that failed
 * on the calling thread, verbatim: for a corruption it names the file and
 * offset ("Corruption: block checksum mismatch: ... in DIR/000022.sst
 * offset 30000 size 3000").  Valid until the thread's next failed read. */
const char *maosd_store_errmsg(void);
/* A stored value failed maosd's own checks (wrong length, does not
 * decode): keep the message (name the column family and key) for
 * maosd_store_errmsg and return MAOS_ECORRUPT. */
int maosd_store_corrupt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Map a RocksDB error string to a maos code (the one tested mapping; a
 * pure function of the string):
 * "IO error: ... lock ..." -> MAOS_ECONFLICT, "IO error" -> MAOS_EIO,
 * "Corruption" -> MAOS_ECORRUPT, "Incomplete"/"Busy"/"TryAgain" -> MAOS_EOVERLOADED, anything
 * else -> MAOS_EINTERNAL.  NULL -> 0.
 * "lock" means lock contention as RocksDB words it ("IO error: While lock
 * file: DIR/LOCK: Resource temporarily unavailable" from another process,
 * "IO error: lock hold by current process ..." from this one), not any
 * message containing the word (a path under /run/lock, "Permission
 * denied" opening LOCK are plain MAOS_EIO).  RocksDB spells the others
 * "Result incomplete: ", "Resource busy: ", "Operation failed. Try
 * again.: "; both those and the bare code names are recognised. */
int maosd_store_map_error(const char *rocksdb_err);

/*
 * Point read from the database.  Copies at most cap bytes of the value into
 * val and sets *vlen to the full value length.  Returns 0, MAOS_ENOT_FOUND
 * or a mapped error.
 */
int maosd_store_get(maosd_store *s, maosd_cf cf, const void *key, size_t klen,
                    void *val, size_t cap, size_t *vlen);
/* Same, into a caller-owned buffer *buf of *cap bytes, grown (realloc) to
 * the value's size when smaller: one lookup, and no malloc per value once
 * the buffer is big enough.  The caller frees *buf. */
int maosd_store_get_buf(maosd_store *s, maosd_cf cf, const void *key,
                        size_t klen, char **buf, size_t *cap, size_t *vlen);
/* Same, but *val is malloc'ed (caller frees with free()); it has a NUL
 * after the *vlen bytes. */
int maosd_store_get_alloc(maosd_store *s, maosd_cf cf, const void *key,
                          size_t klen, char **val, size_t *vlen);
/* Same, from memory only (the memtables and the block cache): never reads
 * a file, so the loop thread may call it.  MAOSD_NOT_IN_MEMORY (> 0) when
 * the answer needs a file read. */
#define MAOSD_NOT_IN_MEMORY 1
int maosd_store_get_alloc_mem(maosd_store *s, maosd_cf cf, const void *key,
                              size_t klen, char **val, size_t *vlen);

/* Last key of a column family (one seek, no scan): copies at most cap
 * bytes into key, sets *klen; value likewise (*val malloc'ed as in
 * maosd_store_get_alloc; pass val NULL to skip it).  MAOS_ENOT_FOUND if
 * empty. */
int maosd_store_last(maosd_store *s, maosd_cf cf, void *key, size_t kcap,
                     size_t *klen, char **val, size_t *vlen);

/* ---- write groups (commit thread only) -------------------------------- */

/* A batch that can also answer reads of its own pending writes.  NULL:
 * out of memory.  Free with maosd_batch_free (accepts NULL) before
 * maosd_store_close. */
maosd_batch *maosd_batch_new(maosd_store *s);
void maosd_batch_free(maosd_batch *b);
void maosd_batch_clear(maosd_batch *b);
void maosd_batch_put(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                     const void *val, size_t vlen);
/* Delete a key (reads through the batch then find nothing). */
void maosd_batch_delete(maosd_batch *b, maosd_cf cf, const void *key, size_t klen);
/* Mark/rollback, so a request whose checks fail half-way leaves nothing.
 * Marks nest: rollback discards the puts and deletes since the latest mark
 * (reads see again what they saw at the mark) and removes that mark.
 * Marks are only dropped by rollback and clear; a rollback costs the
 * writes it undoes.  A rollback without a mark poisons the batch (see
 * maosd_store_write), as does running out of memory in put, delete or
 * mark. */
void maosd_batch_mark(maosd_batch *b);
void maosd_batch_rollback(maosd_batch *b);
/* Read through the batch, then the database.  Same contract as
 * maosd_store_get. */
int maosd_batch_get(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                    void *val, size_t cap, size_t *vlen);
/* maosd_store_get_buf through the batch. */
int maosd_batch_get_buf(maosd_batch *b, maosd_cf cf, const void *key,
                        size_t klen, char **buf, size_t *cap, size_t *vlen);
/* An iterator over cf that sees the batch's pending writes over the
 * database; invalid once the batch changes (a put, delete,
 * rollback, clear, or another batch iterator that had new keys to sort):
 * then it is not valid and its status is MAOS_EINTERNAL.  upper (ulen
 * bytes, copied; NULL: none) ends it: keys >= upper are not visited,
 * neither the database's nor the batch's, so a scan of one range never
 * steps over the deleted keys of the next.  NULL: out of memory or a bad
 * cf. */
maosd_iter *maosd_batch_iter_new(maosd_batch *b, maosd_cf cf, const void *upper,
                                 size_t ulen);
/* Number of puts and deletes in the batch. */
int maosd_batch_count(maosd_batch *b);
/*
 * One durable write of the whole batch with the configured durability:
 * its journal record (synced with sync), then RocksDB with its WAL off;
 * or, without a journal, one RocksDB write (WAL synced with sync).
 * Returns 0 only after the write (and fsync, if sync) succeeded.  On a
 * failure the store turns READ_ONLY and returns MAOS_EOUTCOME_UNKNOWN
 * when any of the write may have reached the disk, MAOS_EREAD_ONLY when
 * nothing of it was written; later calls return MAOS_EREAD_ONLY without
 * writing.
 * MAOS_EINTERNAL, nothing written and the state unchanged, if the batch is
 * poisoned (a put to an invalid maosd_cf, a rollback without a mark: it no
 * longer holds what the caller meant); clear resets it.
 * The batch is left as it was (clear it after).
 */
int maosd_store_write(maosd_store *s, maosd_batch *b);
/* The journal's current lap (0 without a journal).  Commit thread. */
uint64_t maosd_store_journal_lap(const maosd_store *s);
/* The commit thread, between groups: every memtable flushed (waiting),
 * then a RocksDB checkpoint of the whole database in dir, which must not
 * exist (hard links on the same file system, else copies).  0, or
 * MAOS_EIO with err set.  The store stays usable either way. */
int maosd_store_checkpoint(maosd_store *s, const char *dir, char *err, size_t errlen);
/* A RocksDB integer property ("rocksdb.estimate-pending-compaction-bytes"),
 * summed over every column family.  0, or -1 when RocksDB does not know it. */
int maosd_store_property(maosd_store *s, const char *name, uint64_t *out);
/* Every memtable into table files, waiting.  0 or MAOS_EIO. */
int maosd_store_flush(maosd_store *s);
/* Compact every column family whole (RocksDB CompactRange: flushes the
 * memtables, rewrites the table files, drops overwritten and deleted
 * values).  Blocks for as long as it takes: a pool thread's job. */
void maosd_store_compact(maosd_store *s);
/* Bytes the store holds on disk: its table files (RocksDB's
 * total-sst-files-size of every column family) and the journal.  Any
 * thread; reads in-memory figures only. */
uint64_t maosd_store_data_bytes(maosd_store *s);

/* ---- iterators ---------------------------------------------------------- */

/* A consistent view of the whole database (every column family) at one
 * point: reads of several keys and families that belong together (a list
 * page and the log head it was read at).  Loop thread; free soon, it pins
 * old versions. */
typedef struct maosd_snap maosd_snap;
maosd_snap *maosd_snap_new(maosd_store *s);
void maosd_snap_free(maosd_store *s, maosd_snap *snap);
/* maosd_store_get_buf at the snapshot. */
int maosd_snap_get_buf(maosd_store *s, const maosd_snap *snap, maosd_cf cf,
                       const void *key, size_t klen, char **buf, size_t *cap,
                       size_t *vlen);
/* An iterator reading the snapshot (NULL: like maosd_iter_new). */
maosd_iter *maosd_iter_new_at(maosd_store *s, maosd_cf cf, const maosd_snap *snap);

/* An iterator over one column family with a consistent view taken at
 * creation.  Free with maosd_iter_free. */
maosd_iter *maosd_iter_new(maosd_store *s, maosd_cf cf);
/* The same, ending before upper (as maosd_batch_iter_new). */
maosd_iter *maosd_iter_new_bounded(maosd_store *s, maosd_cf cf, const void *upper,
                                   size_t ulen);
void maosd_iter_free(maosd_iter *it);
void maosd_iter_seek(maosd_iter *it, const void *key, size_t klen);      /* first >= key */
void maosd_iter_seek_prev(maosd_iter *it, const void *key, size_t klen); /* last <= key */
void maosd_iter_seek_first(maosd_iter *it);
void maosd_iter_seek_last(maosd_iter *it);
int maosd_iter_valid(const maosd_iter *it);
void maosd_iter_next(maosd_iter *it);
void maosd_iter_prev(maosd_iter *it);
/* Views valid until the iterator moves. */
const char *maosd_iter_key(const maosd_iter *it, size_t *klen);
const char *maosd_iter_value(const maosd_iter *it, size_t *vlen);
/* 0, or the mapped error that stopped the iteration. */
int maosd_iter_status(const maosd_iter *it);

#endif
