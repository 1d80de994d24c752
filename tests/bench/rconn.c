/*
 * tests/bench/rconn.c -- one raw protocol connection for the scenarios
 * that talk the wire directly (tables, queues): proto encoders over one
 * Unix socket, so what is measured is maosd (bench.h, "raw connections").
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int brc_send(bench_rconn *c)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)c->sb.size);
    if (write(c->fd, hdr, 4) != 4)
        return -1;
    size_t off = 0;
    while (off < c->sb.size) {
        ssize_t n = write(c->fd, c->sb.data + off, c->sb.size - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    c->sb.size = 0;
    return 0;
}

/* Next frame (a reply or a push) within timeout_ms: 1, 0 on timeout, -1. */
int brc_recv(bench_rconn *c, int timeout_ms, maos_slice *frame)
{
    for (;;) {
        int rc = maos_reader_next(&c->rd, frame);
        if (rc)
            return rc > 0 ? 1 : -1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&p, 1, timeout_ms);
        if (pr == 0)
            return 0;
        if (pr < 0 && errno != EINTR)
            return -1;
        char *buf;
        long space = maos_reader_space(&c->rd, &buf, 0);
        if (space < 0)
            return -1;
        ssize_t n = read(c->fd, buf, (size_t)space);
        if (n <= 0)
            return -1;
        maos_reader_commit(&c->rd, (size_t)n);
    }
}

/* Send what is packed and wait for its reply (pushes are skipped): the
 * reply's code (0 ok), rep filled; -1000 on a connection failure. */
int brc_call(bench_rconn *c, maos_reply *rep)
{
    uint64_t rid = c->rid;
    if (brc_send(c))
        return -1000;
    for (;;) {
        maos_slice f;
        if (brc_recv(c, 60000, &f) != 1)
            return -1000;
        maos_push p;
        if (maos_push_decode(f.ptr, f.len, &p) != 0)
            continue;
        if (maos_reply_decode(f.ptr, f.len, rep) || rep->rid != rid)
            return -1000;
        return rep->ok ? 0 : rep->code;
    }
}

int brc_open(bench_rconn *c, const char *sock)
{
    memset(c, 0, sizeof(*c));
    c->fd = bench_unix_connect(sock);
    if (c->fd < 0)
        return -1;
    maos_reader_init(&c->rd, MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK);
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    maos_reply rep;
    maos_enc_hello(&c->pk, ++c->rid, MAOS_PROTOCOL_VERSION, "maos-bench");
    return brc_call(c, &rep) == 0 ? 0 : -1;
}

void brc_close(bench_rconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    maos_reader_free(&c->rd);
    msgpack_sbuffer_destroy(&c->sb);
}

maos_slice bench_sl(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

