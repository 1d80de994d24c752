/*
 * tests/fault/fault_util.c -- see fault_util.h.
 */
#include "fault_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FU_DEFAULT_SHIM
#define FU_DEFAULT_SHIM NULL
#endif

/* ---- ids ----------------------------------------------------------------- */

void fu_mk_id(uint8_t id[16], uint8_t tag, uint32_t w, uint32_t s, uint32_t i)
{
    memset(id, 0, 16);
    id[0] = 0xfa;
    id[1] = tag;
    id[2] = (uint8_t)w;
    id[3] = (uint8_t)i;
    id[6] = 0x40; /* version 4 */
    id[8] = 0x80; /* RFC 4122 variant */
    id[10] = (uint8_t)s;
    id[11] = (uint8_t)(s >> 8);
    id[12] = (uint8_t)(s >> 16);
    id[13] = (uint8_t)(s >> 24);
    id[15] = 0x5a;
}

int fu_parse_id(const uint8_t id[16], uint8_t tag, uint32_t *w, uint32_t *s,
                uint32_t *i)
{
    if (id[0] != 0xfa || id[1] != tag || id[6] != 0x40 || id[8] != 0x80 ||
        id[15] != 0x5a)
        return 0;
    *w = id[2];
    *i = id[3];
    *s = (uint32_t)id[10] | (uint32_t)id[11] << 8 | (uint32_t)id[12] << 16 |
         (uint32_t)id[13] << 24;
    return 1;
}

/* ---- acks ---------------------------------------------------------------- */

int fu_ack_write(int fd, const fu_ack *a)
{
    return write(fd, a, sizeof *a) == (ssize_t)sizeof *a ? 0 : -1;
}

void fu_acks_push(fu_acks *a, const fu_ack *k)
{
    fu_ack *v = realloc(a->v, (a->n + 1) * sizeof *v);
    if (!v)
        MT_FAIL("out of memory");
    v[a->n++] = *k;
    a->v = v;
}

void fu_acks_load(const char *path, fu_acks *out)
{
    size_t len = 0;
    char *buf = mt_read_file(path, &len);
    if (!buf)
        return;
    size_t n = len / sizeof(fu_ack);
    if (n) {
        fu_ack *v = realloc(out->v, (out->n + n) * sizeof *v);
        if (!v)
            MT_FAIL("out of memory");
        memcpy(v + out->n, buf, n * sizeof *v);
        out->v = v;
        out->n += n;
    }
    free(buf);
}

void fu_acks_free(fu_acks *a)
{
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

/* ---- the log ------------------------------------------------------------- */

uint64_t fu_hash(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void fu_log_load(maos_ctx *c, fu_log *out)
{
    maos_stats_info st;
    int rc = maos_stats_get(c, &st);
    if (rc)
        MT_FAIL("stats: %d (%s) %s", rc, maos_err_name(rc), c->errstr);
    uint64_t head = st.head_position;
    fu_ev *v = calloc(head ? head : 1, sizeof *v);
    if (!v)
        MT_FAIL("out of memory for %llu events", (unsigned long long)head);
    uint64_t expect = 1, from = MAOS_FROM_START;
    for (int guard = 0; guard < 1000000; guard++) {
        maos_page *p = NULL;
        rc = maos_read_all(c, NULL, from, 0, MAOS_READ_LIMIT_MAX, &p);
        if (rc) {
            free(v);
            MT_FAIL("read_all from %llu: %d (%s) %s", (unsigned long long)from,
                    rc, maos_err_name(rc), c->errstr);
        }
        for (size_t i = 0; i < p->n; i++) {
            const maos_event *e = &p->events[i];
            if (e->position != expect || expect > head) {
                uint64_t got = e->position;
                maos_page_free(p);
                free(v);
                MT_FAIL("read_all: position %llu where %llu was due (head "
                        "%llu): positions not dense",
                        (unsigned long long)got, (unsigned long long)expect,
                        (unsigned long long)head);
            }
            fu_ev *f = &v[expect - 1];
            f->pos = e->position;
            f->version = e->version;
            memcpy(f->id, e->id, 16);
            snprintf(f->stream, sizeof f->stream, "%.*s", (int)e->stream_len,
                     e->stream);
            f->hash = fu_hash(e->raw, e->raw_len);
            expect++;
        }
        int more = p->has_next;
        from = p->next;
        maos_page_free(p);
        if (!more || expect > head)
            break;
    }
    if (expect - 1 != head) {
        free(v);
        MT_FAIL("read_all ended at %llu, head_position is %llu",
                (unsigned long long)(expect - 1), (unsigned long long)head);
    }
    out->v = v;
    out->n = head;
}

void fu_log_free(fu_log *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- the history check --------------------------------------------------- */

/* Per writer: where each append landed (0: not in the log). */
typedef struct wr_hist {
    uint64_t *first; /* first[s]: position of event 0 of append s */
    uint32_t cap;
    uint32_t max_s; /* highest s seen + 1 */
} wr_hist;

static void hist_put(wr_hist *h, uint32_t s, uint64_t pos)
{
    if (s >= h->cap) {
        uint32_t nc = h->cap ? h->cap : 64;
        while (nc <= s)
            nc *= 2;
        uint64_t *nf = realloc(h->first, nc * sizeof *nf);
        if (!nf)
            MT_FAIL("out of memory");
        memset(nf + h->cap, 0, (nc - h->cap) * sizeof *nf);
        h->first = nf;
        h->cap = nc;
    }
    h->first[s] = pos;
    if (s + 1 > h->max_s)
        h->max_s = s + 1;
}

uint64_t fu_check_history(const fu_log *log, const fu_acks *acks, uint8_t tag,
                          uint32_t writers, fu_k_fn kf,
                          const char *const *streams, int sequential,
                          const char *when)
{
    wr_hist *h = calloc(writers, sizeof *h);
    if (!h)
        MT_FAIL("out of memory");
    /* Walk the log: every append of this tag whole, in order, once. */
    for (uint64_t p = 1; p <= log->n;) {
        const fu_ev *e = &log->v[p - 1];
        uint32_t w, s, i;
        if (!fu_parse_id(e->id, tag, &w, &s, &i)) {
            p++;
            continue;
        }
        if (w >= writers || i != 0)
            MT_FAIL("%s: position %llu holds event %u of writer %u's append "
                    "%u without its start: an append visible partly",
                    when, (unsigned long long)p, i, w, s);
        if (s < h[w].cap && h[w].first[s])
            MT_FAIL("%s: writer %u's append %u is stored twice, at %llu and "
                    "%llu",
                    when, w, s, (unsigned long long)h[w].first[s],
                    (unsigned long long)p);
        uint32_t k = kf(w, s);
        for (uint32_t j = 1; j < k; j++) {
            uint32_t w2, s2, i2;
            if (p + j > log->n ||
                !fu_parse_id(log->v[p + j - 1].id, tag, &w2, &s2, &i2) ||
                w2 != w || s2 != s || i2 != j ||
                strcmp(log->v[p + j - 1].stream, e->stream) != 0 ||
                log->v[p + j - 1].version != e->version + j)
                MT_FAIL("%s: writer %u's append %u (%u events) from position "
                        "%llu is not whole: event %u is not at %llu",
                        when, w, s, k, (unsigned long long)p, j,
                        (unsigned long long)(p + j));
        }
        hist_put(&h[w], s, p);
        p += k;
    }
    /* Every acknowledged append where its reply said. */
    uint64_t acked_appends = 0;
    uint32_t *last_acked = calloc(writers, sizeof *last_acked);
    if (!last_acked)
        MT_FAIL("out of memory");
    for (size_t a = 0; a < acks->n; a++) {
        const fu_ack *k = &acks->v[a];
        if (k->w >= writers)
            MT_FAIL("%s: ack record %zu names writer %u", when, a, k->w);
        uint64_t at = k->s < h[k->w].cap ? h[k->w].first[k->s] : 0;
        if (!at)
            MT_FAIL("%s: writer %u's append %u (%u events) was acknowledged "
                    "at position %llu and is not stored (head %llu)",
                    when, k->w, k->s, k->k, (unsigned long long)k->pos,
                    (unsigned long long)log->n);
        if (at != k->pos)
            MT_FAIL("%s: writer %u's append %u was acknowledged at position "
                    "%llu and is stored at %llu",
                    when, k->w, k->s, (unsigned long long)k->pos,
                    (unsigned long long)at);
        if (k->k != kf(k->w, k->s))
            MT_FAIL("%s: writer %u's append %u acknowledged with %u events, "
                    "sent %u",
                    when, k->w, k->s, k->k, kf(k->w, k->s));
        const fu_ev *e = &log->v[at - 1];
        if (e->version != k->version)
            MT_FAIL("%s: writer %u's append %u: version %llu stored, %llu "
                    "acknowledged",
                    when, k->w, k->s, (unsigned long long)e->version,
                    (unsigned long long)k->version);
        if (streams && strcmp(e->stream, streams[k->stream_no]) != 0)
            MT_FAIL("%s: writer %u's append %u: in stream %s, acknowledged "
                    "for %s",
                    when, k->w, k->s, e->stream, streams[k->stream_no]);
        if (k->s + 1 > last_acked[k->w])
            last_acked[k->w] = k->s + 1;
        acked_appends++;
    }
    /* Per writer: no hole, nothing acknowledged beyond the stored. */
    uint64_t unacked = 0;
    for (uint32_t w = 0; w < writers && sequential; w++) {
        for (uint32_t s = 0; s < h[w].max_s; s++)
            if (!h[w].first[s])
                MT_FAIL("%s: writer %u's append %u is missing while %u is "
                        "stored (a hole: appends are sent one after the other)",
                        when, w, s, h[w].max_s - 1);
        if (h[w].max_s < last_acked[w])
            MT_FAIL("%s: writer %u: %u appends stored, %u acknowledged", when,
                    w, h[w].max_s, last_acked[w]);
    }
    /* Appends stored without an ack record: the set difference, counted
     * per writer (acks may repeat an append: a duplicate reply). */
    for (uint32_t w = 0; w < writers; w++) {
        uint64_t stored = 0, known = 0;
        uint8_t *seen = calloc(h[w].max_s + 1, 1);
        if (!seen)
            MT_FAIL("out of memory");
        for (uint32_t s = 0; s < h[w].max_s; s++)
            stored += h[w].first[s] != 0;
        for (size_t a = 0; a < acks->n; a++)
            if (acks->v[a].w == w && acks->v[a].s < h[w].max_s &&
                !seen[acks->v[a].s]) {
                seen[acks->v[a].s] = 1;
                known++;
            }
        unacked += stored - known;
        free(seen);
        free(h[w].first);
    }
    (void)acked_appends;
    free(last_acked);
    free(h);
    return unacked;
}

void fu_verify_ok(const mt_daemon *d)
{
    mt_run r;
    int st = mt_ctl(d, &r, "verify", NULL);
    if (st != 0 || !strstr(r.out, "OK")) {
        char out[600], err[600];
        snprintf(out, sizeof out, "%s", r.out ? r.out : "");
        snprintf(err, sizeof err, "%s", r.err ? r.err : "");
        mt_run_free(&r);
        MT_FAIL("maosctl verify: status %d, out \"%s\", err \"%s\"", st, out,
                err);
    }
    mt_run_free(&r);
}

maos_ctx *fu_connect(const mt_daemon *d)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    if (!c)
        MT_FAIL("connect %s: out of memory", d->sock);
    if (c->err) {
        char why[300];
        snprintf(why, sizeof why, "%s", c->errstr);
        int e = c->err;
        maos_free(c);
        MT_FAIL("connect %s: %d (%s) %s", d->sock, e, maos_err_name(e), why);
    }
    return c;
}

int fu_send_frame(int fd, const void *p, size_t n)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)n);
    if (mt_send_all(fd, hdr, 4) || mt_send_all(fd, p, n))
        return -1;
    return 0;
}

/* ---- the shim ------------------------------------------------------------ */

const char *fu_shim_path(void)
{
    return mt_bin("MAOS_FAULTSHIM", FU_DEFAULT_SHIM);
}

/* The path of a sanitizer runtime mapped into this process, if any. */
static int sanitizer_runtime(char *out, size_t cap)
{
    static const char *const names[] = {
        "/libasan.so", "/libtsan.so", "/libclang_rt.asan", "/libclang_rt.tsan"};
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (!path)
            continue;
        path[strcspn(path, "\n")] = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strstr(path, names[i]) && strstr(path, ".so")) {
                snprintf(out, cap, "%s", path);
                found = 1;
                break;
            }
    }
    fclose(f);
    return found;
}

void fu_preload(mt_daemon *d, const char *lib)
{
    char rt[1024], val[2200];
    if (sanitizer_runtime(rt, sizeof rt))
        snprintf(val, sizeof val, "%s:%s", rt, lib);
    else
        snprintf(val, sizeof val, "%s", lib);
    mt_daemon_setenv(d, "LD_PRELOAD", val);
}

int fu_log_has(const mt_daemon *d, const char *s)
{
    char *buf = mt_read_file(d->log, NULL);
    int has = buf && strstr(buf, s) != NULL;
    free(buf);
    return has;
}
