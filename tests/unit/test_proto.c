/*
 * tests/unit/test_proto.c -- proto/ in-process: the frame reader, the
 * bounded msgpack checker and cursor, names, UUIDs, categories, the read
 * filter, and a round trip through every encoder/decoder pair of
 * maos/proto.h, plus the typed rejections of request decoding.
 *
 * Built and registered by tests/unit/meson.build (test 'proto', deps
 * proto_dep + cmocka_dep).  No daemon, no I/O: each case builds its bytes,
 * so a failure names the one function at fault.  cmocka's assertions print
 * both values; the slice helpers below do the same for byte strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maos/proto.h"

/* ---- helpers ---------------------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

static maos_slice S(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

static void slice_eq_at(maos_slice got, const char *want, size_t wlen,
                        const char *expr, const char *file, int line)
{
    if (got.len == wlen && (wlen == 0 || memcmp(got.ptr, want, wlen) == 0))
        return;
    print_error("%s:%d: %s: got \"%.*s\" (%u bytes), want \"%.*s\" (%zu bytes)\n",
                file, line, expr, (int)(got.len > 100 ? 100 : got.len),
                got.ptr ? got.ptr : "", got.len, (int)(wlen > 100 ? 100 : wlen),
                want, wlen);
    fail();
}

/* A slice against a C string, or against a literal with NULs (LIT). */
#define assert_slice(s, want) slice_eq_at((s), (want), strlen(want), #s, __FILE__, __LINE__)
#define assert_slice_n(s, want, n) slice_eq_at((s), (want), (n), #s, __FILE__, __LINE__)

#define assert_err(got, want)                                                  \
    do {                                                                       \
        int e_got_ = (got), e_want_ = (want);                                  \
        if (e_got_ != e_want_) {                                               \
            print_error("%s:%d: %s: got %d (%s), want %d (%s)\n", __FILE__,    \
                        __LINE__, #got, e_got_, maos_err_name(e_got_),         \
                        e_want_, maos_err_name(e_want_));                      \
            fail();                                                            \
        }                                                                      \
    } while (0)

/* A msgpack buffer that frees itself at the end of each test. */
typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp;

static void mp_init(mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_reset(mp *m)
{
    msgpack_sbuffer_clear(&m->sb);
}

static void mp_free(mp *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

/* Decode m as a request, expecting success. */
static void decode_ok(const mp *m, maos_request *req)
{
    char why[256];
    int rc = maos_request_decode(m->sb.data, m->sb.size, NULL, req, why, sizeof why);
    if (rc) {
        print_error("request does not decode: %s: %s\n", maos_err_name(rc), why);
        fail();
    }
}

/* Decode raw bytes as a request, expecting the error `want`; checks the
 * reason is set and returns the rid the decoder could read. */
static uint64_t decode_err(const void *p, size_t n, const maos_limits *lim, int want)
{
    maos_request req;
    char why[256];
    int rc = maos_request_decode(p, n, lim, &req, why, sizeof why);
    assert_err(rc, want);
    assert_true(why[0] != 0);
    uint64_t rid = req.rid;
    maos_request_free(&req);
    return rid;
}

static void frame_bytes(char *out, const char *payload, uint32_t n)
{
    maos_frame_put_len(out, n);
    memcpy(out + 4, payload, n);
}

/* ---- frame reader ------------------------------------------------------------ */

static void test_frame_put_len(void **state)
{
    (void)state;
    char h[4];
    maos_frame_put_len(h, 0x01020304u);
    assert_memory_equal(h, "\x01\x02\x03\x04", 4);
    maos_frame_put_len(h, 0xffffffffu);
    assert_memory_equal(h, "\xff\xff\xff\xff", 4);
}

static void test_reader_whole_frame(void **state)
{
    (void)state;
    maos_reader r;
    maos_slice f;
    char buf[64];
    maos_reader_init(&r, 0);
    assert_int_equal(r.max_frame, MAOS_DEFAULT_MAX_FRAME);
    assert_int_equal(maos_reader_next(&r, &f), 0); /* nothing yet */
    frame_bytes(buf, "hello", 5);
    assert_int_equal(maos_reader_feed(&r, buf, 9), 0);
    assert_int_equal(maos_reader_next(&r, &f), 1);
    assert_slice(f, "hello");
    assert_int_equal(maos_reader_next(&r, &f), 0);
    assert_int_equal(r.err, 0);
    maos_reader_free(&r);
    maos_reader_free(&r); /* twice is fine */
}

/* Three frames (one of 3000 bytes) fed one byte at a time. */
static void test_reader_byte_by_byte(void **state)
{
    (void)state;
    static char big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    char *stream = malloc(4 + 1 + 4 + sizeof big + 4 + 2);
    size_t n = 0;
    frame_bytes(stream + n, "x", 1), n += 5;
    frame_bytes(stream + n, big, sizeof big), n += 4 + sizeof big;
    frame_bytes(stream + n, "yz", 2), n += 6;

    maos_reader r;
    maos_slice f;
    int got = 0;
    maos_reader_init(&r, 4096);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(maos_reader_feed(&r, stream + i, 1), 0);
        while (maos_reader_next(&r, &f) == 1) {
            if (got == 0) {
                assert_slice(f, "x");
                assert_int_equal(i, 4); /* out as soon as its last byte is in */
            } else if (got == 1) {
                assert_slice_n(f, big, sizeof big);
            } else {
                assert_slice(f, "yz");
            }
            got++;
        }
    }
    assert_int_equal(got, 3);
    assert_int_equal(r.err, 0);
    maos_reader_free(&r);
    free(stream);
}

/* Many frames of many sizes in one feed come out whole and in order. */
static void test_reader_many_in_one_feed(void **state)
{
    (void)state;
    enum { N = 200 };
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += 4 + 1 + (size_t)(i * 37 % 500);
    char *stream = malloc(total), *p = stream;
    for (int i = 0; i < N; i++) {
        uint32_t len = 1 + (uint32_t)(i * 37 % 500);
        maos_frame_put_len(p, len);
        memset(p + 4, 'A' + i % 26, len);
        p += 4 + len;
    }
    maos_reader r;
    maos_slice f;
    maos_reader_init(&r, 1024);
    assert_int_equal(maos_reader_feed(&r, stream, total), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(maos_reader_next(&r, &f), 1);
        assert_int_equal(f.len, 1 + i * 37 % 500);
        assert_int_equal(f.ptr[0], 'A' + i % 26);
        assert_int_equal(f.ptr[f.len - 1], 'A' + i % 26);
    }
    assert_int_equal(maos_reader_next(&r, &f), 0);
    maos_reader_free(&r);
    free(stream);
}

/* The space/commit path the daemon and the client read sockets through,
 * in odd-sized chunks, with frames drained after every read. */
static void test_reader_space_commit(void **state)
{
    (void)state;
    enum { N = 300 };
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += 4 + 1 + (size_t)(i * 131 % 40000);
    char *stream = malloc(total), *p = stream;
    for (int i = 0; i < N; i++) {
        uint32_t len = 1 + (uint32_t)(i * 131 % 40000);
        maos_frame_put_len(p, len);
        memset(p + 4, 'a' + i % 26, len);
        p[4 + len - 1] = (char)i;
        p += 4 + len;
    }
    maos_reader r;
    maos_slice f;
    maos_reader_init(&r, 65536);
    size_t off = 0;
    int got = 0;
    size_t chunk = 1;
    while (off < total) {
        char *sp;
        long room = maos_reader_space(&r, &sp, 0);
        assert_true(room > 0);
        size_t n = chunk < (size_t)room ? chunk : (size_t)room;
        if (n > total - off)
            n = total - off;
        memcpy(sp, stream + off, n);
        maos_reader_commit(&r, n);
        off += n;
        chunk = chunk * 7 % 9001 + 1;
        while (maos_reader_next(&r, &f) == 1) {
            assert_int_equal(f.len, 1 + got * 131 % 40000);
            assert_int_equal(f.ptr[0], (f.len == 1) ? (char)got : 'a' + got % 26);
            assert_int_equal(f.ptr[f.len - 1], (char)got);
            got++;
        }
    }
    assert_int_equal(got, N);
    /* The buffer holds one frame plus a read's worth, never the stream. */
    assert_true(r.cap <= 4 * 65536);
    maos_reader_free(&r);
    free(stream);
}

static void test_reader_max_frame_exact_ok(void **state)
{
    (void)state;
    enum { MAX = 100000 };
    char *buf = calloc(1, 4 + MAX);
    maos_frame_put_len(buf, MAX);
    maos_reader r;
    maos_slice f;
    maos_reader_init(&r, MAX);
    assert_int_equal(maos_reader_feed(&r, buf, 4 + MAX), 0);
    assert_int_equal(maos_reader_next(&r, &f), 1);
    assert_int_equal(f.len, MAX);
    maos_reader_free(&r);
    free(buf);
}

/* A declared length over max_frame fails as soon as the header is in,
 * before the buffer grows for the payload (docs/ARCHITECTURE.md: checked before
 * anything is buffered). */
static void test_reader_oversized_feed(void **state)
{
    (void)state;
    enum { MAX = 1 << 20 };
    char hdr[4];
    maos_frame_put_len(hdr, MAX + 1);
    maos_reader r;
    maos_slice f;
    maos_reader_init(&r, MAX);
    assert_int_equal(maos_reader_feed(&r, hdr, 4), 0);
    assert_err(maos_reader_next(&r, &f), MAOS_EFRAME_TOO_LARGE);
    assert_err(r.err, MAOS_EFRAME_TOO_LARGE);
    assert_true(r.cap < 65536);
    maos_reader_free(&r);

    /* Header fed in two pieces, then payload: still no growth.  (Results
     * are taken before the asserts so that a failure does not leak.) */
    maos_reader_init(&r, MAX);
    static char junk[128 * 1024];
    int rc1 = maos_reader_feed(&r, hdr, 2);
    int rc2 = maos_reader_next(&r, &f);
    maos_reader_feed(&r, hdr + 2, 2);
    int rc = maos_reader_feed(&r, junk, sizeof junk);
    size_t cap = r.cap;
    maos_reader_free(&r);
    assert_int_equal(rc1, 0);
    assert_int_equal(rc2, 0);
    assert_err(rc, MAOS_EFRAME_TOO_LARGE);
    assert_true(cap < 65536);

    /* 0xffffffff */
    maos_frame_put_len(hdr, 0xffffffffu);
    maos_reader_init(&r, 0);
    maos_reader_feed(&r, hdr, 4);
    assert_err(maos_reader_next(&r, &f), MAOS_EFRAME_TOO_LARGE);
    assert_true(r.cap < 65536);
    maos_reader_free(&r);
}

static void test_reader_oversized_space(void **state)
{
    (void)state;
    enum { MAX = 1 << 20 };
    maos_reader r;
    maos_slice f;
    char *sp;
    maos_reader_init(&r, MAX);
    long room = maos_reader_space(&r, &sp, 0);
    assert_true(room >= 4);
    maos_frame_put_len(sp, MAX + 1);
    maos_reader_commit(&r, 4);
    assert_err(maos_reader_space(&r, &sp, 0), MAOS_EFRAME_TOO_LARGE);
    assert_err(maos_reader_next(&r, &f), MAOS_EFRAME_TOO_LARGE);
    assert_true(r.cap < 65536);
    maos_reader_free(&r);
}

static void test_reader_zero_length(void **state)
{
    (void)state;
    maos_reader r;
    maos_slice f;
    char buf[16];
    maos_reader_init(&r, 0);
    frame_bytes(buf, "a", 1);
    maos_frame_put_len(buf + 5, 0);
    maos_reader_feed(&r, buf, 9);
    assert_int_equal(maos_reader_next(&r, &f), 1); /* the frame before it */
    assert_slice(f, "a");
    assert_err(maos_reader_next(&r, &f), MAOS_EBAD_FRAME);
    maos_reader_free(&r);
}

/* Once failed, every call returns the same error, whatever comes next. */
static void test_reader_sticky(void **state)
{
    (void)state;
    maos_reader r;
    maos_slice f;
    char *sp;
    char good[16];
    maos_reader_init(&r, 0);
    maos_reader_feed(&r, "\0\0\0\0", 4);
    assert_err(maos_reader_next(&r, &f), MAOS_EBAD_FRAME);
    frame_bytes(good, "ok", 2);
    assert_err(maos_reader_feed(&r, good, 6), MAOS_EBAD_FRAME);
    assert_err(maos_reader_next(&r, &f), MAOS_EBAD_FRAME);
    assert_err((int)maos_reader_space(&r, &sp, 0), MAOS_EBAD_FRAME);
    assert_err(maos_reader_next(&r, &f), MAOS_EBAD_FRAME);
    maos_reader_free(&r);

    maos_reader_init(&r, 10);
    maos_reader_feed(&r, "\0\0\0\x0b", 4);
    assert_err(maos_reader_next(&r, &f), MAOS_EFRAME_TOO_LARGE);
    assert_err(maos_reader_next(&r, &f), MAOS_EFRAME_TOO_LARGE);
    assert_err(maos_reader_feed(&r, good, 6), MAOS_EFRAME_TOO_LARGE);
    maos_reader_free(&r);
}

static void test_reader_free_zeroed(void **state)
{
    (void)state;
    maos_reader r;
    memset(&r, 0, sizeof r);
    maos_reader_free(&r);
    maos_reader_free(NULL);
}

/* ---- maos_mp_check ------------------------------------------------------------- */

static const maos_limits no_limits = {0};

/* Values of every kind, each one well-formed msgpack. */
static const struct {
    const char *p;
    size_t n;
} values[] = {
    {LIT("\xc0")},
    {LIT("\xc3")},
    {LIT("\x7f")},
    {LIT("\xe0")},
    {LIT("\xcc\xff")},
    {LIT("\xcd\x01\x02")},
    {LIT("\xce\x01\x02\x03\x04")},
    {LIT("\xcf\x01\x02\x03\x04\x05\x06\x07\x08")},
    {LIT("\xd3\x80\0\0\0\0\0\0\0")},
    {LIT("\xca\x3f\x80\0\0")},
    {LIT("\xcb\x3f\xf0\0\0\0\0\0\0")},
    {LIT("\xa3" "abc")},
    {LIT("\xd9\x03" "abc")},
    {LIT("\xda\0\x03" "abc")},
    {LIT("\xdb\0\0\0\x03" "abc")},
    {LIT("\xc4\x02xy")},
    {LIT("\xc6\0\0\0\x02xy")},
    {LIT("\xd4\x01\x02")},
    {LIT("\xd8\x01" "0123456789abcdef")},
    {LIT("\xc7\x02\x05xy")},
    {LIT("\xc9\0\0\0\x02\x05xy")},
    {LIT("\x92\x01\xa1x")},
    {LIT("\xdc\0\x02\x01\x02")},
    {LIT("\xdd\0\0\0\x02\x01\x02")},
    {LIT("\x81\xa1k\x91\x80")},
    {LIT("\xde\0\x01\xa1k\x01")},
    {LIT("\xdf\0\0\0\x01\xa1k\x01")},
    {LIT("\x90")},
    {LIT("\x80")},
};

static void test_mp_check_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int rc = maos_mp_check(values[i].p, values[i].n, NULL);
        if (rc)
            print_error("value %zu\n", i);
        assert_err(rc, 0);
    }
}

/* Every proper prefix of every value is truncated. */
static void test_mp_check_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        for (size_t k = 0; k < values[i].n; k++) {
            int rc = maos_mp_check(values[i].p, k, &no_limits);
            if (rc != MAOS_EBAD_FRAME)
                print_error("value %zu cut to %zu bytes\n", i, k);
            assert_err(rc, MAOS_EBAD_FRAME);
        }
}

static void test_mp_check_trailing(void **state)
{
    (void)state;
    char buf[64];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        memcpy(buf, values[i].p, values[i].n);
        buf[values[i].n] = (char)0xc0;
        assert_err(maos_mp_check(buf, values[i].n + 1, NULL), MAOS_EBAD_FRAME);
    }
}

static void test_mp_check_reserved(void **state)
{
    (void)state;
    assert_err(maos_mp_check("\xc1", 1, NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\x92\x01\xc1"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\x81\xc1\x01"), NULL), MAOS_EBAD_FRAME);
}

/* 32-bit headers that declare more than the bytes present, up to 4 GiB:
 * rejected by looking at the bytes left, never by trying to allocate. */
static void test_mp_check_declared_lengths(void **state)
{
    (void)state;
    assert_err(maos_mp_check(LIT("\xdb\xff\xff\xff\xff" "abc"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdb\0\0\0\x04" "abc"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xc6\xff\xff\xff\xff" "abc"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xc9\xff\xff\xff\xff\x01" "abc"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdd\xff\xff\xff\xff\x01\x02"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdd\0\0\0\x03\x01\x02"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdf\xff\xff\xff\xff\x01\x02"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdf\0\0\0\x02\x01\x02\x03"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xdc\xff\xff\x01"), NULL), MAOS_EBAD_FRAME);
    assert_err(maos_mp_check(LIT("\xde\xff\xff\x01\x01"), NULL), MAOS_EBAD_FRAME);
    /* nested: the inner string lies */
    assert_err(maos_mp_check(LIT("\x91\xdb\x7f\xff\xff\xff" "x"), NULL), MAOS_EBAD_FRAME);
    /* an empty input is no value */
    assert_err(maos_mp_check("", 0, NULL), MAOS_EBAD_FRAME);
}

/* n nested one-element arrays around a 1. */
static char *nested(size_t n)
{
    char *p = malloc(n + 1);
    memset(p, 0x91, n);
    p[n] = 0x01;
    return p;
}

static void test_mp_check_depth(void **state)
{
    (void)state;
    char *p = nested(64);
    assert_err(maos_mp_check(p, 65, NULL), 0); /* default limit: 64 levels */
    free(p);
    p = nested(65);
    assert_err(maos_mp_check(p, 66, NULL), MAOS_ELIMIT);
    free(p);
    /* far deeper than any C stack would survive if it recursed */
    p = nested(1000000);
    assert_err(maos_mp_check(p, 1000001, NULL), MAOS_ELIMIT);
    free(p);

    maos_limits lim = {.max_depth = 3};
    assert_err(maos_mp_check(LIT("\x91\x91\x91\x01"), &lim), 0);
    assert_err(maos_mp_check(LIT("\x91\x91\x91\x91\x01"), &lim), MAOS_ELIMIT);
    assert_err(maos_mp_check(LIT("\x81\xa1k\x81\xa1k\x81\xa1k\x01"), &lim), 0);
    assert_err(maos_mp_check(LIT("\x81\xa1k\x81\xa1k\x81\xa1k\x91\x01"), &lim),
               MAOS_ELIMIT);
}

static void test_mp_check_elems(void **state)
{
    (void)state;
    maos_limits lim = {.max_elems = 10};
    char buf[64];
    buf[0] = (char)0x9a; /* 10 elements */
    memset(buf + 1, 0x01, 11);
    assert_err(maos_mp_check(buf, 11, &lim), 0);
    buf[0] = (char)0x9b; /* 11 */
    assert_err(maos_mp_check(buf, 12, &lim), MAOS_ELIMIT);
    /* a map of 11 entries */
    buf[0] = (char)0x8b;
    memset(buf + 1, 0x01, 22);
    assert_err(maos_mp_check(buf, 23, &lim), MAOS_ELIMIT);
    buf[0] = (char)0x8a;
    assert_err(maos_mp_check(buf, 21, &lim), 0);
    /* array32 of 11 with the bytes present */
    memcpy(buf, "\xdd\0\0\0\x0b", 5);
    memset(buf + 5, 0x01, 11);
    assert_err(maos_mp_check(buf, 16, &lim), MAOS_ELIMIT);
}

/* ---- the msgpack cursor ------------------------------------------------------ */

static void test_mpr_cursor(void **state)
{
    (void)state;
    maos_mpr r;
    uint64_t u;
    int64_t i;
    int b;
    uint32_t n;
    maos_slice s;
    static const char buf[] = "\x94\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xd0\x80\xc3\xa2hi";
    maos_mpr_init(&r, buf, sizeof buf - 1);
    assert_int_equal(maos_mpr_peek(&r), MAOS_MP_ARRAY);
    /* a type mismatch leaves the cursor where it was */
    const uint8_t *at = r.p;
    assert_err(maos_mpr_map(&r, &n), MAOS_EBAD_REQUEST);
    assert_ptr_equal(r.p, at);
    assert_err(maos_mpr_array(&r, &n), 0);
    assert_int_equal(n, 4);
    /* UINT64_MAX is a uint but not an int64 */
    at = r.p;
    assert_err(maos_mpr_int(&r, &i), MAOS_EBAD_REQUEST);
    assert_ptr_equal(r.p, at);
    assert_err(maos_mpr_uint(&r, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_err(maos_mpr_uint(&r, &u), MAOS_EBAD_REQUEST); /* -128 */
    assert_err(maos_mpr_int(&r, &i), 0);
    assert_int_equal(i, -128);
    assert_err(maos_mpr_bool(&r, &b), 0);
    assert_int_equal(b, 1);
    assert_err(maos_mpr_bin(&r, &s), MAOS_EBAD_REQUEST);
    assert_err(maos_mpr_str(&r, &s), 0);
    assert_slice(s, "hi");
    assert_int_equal(maos_mpr_peek(&r), 0); /* at the end */
    assert_err(maos_mpr_nil(&r), MAOS_EBAD_REQUEST);

    /* skip hands back the raw bytes of one whole value */
    static const char two[] = "\x82\xa1k\x92\x01\x02\xa1m\x80\xc0";
    maos_mpr_init(&r, two, sizeof two - 1);
    assert_err(maos_mpr_skip(&r, &s), 0);
    assert_int_equal(s.len, sizeof two - 2);
    assert_ptr_equal(s.ptr, two);
    assert_err(maos_mpr_nil(&r), 0);
    /* a lying header is refused by skip too, cursor unmoved */
    maos_mpr_init(&r, "\x92\x01", 2);
    at = r.p;
    assert_err(maos_mpr_skip(&r, &s), MAOS_EBAD_REQUEST);
    assert_ptr_equal(r.p, at);
    maos_mpr_init(&r, "\xdd\xff\xff\xff\xff\x01", 6);
    assert_err(maos_mpr_array(&r, &n), MAOS_EBAD_REQUEST);
    maos_mpr_init(&r, "\xdf\0\0\0\x02\x01\x02\x03", 8);
    assert_err(maos_mpr_map(&r, &n), MAOS_EBAD_REQUEST);
}

/*
 * maos_mpr_skip has its own tight loop (not maos_mp_check's walk): every
 * header form, msgpack-c's encoding of it, is skipped whole, agrees with
 * maos_mp_check, and every cut of it is refused by both; 0xc1 and lying
 * counts too.
 */
static void test_mpr_skip_forms(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    msgpack_packer *pk = &m.pk;
    static char big[70000];
    memset(big, 'b', sizeof big);
    /* one value per form, each ended by a marker nil */
    int rc = msgpack_pack_nil(pk) || msgpack_pack_true(pk) || msgpack_pack_false(pk) ||
             msgpack_pack_uint8(pk, 5) || msgpack_pack_uint8(pk, 200) ||
             msgpack_pack_uint16(pk, 60000) || msgpack_pack_uint32(pk, 4000000000u) ||
             msgpack_pack_uint64(pk, UINT64_MAX) || msgpack_pack_int8(pk, -5) ||
             msgpack_pack_int8(pk, -100) || msgpack_pack_int16(pk, -30000) ||
             msgpack_pack_int32(pk, -2000000000) || msgpack_pack_int64(pk, INT64_MIN) ||
             msgpack_pack_float(pk, 1.5f) || msgpack_pack_double(pk, 2.5) ||
             msgpack_pack_str_with_body(pk, big, 3) || msgpack_pack_str_with_body(pk, big, 40) ||
             msgpack_pack_str_with_body(pk, big, 300) ||
             msgpack_pack_str_with_body(pk, big, 66000) || msgpack_pack_bin_with_body(pk, big, 0) ||
             msgpack_pack_bin_with_body(pk, big, 300) || msgpack_pack_bin_with_body(pk, big, 66000);
    assert_int_equal(rc, 0);
    for (size_t n = 1; n <= 16; n *= 2)
        assert_int_equal(msgpack_pack_ext_with_body(pk, big, n, 7), 0); /* fixext */
    assert_int_equal(msgpack_pack_ext_with_body(pk, big, 3, 7) ||
                         msgpack_pack_ext_with_body(pk, big, 300, 7) ||
                         msgpack_pack_ext_with_body(pk, big, 66000, 7),
                     0);
    /* containers: fix, 16 and 32-bit counts, nested */
    assert_int_equal(msgpack_pack_array(pk, 2) || msgpack_pack_uint8(pk, 1) ||
                         msgpack_pack_map(pk, 1) || msgpack_pack_str_with_body(pk, "k", 1) ||
                         msgpack_pack_array(pk, 0),
                     0);
    assert_int_equal(msgpack_pack_array(pk, 20), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(msgpack_pack_int(pk, i - 10), 0);
    assert_int_equal(msgpack_pack_map(pk, 17), 0);
    for (int i = 0; i < 17; i++)
        assert_int_equal(msgpack_pack_int(pk, i) || msgpack_pack_nil(pk), 0);
    /* 32-bit counts by hand: array32 [1], map32 {2: nil} */
    assert_int_equal(msgpack_sbuffer_write(&m.sb, "\xdd\0\0\0\1\x01", 6) ||
                         msgpack_sbuffer_write(&m.sb, "\xdf\0\0\0\1\x02\xc0", 7),
                     0);

    /* walk the buffer value by value with maos_mp_check's view of each */
    const char *p = m.sb.data, *end = m.sb.data + m.sb.size;
    int values = 0;
    while (p < end) {
        maos_mpr r;
        maos_slice v;
        maos_mpr_init(&r, p, (size_t)(end - p));
        assert_err(maos_mpr_skip(&r, &v), 0);
        assert_ptr_equal(v.ptr, p);
        assert_err(maos_mp_check(p, v.len, NULL), 0);
        for (uint32_t cut = 0; cut < v.len; cut += cut < 40 ? 1 : 997) {
            maos_mpr_init(&r, p, cut);
            assert_err(maos_mpr_skip(&r, NULL), MAOS_EBAD_REQUEST);
            assert_ptr_equal(r.p, p);
            assert_true(maos_mp_check(p, cut, NULL) != 0);
        }
        p += v.len;
        values++;
    }
    assert_int_equal(values, 35);

    /* refused: the reserved byte, alone and inside a container; counts
     * that cannot fit the bytes left */
    static const struct {
        const char *b;
        size_t n;
    } bad[] = {{"\xc1", 1},
               {"\x91\xc1", 2},
               {"\x82\x01\x02\x03", 4},
               {"\xdc\xff\xff\x01", 4},
               {"\xde\x00\x02\x01\x02\x03", 6},
               {"\xdb\xff\xff\xff\xff", 5},
               {"\xc9\x00\x00\x00\x02\x07\x01", 7}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        maos_mpr r;
        maos_mpr_init(&r, bad[i].b, bad[i].n);
        assert_err(maos_mpr_skip(&r, NULL), MAOS_EBAD_REQUEST);
        assert_true(maos_mp_check(bad[i].b, bad[i].n, NULL) != 0);
    }
    mp_free(&m);
}

/* ---- names, ids, categories --------------------------------------------------- */

static void test_name_check(void **state)
{
    (void)state;
    char buf[300];
    assert_err(maos_name_check(S("orders-1")), 0);
    assert_err(maos_name_check(S("a")), 0);
    assert_err(maos_name_check((maos_slice){"", 0}), MAOS_EINVALID_NAME);
    assert_err(maos_name_check((maos_slice){NULL, 0}), MAOS_EINVALID_NAME);
    memset(buf, 'n', sizeof buf);
    assert_err(maos_name_check((maos_slice){buf, 255}), 0);
    assert_err(maos_name_check((maos_slice){buf, 256}), MAOS_EINVALID_NAME);
    /* 255 bytes ending in a 3-byte character */
    memcpy(buf + 252, "\xe2\x82\xac", 3);
    assert_err(maos_name_check((maos_slice){buf, 255}), 0);
    /* ... and the same character cut by the limit */
    assert_err(maos_name_check((maos_slice){buf, 254}), MAOS_EINVALID_NAME);

    /* valid multi-byte UTF-8 */
    assert_err(maos_name_check(S("\xc3\x9c" "bung")), 0);        /* Ü */
    assert_err(maos_name_check(S("\xe2\x82\xac")), 0);           /* € */
    assert_err(maos_name_check(S("\xf0\x9d\x84\x9e")), 0);       /* U+1D11E */
    assert_err(maos_name_check(S("\xf4\x8f\xbf\xbf")), 0);       /* U+10FFFF */
    assert_err(maos_name_check(S("\xed\x9f\xbf")), 0);           /* U+D7FF */

    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {LIT("a\0b")},               /* NUL */
        {LIT("\0")},
        {LIT("\xff")},               /* never in UTF-8 */
        {LIT("\x80")},               /* lone continuation */
        {LIT("a\xc3")},              /* truncated 2-byte */
        {LIT("\xe2\x82")},           /* truncated 3-byte */
        {LIT("\xc3\x28")},           /* bad continuation */
        {LIT("\xc0\xaf")},           /* overlong '/' */
        {LIT("\xc1\xbf")},           /* overlong */
        {LIT("\xe0\x80\xaf")},       /* overlong 3-byte */
        {LIT("\xf0\x80\x80\xaf")},   /* overlong 4-byte */
        {LIT("\xc0\x80")},           /* overlong NUL */
        {LIT("\xed\xa0\x80")},       /* surrogate U+D800 */
        {LIT("\xed\xbf\xbf")},       /* surrogate U+DFFF */
        {LIT("\xf4\x90\x80\x80")},   /* U+110000 */
        {LIT("\xf8\x88\x80\x80\x80")}, /* 5-byte form */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = maos_name_check((maos_slice){bad[i].p, (uint32_t)bad[i].n});
        if (rc != MAOS_EINVALID_NAME)
            print_error("bad name %zu accepted\n", i);
        assert_err(rc, MAOS_EINVALID_NAME);
    }
}

static void test_uuid(void **state)
{
    (void)state;
    uint8_t id[16], id2[16];
    char text[37];
    static const uint8_t want[16] = {0x01, 0x8f, 0x3c, 0x2a, 0x5b, 0x10, 0x7a, 0xbc,
                                     0x91, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_err(maos_uuid_parse(LIT("018f3c2a-5b10-7abc-9123-456789abcdef"), id), 0);
    assert_memory_equal(id, want, 16);
    assert_err(maos_uuid_parse(LIT("018F3C2A-5B10-7ABC-9123-456789ABCDEF"), id2), 0);
    assert_memory_equal(id2, want, 16);
    maos_uuid_format(id, text);
    assert_string_equal(text, "018f3c2a-5b10-7abc-9123-456789abcdef");
    /* format -> parse for many ids */
    for (int k = 0; k < 256; k++) {
        for (int i = 0; i < 16; i++)
            id[i] = (uint8_t)(k * 31 + i * 17 + 1);
        maos_uuid_format(id, text);
        assert_int_equal(strlen(text), 36);
        assert_err(maos_uuid_parse(text, 36, id2), 0);
        assert_memory_equal(id, id2, 16);
    }

    static const char *bad[] = {
        "018f3c2a-5b10-7abc-9123-456789abcde",   /* 35 */
        "018f3c2a-5b10-7abc-9123-456789abcdef0", /* 37 */
        "018f3c2a5b10-7abc-9123-456789abcdef0",  /* dash missing */
        "018f3c2a-5b10-7abc-9123_456789abcdef",  /* wrong separator */
        "018f3c2-a5b10-7abc-9123-456789abcdef",  /* dash misplaced */
        "018f3c2a-5b10-7abc-9123-456789abcdeg",  /* not hex */
        "018f3c2a-5b10-7abc-9123-4567 9abcdef",
        "00000000-0000-0000-0000-000000000000",  /* nil */
        "{18f3c2a-5b10-7abc-9123-456789abcdef}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(id, 0xaa, 16);
        int rc = maos_uuid_parse(bad[i], strlen(bad[i]), id);
        if (rc != MAOS_EINVALID_ID)
            print_error("accepted \"%s\"\n", bad[i]);
        assert_err(rc, MAOS_EINVALID_ID);
        /* out-parameters are written only on success */
        for (int k = 0; k < 16; k++)
            assert_int_equal(id[k], 0xaa);
    }
}

static void test_category(void **state)
{
    (void)state;
    assert_slice(maos_category(S("orders-123")), "orders");
    assert_slice(maos_category(S("orders")), "orders");
    assert_slice(maos_category(S("a-b-c")), "a");
    assert_slice(maos_category(S("-x")), "");
    assert_slice(maos_category(S("x-")), "x");
    /* only the bytes of the slice count, not what follows them */
    assert_slice(maos_category((maos_slice){"abc-def", 3}), "abc");
}

/* ---- the filter --------------------------------------------------------------- */

static void test_filter_match(void **state)
{
    (void)state;
    maos_record rec;
    memset(&rec, 0, sizeof rec);
    rec.stream = S("orders-1");
    rec.type = S("Created");
    rec.time = 1000;
    maos_filter f;

#define MATCH(want)                                                            \
    do {                                                                       \
        assert_int_equal(maos_filter_match(&f, &rec), (want));                 \
        memset(&f, 0, sizeof f);                                               \
    } while (0)

    memset(&f, 0, sizeof f);
    MATCH(1);
    f.stream = S("orders-1"); MATCH(1);
    f.stream = S("orders-10"); MATCH(0);
    f.stream = S("orders"); MATCH(0);
    f.prefix = S("ord"); MATCH(1);
    f.prefix = S("orders-1"); MATCH(1);
    f.prefix = S("orders-12"); MATCH(0);
    f.prefix = S("x"); MATCH(0);
    f.category = S("orders"); MATCH(1);
    f.category = S("order"); MATCH(0);
    f.category = S("orders-1"); MATCH(0);
    maos_slice types[3] = {S("Deleted"), S("Created"), S("Shipped")};
    f.types = types; f.n_types = 3; MATCH(1);
    f.types = types; f.n_types = 1; MATCH(0);
    f.types = types + 2; f.n_types = 1; MATCH(0);
    f.has_since = 1; f.since = 1000; MATCH(1);
    f.has_since = 1; f.since = 1001; MATCH(0);
    f.has_until = 1; f.until = 1000; MATCH(1);
    f.has_until = 1; f.until = 999; MATCH(0);
    f.has_since = 1; f.since = -5; f.has_until = 1; f.until = 5000; MATCH(1);
    /* every part set, all matching */
    f.stream = S("orders-1"); f.prefix = S("orders"); f.category = S("orders");
    f.types = types; f.n_types = 2; f.has_since = 1; f.since = 1000;
    f.has_until = 1; f.until = 1000; MATCH(1);
    /* every part set, one failing */
    f.stream = S("orders-1"); f.prefix = S("orders"); f.category = S("orders");
    f.types = types; f.n_types = 2; f.has_since = 1; f.since = 1000;
    f.has_until = 1; f.until = 999; MATCH(0);
#undef MATCH
}

/* ---- error and op tables ------------------------------------------------------- */

static void test_error_table(void **state)
{
    (void)state;
#define CHECK_ERR_(name, num, msg)                                             \
    assert_int_equal(MAOS_E##name, -(num));                                    \
    assert_string_equal(maos_err_name(-(num)), #name);                         \
    assert_int_equal(maos_err_from_name(#name, sizeof(#name) - 1), -(num));    \
    assert_string_equal(maos_strerror(-(num)), msg);
    MAOS_ERRNO_MAP(CHECK_ERR_)
#undef CHECK_ERR_
    assert_string_equal(maos_err_name(-99999), "UNKNOWN");
    assert_non_null(maos_strerror(-99999));
    assert_int_equal(maos_err_from_name("NOPE", 4), 0);
    assert_int_equal(maos_err_from_name("BAD_REQUESTX", 12), 0);
    assert_int_equal(maos_err_from_name("BAD_REQUEST", 3), 0); /* a prefix */
}

static void test_op_table(void **state)
{
    (void)state;
    for (int op = MAOS_OP_NONE + 1; op < MAOS_OP__COUNT; op++) {
        const char *name = maos_op_name((maos_op)op);
        assert_non_null(name);
        assert_int_equal(maos_op_from_name(name, strlen(name)), op);
    }
    assert_null(maos_op_name(MAOS_OP_NONE));
    assert_null(maos_op_name(MAOS_OP__COUNT));
    assert_int_equal(maos_op_from_name("pin", 3), MAOS_OP_NONE);
    assert_int_equal(maos_op_from_name("pingx", 5), MAOS_OP_NONE);
    assert_string_equal(maos_op_name(MAOS_OP_READ_ALL), "read_all");
}

/* ---- request round trips ------------------------------------------------------- */

static void test_rt_hello(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    assert_int_equal(maos_enc_hello(&m.pk, 7, MAOS_PROTOCOL_VERSION, "agent-a"), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_HELLO);
    assert_int_equal(req.rid, 7);
    assert_int_equal(req.version, MAOS_PROTOCOL_VERSION);
    assert_slice(req.client_name, "agent-a");
    maos_request_free(&req);

    mp_reset(&m);
    assert_int_equal(maos_enc_hello(&m.pk, 1, 9, NULL), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.version, 9);
    assert_int_equal(req.client_name.len, 0);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_simple(void **state)
{
    (void)state;
    static const maos_op ops[] = {MAOS_OP_PING, MAOS_OP_STATS};
    mp m;
    maos_request req;
    mp_init(&m);
    for (size_t i = 0; i < 2; i++) {
        mp_reset(&m);
        assert_int_equal(maos_enc_simple(&m.pk, UINT64_MAX - i, ops[i]), 0);
        decode_ok(&m, &req);
        assert_int_equal(req.op, ops[i]);
        assert_true(req.rid == UINT64_MAX - i);
        maos_request_free(&req);
    }
    mp_free(&m);
}

static void test_rt_append_plain(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    maos_event_in ev[2] = {{.type = S("Created")}, {.type = S("Shipped")}};
    maos_append_in a = {S("orders-1"), MAOS_EXPECT_ANY, 2, ev};
    static const int64_t expects[] = {MAOS_EXPECT_ANY, MAOS_EXPECT_NO_STREAM,
                                      MAOS_EXPECT_EXISTS, 0, 5, INT64_MAX};
    mp_init(&m);
    for (size_t k = 0; k < sizeof expects / sizeof expects[0]; k++) {
        a.expect = expects[k];
        mp_reset(&m);
        assert_int_equal(maos_enc_append(&m.pk, 3, &a), 0);
        decode_ok(&m, &req);
        assert_int_equal(req.op, MAOS_OP_APPEND);
        assert_int_equal(req.rid, 3);
        assert_int_equal(req.n_appends, 1);
        maos_append_in *d = &req.appends[0];
        assert_slice(d->stream, "orders-1");
        assert_true(d->expect == expects[k]);
        assert_int_equal(d->n_events, 2);
        assert_slice(d->events[0].type, "Created");
        assert_slice(d->events[1].type, "Shipped");
        for (int i = 0; i < 2; i++) {
            assert_int_equal(d->events[i].has_id, 0);
            assert_int_equal(d->events[i].data.len, 0);
            assert_int_equal(d->events[i].meta.len, 0);
        }
        maos_request_free(&req);
    }
    /* an expectation below the named ones cannot be encoded */
    a.expect = -4;
    mp_reset(&m);
    assert_err(maos_enc_append(&m.pk, 3, &a), MAOS_EINVALID_ARG);
    mp_free(&m);
}

static void test_rt_append_ids_meta(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    maos_event_in ev[2];
    memset(ev, 0, sizeof ev);
    for (int i = 0; i < 2; i++) {
        ev[i].has_id = 1;
        for (int k = 0; k < 16; k++)
            ev[i].id[k] = (uint8_t)(i * 16 + k + 1);
        ev[i].type = S("Tick");
    }
    ev[0].data = (maos_slice){LIT("\x82\xa1n\x01\xa1s\xa2hi")};
    ev[0].meta = (maos_slice){LIT("\x81\xa5" "agent\xa2" "a1")};
    ev[1].data = (maos_slice){LIT("\x93\xc0\xc3\xcb\x3f\xf0\0\0\0\0\0\0")};
    maos_append_in a = {S("clock-\xc3\x9c"), 41, 2, ev};
    mp_init(&m);
    assert_int_equal(maos_enc_append(&m.pk, 8, &a), 0);
    decode_ok(&m, &req);
    maos_append_in *d = &req.appends[0];
    assert_slice(d->stream, "clock-\xc3\x9c");
    assert_int_equal(d->expect, 41);
    assert_int_equal(d->n_events, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(d->events[i].has_id, 1);
        assert_memory_equal(d->events[i].id, ev[i].id, 16);
        assert_slice_n(d->events[i].data, ev[i].data.ptr, ev[i].data.len);
        assert_slice_n(d->events[i].meta, ev[i].meta.ptr, ev[i].meta.len);
    }
    /* data and meta are views into the frame: stored exactly as sent */
    assert_true(d->events[0].data.ptr >= m.sb.data &&
                d->events[0].data.ptr < m.sb.data + m.sb.size);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_txn(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    maos_event_in e1[2] = {{.type = S("A")}, {.type = S("B")}};
    maos_event_in e2 = {.type = S("C"), .data = {LIT("\x07")}};
    maos_append_in a[3] = {
        {S("s-1"), 1, 2, e1},
        {S("s-2"), MAOS_EXPECT_NO_STREAM, 1, &e2},
        {S("s-3"), MAOS_EXPECT_EXISTS, 1, &e2},
    };
    mp_init(&m);
    assert_int_equal(maos_enc_txn(&m.pk, 11, a, 3), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_TXN);
    assert_int_equal(req.rid, 11);
    assert_int_equal(req.n_appends, 3);
    for (int i = 0; i < 3; i++) {
        assert_slice_n(req.appends[i].stream, a[i].stream.ptr, a[i].stream.len);
        assert_true(req.appends[i].expect == a[i].expect);
        assert_int_equal(req.appends[i].n_events, a[i].n_events);
    }
    assert_slice(req.appends[0].events[1].type, "B");
    assert_slice(req.appends[2].events[0].data, "\x07");
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_read(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    assert_int_equal(maos_enc_read(&m.pk, 4, S("orders-1"), 0, 0, 0, 0), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_READ);
    assert_slice(req.stream, "orders-1");
    assert_int_equal(req.has_from, 0);
    assert_int_equal(req.backward, 0);
    assert_int_equal(req.limit, MAOS_READ_LIMIT_DEFAULT);
    maos_request_free(&req);

    mp_reset(&m);
    assert_int_equal(maos_enc_read(&m.pk, 5, S("orders-1"), 1, 0, 1, 17), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.has_from, 1);
    assert_int_equal(req.from, 0);
    assert_int_equal(req.backward, 1);
    assert_int_equal(req.limit, 17);
    maos_request_free(&req);

    /* limits above the maximum are clamped, not refused */
    mp_reset(&m);
    assert_int_equal(maos_enc_read(&m.pk, 6, S("s"), 1, UINT64_MAX, 0,
                                   MAOS_READ_LIMIT_MAX + 1), 0);
    decode_ok(&m, &req);
    assert_true(req.from == UINT64_MAX);
    assert_int_equal(req.limit, MAOS_READ_LIMIT_MAX);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_read_all(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    maos_slice types[3] = {S("Created"), S("Shipped"), S("\xe2\x82\xac")};
    maos_filter f = {.stream = S("orders-1"), .prefix = S("ord"), .category = S("orders"),
                     .n_types = 3, .types = types, .has_since = 1, .since = -7,
                     .has_until = 1, .until = INT64_MAX};
    mp_init(&m);
    assert_int_equal(maos_enc_read_all(&m.pk, 12, 1, 100, 1, 50, &f), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_READ_ALL);
    assert_int_equal(req.rid, 12);
    assert_int_equal(req.has_from, 1);
    assert_int_equal(req.from, 100);
    assert_int_equal(req.backward, 1);
    assert_int_equal(req.limit, 50);
    assert_slice(req.filter.stream, "orders-1");
    assert_slice(req.filter.prefix, "ord");
    assert_slice(req.filter.category, "orders");
    assert_int_equal(req.filter.n_types, 3);
    for (int i = 0; i < 3; i++)
        assert_slice_n(req.filter.types[i], types[i].ptr, types[i].len);
    assert_int_equal(req.filter.has_since, 1);
    assert_int_equal(req.filter.since, -7);
    assert_int_equal(req.filter.has_until, 1);
    assert_true(req.filter.until == INT64_MAX);
    maos_request_free(&req);

    /* no filter at all */
    mp_reset(&m);
    assert_int_equal(maos_enc_read_all(&m.pk, 13, 0, 0, 0, 0, NULL), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.has_from, 0);
    assert_int_equal(req.filter.stream.len, 0);
    assert_int_equal(req.filter.prefix.len, 0);
    assert_int_equal(req.filter.category.len, 0);
    assert_int_equal(req.filter.n_types, 0);
    assert_int_equal(req.filter.has_since, 0);
    assert_int_equal(req.filter.has_until, 0);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_streams(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    assert_int_equal(maos_enc_streams(&m.pk, 14, S("orders"), S("orders-7"), 25), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_STREAMS);
    assert_slice(req.prefix, "orders");
    assert_slice(req.after, "orders-7");
    assert_int_equal(req.limit, 25);
    maos_request_free(&req);
    mp_reset(&m);
    assert_int_equal(maos_enc_streams(&m.pk, 15, S(""), S(""), 0), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.prefix.len, 0);
    assert_int_equal(req.after.len, 0);
    assert_int_equal(req.limit, MAOS_READ_LIMIT_DEFAULT);
    maos_request_free(&req);
    mp_free(&m);
}

/* ---- request rejections --------------------------------------------------------- */

static void test_request_rejections(void **state)
{
    (void)state;
    /* the rid survives a failure further on, so the error reply can carry it */
    assert_int_equal(decode_err(LIT("\x82\xa3rid\x2a\xa2op\xa4nope"), NULL,
                                MAOS_EUNKNOWN_OP), 42);
    decode_err(LIT("\x81\xa2op\xa4ping"), NULL, MAOS_EBAD_REQUEST);   /* no rid */
    decode_err(LIT("\x81\xa3rid\x01"), NULL, MAOS_EBAD_REQUEST);      /* no op */
    decode_err(LIT("\x92\xa4ping\x01"), NULL, MAOS_EBAD_REQUEST);     /* not a map */
    decode_err(LIT("\x82\xa2op\xa4ping\xa3rid\xff"), NULL, MAOS_EBAD_REQUEST); /* rid -1 */
    decode_err(LIT("\x82\xa2op\xa4ping\xa3rid\x01\xc0"), NULL, MAOS_EBAD_FRAME);
    decode_err(LIT("\x82\xa2op\xa4ping\xa3rid"), NULL, MAOS_EBAD_FRAME);
    decode_err(LIT("\x82\xa2op\xc1\xa3rid\x01"), NULL, MAOS_EBAD_FRAME);
    decode_err(LIT("\x82\xa2op\xa5hello\xa3rid\x01"), NULL, MAOS_EBAD_REQUEST); /* no version */

    /* names: invalid, reserved, too long */
    decode_err(LIT("\x83\xa2op\xa4read\xa3rid\x01\xa6stream\xa0"), NULL, MAOS_EINVALID_NAME);
    decode_err(LIT("\x83\xa2op\xa4read\xa3rid\x01\xa6stream\xa2\xc0\xaf"), NULL,
               MAOS_EINVALID_NAME);
    decode_err(LIT("\x83\xa2op\xa4read\xa3rid\x01\xa6stream\x05"), NULL, MAOS_EBAD_REQUEST);
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa4$all"
                   "\xa6" "events\x91\x81\xa4type\xa1T"),
               NULL, MAOS_EINVALID_NAME);
    /* ids: nil bin, short bin, bad text */
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa1s"
                   "\xa6" "events\x91\x82\xa4type\xa1T\xa2id\xc4\x10"
                   "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
               NULL, MAOS_EINVALID_ID);
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa1s"
                   "\xa6" "events\x91\x82\xa4type\xa1T\xa2id\xc4\x02xy"),
               NULL, MAOS_EINVALID_ID);
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa1s"
                   "\xa6" "events\x91\x82\xa4type\xa1T\xa2id\xa3" "abc"),
               NULL, MAOS_EINVALID_ID);
    /* events: empty, missing type */
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa1s\xa6" "events\x90"),
               NULL, MAOS_EBAD_REQUEST);
    decode_err(LIT("\x84\xa2op\xa6" "append\xa3rid\x01\xa6stream\xa1s"
                   "\xa6" "events\x91\x81\xa4" "data\x01"),
               NULL, MAOS_EBAD_REQUEST);
    /* a txn naming a stream twice */
    decode_err(LIT("\x83\xa2op\xa3txn\xa3rid\x01\xa7" "appends\x92"
                   "\x82\xa6stream\xa1s\xa6" "events\x91\x81\xa4type\xa1T"
                   "\x82\xa6stream\xa1s\xa6" "events\x91\x81\xa4type\xa1T"),
               NULL, MAOS_EBAD_REQUEST);
    /* limit 0 */
    decode_err(LIT("\x84\xa2op\xa4read\xa3rid\x01\xa6stream\xa1s\xa5limit\x00"), NULL,
               MAOS_EBAD_REQUEST);
}

static void test_request_limits(void **state)
{
    (void)state;
    mp m;
    maos_event_in ev[4] = {{.type = S("T")}, {.type = S("T")}, {.type = S("T")},
                           {.type = S("T")}};
    maos_append_in a[3] = {{S("a"), MAOS_EXPECT_ANY, 2, ev},
                           {S("b"), MAOS_EXPECT_ANY, 2, ev},
                           {S("c"), MAOS_EXPECT_ANY, 1, ev}};
    mp_init(&m);
    maos_limits lim = {.max_events = 3};
    assert_int_equal(maos_enc_append(&m.pk, 1, &(maos_append_in){S("s"), -1, 4, ev}), 0);
    decode_err(m.sb.data, m.sb.size, &lim, MAOS_ELIMIT);
    mp_reset(&m);
    /* the events of all appends of a txn count together */
    assert_int_equal(maos_enc_txn(&m.pk, 1, a, 2), 0);
    decode_err(m.sb.data, m.sb.size, &lim, MAOS_ELIMIT);
    mp_reset(&m);
    lim = (maos_limits){.max_appends = 2};
    assert_int_equal(maos_enc_txn(&m.pk, 1, a, 3), 0);
    decode_err(m.sb.data, m.sb.size, &lim, MAOS_ELIMIT);
    mp_reset(&m);
    lim = (maos_limits){.max_types = 1};
    maos_slice types[2] = {S("A"), S("B")};
    maos_filter f = {.n_types = 2, .types = types};
    assert_int_equal(maos_enc_read_all(&m.pk, 1, 0, 0, 0, 0, &f), 0);
    decode_err(m.sb.data, m.sb.size, &lim, MAOS_ELIMIT);
    mp_reset(&m);
    lim = (maos_limits){.max_depth = 2};
    assert_int_equal(maos_enc_append(&m.pk, 1, &(maos_append_in){S("s"), -1, 1, ev}), 0);
    decode_err(m.sb.data, m.sb.size, &lim, MAOS_ELIMIT);
    mp_free(&m);
}

/* ---- records --------------------------------------------------------------------- */

static void enc_rec(mp *m, uint64_t pos, int64_t time, uint64_t version,
                    const char *stream, maos_slice data, maos_slice meta)
{
    uint8_t id[16], prev[32];
    memset(id, (int)pos, sizeof id);
    memset(prev, (int)(pos + 1), sizeof prev);
    assert_int_equal(maos_enc_record(&m->pk, pos, time, version, S(stream), S("Type"),
                                     id, prev, data, meta), 0);
}

static void test_rt_record(void **state)
{
    (void)state;
    mp m;
    maos_record rec;
    mp_init(&m);
    enc_rec(&m, 5, 1767225600123456, 3, "orders-1", (maos_slice){LIT("\x81\xa1k\x01")},
            (maos_slice){LIT("\x81\xa5" "agent\xa2" "a1")});
    assert_err(maos_record_decode(m.sb.data, m.sb.size, &rec), 0);
    assert_int_equal(rec.position, 5);
    assert_int_equal(rec.time, 1767225600123456);
    assert_int_equal(rec.version, 3);
    assert_slice(rec.stream, "orders-1");
    assert_slice(rec.type, "Type");
    assert_int_equal(rec.id.len, 16);
    assert_int_equal((uint8_t)rec.id.ptr[0], 5);
    assert_int_equal(rec.prev.len, MAOS_HASH_BYTES);
    assert_int_equal((uint8_t)rec.prev.ptr[31], 6);
    assert_slice(rec.data, "\x81\xa1k\x01");
    assert_slice(rec.meta, "\x81\xa5" "agent\xa2" "a1");
    assert_ptr_equal(rec.raw.ptr, m.sb.data);
    assert_int_equal(rec.raw.len, m.sb.size);
    size_t small = m.sb.size;

    /* position, time and version are fixed width: the size of a record
     * does not depend on them */
    mp_reset(&m);
    enc_rec(&m, UINT64_MAX, INT64_MIN, 1ull << 40, "orders-1",
            (maos_slice){LIT("\x81\xa1k\x01")}, (maos_slice){LIT("\x81\xa5" "agent\xa2" "a1")});
    assert_int_equal(m.sb.size, small);
    assert_err(maos_record_decode(m.sb.data, m.sb.size, &rec), 0);
    assert_true(rec.position == UINT64_MAX);
    assert_true(rec.time == INT64_MIN);

    /* no data: nil; no meta: {} */
    mp_reset(&m);
    enc_rec(&m, 1, 0, 0, "s", (maos_slice){0}, (maos_slice){0});
    assert_err(maos_record_decode(m.sb.data, m.sb.size, &rec), 0);
    assert_slice(rec.data, "\xc0");
    assert_slice(rec.meta, "\x80");

    /* trailing bytes after a record */
    msgpack_pack_nil(&m.pk);
    assert_err(maos_record_decode(m.sb.data, m.sb.size, &rec), MAOS_EPROTO);
    /* a record missing a key */
    assert_err(maos_record_decode(LIT("\x81\xa8position\x01"), &rec), MAOS_EPROTO);
    mp_free(&m);
}

/* ---- replies ----------------------------------------------------------------------- */

static void decode_reply_ok(const mp *m, maos_reply *rep)
{
    int rc = maos_reply_decode(m->sb.data, m->sb.size, rep);
    assert_err(rc, 0);
}

static void test_rt_reply_hello_ok(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    mp_init(&m);
    assert_int_equal(maos_enc_reply_hello(&m.pk, 1, 1, "maosd 0.1.0", 4096), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.rid, 1);
    assert_int_equal(rep.ok, 1);
    assert_int_equal(rep.version, 1);
    assert_slice(rep.server, "maosd 0.1.0");
    assert_int_equal(rep.max_frame, 4096);
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_ok(&m.pk, 77), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.rid, 77);
    assert_int_equal(rep.ok, 1);
    assert_int_equal(rep.code, 0);
    assert_int_equal(rep.index, -1);
    assert_int_equal(rep.has_actual, 0);
    mp_free(&m);
}

static void test_rt_reply_append(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    uint8_t ids[48];
    for (int i = 0; i < 48; i++)
        ids[i] = (uint8_t)(i + 1);
    maos_append_result res[3] = {
        {S("a-1"), 5, 100, 2, 0, {(const char *)ids, 32}},
        {S("b-1"), 0, 102, 1, 1, {(const char *)ids + 32, 16}},
        {S("c-1"), 9, 103, 3, 0, {(const char *)ids, 48}},
    };
    mp_init(&m);
    assert_int_equal(maos_enc_reply_append(&m.pk, 2, 0, res, 1), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.ok, 1);
    assert_slice(rep.result.stream, "a-1");
    assert_int_equal(rep.result.first_version, 5);
    assert_int_equal(rep.result.first_position, 100);
    assert_int_equal(rep.result.count, 2);
    assert_int_equal(rep.result.duplicate, 0);
    assert_slice_n(rep.result.ids, (const char *)ids, 32);
    /* a single append's reply has exactly one result */
    mp_reset(&m);
    assert_err(maos_enc_reply_append(&m.pk, 2, 0, res, 2), MAOS_EINVALID_ARG);

    mp_reset(&m);
    assert_int_equal(maos_enc_reply_append(&m.pk, 3, 1, res, 3), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.n_results, 3);
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    assert_err(maos_mpr_array(&r, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        maos_append_result got;
        assert_err(maos_append_result_next(&r, &got), 0);
        assert_slice_n(got.stream, res[i].stream.ptr, res[i].stream.len);
        assert_int_equal(got.first_version, res[i].first_version);
        assert_int_equal(got.first_position, res[i].first_position);
        assert_int_equal(got.count, res[i].count);
        assert_int_equal(got.duplicate, res[i].duplicate);
        assert_slice_n(got.ids, res[i].ids.ptr, res[i].ids.len);
    }
    assert_ptr_equal(r.p, r.end);
    mp_free(&m);
}

static void test_rt_reply_error(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    mp_init(&m);
    assert_int_equal(maos_enc_error(&m.pk, 4, MAOS_EWRONG_EXPECTED_VERSION,
                                    "stream orders-1 is at 4", 1, 4, 2), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.rid, 4);
    assert_int_equal(rep.ok, 0);
    assert_err(rep.code, MAOS_EWRONG_EXPECTED_VERSION);
    assert_slice(rep.message, "stream orders-1 is at 4");
    assert_int_equal(rep.has_actual, 1);
    assert_int_equal(rep.actual, 4);
    assert_int_equal(rep.index, 2);

    mp_reset(&m);
    assert_int_equal(maos_enc_error(&m.pk, 5, MAOS_EWRONG_EXPECTED_VERSION, NULL, 1,
                                    -1, -1), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.actual, -1);
    assert_int_equal(rep.index, -1);
    /* no message: the code's default message */
    assert_slice(rep.message, maos_strerror(MAOS_EWRONG_EXPECTED_VERSION));

    /* every wire code survives the trip */
#define ONE_CODE_(name, num, msg)                                              \
    if ((num) < MAOS_ERRNO_LOCAL_MIN) {                                        \
        mp_reset(&m);                                                          \
        assert_int_equal(maos_enc_error(&m.pk, 6, -(num), "x", 0, 0, -1), 0);  \
        decode_reply_ok(&m, &rep);                                             \
        assert_err(rep.code, -(num));                                          \
        assert_int_equal(rep.has_actual, 0);                                   \
        assert_int_equal(rep.index, -1);                                       \
    }
    MAOS_ERRNO_MAP(ONE_CODE_)
#undef ONE_CODE_

    /* a code this client does not know is a protocol error, not success */
    assert_err(maos_reply_decode(LIT("\x83\xa3rid\x01\xa2ok\xc2\xa4" "code\xa4" "NOPE"),
                                 &rep), 0);
    assert_int_equal(rep.ok, 0);
    assert_err(rep.code, MAOS_EPROTO);
    /* so is a failure without any code */
    assert_err(maos_reply_decode(LIT("\x82\xa3rid\x01\xa2ok\xc2"), &rep), 0);
    assert_err(rep.code, MAOS_EPROTO);
    /* malformed replies */
    assert_err(maos_reply_decode(LIT("\x81\xa3rid\x01"), &rep), MAOS_EPROTO);
    assert_err(maos_reply_decode(LIT("\x81\xa2ok\xc3"), &rep), MAOS_EPROTO);
    assert_err(maos_reply_decode(LIT("\x82\xa3rid\x01\xa2ok\xc3\xc0"), &rep), MAOS_EPROTO);
    assert_err(maos_reply_decode(LIT("\x82\xa3rid\x01\xa2ok\x01"), &rep), MAOS_EPROTO);
    mp_free(&m);
}

static void test_rt_reply_stats(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    maos_stats st;
    memset(&st, 0, sizeof st);
    uint64_t v = 1;
#define SET_(name) st.name = v++ * 1000003;
    MAOS_STATS_MAP(SET_)
#undef SET_
    st.max_frame = 4096; /* shares the hello reply's key, which is 32-bit */
    st.server = S("maosd 0.1.0");
    st.state = S("read_only");
    st.durability = S("none");
    static const char hash[32] = "0123456789abcdef0123456789abcdef";
    st.head_hash = (maos_slice){hash, 32};
    mp_init(&m);
    assert_int_equal(maos_enc_reply_stats(&m.pk, 9, &st), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.has_stats, 1);
#define CHECK_(name) assert_int_equal(rep.stats.name, st.name);
    MAOS_STATS_MAP(CHECK_)
#undef CHECK_
    assert_slice(rep.stats.server, "maosd 0.1.0");
    assert_slice(rep.stats.state, "read_only");
    assert_slice(rep.stats.durability, "none");
    assert_int_equal(rep.stats.head_hash.len, 32);
    assert_memory_equal(rep.stats.head_hash.ptr, hash, 32);
    /* a head_hash that is not 32 bytes is a protocol error */
    st.head_hash = (maos_slice){hash, 31};
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_stats(&m.pk, 9, &st), 0);
    assert_int_equal(maos_reply_decode(m.sb.data, m.sb.size, &rep), MAOS_EPROTO);
    mp_free(&m);
}

static void test_rt_reply_events_list(void **state)
{
    (void)state;
    mp m, rec;
    maos_reply rep;
    maos_list_mark mark;
    mp_init(&m);
    mp_init(&rec);
    assert_int_equal(maos_enc_list_begin(&m.sb, 10, "events", &mark), 0);
    /* records go in as stored bytes, copied, never re-encoded */
    for (uint64_t pos = 1; pos <= 3; pos++) {
        mp_reset(&rec);
        enc_rec(&rec, pos, (int64_t)pos * 10, pos - 1, "orders-1",
                (maos_slice){LIT("\x01")}, (maos_slice){0});
        assert_int_equal(msgpack_sbuffer_write(&m.sb, rec.sb.data, rec.sb.size), 0);
    }
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 3, MAOS_NEXT_UINT, 4, S("")), 0);
    assert_err(maos_mp_check(m.sb.data, m.sb.size, NULL), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.rid, 10);
    assert_int_equal(rep.n_items, 3);
    assert_int_equal(rep.next_kind, MAOS_NEXT_UINT);
    assert_int_equal(rep.next_u, 4);

    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    assert_err(maos_mpr_array(&r, &n), 0);
    assert_int_equal(n, 3);
    for (uint64_t pos = 1; pos <= 3; pos++) {
        maos_record got;
        assert_err(maos_record_next(&r, &got), 0);
        assert_int_equal(got.position, pos);
        assert_int_equal(got.version, pos - 1);
        assert_int_equal(got.time, (int64_t)pos * 10);
        assert_slice(got.stream, "orders-1");
        assert_slice(got.data, "\x01");
        assert_int_equal(got.raw.len, rec.sb.size);
    }
    assert_ptr_equal(r.p, r.end);
    assert_err(maos_record_next(&r, &(maos_record){0}), MAOS_EPROTO);

    /* an empty page, nothing after it */
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 11, "events", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_NONE, 0, S("")), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.n_items, 0);
    assert_int_equal(rep.next_kind, MAOS_NEXT_NONE);

    /* a patched count that claims more than was written is refused */
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 12, "events", &mark), 0);
    assert_int_equal(msgpack_sbuffer_write(&m.sb, rec.sb.data, rec.sb.size), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 2, MAOS_NEXT_NONE, 0, S("")), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), MAOS_EPROTO);
    mp_free(&rec);
    mp_free(&m);
}

static void test_rt_reply_streams_list(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    maos_list_mark mark;
    static const char *names[] = {"orders-1", "orders-2", "orders-\xc3\x9c"};
    mp_init(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 13, "streams", &mark), 0);
    for (int i = 0; i < 3; i++) {
        maos_stream_info si = {S(names[i]), (uint64_t)i, (uint64_t)i + 1,
                               (uint64_t)i * 100 + 7};
        assert_int_equal(maos_enc_stream_info(&m.pk, &si), 0);
    }
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 3, MAOS_NEXT_STR, 0,
                                       S("orders-\xc3\x9c")), 0);
    decode_reply_ok(&m, &rep);
    assert_int_equal(rep.n_items, 3);
    assert_int_equal(rep.next_kind, MAOS_NEXT_STR);
    assert_slice(rep.next_s, "orders-\xc3\x9c");
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    assert_err(maos_mpr_array(&r, &n), 0);
    for (int i = 0; i < 3; i++) {
        maos_stream_info si;
        assert_err(maos_stream_info_next(&r, &si), 0);
        assert_slice(si.stream, names[i]);
        assert_int_equal(si.head, i);
        assert_int_equal(si.count, i + 1);
        assert_int_equal(si.last_position, i * 100 + 7);
    }
    assert_ptr_equal(r.p, r.end);
    mp_free(&m);
}

/* ---- required reply fields (issue 15, finding 8) ---------------------------------- */

static int in_list(maos_slice k, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (k.len == strlen(list[i]) && memcmp(k.ptr, list[i], k.len) == 0)
            return 1;
    return 0;
}

/* Copy the map src[0..len) into out, leaving out the keys in drop
 * (NULL-terminated, may be NULL). */
static void copy_map_without(const char *src, size_t len, const char *const *drop, mp *out)
{
    maos_mpr r, r2;
    uint32_t n, keep = 0;
    maos_slice k, v;
    maos_mpr_init(&r, src, len);
    assert_err(maos_mpr_map(&r, &n), 0);
    r2 = r;
    for (uint32_t i = 0; i < n; i++) {
        assert_err(maos_mpr_str(&r2, &k), 0);
        assert_err(maos_mpr_skip(&r2, NULL), 0);
        keep += !in_list(k, drop);
    }
    mp_reset(out);
    assert_int_equal(msgpack_pack_map(&out->pk, keep), 0);
    for (uint32_t i = 0; i < n; i++) {
        assert_err(maos_mpr_str(&r, &k), 0);
        assert_err(maos_mpr_skip(&r, &v), 0);
        if (in_list(k, drop))
            continue;
        assert_int_equal(msgpack_pack_str_with_body(&out->pk, k.ptr, k.len), 0);
        assert_int_equal(msgpack_sbuffer_write(&out->sb, v.ptr, v.len), 0);
    }
}

/*
 * full: an encoder's whole reply to op.  promised: the fields PROTOCOL.md
 * promises for it (written here from the document, not from msg.c).  The
 * whole reply passes maos_reply_check; the encoder writes exactly the
 * promised fields; without any one of them the reply still decodes (the
 * decoder is generic) but maos_reply_check refuses it naming that field.
 * Fields in `optional` (NULL-terminated, or NULL) may be in the reply too;
 * a reply without them still passes.
 */
static const char *const *optional;

static void check_promised(maos_op op, const mp *full, const char *const *promised)
{
    maos_reply rep;
    char why[200];
    maos_mpr r;
    uint32_t n;
    size_t n_promised = 0, n_opt = 0;
    mp cut;
    assert_err(maos_reply_decode(full->sb.data, full->sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, op, why, sizeof why), 0);

    maos_mpr_init(&r, full->sb.data, full->sb.size);
    assert_err(maos_mpr_map(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        assert_err(maos_mpr_str(&r, &k), 0);
        assert_err(maos_mpr_skip(&r, NULL), 0);
        if (optional && in_list(k, optional)) {
            n_opt++;
            continue;
        }
        if (!in_list(k, (const char *const[]){"rid", "ok", NULL}) && !in_list(k, promised)) {
            print_error("%s reply field %.*s is not in the promised list\n",
                        maos_op_name(op), (int)k.len, k.ptr);
            fail();
        }
    }
    while (promised[n_promised])
        n_promised++;
    assert_int_equal(n, n_promised + n_opt + 2);

    mp_init(&cut);
    for (size_t i = 0; promised[i]; i++) {
        copy_map_without(full->sb.data, full->sb.size,
                         (const char *const[]){promised[i], NULL}, &cut);
        assert_err(maos_reply_decode(cut.sb.data, cut.sb.size, &rep), 0);
        why[0] = '\0';
        assert_err(maos_reply_check(&rep, op, why, sizeof why), MAOS_EPROTO);
        char want[200];
        snprintf(want, sizeof want, "%s%s without %s", maos_op_name(op),
                 rep.ok ? " reply" : " error reply", promised[i]);
        if (strcmp(why, want) != 0) {
            print_error("why: got \"%s\", want \"%s\"\n", why, want);
            fail();
        }
    }
    mp_free(&cut);
}

static void test_reply_required_fields(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    uint8_t ids[32] = {1, 2, 3};

    assert_int_equal(maos_enc_reply_hello(&m.pk, 1, 1, "maosd 0.1.0", 4096), 0);
    check_promised(MAOS_OP_HELLO, &m,
                   (const char *const[]){"version", "server", "max_frame", NULL});

    static const char *const append_fields[] = {"stream", "first_version",
                                                "first_position", "count",
                                                "duplicate", "ids", NULL};
    maos_append_result res = {S("a-1"), 5, 100, 2, 0, {(const char *)ids, 32}};
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_append(&m.pk, 2, 0, &res, 1), 0);
    maos_reply rep;
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_APPEND, NULL, 0), 0);
    /* without count, ids no longer hold count ids: malformed.  Without ids
     * the reply is well-formed (a count reply has a count and no ids) but
     * not a complete append reply. */
    mp cut;
    mp_init(&cut);
    copy_map_without(m.sb.data, m.sb.size, (const char *const[]){"ids", NULL}, &cut);
    assert_err(maos_reply_decode(cut.sb.data, cut.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_APPEND, NULL, 0), MAOS_EPROTO);
    copy_map_without(m.sb.data, m.sb.size, (const char *const[]){"count", NULL}, &cut);
    assert_err(maos_reply_decode(cut.sb.data, cut.sb.size, &rep), MAOS_EPROTO);
    mp_free(&cut);
    /* every field alone, with a count of 0 so that the rest stays well-formed */
    res.count = 0;
    res.ids.len = 0;
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_append(&m.pk, 2, 0, &res, 1), 0);
    check_promised(MAOS_OP_APPEND, &m, append_fields);

    mp_reset(&m);
    assert_int_equal(maos_enc_reply_append(&m.pk, 3, 1, &res, 1), 0);
    check_promised(MAOS_OP_TXN, &m, (const char *const[]){"results", NULL});

    maos_list_mark mark;
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 4, "events", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_UINT, 7, S("")), 0);
    check_promised(MAOS_OP_READ, &m, (const char *const[]){"events", "next", NULL});
    check_promised(MAOS_OP_READ_ALL, &m, (const char *const[]){"events", "next", NULL});

    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 5, "streams", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_STR, 0, S("b")), 0);
    check_promised(MAOS_OP_STREAMS, &m, (const char *const[]){"streams", "next", NULL});

    maos_stats st;
    memset(&st, 0, sizeof st);
    st.server = S("maosd 0.1.0");
    st.state = S("ok");
    st.durability = S("sync");
    st.head_hash = (maos_slice){"0123456789abcdef0123456789abcdef", 32};
    const char *stats_fields[64] = {"server", "state", "durability", "head_hash"};
    size_t ns = 4;
#define STAT_NAME_(name) stats_fields[ns++] = #name;
    MAOS_STATS_MAP_V1(STAT_NAME_)
#undef STAT_NAME_
    stats_fields[ns] = NULL;
    /* counters after protocol 1's are sent, and optional (an older
     * daemon lacks them) */
    static const char *const later_stats[] = {"events_removed", "log_anchor", NULL};
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_stats(&m.pk, 6, &st), 0);
    optional = later_stats;
    check_promised(MAOS_OP_STATS, &m, stats_fields);
    optional = NULL;

    /* stream_meta: the rule always; first_version, head, deleted for a
     * stream (and then all three) */
    maos_stream_meta_out so = {.max_count = 5, .is_stream = 1, .first_version = 2,
                               .head = 9};
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_stream_meta(&m.pk, 13, &so), 0);
    check_promised(MAOS_OP_STREAM_META, &m,
                   (const char *const[]){"max_count", "max_age_ms", "first_version",
                                         "head", "deleted", NULL});
    so.is_stream = 0; /* a category's: the same fields, 0, -1, false */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_stream_meta(&m.pk, 14, &so), 0);
    check_promised(MAOS_OP_STREAM_META, &m,
                   (const char *const[]){"max_count", "max_age_ms", "first_version",
                                         "head", "deleted", NULL});
    maos_reply rp;
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rp), 0);
    assert_int_equal(rp.smeta.head, -1);
    assert_int_equal(rp.smeta.max_count, 5);

    const uint64_t X = UINT64_MAX; /* a field left out */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_fields(&m.pk, 7, 1, 12, X, X), 0);
    check_promised(MAOS_OP_SUBSCRIBE, &m, (const char *const[]){"sub", "from", NULL});
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_fields(&m.pk, 8, 2, X, X, X), 0);
    check_promised(MAOS_OP_SUBSCRIBE_CHANNEL, &m, (const char *const[]){"sub", NULL});
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_fields(&m.pk, 9, X, X, 40, X), 0);
    check_promised(MAOS_OP_CHECKPOINT_GET, &m, (const char *const[]){"position", NULL});
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_fields(&m.pk, 10, X, X, X, 3), 0);
    check_promised(MAOS_OP_PUBLISH, &m, (const char *const[]){"receivers", NULL});

    /* {rid, ok: true} is all that ping, unsubscribe and checkpoint_save promise */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_ok(&m.pk, 11), 0);
    static const char *const none[] = {NULL};
    check_promised(MAOS_OP_PING, &m, none);
    check_promised(MAOS_OP_UNSUBSCRIBE, &m, none);
    check_promised(MAOS_OP_CHECKPOINT_SAVE, &m, none);

    /* an error reply promises code and message, whatever the op */
    mp_reset(&m);
    assert_int_equal(maos_enc_error(&m.pk, 12, MAOS_ENOT_FOUND, "no such stream", 0, 0, -1),
                     0);
    check_promised(MAOS_OP_READ, &m, (const char *const[]){"code", "message", NULL});
    check_promised(MAOS_OP_APPEND, &m, (const char *const[]){"code", "message", NULL});
    mp_free(&m);
}

/* The finding itself: {rid, ok: true} to an append (and friends). */
static void test_reply_bare_ok(void **state)
{
    (void)state;
    maos_reply rep;
    char why[200];
    assert_err(maos_reply_decode(LIT("\x82\xa3rid\x01\xa2ok\xc3"), &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_APPEND, why, sizeof why), MAOS_EPROTO);
    assert_string_equal(why, "append reply without stream");
    for (int op = 1; op < MAOS_OP__COUNT; op++) {
        int none = op == MAOS_OP_PING || op == MAOS_OP_UNSUBSCRIBE ||
                   op == MAOS_OP_CHECKPOINT_SAVE || op == MAOS_OP_COMPACT;
        assert_err(maos_reply_check(&rep, (maos_op)op, NULL, 0), none ? 0 : MAOS_EPROTO);
    }
    /* not an op: a caller's mistake, not the server's */
    assert_err(maos_reply_check(&rep, MAOS_OP_NONE, why, sizeof why), MAOS_EINVALID_ARG);
    assert_err(maos_reply_check(&rep, (maos_op)MAOS_OP__COUNT, why, sizeof why),
               MAOS_EINVALID_ARG);
    /* extra fields are ignored (forward compatibility) */
    assert_err(maos_reply_decode(LIT("\x83\xa3rid\x01\xa2ok\xc3\xa3" "new\x05"), &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_PING, why, sizeof why), 0);
}

/* `next` must be of the kind the request pages by. */
static void test_reply_next_kind(void **state)
{
    (void)state;
    mp m;
    maos_list_mark mark;
    maos_reply rep;
    char why[200];
    mp_init(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 1, "events", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_STR, 0, S("x")), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_READ, why, sizeof why), MAOS_EPROTO);
    assert_err(maos_reply_check(&rep, MAOS_OP_READ_ALL, why, sizeof why), MAOS_EPROTO);
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 1, "events", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_NONE, 0, S("")), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_READ, why, sizeof why), 0);
    /* a stream listing is not an event page */
    assert_err(maos_reply_check(&rep, MAOS_OP_STREAMS, why, sizeof why), MAOS_EPROTO);
    assert_string_equal(why, "streams reply without streams");
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 1, "streams", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_UINT, 9, S("")), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_STREAMS, why, sizeof why), MAOS_EPROTO);
    assert_err(maos_reply_check(&rep, MAOS_OP_READ, why, sizeof why), MAOS_EPROTO);
    mp_free(&m);
}

/* Elements of lists: a txn result and a stream info need every field. */
static void test_reply_list_elements(void **state)
{
    (void)state;
    static const char *const result_fields[] = {"stream", "first_version",
                                                "first_position", "count",
                                                "duplicate", "ids", NULL};
    static const char *const info_fields[] = {"stream", "head", "count",
                                              "last_position", NULL};
    uint8_t ids[16] = {9};
    maos_append_result res = {S("a-1"), 0, 1, 1, 1, {(const char *)ids, 16}}, got;
    maos_stream_info si = {S("a-1"), 3, 4, 99}, sgot;
    mp full, cut;
    maos_mpr r;
    mp_init(&full);
    mp_init(&cut);

    /* a single append's reply without rid/ok is exactly one result map */
    assert_int_equal(maos_enc_reply_append(&full.pk, 1, 0, &res, 1), 0);
    copy_map_without(full.sb.data, full.sb.size, (const char *const[]){"rid", "ok", NULL},
                     &cut);
    maos_mpr_init(&r, cut.sb.data, cut.sb.size);
    assert_err(maos_append_result_next(&r, &got), 0);
    assert_ptr_equal(r.p, r.end);
    for (size_t i = 0; result_fields[i]; i++) {
        copy_map_without(full.sb.data, full.sb.size,
                         (const char *const[]){"rid", "ok", result_fields[i], NULL}, &cut);
        maos_mpr_init(&r, cut.sb.data, cut.sb.size);
        const uint8_t *before = r.p;
        assert_err(maos_append_result_next(&r, &got), MAOS_EPROTO);
        assert_ptr_equal(r.p, before); /* cursor unchanged on error */
    }

    mp_reset(&full);
    assert_int_equal(maos_enc_stream_info(&full.pk, &si), 0);
    maos_mpr_init(&r, full.sb.data, full.sb.size);
    assert_err(maos_stream_info_next(&r, &sgot), 0);
    for (size_t i = 0; info_fields[i]; i++) {
        copy_map_without(full.sb.data, full.sb.size,
                         (const char *const[]){info_fields[i], NULL}, &cut);
        maos_mpr_init(&r, cut.sb.data, cut.sb.size);
        assert_err(maos_stream_info_next(&r, &sgot), MAOS_EPROTO);
    }
    mp_free(&full);
    mp_free(&cut);
}

/* ---- issue 7: names, tables --------------------------------------------------------- */

static void test_stream_and_key_check(void **state)
{
    (void)state;
    static char buf[MAOS_STREAM_MAX + 2];
    memset(buf, 's', sizeof buf);
    /* stream names: 1..1024 */
    assert_err(maos_stream_check((maos_slice){buf, 1}), 0);
    assert_err(maos_stream_check((maos_slice){buf, MAOS_STREAM_MAX}), 0);
    assert_err(maos_stream_check((maos_slice){buf, MAOS_STREAM_MAX + 1}), MAOS_EINVALID_NAME);
    assert_err(maos_stream_check((maos_slice){buf, 0}), MAOS_EINVALID_NAME);
    /* ... and names stay 1..255 */
    assert_err(maos_name_check((maos_slice){buf, 256}), MAOS_EINVALID_NAME);
    /* keys: 1..512 of valid UTF-8 without NUL */
    assert_err(maos_key_check(S("step-3")), 0);
    assert_err(maos_key_check(S("\xc3\x9c" "bung/\xe2\x82\xac")), 0);
    assert_err(maos_key_check((maos_slice){buf, MAOS_KEY_MAX}), 0);
    assert_err(maos_key_check((maos_slice){buf, MAOS_KEY_MAX + 1}), MAOS_EINVALID_NAME);
    assert_err(maos_key_check((maos_slice){"", 0}), MAOS_EINVALID_NAME);
    assert_err(maos_key_check((maos_slice){NULL, 0}), MAOS_EINVALID_NAME);
    assert_err(maos_key_check((maos_slice){LIT("a\0b")}), MAOS_EINVALID_NAME);
    assert_err(maos_key_check((maos_slice){LIT("a\xff")}), MAOS_EINVALID_NAME);
    assert_err(maos_key_check((maos_slice){LIT("\xed\xa0\x80")}), MAOS_EINVALID_NAME);
    /* the generic form: empty allowed when min is 0 */
    assert_err(maos_utf8_check((maos_slice){"", 0}, 0, 10), 0);
    assert_err(maos_utf8_check((maos_slice){NULL, 0}, 0, 10), 0);
    assert_err(maos_utf8_check(S("abc"), 0, 2), MAOS_EINVALID_NAME);
}

static void test_table_parse(void **state)
{
    (void)state;
    maos_table_ref t;
    static const struct {
        const char *name;
        int kind;
    } good[] = {
        {"sessions", MAOS_TABLE_SESSIONS}, {"agents", MAOS_TABLE_AGENTS},
        {"locks", MAOS_TABLE_LOCKS},       {"kv.plan", MAOS_TABLE_KV},
        {"kv.a", MAOS_TABLE_KV},           {"kv.A_z.9", MAOS_TABLE_KV},
        {"kv..", MAOS_TABLE_KV},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(&t, 0, sizeof t);
        assert_err(maos_table_parse(S(good[i].name), &t), 0);
        assert_int_equal(t.kind, good[i].kind);
        assert_slice(t.name, good[i].name);
    }
    char kv[3 + MAOS_KV_NAME_MAX + 2];
    memcpy(kv, "kv.", 3);
    memset(kv + 3, 'n', MAOS_KV_NAME_MAX + 1);
    assert_err(maos_table_parse((maos_slice){kv, 3 + MAOS_KV_NAME_MAX}, &t), 0);
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {LIT("foo")},       {LIT("kv.")},        {LIT("kv.a-b")},    {LIT("kv")},
        {LIT("kv.a b")},    {LIT("kv.\xc3\x9c")}, {LIT("Sessions")}, {LIT("session")},
        {LIT("sessions\0")}, {LIT("")},           {LIT("kv.a\0")},    {LIT("kv/plan")},
        {LIT("agents-1")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t.kind = 77;
        int rc = maos_table_parse((maos_slice){bad[i].p, (uint32_t)bad[i].n}, &t);
        if (rc != MAOS_EINVALID_NAME)
            print_error("bad table %zu accepted\n", i);
        assert_err(rc, MAOS_EINVALID_NAME);
        assert_int_equal(t.kind, 77); /* out-parameter untouched */
    }
    /* a kv NAME of 65 bytes */
    assert_err(maos_table_parse((maos_slice){kv, 3 + MAOS_KV_NAME_MAX + 1}, &t),
               MAOS_EINVALID_NAME);
    assert_err(maos_table_parse((maos_slice){NULL, 0}, &t), MAOS_EINVALID_NAME);
}

static void test_table_stream(void **state)
{
    (void)state;
    static char out[MAOS_STREAM_MAX];
    maos_table_ref t;
    static const struct {
        const char *table, *key, *stream, *prefix;
    } cases[] = {
        {"sessions", "s1", "session-s1", "session-"},
        {"agents", "writer-1", "agent-writer-1", "agent-"},
        {"locks", "deploy", "lock-deploy", "lock-"},
        {"kv.plan", "step-3", "kv.plan-step-3", "kv.plan-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_err(maos_table_parse(S(cases[i].table), &t), 0);
        int n = maos_table_stream(&t, S(cases[i].key), out);
        assert_true(n > 0);
        assert_slice(((maos_slice){out, (uint32_t)n}), cases[i].stream);
        n = maos_table_stream_prefix(&t, out);
        assert_true(n > 0);
        assert_slice(((maos_slice){out, (uint32_t)n}), cases[i].prefix);
        /* the stream's category names the table, and is reserved */
        maos_slice st = {cases[i].stream, (uint32_t)strlen(cases[i].stream)};
        assert_true(maos_stream_is_table(st));
        assert_int_equal(maos_category(st).len, strlen(cases[i].prefix) - 1);
        /* an empty key gives the prefix (a watch of the whole table) */
        n = maos_table_stream(&t, (maos_slice){NULL, 0}, out);
        assert_int_equal(n, strlen(cases[i].prefix));
    }
    /* the longest: kv. + 64 + - + 512 */
    static char kv[3 + MAOS_KV_NAME_MAX], key[MAOS_KEY_MAX + 1];
    memcpy(kv, "kv.", 3);
    memset(kv + 3, 'n', MAOS_KV_NAME_MAX);
    memset(key, 'k', sizeof key);
    assert_err(maos_table_parse((maos_slice){kv, sizeof kv}, &t), 0);
    int n = maos_table_stream(&t, (maos_slice){key, MAOS_KEY_MAX}, out);
    assert_int_equal(n, 3 + MAOS_KV_NAME_MAX + 1 + MAOS_KEY_MAX);
    assert_true(n <= MAOS_STREAM_MAX);
    assert_err(maos_stream_check((maos_slice){out, (uint32_t)n}), 0);
    /* refused: a key over 512, a ref parse would not make */
    assert_err(maos_table_stream(&t, (maos_slice){key, MAOS_KEY_MAX + 1}, out),
               MAOS_EINVALID_ARG);
    maos_table_ref bad = {0, S("sessions")};
    assert_err(maos_table_stream(&bad, S("k"), out), MAOS_EINVALID_ARG);
    bad.kind = MAOS_TABLE_KV + 1;
    assert_err(maos_table_stream_prefix(&bad, out), MAOS_EINVALID_ARG);
    bad = (maos_table_ref){MAOS_TABLE_KV, S("kv.")};
    assert_err(maos_table_stream_prefix(&bad, out), MAOS_EINVALID_ARG);

    /* reserved categories */
    static const char *const reserved[] = {"session-1", "agent-x", "lock-l", "kv.plan-1",
                                           "kv.plan", "kv.-1", "session", "lock"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        assert_true(maos_stream_is_table(S(reserved[i])));
    static const char *const free_[] = {"sessions-1", "agents-1", "locks", "kv-1", "kv",
                                        "order-session-1", "Agent-1", "kvx.a-1"};
    for (size_t i = 0; i < sizeof free_ / sizeof free_[0]; i++)
        assert_false(maos_stream_is_table(S(free_[i])));
}

/* ---- issue 7: requests ----------------------------------------------------------------- */

/* {"a": 1, "tags": ["x", "y"]} */
#define DOC "\x82\xa1" "a\x01\xa4tags\x92\xa1x\xa1y"

static void test_rt_put_delete(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    static const int64_t expects[] = {MAOS_EXPECT_ANY, MAOS_EXPECT_ABSENT,
                                      MAOS_EXPECT_EXISTS, 0, 42};
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++) {
        mp_reset(&m);
        assert_int_equal(maos_enc_put(&m.pk, 7, S("kv.plan"), S("step-3"), S(DOC),
                                      expects[i], (int)(i & 1)), 0);
        decode_ok(&m, &req);
        assert_int_equal(req.op, MAOS_OP_PUT);
        assert_int_equal(req.rid, 7);
        assert_int_equal(req.n_items, 1);
        const maos_item_in *it = &req.items[0];
        assert_int_equal(it->kind, MAOS_ITEM_PUT);
        assert_int_equal(it->table.kind, MAOS_TABLE_KV);
        assert_slice(it->table.name, "kv.plan");
        assert_slice(it->key, "step-3");
        assert_slice(it->data, DOC);
        assert_int_equal(it->expect, expects[i]);
        assert_int_equal(it->bind, (int)(i & 1));
        assert_int_equal(req.n_appends, 0);
        maos_request_free(&req);
    }
    /* absent -> "absent" on the wire, not "no_stream" */
    mp_reset(&m);
    assert_int_equal(maos_enc_put(&m.pk, 7, S("locks"), S("l"), S("\x80"),
                                  MAOS_EXPECT_ABSENT, 1), 0);
    assert_non_null(memmem(m.sb.data, m.sb.size, "absent", 6));
    /* put without data given encodes {} */
    mp_reset(&m);
    assert_int_equal(maos_enc_put(&m.pk, 7, S("agents"), S("a"), (maos_slice){0},
                                  MAOS_EXPECT_ANY, 0), 0);
    decode_ok(&m, &req);
    assert_slice(req.items[0].data, "\x80");
    maos_request_free(&req);
    /* the default expect is any, bind false */
    mp_reset(&m);
    assert_int_equal(maos_enc_delete(&m.pk, 8, S("sessions"), S("s-1"), 5), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_DELETE);
    assert_int_equal(req.n_items, 1);
    assert_int_equal(req.items[0].kind, MAOS_ITEM_DELETE);
    assert_int_equal(req.items[0].table.kind, MAOS_TABLE_SESSIONS);
    assert_slice(req.items[0].key, "s-1");
    assert_int_equal(req.items[0].expect, 5);
    maos_request_free(&req);
    decode_err(LIT("\x84\xa2op\xa3put\xa3rid\x01\xa5table\xa5locks\xa3key\xa1k"), NULL,
               MAOS_EBAD_REQUEST); /* no data */
    mp_reset(&m);
    msgpack_pack_map(&m.pk, 5);
    msgpack_pack_str_with_body(&m.pk, "op", 2);
    msgpack_pack_str_with_body(&m.pk, "put", 3);
    msgpack_pack_str_with_body(&m.pk, "rid", 3);
    msgpack_pack_uint64(&m.pk, 9);
    msgpack_pack_str_with_body(&m.pk, "table", 5);
    msgpack_pack_str_with_body(&m.pk, "kv.x", 4);
    msgpack_pack_str_with_body(&m.pk, "key", 3);
    msgpack_pack_str_with_body(&m.pk, "k", 1);
    msgpack_pack_str_with_body(&m.pk, "data", 4);
    msgpack_pack_map(&m.pk, 0);
    decode_ok(&m, &req);
    assert_int_equal(req.items[0].expect, MAOS_EXPECT_ANY);
    assert_int_equal(req.items[0].bind, 0);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_get_list_count(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    assert_int_equal(maos_enc_get(&m.pk, 3, S("agents"), S("writer-1")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_GET);
    assert_int_equal(req.table.kind, MAOS_TABLE_AGENTS);
    assert_slice(req.table.name, "agents");
    assert_slice(req.key, "writer-1");
    assert_int_equal(req.n_items, 0);
    maos_request_free(&req);

    /* where: {"status": "online", "tags": "x"} */
    static const char where[] = "\x82\xa6status\xa6online\xa4tags\xa1x";
    mp_reset(&m);
    assert_int_equal(maos_enc_list(&m.pk, 4, S("kv.files"), S("src/"), S("src/a.c"), 50,
                                   S(where)), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_LIST);
    assert_int_equal(req.table.kind, MAOS_TABLE_KV);
    assert_slice(req.prefix, "src/");
    assert_slice(req.after, "src/a.c");
    assert_int_equal(req.limit, 50);
    assert_slice(req.where, where);
    maos_request_free(&req);
    /* defaults: no prefix, after, where; limit 1000; capped at 10,000 */
    mp_reset(&m);
    assert_int_equal(maos_enc_list(&m.pk, 5, S("sessions"), S(""), S(""), 0, S("")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.prefix.len, 0);
    assert_int_equal(req.after.len, 0);
    assert_int_equal(req.where.len, 0);
    assert_int_equal(req.limit, MAOS_READ_LIMIT_DEFAULT);
    maos_request_free(&req);
    mp_reset(&m);
    assert_int_equal(maos_enc_list(&m.pk, 5, S("sessions"), S(""), S(""), 99999, S("")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.limit, MAOS_READ_LIMIT_MAX);
    maos_request_free(&req);

    mp_reset(&m);
    assert_int_equal(maos_enc_count(&m.pk, 6, S("agents"), S("w"), S(where)), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_COUNT);
    assert_int_equal(req.table.kind, MAOS_TABLE_AGENTS);
    assert_slice(req.prefix, "w");
    assert_slice(req.where, where);
    maos_request_free(&req);
    /* a 512-byte key prefix and after are fine */
    static char k512[MAOS_KEY_MAX];
    memset(k512, 'k', sizeof k512);
    mp_reset(&m);
    assert_int_equal(maos_enc_list(&m.pk, 5, S("kv.a"), (maos_slice){k512, MAOS_KEY_MAX},
                                   (maos_slice){k512, MAOS_KEY_MAX}, 1, S("\x80")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.prefix.len, MAOS_KEY_MAX);
    assert_int_equal(req.where.len, 1);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_watch(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    maos_record rec;
    mp_init(&m);
    static const struct {
        int from;
        uint64_t rev;
    } froms[] = {{MAOS_WATCH_FROM_ENTRIES, 0},
                 {MAOS_WATCH_FROM_REVISION, 0},
                 {MAOS_WATCH_FROM_REVISION, 1234567},
                 {MAOS_WATCH_FROM_NOW, 0}};
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
        mp_reset(&m);
        assert_int_equal(maos_enc_watch(&m.pk, 9, S("kv.plan"), S("step-"), froms[i].from,
                                        froms[i].rev), 0);
        decode_ok(&m, &req);
        assert_int_equal(req.op, MAOS_OP_WATCH);
        assert_int_equal(req.table.kind, MAOS_TABLE_KV);
        assert_slice(req.prefix, "step-");
        assert_int_equal(req.watch_from, froms[i].from);
        assert_int_equal(req.watch_revision, froms[i].rev);
        /* the subscription filter: stream prefix + key prefix, put/deleted */
        assert_slice(req.filter.prefix, "kv.plan-step-");
        assert_int_equal(req.filter.n_types, 2);
        assert_slice(req.filter.types[0], "put");
        assert_slice(req.filter.types[1], "deleted");
        assert_int_equal(req.filter.stream.len, 0);
        maos_request_free(&req);
    }
    /* the whole table: the filter selects exactly its streams' events */
    mp_reset(&m);
    assert_int_equal(maos_enc_watch(&m.pk, 9, S("agents"), S(""), MAOS_WATCH_FROM_NOW, 0),
                     0);
    decode_ok(&m, &req);
    assert_slice(req.filter.prefix, "agent-");
    mp r;
    mp_init(&r);
    uint8_t id[16] = {1}, prev[32] = {0};
    static const struct {
        const char *stream, *type;
        int match;
    } evs[] = {{"agent-w1", "put", 1},      {"agent-w1", "deleted", 1},
               {"agent-w1", "other", 0},    {"agents-1", "put", 0},
               {"kv.plan-agent-1", "put", 0}, {"agent-", "put", 1}};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        mp_reset(&r);
        assert_int_equal(maos_enc_record(&r.pk, 1, 2, 0, S(evs[i].stream), S(evs[i].type),
                                         id, prev, S("\x80"), S("\x80")), 0);
        assert_err(maos_record_decode(r.sb.data, r.sb.size, &rec), 0);
        assert_int_equal(maos_filter_match(&req.filter, &rec), evs[i].match);
    }
    mp_free(&r);
    maos_request_free(&req);
    mp_reset(&m);
    assert_int_equal(maos_enc_watch(&m.pk, 9, S("agents"), S(""), 7, 0), MAOS_EINVALID_ARG);
    mp_free(&m);
}

static void test_rt_agents(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    static const char tags[] = "\x92\xa4" "code\xa6review";
    static const char details[] = "\x81\xa5model\xa3xyz";
    maos_agent_in a = {.id = S("writer-1"), .session = S("s-42"), .name = S("Writer"),
                       .kind = S("llm"), .tags = S(tags), .details = S(details)};
    assert_int_equal(maos_enc_agent_register(&m.pk, 11, &a), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_AGENT_REGISTER);
    assert_slice(req.agent.id, "writer-1");
    assert_slice(req.agent.session, "s-42");
    assert_slice(req.agent.name, "Writer");
    assert_slice(req.agent.kind, "llm");
    assert_slice(req.agent.tags, tags);
    assert_slice(req.agent.details, details);
    maos_request_free(&req);
    /* only the id */
    mp_reset(&m);
    maos_agent_in min = {.id = S("w")};
    assert_int_equal(maos_enc_agent_register(&m.pk, 12, &min), 0);
    decode_ok(&m, &req);
    assert_slice(req.agent.id, "w");
    assert_int_equal(req.agent.session.len + req.agent.name.len + req.agent.kind.len +
                         req.agent.tags.len + req.agent.details.len,
                     0);
    maos_request_free(&req);

    mp_reset(&m);
    assert_int_equal(maos_enc_agent_deregister(&m.pk, 13, S("writer-1")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_AGENT_DEREGISTER);
    assert_slice(req.agent.id, "writer-1");
    maos_request_free(&req);

    mp_reset(&m);
    assert_int_equal(maos_enc_agent_status(&m.pk, 14, S("busy"), S("\xa9step 3/10")), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_AGENT_STATUS);
    assert_slice(req.agent.status, "busy");
    assert_slice(req.agent.detail, "\xa9step 3/10");
    maos_request_free(&req);
    mp_reset(&m);
    static char st64[MAOS_STATUS_MAX];
    memset(st64, 'x', sizeof st64);
    assert_int_equal(maos_enc_agent_status(&m.pk, 15, (maos_slice){st64, MAOS_STATUS_MAX},
                                           (maos_slice){0}), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.agent.status.len, MAOS_STATUS_MAX);
    assert_int_equal(req.agent.detail.len, 0);
    maos_request_free(&req);
    mp_free(&m);
}

static void test_rt_items(void **state)
{
    (void)state;
    mp m;
    maos_request req;
    mp_init(&m);
    maos_event_in ev[2] = {{.type = S("A")}, {.type = S("B"), .data = S("\x01")}};
    maos_append_in ap[2] = {{S("orders-1"), 3, 2, ev}, {S("audit"), MAOS_EXPECT_NO_STREAM,
                                                        1, ev}};
    /* append: one APPEND item into appends[0] */
    assert_int_equal(maos_enc_append(&m.pk, 1, &ap[0]), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.n_items, 1);
    assert_int_equal(req.items[0].kind, MAOS_ITEM_APPEND);
    assert_ptr_equal(req.items[0].append, &req.appends[0]);
    maos_request_free(&req);
    /* checkpoint_save: one CHECKPOINT item, name/position kept too */
    mp_reset(&m);
    assert_int_equal(maos_enc_checkpoint_save(&m.pk, 2, S("cp"), 77), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.n_items, 1);
    assert_int_equal(req.items[0].kind, MAOS_ITEM_CHECKPOINT);
    assert_slice(req.items[0].name, "cp");
    assert_int_equal(req.items[0].position, 77);
    assert_slice(req.name, "cp");
    assert_int_equal(req.position, 77);
    maos_request_free(&req);
    /* txn, old form: one APPEND item per append */
    mp_reset(&m);
    assert_int_equal(maos_enc_txn(&m.pk, 3, ap, 2), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.n_items, 2);
    assert_int_equal(req.n_appends, 2);
    for (uint32_t i = 0; i < 2; i++) {
        assert_int_equal(req.items[i].kind, MAOS_ITEM_APPEND);
        assert_ptr_equal(req.items[i].append, &req.appends[i]);
    }
    assert_int_equal(req.error_index, -1);
    maos_request_free(&req);

    /* txn, ops form: every kind, in order */
    maos_item_in items[6] = {
        {.kind = MAOS_ITEM_PUT, .table = {MAOS_TABLE_KV, S("kv.plan")}, .key = S("s1"),
         .data = S(DOC), .expect = MAOS_EXPECT_ABSENT, .bind = 1},
        {.kind = MAOS_ITEM_APPEND, .append = &ap[0]},
        {.kind = MAOS_ITEM_DELETE, .table = {MAOS_TABLE_LOCKS, S("locks")}, .key = S("l"),
         .expect = 12},
        {.kind = MAOS_ITEM_CHECKPOINT, .name = S("cp-1"), .position = 99},
        {.kind = MAOS_ITEM_APPEND, .append = &ap[1]},
        /* same key, another table */
        {.kind = MAOS_ITEM_PUT, .table = {MAOS_TABLE_KV, S("kv.plan2")}, .key = S("s1"),
         .data = S("\x80"), .expect = MAOS_EXPECT_ANY},
    };
    mp_reset(&m);
    assert_int_equal(maos_enc_txn_ops(&m.pk, 4, items, 6), 0);
    decode_ok(&m, &req);
    assert_int_equal(req.op, MAOS_OP_TXN);
    assert_int_equal(req.n_items, 6);
    assert_int_equal(req.n_appends, 2);
    for (uint32_t i = 0; i < 6; i++) {
        const maos_item_in *a = &items[i], *b = &req.items[i];
        assert_int_equal(b->kind, a->kind);
        switch (a->kind) {
        case MAOS_ITEM_APPEND:
            assert_slice(b->append->stream, a->append->stream.ptr);
            assert_int_equal(b->append->expect, a->append->expect);
            assert_int_equal(b->append->n_events, a->append->n_events);
            break;
        case MAOS_ITEM_PUT:
        case MAOS_ITEM_DELETE:
            assert_int_equal(b->table.kind, a->table.kind);
            assert_slice(b->table.name, a->table.name.ptr);
            assert_slice(b->key, a->key.ptr);
            assert_int_equal(b->expect, a->expect);
            if (a->kind == MAOS_ITEM_PUT) {
                assert_slice(b->data, a->data.ptr);
                assert_int_equal(b->bind, a->bind);
            }
            break;
        default:
            assert_slice(b->name, "cp-1");
            assert_int_equal(b->position, 99);
        }
    }
    assert_ptr_equal(req.items[1].append, &req.appends[0]);
    assert_ptr_equal(req.items[4].append, &req.appends[1]);
    maos_request_free(&req);
    /* the ops form's keys in any order: "op" last */
    char why[256];
    assert_err(maos_request_decode(LIT("\x83\xa2op\xa3txn\xa3rid\x01\xa3ops\x91\x83"
                                       "\xa5table\xa5locks\xa3key\xa1l\xa2op\xa6" "delete"),
                                   NULL, &req, why, sizeof why), 0);
    assert_int_equal(req.n_items, 1);
    assert_int_equal(req.items[0].kind, MAOS_ITEM_DELETE);
    assert_int_equal(req.items[0].table.kind, MAOS_TABLE_LOCKS);
    assert_slice(req.items[0].key, "l");
    assert_int_equal(req.items[0].expect, MAOS_EXPECT_ANY);
    maos_request_free(&req);
    mp_free(&m);
}

/* ---- issue 7: typed rejections --------------------------------------------------------- */

/* A request map {op, rid: 5, ...} built pair by pair. */
static void rq(mp *m, const char *op, uint32_t extra)
{
    mp_reset(m);
    msgpack_pack_map(&m->pk, 2 + extra);
    msgpack_pack_str_with_body(&m->pk, "op", 2);
    msgpack_pack_str_with_body(&m->pk, op, strlen(op));
    msgpack_pack_str_with_body(&m->pk, "rid", 3);
    msgpack_pack_uint64(&m->pk, 5);
}

static void rq_k(mp *m, const char *k)
{
    msgpack_pack_str_with_body(&m->pk, k, strlen(k));
}

static void rq_s(mp *m, const char *k, const char *v, size_t n)
{
    rq_k(m, k);
    msgpack_pack_str_with_body(&m->pk, v, n);
}

static void rq_raw(mp *m, const char *k, const char *raw, size_t n)
{
    rq_k(m, k);
    msgpack_sbuffer_write(&m->sb, raw, n);
}

#define RQ_S(m, k, v) rq_s((m), (k), (v), strlen(v))

/* Decode m expecting code, a reason containing `needle` (may be NULL) and
 * the rid; returns the request's error_index. */
static int64_t rq_err(const mp *m, const maos_limits *lim, int code, const char *needle)
{
    maos_request req;
    char why[256];
    int rc = maos_request_decode(m->sb.data, m->sb.size, lim, &req, why, sizeof why);
    if (rc != code || (needle && !strstr(why, needle))) {
        print_error("got %s \"%s\", want %s \"%s\"\n", maos_err_name(rc), why,
                    maos_err_name(code), needle ? needle : "");
        fail();
    }
    assert_int_equal(req.rid, 5);
    int64_t idx = req.error_index;
    maos_request_free(&req);
    return idx;
}

static void rq_ok(const mp *m, const maos_limits *lim)
{
    maos_request req;
    char why[256];
    int rc = maos_request_decode(m->sb.data, m->sb.size, lim, &req, why, sizeof why);
    if (rc) {
        print_error("refused: %s: %s\n", maos_err_name(rc), why);
        fail();
    }
    maos_request_free(&req);
}

static void test_table_rejections(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    static char k513[MAOS_KEY_MAX + 1];
    memset(k513, 'k', sizeof k513);
    static const struct {
        const char *p;
        size_t n;
    } bad_keys[] = {{"", 0}, {k513, MAOS_KEY_MAX + 1}, {LIT("a\xff")}, {LIT("a\0b")},
                    {LIT("\xc0\xaf")}, {LIT("\xed\xa0\x80")}};
    static const char *const key_ops[] = {"put", "get", "delete"};
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
            print_message("%s with bad key %zu\n", key_ops[o], i);
            rq(&m, key_ops[o], 3);
            RQ_S(&m, "table", "kv.plan");
            rq_s(&m, "key", bad_keys[i].p, bad_keys[i].n);
            rq_raw(&m, "data", LIT("\x80"));
            rq_err(&m, NULL, MAOS_EINVALID_NAME, "key must be 1..512 bytes");
        }
        /* a key that is not a string */
        rq(&m, key_ops[o], 2);
        RQ_S(&m, "table", "kv.plan");
        rq_raw(&m, "key", LIT("\x07"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "key must be a string");
    }
    /* a 512-byte key is fine */
    rq(&m, "put", 3);
    RQ_S(&m, "table", "kv.plan");
    rq_s(&m, "key", k513, MAOS_KEY_MAX);
    rq_raw(&m, "data", LIT("\x80"));
    rq_ok(&m, NULL);

    /* data that is not a map */
    static const struct {
        const char *p;
        size_t n;
    } not_maps[] = {{LIT("\xa1x")}, {LIT("\x90")}, {LIT("\xc0")}, {LIT("\x01")},
                    {LIT("\xc4\x01x")}};
    for (size_t i = 0; i < sizeof not_maps / sizeof not_maps[0]; i++) {
        rq(&m, "put", 3);
        RQ_S(&m, "table", "sessions");
        RQ_S(&m, "key", "s1");
        rq_raw(&m, "data", not_maps[i].p, not_maps[i].n);
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "data must be a map");
    }
    /* ... or missing */
    rq(&m, "put", 2);
    RQ_S(&m, "table", "sessions");
    RQ_S(&m, "key", "s1");
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "data must be a map");

    /* unknown table kinds, on every table op */
    static char kv65[3 + MAOS_KV_NAME_MAX + 1];
    memcpy(kv65, "kv.", 3);
    memset(kv65 + 3, 'n', MAOS_KV_NAME_MAX + 1);
    static const struct {
        const char *p;
        size_t n;
    } bad_tables[] = {{LIT("foo")}, {LIT("kv.")}, {LIT("kv.a-b")}, {kv65, sizeof kv65},
                      {LIT("")},    {LIT("session")}, {LIT("kv.\xff")}};
    static const char *const table_ops[] = {"put", "get", "delete", "list", "count",
                                            "watch"};
    for (size_t o = 0; o < 6; o++) {
        for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
            rq(&m, table_ops[o], 3);
            rq_s(&m, "table", bad_tables[i].p, bad_tables[i].n);
            RQ_S(&m, "key", "k");
            rq_raw(&m, "data", LIT("\x80"));
            rq_err(&m, NULL, MAOS_EINVALID_NAME, "unknown table kind");
        }
        rq(&m, table_ops[o], 2);
        rq_raw(&m, "table", LIT("\x91\xa1x"));
        RQ_S(&m, "key", "k");
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "table must be a string");
        /* no table */
        rq(&m, table_ops[o], 2);
        RQ_S(&m, "key", "k");
        rq_raw(&m, "data", LIT("\x80"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs a table");
    }
    /* no key */
    for (size_t o = 0; o < 3; o++) {
        rq(&m, key_ops[o], 2);
        RQ_S(&m, "table", "locks");
        rq_raw(&m, "data", LIT("\x80"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs a key");
    }

    /* expect: table words only; delete cannot expect absent */
    static const struct {
        const char *op;
        const char *p;
        size_t n;
        int ok;
    } expects[] = {
        {"put", LIT("\xa3" "any"), 1},       {"put", LIT("\xa6" "absent"), 1},
        {"put", LIT("\xa6" "exists"), 1},    {"put", LIT("\x00"), 1},
        {"put", LIT("\xa9no_stream"), 0},    {"put", LIT("\xff"), 0},
        {"put", LIT("\xc3"), 0},             {"put", LIT("\xa4" "some"), 0},
        {"put", LIT("\xcf\x80\0\0\0\0\0\0\0"), 0},
        {"delete", LIT("\xa6" "absent"), 0}, {"delete", LIT("\xa6" "exists"), 1},
        {"delete", LIT("\x05"), 1},
    };
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++) {
        print_message("expect case %zu\n", i);
        rq(&m, expects[i].op, 4);
        RQ_S(&m, "table", "kv.plan");
        RQ_S(&m, "key", "k");
        rq_raw(&m, "data", LIT("\x80"));
        rq_raw(&m, "expect", expects[i].p, expects[i].n);
        if (expects[i].ok)
            rq_ok(&m, NULL);
        else
            rq_err(&m, NULL, MAOS_EBAD_REQUEST, "expect");
    }
    rq(&m, "put", 4);
    RQ_S(&m, "table", "kv.plan");
    RQ_S(&m, "key", "k");
    rq_raw(&m, "data", LIT("\x80"));
    rq_raw(&m, "bind", LIT("\x01"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "bind must be a boolean");

    /* where: a map with string keys, at most max_types pairs */
    static const char *const where_ops[] = {"list", "count"};
    for (size_t o = 0; o < 2; o++) {
        rq(&m, where_ops[o], 2);
        RQ_S(&m, "table", "agents");
        rq_raw(&m, "where", LIT("\x92\xa1" "a\x01"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "where must be a map");
        rq(&m, where_ops[o], 2);
        RQ_S(&m, "table", "agents");
        rq_raw(&m, "where", LIT("\xa6status"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "where must be a map");
        rq(&m, where_ops[o], 2);
        RQ_S(&m, "table", "agents");
        rq_raw(&m, "where", LIT("\x82\xa1" "a\x01\x07\x01"));
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "where keys must be strings");
        maos_limits lim = {.max_types = 1};
        rq(&m, where_ops[o], 2);
        RQ_S(&m, "table", "agents");
        rq_raw(&m, "where", LIT("\x82\xa1" "a\x01\xa1" "b\x02"));
        rq_err(&m, &lim, MAOS_ELIMIT, "where");
        lim.max_types = 2;
        rq_ok(&m, &lim);
        /* the key prefix: at most 512 bytes of UTF-8 */
        rq(&m, where_ops[o], 2);
        RQ_S(&m, "table", "agents");
        rq_s(&m, "prefix", k513, MAOS_KEY_MAX + 1);
        rq_err(&m, NULL, MAOS_EINVALID_NAME, "prefix");
    }
    rq(&m, "list", 2);
    RQ_S(&m, "table", "agents");
    rq_s(&m, "after", LIT("a\xff"));
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "after");
    rq(&m, "list", 2);
    RQ_S(&m, "table", "agents");
    rq_raw(&m, "limit", LIT("\x00"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "limit");

    /* watch from: a revision or "now" */
    static const struct {
        const char *p;
        size_t n;
    } bad_from[] = {{LIT("\xa5later")}, {LIT("\xa5start")}, {LIT("\xff")}, {LIT("\xc3")},
                    {LIT("\xc0")},     {LIT("\x90")},       {LIT("\xcb\x3f\xf0\0\0\0\0\0\0")}};
    for (size_t i = 0; i < sizeof bad_from / sizeof bad_from[0]; i++) {
        rq(&m, "watch", 2);
        RQ_S(&m, "table", "kv.plan");
        rq_raw(&m, "from", bad_from[i].p, bad_from[i].n);
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, "from must be a revision or \"now\"");
    }
    rq(&m, "watch", 2);
    RQ_S(&m, "table", "kv.plan");
    rq_s(&m, "prefix", k513, MAOS_KEY_MAX + 1);
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "prefix");
    mp_free(&m);
}

static void test_agent_rejections(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    static char k513[MAOS_KEY_MAX + 1];
    memset(k513, 'k', sizeof k513);
    rq(&m, "agent_register", 1);
    RQ_S(&m, "session", "s");
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs an id");
    rq(&m, "agent_deregister", 0);
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs an id");
    rq(&m, "agent_register", 1);
    rq_s(&m, "id", k513, MAOS_KEY_MAX + 1);
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "agent id");
    rq(&m, "agent_deregister", 1);
    rq_s(&m, "id", LIT(""));
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "agent id");
    rq(&m, "agent_register", 2);
    RQ_S(&m, "id", "w");
    rq_s(&m, "session", LIT("s\0"));
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "session");
    static const struct {
        const char *key;
        const char *p;
        size_t n;
        const char *needle;
    } bad[] = {
        {"name", LIT("\xa0"), "agent name"},
        {"name", LIT("\x01"), "agent name"},
        {"kind", LIT("\xa2\xc3\x28"), "agent kind"},
        {"tags", LIT("\xa1x"), "tags must be an array"},
        {"tags", LIT("\x92\xa1x\x01"), "tags must be strings"},
        {"tags", LIT("\x91\xa0"), "tags must be strings"},
        {"details", LIT("\x90"), "details must be a map"},
        {"details", LIT("\xa1x"), "details must be a map"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rq(&m, "agent_register", 2);
        RQ_S(&m, "id", "w");
        rq_raw(&m, bad[i].key, bad[i].p, bad[i].n);
        rq_err(&m, NULL, MAOS_EBAD_REQUEST, bad[i].needle);
    }
    /* status: 1..64 bytes of UTF-8 */
    static char s65[MAOS_STATUS_MAX + 1];
    memset(s65, 's', sizeof s65);
    rq(&m, "agent_status", 0);
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs a status");
    rq(&m, "agent_status", 1);
    rq_s(&m, "status", s65, sizeof s65);
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "status must be 1..64");
    rq(&m, "agent_status", 1);
    rq_s(&m, "status", LIT(""));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "status must be 1..64");
    rq(&m, "agent_status", 1);
    rq_raw(&m, "status", LIT("\x01"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "status must be 1..64");
    rq(&m, "agent_status", 2);
    RQ_S(&m, "status", "idle");
    rq_raw(&m, "detail", LIT("\x92\x01"));
    rq_err(&m, NULL, MAOS_EBAD_FRAME, NULL); /* truncated detail */
    mp_free(&m);
}

/* A txn op map, pair by pair: {op, ...}. */
static void op_head(mp *m, const char *kind, uint32_t extra)
{
    msgpack_pack_map(&m->pk, 1 + extra);
    RQ_S(m, "op", kind);
}

static void op_put(mp *m, const char *table, const char *key)
{
    op_head(m, "put", 3);
    RQ_S(m, "table", table);
    RQ_S(m, "key", key);
    rq_raw(m, "data", LIT("\x80"));
}

static void op_append(mp *m, const char *stream)
{
    op_head(m, "append", 2);
    RQ_S(m, "stream", stream);
    rq_raw(m, "events", LIT("\x91\x81\xa4type\xa1T"));
}

static void test_txn_rejections(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    /* the same (table, key) twice: put/put, put/delete; index of the repeat */
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 3);
    op_put(&m, "kv.plan", "a");
    op_put(&m, "kv.plan", "b");
    op_put(&m, "kv.plan", "a");
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "each (table, key) once"), 2);
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 2);
    op_put(&m, "locks", "a");
    op_head(&m, "delete", 2);
    RQ_S(&m, "table", "locks");
    RQ_S(&m, "key", "a");
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "each (table, key) once"), 1);
    /* the same stream twice, the same checkpoint twice */
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 3);
    op_append(&m, "s-1");
    op_put(&m, "kv.s", "1");
    op_append(&m, "s-1");
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "each stream once"), 2);
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 2);
    for (int i = 0; i < 2; i++) {
        op_head(&m, "checkpoint", 2);
        RQ_S(&m, "name", "cp");
        rq_raw(&m, "position", LIT("\x05"));
    }
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "each checkpoint once"), 1);
    /* shapes */
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x90"));
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "ops must not be empty"), -1);
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x80"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "ops must be an array");
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x91\xa3put"));
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "each op must be a map"), 0);
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x91\x81\xa5table\xa5locks"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "needs an op");
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x91\x81\xa2op\xa5merge"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "unknown op \"merge\"");
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x91\x81\xa2op\x01"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "op must be a string");
    rq(&m, "txn", 1);
    rq_raw(&m, "ops", LIT("\x91\x82\xa2op\xaa" "checkpoint\xa4name\xa2" "cp"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "checkpoint needs name and position");
    /* errors inside an op: typed as at the top level, with the index */
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 2);
    op_put(&m, "kv.a", "k");
    op_head(&m, "put", 3);
    RQ_S(&m, "table", "kv.a");
    RQ_S(&m, "key", "k2");
    rq_raw(&m, "data", LIT("\x90"));
    assert_int_equal(rq_err(&m, NULL, MAOS_EBAD_REQUEST, "data must be a map"), 1);
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 1);
    op_put(&m, "foo", "k");
    assert_int_equal(rq_err(&m, NULL, MAOS_EINVALID_NAME, "unknown table kind"), 0);
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 1);
    op_put(&m, "kv.a", "");
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "key must be");
    /* both forms in one txn */
    rq(&m, "txn", 2);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 1);
    op_put(&m, "kv.a", "k");
    rq_raw(&m, "appends", LIT("\x91\x82\xa6stream\xa1s\xa6" "events\x91\x81\xa4type\xa1T"));
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "one appends or one ops");
    rq(&m, "txn", 0);
    rq_err(&m, NULL, MAOS_EBAD_REQUEST, "txn needs appends or ops");
    /* limits: ops count against max_appends, events against max_events */
    maos_limits lim = {.max_appends = 2};
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 3);
    op_put(&m, "kv.a", "1");
    op_put(&m, "kv.a", "2");
    op_put(&m, "kv.a", "3");
    rq_err(&m, &lim, MAOS_ELIMIT, "too many ops");
    lim.max_appends = 3;
    rq_ok(&m, &lim);
    lim = (maos_limits){.max_events = 1};
    rq(&m, "txn", 1);
    rq_k(&m, "ops");
    msgpack_pack_array(&m.pk, 3);
    op_append(&m, "a-1");
    op_put(&m, "kv.a", "1");
    op_append(&m, "a-2");
    assert_int_equal(rq_err(&m, &lim, MAOS_ELIMIT, "too many events"), 2);

    /* reserved categories: refused for clients, everywhere an append is */
    static const char *const reserved[] = {"session-1", "agent-w", "lock-l", "kv.plan-1",
                                           "kv.x"};
    maos_limits sys = {.system = 1};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        print_message("reserved %s\n", reserved[i]);
        maos_event_in ev = {.type = S("T")};
        maos_append_in a[2] = {{S("free-1"), MAOS_EXPECT_ANY, 1, &ev},
                               {S(reserved[i]), MAOS_EXPECT_ANY, 1, &ev}};
        mp_reset(&m);
        assert_int_equal(maos_enc_append(&m.pk, 5, &a[1]), 0);
        rq_err(&m, NULL, MAOS_EINVALID_NAME, "is written by table operations");
        rq_ok(&m, &sys); /* maosd's own writes may */
        mp_reset(&m);
        assert_int_equal(maos_enc_txn(&m.pk, 5, a, 2), 0);
        assert_int_equal(rq_err(&m, NULL, MAOS_EINVALID_NAME, "written by table"), 1);
        rq_ok(&m, &sys);
        rq(&m, "txn", 1);
        rq_k(&m, "ops");
        msgpack_pack_array(&m.pk, 1);
        op_append(&m, reserved[i]);
        assert_int_equal(rq_err(&m, NULL, MAOS_EINVALID_NAME, "written by table"), 0);
        rq_ok(&m, &sys);
    }
    /* stream names: 1024 bytes fine, 1025 not; in the ops form too */
    static char s1025[MAOS_STREAM_MAX + 1];
    memset(s1025, 's', sizeof s1025);
    rq(&m, "read", 1);
    rq_s(&m, "stream", s1025, MAOS_STREAM_MAX);
    rq_ok(&m, NULL);
    rq(&m, "read", 1);
    rq_s(&m, "stream", s1025, MAOS_STREAM_MAX + 1);
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "stream must be 1..1024");
    rq(&m, "subscribe", 1);
    rq_s(&m, "prefix", s1025, MAOS_STREAM_MAX);
    rq_ok(&m, NULL);
    rq(&m, "streams", 1);
    rq_s(&m, "after", s1025, MAOS_STREAM_MAX + 1);
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "after");
    /* types and checkpoint names stay 1..255 */
    rq(&m, "checkpoint_save", 2);
    rq_s(&m, "name", s1025, 256);
    rq_raw(&m, "position", LIT("\x01"));
    rq_err(&m, NULL, MAOS_EINVALID_NAME, "1..255");
    mp_free(&m);
}

/* ---- issue 7: replies ---------------------------------------------------------------- */

static void enc_test_entry(msgpack_packer *pk, const char *key, uint64_t rev)
{
    assert_int_equal(maos_enc_entry(pk, S("kv.plan"), S(key), rev, 3,
                                    1767225600000000, 1767225600000000 + (int64_t)rev,
                                    (int)(rev & 1), S(DOC)), 0);
}

static void check_test_entry(const maos_entry *e, const char *key, uint64_t rev)
{
    assert_slice(e->table, "kv.plan");
    assert_slice(e->key, key);
    assert_int_equal(e->revision, rev);
    assert_int_equal(e->created_revision, 3);
    assert_int_equal(e->created, 1767225600000000);
    assert_int_equal(e->updated, 1767225600000000 + (int64_t)rev);
    assert_int_equal(e->bound, (int)(rev & 1));
    assert_slice(e->data, DOC);
}

static void test_rt_entry(void **state)
{
    (void)state;
    static const char *const fields[] = {"table", "key", "revision", "created_revision",
                                         "created", "updated", "data", "bound", NULL};
    mp m, cut;
    maos_entry e;
    mp_init(&m);
    mp_init(&cut);
    enc_test_entry(&m.pk, "step-3", 9);
    assert_err(maos_entry_decode(m.sb.data, m.sb.size, &e), 0);
    check_test_entry(&e, "step-3", 9);
    assert_ptr_equal(e.raw.ptr, m.sb.data);
    assert_int_equal(e.raw.len, m.sb.size);
    /* every field is required */
    for (size_t i = 0; fields[i]; i++) {
        copy_map_without(m.sb.data, m.sb.size, (const char *const[]){fields[i], NULL},
                         &cut);
        e.revision = 4242;
        assert_err(maos_entry_decode(cut.sb.data, cut.sb.size, &e), MAOS_EPROTO);
        assert_int_equal(e.revision, 4242); /* untouched on failure */
        maos_mpr r;
        maos_mpr_init(&r, cut.sb.data, cut.sb.size);
        assert_err(maos_entry_next(&r, &e), MAOS_EPROTO);
        assert_ptr_equal(r.p, cut.sb.data); /* cursor unchanged */
    }
    /* wrong types: data not a map, bound not a bool, revision negative */
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {LIT("\x88\xa5table\xa1t\xa3key\xa1k\xa8revision\x01\xb0" "created_revision\x01"
             "\xa7" "created\x01\xa7updated\x01\xa4" "data\x90\xa5" "bound\xc2")},
        {LIT("\x88\xa5table\xa1t\xa3key\xa1k\xa8revision\x01\xb0" "created_revision\x01"
             "\xa7" "created\x01\xa7updated\x01\xa4" "data\x80\xa5" "bound\x01")},
        {LIT("\x88\xa5table\xa1t\xa3key\xa1k\xa8revision\xff\xb0" "created_revision\x01"
             "\xa7" "created\x01\xa7updated\x01\xa4" "data\x80\xa5" "bound\xc2")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_err(maos_entry_decode(bad[i].p, bad[i].n, &e), MAOS_EPROTO);
    /* the same with good values decodes (the cases above differ in one byte) */
    assert_err(maos_entry_decode(LIT("\x88\xa5table\xa1t\xa3key\xa1k\xa8revision\x01\xb0"
                                     "created_revision\x01\xa7" "created\xff\xa7updated"
                                     "\x01\xa4" "data\x80\xa5" "bound\xc2"),
                                 &e), 0);
    assert_int_equal(e.created, -1);
    /* trailing bytes */
    msgpack_pack_nil(&m.pk);
    assert_err(maos_entry_decode(m.sb.data, m.sb.size, &e), MAOS_EPROTO);
    /* data len 0 encodes {} */
    mp_reset(&m);
    assert_int_equal(maos_enc_entry(&m.pk, S("agents"), S("a"), 1, 1, 0, 0, 0,
                                    (maos_slice){0}), 0);
    assert_err(maos_entry_decode(m.sb.data, m.sb.size, &e), 0);
    assert_slice(e.data, "\x80");
    mp_free(&m);
    mp_free(&cut);
}

static void test_rt_table_replies(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    char why[200];
    mp_init(&m);

    /* put / agent_register, delete / agent_* */
    assert_int_equal(maos_enc_reply_revision(&m.pk, 1, 120, 100), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_int_equal(rep.revision, 120);
    assert_int_equal(rep.created_revision, 100);
    check_promised(MAOS_OP_PUT, &m,
                   (const char *const[]){"revision", "created_revision", NULL});
    check_promised(MAOS_OP_AGENT_REGISTER, &m,
                   (const char *const[]){"revision", "created_revision", NULL});
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_revision(&m.pk, 2, 121, UINT64_MAX), 0);
    check_promised(MAOS_OP_DELETE, &m, (const char *const[]){"revision", NULL});
    check_promised(MAOS_OP_AGENT_DEREGISTER, &m, (const char *const[]){"revision", NULL});
    check_promised(MAOS_OP_AGENT_STATUS, &m, (const char *const[]){"revision", NULL});
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_PUT, why, sizeof why), MAOS_EPROTO);
    assert_string_equal(why, "put reply without created_revision");

    /* get */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_get_begin(&m.pk, 3), 0);
    enc_test_entry(&m.pk, "step-3", 9);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    maos_entry e;
    assert_err(maos_entry_decode(rep.entry.ptr, rep.entry.len, &e), 0);
    check_test_entry(&e, "step-3", 9);
    check_promised(MAOS_OP_GET, &m, (const char *const[]){"entry", NULL});
    /* an entry without a field is refused by the check */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_get_begin(&m.pk, 3), 0);
    msgpack_sbuffer_write(&m.sb, LIT("\x81\xa5table\xa1t"));
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_GET, why, sizeof why), MAOS_EPROTO);
    assert_non_null(strstr(why, "get reply with an entry without"));
    /* an entry that is not a map is malformed */
    assert_err(maos_reply_decode(LIT("\x83\xa3rid\x01\xa2ok\xc3\xa5" "entry\x90"), &rep),
               MAOS_EPROTO);

    /* list: streamed entries, next key or nil, revision */
    maos_list_mark mark;
    for (int more = 0; more < 2; more++) {
        mp_reset(&m);
        assert_int_equal(maos_enc_list_begin(&m.sb, 4, "entries", &mark), 0);
        for (uint64_t i = 0; i < 3; i++) {
            char key[24];
            snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
            enc_test_entry(&m.pk, key, 10 + i);
        }
        assert_int_equal(maos_enc_entries_end(&m.sb, &mark, 3, more ? S("k2") : S(""), 77),
                         0);
        assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
        assert_err(maos_reply_check(&rep, MAOS_OP_LIST, why, sizeof why), 0);
        assert_int_equal(rep.n_items, 3);
        assert_int_equal(rep.revision, 77);
        assert_int_equal(rep.next_kind, more ? MAOS_NEXT_STR : MAOS_NEXT_NONE);
        if (more)
            assert_slice(rep.next_s, "k2");
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        assert_err(maos_mpr_array(&r, &n), 0);
        for (uint64_t i = 0; i < n; i++) {
            char key[24];
            snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
            assert_err(maos_entry_next(&r, &e), 0);
            check_test_entry(&e, key, 10 + i);
        }
        assert_ptr_equal(r.p, r.end);
        check_promised(MAOS_OP_LIST, &m,
                       (const char *const[]){"entries", "next", "revision", NULL});
        /* a list of entries is not an event page or a stream listing */
        assert_err(maos_reply_check(&rep, MAOS_OP_READ, NULL, 0), MAOS_EPROTO);
        assert_err(maos_reply_check(&rep, MAOS_OP_STREAMS, NULL, 0), MAOS_EPROTO);
    }
    /* entries_end needs the list_begin mark of an entries reply */
    maos_list_mark none = {0};
    assert_int_equal(maos_enc_entries_end(&m.sb, &none, 0, S(""), 1), MAOS_EINVALID_ARG);
    /* a numeric next is not a key */
    mp_reset(&m);
    assert_int_equal(maos_enc_list_begin(&m.sb, 4, "entries", &mark), 0);
    assert_int_equal(maos_enc_list_end(&m.sb, &mark, 0, MAOS_NEXT_UINT, 5, S("")), 0);
    msgpack_pack_str_with_body(&m.pk, "revision", 8);
    msgpack_pack_uint64(&m.pk, 5);
    m.sb.data[0] = (char)0x85;
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_LIST, why, sizeof why), MAOS_EPROTO);
    assert_string_equal(why, "list reply with a numeric next (a key or nil)");

    /* count, watch */
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_count(&m.pk, 5, 5000000000ull, 78), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_int_equal(rep.count, 5000000000ull); /* more than an append's uint32 */
    assert_int_equal(rep.revision, 78);
    check_promised(MAOS_OP_COUNT, &m, (const char *const[]){"count", "revision", NULL});
    assert_err(maos_reply_check(&rep, MAOS_OP_APPEND, NULL, 0), MAOS_EPROTO);
    mp_reset(&m);
    assert_int_equal(maos_enc_reply_watch(&m.pk, 6, 3, 79), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_int_equal(rep.sub, 3);
    assert_int_equal(rep.revision, 79);
    check_promised(MAOS_OP_WATCH, &m, (const char *const[]){"sub", "revision", NULL});

    /* WRONG_REVISION with the entry's current revision, and with -1 */
    mp_reset(&m);
    assert_int_equal(maos_enc_error(&m.pk, 7, MAOS_EWRONG_REVISION, NULL, 1, -1, 2), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_int_equal(rep.ok, 0);
    assert_err(rep.code, MAOS_EWRONG_REVISION);
    assert_slice(rep.message, "entry is not at the expected revision");
    assert_int_equal(rep.has_actual, 1);
    assert_int_equal(rep.actual, -1);
    assert_int_equal(rep.index, 2);
    assert_string_equal(maos_err_name(MAOS_EWRONG_REVISION), "WRONG_REVISION");
    assert_int_equal(MAOS_EWRONG_REVISION, -20);

    /* ... and with the entry as it is */
    mp ent;
    mp_init(&ent);
    assert_int_equal(maos_enc_entry(&ent.pk, (maos_slice){"kv.c", 4}, (maos_slice){"k", 1},
                                    41, 40, 5, 6, 0, (maos_slice){"\x81\xa1n\x02", 4}),
                     0);
    mp_reset(&m);
    assert_int_equal(maos_enc_error_entry(&m.pk, 8, MAOS_EWRONG_REVISION, "stale", 1, 41,
                                          -1, (maos_slice){ent.sb.data,
                                                           (uint32_t)ent.sb.size}),
                     0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(rep.code, MAOS_EWRONG_REVISION);
    assert_int_equal(rep.actual, 41);
    assert_int_equal(rep.index, -1);
    maos_entry en;
    assert_err(maos_entry_decode(rep.entry.ptr, rep.entry.len, &en), 0);
    assert_int_equal(en.revision, 41);
    assert_int_equal(en.created_revision, 40);
    assert_slice(en.key, "k");
    assert_int_equal(en.data.len, 4);
    mp_free(&ent);
    mp_free(&m);
}

static void test_rt_txn_results(void **state)
{
    (void)state;
    mp m;
    maos_reply rep;
    uint8_t ids[32] = {7, 7};
    maos_txn_result res[4] = {
        {.kind = MAOS_ITEM_APPEND, .append = {S("orders-1"), 4, 200, 2, 0,
                                              {(const char *)ids, 32}}},
        {.kind = MAOS_ITEM_PUT, .revision = 202, .created_revision = 150},
        {.kind = MAOS_ITEM_DELETE, .revision = 203},
        {.kind = MAOS_ITEM_CHECKPOINT},
    }, got;
    mp_init(&m);
    assert_int_equal(maos_enc_reply_txn_begin(&m.pk, 9, 4), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(maos_enc_txn_result(&m.pk, &res[i]), 0);
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), 0);
    assert_err(maos_reply_check(&rep, MAOS_OP_TXN, NULL, 0), 0);
    assert_int_equal(rep.n_results, 4);
    /* told the kinds (as a client is, from its request), and inferred */
    for (int pass = 0; pass < 2; pass++) {
        maos_mpr r;
        uint32_t n;
        maos_mpr_init(&r, rep.results.ptr, rep.results.len);
        assert_err(maos_mpr_array(&r, &n), 0);
        for (int i = 0; i < 4; i++) {
            assert_err(maos_txn_result_next(&r, pass ? 0 : res[i].kind, &got), 0);
            assert_int_equal(got.kind, res[i].kind);
            assert_int_equal(got.revision, res[i].revision);
            assert_int_equal(got.created_revision, res[i].created_revision);
            assert_slice_n(got.append.stream, res[i].append.stream.ptr,
                           res[i].append.stream.len);
            assert_int_equal(got.append.first_position, res[i].append.first_position);
            assert_int_equal(got.append.count, res[i].append.count);
            assert_slice_n(got.append.ids, res[i].append.ids.ptr, res[i].append.ids.len);
        }
        assert_ptr_equal(r.p, r.end);
    }
    /* the append element still reads with maos_append_result_next; a put
     * element does not */
    maos_mpr r;
    uint32_t n;
    maos_append_result ar;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    assert_err(maos_mpr_array(&r, &n), 0);
    assert_err(maos_append_result_next(&r, &ar), 0);
    assert_slice(ar.stream, "orders-1");
    const uint8_t *at = r.p;
    assert_err(maos_append_result_next(&r, &ar), MAOS_EPROTO);
    /* a put element without created_revision is not a put result, a
     * delete element is not an append; the cursor stays */
    assert_err(maos_txn_result_next(&r, MAOS_ITEM_APPEND, &got), MAOS_EPROTO);
    assert_ptr_equal(r.p, at);
    maos_mpr one;
    maos_mpr_init(&one, LIT("\x81\xa8revision\x05"));
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_PUT, &got), MAOS_EPROTO);
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_APPEND, &got), MAOS_EPROTO);
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_DELETE, &got), 0);
    maos_mpr_init(&one, LIT("\x80"));
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_DELETE, &got), MAOS_EPROTO);
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_CHECKPOINT, &got), 0);
    maos_mpr_init(&one, LIT("\x80"));
    assert_err(maos_txn_result_next(&one, MAOS_ITEM__WIRE_END, &got), MAOS_EINVALID_ARG);
    assert_err(maos_txn_result_next(&one, -1, &got), MAOS_EINVALID_ARG);
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_CLAIM, &got), MAOS_EINVALID_ARG);
    assert_err(maos_txn_result_next(&one, MAOS_ITEM_ACK, &got), MAOS_EPROTO);
    maos_mpr_init(&one, LIT("\x81\xa8revision\xa1x"));
    assert_err(maos_txn_result_next(&one, 0, &got), MAOS_EPROTO);
    /* an unknown kind is not encoded */
    maos_txn_result bad = {.kind = 0};
    assert_int_equal(maos_enc_txn_result(&m.pk, &bad), MAOS_EINVALID_ARG);
    mp_free(&m);
}

static void test_rt_push_entries(void **state)
{
    (void)state;
    mp m;
    maos_push p;
    maos_list_mark mark;
    mp_init(&m);
    for (int more = 0; more < 2; more++) {
        mp_reset(&m);
        assert_int_equal(maos_enc_push_entries_begin(&m.sb, 4, &mark), 0);
        enc_test_entry(&m.pk, "a", 5);
        enc_test_entry(&m.pk, "b", 6);
        assert_int_equal(maos_enc_push_entries_end(&m.sb, &mark, 2, 80, more), 0);
        assert_int_equal(maos_push_decode(m.sb.data, m.sb.size, &p), 1);
        assert_int_equal(p.kind, MAOS_PUSH_ENTRIES);
        assert_string_equal(maos_push_name(p.kind), "entries");
        assert_int_equal(p.sub, 4);
        assert_int_equal(p.revision, 80);
        assert_int_equal(p.more, more);
        assert_int_equal(p.n_items, 2);
        maos_mpr r;
        uint32_t n;
        maos_entry e;
        maos_mpr_init(&r, p.items.ptr, p.items.len);
        assert_err(maos_mpr_array(&r, &n), 0);
        assert_err(maos_entry_next(&r, &e), 0);
        check_test_entry(&e, "a", 5);
        assert_err(maos_entry_next(&r, &e), 0);
        check_test_entry(&e, "b", 6);
    }
    /* an entries push without any of entries, revision, more is malformed */
    static const char *const need[] = {"entries", "revision", "more"};
    mp cut;
    mp_init(&cut);
    for (int i = 0; i < 3; i++) {
        copy_map_without(m.sb.data, m.sb.size, (const char *const[]){need[i], NULL}, &cut);
        assert_int_equal(maos_push_decode(cut.sb.data, cut.sb.size, &p), MAOS_EPROTO);
    }
    mp_free(&cut);
    /* and it is not a reply */
    maos_reply rep;
    assert_err(maos_reply_decode(m.sb.data, m.sb.size, &rep), MAOS_EPROTO);
    mp_free(&m);
}

/* ---- main ------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_put_len),
        cmocka_unit_test(test_reader_whole_frame),
        cmocka_unit_test(test_reader_byte_by_byte),
        cmocka_unit_test(test_reader_many_in_one_feed),
        cmocka_unit_test(test_reader_space_commit),
        cmocka_unit_test(test_reader_max_frame_exact_ok),
        cmocka_unit_test(test_reader_oversized_feed),
        cmocka_unit_test(test_reader_oversized_space),
        cmocka_unit_test(test_reader_zero_length),
        cmocka_unit_test(test_reader_sticky),
        cmocka_unit_test(test_reader_free_zeroed),
        cmocka_unit_test(test_mp_check_valid),
        cmocka_unit_test(test_mp_check_truncated),
        cmocka_unit_test(test_mp_check_trailing),
        cmocka_unit_test(test_mp_check_reserved),
        cmocka_unit_test(test_mp_check_declared_lengths),
        cmocka_unit_test(test_mp_check_depth),
        cmocka_unit_test(test_mp_check_elems),
        cmocka_unit_test(test_mpr_cursor),
        cmocka_unit_test(test_mpr_skip_forms),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_filter_match),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_rt_hello),
        cmocka_unit_test(test_rt_simple),
        cmocka_unit_test(test_rt_append_plain),
        cmocka_unit_test(test_rt_append_ids_meta),
        cmocka_unit_test(test_rt_txn),
        cmocka_unit_test(test_rt_read),
        cmocka_unit_test(test_rt_read_all),
        cmocka_unit_test(test_rt_streams),
        cmocka_unit_test(test_request_rejections),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_rt_record),
        cmocka_unit_test(test_rt_reply_hello_ok),
        cmocka_unit_test(test_rt_reply_append),
        cmocka_unit_test(test_rt_reply_error),
        cmocka_unit_test(test_rt_reply_stats),
        cmocka_unit_test(test_rt_reply_events_list),
        cmocka_unit_test(test_rt_reply_streams_list),
        cmocka_unit_test(test_reply_required_fields),
        cmocka_unit_test(test_reply_bare_ok),
        cmocka_unit_test(test_reply_next_kind),
        cmocka_unit_test(test_reply_list_elements),
        cmocka_unit_test(test_stream_and_key_check),
        cmocka_unit_test(test_table_parse),
        cmocka_unit_test(test_table_stream),
        cmocka_unit_test(test_rt_put_delete),
        cmocka_unit_test(test_rt_get_list_count),
        cmocka_unit_test(test_rt_watch),
        cmocka_unit_test(test_rt_agents),
        cmocka_unit_test(test_rt_items),
        cmocka_unit_test(test_table_rejections),
        cmocka_unit_test(test_agent_rejections),
        cmocka_unit_test(test_txn_rejections),
        cmocka_unit_test(test_rt_entry),
        cmocka_unit_test(test_rt_table_replies),
        cmocka_unit_test(test_rt_txn_results),
        cmocka_unit_test(test_rt_push_entries),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
