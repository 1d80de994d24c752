/*
 * daemon/store.c -- store.h on RocksDB (the only file that calls rocksdb_*).
 *
 * Responsibilities
 *  - Open one RocksDB instance with every column family of maosd_cf, in
 *    enum order, creating the directory (0700), the database and missing
 *    column families as needed.  Opening never scans: no iteration, no
 *    column family listing, no loading of table statistics.
 *  - Turn RocksDB's error strings into maos codes in one pure function
 *    (maosd_store_map_error); no RocksDB type or string format leaks out
 *    except the verbatim message kept for maosd_store_last_error.
 *  - Keep the sticky READ_ONLY state of STYLE.md 14.
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
 *  - A maosd_batch is a WriteBatchWithIndex with overwrite_key=1, so reads
 *    through it see the latest pending put of a key.  A batch whose
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

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <rocksdb/c.h>

#define STORE_DEFAULT_CACHE_BYTES ((size_t)32 << 20)
#define STORE_WRITE_BUFFER_BYTES ((size_t)16 << 20)
/* Cap on all memtables together: 7 CFs x 16 MiB x 2 would be 224 MiB. */
#define STORE_DB_WRITE_BUFFER_BYTES ((size_t)64 << 20)
/* Rarely written CFs (sessions, agents, ...) would otherwise pin old WAL
 * files forever; past this size RocksDB flushes them so WALs can go. */
#define STORE_MAX_TOTAL_WAL_BYTES ((uint64_t)128 << 20)
#define STORE_MAX_OPEN_FILES 512
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
    [MAOSD_CF_QUEUES] = "queues",
};

struct maosd_store {
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf[MAOSD_CF__COUNT];
    rocksdb_options_t *opts;       /* DB options; also meta/events/tables */
    rocksdb_options_t *bloom_opts; /* streams and ids: + bloom filter */
    rocksdb_cache_t *cache;        /* one LRU block cache for every CF */
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    int sync;
    atomic_int state;            /* enum maosd_store_state */
    atomic_flag err_claimed;     /* first failing writer owns err_msg */
    atomic_int err_ready;        /* err_msg complete and immutable */
    char err_msg[STORE_ERR_MAX]; /* first RocksDB error, verbatim */
#ifdef MAOS_FAULT_INJECTION
    long long fault_fail_after; /* -1: off */
    atomic_llong fault_writes;  /* maosd_store_write calls so far */
#endif
};

struct maosd_batch {
    maosd_store *s;
    rocksdb_writebatch_wi_t *wb;
    int poisoned;
};

struct maosd_iter {
    rocksdb_iterator_t *it;
};

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

/* Map and free a RocksDB error string (NULL: no error, 0). */
static int take_error(char *err)
{
    int rc = maosd_store_map_error(err);
    rocksdb_free(err);
    return rc;
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
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_set_write_buffer_size(s->opts, STORE_WRITE_BUFFER_BYTES);
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
}

#ifdef MAOS_FAULT_INJECTION
static int fault_setup(maosd_store *s, char *err, size_t errlen)
{
    const char *v = getenv("MAOS_FAULT_WRITE_FAIL_AFTER");
    char *end;
    long long n;

    s->fault_fail_after = -1;
    atomic_init(&s->fault_writes, 0);
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
        return MAOS_EIO;
    /* Status::ToString spells these "Result incomplete: ", "Resource
     * busy: " and "Operation failed. Try again.: "; the bare code names
     * are accepted too. */
    if (has_prefix(e, "Result incomplete") || has_prefix(e, "Incomplete") ||
        has_prefix(e, "Resource busy") || has_prefix(e, "Busy") ||
        has_prefix(e, "Operation failed. Try again") || has_prefix(e, "TryAgain"))
        return MAOS_EOVERLOADED;
    return MAOS_EINTERNAL;
}

int maosd_store_open(const maosd_store_opts *o, maosd_store **out, char *err,
                     size_t errlen)
{
    const rocksdb_options_t *cf_opts[MAOSD_CF__COUNT];
    rocksdb_column_family_handle_t *handles[MAOSD_CF__COUNT] = {0};
    maosd_store *s;
    char *rerr = NULL;
    char dummy[1];
    int e, rc;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    if (o == NULL || o->dir == NULL || o->dir[0] == 0 || out == NULL) {
        snprintf(err, errlen, "no data directory given");
        return MAOS_EINTERNAL;
    }

    e = mkdir_p(o->dir);
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

    for (int i = 0; i < MAOSD_CF__COUNT; i++)
        cf_opts[i] = (i == MAOSD_CF_STREAMS || i == MAOSD_CF_IDS) ? s->bloom_opts
                                                                  : s->opts;
    s->db = rocksdb_open_column_families(s->opts, o->dir, MAOSD_CF__COUNT,
                                         cf_names, cf_opts, handles, &rerr);
    if (rerr != NULL || s->db == NULL) {
        rc = maosd_store_map_error(rerr);
        if (rc == MAOS_ECONFLICT) {
            snprintf(err, errlen, "data directory %s is in use by another maosd",
                     o->dir);
        } else {
            snprintf(err, errlen, "cannot open database in %s: %s", o->dir,
                     rerr ? rerr : "unknown error");
            /* store.h promises ECONFLICT, EIO or EINTERNAL from open. */
            if (rc != MAOS_EIO)
                rc = MAOS_EINTERNAL;
        }
        rocksdb_free(rerr);
        free_handles(s);
        free(s);
        return rc;
    }
    memcpy(s->cf, handles, sizeof s->cf);
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
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        for (int i = 0; i < MAOSD_CF__COUNT && !rerr; i++)
            if (s->cf[i] != NULL)
                rocksdb_flush_cf(s->db, fo, s->cf[i], &rerr);
        rocksdb_free(rerr);
        rocksdb_flushoptions_destroy(fo);
    }
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
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    const char *v;
    size_t n;
    char *rerr = NULL;

    if (h == NULL)
        return MAOS_EINTERNAL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->ropts, h, key, klen, &rerr);
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
    /* overwrite_key=1: the index keeps only the latest put of a key, which
     * is what a read of our own pending writes must see. */
    b->wb = rocksdb_writebatch_wi_create(0, 1);
    if (b->wb == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

void maosd_batch_free(maosd_batch *b)
{
    if (b == NULL)
        return;
    rocksdb_writebatch_wi_destroy(b->wb);
    free(b);
}

void maosd_batch_clear(maosd_batch *b)
{
    rocksdb_writebatch_wi_clear(b->wb); /* also drops every save point */
    b->poisoned = 0;
}

void maosd_batch_put(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(b->s, cf);

    if (h == NULL) {
        b->poisoned = 1;
        return;
    }
    rocksdb_writebatch_wi_put_cf(b->wb, h, key, klen, val, vlen);
}

void maosd_batch_mark(maosd_batch *b)
{
    rocksdb_writebatch_wi_set_save_point(b->wb);
}

void maosd_batch_rollback(maosd_batch *b)
{
    char *rerr = NULL;

    /* Pops the latest mark.  Fails only when there is no mark; then the
     * puts we were asked to discard are still there, so the batch must
     * not be written. */
    rocksdb_writebatch_wi_rollback_to_save_point(b->wb, &rerr);
    if (rerr != NULL) {
        b->poisoned = 1;
        rocksdb_free(rerr);
    }
}

int maosd_batch_get(maosd_batch *b, maosd_cf cf, const void *key, size_t klen,
                    void *val, size_t cap, size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(b->s, cf);
    char *rerr = NULL;
    char *v;
    size_t n = 0;

    if (h == NULL)
        return MAOS_EINTERNAL;
    /* The C API copies the value into a malloc'ed buffer (no pinned
     * variant for batches in 7.8); NULL without error is "not found". */
    v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b->wb, b->s->db, b->s->ropts,
                                                       h, key, klen, &n, &rerr);
    if (rerr != NULL) {
        rocksdb_free(v);
        return take_error(rerr);
    }
    if (v == NULL)
        return MAOS_ENOT_FOUND;
    copy_out(v, n, val, cap);
    *vlen = n;
    rocksdb_free(v);
    return 0;
}

int maosd_batch_get_buf(maosd_batch *b, maosd_cf cf, const void *key,
                        size_t klen, char **buf, size_t *cap, size_t *vlen)
{
    rocksdb_column_family_handle_t *h = cf_handle(b->s, cf);
    char *rerr = NULL;
    size_t n = 0;

    if (h == NULL)
        return MAOS_EINTERNAL;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        b->wb, b->s->db, b->s->ropts, h, key, klen, &n, &rerr);
    if (rerr != NULL) {
        rocksdb_free(v);
        return take_error(rerr);
    }
    if (v == NULL)
        return MAOS_ENOT_FOUND;
    int rc = copy_grow(v, n, buf, cap);
    rocksdb_free(v);
    if (rc == 0)
        *vlen = n;
    return rc;
}

int maosd_batch_count(maosd_batch *b)
{
    return rocksdb_writebatch_wi_count(b->wb);
}

int maosd_store_write(maosd_store *s, maosd_batch *b)
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
        return MAOS_EREAD_ONLY;
    }
#endif
    rocksdb_write_writebatch_wi(s->db, s->wopts, b->wb, &rerr);
    if (rerr != NULL) {
        /* Whatever the cause, the outcome of this group is unknown to the
         * writers and the WAL may be damaged: stop writing for good. */
        fail_store(s, rerr);
        rocksdb_free(rerr);
        return MAOS_EREAD_ONLY;
    }
    return 0;
}

/* ---- iterators ---------------------------------------------------------- */

maosd_iter *maosd_iter_new(maosd_store *s, maosd_cf cf)
{
    rocksdb_column_family_handle_t *h = cf_handle(s, cf);
    maosd_iter *it;

    if (h == NULL)
        return NULL;
    it = malloc(sizeof *it);
    if (it == NULL)
        return NULL;
    /* A RocksDB iterator reads one implicit snapshot taken here. */
    it->it = rocksdb_create_iterator_cf(s->db, s->ropts, h);
    if (it->it == NULL) {
        free(it);
        return NULL;
    }
    return it;
}

void maosd_iter_free(maosd_iter *it)
{
    if (it == NULL)
        return;
    rocksdb_iter_destroy(it->it);
    free(it);
}

void maosd_iter_seek(maosd_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void maosd_iter_seek_prev(maosd_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek_for_prev(it->it, key, klen);
}

void maosd_iter_seek_first(maosd_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
}

void maosd_iter_seek_last(maosd_iter *it)
{
    rocksdb_iter_seek_to_last(it->it);
}

int maosd_iter_valid(const maosd_iter *it)
{
    return rocksdb_iter_valid(it->it) ? 1 : 0;
}

void maosd_iter_next(maosd_iter *it)
{
    if (rocksdb_iter_valid(it->it))
        rocksdb_iter_next(it->it);
}

void maosd_iter_prev(maosd_iter *it)
{
    if (rocksdb_iter_valid(it->it))
        rocksdb_iter_prev(it->it);
}

const char *maosd_iter_key(const maosd_iter *it, size_t *klen)
{
    if (!rocksdb_iter_valid(it->it)) {
        *klen = 0;
        return NULL;
    }
    return rocksdb_iter_key(it->it, klen);
}

const char *maosd_iter_value(const maosd_iter *it, size_t *vlen)
{
    if (!rocksdb_iter_valid(it->it)) {
        *vlen = 0;
        return NULL;
    }
    return rocksdb_iter_value(it->it, vlen);
}

int maosd_iter_status(const maosd_iter *it)
{
    char *rerr = NULL;

    rocksdb_iter_get_error(it->it, &rerr);
    return take_error(rerr);
}
