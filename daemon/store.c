/*
 * daemon/store.c -- store.h on RocksDB (the only file that calls rocksdb_*).
 *
 * Responsibilities
 *  - Open one RocksDB instance with every column family of maosd_cf, in
 *    enum order, creating the directory (0700) and missing column
 *    families as needed, and the database only when asked to (a new
 *    store: recover.c decides).  Opening never scans the data: no
 *    iteration, no column family listing, no loading of table statistics;
 *    only the WAL files' record headers are walked to notice a torn tail.
 *  - WAL damage (docs/ARCHITECTURE.md "Storage integrity"): replay
 *    tolerates only a short tail; checksum damage is measured with
 *    read-only trial opens and refused unless it is a garbled tail that
 *    holds nothing acknowledged; --salvage opens up to damage, re-points a
 *    lost CURRENT or runs RocksDB's repair.  What was met is reported in
 *    maosd_store_report, with RocksDB's own account from its LOG file.
 *  - Durability through maosd's journal (journal.h; docs/ARCHITECTURE.md
 *    "Durability: the journal"): each group's batch is a journal record
 *    (fdatasynced with sync), then goes to RocksDB with its WAL off; at
 *    open the journal's lap is applied again, then flushed and a new lap
 *    started.  journal_bytes 0 keeps RocksDB's WAL instead (the WAL rules
 *    below apply to it).
 *  - Turn RocksDB's error strings into maos codes in one pure function
 *    (maosd_store_map_error); no RocksDB type or string format leaks out
 *    except the verbatim message kept for maosd_store_last_error.
 *  - Keep the sticky READ_ONLY state (docs/ARCHITECTURE.md "House rules").
 *
 * States
 *
 *        open() ok
 *            |
 *            v
 *     +-------------+  write/fsync error, or   +-------------+
 *     |     OK      | -----------------------> |  READ_ONLY  |
 *     +-------------+  set_read_only()         +-------------+
 *            |                                        |
 *            +------------- close() ------------------+--> closed
 *
 *  READ_ONLY is never left except by close() and a new open(): a failed
 *  WAL write or fsync is not retried (after a failed fsync the kernel may
 *  have dropped the dirty pages, so a later "successful" fsync proves
 *  nothing).  Reads and iterators keep working in READ_ONLY.
 *
 * Invariants
 *  - state is a C11 atomic: any thread may read it (the loop thread gates
 *    requests on it) while the commit thread moves it to READ_ONLY.
 *  - The first storage error message is written at most once into
 *    err_msg, before err_ready is set with release ordering, so a reader
 *    that sees err_ready sees the whole message, and it never changes.
 *  - A maosd_batch is a buffer of the staged values plus an overlay
 *    (overlay.h) of its keys, so reads through it see the latest pending
 *    put or delete of a key; a mark is the buffer's length (and the count
 *    of ops) and an overlay mark, pushed and popped together.  What is
 *    written (and the journal's record) is the WriteBatch batch_final()
 *    builds from the overlay.  A batch iterator merges the overlay's keys of its family
 *    with a database iterator (BaseDeltaIterator's rules).  A batch whose
 *    contents can no longer be trusted (bad column family, rollback without
 *    mark) is "poisoned" and maosd_store_write refuses it with
 *    MAOS_EINTERNAL rather than committing half a request.
 *  - Column family handles live exactly as long as the DB; iterators and
 *    batches must be freed before maosd_store_close.
 *
 * Ownership notes on the RocksDB C API (7.8.3)
 *  - Error strings come back malloc'ed through char **errptr, which must be
 *    NULL on entry; we free them with rocksdb_free().
 *  - rocksdb_block_based_options_set_filter_policy takes ownership of the
 *    filter policy (shared_ptr reset); never destroy it ourselves.
 *  - The block cache and table options are copied (shared_ptr / by value)
 *    into the options, so our handles can be destroyed independently.
 *
 * Fault injection (builds with -DMAOS_FAULT_INJECTION only): with
 * MAOS_FAULT_WRITE_FAIL_AFTER=N in the environment at open, the (N+1)-th
 * call of maosd_store_write fails as if RocksDB had returned
 * "IO error: injected fault", without writing, and the store goes
 * READ_ONLY exactly as on a real failure.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <fcntl.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "journal.h"
#include "overlay.h"
#include "keys.h"

#define STORE_DEFAULT_CACHE_BYTES ((size_t)32 << 20)
#define STORE_WRITE_BUFFER_BYTES ((size_t)16 << 20)
/* Cap on all memtables together: 7 CFs x 16 MiB x 2 would be 224 MiB. */
#define STORE_DB_WRITE_BUFFER_BYTES ((size_t)64 << 20)
/* Rarely written CFs (sessions, agents, ...) would otherwise pin old WAL
 * files forever; past this size RocksDB flushes them so WALs can go. */
#define STORE_MAX_TOTAL_WAL_BYTES ((uint64_t)128 << 20)
#define STORE_MAX_OPEN_FILES 512
/* Flush threads: a lap's end flushes every column family, side by side
 * (RocksDB's default with 2 background jobs is 1). */
#define STORE_BG_FLUSHES 2
#define STORE_LOG_FILE_BYTES ((size_t)1 << 20)
#define STORE_LOG_FILES_KEPT 2
#define STORE_BLOOM_BITS_PER_KEY 10.0
#define STORE_SCAN_BLOCK_BYTES (32 * 1024)
#define STORE_POINT_BLOCK_BYTES 4096
#define STORE_ERR_MAX 512

static const char *const cf_names[MAOSD_CF__COUNT] = {
    [MAOSD_CF_META] = "default",   [MAOSD_CF_EVENTS] = "events",
    [MAOSD_CF_STREAMS] = "streams", [MAOSD_CF_IDS] = "ids",
    [MAOSD_CF_SESSIONS] = "sessions", [MAOSD_CF_AGENTS] = "agents",
    [MAOSD_CF_QUEUES] = "queues", [MAOSD_CF_TABLES] = "tables",
};

struct maosd_store {
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[MAOSD_CF__COUNT];
    rocksdb_options_t *opts;       /* DB options; also meta/events/tables */
    rocksdb_options_t *bloom_opts; /* streams and ids: + bloom filter */
    rocksdb_cache_t *cache;        /* one LRU block cache for every CF */
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *wal_wopts; /* with a journal: a batch too big for it */
    maosd_journal *journal;            /* NULL: RocksDB's WAL carries durability */
    int preflushed;                    /* this lap's flush was started early */
    int sync;
    atomic_int state;            /* enum maosd_store_state */
    atomic_flag err_claimed;     /* first failing writer owns err_msg */
    atomic_int err_ready;        /* err_msg complete and immutable */
    char err_msg[STORE_ERR_MAX]; /* first RocksDB error, verbatim */
#ifdef MAOS_FAULT_INJECTION
    long long fault_fail_after; /* -1: off */
    atomic_llong fault_writes;  /* maosd_store_write calls so far */
    int fault_journal;          /* FJ_* below, 0: off */
    long long fault_journal_n;  /* ... at the n-th (from 0) occasion */
    long long fault_journal_seen;
#endif
};

/* A batch's staged values, back to back (the overlay keeps each key's
 * offset and length here), and its marks: what was staged before each. */
#define BATCH_VALS_MIN (64u << 10)
typedef struct batch_mark {
    size_t len;
    uint64_t ops;
} batch_mark;

struct maosd_batch {
    maosd_store *s;
    char *vals;               /* the values staged, in order */
    size_t vlen, vcap;
    uint64_t ops;             /* puts and deletes staged (rolled back: gone) */
    batch_mark *marks;
    size_t nmarks, capmarks;
    maosd_overlay *ov;        /* its keys: reads of the pending writes */
    rocksdb_writebatch_t *out;/* what is written (and the journal record):
                               * batch_final() */
    int poisoned;
    struct head_slot *heads;  /* committed stream heads (heads_get), or NULL */
};

/*
 * The batch's cache of committed stream heads ('h' keys of the streams
 * column family): every append reads its stream's head before anything
 * else, and a RocksDB point read was ~10k instructions of a lone append's
 * ~50k in the commit thread (callgrind, 16 appending processes).  Every
 * write of an 'h' key goes through the batch, so after each group that
 * reached the disk the cache takes the group's heads from the overlay
 * (heads_commit); a group whose write failed empties it.  A direct-mapped
 * table: a slot holds one key of up to HEAD_KEY_MAX bytes (longer stream
 * names are read from RocksDB every time) with its 16-byte value or its
 * absence.  docs/ARCHITECTURE.md "The path of a write".
 */
#define HEAD_SLOTS 4096
#define HEAD_KEY_MAX 64
typedef struct head_slot {
    uint8_t state; /* 0 empty, 1 the value, 2 absent */
    uint8_t klen;
    char key[HEAD_KEY_MAX];
    char val[16];
} head_slot;

static head_slot *head_slot_of(maosd_batch *b, maosd_cf cf, const void *key, size_t klen)
{
    if (cf != MAOSD_CF_STREAMS || klen < 2 || klen > HEAD_KEY_MAX ||
        ((const char *)key)[0] != 'h')
        return NULL;
    if (!b->heads && !(b->heads = calloc(HEAD_SLOTS, sizeof *b->heads)))
        return NULL;
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ ((const uint8_t *)key)[i]) * 1099511628211ull;
    return &b->heads[h % HEAD_SLOTS];
}

/* 1: *v (16 bytes) is the committed head of key; 0: no such head; -1:
 * not known here. */
static int heads_get(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                     const char **v)
{
    head_slot *e = head_slot_of(b, cf, key, klen);
    if (!e || !e->state || e->klen != klen || memcmp(e->key, key, klen))
        return -1;
    *v = e->val;
    return e->state == 1;
}

/* Remember what RocksDB (or a committed group) says of key: val of vlen
 * bytes, or absent (val NULL). */
static void heads_put(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                      const char *val, size_t vlen)
{
    head_slot *e = head_slot_of(b, cf, key, klen);
    if (!e)
        return;
    if (val && vlen != 16) {
        e->state = 0; /* not a head's shape: let the reader see it */
        return;
    }
    e->klen = (uint8_t)klen;
    memcpy(e->key, key, klen);
    if (val)
        memcpy(e->val, val, 16);
    e->state = val ? 1 : 2;
}

struct maosd_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts; /* bounded iterators: their own */
    char *upper;                  /* the bound's bytes (RocksDB keeps a view) */
    /* Iterators of a batch (maosd_batch_iter_new): it is the database
     * part, merged with the overlay's sorted keys d[0..dn) (those below
     * upper) as RocksDB's BaseDeltaIterator merges its index. */
    maosd_batch *b;     /* NULL: a plain database iterator */
    uint64_t version;   /* the overlay's, when made; another: stale */
    const uint32_t *d;
    size_t dn;
    ptrdiff_t di;       /* overlay position; valid in [0, dn) */
    int dir;            /* 1 forward, -1 backward */
    int cur;            /* CUR_* below: what key() shows */
    int eq;             /* CUR_DELTA over a database key of the same bytes */
    int err;            /* a maos code that stopped it (stale, db error) */
};

enum { CUR_NONE = 0, CUR_BASE = 1, CUR_DELTA = 2 };

/* ---- helpers ------------------------------------------------------------ */

static rocksdb_column_family_handle_t *cf_handle(const maosd_store *s, maosd_cf cf)
{
    if ((unsigned)cf >= MAOSD_CF__COUNT)
        return NULL;
    return s->cf[cf];
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The message of this thread's last failed read (maosd_store_errmsg). */
static __thread char last_read_err[STORE_ERR_MAX];

/* Map and free a RocksDB error string (NULL: no error, 0); keep its text
 * for maosd_store_errmsg. */
static int take_error(char *err)
{
    int rc = maosd_store_map_error(err);
    if (err)
        snprintf(last_read_err, sizeof(last_read_err), "%s", err);
    rocksdb_free(err);
    return rc;
}

int maosd_store_corrupt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_read_err, sizeof(last_read_err), fmt, ap);
    va_end(ap);
    return MAOS_ECORRUPT;
}

const char *maosd_store_errmsg(void)
{
    return last_read_err[0] ? last_read_err : "no storage error";
}

static void copy_out(const char *src, size_t len, void *dst, size_t cap)
{
    if (dst != NULL && cap > 0)
        memcpy(dst, src, len < cap ? len : cap);
}

/* Copy into *buf, first growing it to len if it is smaller.  0 or
 * MAOS_ENOMEM (then *buf is unchanged). */
static int copy_grow(const char *src, size_t len, char **buf, size_t *cap)
{
    if (len > *cap) {
        char *nb = realloc(*buf, len);
        if (nb == NULL)
            return MAOS_ENOMEM;
        *buf = nb;
        *cap = len;
    }
    if (len > 0)
        memcpy(*buf, src, len);
    return 0;
}

/* malloc'ed copy of len bytes plus a NUL (callers treating values as
 * strings get one for free; *vlen still excludes it). */
static char *dup_bytes(const char *src, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, src, len);
    p[len] = 0;
    return p;
}

/* mkdir -p; every directory it creates gets 0700, existing ones keep their
 * mode.  Returns 0 or an errno value. */
static int mkdir_p(const char *dir)
{
    size_t n = strlen(dir);
    char *path;
    struct stat st;
    int e = 0;

    if (n == 0)
        return ENOENT;
    path = malloc(n + 1);
    if (path == NULL)
        return ENOMEM;
    memcpy(path, dir, n + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            e = errno;
            break;
        }
        *p = c;
        if (c == 0)
            break;
    }
    if (e == 0 && stat(path, &st) != 0)
        e = errno;
    else if (e == 0 && !S_ISDIR(st.st_mode))
        e = ENOTDIR;
    free(path);
    return e;
}

/* Record the first storage error and go READ_ONLY (sticky). */
static void fail_store(maosd_store *s, const char *msg)
{
    if (msg != NULL && !atomic_flag_test_and_set(&s->err_claimed)) {
        snprintf(s->err_msg, sizeof s->err_msg, "%s", msg);
        atomic_store_explicit(&s->err_ready, 1, memory_order_release);
    }
    atomic_store(&s->state, MAOSD_STORE_READ_ONLY);
}

static void free_handles(maosd_store *s)
{
    rocksdb_readoptions_destroy(s->ropts);
    rocksdb_writeoptions_destroy(s->wopts);
    rocksdb_writeoptions_destroy(s->wal_wopts);
    rocksdb_options_destroy(s->opts);
    rocksdb_options_destroy(s->bloom_opts);
    rocksdb_cache_destroy(s->cache);
}

/* Build the option objects; nothing here touches the disk. */
static void build_options(maosd_store *s, const maosd_store_opts *o)
{
    size_t cache_bytes = o->block_cache_bytes ? o->block_cache_bytes
                                              : STORE_DEFAULT_CACHE_BYTES;
    rocksdb_block_based_table_options_t *t;

    s->cache = rocksdb_cache_create_lru(cache_bytes);

    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_set_write_buffer_size(s->opts, STORE_WRITE_BUFFER_BYTES);
    rocksdb_options_set_max_background_flushes(s->opts, STORE_BG_FLUSHES);
    rocksdb_options_set_db_write_buffer_size(s->opts, STORE_DB_WRITE_BUFFER_BYTES);
    rocksdb_options_set_max_total_wal_size(s->opts, STORE_MAX_TOTAL_WAL_BYTES);
    /* Bounded, so table files are opened lazily rather than all at open. */
    rocksdb_options_set_max_open_files(s->opts, STORE_MAX_OPEN_FILES);
    rocksdb_options_set_max_log_file_size(s->opts, STORE_LOG_FILE_BYTES);
    rocksdb_options_set_keep_log_file_num(s->opts, STORE_LOG_FILES_KEPT);
    /* Every write reaches the WAL file in the write call itself. */
    rocksdb_options_set_manual_wal_flush(s->opts, 0);
    /* Do not read table properties of every file at open. */
    rocksdb_options_set_skip_stats_update_on_db_open(s->opts, 1);
    /* LZ4, not RocksDB's default snappy: as small on event records (the 1M
     * events of maos-bench's replay: 178 MB against 181 MB; 427 MB
     * uncompressed) and cheaper to read back: a replay decompresses every
     * block it reads (the block cache holds a fraction of a large log),
     * 237 against 275-290 ns of maosd's CPU per replayed event
     * (tests/bench/README.md).  Table files written before keep their own
     * compression; RocksDB reads both. */
    rocksdb_options_set_compression(s->opts, rocksdb_lz4_compression);

    /* Index and filter blocks live in the cache, so memory stays bounded
     * by block_cache_bytes whatever the number of files. */
    t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, s->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    /* Events are mostly read in runs (replays, catch-up): larger blocks
     * cost fewer block fetches per event (measured: -40% daemon CPU for a
     * 1M-event scan at 64 KiB; 32 KiB keeps point reads cheap too). */
    rocksdb_block_based_options_set_block_size(t, STORE_SCAN_BLOCK_BYTES);
    rocksdb_options_set_block_based_table_factory(s->opts, t);
    rocksdb_block_based_options_set_block_size(t, STORE_POINT_BLOCK_BYTES);

    /* Point lookups of heads and ids are mostly for keys that may not
     * exist (new stream, new event id): a bloom filter answers those. */
    s->bloom_opts = rocksdb_options_create_copy(s->opts);
    rocksdb_block_based_options_set_filter_policy(
        t, rocksdb_filterpolicy_create_bloom_full(STORE_BLOOM_BITS_PER_KEY));
    rocksdb_options_set_block_based_table_factory(s->bloom_opts, t);
    rocksdb_block_based_options_destroy(t); /* frees the filter policy ref */

    s->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(s->ropts, 1);
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, o->sync ? 1 : 0);
    s->wal_wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wal_wopts, o->sync ? 1 : 0);
}

#ifdef MAOS_FAULT_INJECTION
static int fault_journal_setup(maosd_store *s, char *err, size_t errlen);

static int fault_setup(maosd_store *s, char *err, size_t errlen)
{
    const char *v = getenv("MAOS_FAULT_WRITE_FAIL_AFTER");
    char *end;
    long long n;

    s->fault_fail_after = -1;
    atomic_init(&s->fault_writes, 0);
    if (fault_journal_setup(s, err, errlen))
        return MAOS_EINTERNAL;
    if (v == NULL || *v == 0)
        return 0;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno != 0 || *end != 0 || n < 0) {
        snprintf(err, errlen, "invalid MAOS_FAULT_WRITE_FAIL_AFTER=%s", v);
        return MAOS_EINTERNAL;
    }
    s->fault_fail_after = n;
    return 0;
}

/*
 * MAOS_FAULT_JOURNAL=WHAT:N -- the journal's failure points, at the N-th
 * (from 0) occasion: kill-before-apply (SIGKILL after a group's journal
 * record is synced, before RocksDB has it), apply-fails (RocksDB's apply
 * of a journaled group fails), kill-in-replay (SIGKILL after N records
 * were applied at open), kill-in-wrap (SIGKILL after the flush that ends
 * a lap, before the new lap's superblock).
 */
enum { FJ_NONE, FJ_KILL_BEFORE_APPLY, FJ_APPLY_FAILS, FJ_KILL_IN_REPLAY, FJ_KILL_IN_WRAP };

static int fault_journal_setup(maosd_store *s, char *err, size_t errlen)
{
    static const char *const names[] = {
        [FJ_KILL_BEFORE_APPLY] = "kill-before-apply", [FJ_APPLY_FAILS] = "apply-fails",
        [FJ_KILL_IN_REPLAY] = "kill-in-replay", [FJ_KILL_IN_WRAP] = "kill-in-wrap"};
    const char *v = getenv("MAOS_FAULT_JOURNAL");
    if (v == NULL || *v == 0)
        return 0;
    const char *colon = strchr(v, ':');
    for (int i = FJ_KILL_BEFORE_APPLY; colon && i <= FJ_KILL_IN_WRAP; i++) {
        char *end;
        if (strlen(names[i]) != (size_t)(colon - v) || strncmp(v, names[i], strlen(names[i])))
            continue;
        errno = 0;
        long long n = strtoll(colon + 1, &end, 10);
        if (errno || *end || n < 0)
            break;
        s->fault_journal = i;
        s->fault_journal_n = n;
        return 0;
    }
    snprintf(err, errlen, "invalid MAOS_FAULT_JOURNAL=%s", v);
    return MAOS_EINTERNAL;
}

/* 1 when this is the occasion of kind what that must fail. */
static int fault_journal(maosd_store *s, int what)
{
    return s->fault_journal == what && s->fault_journal_seen++ == s->fault_journal_n;
}

/* 1 when this call of maosd_store_write is the one that must fail. */
static int fault_write_fails(maosd_store *s)
{
    long long calls = atomic_fetch_add(&s->fault_writes, 1);
    return s->fault_fail_after >= 0 && calls == s->fault_fail_after;
}
#endif

/* ---- open / close / state ---------------------------------------------- */

int maosd_store_map_error(const char *e)
{
    if (e == NULL)
        return 0;
    if (has_prefix(e, "IO error")) {
        /* Exactly the lock-contention messages of the POSIX env: another
         * process holds the flock ("While lock file: DIR/LOCK: Resource
         * temporarily unavailable"), or this process does ("lock hold by
         * current process ...").  Not every message that mentions a lock:
         * "While open a file for lock: ...: Permission denied" or a path
         * like /run/lock/... is an ordinary I/O problem. */
        if (strcasestr(e, "While lock file") != NULL ||
            strcasestr(e, "lock hold by current process") != NULL)
            return MAOS_ECONFLICT;
        return MAOS_EIO;
    }
    if (has_prefix(e, "Corruption"))
        return MAOS_ECORRUPT;
    /* Status::ToString spells these "Result incomplete: ", "Resource
     * busy: " and "Operation failed. Try again.: "; the bare code names
     * are accepted too. */
    if (has_prefix(e, "Result incomplete") || has_prefix(e, "Incomplete") ||
        has_prefix(e, "Resource busy") || has_prefix(e, "Busy") ||
        has_prefix(e, "Operation failed. Try again") || has_prefix(e, "TryAgain"))
        return MAOS_EOVERLOADED;
    return MAOS_EINTERNAL;
}

/* ---- damage: WAL tails, RocksDB's own account, trial opens ------------------ */

/*
 * RocksDB's WAL format (db/log_format.h, stable since LevelDB): 32 KiB
 * blocks of records, each with a 7-byte header crc32c(4) length(2, LE)
 * type(1); types 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST; a block's last < 7
 * bytes are zero padding.  We only walk the headers (no checksums: RocksDB
 * checks those during replay) to tell whether a file ends inside a
 * record.  Recyclable and newer record types (>= 5) end the walk without
 * a verdict.
 */
#define WAL_BLOCK 32768
#define WAL_HEADER 7

typedef struct wal_file {
    uint64_t number;
    char name[64];
} wal_file;

static int cmp_wal(const void *a, const void *b)
{
    const wal_file *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

/* The *.log files of dir in number order (malloc'ed array, *n entries). */
static wal_file *list_wals(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    wal_file *v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char *end;
        if (len < 5 || len >= sizeof(v->name) || strcmp(e->d_name + len - 4, ".log"))
            continue;
        unsigned long long num = strtoull(e->d_name, &end, 10);
        if (end != e->d_name + len - 4)
            continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 8;
            wal_file *nv = realloc(v, nc * sizeof(*v));
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        v[*n].number = num;
        memcpy(v[*n].name, e->d_name, len + 1);
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(v, *n, sizeof(*v), cmp_wal);
    return v;
}

/* Walk one WAL's headers.  Returns 1 when the file ends inside a record
 * (*end: offset of the first byte of the unfinished record, *size: file
 * size), 0 when it ends cleanly or the walk cannot judge, -1 on I/O
 * error. */
static int wal_torn(const char *path, uint64_t *end, uint64_t *size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    static __thread unsigned char block[WAL_BLOCK];
    uint64_t off = 0, rec_start = 0;
    int in_record = 0, torn = 0;
    for (;;) {
        size_t n = fread(block, 1, WAL_BLOCK, f);
        size_t p = 0;
        while (p + WAL_HEADER <= n) {
            unsigned len = block[p + 4] | (unsigned)block[p + 5] << 8;
            unsigned type = block[p + 6];
            if (type == 0 && len == 0) { /* preallocated zeros: the end */
                n = p;
                goto done;
            }
            if (type < 1 || type > 4)
                goto done; /* not ours to judge */
            if (p + WAL_HEADER + len > n) {
                torn = 1; /* a record running past the end of the data */
                if (type == 1 || type == 2 || !in_record)
                    rec_start = off + p;
                goto done;
            }
            if (type == 1 || type == 2)
                rec_start = off + p;
            in_record = type == 2 || type == 3;
            p += WAL_HEADER + len;
        }
        if (n < WAL_BLOCK) {
            /* the file ends here: a header cut short, or a record with
             * fragments still to come */
            if (p < n || in_record) {
                torn = 1;
                if (!in_record)
                    rec_start = off + p;
            }
            break;
        }
        off += WAL_BLOCK;
    }
done:
    if (ferror(f)) {
        fclose(f);
        return -1;
    }
    struct stat st;
    *size = fstat(fileno(f), &st) == 0 ? (uint64_t)st.st_size : 0;
    fclose(f);
    *end = rec_start;
    return torn;
}

/* Add one item to a "; "-separated list in buf. */
static void appendf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used && used + 2 < cap) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* Before replay: note a torn tail of the newest WAL (the normal trace of
 * a crash mid-write, dropped by replay); an older WAL ending inside a
 * record is damage: 1 with the note in rep->wal. */
static int scan_wal_tails(const char *dir, maosd_store_report *rep)
{
    size_t n;
    wal_file *w = list_wals(dir, &n);
    int older_torn = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        uint64_t end, size;
        snprintf(path, sizeof(path), "%s/%s", dir, w[i].name);
        if (wal_torn(path, &end, &size) != 1)
            continue;
        if (i + 1 == n) {
            rep->torn_tail = 1;
            appendf(rep->wal, sizeof(rep->wal),
                    "%s ends inside a record: its last %llu bytes (from offset %llu) "
                    "are an unfinished write, dropped by recovery",
                    path, (unsigned long long)(size - end), (unsigned long long)end);
        } else {
            older_torn = 1;
            appendf(rep->wal, sizeof(rep->wal),
                    "%s ends inside a record at offset %llu, but newer WAL files "
                    "follow it: it was cut", path, (unsigned long long)end);
        }
    }
    free(w);
    return older_torn;
}

/* What RocksDB's LOG says the last recovery dropped ("DIR/N.log: dropping
 * 17776 bytes; Corruption: checksum mismatch"), appended to buf.  Returns
 * the number of such lines. */
static int log_dropped(const char *dir, char *buf, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOG", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char line[1024], found[3][512];
    int count = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "Recovering log #")) {
            count = 0; /* only the last recovery counts */
            continue;
        }
        char *drop = strstr(line, ": dropping ");
        if (!drop)
            continue;
        /* the file name starts after the last "] " before it */
        char *from = line;
        for (char *p = line; p < drop; p++)
            if (p[0] == ']' && p[1] == ' ')
                from = p + 2;
        line[strcspn(line, "\n")] = 0;
        if (count < 3)
            snprintf(found[count], sizeof(found[count]), "%.500s", from);
        count++;
    }
    fclose(f);
    for (int i = 0; i < count && i < 3; i++)
        appendf(buf, cap, "%s", found[i]);
    if (count > 3)
        appendf(buf, cap, "(%d more)", count - 3);
    return count;
}

/* Last event position of a read-only trial open with a WAL recovery mode
 * (nothing on disk changes).  0 and *pos (0: no events), or -1. */
static int trial_head(maosd_store *s, const char *dir, int mode, uint64_t *pos)
{
    const rocksdb_options_t *cf_opts[MAOSD_CF__COUNT];
    rocksdb_column_family_handle_t *h[MAOSD_CF__COUNT] = {0};
    rocksdb_options_t *o = rocksdb_options_create_copy(s->opts);
    char *rerr = NULL;
    rocksdb_options_set_wal_recovery_mode(o, mode);
    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        cf_opts[i] = o;
    rocksdb_t *db = rocksdb_open_for_read_only_column_families(
        o, dir, MAOSD_CF__COUNT, cf_names, cf_opts, h, 0, &rerr);
    rocksdb_options_destroy(o);
    if (rerr || !db) {
        rocksdb_free(rerr);
        return -1;
    }
    int rc = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, s->ropts, h[MAOSD_CF_EVENTS]);
    rocksdb_iter_seek_to_last(it);
    *pos = 0;
    if (rocksdb_iter_valid(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl == 8)
            *pos = maosd_get_u64(k);
        else
            rc = -1;
    }
    rocksdb_iter_get_error(it, &rerr);
    if (rerr) {
        rocksdb_free(rerr);
        rc = -1;
    }
    rocksdb_iter_destroy(it);
    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        if (h[i])
            rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    return rc;
}

/* One real open with a WAL recovery mode.  0, or the RocksDB message in
 * *rerr (caller frees with rocksdb_free). */
/* mode: a WAL recovery mode (0..3), or OPEN_READ_ONLY (mode 0 and
 * RocksDB's read-only open). */
#define OPEN_READ_ONLY 100

static int open_db(maosd_store *s, const char *dir, int mode, char **rerr)
{
    const rocksdb_options_t *cf_opts[MAOSD_CF__COUNT];
    rocksdb_column_family_handle_t *handles[MAOSD_CF__COUNT] = {0};
    int wal_mode = mode == OPEN_READ_ONLY ? 0 : mode;
    rocksdb_options_set_wal_recovery_mode(s->opts, wal_mode);
    rocksdb_options_set_wal_recovery_mode(s->bloom_opts, wal_mode);
    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        cf_opts[i] = (i == MAOSD_CF_STREAMS || i == MAOSD_CF_IDS) ? s->bloom_opts
                                                                  : s->opts;
    if (mode == OPEN_READ_ONLY)
        s->db = rocksdb_open_for_read_only_column_families(
            s->opts, dir, MAOSD_CF__COUNT, cf_names, cf_opts, handles, 0, rerr);
    else
        s->db = rocksdb_open_column_families(s->opts, dir, MAOSD_CF__COUNT, cf_names,
                                             cf_opts, handles, rerr);
    if (*rerr || !s->db) {
        if (!*rerr) {
            const char msg[] = "unknown error";
            *rerr = malloc(sizeof(msg));
            if (*rerr)
                memcpy(*rerr, msg, sizeof(msg));
        }
        s->db = NULL;
        return -1;
    }
    memcpy(s->cf, handles, sizeof s->cf);
    return 0;
}

/* Failures that mean the store's files are damaged or missing, as opposed
 * to e.g. permissions: corruption, a missing file, a missing CURRENT. */
static int is_damage(const char *e)
{
    return has_prefix(e, "Corruption") ||
           (has_prefix(e, "IO error") && strstr(e, "No such file")) ||
           (has_prefix(e, "Invalid argument") && strstr(e, "does not exist"));
}

static const char *headtxt(uint64_t v, char *buf, size_t cap)
{
    if (v == UINT64_MAX)
        snprintf(buf, cap, "unknown");
    else
        snprintf(buf, cap, "%llu", (unsigned long long)v);
    return buf;
}

/*
 * Replay stopped at damaged WAL records (wal_recovery_mode 0 refuses any
 * corruption but a short tail).  Measure it with two read-only trial
 * opens: point-in-time (replay up to the damage) and skip-any (replay
 * around it).  When nothing readable lies past the damage and it holds
 * nothing acknowledged, it is a torn tail whose last bytes reached the
 * disk garbled: open up to it.  Otherwise refuse, or with salvage open
 * up to it.  0 (opened), or -1 with err set.
 */
static int open_past_damaged_wal(maosd_store *s, const maosd_store_opts *o,
                                 maosd_store_report *rep, const char *first_err,
                                 char *err, size_t errlen)
{
    uint64_t x2, x3;
    char a[24], b[24], c[24];
    int ok2 = trial_head(s, o->dir, 2, &x2) == 0;
    int ok3 = trial_head(s, o->dir, 3, &x3) == 0;
    rep->intact_head = ok2 ? x2 : UINT64_MAX;
    rep->beyond_head = ok3 ? x3 : UINT64_MAX;
    int tail_only = ok2 && ok3 && x3 == x2 &&
                    (o->acked_head == UINT64_MAX || x2 >= o->acked_head);
    if (!tail_only && !o->salvage) {
        rep->damaged = 1;
        snprintf(err, errlen,
                 "the write-ahead log in %s is damaged (%s): %s; "
                 "the log is intact up to position %s, acknowledged up to %s, and "
                 "events up to position %s exist past the damage; refusing to start "
                 "rather than drop them (maosd --salvage opens up to the damage and "
                 "records what it dropped)",
                 o->dir, first_err, rep->wal, headtxt(rep->intact_head, a, sizeof a),
                 headtxt(o->acked_head, b, sizeof b),
                 headtxt(rep->beyond_head, c, sizeof c));
        return -1;
    }
    char *rerr = NULL;
    if (open_db(s, o->dir, 2, &rerr)) {
        rep->damaged = 1;
        snprintf(err, errlen, "cannot open %s even up to the damaged WAL: %s", o->dir,
                 rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (tail_only) {
        rep->torn_tail = 1;
        appendf(rep->wal, sizeof(rep->wal),
                "the damaged records are the last ones written and hold nothing "
                "acknowledged (intact up to position %s, acknowledged up to %s): "
                "dropped as a torn write", headtxt(rep->intact_head, a, sizeof a),
                headtxt(o->acked_head, b, sizeof b));
    } else {
        rep->salvaged = 1;
    }
    return 0;
}

/* CURRENT is gone but MANIFEST files are there: point CURRENT at the
 * newest one again (what RocksDB itself writes: "MANIFEST-000005\n"),
 * durably.  0, or -1 when there is no MANIFEST or the write failed. */
static int repoint_current(const char *dir, maosd_store_report *rep)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    unsigned long long best = 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "MANIFEST-", 9))
            continue;
        unsigned long long n = strtoull(e->d_name + 9, &end, 10);
        if (*end || end == e->d_name + 9)
            continue;
        if (!found || n > best)
            best = n;
        found = 1;
    }
    closedir(d);
    if (!found)
        return -1;
    char path[4096], tmp[4200], text[64];
    int len = snprintf(text, sizeof(text), "MANIFEST-%06llu\n", best);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    snprintf(tmp, sizeof(tmp), "%s/CURRENT.maos-salvage", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    appendf(rep->wal, sizeof(rep->wal), "CURRENT was missing: pointed it at "
            "MANIFEST-%06llu again", best);
    return 0;
}

/* ---- the journal (journal.h) ------------------------------------------- */

/* Every column family's memtable into table files, waiting (wait) or
 * only started: RocksDB switches the memtables at once and flushes them
 * in the background.  Started first and then waited for, the column
 * families flush side by side (STORE_BG_FLUSHES), not one after the
 * other.  Waited for, what the journal holds so far is then in table
 * files.  0 or -1 with *rerr. */
static int flush_cfs(maosd_store *s, int wait, char **rerr)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, (unsigned char)wait);
    for (int i = 0; i < MAOSD_CF__COUNT && !*rerr; i++)
        if (s->cf[i] != NULL)
            rocksdb_flush_cf(s->db, fo, s->cf[i], rerr);
    rocksdb_flushoptions_destroy(fo);
    return *rerr ? -1 : 0;
}

static int flush_all(maosd_store *s, char **rerr)
{
    return flush_cfs(s, 0, rerr) || flush_cfs(s, 1, rerr) ? -1 : 0;
}

/* Past 7/8 of a lap, start flushing (not waiting): the flush that ends
 * the lap then finds only the last eighth's writes in the memtables.  A
 * failure here is only a missed head start; the lap's end reports its
 * own. */
static void journal_preflush(maosd_store *s)
{
    char *rerr = NULL;
    if (s->preflushed || !maosd_journal_nearly_full(s->journal))
        return;
    s->preflushed = 1;
    if (flush_cfs(s, 0, &rerr))
        rocksdb_free(rerr);
}

/* End the lap: flush, then the new lap's superblock.  0, or -1 with the
 * store failed (nothing of a pending group written yet). */
static int journal_next_lap(maosd_store *s)
{
    char *rerr = NULL;
    if (flush_all(s, &rerr)) {
        fail_store(s, rerr);
        rocksdb_free(rerr);
        return -1;
    }
#ifdef MAOS_FAULT_INJECTION
    if (fault_journal(s, FJ_KILL_IN_WRAP))
        raise(SIGKILL);
#endif
    s->preflushed = 0;
    if (maosd_journal_new_lap(s->journal)) {
        char m[STORE_ERR_MAX];
        snprintf(m, sizeof m, "IO error: cannot start a new lap of %s: %s",
                 maosd_journal_path(s->journal),
                 strerror(maosd_journal_errno(s->journal)));
        fail_store(s, m);
        return -1;
    }
    return 0;
}

int maosd_store_property(maosd_store *s, const char *name, uint64_t *out)
{
    uint64_t sum = 0, v;
    for (int i = 0; i < MAOSD_CF__COUNT; i++) {
        if (!s->cf[i] || rocksdb_property_int_cf(s->db, s->cf[i], name, &v))
            return -1;
        sum += v;
    }
    *out = sum;
    return 0;
}

void maosd_store_compact(maosd_store *s)
{
    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        if (s->cf[i])
            rocksdb_compact_range_cf(s->db, s->cf[i], NULL, 0, NULL, 0);
}

int maosd_store_flush(maosd_store *s)
{
    char *rerr = NULL;
    if (flush_all(s, &rerr) == 0)
        return 0;
    snprintf(last_read_err, sizeof last_read_err, "%s", rerr);
    rocksdb_free(rerr);
    return MAOS_EIO;
}

int maosd_store_checkpoint(maosd_store *s, const char *dir, char *err, size_t errlen)
{
    char *rerr = NULL;
    if (flush_all(s, &rerr) == 0) {
        rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
        if (cp) {
            /* 0: flush before linking (a no-op now); with RocksDB's WAL
             * the live log files are copied too, as RocksDB does */
            rocksdb_checkpoint_create(cp, dir, 0, &rerr);
            rocksdb_checkpoint_object_destroy(cp);
        }
    }
    if (!rerr)
        return 0;
    snprintf(err, errlen, "checkpoint into %s: %s", dir, rerr);
    rocksdb_free(rerr);
    return MAOS_EIO;
}

static int replay_one(void *arg, const char *data, size_t len)
{
    maosd_store *s = arg;
    char *rerr = NULL;
#ifdef MAOS_FAULT_INJECTION
    if (fault_journal(s, FJ_KILL_IN_REPLAY))
        raise(SIGKILL);
#endif
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(data, len);
    if (!wb)
        return MAOS_ENOMEM;
    rocksdb_write(s->db, s->wopts, wb, &rerr);
    rocksdb_writebatch_destroy(wb);
    if (rerr) {
        snprintf(last_read_err, sizeof last_read_err, "%s", rerr);
        rocksdb_free(rerr);
        return MAOS_EIO;
    }
    return 0;
}

/*
 * After RocksDB opened: open (or make) the journal, apply its lap again,
 * and when it held anything, flush and start a new lap, so a crash from
 * here on finds either this lap again or an empty one.  With the journal
 * off (journal_bytes 0), an existing one is applied, flushed and removed.
 */
static int journal_start(maosd_store *s, const maosd_store_opts *o,
                         maosd_store_report *rep, char *err, size_t errlen)
{
    maosd_journal_scan sc;
    int on = o->journal_bytes != 0;
    int rc = maosd_journal_open(o->dir, o->journal_bytes, on, &s->journal, err, errlen);
    if (rc == MAOS_ENOT_FOUND && !on)
        return 0;
    if (rc == MAOS_ECORRUPT && o->salvage) {
        /* No superblock to trust: keep the file aside for a post-mortem,
         * start a new one; MAOS-HEAD tells recover.c what that lost. */
        char path[4200], aside[4300];
        snprintf(path, sizeof path, "%s/%s", o->dir, MAOSD_JOURNAL_FILE);
        snprintf(aside, sizeof aside, "%s.damaged", path);
        if (rename(path, aside)) {
            snprintf(err, errlen, "cannot move the damaged %s aside: %s", path,
                     strerror(errno));
            return MAOS_EIO;
        }
        appendf(rep->wal, sizeof rep->wal, "%s; moved to %s", err, aside);
        rep->salvaged = 1;
        err[0] = 0;
        rc = maosd_journal_open(o->dir, o->journal_bytes ? o->journal_bytes
                                                         : MAOSD_JOURNAL_MIN_BYTES,
                                1, &s->journal, err, errlen);
    }
    if (rc) {
        rep->damaged = rc == MAOS_ECORRUPT;
        return rc == MAOS_ECORRUPT ? MAOS_EIO : rc;
    }
    /* Applied without RocksDB's WAL: what it applies is flushed below
     * before anything else is written. */
    rocksdb_writeoptions_disable_WAL(s->wopts, 1);
    rocksdb_writeoptions_set_sync(s->wopts, 0);
    rc = maosd_journal_replay(s->journal, o->salvage, replay_one, s, &sc);
    if (sc.what[0])
        appendf(rep->wal, sizeof rep->wal, "%s", sc.what);
    if (rc == MAOS_ECORRUPT) {
        rep->damaged = 1;
        snprintf(err, errlen, "the journal is damaged: %s; refusing to start rather "
                 "than drop what follows (maosd --salvage opens up to the damage and "
                 "records what it dropped)", sc.what);
        return MAOS_EIO;
    }
    if (rc) {
        snprintf(err, errlen, "cannot apply the journal %s: %s",
                 maosd_journal_path(s->journal),
                 sc.what[0] ? sc.what : maosd_store_errmsg());
        return rc == MAOS_ENOMEM ? MAOS_EINTERNAL : MAOS_EIO;
    }
    rep->torn_tail |= sc.torn;
    rep->salvaged |= sc.damaged;
    if (sc.records || sc.torn || sc.damaged || !on) {
        char *rerr = NULL;
        if (flush_all(s, &rerr) || (on && maosd_journal_new_lap(s->journal))) {
            snprintf(err, errlen, "cannot store what the journal %s held: %s",
                     maosd_journal_path(s->journal),
                     rerr ? rerr : strerror(maosd_journal_errno(s->journal)));
            rocksdb_free(rerr);
            return MAOS_EIO;
        }
    }
    if (!on) {
        char path[4200];
        snprintf(path, sizeof path, "%s", maosd_journal_path(s->journal));
        maosd_journal_close(s->journal);
        s->journal = NULL;
        if (unlink(path)) {
            snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
            return MAOS_EIO;
        }
        rocksdb_writeoptions_disable_WAL(s->wopts, 0); /* RocksDB's WAL again */
        rocksdb_writeoptions_set_sync(s->wopts, s->sync);
        return 0;
    }
    return 0;
}

void maosd_store_thread_init(void)
{
    rocksdb_set_perf_level(1); /* rocksdb::PerfLevel::kDisable */
}

int maosd_store_open(const maosd_store_opts *o, maosd_store **out,
                     maosd_store_report *rep, char *err, size_t errlen)
{
    maosd_store_report dummy_rep;
    maosd_store *s;
    char *rerr = NULL;
    char dummy[1];
    int e, rc;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!rep)
        rep = &dummy_rep;
    memset(rep, 0, sizeof(*rep));
    rep->intact_head = rep->beyond_head = UINT64_MAX;
    err[0] = 0;
    if (o == NULL || o->dir == NULL || o->dir[0] == 0 || out == NULL) {
        snprintf(err, errlen, "no data directory given");
        return MAOS_EINTERNAL;
    }

    e = o->read_only ? 0 : mkdir_p(o->dir);
    if (e != 0) {
        snprintf(err, errlen, "cannot create data directory %s: %s", o->dir,
                 strerror(e));
        return e == ENOMEM ? MAOS_EINTERNAL : MAOS_EIO;
    }

    s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return MAOS_EINTERNAL;
    }
    atomic_init(&s->state, MAOSD_STORE_OK);
    atomic_flag_clear(&s->err_claimed);
    atomic_init(&s->err_ready, 0);
    s->sync = o->sync ? 1 : 0;
#ifdef MAOS_FAULT_INJECTION
    rc = fault_setup(s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
#endif
    build_options(s, o);
    rocksdb_options_set_create_if_missing(s->opts, o->create ? 1 : 0);
    rocksdb_options_set_create_if_missing(s->bloom_opts, o->create ? 1 : 0);

    int older_torn = o->create || o->read_only ? 0 : scan_wal_tails(o->dir, rep);
    rc = 0;
    if (o->read_only) {
        if (open_db(s, o->dir, OPEN_READ_ONLY, &rerr)) {
            snprintf(err, errlen, "cannot open the database in %s read-only: %s", o->dir,
                     rerr);
            rocksdb_free(rerr);
            rerr = NULL;
            rc = MAOS_EIO;
        } else {
            fail_store(s, "opened with --read-only: nothing is written");
        }
        goto opened;
    } else if (older_torn && !o->salvage) {
        rep->damaged = 1;
        snprintf(err, errlen, "the write-ahead log in %s is damaged: %s; refusing to "
                 "start (maosd --salvage opens up to the damage)", o->dir, rep->wal);
        rc = MAOS_EIO;
    } else if (open_db(s, o->dir, older_torn ? 2 : 0, &rerr)) {
        rc = maosd_store_map_error(rerr);
        if (rc == MAOS_ECONFLICT) {
            snprintf(err, errlen, "data directory %s is in use by another maosd",
                     o->dir);
        } else if (!o->create && has_prefix(rerr, "Corruption") &&
                   log_dropped(o->dir, rep->wal, sizeof(rep->wal)) > 0) {
            rc = open_past_damaged_wal(s, o, rep, rerr, err, errlen) ? MAOS_EIO : 0;
        } else if (!o->create && o->salvage && is_damage(rerr)) {
            /* MANIFEST or CURRENT gone, a table file missing: rebuild the
             * MANIFEST from the table and WAL files, then open up to any
             * damage. */
            char *rerr2 = NULL;
            if (strstr(rerr, "CURRENT") && repoint_current(o->dir, rep) == 0 &&
                open_db(s, o->dir, 2, &rerr2) == 0) {
                rep->salvaged = 1;
                rc = 0;
                goto opened;
            }
            rocksdb_free(rerr2);
            rerr2 = NULL;
            rocksdb_repair_db(s->opts, o->dir, &rerr2);
            if (!rerr2)
                open_db(s, o->dir, 2, &rerr2);
            if (rerr2) {
                rep->damaged = 1;
                snprintf(err, errlen, "cannot salvage %s: %s (repair: %s)", o->dir,
                         rerr, rerr2);
                rocksdb_free(rerr2);
                rc = MAOS_EIO;
            } else {
                rep->repaired = rep->salvaged = 1;
                appendf(rep->wal, sizeof(rep->wal), "rebuilt by repair after: %s",
                        rerr);
                rc = 0;
            }
        } else {
            rep->damaged = !o->create && is_damage(rerr);
            snprintf(err, errlen, "cannot open database in %s: %s%s", o->dir, rerr,
                     rep->damaged ? "; refusing to start (maosd --salvage tries to "
                                    "open what is left)" : "");
            /* store.h promises ECONFLICT, EIO or EINTERNAL from open. */
            if (rc != MAOS_EIO)
                rc = rep->damaged ? MAOS_EIO : MAOS_EINTERNAL;
        }
        rocksdb_free(rerr);
        rerr = NULL;
    } else if (older_torn) {
        rep->salvaged = 1;
    }
opened:
    if (!rc && !o->read_only)
        rc = journal_start(s, o, rep, err, errlen);
    if (rc) {
        maosd_journal_close(s->journal);
        for (int i = 0; i < MAOSD_CF__COUNT; i++)
            if (s->cf[i])
                rocksdb_column_family_handle_destroy(s->cf[i]);
        if (s->db)
            rocksdb_close(s->db);
        free_handles(s);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void maosd_store_close(maosd_store *s)
{
    char *rerr = NULL;

    if (s == NULL)
        return;
    /* A clean shutdown leaves the WAL on disk whatever the durability
     * setting.  Not in READ_ONLY: a failed fsync is never retried. */
    if (atomic_load(&s->state) == MAOSD_STORE_OK) {
        rocksdb_flush_wal(s->db, 1, &rerr);
        rocksdb_free(rerr); /* nothing left to report it to */
        rerr = NULL;
        /* Flush the memtables too, so the next start has no WAL to replay
         * (measured: first start after a 1M-event burst 1.8 s -> 28 ms;
         * the shutdown takes that time instead, once). */
        /* With them in table files, the journal starts a new, empty lap:
         * nothing to apply at the next start. */
        if (!flush_all(s, &rerr) && s->journal)
            maosd_journal_new_lap(s->journal);
        rocksdb_free(rerr);
    }
    maosd_journal_close(s->journal);
    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        if (s->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(s->cf[i]);
    rocksdb_close(s->db);
    free_handles(s);
    free(s);
}

int maosd_store_state(const maosd_store *s)
{
    return atomic_load(&s->state);
}

void maosd_store_set_read_only(maosd_store *s)
{
    fail_store(s, NULL);
}

const char *maosd_store_last_error(const maosd_store *s)
{
    if (atomic_load_explicit(&s->err_ready, memory_order_acquire))
        return s->err_msg;
    return NULL;
}

/* ---- point reads -------------------------------------------------------- */

int maosd_store_get(maosd_store *s, maosd_cf cf, const void *key, size_t klen,
                    void *val, size_t cap, size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    rocksdb_pinnableslice_t *p;
    const char *v;
    size_t n;
    char *rerr = NULL;

    if (h == NULL)
        return MAOS_EINTERNAL;
    /* Pinned: the value is copied once, from the block cache or memtable
     * straight into the caller's buffer. */
    p = rocksdb_get_pinned_cf(s->db, s->ropts, h, key, klen, &rerr);
    if (rerr != NULL)
        return take_error(rerr);
    if (p == NULL)
        return MAOS_ENOT_FOUND;
    v = rocksdb_pinnableslice_value(p, &n);
    copy_out(v, n, val, cap);
    *vlen = n;
    rocksdb_pinnableslice_destroy(p);
    return 0;
}

int maosd_store_get_buf(maosd_store *s, maosd_cf cf, const void *key,
                        size_t klen, char **buf, size_t *cap, size_t *vlen)
{
    return maosd_snap_get_buf(s, NULL, cf, key, klen, buf, cap, vlen);
}

int maosd_store_get_alloc(maosd_store *s, maosd_cf cf, const void *key,
                          size_t klen, char **val, size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    rocksdb_pinnableslice_t *p;
    const char *v;
    char *copy;
    size_t n;
    char *rerr = NULL;

    if (h == NULL)
        return MAOS_EINTERNAL;
    p = rocksdb_get_pinned_cf(s->db, s->ropts, h, key, klen, &rerr);
    if (rerr != NULL)
        return take_error(rerr);
    if (p == NULL)
        return MAOS_ENOT_FOUND;
    v = rocksdb_pinnableslice_value(p, &n);
    copy = dup_bytes(v, n);
    rocksdb_pinnableslice_destroy(p);
    if (copy == NULL)
        return MAOS_EINTERNAL;
    *val = copy;
    *vlen = n;
    return 0;
}

int maosd_store_get_alloc_mem(maosd_store *s, maosd_cf cf, const void *key,
                              size_t klen, char **val, size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    char *v = NULL;
    size_t n = 0;
    unsigned char found = 0;

    if (h == NULL)
        return MAOS_EINTERNAL;
    /* KeyMayExist reads memory only (the memtables, cached blocks): "no"
     * is certain; "maybe" without the value means a file must be read.
     * (A Get at kBlockCacheTier cannot tell that from an empty value.) */
    /* RocksDB 7.8's C API hands back a value (an empty malloc'ed one)
     * whenever found is set, also when it answers "no" (a key deleted or
     * missing in memory leaves found set): free it on every path. */
    unsigned char may = rocksdb_key_may_exist_cf(s->db, s->ropts, h, key, klen, &v,
                                                 &n, NULL, 0, &found);
    if (!may || !found) {
        rocksdb_free(v);
        return may ? MAOSD_NOT_IN_MEMORY : MAOS_ENOT_FOUND;
    }
    char *copy = dup_bytes(v, n); /* with the NUL maosd_store_get_alloc adds */
    rocksdb_free(v);
    if (copy == NULL)
        return MAOS_EINTERNAL;
    *val = copy;
    *vlen = n;
    return 0;
}

int maosd_store_last(maosd_store *s, maosd_cf cf, void *key, size_t kcap,
                     size_t *klen, char **val, size_t *vlen)
{
    maosd_iter *it = maosd_iter_new(s, cf);
    const char *k, *v;
    size_t kn, vn;
    char *copy = NULL;
    int rc;

    if (it == NULL)
        return MAOS_EINTERNAL;
    maosd_iter_seek_last(it);
    if (!maosd_iter_valid(it)) {
        rc = maosd_iter_status(it);
        maosd_iter_free(it);
        return rc < 0 ? rc : MAOS_ENOT_FOUND;
    }
    k = maosd_iter_key(it, &kn);
    v = maosd_iter_value(it, &vn);
    if (val != NULL) {
        copy = dup_bytes(v, vn);
        if (copy == NULL) {
            maosd_iter_free(it);
            return MAOS_EINTERNAL;
        }
    }
    copy_out(k, kn, key, kcap);
    if (klen != NULL)
        *klen = kn;
    if (val != NULL)
        *val = copy;
    if (vlen != NULL)
        *vlen = vn;
    maosd_iter_free(it);
    return 0;
}

/* ---- write groups ------------------------------------------------------- */

maosd_batch *maosd_batch_new(maosd_store *s)
{
    maosd_batch *b = calloc(1, sizeof *b);

    if (b == NULL)
        return NULL;
    b->s = s;
    b->ov = maosd_overlay_new();
    b->vcap = BATCH_VALS_MIN; /* never NULL: offsets into it are always valid */
    b->vals = malloc(b->vcap);
    if (b->ov == NULL || b->vals == NULL) {
        maosd_batch_free(b);
        return NULL;
    }
    return b;
}

void maosd_batch_free(maosd_batch *b)
{
    if (b == NULL)
        return;
    free(b->vals);
    free(b->marks);
    if (b->out)
        rocksdb_writebatch_destroy(b->out);
    maosd_overlay_free(b->ov);
    free(b->heads);
    free(b);
}

void maosd_batch_clear(maosd_batch *b)
{
    if (b->vcap > (64u << 20) && b->vlen < b->vcap / 4) { /* a rare big group */
        char *p = realloc(b->vals, BATCH_VALS_MIN);
        if (p != NULL) {
            b->vals = p;
            b->vcap = BATCH_VALS_MIN;
        }
    }
    b->vlen = 0;
    b->ops = 0;
    b->nmarks = 0;
    maosd_overlay_clear(b->ov);
    b->poisoned = 0;
}

void maosd_batch_put(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    if (cf_handle(b->s, cf) == NULL) {
        b->poisoned = 1;
        return;
    }
    if (vlen > b->vcap - b->vlen) {
        size_t cap = b->vcap;
        while (cap - b->vlen < vlen)
            cap *= 2;
        char *p = realloc(b->vals, cap);
        if (p == NULL) {
            b->poisoned = 1; /* the put is lost: the batch must not be written */
            return;
        }
        b->vals = p;
        b->vcap = cap;
    }
    if (vlen)
        memcpy(b->vals + b->vlen, val, vlen);
    if (maosd_overlay_set(b->ov, (unsigned)cf, key, klen, 0, b->vlen, vlen))
        b->poisoned = 1; /* reads through it would miss this put */
    b->vlen += vlen;
    b->ops++;
}

void maosd_batch_delete(maosd_batch *b, maosd_cf cf, const void *key, size_t klen)
{
    if (cf_handle(b->s, cf) == NULL) {
        b->poisoned = 1;
        return;
    }
    if (maosd_overlay_set(b->ov, (unsigned)cf, key, klen, 1, 0, 0))
        b->poisoned = 1;
    b->ops++;
}

void maosd_batch_mark(maosd_batch *b)
{
    if (b->nmarks == b->capmarks) {
        size_t cap = b->capmarks ? b->capmarks * 2 : 64;
        batch_mark *m = realloc(b->marks, cap * sizeof *m);
        if (m == NULL) {
            b->poisoned = 1; /* the rollback that pairs with it cannot work */
            return;
        }
        b->marks = m;
        b->capmarks = cap;
    }
    if (maosd_overlay_mark(b->ov)) {
        b->poisoned = 1;
        return;
    }
    b->marks[b->nmarks++] = (batch_mark){b->vlen, b->ops};
}

void maosd_batch_rollback(maosd_batch *b)
{
    /* Pops the latest mark.  Without one, the puts we were asked to
     * discard are still there, so the batch must not be written. */
    if (b->nmarks == 0 || maosd_overlay_rollback(b->ov)) {
        b->poisoned = 1;
        return;
    }
    const batch_mark *m = &b->marks[--b->nmarks];
    b->vlen = m->len; /* the overlay no longer points past it */
    b->ops = m->ops;
}

/* A pending put's value (1), a pending delete (0), or nothing pending for
 * the key (-1): then the database answers. */
static int batch_pending(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                         const char **v, size_t *n)
{
    uint64_t off;
    int r = maosd_overlay_get(b->ov, (unsigned)cf, key, klen, &off, n);
    if (r == 1)
        *v = b->vals + off;
    return r;
}

int maosd_batch_get(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                    void *val, size_t cap, size_t *vlen)
{
    const char *v;
    size_t n;

    if (cf_handle(b->s, cf) == NULL)
        return MAOS_EINTERNAL;
    switch (batch_pending(b, cf, key, klen, &v, &n)) {
    case 1:
        copy_out(v, n, val, cap);
        *vlen = n;
        return 0;
    case 0:
        return MAOS_ENOT_FOUND;
    }
    switch (heads_get(b, cf, key, klen, &v)) {
    case 1:
        copy_out(v, 16, val, cap);
        *vlen = 16;
        return 0;
    case 0:
        return MAOS_ENOT_FOUND;
    }
    int rc = maosd_store_get(b->s, cf, key, klen, val, cap, vlen);
    if (rc == MAOS_ENOT_FOUND)
        heads_put(b, cf, key, klen, NULL, 0);
    else if (rc == 0 && val && cap >= 16)
        heads_put(b, cf, key, klen, val, *vlen);
    return rc;
}

int maosd_batch_get_buf(maosd_batch *b, maosd_cf cf, const void *key,
                        size_t klen, char **buf, size_t *cap, size_t *vlen)
{
    const char *v;
    size_t n;

    if (cf_handle(b->s, cf) == NULL)
        return MAOS_EINTERNAL;
    switch (batch_pending(b, cf, key, klen, &v, &n)) {
    case 1: {
        int rc = copy_grow(v, n, buf, cap);
        if (rc == 0)
            *vlen = n;
        return rc;
    }
    case 0:
        return MAOS_ENOT_FOUND;
    }
    switch (heads_get(b, cf, key, klen, &v)) {
    case 1: {
        int rc = copy_grow(v, 16, buf, cap);
        if (rc == 0)
            *vlen = 16;
        return rc;
    }
    case 0:
        return MAOS_ENOT_FOUND;
    }
    int rc = maosd_store_get_buf(b->s, cf, key, klen, buf, cap, vlen);
    if (rc == MAOS_ENOT_FOUND)
        heads_put(b, cf, key, klen, NULL, 0);
    else if (rc == 0)
        heads_put(b, cf, key, klen, *buf, *vlen);
    return rc;
}

int maosd_batch_count(maosd_batch *b)
{
    return b->ops > INT32_MAX ? INT32_MAX : (int)b->ops;
}

/*
 * The journal's part of a write: the record (a new lap first when it does
 * not fit), synced with sync; then RocksDB with its WAL off.  A group too
 * big for the journal goes to RocksDB's WAL instead, after a new lap, so
 * the journal holds nothing older than it.  1: on to RocksDB's apply
 * (rerr set on failure); or a code to return.
 */
static int journal_write(maosd_store *s, rocksdb_writebatch_t *wb, char **rerr)
{
    size_t n;
    const char *data = rocksdb_writebatch_data(wb, &n);
    int fits = maosd_journal_fits(s->journal, n);
    if (fits != 1 && journal_next_lap(s))
        return MAOS_EREAD_ONLY; /* nothing of this group written */
    if (fits < 0) {
        rocksdb_write(s->db, s->wal_wopts, wb, rerr);
        return 1;
    }
    if (maosd_journal_write(s->journal, data, n, s->sync)) {
        char m[STORE_ERR_MAX];
        snprintf(m, sizeof m, "IO error: writing the journal %s: %s",
                 maosd_journal_path(s->journal),
                 strerror(maosd_journal_errno(s->journal)));
        fail_store(s, m);
        return MAOS_EOUTCOME_UNKNOWN;
    }
#ifdef MAOS_FAULT_INJECTION
    if (fault_journal(s, FJ_KILL_BEFORE_APPLY))
        raise(SIGKILL);
    if (fault_journal(s, FJ_APPLY_FAILS)) { /* as if RocksDB failed it */
        *rerr = strdup("IO error: injected fault after the journal write");
        return 1;
    }
#endif
    rocksdb_write(s->db, s->wopts, wb, rerr);
    if (!*rerr)
        journal_preflush(s);
    return 1;
}

uint64_t maosd_store_data_bytes(maosd_store *s)
{
    uint64_t total = s->journal ? maosd_journal_bytes(s->journal) : 0;
    for (int i = 0; i < MAOSD_CF__COUNT; i++) {
        uint64_t v = 0;
        if (s->cf[i] != NULL &&
            rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.total-sst-files-size", &v) == 0)
            total += v;
    }
    return total;
}

uint64_t maosd_store_journal_lap(const maosd_store *s)
{
    return s->journal ? maosd_journal_lap(s->journal) : 0;
}

/*
 * The group as it is written: every key once, with its last value or its
 * delete, in key order within each column family -- what applying the
 * staged batch in order would leave, read off the overlay (which holds
 * exactly that, rolled-back requests already undone).  Fewer entries
 * (a stream head or a task put several times in a group is written once)
 * and, in key order, each memtable insert starts next to the last one
 * (RocksDB's skiplist keeps the last insert's path), where staged order
 * jumps around.  NULL: out of memory.
 */
static rocksdb_writebatch_t *batch_final(maosd_batch *b)
{
    if (!b->out && !(b->out = rocksdb_writebatch_create()))
        return NULL;
    rocksdb_writebatch_clear(b->out);
    const char *data = b->vals;
    for (unsigned cf = 0; cf < MAOSD_CF__COUNT; cf++) {
        rocksdb_column_family_handle_t *h = cf_handle(b->s, (maosd_cf)cf);
        const uint32_t *idx;
        size_t n;
        if (h == NULL)
            continue;
        if (maosd_overlay_sorted(b->ov, cf, &idx, &n))
            return NULL;
        for (size_t i = 0; i < n; i++) {
            const char *k;
            size_t kl, vl;
            uint64_t off;
            int st = maosd_overlay_entry(b->ov, idx[i], &k, &kl, &off, &vl);
            if (st == 1)
                rocksdb_writebatch_put_cf(b->out, h, k, kl, data + off, vl);
            else if (st == 0)
                rocksdb_writebatch_delete_cf(b->out, h, k, kl);
        }
    }
    return b->out;
}

/* After a group reached the disk: its heads (the overlay's 'h' keys, last
 * value or delete each) are the committed ones now. */
static void heads_commit(maosd_batch *b)
{
    const uint32_t *idx;
    size_t n;
    if (!b->heads || maosd_overlay_sorted(b->ov, MAOSD_CF_STREAMS, &idx, &n)) {
        free(b->heads); /* cannot tell which changed: start again */
        b->heads = NULL;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kl, vl;
        uint64_t off;
        int st = maosd_overlay_entry(b->ov, idx[i], &k, &kl, &off, &vl);
        if (kl && k[0] == 'h' && (st == 0 || st == 1))
            heads_put(b, MAOSD_CF_STREAMS, k, kl, st == 1 ? b->vals + off : NULL, vl);
    }
}

static int store_write(maosd_store *s, maosd_batch *b);

int maosd_store_write(maosd_store *s, maosd_batch *b)
{
    int rc = store_write(s, b);
    if (rc == 0) {
        heads_commit(b);
    } else { /* whatever part of it was written: forget them all */
        free(b->heads);
        b->heads = NULL;
    }
    return rc;
}

static int store_write(maosd_store *s, maosd_batch *b)
{
    char *rerr = NULL;

#ifdef MAOS_FAULT_INJECTION
    int inject = fault_write_fails(s);
#endif
    if (atomic_load(&s->state) != MAOSD_STORE_OK)
        return MAOS_EREAD_ONLY;
    if (b->poisoned)
        return MAOS_EINTERNAL;
#ifdef MAOS_FAULT_INJECTION
    if (inject) {
        fail_store(s, "IO error: injected fault");
        return MAOS_EOUTCOME_UNKNOWN;
    }
#endif
    rocksdb_writebatch_t *wb = batch_final(b);
    if (wb == NULL)
        return MAOS_ENOMEM; /* refused before anything was written */
    if (s->journal) {
        int rc = journal_write(s, wb, &rerr);
        if (rc <= 0)
            return rc;
    } else {
        rocksdb_write(s->db, s->wopts, wb, &rerr);
    }
    if (rerr != NULL) {
        /* Whatever the cause, the outcome of this group is unknown to the
         * writers (it may be in the journal or the WAL, and appear after a
         * restart): stop writing for good. */
        fail_store(s, rerr);
        rocksdb_free(rerr);
        return MAOS_EOUTCOME_UNKNOWN;
    }
    return 0;
}

/* ---- iterators ---------------------------------------------------------- */

struct maosd_snap {
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ropts;
};

maosd_snap *maosd_snap_new(maosd_store *s)
{
    maosd_snap *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return NULL;
    sn->ropts = rocksdb_readoptions_create();
    sn->snap = rocksdb_create_snapshot(s->db);
    if (!sn->ropts || !sn->snap) {
        maosd_snap_free(s, sn);
        return NULL;
    }
    rocksdb_readoptions_set_snapshot(sn->ropts, sn->snap);
    return sn;
}

void maosd_snap_free(maosd_store *s, maosd_snap *sn)
{
    if (!sn)
        return;
    if (sn->snap)
        rocksdb_release_snapshot(s->db, sn->snap);
    if (sn->ropts)
        rocksdb_readoptions_destroy(sn->ropts);
    free(sn);
}

int maosd_snap_get_buf(maosd_store *s, const maosd_snap *sn, maosd_cf cf,
                       const void *key, size_t klen, char **buf, size_t *cap,
                       size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    const char *v;
    size_t n;
    char *rerr = NULL;

    if (h == NULL)
        return MAOS_EINTERNAL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned_cf(
        s->db, sn ? sn->ropts : s->ropts, h, key, klen, &rerr);
    if (rerr != NULL)
        return take_error(rerr);
    if (p == NULL)
        return MAOS_ENOT_FOUND;
    v = rocksdb_pinnableslice_value(p, &n);
    int rc = copy_grow(v, n, buf, cap);
    rocksdb_pinnableslice_destroy(p);
    if (rc == 0)
        *vlen = n;
    return rc;
}

maosd_iter *maosd_iter_new(maosd_store *s, maosd_cf cf)
{
    return maosd_iter_new_at(s, cf, NULL);
}

maosd_iter *maosd_iter_new_at(maosd_store *s, maosd_cf cf, const maosd_snap *sn)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    maosd_iter *it;

    if (h == NULL)
        return NULL;
    it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    /* A RocksDB iterator reads one implicit snapshot taken here (or the
     * explicit one). */
    it->ropts = NULL;
    it->upper = NULL;
    it->it = rocksdb_create_iterator_cf(s->db, sn ? sn->ropts : s->ropts, h);
    if (it->it == NULL) {
        free(it);
        return NULL;
    }
    return it;
}

/* Read options that stop iterators at upper (exclusive): a scan of one
 * key range then never steps over the tombstones of the next range.
 * NULL ropts (and 0) without a bound; -1 out of memory. */
static int bound_opts(maosd_iter *it, const void *upper, size_t ulen)
{
    it->ropts = NULL;
    it->upper = NULL;
    if (!upper)
        return 0;
    it->upper = malloc(ulen ? ulen : 1);
    it->ropts = rocksdb_readoptions_create();
    if (!it->upper || !it->ropts) {
        free(it->upper);
        if (it->ropts)
            rocksdb_readoptions_destroy(it->ropts);
        return -1;
    }
    memcpy(it->upper, upper, ulen);
    rocksdb_readoptions_set_fill_cache(it->ropts, 1);
    rocksdb_readoptions_set_iterate_upper_bound(it->ropts, it->upper, ulen);
    return 0;
}

maosd_iter *maosd_iter_new_bounded(maosd_store *s, maosd_cf cf, const void *upper,
                                   size_t ulen)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    if (h == NULL)
        return NULL;
    maosd_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    if (bound_opts(it, upper, ulen)) {
        free(it);
        return NULL;
    }
    it->it = rocksdb_create_iterator_cf(s->db, it->ropts ? it->ropts : s->ropts, h);
    if (it->it == NULL) {
        maosd_iter_free(it);
        return NULL;
    }
    return it;
}

maosd_iter *maosd_batch_iter_new(maosd_batch *b, maosd_cf cf, const void *upper,
                                 size_t ulen)
{
    rocksdb_column_family_handle_t *h = cf_handle(b->s, cf);
    const uint32_t *d;
    size_t dn;
    if (h == NULL || maosd_overlay_sorted(b->ov, (unsigned)cf, &d, &dn))
        return NULL;
    maosd_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    if (bound_opts(it, upper, ulen)) {
        free(it);
        return NULL;
    }
    it->it = rocksdb_create_iterator_cf(b->s->db, it->ropts ? it->ropts : b->s->ropts, h);
    if (it->it == NULL) {
        maosd_iter_free(it);
        return NULL;
    }
    if (upper) { /* the overlay's keys below upper: d[0..dn) */
        size_t lo = 0, hi = dn;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const char *k;
            size_t kn;
            uint64_t off;
            size_t vn;
            maosd_overlay_entry(b->ov, d[mid], &k, &kn, &off, &vn);
            if (maosd_overlay_keycmp(k, kn, upper, ulen) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        dn = lo;
    }
    it->b = b;
    it->version = maosd_overlay_version(b->ov);
    it->d = d;
    it->dn = dn;
    it->di = -1;
    it->dir = 1;
    it->cur = CUR_NONE;
    return it;
}

void maosd_iter_free(maosd_iter *it)
{
    if (it == NULL)
        return;
    if (it->it)
        rocksdb_iter_destroy(it->it);
    if (it->ropts)
        rocksdb_readoptions_destroy(it->ropts);
    free(it->upper);
    free(it);
}

/* ---- the merge of a batch iterator ---------------------------------------
 *
 * Both parts sit at or past the current key in the direction of travel;
 * settle() picks the nearer one, lets an overlay key shadow the database
 * key of the same bytes, and steps over deletes (with the database key
 * they hide) and over overlay keys whose writes were all rolled back.
 * A change of direction re-seeks both parts to the current key. */

static int m_stale(maosd_iter *it)
{
    if (!it->err && maosd_overlay_version(it->b->ov) != it->version) {
        it->err = MAOS_EINTERNAL; /* the batch changed under it */
        maosd_store_corrupt("a batch iterator was used after its batch changed");
    }
    if (it->err)
        it->cur = CUR_NONE;
    return it->err != 0;
}

static int d_valid(const maosd_iter *it)
{
    return it->di >= 0 && (size_t)it->di < it->dn;
}

/* State of the overlay entry at di (1 put, 0 delete, -1 absent); its key. */
static int d_entry(const maosd_iter *it, const char **k, size_t *kn, uint64_t *off,
                   size_t *vn)
{
    return maosd_overlay_entry(it->b->ov, it->d[it->di], k, kn, off, vn);
}

/* The database part is done: at its end, or stopped by an error. */
static int base_done(maosd_iter *it)
{
    if (rocksdb_iter_valid(it->it))
        return 0;
    char *rerr = NULL;
    rocksdb_iter_get_error(it->it, &rerr);
    if (rerr)
        it->err = take_error(rerr);
    return 1;
}

static void settle(maosd_iter *it)
{
    int dir = it->dir;
    it->eq = 0;
    for (;;) {
        const char *k = NULL, *bk;
        size_t kn = 0, bkn, vn;
        uint64_t off;
        int st = -1;
        while (d_valid(it) && (st = d_entry(it, &k, &kn, &off, &vn)) < 0)
            it->di += dir;
        int bdone = base_done(it);
        if (it->err) {
            it->cur = CUR_NONE;
            return;
        }
        if (!d_valid(it)) {
            it->cur = bdone ? CUR_NONE : CUR_BASE;
            return;
        }
        int c = 1; /* > 0: the overlay key comes first in this direction */
        if (!bdone) {
            bk = rocksdb_iter_key(it->it, &bkn);
            c = maosd_overlay_keycmp(bk, bkn, k, kn) * dir;
            if (c < 0) {
                it->cur = CUR_BASE;
                return;
            }
        }
        if (st == 0) { /* a delete: hides the database key of its bytes */
            if (c == 0)
                dir > 0 ? rocksdb_iter_next(it->it) : rocksdb_iter_prev(it->it);
            it->di += dir;
            continue;
        }
        it->cur = CUR_DELTA;
        it->eq = c == 0;
        return;
    }
}

static void m_seek(maosd_iter *it, const void *key, size_t klen, int dir)
{
    size_t lo = 0, hi = it->dn;
    if (m_stale(it))
        return;
    /* forward: the first overlay key >= key; backward: the last <= key */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k;
        size_t kn, vn;
        uint64_t off;
        it->di = (ptrdiff_t)mid;
        d_entry(it, &k, &kn, &off, &vn);
        int c = maosd_overlay_keycmp(k, kn, key, klen);
        if (dir > 0 ? c < 0 : c <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    it->di = dir > 0 ? (ptrdiff_t)lo : (ptrdiff_t)lo - 1;
    it->dir = dir;
    if (dir > 0)
        rocksdb_iter_seek(it->it, key, klen);
    else
        rocksdb_iter_seek_for_prev(it->it, key, klen);
    settle(it);
}

static void m_step(maosd_iter *it, int dir)
{
    if (m_stale(it) || it->cur == CUR_NONE)
        return;
    if (it->dir != dir) { /* turn round: both parts to the current key */
        size_t kn;
        const char *k = maosd_iter_key(it, &kn);
        char *copy = dup_bytes(k, kn);
        if (!copy) {
            it->err = MAOS_EINTERNAL;
            it->cur = CUR_NONE;
            return;
        }
        m_seek(it, copy, kn, dir); /* lands on it: it is visible */
        free(copy);
        if (it->cur == CUR_NONE)
            return;
    }
    if (it->cur == CUR_BASE || it->eq)
        dir > 0 ? rocksdb_iter_next(it->it) : rocksdb_iter_prev(it->it);
    if (it->cur == CUR_DELTA)
        it->di += dir;
    settle(it);
}

/* ---- iterator calls ------------------------------------------------------ */

void maosd_iter_seek(maosd_iter *it, const void *key, size_t klen)
{
    if (it->b)
        m_seek(it, key, klen, 1);
    else
        rocksdb_iter_seek(it->it, key, klen);
}

void maosd_iter_seek_prev(maosd_iter *it, const void *key, size_t klen)
{
    if (it->b)
        m_seek(it, key, klen, -1);
    else
        rocksdb_iter_seek_for_prev(it->it, key, klen);
}

void maosd_iter_seek_first(maosd_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
    if (it->b && !m_stale(it)) {
        it->di = 0;
        it->dir = 1;
        settle(it);
    }
}

void maosd_iter_seek_last(maosd_iter *it)
{
    rocksdb_iter_seek_to_last(it->it);
    if (it->b && !m_stale(it)) {
        it->di = (ptrdiff_t)it->dn - 1;
        it->dir = -1;
        settle(it);
    }
}

int maosd_iter_valid(const maosd_iter *it)
{
    if (it->b)
        return it->cur != CUR_NONE &&
               maosd_overlay_version(it->b->ov) == it->version;
    return rocksdb_iter_valid(it->it) ? 1 : 0;
}

void maosd_iter_next(maosd_iter *it)
{
    if (it->b)
        m_step(it, 1);
    else if (rocksdb_iter_valid(it->it))
        rocksdb_iter_next(it->it);
}

void maosd_iter_prev(maosd_iter *it)
{
    if (it->b)
        m_step(it, -1);
    else if (rocksdb_iter_valid(it->it))
        rocksdb_iter_prev(it->it);
}

const char *maosd_iter_key(const maosd_iter *it, size_t *klen)
{
    if (!maosd_iter_valid(it)) {
        *klen = 0;
        return NULL;
    }
    if (it->b && it->cur == CUR_DELTA) {
        const char *k;
        uint64_t off;
        size_t vn;
        d_entry(it, &k, klen, &off, &vn);
        return k;
    }
    return rocksdb_iter_key(it->it, klen);
}

const char *maosd_iter_value(const maosd_iter *it, size_t *vlen)
{
    if (!maosd_iter_valid(it)) {
        *vlen = 0;
        return NULL;
    }
    if (it->b && it->cur == CUR_DELTA) {
        const char *k;
        size_t kn;
        uint64_t off;
        d_entry(it, &k, &kn, &off, vlen);
        return it->b->vals + off;
    }
    return rocksdb_iter_value(it->it, vlen);
}

int maosd_iter_status(const maosd_iter *it)
{
    char *rerr = NULL;

    if (it->b && it->err)
        return it->err;
    if (it->b && maosd_overlay_version(it->b->ov) != it->version)
        return MAOS_EINTERNAL;
    rocksdb_iter_get_error(it->it, &rerr);
    return take_error(rerr);
}
