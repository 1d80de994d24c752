/*
 * tests/unit/test_store.c -- daemon/store.c against a real RocksDB.
 *
 * Each test gets a fresh mkdtemp directory under /tmp (setup) and removes
 * it (teardown), so tests are independent and leave nothing behind.
 * What is covered: reopen keeps data, the seven column families exist and
 * are independent, reads through a batch see pending writes that the
 * database does not, mark/rollback (nested, delete then put), the batch
 * iterator's merge of pending writes over the database (shadowing,
 * hiding, bounds, both directions) and a randomized differential test of
 * the batch against a model, iterator order over keys.h layouts,
 * maosd_store_last, the lock conflict (same process and another process),
 * maosd_store_map_error, the sticky READ_ONLY state (and, in builds with
 * -DMAOS_FAULT_INJECTION, the injected write failure).
 *
 * The "another process" case re-executes this binary with
 * --try-open DIR, which prints "<rc> <message>" and exits.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keys.h"
#include "store.h"

/* ---- fixtures ----------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
} fixture;

static int setup_dir(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/maos-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown_dir(void **state)
{
    fixture *f = *state;
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

    free(f);
    return rc;
}

static maosd_store *open_store(const char *dir)
{
    maosd_store_opts o = {.dir = dir, .sync = 0, .block_cache_bytes = 0, .create = 1};
    maosd_store *s = NULL;
    char err[256] = "";
    int rc = maosd_store_open(&o, &s, NULL, err, sizeof err);

    if (rc != 0)
        print_error("open %s: %d %s\n", dir, rc, err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* One batch, one write. */
static int put1(maosd_store *s, maosd_cf cf, const void *k, size_t klen,
                const char *v)
{
    maosd_batch *b = maosd_batch_new(s);
    int rc;

    assert_non_null(b);
    maosd_batch_put(b, cf, k, klen, v, strlen(v));
    rc = maosd_store_write(s, b);
    maosd_batch_free(b);
    return rc;
}

/* Value of k as a NUL-terminated string in buf, or the error code. */
static int get_str(maosd_store *s, maosd_cf cf, const void *k, size_t klen,
                   char *buf, size_t cap)
{
    size_t n = 0;
    int rc = maosd_store_get(s, cf, k, klen, buf, cap - 1, &n);

    if (rc == 0)
        buf[n < cap - 1 ? n : cap - 1] = 0;
    return rc;
}

static int batch_get_str(maosd_batch *b, maosd_cf cf, const char *k, char *buf,
                         size_t cap)
{
    size_t n = 0;
    int rc = maosd_batch_get(b, cf, k, strlen(k), buf, cap - 1, &n);

    if (rc == 0)
        buf[n < cap - 1 ? n : cap - 1] = 0;
    return rc;
}

static maos_slice sl(const char *s)
{
    maos_slice x = {s, (uint32_t)strlen(s)};
    return x;
}

/* ---- tests -------------------------------------------------------------- */

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    char key[8], buf[64];
    maosd_store *s = open_store(f->dir);

    maosd_key_event(key, 42);
    assert_int_equal(put1(s, MAOSD_CF_EVENTS, key, 8, "event-42"), 0);
    assert_int_equal(put1(s, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                          strlen(MAOSD_META_LOG_HEAD), "head"),
                     0);
    maosd_store_close(s);

    s = open_store(f->dir);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, key, 8, buf, sizeof buf), 0);
    assert_string_equal(buf, "event-42");
    assert_int_equal(get_str(s, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                             strlen(MAOSD_META_LOG_HEAD), buf, sizeof buf),
                     0);
    assert_string_equal(buf, "head");
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_OK);
    assert_null(maosd_store_last_error(s));
    maosd_store_close(s);
    maosd_store_close(NULL); /* destructors accept NULL */
}

static void test_open_creates_dir_0700(void **state)
{
    fixture *f = *state;
    char dir[128];
    struct stat st;
    maosd_store_opts o = {.dir = dir, .sync = 1, .block_cache_bytes = 1 << 20, .create = 1};
    maosd_store *s = NULL;
    char err[256];

    snprintf(dir, sizeof dir, "%s/a/b/data", f->dir);
    assert_int_equal(maosd_store_open(&o, &s, NULL, err, sizeof err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(dir, sizeof dir, "%s/a", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(put1(s, MAOSD_CF_IDS, "k", 1, "v"), 0); /* sync write */
    maosd_store_close(s);

    /* A file where the directory should be: an error, *out untouched. */
    snprintf(dir, sizeof dir, "%s/a/b/data/CURRENT", f->dir);
    s = (maosd_store *)&st;
    assert_int_equal(maosd_store_open(&o, &s, NULL, err, sizeof err), MAOS_EIO);
    assert_ptr_equal(s, (maosd_store *)&st);
    assert_non_null(strstr(err, "Not a directory"));
}

static void test_cfs_exist_and_independent(void **state)
{
    fixture *f = *state;
    char buf[64], want[64];
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);

    assert_non_null(b);
    for (int cf = 0; cf < MAOSD_CF__COUNT; cf++) {
        snprintf(want, sizeof want, "value-in-cf-%d", cf);
        maosd_batch_put(b, (maosd_cf)cf, "same", 4, want, strlen(want));
    }
    maosd_batch_put(b, MAOSD_CF_QUEUES, "only-queues", 11, "q", 1);
    assert_int_equal(maosd_batch_count(b), MAOSD_CF__COUNT + 1);
    assert_int_equal(maosd_store_write(s, b), 0);
    maosd_batch_free(b);
    maosd_store_close(s);

    /* Reopen: every column family came back with its own value. */
    s = open_store(f->dir);
    for (int cf = 0; cf < MAOSD_CF__COUNT; cf++) {
        snprintf(want, sizeof want, "value-in-cf-%d", cf);
        assert_int_equal(get_str(s, (maosd_cf)cf, "same", 4, buf, sizeof buf), 0);
        assert_string_equal(buf, want);
        if (cf != MAOSD_CF_QUEUES)
            assert_int_equal(get_str(s, (maosd_cf)cf, "only-queues", 11, buf,
                                     sizeof buf),
                             MAOS_ENOT_FOUND);
    }
    assert_int_equal(get_str(s, MAOSD_CF_QUEUES, "only-queues", 11, buf, sizeof buf), 0);
    assert_string_equal(buf, "q");
    /* An out-of-range family is refused, not a crash. */
    assert_int_equal(get_str(s, MAOSD_CF__COUNT, "same", 4, buf, sizeof buf),
                     MAOS_EINTERNAL);
    assert_null(maosd_iter_new(s, MAOSD_CF__COUNT));
    maosd_store_close(s);
}

static void test_get_copies_and_alloc(void **state)
{
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    char small[4] = {'x', 'x', 'x', 'x'};
    char *v = NULL;
    size_t n = 99;

    assert_int_equal(put1(s, MAOSD_CF_STREAMS, "hlong", 5, "0123456789"), 0);
    assert_int_equal(put1(s, MAOSD_CF_STREAMS, "hempty", 6, ""), 0);

    /* At most cap bytes copied; *vlen is the full length. */
    assert_int_equal(maosd_store_get(s, MAOSD_CF_STREAMS, "hlong", 5, small, 3, &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(small, "012x", 4);
    /* cap 0: an existence check with the length. */
    n = 0;
    assert_int_equal(maosd_store_get(s, MAOSD_CF_STREAMS, "hlong", 5, NULL, 0, &n), 0);
    assert_int_equal(n, 10);
    /* An empty value is found, with length 0. */
    n = 99;
    assert_int_equal(maosd_store_get(s, MAOSD_CF_STREAMS, "hempty", 6, small, 4, &n), 0);
    assert_int_equal(n, 0);
    /* Not found leaves the out-parameter alone. */
    n = 77;
    assert_int_equal(maosd_store_get(s, MAOSD_CF_STREAMS, "hnone", 5, small, 4, &n),
                     MAOS_ENOT_FOUND);
    assert_int_equal(n, 77);

    assert_int_equal(maosd_store_get_alloc(s, MAOSD_CF_STREAMS, "hlong", 5, &v, &n), 0);
    assert_int_equal(n, 10);
    assert_string_equal(v, "0123456789"); /* NUL-terminated */
    free(v);
    v = NULL;
    assert_int_equal(maosd_store_get_alloc(s, MAOSD_CF_STREAMS, "hempty", 6, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(v, "");
    free(v);
    v = NULL;
    assert_int_equal(maosd_store_get_alloc(s, MAOSD_CF_STREAMS, "hnone", 5, &v, &n),
                     MAOS_ENOT_FOUND);
    assert_null(v);
    maosd_store_close(s);
}

static void test_batch_reads_pending_writes(void **state)
{
    fixture *f = *state;
    char buf[64];
    maosd_store *s = open_store(f->dir);
    maosd_batch *b;

    assert_int_equal(put1(s, MAOSD_CF_STREAMS, "hdb", 3, "from-db"), 0);

    b = maosd_batch_new(s);
    assert_non_null(b);
    assert_int_equal(maosd_batch_count(b), 0);
    maosd_batch_put(b, MAOSD_CF_STREAMS, "hnew", 4, "v1", 2);
    maosd_batch_put(b, MAOSD_CF_STREAMS, "hnew", 4, "v2", 2); /* overwrite */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "hdb", 3, "shadow", 6);
    assert_int_equal(maosd_batch_count(b), 3);

    /* The batch answers with its latest pending put ... */
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "hnew", buf, sizeof buf), 0);
    assert_string_equal(buf, "v2");
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "hdb", buf, sizeof buf), 0);
    assert_string_equal(buf, "shadow");
    /* ... falls through to the database for keys it does not hold ... */
    maosd_batch_put(b, MAOSD_CF_IDS, "other-cf", 8, "x", 1);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "other-cf", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "hmissing", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    /* ... while the database does not see them before the write. */
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "hnew", 4, buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "hdb", 3, buf, sizeof buf), 0);
    assert_string_equal(buf, "from-db");

    assert_int_equal(maosd_store_write(s, b), 0);
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "hnew", 4, buf, sizeof buf), 0);
    assert_string_equal(buf, "v2");
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "hdb", 3, buf, sizeof buf), 0);
    assert_string_equal(buf, "shadow");

    /* Written batch is left as it was until cleared. */
    assert_int_equal(maosd_batch_count(b), 4);
    maosd_batch_clear(b);
    assert_int_equal(maosd_batch_count(b), 0);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "hnew", buf, sizeof buf), 0);
    assert_string_equal(buf, "v2"); /* now from the database */
    maosd_batch_free(b);
    maosd_batch_free(NULL);
    maosd_store_close(s);
}

static void test_mark_rollback(void **state)
{
    fixture *f = *state;
    char buf[64];
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);

    assert_non_null(b);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "a", 1, "a0", 2);
    maosd_batch_mark(b);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "b", 1, "b1", 2);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "a", 1, "a1", 2);
    maosd_batch_mark(b); /* nested */
    maosd_batch_put(b, MAOSD_CF_EVENTS, "c", 1, "c2", 2);
    assert_int_equal(maosd_batch_count(b), 4);

    maosd_batch_rollback(b); /* to the inner mark */
    assert_int_equal(maosd_batch_count(b), 3);
    assert_int_equal(batch_get_str(b, MAOSD_CF_EVENTS, "c", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(batch_get_str(b, MAOSD_CF_EVENTS, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "a1");

    maosd_batch_rollback(b); /* to the outer mark */
    assert_int_equal(maosd_batch_count(b), 1);
    assert_int_equal(batch_get_str(b, MAOSD_CF_EVENTS, "b", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(batch_get_str(b, MAOSD_CF_EVENTS, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "a0"); /* the put before the mark survives */

    /* Puts after a rollback are kept. */
    maosd_batch_put(b, MAOSD_CF_EVENTS, "d", 1, "d0", 2);
    assert_int_equal(maosd_store_write(s, b), 0);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "a", 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "a0");
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "d", 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "d0");
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "b", 1, buf, sizeof buf),
                     MAOS_ENOT_FOUND);

    /* A rollback without a mark poisons the batch: nothing is written and
     * the store stays OK; clear makes it usable again. */
    maosd_batch_clear(b);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "e", 1, "e0", 2);
    maosd_batch_rollback(b);
    assert_int_equal(maosd_store_write(s, b), MAOS_EINTERNAL);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_OK);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "e", 1, buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    maosd_batch_clear(b);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "e", 1, "e1", 2);
    assert_int_equal(maosd_store_write(s, b), 0);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "e", 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "e1");

    /* So does a put to an invalid column family. */
    maosd_batch_clear(b);
    maosd_batch_put(b, MAOSD_CF__COUNT, "f", 1, "f0", 2);
    assert_int_equal(maosd_store_write(s, b), MAOS_EINTERNAL);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_OK);
    maosd_batch_free(b);
    maosd_store_close(s);
}

static void test_iter_event_positions(void **state)
{
    static const uint64_t pos[] = {1, 255, 256, 65536, (uint64_t)1 << 40};
    static const int insert_order[] = {3, 0, 4, 2, 1};
    const size_t npos = sizeof pos / sizeof pos[0];
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);
    maosd_iter *it;
    char k[8], v[32];
    const char *kp, *vp;
    size_t kl, vl, i;

    assert_non_null(b);
    for (i = 0; i < npos; i++) {
        uint64_t p = pos[insert_order[i]];
        maosd_key_event(k, p);
        snprintf(v, sizeof v, "ev%llu", (unsigned long long)p);
        maosd_batch_put(b, MAOSD_CF_EVENTS, k, 8, v, strlen(v));
    }
    assert_int_equal(maosd_store_write(s, b), 0);
    maosd_batch_free(b);

    it = maosd_iter_new(s, MAOSD_CF_EVENTS);
    assert_non_null(it);

    /* first .. next: numeric order. */
    i = 0;
    for (maosd_iter_seek_first(it); maosd_iter_valid(it); maosd_iter_next(it), i++) {
        assert_true(i < npos);
        kp = maosd_iter_key(it, &kl);
        assert_int_equal(kl, 8);
        assert_int_equal(maosd_get_u64(kp), pos[i]);
        vp = maosd_iter_value(it, &vl);
        snprintf(v, sizeof v, "ev%llu", (unsigned long long)pos[i]);
        assert_int_equal(vl, strlen(v));
        assert_memory_equal(vp, v, vl);
    }
    assert_int_equal(i, npos);
    assert_null(maosd_iter_key(it, &kl)); /* invalid iterator: no view */
    assert_int_equal(kl, 0);

    /* last .. prev: reverse order. */
    i = npos;
    for (maosd_iter_seek_last(it); maosd_iter_valid(it); maosd_iter_prev(it)) {
        assert_true(i > 0);
        i--;
        assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), pos[i]);
    }
    assert_int_equal(i, 0);

    /* seek: first >= key. */
    maosd_key_event(k, 256);
    maosd_iter_seek(it, k, 8);
    assert_int_equal(maosd_iter_valid(it), 1);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 256);
    maosd_key_event(k, 257);
    maosd_iter_seek(it, k, 8);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 65536);
    maosd_iter_prev(it);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 256);
    maosd_key_event(k, ((uint64_t)1 << 40) + 1);
    maosd_iter_seek(it, k, 8);
    assert_int_equal(maosd_iter_valid(it), 0);

    /* seek_prev: last <= key. */
    maosd_key_event(k, 65535);
    maosd_iter_seek_prev(it, k, 8);
    assert_int_equal(maosd_iter_valid(it), 1);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 256);
    maosd_iter_next(it);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 65536);
    maosd_key_event(k, 255);
    maosd_iter_seek_prev(it, k, 8);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), 255);
    maosd_key_event(k, 0);
    maosd_iter_seek_prev(it, k, 8);
    assert_int_equal(maosd_iter_valid(it), 0);
    maosd_key_event(k, UINT64_MAX);
    maosd_iter_seek_prev(it, k, 8);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl)), (uint64_t)1 << 40);

    assert_int_equal(maosd_iter_status(it), 0);
    maosd_iter_free(it);
    maosd_iter_free(NULL);
    maosd_store_close(s);
}

static void test_iter_stream_versions(void **state)
{
    static const char *const streams[] = {"ab", "a"}; /* "ab" written first */
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);
    maosd_iter *it;
    char k[MAOSD_KEY_MAX], v[8];
    const char *kp;
    size_t kl, n;

    assert_non_null(b);
    for (int si = 0; si < 2; si++) {
        for (uint64_t ver = 0; ver <= 300; ver++) {
            n = maosd_key_version(k, sl(streams[si]), ver);
            maosd_put_u64(v, ver + 1000);
            maosd_batch_put(b, MAOSD_CF_STREAMS, k, n, v, 8);
        }
        n = maosd_key_head(k, sl(streams[si]));
        maosd_batch_put(b, MAOSD_CF_STREAMS, k, n, "head", 4);
    }
    assert_int_equal(maosd_store_write(s, b), 0);
    maosd_batch_free(b);

    it = maosd_iter_new(s, MAOSD_CF_STREAMS);
    assert_non_null(it);

    /* Heads ('h') sort before the version index ('v'). */
    maosd_iter_seek_first(it);
    kp = maosd_iter_key(it, &kl);
    assert_int_equal(kl, 2);
    assert_memory_equal(kp, "ha", 2);
    maosd_iter_next(it);
    kp = maosd_iter_key(it, &kl);
    assert_int_equal(kl, 3);
    assert_memory_equal(kp, "hab", 3);
    maosd_iter_next(it);

    /* Every version of "a", in numeric order, then every version of "ab". */
    n = maosd_key_version(k, sl("a"), 0);
    maosd_iter_seek(it, k, n);
    for (int si = 1; si >= 0; si--) {
        const char *name = streams[si];
        size_t nl = strlen(name);
        for (uint64_t ver = 0; ver <= 300; ver++) {
            assert_int_equal(maosd_iter_valid(it), 1);
            kp = maosd_iter_key(it, &kl);
            assert_int_equal(kl, 2 + nl + 8);
            assert_int_equal(kp[0], 'v');
            assert_memory_equal(kp + 1, name, nl);
            assert_int_equal(kp[1 + nl], 0);
            assert_int_equal(maosd_get_u64(kp + 2 + nl), ver);
            assert_int_equal(maosd_get_u64(maosd_iter_value(it, &n)), ver + 1000);
            assert_int_equal(n, 8);
            maosd_iter_next(it);
        }
    }
    assert_int_equal(maosd_iter_valid(it), 0);

    /* The last version of "a" is one seek_prev away, even with "ab" after. */
    n = maosd_key_version(k, sl("a"), UINT64_MAX);
    maosd_iter_seek_prev(it, k, n);
    kp = maosd_iter_key(it, &kl);
    assert_int_equal(kl, 2 + 1 + 8);
    assert_memory_equal(kp, "va", 2);
    assert_int_equal(maosd_get_u64(kp + 3), 300);
    maosd_iter_next(it);
    kp = maosd_iter_key(it, &kl);
    assert_memory_equal(kp, "vab", 3);
    assert_int_equal(maosd_get_u64(kp + 4), 0);

    /* A version in the middle. */
    n = maosd_key_version(k, sl("ab"), 255);
    maosd_iter_seek(it, k, n);
    kp = maosd_iter_key(it, &kl);
    assert_int_equal(maosd_get_u64(kp + 4), 255);
    maosd_iter_next(it);
    assert_int_equal(maosd_get_u64(maosd_iter_key(it, &kl) + 4), 256);

    assert_int_equal(maosd_iter_status(it), 0);
    maosd_iter_free(it);
    maosd_store_close(s);
}

static void test_store_last(void **state)
{
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    char key[8], small[4], k[8];
    char *val = NULL;
    size_t kl = 99, vl = 99;

    assert_int_equal(maosd_store_last(s, MAOSD_CF_EVENTS, key, sizeof key, &kl,
                                      &val, &vl),
                     MAOS_ENOT_FOUND);
    assert_int_equal(kl, 99);
    assert_null(val);

    for (uint64_t p = 1; p <= 1000; p += 333) { /* 1, 334, 667, 1000 */
        maosd_key_event(k, p);
        assert_int_equal(put1(s, MAOSD_CF_EVENTS, k, 8, p == 1000 ? "last" : "x"), 0);
    }
    /* Another family's keys do not count. */
    assert_int_equal(put1(s, MAOSD_CF_IDS, "\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, "z"), 0);

    assert_int_equal(maosd_store_last(s, MAOSD_CF_EVENTS, key, sizeof key, &kl,
                                      &val, &vl),
                     0);
    assert_int_equal(kl, 8);
    assert_int_equal(maosd_get_u64(key), 1000);
    assert_int_equal(vl, 4);
    assert_string_equal(val, "last");
    free(val);

    /* A short key buffer gets the first kcap bytes; *klen is the full
     * length.  The value may be skipped. */
    assert_int_equal(maosd_store_last(s, MAOSD_CF_EVENTS, small, sizeof small, &kl,
                                      NULL, NULL),
                     0);
    assert_int_equal(kl, 8);
    maosd_key_event(k, 1000);
    assert_memory_equal(small, k, sizeof small);
    maosd_store_close(s);
}

/* Run this binary as "--try-open DIR" and read "<rc> <message>". */
static void try_open_in_child(const char *dir, int *rc, char *msg, size_t cap)
{
    char exe[PATH_MAX], cmd[PATH_MAX + 128], line[512] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    FILE *p;
    char *sp;

    assert_true(n > 0);
    exe[n] = 0;
    snprintf(cmd, sizeof cmd, "'%s' --try-open '%s'", exe, dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    line[strcspn(line, "\n")] = 0;
    *rc = atoi(line);
    sp = strchr(line, ' ');
    snprintf(msg, cap, "%s", sp ? sp + 1 : "");
}

static void test_second_open_conflicts(void **state)
{
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    maosd_store_opts o = {.dir = f->dir, .create = 1};
    maosd_store *s2 = NULL;
    char err[256] = "", msg[256];
    int rc;

    /* Same process ("lock hold by current process"). */
    rc = maosd_store_open(&o, &s2, NULL, err, sizeof err);
    assert_int_equal(rc, MAOS_ECONFLICT);
    assert_null(s2);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, f->dir));

    /* Another process ("While lock file: ...: Resource temporarily
     * unavailable"). */
    try_open_in_child(f->dir, &rc, msg, sizeof msg);
    assert_int_equal(rc, MAOS_ECONFLICT);
    assert_non_null(strstr(msg, "in use by another maosd"));

    /* The first handle still works, and once it is closed the directory
     * opens again. */
    assert_int_equal(put1(s, MAOSD_CF_META, "k", 1, "v"), 0);
    maosd_store_close(s);
    try_open_in_child(f->dir, &rc, msg, sizeof msg);
    assert_int_equal(rc, 0);
    s = open_store(f->dir);
    maosd_store_close(s);
}

static void test_map_error(void **state)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        {NULL, 0},
        {"IO error: While lock file: /var/lib/maos/LOCK: Resource temporarily unavailable",
         MAOS_ECONFLICT},
        {"IO error: lock hold by current process, acquire time 1700000000 acquiring "
         "thread 140000: /var/lib/maos/LOCK: No locks available",
         MAOS_ECONFLICT},
        {"IO error: While open a file for lock: /var/lib/maos/LOCK: Permission denied",
         MAOS_EIO},
        {"IO error: No space left on device: While appending to file: "
         "/run/lock/maos/000012.log: No space left on device",
         MAOS_EIO},
        {"IO error: injected fault", MAOS_EIO},
        {"IO error", MAOS_EIO},
        {"Corruption: block checksum mismatch: stored = 1, computed = 2", MAOS_ECORRUPT},
        {"Corruption", MAOS_ECORRUPT},
        {"Resource busy: ", MAOS_EOVERLOADED},
        {"Busy", MAOS_EOVERLOADED},
        {"Result incomplete: Write stall", MAOS_EOVERLOADED},
        {"Incomplete", MAOS_EOVERLOADED},
        {"Operation failed. Try again.: ", MAOS_EOVERLOADED},
        {"TryAgain", MAOS_EOVERLOADED},
        {"Invalid argument: Column families not opened: extra", MAOS_EINTERNAL},
        {"Not implemented: ", MAOS_EINTERNAL},
        {"something else entirely", MAOS_EINTERNAL},
        {"", MAOS_EINTERNAL},
        {"io error: lowercase is not RocksDB's spelling", MAOS_EINTERNAL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = maosd_store_map_error(cases[i].in);
        if (got != cases[i].want)
            print_error("case %zu: \"%s\"\n", i, cases[i].in ? cases[i].in : "(null)");
        assert_int_equal(got, cases[i].want);
    }
}

static void test_read_only_is_sticky(void **state)
{
    fixture *f = *state;
    char buf[16];
    maosd_store *s = open_store(f->dir);

    assert_int_equal(put1(s, MAOSD_CF_META, "k1", 2, "v1"), 0);
    maosd_store_set_read_only(s);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_READ_ONLY);
    assert_null(maosd_store_last_error(s)); /* no storage error behind it */
    assert_int_equal(put1(s, MAOSD_CF_META, "k2", 2, "v2"), MAOS_EREAD_ONLY);
    /* Nothing was written; reads go on. */
    assert_int_equal(get_str(s, MAOSD_CF_META, "k2", 2, buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(get_str(s, MAOSD_CF_META, "k1", 2, buf, sizeof buf), 0);
    maosd_store_close(s);

    /* Only a reopen clears it. */
    s = open_store(f->dir);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_OK);
    assert_int_equal(put1(s, MAOSD_CF_META, "k2", 2, "v2"), 0);
    maosd_store_close(s);
}

#ifdef MAOS_FAULT_INJECTION
static void test_injected_write_failure(void **state)
{
    fixture *f = *state;
    char buf[16];
    maosd_store *s;
    maosd_store_opts o = {.dir = f->dir, .create = 1};
    char err[256];

    assert_int_equal(setenv("MAOS_FAULT_WRITE_FAIL_AFTER", "x", 1), 0);
    assert_int_equal(maosd_store_open(&o, &s, NULL, err, sizeof err), MAOS_EINTERNAL);
    assert_int_equal(setenv("MAOS_FAULT_WRITE_FAIL_AFTER", "2", 1), 0);
    s = open_store(f->dir);
    assert_int_equal(unsetenv("MAOS_FAULT_WRITE_FAIL_AFTER"), 0);

    assert_int_equal(put1(s, MAOSD_CF_EVENTS, "1", 1, "a"), 0);
    assert_int_equal(put1(s, MAOSD_CF_EVENTS, "2", 1, "b"), 0);
    assert_int_equal(put1(s, MAOSD_CF_EVENTS, "3", 1, "c"), MAOS_EREAD_ONLY);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_READ_ONLY);
    assert_non_null(maosd_store_last_error(s));
    assert_string_equal(maosd_store_last_error(s), "IO error: injected fault");
    assert_int_equal(maosd_store_map_error(maosd_store_last_error(s)), MAOS_EIO);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "3", 1, buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(put1(s, MAOSD_CF_EVENTS, "4", 1, "d"), MAOS_EREAD_ONLY);
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "2", 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "b");
    maosd_store_close(s);

    s = open_store(f->dir);
    assert_int_equal(maosd_store_state(s), MAOSD_STORE_OK);
    assert_null(maosd_store_last_error(s));
    assert_int_equal(get_str(s, MAOSD_CF_EVENTS, "3", 1, buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(put1(s, MAOSD_CF_EVENTS, "3", 1, "c"), 0);
    maosd_store_close(s);
}
#endif

/* ---- the batch's overlay (daemon/overlay.c) ------------------------------ */

static void test_overlay_nested_marks(void **state)
{
    fixture *f = *state;
    char buf[64];
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);

    assert_non_null(b);
    assert_int_equal(put1(s, MAOSD_CF_STREAMS, "k", 1, "db"), 0);
    assert_int_equal(put1(s, MAOSD_CF_STREAMS, "gone", 4, "db-gone"), 0);

    maosd_batch_put(b, MAOSD_CF_STREAMS, "k", 1, "v0", 2);
    maosd_batch_mark(b); /* 1 */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "k", 1, "v1", 2);
    maosd_batch_delete(b, MAOSD_CF_STREAMS, "gone", 4);
    maosd_batch_mark(b); /* 2 */
    maosd_batch_delete(b, MAOSD_CF_STREAMS, "k", 1);
    maosd_batch_put(b, MAOSD_CF_STREAMS, "gone", 4, "back", 4); /* delete, then put */
    maosd_batch_mark(b); /* 3 */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "k", 1, "v3", 2);      /* delete, then put */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "new", 3, "n3", 2);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "v3");
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "gone", buf, sizeof buf), 0);
    assert_string_equal(buf, "back");

    maosd_batch_rollback(b); /* to 3: k deleted again, new unknown */
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "k", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "new", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "gone", buf, sizeof buf), 0);
    assert_string_equal(buf, "back");

    maosd_batch_rollback(b); /* to 2: k v1, gone deleted */
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "v1");
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "gone", buf, sizeof buf),
                     MAOS_ENOT_FOUND);

    /* A key put again after its rollback: the same entry, a new value. */
    maosd_batch_mark(b); /* 2' */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "new", 3, "n2", 2);
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "new", buf, sizeof buf), 0);
    assert_string_equal(buf, "n2");
    maosd_batch_rollback(b); /* to 2' */
    maosd_batch_rollback(b); /* to 1: k v0, gone from the database again */
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "v0");
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "gone", buf, sizeof buf), 0);
    assert_string_equal(buf, "db-gone");
    assert_int_equal(batch_get_str(b, MAOSD_CF_STREAMS, "new", buf, sizeof buf),
                     MAOS_ENOT_FOUND);
    assert_int_equal(maosd_batch_count(b), 1);

    /* What is written is what the reads showed. */
    maosd_batch_put(b, MAOSD_CF_STREAMS, "new", 3, "n1", 2);
    assert_int_equal(maosd_store_write(s, b), 0);
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "k", 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "v0");
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "gone", 4, buf, sizeof buf), 0);
    assert_string_equal(buf, "db-gone");
    assert_int_equal(get_str(s, MAOSD_CF_STREAMS, "new", 3, buf, sizeof buf), 0);
    assert_string_equal(buf, "n1");

    /* get_buf through the overlay: put, delete, and the database. */
    maosd_batch_clear(b);
    char *gb = NULL;
    size_t gcap = 0, n = 0;
    maosd_batch_put(b, MAOSD_CF_STREAMS, "big", 3, "0123456789abcdef", 16);
    maosd_batch_delete(b, MAOSD_CF_STREAMS, "k", 1);
    assert_int_equal(maosd_batch_get_buf(b, MAOSD_CF_STREAMS, "big", 3, &gb, &gcap, &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(gb, "0123456789abcdef", 16);
    assert_int_equal(maosd_batch_get_buf(b, MAOSD_CF_STREAMS, "k", 1, &gb, &gcap, &n),
                     MAOS_ENOT_FOUND);
    assert_int_equal(maosd_batch_get_buf(b, MAOSD_CF_STREAMS, "new", 3, &gb, &gcap, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(gb, "n1", 2);
    assert_int_equal(maosd_batch_get_buf(b, MAOSD_CF__COUNT, "new", 3, &gb, &gcap, &n),
                     MAOS_EINTERNAL);
    free(gb);
    maosd_batch_free(b);
    maosd_store_close(s);
}

/* Keys of the iterator from its position on, moving with next (dir 1) or
 * prev (-1), joined as "key=value," into out. */
static void walk(maosd_iter *it, int dir, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < 64 && maosd_iter_valid(it); i++) {
        size_t kn, vn;
        const char *k = maosd_iter_key(it, &kn);
        const char *v = maosd_iter_value(it, &vn);
        used += (size_t)snprintf(out + used, cap - used, "%.*s=%.*s,", (int)kn, k,
                                 (int)vn, v);
        assert_true(used < cap);
        if (dir > 0)
            maosd_iter_next(it);
        else
            maosd_iter_prev(it);
    }
    assert_int_equal(maosd_iter_status(it), 0);
}

static void test_batch_iter_merges(void **state)
{
    static const char *const db[] = {"a", "c", "e", "g", "q1", "q2", "q3", "r"};
    fixture *f = *state;
    char out[512];
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);
    maosd_iter *it;

    assert_non_null(b);
    for (size_t i = 0; i < sizeof db / sizeof db[0]; i++)
        maosd_batch_put(b, MAOSD_CF_QUEUES, db[i], strlen(db[i]), "D", 1);
    assert_int_equal(maosd_store_write(s, b), 0);
    maosd_batch_clear(b);

    maosd_batch_put(b, MAOSD_CF_QUEUES, "b", 1, "B", 1);  /* between db keys */
    maosd_batch_delete(b, MAOSD_CF_QUEUES, "c", 1);       /* hides a db key */
    maosd_batch_put(b, MAOSD_CF_QUEUES, "e", 1, "E", 1);  /* shadows one */
    maosd_batch_delete(b, MAOSD_CF_QUEUES, "f", 1);       /* deletes nothing */
    maosd_batch_delete(b, MAOSD_CF_QUEUES, "g", 1);
    maosd_batch_put(b, MAOSD_CF_QUEUES, "h", 1, "H", 1);  /* past the db keys */
    maosd_batch_delete(b, MAOSD_CF_QUEUES, "q2", 2);
    maosd_batch_put(b, MAOSD_CF_QUEUES, "q22", 3, "Q", 1);
    maosd_batch_put(b, MAOSD_CF_QUEUES, "z", 1, "Z", 1);
    maosd_batch_put(b, MAOSD_CF_EVENTS, "d", 1, "X", 1);  /* another family */
    maosd_batch_mark(b);
    maosd_batch_put(b, MAOSD_CF_QUEUES, "a0", 2, "gone", 4);
    maosd_batch_rollback(b); /* a0 stays in the overlay, absent */

    it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES, NULL, 0);
    assert_non_null(it);
    maosd_iter_seek_first(it);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "a=D,b=B,e=E,h=H,q1=D,q22=Q,q3=D,r=D,z=Z,");
    maosd_iter_seek_last(it);
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "z=Z,r=D,q3=D,q22=Q,q1=D,h=H,e=E,b=B,a=D,");
    /* seek and seek_prev onto a deleted key, a shadowed one, the ends */
    maosd_iter_seek(it, "c", 1);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "e=E,h=H,q1=D,q22=Q,q3=D,r=D,z=Z,");
    maosd_iter_seek_prev(it, "g", 1);
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "e=E,b=B,a=D,");
    maosd_iter_seek_prev(it, "c", 1);
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "b=B,a=D,");
    maosd_iter_seek(it, "e", 1); /* lands on the overlay's value */
    assert_true(maosd_iter_valid(it));
    size_t vn;
    assert_memory_equal(maosd_iter_value(it, &vn), "E", 1);
    assert_int_equal(vn, 1);
    maosd_iter_seek(it, "zz", 2);
    assert_false(maosd_iter_valid(it));
    maosd_iter_seek_prev(it, "0", 1);
    assert_false(maosd_iter_valid(it));
    maosd_iter_seek_prev(it, "zz", 2);
    walk(it, -1, out, sizeof out);
    assert_true(strncmp(out, "z=Z,r=D,", 8) == 0);
    /* turning round on an overlay key and on a database key */
    maosd_iter_seek(it, "b", 1);
    maosd_iter_next(it); /* e */
    maosd_iter_prev(it);
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "b=B,a=D,");
    maosd_iter_seek_prev(it, "q2", 2); /* q1 */
    maosd_iter_next(it);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "q22=Q,q3=D,r=D,z=Z,");
    maosd_iter_free(it);

    /* Prefix bounds: keys >= upper are not visited, from either part. */
    it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES, "q3", 2);
    assert_non_null(it);
    maosd_iter_seek(it, "q", 1);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "q1=D,q22=Q,");
    maosd_iter_seek_prev(it, "zzz", 3); /* past the bound: the last below it */
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "q22=Q,q1=D,h=H,e=E,b=B,a=D,");
    maosd_iter_seek_last(it);
    walk(it, -1, out, sizeof out);
    assert_string_equal(out, "q22=Q,q1=D,h=H,e=E,b=B,a=D,");
    maosd_iter_free(it);
    it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES, "h", 1); /* bound = overlay key */
    assert_non_null(it);
    maosd_iter_seek(it, "d", 1);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "e=E,");
    maosd_iter_free(it);

    /* An iterator used after its batch changed is stale: invalid, with an
     * error, never a read of freed memory. */
    it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES, NULL, 0);
    assert_non_null(it);
    maosd_iter_seek_first(it);
    assert_true(maosd_iter_valid(it));
    maosd_batch_put(b, MAOSD_CF_QUEUES, "a1", 2, "A", 1);
    assert_false(maosd_iter_valid(it));
    maosd_iter_next(it);
    assert_false(maosd_iter_valid(it));
    assert_int_equal(maosd_iter_status(it), MAOS_EINTERNAL);
    maosd_iter_free(it);
    assert_null(maosd_batch_iter_new(b, MAOSD_CF__COUNT, NULL, 0));

    /* After the write the database alone says the same. */
    assert_int_equal(maosd_store_write(s, b), 0);
    maosd_batch_clear(b);
    it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES, NULL, 0);
    maosd_iter_seek_first(it);
    walk(it, 1, out, sizeof out);
    assert_string_equal(out, "a=D,a1=A,b=B,e=E,h=H,q1=D,q22=Q,q3=D,r=D,z=Z,");
    maosd_iter_free(it);
    maosd_batch_free(b);
    maosd_store_close(s);
}

/* A group larger than the overlay keeps between groups (64k entries):
 * reads through it, then a small group after it gave the memory back,
 * then a big one again (the tables grow from nothing). */
static void test_batch_big_group(void **state)
{
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);
    char k[8], v[8], buf[64];
    size_t n;

    assert_non_null(b);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 100000; i++) {
            maosd_key_event(k, i);
            maosd_put_u64(v, i * 3 + (uint64_t)round);
            maosd_batch_put(b, MAOSD_CF_EVENTS, k, 8, v, 8);
        }
        for (uint64_t i = 0; i < 100000; i += 9973) {
            maosd_key_event(k, i);
            assert_int_equal(maosd_batch_get(b, MAOSD_CF_EVENTS, k, 8, buf, sizeof buf, &n), 0);
            assert_int_equal(n, 8);
            assert_int_equal(maosd_get_u64(buf), i * 3 + (uint64_t)round);
        }
        assert_int_equal(maosd_store_write(s, b), 0);
        maosd_batch_clear(b);
        maosd_batch_put(b, MAOSD_CF_EVENTS, "x", 1, "small", 5);
        assert_int_equal(batch_get_str(b, MAOSD_CF_EVENTS, "x", buf, sizeof buf), 0);
        assert_string_equal(buf, "small");
        maosd_key_event(k, 5);
        assert_int_equal(maosd_batch_get(b, MAOSD_CF_EVENTS, k, 8, buf, sizeof buf, &n), 0);
        assert_int_equal(maosd_get_u64(buf), 15 + (uint64_t)round); /* the database's */
        maosd_batch_clear(b);
    }
    maosd_batch_free(b);
    maosd_store_close(s);
}

/*
 * Randomized differential test: random puts, deletes, marks, rollbacks,
 * reads, iterator walks (with and without bounds) and writes against a
 * model (an array over every key of a small key space, the batch's view
 * and a stack of copies for the marks).  Fixed seed, bounded length.
 */
#define DIFF_KEYS 84 /* 1..3 bytes over {00, 01, 'a', ff} */
#define DIFF_OPS 20000
#define DIFF_MARKS 32

typedef struct diff_model {
    char key[DIFF_KEYS][3];
    size_t klen[DIFF_KEYS];
    int order[DIFF_KEYS]; /* key ids in bytewise order */
    int db[DIFF_KEYS];    /* value id, -1 none */
    int view[DIFF_KEYS];  /* database + batch */
    int marks[DIFF_MARKS][DIFF_KEYS];
    int mark_count[DIFF_MARKS];
    int nmarks, count;
} diff_model;

static uint64_t diff_rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t n)
{
    diff_rng ^= diff_rng << 13;
    diff_rng ^= diff_rng >> 7;
    diff_rng ^= diff_rng << 17;
    return (uint32_t)(diff_rng % n);
}

static diff_model *dm;
static int diff_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    size_t m = dm->klen[x] < dm->klen[y] ? dm->klen[x] : dm->klen[y];
    int c = memcmp(dm->key[x], dm->key[y], m);
    return c ? c : (dm->klen[x] > dm->klen[y]) - (dm->klen[x] < dm->klen[y]);
}

static void diff_value(int v, char *out, size_t *n)
{
    *n = (size_t)snprintf(out, 32, "value-%d-%s", v, v % 3 ? "" : "longer");
}

/* Rank of key k in order (0..DIFF_KEYS-1). */
static int diff_rank(const diff_model *m, int k)
{
    for (int r = 0; r < DIFF_KEYS; r++)
        if (m->order[r] == k)
            return r;
    fail();
    return -1;
}

/* The model's position after a move: the rank of a visible key in
 * [0, end) or -1 (end: the rank bound of upper). */
static int diff_next_visible(const diff_model *m, int from, int dir, int end)
{
    for (int r = from; r >= 0 && r < end; r += dir)
        if (m->view[m->order[r]] >= 0)
            return r;
    return -1;
}

static void diff_check_at(const diff_model *m, maosd_iter *it, int r)
{
    if (r < 0) {
        assert_false(maosd_iter_valid(it));
        assert_int_equal(maosd_iter_status(it), 0);
        return;
    }
    assert_true(maosd_iter_valid(it));
    int k = m->order[r];
    size_t kn, vn, n;
    char want[32];
    const char *kp = maosd_iter_key(it, &kn);
    assert_int_equal(kn, m->klen[k]);
    assert_memory_equal(kp, m->key[k], kn);
    const char *vp = maosd_iter_value(it, &vn);
    diff_value(m->view[k], want, &n);
    assert_int_equal(vn, n);
    assert_memory_equal(vp, want, n);
}

static void test_batch_differential(void **state)
{
    static const char alpha[4] = {0x00, 0x01, 'a', (char)0xff};
    fixture *f = *state;
    maosd_store *s = open_store(f->dir);
    maosd_batch *b = maosd_batch_new(s);
    diff_model *m = calloc(1, sizeof *m);
    int nk = 0, vseq = 0;

    assert_non_null(b);
    assert_non_null(m);
    dm = m;
    for (size_t len = 1; len <= 3; len++)
        for (int i = 0; i < (len == 1 ? 4 : len == 2 ? 16 : 64); i++) {
            for (size_t j = 0, x = (size_t)i; j < len; j++, x /= 4)
                m->key[nk][len - 1 - j] = alpha[x % 4];
            m->klen[nk++] = len;
        }
    assert_int_equal(nk, DIFF_KEYS);
    for (int i = 0; i < DIFF_KEYS; i++) {
        m->order[i] = i;
        m->db[i] = m->view[i] = -1;
    }
    qsort(m->order, DIFF_KEYS, sizeof m->order[0], diff_cmp);

    for (int op = 0; op < DIFF_OPS; op++) {
        int k = (int)rnd(DIFF_KEYS), what = (int)rnd(100);
        char v[32];
        size_t vn;
        if (what < 30) { /* put */
            int val = vseq++;
            diff_value(val, v, &vn);
            maosd_batch_put(b, MAOSD_CF_QUEUES, m->key[k], m->klen[k], v, vn);
            m->view[k] = val;
            m->count++;
        } else if (what < 45) { /* delete */
            maosd_batch_delete(b, MAOSD_CF_QUEUES, m->key[k], m->klen[k]);
            m->view[k] = -1;
            m->count++;
        } else if (what < 52) { /* mark */
            if (m->nmarks == DIFF_MARKS)
                continue;
            memcpy(m->marks[m->nmarks], m->view, sizeof m->view);
            m->mark_count[m->nmarks++] = m->count;
            maosd_batch_mark(b);
        } else if (what < 58) { /* rollback */
            if (!m->nmarks)
                continue;
            memcpy(m->view, m->marks[--m->nmarks], sizeof m->view);
            m->count = m->mark_count[m->nmarks];
            maosd_batch_rollback(b);
            assert_int_equal(maosd_batch_count(b), m->count);
        } else if (what < 75) { /* point read */
            char got[32];
            size_t n = 0;
            int rc = maosd_batch_get(b, MAOSD_CF_QUEUES, m->key[k], m->klen[k], got,
                                     sizeof got, &n);
            if (m->view[k] < 0) {
                assert_int_equal(rc, MAOS_ENOT_FOUND);
            } else {
                assert_int_equal(rc, 0);
                diff_value(m->view[k], v, &vn);
                assert_int_equal(n, vn);
                assert_memory_equal(got, v, vn);
            }
        } else if (what < 97) { /* an iterator walk */
            int end = DIFF_KEYS, ub = -1;
            if (rnd(2)) {
                ub = (int)rnd(DIFF_KEYS);
                end = diff_rank(m, ub);
            }
            maosd_iter *it = maosd_batch_iter_new(b, MAOSD_CF_QUEUES,
                                                  ub < 0 ? NULL : m->key[ub],
                                                  ub < 0 ? 0 : m->klen[ub]);
            assert_non_null(it);
            int r = -1;
            for (int step = 0; step < 12; step++) {
                int mv = (int)rnd(6), t = diff_rank(m, (int)rnd(DIFF_KEYS));
                switch (mv) {
                case 0:
                    maosd_iter_seek(it, m->key[m->order[t]], m->klen[m->order[t]]);
                    r = t < end ? diff_next_visible(m, t, 1, end) : -1;
                    break;
                case 1:
                    maosd_iter_seek_prev(it, m->key[m->order[t]], m->klen[m->order[t]]);
                    r = diff_next_visible(m, t < end ? t : end - 1, -1, end);
                    break;
                case 2:
                    maosd_iter_seek_first(it);
                    r = diff_next_visible(m, 0, 1, end);
                    break;
                case 3:
                    maosd_iter_seek_last(it);
                    r = diff_next_visible(m, end - 1, -1, end);
                    break;
                case 4:
                    if (r < 0)
                        continue;
                    maosd_iter_next(it);
                    r = diff_next_visible(m, r + 1, 1, end);
                    break;
                default:
                    if (r < 0)
                        continue;
                    maosd_iter_prev(it);
                    r = diff_next_visible(m, r - 1, -1, end);
                    break;
                }
                diff_check_at(m, it, r);
            }
            maosd_iter_free(it);
        } else { /* write the group, start the next */
            assert_int_equal(maosd_store_write(s, b), 0);
            maosd_batch_clear(b);
            memcpy(m->db, m->view, sizeof m->db);
            m->nmarks = m->count = 0;
        }
        assert_int_equal(maosd_batch_count(b), m->count);
    }
    /* The database ends as the model's last write left it. */
    for (int k = 0; k < DIFF_KEYS; k++) {
        char got[32], want[32];
        size_t n = 0, wn;
        int rc = maosd_store_get(s, MAOSD_CF_QUEUES, m->key[k], m->klen[k], got,
                                 sizeof got, &n);
        if (m->db[k] < 0) {
            assert_int_equal(rc, MAOS_ENOT_FOUND);
        } else {
            assert_int_equal(rc, 0);
            diff_value(m->db[k], want, &wn);
            assert_int_equal(n, wn);
            assert_memory_equal(got, want, wn);
        }
    }
    free(m);
    maosd_batch_free(b);
    maosd_store_close(s);
}

/* ---- main --------------------------------------------------------------- */

static int child_try_open(const char *dir)
{
    maosd_store_opts o = {.dir = dir, .create = 1};
    maosd_store *s = NULL;
    char err[256] = "";
    int rc = maosd_store_open(&o, &s, NULL, err, sizeof err);

    printf("%d %s\n", rc, err);
    maosd_store_close(s);
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_dir, teardown_dir)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_reopen_keeps_data),
        T(test_open_creates_dir_0700),
        T(test_cfs_exist_and_independent),
        T(test_get_copies_and_alloc),
        T(test_batch_reads_pending_writes),
        T(test_mark_rollback),
        T(test_overlay_nested_marks),
        T(test_batch_iter_merges),
        T(test_batch_differential),
        T(test_batch_big_group),
        T(test_iter_event_positions),
        T(test_iter_stream_versions),
        T(test_store_last),
        T(test_second_open_conflicts),
        cmocka_unit_test(test_map_error),
        T(test_read_only_is_sticky),
#ifdef MAOS_FAULT_INJECTION
        T(test_injected_write_failure),
#endif
    };

    if (argc == 3 && strcmp(argv[1], "--try-open") == 0)
        return child_try_open(argv[2]);
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
