/*
 * proto/frame.c -- the push reader for length-prefixed frames.
 *
 * Invariants:
 *  - buf[pos..len) holds bytes not yet handed out as frames.
 *  - The buffer grows only to hold the frame whose header has been read
 *    and checked against max_frame, so a peer that declares a huge length
 *    gets MAOS_EFRAME_TOO_LARGE before a single byte of it is buffered.
 *  - Errors are sticky: once r->err is set every call returns it.
 *  - A frame over 1 MiB gets a buffer of exactly its size, and
 *    maos_reader_shrink gives a large empty buffer back, so an idle
 *    connection does not keep the memory of its largest frame.
 */
#include <stdlib.h>
#include <string.h>

#include "maos/proto.h"

#define READER_MIN_CAP 16384
#define READER_BIG (1u << 20)

void maos_frame_put_len(char hdr[4], uint32_t len)
{
    hdr[0] = (char)(len >> 24);
    hdr[1] = (char)(len >> 16);
    hdr[2] = (char)(len >> 8);
    hdr[3] = (char)len;
}

static uint32_t get_len(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) |
           ((uint32_t)u[2] << 8) | (uint32_t)u[3];
}

void maos_reader_init(maos_reader *r, uint32_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame ? max_frame : MAOS_DEFAULT_MAX_FRAME;
}

void maos_reader_free(maos_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    r->buf = NULL;
    r->len = r->pos = r->cap = 0;
}

/* Check the header of the pending frame, if present.  Returns the bytes the
 * pending frame needs in total (header + payload), or a negative error. */
static long pending_need(maos_reader *r)
{
    size_t avail = r->len - r->pos;
    if (avail < 4)
        return 4;
    uint32_t n = get_len(r->buf + r->pos);
    if (n == 0)
        return r->err = MAOS_EBAD_FRAME;
    if (n > r->max_frame)
        return r->err = MAOS_EFRAME_TOO_LARGE;
    return (long)n + 4;
}

/* Make room for `need` bytes from pos on; moves pending bytes to the front. */
static int ensure(maos_reader *r, size_t need)
{
    if (r->pos > 0 && (r->pos == r->len || r->cap - r->pos < need)) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->cap - r->pos >= need)
        return 0;
    size_t cap = r->cap ? r->cap : READER_MIN_CAP;
    while (cap < need)
        cap *= 2;
    if (need > READER_BIG && cap > need)
        cap = need; /* a big frame gets exactly its size, not double */
    char *nb = realloc(r->buf, cap);
    if (!nb)
        return r->err = MAOS_ENOMEM;
    r->buf = nb;
    r->cap = cap;
    return 0;
}

long maos_reader_space(maos_reader *r, char **p, size_t want)
{
    if (r->err)
        return r->err;
    long need = pending_need(r);
    if (need < 0)
        return need;
    size_t target = (size_t)need;
    if (target < want)
        target = want;
    /* Always offer at least a minimum chunk so small frames batch up, but
     * never grow past the pending frame's size for it. */
    if (target < READER_MIN_CAP)
        target = READER_MIN_CAP;
    int rc = ensure(r, target);
    if (rc)
        return rc;
    *p = r->buf + r->len;
    return (long)(r->cap - r->len);
}

void maos_reader_shrink(maos_reader *r)
{
    if (r->pos != r->len || r->cap <= 4 * READER_MIN_CAP)
        return;
    free(r->buf);
    r->buf = NULL;
    r->cap = r->len = r->pos = 0;
}

void maos_reader_commit(maos_reader *r, size_t n)
{
    r->len += n;
}

int maos_reader_feed(maos_reader *r, const void *p, size_t n)
{
    const char *src = p;
    if (r->err)
        return r->err;
    while (n) {
        /* Complete the pending header first and check it, so that bytes
         * of an oversized frame are refused rather than buffered. */
        size_t avail = r->len - r->pos, take = n;
        if (avail < 4) {
            if (take > 4 - avail)
                take = 4 - avail;
        } else {
            long need = pending_need(r);
            if (need < 0)
                return (int)need;
        }
        if (r->cap - r->len < take) {
            int rc = ensure(r, r->len - r->pos + take);
            if (rc)
                return rc;
        }
        memcpy(r->buf + r->len, src, take);
        r->len += take;
        src += take;
        n -= take;
    }
    return 0;
}

int maos_reader_next(maos_reader *r, maos_slice *frame)
{
    if (r->err)
        return r->err;
    long need = pending_need(r);
    if (need < 0)
        return (int)need;
    if (r->len - r->pos < (size_t)need)
        return 0;
    frame->ptr = r->buf + r->pos + 4;
    frame->len = (uint32_t)(need - 4);
    r->pos += (size_t)need;
    return 1;
}
