/*
 * tests/unit/test_store.c -- daemon/store.c against a real RocksDB.
 *
 * Each test gets a fresh mkdtemp directory under /tmp (setup) and removes
 * it (teardown), so tests are independent and leave nothing behind.
 * What is covered: reopen keeps data, the seven column families exist and
 * are independent, reads through a batch see pending writes that the
 * database does not, mark/rollback, iterator order over keys.h layouts,
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
