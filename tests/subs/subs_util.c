/*
 * tests/subs/subs_util.c -- see subs_util.h.
 *
 * Invariants:
 *  - A frame handed out by su_recv lives in the connection's reader and is
 *    valid until the next read; su_wait_reply copies the reply it returns.
 *  - In a helper process (su_in_child) nothing longjmps: a failure prints
 *    and _exits, so cmocka's state copied by fork() is never used.
 */
#include "subs_util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

char su_tag[128];
int su_in_child;

void su_fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (su_in_child) {
        fprintf(stderr, "%s:%d: [%s] %s\n", file, line, su_tag, msg);
        fflush(stderr);
        _exit(1);
    }
    mt_fail_at(file, line, "%s%s%s", su_tag[0] ? su_tag : "",
               su_tag[0] ? ": " : "", msg);
}

pid_t su_fork(const char *fmt, ...)
{
    char tag[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tag, sizeof tag, fmt, ap);
    va_end(ap);
    pid_t pid = mt_fork();
    if (pid < 0)
        SU_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        su_in_child = 1;
        snprintf(su_tag, sizeof su_tag, "%s", tag);
    }
    return pid;
}

int su_alive(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 0;
    return si.si_pid == 0;
}

/* ---- events -------------------------------------------------------------------- */

uint64_t su_hash(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void su_evs_push(su_evs *e, uint64_t pos, uint64_t hash)
{
    if (e->n == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 256;
        su_ev *nv = realloc(e->v, nc * sizeof *nv);
        if (!nv)
            SU_FAIL("out of memory collecting events");
        e->v = nv;
        e->cap = nc;
    }
    e->v[e->n++] = (su_ev){pos, hash};
}

void su_evs_free(su_evs *e)
{
    free(e->v);
    memset(e, 0, sizeof *e);
}

static void print_window(const char *name, const su_evs *e, size_t at)
{
    size_t lo = at > 5 ? at - 5 : 0;
    fprintf(stderr, "  %s (%zu events) around index %zu:", name, e->n, at);
    for (size_t i = lo; i < e->n && i < at + 6; i++)
        fprintf(stderr, " %s%llu", i == at ? "*" : "",
                (unsigned long long)e->v[i].pos);
    fprintf(stderr, "\n");
}

void su_evs_assert_equal(const char *what, const su_evs *got,
                         const su_evs *want)
{
    size_t n = got->n < want->n ? got->n : want->n;
    for (size_t i = 0; i < n; i++) {
        if (got->v[i].pos == want->v[i].pos &&
            got->v[i].hash == want->v[i].hash)
            continue;
        fprintf(stderr, "[%s] %s: first difference at index %zu\n", su_tag,
                what, i);
        print_window("got ", got, i);
        print_window("want", want, i);
        if (got->v[i].pos == want->v[i].pos)
            SU_FAIL("%s: event %zu at position %llu: record bytes differ "
                    "(hash %016llx, want %016llx)",
                    what, i, (unsigned long long)got->v[i].pos,
                    (unsigned long long)got->v[i].hash,
                    (unsigned long long)want->v[i].hash);
        SU_FAIL("%s: event %zu: got position %llu, want %llu (%s)", what, i,
                (unsigned long long)got->v[i].pos,
                (unsigned long long)want->v[i].pos,
                got->v[i].pos < want->v[i].pos ? "an extra event"
                                               : "an event is missing");
    }
    if (got->n != want->n) {
        fprintf(stderr, "[%s] %s: lengths differ\n", su_tag, what);
        print_window("got ", got, n);
        print_window("want", want, n);
        SU_FAIL("%s: got %zu events, want %zu (%s %llu)", what, got->n,
                want->n, got->n > want->n ? "first extra at position"
                                          : "first missing at position",
                (unsigned long long)(got->n > want->n ? got->v[n].pos
                                                      : want->v[n].pos));
    }
}

/* ---- connections ------------------------------------------------------------------ */

static su_conn *conn_new(int fd)
{
    su_conn *c = calloc(1, sizeof *c);
    if (!c)
        SU_FAIL("out of memory");
    c->fd = fd;
    c->next_rid = 1;
    maos_reader_init(&c->rd, SU_REPLY_MAX);
    return c;
}

void su_close(su_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    maos_reader_free(&c->rd);
    free(c);
}

void su_set_push(su_conn *c, su_push_fn fn, void *user)
{
    c->on_push = fn;
    c->user = user;
}

uint64_t su_rid(su_conn *c)
{
    return c->next_rid++;
}

int su_send(su_conn *c, const void *p, size_t n)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)n);
    int rc = mt_send_all(c->fd, hdr, 4);
    if (rc == 0 && n)
        rc = mt_send_all(c->fd, p, n);
    return rc;
}

void su_send_sb(su_conn *c, msgpack_sbuffer *sb)
{
    int rc = su_send(c, sb->data, sb->size);
    if (rc)
        SU_FAIL("send: %s", strerror(-rc));
}

int su_recv(su_conn *c, int timeout_ms, maos_slice *frame)
{
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int r = maos_reader_next(&c->rd, frame);
        if (r == 1)
            return 1;
        if (r < 0)
            SU_FAIL("frame reader: %d (%s)", r, maos_err_name(r));
        int64_t left = deadline - mt_now_us();
        if (left < 0)
            return -1;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(left / 1000) + 1);
        if (pr < 0 && errno != EINTR)
            SU_FAIL("poll: %s", strerror(errno));
        if (pr <= 0)
            continue;
        char *p;
        long space = maos_reader_space(&c->rd, &p, 0);
        if (space <= 0)
            SU_FAIL("reader space: %ld", space);
        ssize_t k = recv(c->fd, p, (size_t)space, 0);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return 0;
        }
        if (k == 0)
            return 0;
        maos_reader_commit(&c->rd, (size_t)k);
    }
}

static void dispatch_push(su_conn *c, maos_slice fr, const maos_push *p)
{
    (void)fr;
    if (!c->on_push)
        SU_FAIL("a %s push for sub %llu arrived and nobody expected pushes",
                maos_push_name(p->kind), (unsigned long long)p->sub);
    c->on_push(c, p, c->user);
}

/* 1 when the frame was a push (dispatched), 0 when it is a reply. */
static int maybe_push(su_conn *c, maos_slice fr)
{
    maos_push p;
    int r = maos_push_decode(fr.ptr, fr.len, &p);

    if (r < 0)
        SU_FAIL("malformed push frame (%u bytes): %s", fr.len,
                maos_err_name(r));
    if (r == 1) {
        dispatch_push(c, fr, &p);
        return 1;
    }
    return 0;
}

char *su_wait_reply(su_conn *c, uint64_t rid, maos_reply *rep, int timeout_ms)
{
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t left = (deadline - mt_now_us()) / 1000;
        maos_slice fr;
        int r = su_recv(c, left > 0 ? (int)left : 0, &fr);
        if (r == 0)
            SU_FAIL("connection closed while waiting for the reply to rid %llu",
                    (unsigned long long)rid);
        if (r < 0)
            SU_FAIL("no reply to rid %llu within %d ms",
                    (unsigned long long)rid, timeout_ms);
        if (maybe_push(c, fr))
            continue;
        char *copy = malloc(fr.len ? fr.len : 1);
        if (!copy)
            SU_FAIL("out of memory");
        memcpy(copy, fr.ptr, fr.len);
        memset(rep, 0, sizeof *rep);
        int rc = maos_reply_decode(copy, fr.len, rep);
        if (rc) {
            free(copy);
            SU_FAIL("undecodable reply (%u bytes): %s", fr.len,
                    maos_err_name(rc));
        }
        if (rep->rid != rid) {
            uint64_t got = rep->rid;
            free(copy);
            SU_FAIL("reply rid: got %llu, want %llu", (unsigned long long)got,
                    (unsigned long long)rid);
        }
        return copy;
    }
}

int su_call(su_conn *c, msgpack_sbuffer *sb, uint64_t rid, maos_reply *rep,
            char **frame)
{
    su_send_sb(c, sb);
    char *f = su_wait_reply(c, rid, rep, 30000);
    int code = rep->ok ? 0 : rep->code;
    if (!rep->ok && code == 0)
        SU_FAIL("an error reply without a code");
    if (frame)
        *frame = f;
    else
        free(f);
    return code;
}

int su_pump(su_conn *c, int timeout_ms, const int *stop)
{
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        if (stop && *stop)
            return 1;
        int64_t left = (deadline - mt_now_us()) / 1000;
        if (left <= 0)
            return 0;
        maos_slice fr;
        int r = su_recv(c, (int)left, &fr);
        if (r == 0)
            return -1;
        if (r < 0)
            return 0;
        if (!maybe_push(c, fr)) {
            maos_reply rep;
            memset(&rep, 0, sizeof rep);
            maos_reply_decode(fr.ptr, fr.len, &rep);
            SU_FAIL("unexpected reply (rid %llu, ok %d, code %d) while only "
                    "pushes were expected",
                    (unsigned long long)rep.rid, rep.ok, rep.code);
        }
    }
}

static su_conn *open_conn(const char *sock, int must)
{
    int fd = mt_connect(sock);
    if (fd < 0) {
        if (must)
            SU_FAIL("connect %s: %s", sock, strerror(errno));
        return NULL;
    }
    su_conn *c = conn_new(fd);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    maos_enc_hello(&pk, rid, MAOS_PROTOCOL_VERSION, "subs-test");
    int rc = su_send(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc) {
        su_close(c);
        if (must)
            SU_FAIL("send hello: %s", strerror(-rc));
        return NULL;
    }
    maos_slice fr;
    int r = su_recv(c, 10000, &fr);
    if (r != 1) {
        su_close(c);
        if (must)
            SU_FAIL("no hello reply (%d)", r);
        return NULL;
    }
    maos_reply rep;
    memset(&rep, 0, sizeof rep);
    if (maos_reply_decode(fr.ptr, fr.len, &rep) || !rep.ok || rep.rid != rid) {
        su_close(c);
        if (must)
            SU_FAIL("hello refused (code %d)", rep.code);
        return NULL;
    }
    return c;
}

su_conn *su_open(const char *sock)
{
    return open_conn(sock, 1);
}

su_conn *su_try_open(const char *sock)
{
    return open_conn(sock, 0);
}

/* ---- requests ---------------------------------------------------------------------- */

typedef struct req {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} req;

static void req_init(req *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

int su_subscribe(su_conn *c, const maos_filter *f, int from_kind,
                 uint64_t from, uint64_t *sub, uint64_t *from_out)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    if (maos_enc_subscribe(&r.pk, rid, f, from_kind, from))
        SU_FAIL("encode subscribe");
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        return code;
    if (!rep.sub)
        SU_FAIL("subscribe reply without a sub id");
    if (sub)
        *sub = rep.sub;
    if (from_out)
        *from_out = rep.from;
    return 0;
}

int su_unsubscribe(su_conn *c, uint64_t sub)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_unsubscribe(&r.pk, rid, sub);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&r.sb);
    return code;
}

void su_stats(su_conn *c, maos_stats *st)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_simple(&r.pk, rid, MAOS_OP_STATS);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        SU_FAIL("stats: %d (%s)", code, maos_err_name(code));
    if (!rep.has_stats)
        SU_FAIL("stats reply without stats");
    *st = rep.stats;
    st->server = st->state = st->durability = (maos_slice){NULL, 0};
}

uint64_t su_head(su_conn *c)
{
    maos_stats st;
    su_stats(c, &st);
    return st.head_position;
}

void su_ping(su_conn *c)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_simple(&r.pk, rid, MAOS_OP_PING);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        SU_FAIL("ping: %d (%s)", code, maos_err_name(code));
}

void su_enc_append(msgpack_sbuffer *sb, uint64_t rid, const char *stream,
                   const su_ev_in *evs, size_t n)
{
    maos_event_in in[256];
    if (n > 256)
        SU_FAIL("su_enc_append: %zu events (max 256)", n);
    memset(in, 0, n * sizeof in[0]);
    for (size_t i = 0; i < n; i++) {
        in[i].type = su_s(evs[i].type);
        in[i].data = (maos_slice){evs[i].data, (uint32_t)evs[i].data_len};
    }
    maos_append_in a = {su_s(stream), MAOS_EXPECT_ANY, (uint32_t)n, in};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (maos_enc_append(&pk, rid, &a))
        SU_FAIL("encode append");
}

int su_append(su_conn *c, const char *stream, const su_ev_in *evs, size_t n,
              uint64_t *first_pos)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    su_enc_append(&r.sb, rid, stream, evs, n);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, NULL);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        return code;
    if (rep.result.count != n)
        SU_FAIL("append count: got %u, want %zu", rep.result.count, n);
    if (first_pos)
        *first_pos = rep.result.first_position;
    return 0;
}

void su_read_all(su_conn *c, const maos_filter *f, uint64_t from,
                 uint64_t upto, su_evs *out)
{
    uint64_t last = 0;
    for (int guard = 0; guard < 1000000; guard++) {
        req r;
        req_init(&r);
        uint64_t rid = su_rid(c);
        maos_enc_read_all(&r.pk, rid, 1, from, 0, MAOS_READ_LIMIT_MAX, f);
        maos_reply rep;
        char *frame = NULL;
        int code = su_call(c, &r.sb, rid, &rep, &frame);
        msgpack_sbuffer_destroy(&r.sb);
        if (code) {
            free(frame);
            SU_FAIL("read_all from %llu: %d (%s)", (unsigned long long)from,
                    code, maos_err_name(code));
        }
        maos_mpr mr;
        uint32_t n_arr = 0;
        maos_mpr_init(&mr, rep.items.ptr, rep.items.len);
        if (rep.n_items && (maos_mpr_array(&mr, &n_arr) || n_arr != rep.n_items)) {
            free(frame);
            SU_FAIL("read_all: events is not an array of %u", rep.n_items);
        }
        int done = 0;
        for (uint32_t i = 0; i < rep.n_items; i++) {
            maos_record rec;
            if (maos_record_next(&mr, &rec)) {
                free(frame);
                SU_FAIL("read_all: undecodable record %u", i);
            }
            if (rec.position <= last) {
                free(frame);
                SU_FAIL("read_all: position %llu after %llu",
                        (unsigned long long)rec.position,
                        (unsigned long long)last);
            }
            last = rec.position;
            if (upto && rec.position > upto) {
                done = 1;
                break;
            }
            su_evs_push(out, rec.position, su_hash(rec.raw.ptr, rec.raw.len));
        }
        int more = rep.next_kind == MAOS_NEXT_UINT;
        uint64_t next = rep.next_u;
        free(frame);
        if (done || !more || (upto && next > upto))
            return;
        if (next <= from)
            SU_FAIL("read_all next %llu does not advance past from %llu",
                    (unsigned long long)next, (unsigned long long)from);
        from = next;
    }
    SU_FAIL("read_all paging did not end");
}

/* ---- collector ------------------------------------------------------------------------ */

su_sub *su_collector_find(su_collector *col, uint64_t id)
{
    for (size_t i = 0; i < col->n; i++)
        if (col->subs[i].id == id)
            return &col->subs[i];
    return NULL;
}

void su_collect(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    su_collector *col = user;
    if (p->kind == MAOS_PUSH_MESSAGE) {
        col->messages++;
        if (col->on_message)
            col->on_message(p, col->msg_user);
        return;
    }
    su_sub *s = su_collector_find(col, p->sub);
    if (!s) {
        col->unknown++;
        return;
    }
    switch (p->kind) {
    case MAOS_PUSH_EVENTS: {
        if (p->n_items == 0)
            SU_FAIL("sub %llu: an events push with no events",
                    (unsigned long long)s->id);
        s->frames++;
        maos_mpr mr;
        uint32_t n_arr = 0;
        maos_mpr_init(&mr, p->items.ptr, p->items.len);
        if (maos_mpr_array(&mr, &n_arr) || n_arr != p->n_items)
            SU_FAIL("sub %llu: events is not an array of %u",
                    (unsigned long long)s->id, p->n_items);
        for (uint32_t i = 0; i < p->n_items; i++) {
            maos_record rec;
            if (maos_record_next(&mr, &rec))
                SU_FAIL("sub %llu: undecodable record %u in a push",
                        (unsigned long long)s->id, i);
            uint64_t prev = s->got.n ? s->got.v[s->got.n - 1].pos : 0;
            if (rec.position <= prev)
                SU_FAIL("sub %llu: delivered position %llu after %llu "
                        "(duplicate or out of order)",
                        (unsigned long long)s->id,
                        (unsigned long long)rec.position,
                        (unsigned long long)prev);
            if (rec.position < s->from)
                SU_FAIL("sub %llu: delivered position %llu before its from "
                        "%llu",
                        (unsigned long long)s->id,
                        (unsigned long long)rec.position,
                        (unsigned long long)s->from);
            if (s->next && rec.position < s->next)
                SU_FAIL("sub %llu: delivered position %llu below the next "
                        "%llu announced before",
                        (unsigned long long)s->id,
                        (unsigned long long)rec.position,
                        (unsigned long long)s->next);
            su_evs_push(&s->got, rec.position,
                        su_hash(rec.raw.ptr, rec.raw.len));
        }
        if (p->next <= s->got.v[s->got.n - 1].pos)
            SU_FAIL("sub %llu: push next %llu not above its last event %llu",
                    (unsigned long long)s->id, (unsigned long long)p->next,
                    (unsigned long long)s->got.v[s->got.n - 1].pos);
        break;
    }
    case MAOS_PUSH_CAUGHT_UP:
        s->caught_up++;
        break;
    case MAOS_PUSH_FELL_BEHIND:
        s->fell_behind++;
        break;
    default:
        SU_FAIL("sub %llu: unexpected push kind %d", (unsigned long long)s->id,
                (int)p->kind);
    }
    if (p->next < s->next)
        SU_FAIL("sub %llu: %s push next %llu after next %llu (went back)",
                (unsigned long long)s->id, maos_push_name(p->kind),
                (unsigned long long)p->next, (unsigned long long)s->next);
    s->next = p->next;
}

/* ---- misc ------------------------------------------------------------------------------ */

void su_rng_seed(su_rng *r, uint64_t seed)
{
    /* splitmix64, so that nearby seeds give unrelated sequences */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    r->s = z ^ (z >> 31);
    if (!r->s)
        r->s = 1;
}

uint64_t su_rng_next(su_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t su_rng_below(su_rng *r, uint64_t n)
{
    return n ? su_rng_next(r) % n : 0;
}

maos_slice su_s(const char *s)
{
    return s ? (maos_slice){s, (uint32_t)strlen(s)} : (maos_slice){NULL, 0};
}

void su_mk_data(msgpack_sbuffer *sb, uint64_t w, uint64_t i, size_t pad)
{
    static const char xs[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "w", 1);
    msgpack_pack_uint64(&pk, w);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "i", 1);
    msgpack_pack_uint64(&pk, i);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "pad", 3);
    msgpack_pack_str(&pk, pad);
    while (pad > 0) {
        size_t k = pad < sizeof xs - 1 ? pad : sizeof xs - 1;
        msgpack_pack_str_body(&pk, xs, k);
        pad -= k;
    }
}
