/*
 * tests/stress/test_concurrency.c -- many writer processes at once against
 * one maosd with the default (sync) durability (issue 2, "Concurrency").
 *
 * 8 forked writers, each with its own connection, start together (each
 * says it is connected over a pipe; then one "go" releases them all) and
 * make 2,000 synchronous appends of one event each: even
 * sequence numbers to the shared stream (expect any), odd ones to their own
 * private stream (expect the exact version, since they are its only
 * writer).  Afterwards the whole $all log is read back and checked:
 * positions dense 1..16000, every stream's versions dense, every
 * (writer, seq) exactly once and in the right stream, a private stream in
 * its writer's order, the shared stream 8,000 events, `maosctl verify` OK.
 *
 * Whether commits grouped is not asserted here: with 8 writers it depends
 * on timing (a fast disk can finish each fsync before the next request
 * arrives).  tests/fault/test_fault_io.c test_group_commit_gated shows
 * grouping deterministically (a WAL sync held at a gate while requests
 * queue), and tests/bench measures how much it groups.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

enum { WRITERS = 8, PER_WRITER = 2000, TOTAL = WRITERS * PER_WRITER };

static size_t mk_data(char *buf, uint32_t w, uint32_t seq)
{
    /* {"w": w, "seq": seq} with fixed-width uint32 values */
    size_t n = 0;
    buf[n++] = (char)0x82;
    buf[n++] = (char)0xa1;
    buf[n++] = 'w';
    buf[n++] = (char)0xce;
    for (int i = 3; i >= 0; i--)
        buf[n++] = (char)(w >> (8 * i));
    buf[n++] = (char)0xa3;
    memcpy(buf + n, "seq", 3);
    n += 3;
    buf[n++] = (char)0xce;
    for (int i = 3; i >= 0; i--)
        buf[n++] = (char)(seq >> (8 * i));
    return n;
}

/* Decode {"w","seq"}; 0 or -1. */
static int parse_data(const void *p, size_t len, uint32_t *w, uint32_t *seq)
{
    maos_mpr r;
    maos_mpr_init(&r, p, len);
    uint32_t n;
    int have = 0;
    if (maos_mpr_map(&r, &n) || n != 2)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        uint64_t v;
        if (maos_mpr_str(&r, &k) || maos_mpr_uint(&r, &v))
            return -1;
        if (k.len == 1 && k.ptr[0] == 'w') {
            *w = (uint32_t)v;
            have |= 1;
        } else if (k.len == 3 && memcmp(k.ptr, "seq", 3) == 0) {
            *seq = (uint32_t)v;
            have |= 2;
        }
    }
    return have == 3 ? 0 : -1;
}

/* The writer process: exit 0 when all appends were acknowledged. */
static void writer(const char *sock, uint32_t w, int ready_fd, int barrier_fd)
{
    maos_ctx *c = maos_connect_timeout(sock, 60000);
    if (!c || c->err) {
        fprintf(stderr, "writer %u: connect: %s\n", w, c ? c->errstr : "NULL");
        _exit(10);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(14);
    close(ready_fd);
    char b;
    if (read(barrier_fd, &b, 1) < 0) { /* EOF: go */
    }
    close(barrier_fd);
    char priv[32];
    snprintf(priv, sizeof priv, "priv-%u", w);
    uint64_t priv_next = 0; /* the version its next event gets */
    for (uint32_t seq = 0; seq < PER_WRITER; seq++) {
        char data[32];
        size_t dl = mk_data(data, w, seq);
        maos_event_spec ev = {NULL, seq % 2 ? "Private" : "Shared", data, dl,
                              NULL, 0};
        maos_append_info info;
        memset(&info, 0, sizeof info);
        int rc;
        if (seq % 2 == 0) {
            rc = maos_append(c, "shared-1", MAOS_EXPECT_ANY, &ev, 1, &info);
        } else {
            int64_t expect = priv_next == 0 ? MAOS_EXPECT_NO_STREAM
                                            : (int64_t)priv_next - 1;
            rc = maos_append(c, priv, expect, &ev, 1, &info);
            if (rc == 0) {
                if (info.version != priv_next) {
                    fprintf(stderr, "writer %u seq %u: version %llu, want %llu\n",
                            w, seq, (unsigned long long)info.version,
                            (unsigned long long)priv_next);
                    _exit(12);
                }
                priv_next++;
            }
        }
        if (rc != 0) {
            fprintf(stderr, "writer %u seq %u: append: %d (%s) %s\n", w, seq,
                    rc, maos_err_name(rc), c->errstr);
            _exit(11);
        }
        if (info.count != 1 || info.position == 0 || info.position > TOTAL) {
            fprintf(stderr, "writer %u seq %u: count %u position %llu\n", w,
                    seq, info.count, (unsigned long long)info.position);
            _exit(13);
        }
    }
    maos_free(c);
    _exit(0);
}

static void test_eight_writers(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);

    int bar[2], ready[2];
    MT_EQ_INT(pipe(bar), 0);
    MT_EQ_INT(pipe(ready), 0);
    pid_t pids[WRITERS];
    for (uint32_t w = 0; w < WRITERS; w++) {
        pid_t pid = mt_fork();
        if (pid < 0)
            MT_FAIL("fork: %s", strerror(errno));
        if (pid == 0) {
            close(bar[1]);
            close(ready[0]);
            writer(d->sock, w, ready[1], bar[0]);
        }
        pids[w] = pid;
    }
    close(bar[0]);
    close(ready[1]);
    /* every writer connected: one byte each (EOF early: one died) */
    for (int got = 0; got < WRITERS;) {
        char buf[WRITERS];
        struct pollfd p = {ready[0], POLLIN, 0};
        if (poll(&p, 1, 60000) <= 0)
            MT_FAIL("%d of %d writers connected within 60 s", got, WRITERS);
        ssize_t r = read(ready[0], buf, (size_t)(WRITERS - got));
        if (r <= 0)
            MT_FAIL("%d of %d writers connected, then one exited", got,
                    WRITERS);
        got += (int)r;
    }
    close(ready[0]);
    int64_t t0 = mt_now_us();
    close(bar[1]);    /* go */
    int failed = 0;
    for (int w = 0; w < WRITERS; w++) {
        int st = mt_wait(pids[w], 240000);
        if (st != 0) {
            fprintf(stderr, "writer %d exit status %d\n", w, st);
            failed++;
        }
    }
    double secs = (double)(mt_now_us() - t0) / 1e6;
    print_message("%d appends by %d processes in %.2f s (%.0f/s)\n", TOTAL,
                  WRITERS, secs, TOTAL / secs);
    MT_EQ_INT(failed, 0);

    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    print_message("commit groups %llu, requests %llu, max group %llu\n",
                  (unsigned long long)st.commit_groups,
                  (unsigned long long)st.commit_requests,
                  (unsigned long long)st.commit_max_group);
    MT_EQ_U64(st.head_position, TOTAL);
    MT_CMP_INT(st.commit_events, >=, TOTAL);
    MT_EQ_U64(st.commit_errors, 0);

    /* read everything back */
    static uint8_t seen[WRITERS][PER_WRITER];
    memset(seen, 0, sizeof seen);
    uint64_t shared_next = 0, priv_next[WRITERS] = {0};
    uint32_t priv_last_seq[WRITERS];
    memset(priv_last_seq, 0xff, sizeof priv_last_seq);
    uint64_t expect_pos = 1, from = MAOS_FROM_START;
    for (int guard = 0; guard < 100000; guard++) {
        maos_page *p = NULL;
        int rc = maos_read_all(c, NULL, from, 0, MAOS_READ_LIMIT_MAX, &p);
        if (rc)
            MT_FAIL("read_all: %d (%s) %s", rc, maos_err_name(rc), c->errstr);
        for (size_t i = 0; i < p->n; i++) {
            const maos_event *e = &p->events[i];
            if (e->position != expect_pos) {
                uint64_t got = e->position;
                maos_page_free(p);
                MT_FAIL("positions not dense: got %llu, want %llu",
                        (unsigned long long)got, (unsigned long long)expect_pos);
            }
            expect_pos++;
            uint32_t w = 0, seq = 0;
            if (parse_data(e->data, e->data_len, &w, &seq) || w >= WRITERS ||
                seq >= PER_WRITER)
                MT_FAIL("position %llu: undecodable data",
                        (unsigned long long)e->position);
            if (seen[w][seq]++)
                MT_FAIL("(writer %u, seq %u) appears twice (position %llu)", w,
                        seq, (unsigned long long)e->position);
            char priv[32];
            snprintf(priv, sizeof priv, "priv-%u", w);
            const char *want = seq % 2 ? priv : "shared-1";
            if (e->stream_len != strlen(want) ||
                memcmp(e->stream, want, e->stream_len) != 0)
                MT_FAIL("(writer %u, seq %u) in stream %.*s, want %s", w, seq,
                        (int)e->stream_len, e->stream, want);
            if (seq % 2 == 0) {
                MT_EQ_U64(e->version, shared_next);
                shared_next++;
            } else {
                MT_EQ_U64(e->version, priv_next[w]);
                priv_next[w]++;
                if (priv_last_seq[w] != UINT32_MAX)
                    MT_CMP_INT(seq, >, priv_last_seq[w]);
                priv_last_seq[w] = seq;
            }
        }
        int more = p->has_next;
        from = p->next;
        maos_page_free(p);
        if (!more)
            break;
    }
    MT_EQ_U64(expect_pos - 1, TOTAL);
    MT_EQ_U64(shared_next, TOTAL / 2);
    for (int w = 0; w < WRITERS; w++) {
        MT_EQ_U64(priv_next[w], PER_WRITER / 2);
        for (int s = 0; s < PER_WRITER; s++)
            if (seen[w][s] != 1)
                MT_FAIL("(writer %d, seq %d) seen %d times", w, s, seen[w][s]);
    }

    /* the streams listing agrees */
    maos_stream_page *sp = NULL;
    MT_EQ_ERR(maos_streams(c, "shared-", NULL, 0, &sp), 0);
    MT_EQ_U64(sp->n, 1);
    MT_EQ_U64(sp->streams[0].count, TOTAL / 2);
    MT_EQ_U64(sp->streams[0].head, TOTAL / 2 - 1);
    maos_stream_page_free(sp);
    sp = NULL;
    MT_EQ_ERR(maos_streams(c, "priv-", NULL, 0, &sp), 0);
    MT_EQ_U64(sp->n, WRITERS);
    for (size_t i = 0; i < sp->n; i++)
        MT_EQ_U64(sp->streams[i].count, PER_WRITER / 2);
    maos_stream_page_free(sp);
    maos_free(c);

    mt_run r;
    int vst = mt_ctl(d, &r, "verify", NULL);
    if (vst != 0 || !strstr(r.out, "OK"))
        MT_FAIL("maosctl verify: status %d, out \"%s\", err \"%s\"", vst, r.out,
                r.err);
    mt_run_free(&r);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_writers),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 280);
}
