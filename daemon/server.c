/*
 * daemon/server.c -- the loop thread's network side: the listening socket,
 * connections, frame reading, reply buffering and writing, back-pressure,
 * and graceful shutdown.
 *
 * Invariants:
 *  - Each connection's load -- output not yet handed to the kernel (c->out,
 *    counted by what it allocated), output handed to uv_write and not yet
 *    written (c->in_flight_out, likewise) and what its writes waiting at
 *    the commit thread cost (c->pending_bytes: struct, frame copy, decoded
 *    request, results, ids, records; maosd_wreq_cost) -- is capped by
 *    max_output.  Over the cap the connection stops reading until the load
 *    falls to half.  Memory per connection is thus bounded by the cap plus
 *    one request or reply (a read reply is itself bounded, see op_stream.c)
 *    plus the reader buffer (one frame: at most max_frame + 4 bytes, and
 *    only what the peer sent; given back whenever it is empty).  Input is
 *    bounded per connection only: a request being received is always read
 *    to its end, so that no one can stop a client's large request by
 *    holding output.
 *  - Daemon-wide budget: srv->buffered is the sum of every connection's
 *    load, kept exact by account() at every place one of them changes.
 *    Over max_total_output a connection whose load is more than
 *    MAOSD_LIGHT_BYTES is not read (nor fed catch-up, and its live
 *    subscriptions fall back to disk positions, op_sub.c) until the total
 *    is within the budget again or its own load drains; a connection with
 *    almost nothing pending is still served (replies then carry at most
 *    MAOSD_LIGHT_BYTES of events, op_stream.c), so clients that read their
 *    replies keep going however much the others hold.  Total:
 *    max_total_output + connections x (MAOSD_LIGHT_BYTES + one request or
 *    reply).
 *  - Flushing cannot fail: the flush list is linked through the
 *    connections (no allocation), and a write whose uv_write fails closes
 *    its connection.
 *  - Memory given back: after a burst (srv->buffered fell to an eighth of
 *    its high mark of at least TRIM_MIN_BYTES), malloc_trim() returns the
 *    allocator's free pages to the system, once, TRIM_DELAY_MS later.
 *  - Connection limits at accept: max_connections in all; the last
 *    maosd_config_reserved() of them only for root and the daemon's uid;
 *    max_connections_per_uid per uid (root and the daemon's uid exempt).
 *    A connection without hello after hello_timeout_ms is closed.
 *  - A peer that half-closes (EOF) still gets the replies to everything it
 *    sent; the connection closes once those are written.
 *  - Shutdown: once the commit queue is empty, connections close after
 *    their replies are flushed, or after DRAIN_TIMEOUT_MS for a peer that
 *    does not read.
 *  - Work per loop turn per connection is bounded by what one read brought
 *    in (the reader's buffer space).
 *  - A connection is never freed inside a call chain: conn_close() marks it
 *    and starts uv_close; it is freed in the close callback once no commit
 *    request holds a reference to it (refs == 0).
 *  - Replies to a connection are batched in c->out and written with one
 *    uv_write per loop turn (the check handle), not one per reply.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dispatch.h"
#include "audit.h"
#include "chain.h"
#include "retention.h"
#include "queues.h"
#include "readahead.h"
#include "sdnotify.h"

typedef struct write_req {
    uv_write_t req;
    maosd_conn *conn;
    char *data;
    size_t len;
    size_t cost;         /* what data holds allocated (>= len) */
} write_req;

#define DRAIN_TIMEOUT_MS 5000
#define TRIM_MIN_BYTES (16u << 20)
#define TRIM_DELAY_MS 250
/* One uv_buf_t carries at most this (its length is an unsigned int). */
#define BUF_MAX (1u << 30)

static uv_check_t flush_check;
static uv_timer_t drain_timer;
/* Connections with unflushed output, linked through c->dirty_next: putting
 * one on the list allocates nothing, so it cannot fail. */
static maosd_conn *dirty_head;

/* Open connections per uid (few distinct uids: a plain array). */
typedef struct uid_count {
    uid_t uid;
    uint32_t n;
} uid_count;
static uid_count *uids;
static size_t n_uids, cap_uids;

static void conn_process(maosd_conn *c);
static void account(maosd_conn *c);

/* Set why c is not read (0: it is), keeping the server's counts. */
static void set_paused(maosd_conn *c, int why)
{
    maosd_server *srv = c->srv;
    srv->n_paused -= c->paused != 0;
    srv->n_budget_paused -= c->paused == MAOSD_PAUSED_BUDGET;
    c->paused = why;
    srv->n_paused += why != 0;
    srv->n_budget_paused += why == MAOSD_PAUSED_BUDGET;
}

/* ---- per-uid counts --------------------------------------------------------- */

static uid_count *uid_find(uid_t uid)
{
    for (size_t i = 0; i < n_uids; i++)
        if (uids[i].uid == uid)
            return &uids[i];
    return NULL;
}

/* Count one more connection of uid; its new count, or 0 out of memory. */
static uint32_t uid_add(uid_t uid)
{
    uid_count *u = uid_find(uid);
    if (!u) {
        if (n_uids == cap_uids) {
            size_t nc = cap_uids ? cap_uids * 2 : 16;
            uid_count *nu = realloc(uids, nc * sizeof(*nu));
            if (!nu)
                return 0;
            uids = nu;
            cap_uids = nc;
        }
        u = &uids[n_uids++];
        u->uid = uid;
        u->n = 0;
    }
    return ++u->n;
}

static void uid_del(uid_t uid)
{
    uid_count *u = uid_find(uid);
    if (u && --u->n == 0)
        *u = uids[--n_uids];
}

/* ---- connection lifetime --------------------------------------------------- */

static void greet_del(maosd_conn *c)
{
    if (!c->greeting)
        return;
    maosd_server *srv = c->srv;
    if (c->greet_prev)
        c->greet_prev->greet_next = c->greet_next;
    else
        srv->greet_head = c->greet_next;
    if (c->greet_next)
        c->greet_next->greet_prev = c->greet_prev;
    else
        srv->greet_tail = c->greet_prev;
    c->greet_next = c->greet_prev = NULL;
    c->greeting = 0;
}

void maosd_conn_greeted(maosd_conn *c)
{
    greet_del(c); /* the timer finds the next one itself */
}

static void conn_maybe_free(maosd_conn *c)
{
    if (!c->closing || c->refs)
        return;
    maosd_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    if (c->uid_counted)
        uid_del(c->uid);
    maos_reader_free(&c->rd);
    msgpack_sbuffer_destroy(&c->out);
    srv->buffered -= c->acct;
    maosd_access_conn_free(c);
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    maosd_conn *c = h->data;
    maosd_logf(MAOSD_LOG_DEBUG, "conn %llu closed", (unsigned long long)c->id);
    c->refs--; /* the open handle's reference */
    conn_maybe_free(c);
}

static void conn_close(maosd_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    greet_del(c);
    set_paused(c, 0);
    maosd_sub_conn_closed(c);
    maosd_tables_conn_closed(c);
    maosd_queues_conn_closed(c);
    maosd_audit_conn_closed(c);
    maosd_ahead_drop(c);
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

void maosd_conn_unref(maosd_conn *c)
{
    c->refs--;
    conn_maybe_free(c);
}

/* ---- output ------------------------------------------------------------------- */

static void mark_dirty(maosd_conn *c)
{
    if (c->dirty)
        return;
    c->dirty_next = dirty_head;
    dirty_head = c;
    c->dirty = 1;
    c->refs++; /* kept alive until flushed */
}

/* Bring c's share of srv->buffered up to date (call wherever its output,
 * in-flight bytes, queued writes or reader change). */
static void account(maosd_conn *c)
{
    maosd_server *srv = c->srv;
    size_t now = maosd_conn_load(c); /* until freed: queued writes still hold */
    srv->buffered = srv->buffered - c->acct + now;
    c->acct = now;
    if (srv->buffered > srv->buffered_high)
        srv->buffered_high = srv->buffered;
    /* back under the budget: connections paused by it may go on, and
     * catch-up stopped by it (in the flush check, never inside this call
     * chain) */
    if (srv->buffered > srv->cfg->max_total_output) {
        srv->over_budget = 1;
    } else if (srv->over_budget || srv->n_budget_paused) {
        srv->over_budget = 0;
        srv->resume_pending = 1;
    }
}

/* The reply packer's writer: an allocation that fails part-way through a
 * reply is remembered, so that maosd_reply_end drops the partial frame
 * instead of patching a length over bytes that do not decode. */
static int reply_write(void *data, const char *buf, size_t len)
{
    maosd_conn *c = data;
    if (msgpack_sbuffer_write(&c->out, buf, len) == 0)
        return 0;
    c->out_broken = 1;
    return -1;
}

size_t maosd_reply_begin(maosd_conn *c, msgpack_packer *pk)
{
    static const char hdr[4];
    size_t mark = c->out.size;
    c->out_broken = 0;
    msgpack_packer_init(pk, c, reply_write);
    reply_write(c, hdr, 4);
    return mark;
}

void maosd_reply_end(maosd_conn *c, size_t mark)
{
    if (c->out_broken || c->out.size < mark + 4) {
        /* Out of memory while encoding: the reply cannot be sent whole,
         * and a request left unanswered would hang its client; close the
         * connection once the replies before this one are written. */
        if (c->out.size > mark)
            c->out.size = mark;
        c->out_broken = 0;
        maosd_log(MAOSD_LOG_ERROR, "conn %llu: out of memory encoding a reply; "
                  "closing the connection", (unsigned long long)c->id);
        maosd_conn_fail(c);
        return;
    }
    size_t len = c->out.size - mark - 4;
    maos_frame_put_len(c->out.data + mark, (uint32_t)len);
    atomic_fetch_add(&c->srv->counters.bytes_out, len + 4);
    mark_dirty(c);
    account(c);
}

void maosd_reply_error(maosd_conn *c, uint64_t rid, int code, const char *msg,
                       int has_actual, int64_t actual, int64_t index)
{
    maosd_reply_error_entry(c, rid, code, msg, has_actual, actual, index,
                            (maos_slice){NULL, 0});
}

void maosd_reply_error_entry(maosd_conn *c, uint64_t rid, int code, const char *msg,
                             int has_actual, int64_t actual, int64_t index,
                             maos_slice entry)
{
    msgpack_packer pk;
    /* Codes from MAOS_ERRNO_LOCAL_MIN up are the client library's (errors.h)
     * and never go on the wire: one that reaches here (a read's MAOS_EIO)
     * is a failure of the daemon's, whose message says what it was. */
    if (code <= -MAOS_ERRNO_LOCAL_MIN || code >= 0)
        code = MAOS_EINTERNAL;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_enc_error_entry(&pk, rid, code, msg, has_actual, actual, index, entry);
    maosd_reply_end(c, mark);
}

size_t maosd_conn_load(const maosd_conn *c)
{
    return c->out.alloc + c->in_flight_out + c->pending_bytes;
}

int maosd_conn_over_cap(const maosd_conn *c)
{
    const maosd_server *srv = c->srv;
    if (maosd_conn_load(c) > srv->cfg->max_output)
        return 1;
    return srv->buffered > srv->cfg->max_total_output &&
           maosd_conn_load(c) > MAOSD_LIGHT_BYTES;
}

int maosd_conn_pump_ok(const maosd_conn *c)
{
    return maosd_conn_load(c) <= MAOSD_PUMP_WINDOW && !maosd_conn_over_cap(c);
}

/* A paused connection may be read again: its load fell to half its cap,
 * and the daemon is within its budget or c holds almost nothing. */
static int conn_can_resume(const maosd_conn *c)
{
    const maosd_server *srv = c->srv;
    if (maosd_conn_load(c) > srv->cfg->max_output / 2)
        return 0;
    return srv->buffered <= srv->cfg->max_total_output ||
           maosd_conn_load(c) <= MAOSD_LIGHT_BYTES;
}

/* Nothing more to send or to wait for. */
static int conn_drained(const maosd_conn *c)
{
    return !c->out.size && !c->in_flight_out && !c->pending_writes && !c->pending_reads;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    maosd_conn *c = h->data;
    char *p;
    (void)suggested;
    long n = maos_reader_space(&c->rd, &p, 0);
    if (n <= 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = p;
    buf->len = (size_t)n;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void start_reading(maosd_conn *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void stop_reading(maosd_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = 0;
}

/* Stop reading c because it is over a cap (counted in stats): its own
 * (resumed as it drains) or the daemon's budget (resumed as that frees). */
static void conn_pause(maosd_conn *c)
{
    stop_reading(c);
    /* a page read ahead is only a gain: it must never be what keeps a
     * connection from being read (its request is in the unread input) */
    maosd_ahead_drop(c);
    set_paused(c, maosd_conn_load(c) > c->srv->cfg->max_output ? MAOSD_PAUSED_CAP
                                                                 : MAOSD_PAUSED_BUDGET);
}

/* Read a paused connection again, and handle the frames that waited in its
 * reader.  Not inside a call chain that walks connections or
 * subscriptions (it may dispatch requests). */
static void conn_resume(maosd_conn *c)
{
    set_paused(c, 0);
    start_reading(c);
    conn_process(c);
}

/* Output or pending writes went down: close a draining connection, or
 * resume reading one that was stopped at the cap. */
static void conn_progress(maosd_conn *c)
{
    account(c);
    if (c->closing)
        return;
    if (c->close_after_flush) {
        if (conn_drained(c))
            conn_close(c);
        return;
    }
    if (c->subs && maosd_conn_pump_ok(c))
        maosd_sub_kick(c->srv); /* catch-up waits for output to drain */
    if (!c->paused)
        return;
    if (conn_can_resume(c))
        conn_resume(c);
    else if (maosd_conn_load(c) <= c->srv->cfg->max_output / 2)
        set_paused(c, MAOSD_PAUSED_BUDGET); /* drained: now the budget holds it */
}

static void on_written(uv_write_t *req, int status)
{
    write_req *wr = (write_req *)req;
    maosd_conn *c = wr->conn;
    c->in_flight_out -= wr->cost;
    free(wr->data);
    free(wr);
    if (c->closing) {
        account(c);
        return;
    }
    if (status < 0) {
        maosd_logf(MAOSD_LOG_DEBUG, "conn %llu write failed: %s",
                   (unsigned long long)c->id, uv_strerror(status));
        conn_close(c);
        return;
    }
    conn_progress(c);
}

void maosd_conn_fail(maosd_conn *c)
{
    stop_reading(c);
    c->close_after_flush = 1;
    mark_dirty(c); /* the flush check closes it once drained */
}

void maosd_conn_write_queued(maosd_conn *c, size_t cost)
{
    c->pending_writes++;
    c->pending_bytes += cost;
    account(c);
}

void maosd_conn_write_done(maosd_conn *c, size_t cost)
{
    c->pending_writes--;
    c->pending_bytes -= cost;
    conn_progress(c); /* the reply itself is flushed by the check handle */
}

void maosd_conn_read_queued(maosd_conn *c, size_t cost)
{
    c->pending_reads++;
    c->pending_bytes += cost;
    account(c);
}

void maosd_conn_read_done(maosd_conn *c, size_t cost)
{
    c->pending_reads--;
    c->pending_bytes -= cost;
    conn_progress(c);
}

void maosd_conn_hold(maosd_conn *c, ssize_t delta)
{
    c->pending_bytes += (size_t)delta;
    account(c);
}

void maosd_conn_put_frames(maosd_conn *c, msgpack_sbuffer *frames)
{
    if (c->closing || !frames->size)
        return;
    size_t len = frames->size;
    if (!c->out.size) {
        /* nothing waits: the job's buffer becomes the output */
        msgpack_sbuffer old = c->out;
        c->out = *frames;
        *frames = old;
        frames->size = 0;
    } else if (msgpack_sbuffer_write(&c->out, frames->data, len)) {
        maosd_log(MAOSD_LOG_ERROR, "conn %llu: out of memory taking a read's reply; "
                  "closing the connection", (unsigned long long)c->id);
        maosd_conn_fail(c);
        return;
    }
    atomic_fetch_add(&c->srv->counters.bytes_out, len);
    mark_dirty(c);
    account(c);
}

/*
 * Hand c's output to the kernel now, when nothing of c's is being written
 * and nothing waits on a write's completion (a pause, subscriptions, a
 * close after the flush: conn_progress's work, left to on_written).  A
 * uv_write the socket takes whole still costs an epoll_ctl (libuv re-arms
 * the watcher when the write completes) and a write request; this costs
 * the write(2).  Returns the bytes the kernel took (all of them: the
 * buffer is given back), or -1 after closing c.
 */
static ssize_t flush_now(maosd_conn *c)
{
    if (c->in_flight_out || c->out.size > BUF_MAX || c->paused || c->subs ||
        c->close_after_flush)
        return 0;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.size);
    int n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
    if (n == UV_EAGAIN || n == 0)
        return 0;
    if (n < 0) {
        maosd_logf(MAOSD_LOG_DEBUG, "conn %llu write failed: %s",
                   (unsigned long long)c->id, uv_strerror(n));
        conn_close(c);
        return -1;
    }
    if ((size_t)n == c->out.size) {
        msgpack_sbuffer_destroy(&c->out);
        msgpack_sbuffer_init(&c->out);
        account(c);
    }
    return n;
}

static void conn_flush(maosd_conn *c)
{
    if (c->closing || !c->out.size)
        return;
    ssize_t done = flush_now(c);
    if (done < 0 || !c->out.size)
        return;
    write_req *wr = malloc(sizeof(*wr));
    if (!wr) {
        conn_close(c);
        return;
    }
    wr->conn = c;
    wr->len = c->out.size;
    wr->cost = c->out.alloc;
    wr->data = msgpack_sbuffer_release(&c->out);
    /* A peer that does not read keeps every write queued: each keeps only
     * what it carries, not msgpack's 8 KiB (or doubled) allocation. */
    if (wr->cost - wr->len > 4096) {
        char *p = realloc(wr->data, wr->len);
        if (p) {
            wr->data = p;
            wr->cost = wr->len;
        }
    }
    wr->cost += sizeof(*wr);
    /* uv_buf_t lengths are unsigned ints: pieces of at most BUF_MAX (the
     * config keeps the output under 4 GiB, so 4 pieces always do) */
    uv_buf_t b[4];
    unsigned nb = 0;
    for (size_t off = (size_t)done; off < wr->len && nb < 4; off += BUF_MAX, nb++)
        b[nb] = uv_buf_init(wr->data + off,
                            (unsigned)(wr->len - off < BUF_MAX ? wr->len - off : BUF_MAX));
    c->in_flight_out += wr->cost;
    int rc = (size_t)nb * BUF_MAX < wr->len - (size_t)done
                 ? UV_E2BIG
                 : uv_write(&wr->req, (uv_stream_t *)&c->pipe, b, nb, on_written);
    if (rc) {
        c->in_flight_out -= wr->cost;
        free(wr->data);
        free(wr);
        conn_close(c);
    }
    account(c);
}

static void on_trim(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    srv->trim_armed = 0;
    if (srv->buffered > srv->buffered_high / 8)
        return; /* busy again: the next drop will trim */
    malloc_trim(0);
    srv->buffered_high = srv->buffered;
}

/* The budget freed up: resume the connections it paused. */
static void resume_paused(maosd_server *srv)
{
    srv->resume_pending = 0;
    /* conn_resume may close connections, which stay on the list (marked)
     * until their close callback */
    for (maosd_conn *c = srv->conns; c && srv->n_budget_paused; c = c->next) {
        if (c->paused != MAOSD_PAUSED_BUDGET || c->closing)
            continue;
        if (maosd_conn_load(c) > srv->cfg->max_output / 2)
            set_paused(c, MAOSD_PAUSED_CAP); /* its own drain resumes it */
        else if (conn_can_resume(c))
            conn_resume(c);
        /* else the budget is exceeded again: the next drop comes back */
    }
    maosd_sub_kick(srv); /* catch-up stopped at the budget goes on */
}

static void on_flush_check(uv_check_t *h)
{
    maosd_server *srv = h->data;
    if (srv->resume_pending)
        resume_paused(srv);
    /* conn_flush does not add to the list; take it whole. */
    maosd_conn *c = dirty_head;
    dirty_head = NULL;
    while (c) {
        maosd_conn *next = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        conn_flush(c);
        if (c->close_after_flush && conn_drained(c))
            conn_close(c);
        maosd_conn_unref(c);
        c = next;
    }
    /* after a burst, give the allocator's free memory back */
    if (!srv->trim_armed && !srv->stopping && srv->buffered_high >= TRIM_MIN_BYTES &&
        srv->buffered <= srv->buffered_high / 8) {
        srv->trim_armed = 1;
        uv_timer_start(&srv->trim_timer, on_trim, TRIM_DELAY_MS, 0);
    }
}

/* ---- input ------------------------------------------------------------------ */

static void conn_process(maosd_conn *c)
{
    while (!c->closing && !c->close_after_flush) {
        if (maosd_conn_over_cap(c)) {
            conn_pause(c); /* resumed by conn_progress or resume_paused */
            break;
        }
        maos_slice frame;
        int rc = maos_reader_next(&c->rd, &frame);
        if (rc == 0)
            break;
        if (rc < 0) {
            /* A broken frame: framing is lost, so answer and close this
             * one connection.  Nothing else is affected. */
            maosd_logf(MAOSD_LOG_INFO, "conn %llu: %s; closing",
                       (unsigned long long)c->id, maos_strerror(rc));
            maosd_reply_error(c, 0, rc,
                              rc == MAOS_EFRAME_TOO_LARGE
                                  ? "frame length exceeds max_frame; closing connection"
                                  : "zero-length frame; closing connection",
                              0, 0, -1);
            c->close_after_flush = 1;
            stop_reading(c);
            break;
        }
        maosd_dispatch(c, frame.ptr, frame.len);
    }
    /* Frames are done with: an empty reader gives its buffer back, so an
     * idle connection holds no input memory. */
    if (c->rd.pos == c->rd.len)
        maos_reader_free(&c->rd);
    account(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    maosd_conn *c = s->data;
    (void)buf;
    if (nread == UV_ENOBUFS) {
        /* The reader refused space: a frame header over the limit. */
        conn_process(c);
        return;
    }
    if (nread == UV_EOF) {
        /* Half-close: answer what was sent, then close. */
        stop_reading(c);
        c->close_after_flush = 1;
        if (conn_drained(c))
            conn_close(c);
        return;
    }
    if (nread < 0) {
        maosd_logf(MAOSD_LOG_DEBUG, "conn %llu read error: %s",
                   (unsigned long long)c->id, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    maos_reader_commit(&c->rd, (size_t)nread);
    atomic_fetch_add(&c->srv->counters.bytes_in, (uint64_t)nread);
    conn_process(c);
}

/* ---- hello timeout ------------------------------------------------------------ */

static void on_hello_timeout(uv_timer_t *t);

/* Run the timer for the oldest connection still without hello. */
static void hello_timer_arm(maosd_server *srv)
{
    maosd_conn *c = srv->greet_head;
    if (!c) {
        uv_timer_stop(&srv->hello_timer);
        return;
    }
    uint64_t due = c->accepted_ms + srv->cfg->hello_timeout_ms, now = uv_now(srv->loop);
    uv_timer_start(&srv->hello_timer, on_hello_timeout, due > now ? due - now : 0, 0);
}

/* Close every connection that went hello_timeout_ms without hello: an
 * error reply if the socket takes it, then the close (its peer may not
 * read, so no waiting for the flush). */
static void on_hello_timeout(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    maosd_conn *c;
    while ((c = srv->greet_head) && now - c->accepted_ms >= srv->cfg->hello_timeout_ms) {
        greet_del(c);
        srv->hello_timeouts++;
        maosd_logf(MAOSD_LOG_INFO, "conn %llu: no hello within %u ms; closing",
                   (unsigned long long)c->id, srv->cfg->hello_timeout_ms);
        char why[96];
        snprintf(why, sizeof(why), "no hello within hello_timeout_ms (%u ms); closing",
                 srv->cfg->hello_timeout_ms);
        maosd_reply_error(c, 0, MAOS_EHELLO_REQUIRED, why, 0, 0, -1);
        conn_flush(c);
        conn_close(c);
    }
    hello_timer_arm(srv);
}

/* ---- accepting ---------------------------------------------------------------- */

/* Whether gid is among the supplementary groups the peer of c had when it
 * connected (SO_PEERGROUPS: the kernel's record, no pid to race on). */
static int in_groups(maosd_conn *c, gid_t gid)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd))
        return 0;
    gid_t small[64], *groups = small;
    socklen_t len = sizeof(small);
    int found = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len)) {
        if (errno != ERANGE || !(groups = malloc(len)))
            return 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len)) {
            free(groups);
            return 0;
        }
    }
    for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
        found = groups[i] == gid;
    if (groups != small)
        free(groups);
    return found;
}

/*
 * Who may connect (docs/ARCHITECTURE.md "Who may connect"): root and the
 * daemon's own uid always; then allow_uids; then members (primary or
 * supplementary group) of allow_gids and of the socket group.
 */
static int peer_allowed(const maosd_server *srv, maosd_conn *c)
{
    const maosd_config *cfg = srv->cfg;
    if (c->uid == 0 || c->uid == srv->euid)
        return 1;
    if (c->uid == (uid_t)-1)
        return 0; /* no credentials: never */
    for (unsigned i = 0; i < cfg->n_allow_uid; i++)
        if (cfg->allow_uid[i] == c->uid)
            return 1;
    for (unsigned i = 0; i <= cfg->n_allow_gid; i++) {
        gid_t g;
        if (i < cfg->n_allow_gid)
            g = cfg->allow_gid[i];
        else if (srv->sock_gid != (gid_t)-1)
            g = srv->sock_gid;
        else
            break;
        if (c->gid == g || in_groups(c, g))
            return 1;
    }
    return 0;
}

/* Refuse c at accept: one error reply, then the close. */
static void conn_refuse(maosd_conn *c, int code, const char *why)
{
    maosd_server *srv = c->srv;
    srv->conns_refused++;
    maosd_log(MAOSD_LOG_WARN, "conn %llu (uid %u) refused: %s", (unsigned long long)c->id,
              (unsigned)c->uid, why);
    maosd_reply_error(c, 0, code, why, 0, 0, -1);
    c->close_after_flush = 1;
    if (maosd_audit_is_refusal(code))
        maosd_audit_refused_connect(c, why);
}

static void on_connection(uv_stream_t *server, int status)
{
    maosd_server *srv = server->data;
    const maosd_config *cfg = srv->cfg;
    if (status < 0) {
        maosd_log(MAOSD_LOG_WARN, "accept failed: %s", uv_strerror(status));
        return;
    }
    maosd_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        maosd_log(MAOSD_LOG_ERROR, "out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->refs = 1;
    c->uid = (uid_t)-1; /* unknown until SO_PEERCRED says: never privileged */
    c->accepted_ms = uv_now(srv->loop);
    uv_pipe_init(srv->loop, &c->pipe, 0);
    c->pipe.data = c;
    maos_reader_init(&c->rd, cfg->max_frame);
    msgpack_sbuffer_init(&c->out);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    srv->conns_total++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe)) {
        conn_close(c);
        return;
    }
    uv_os_fd_t fd;
    struct ucred cred = {.uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t clen = sizeof(cred);
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->gid = cred.gid;
    }
    maosd_logf(MAOSD_LOG_INFO, "conn %llu accepted pid=%d uid=%u gid=%u",
               (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
               (unsigned)c->gid);
    uint32_t per_uid = uid_add(c->uid);
    if (!per_uid) {
        conn_refuse(c, MAOS_EOVERLOADED, "out of memory");
        return;
    }
    c->uid_counted = 1;
    char why[160];
    if (!peer_allowed(srv, c)) {
        snprintf(why, sizeof(why), "uid %u (pid %d) may not connect to this daemon (not in "
                 "allow_uids or allow_gids)", (unsigned)c->uid, (int)c->pid);
        conn_refuse(c, MAOS_EFORBIDDEN, why);
        return;
    }
    int privileged = c->uid == 0 || c->uid == srv->euid;
    uint32_t reserved = maosd_config_reserved(cfg);
    if (srv->n_conns > cfg->max_connections) {
        snprintf(why, sizeof(why), "too many connections (max_connections %u)",
                 cfg->max_connections);
        conn_refuse(c, MAOS_EOVERLOADED, why);
        return;
    }
    if (!privileged && srv->n_conns > cfg->max_connections - reserved) {
        snprintf(why, sizeof(why),
                 "too many connections (max_connections %u; the last %u are kept for "
                 "root and uid %u)",
                 cfg->max_connections, reserved, (unsigned)srv->euid);
        conn_refuse(c, MAOS_EOVERLOADED, why);
        return;
    }
    if (!privileged && per_uid > cfg->max_connections_per_uid) {
        snprintf(why, sizeof(why), "uid %u has %u connections open "
                 "(max_connections_per_uid %u)",
                 (unsigned)c->uid, per_uid - 1, cfg->max_connections_per_uid);
        conn_refuse(c, MAOS_ELIMIT, why);
        return;
    }
    /* until hello: the hello timeout */
    c->greeting = 1;
    c->greet_prev = srv->greet_tail;
    if (srv->greet_tail)
        srv->greet_tail->greet_next = c;
    else
        srv->greet_head = c;
    srv->greet_tail = c;
    if (srv->greet_head == c)
        hello_timer_arm(srv);
    start_reading(c);
}

/* ---- listening ------------------------------------------------------------- */

/*
 * The socket's directory must keep others from replacing the socket: it is
 * ours or root's, and not writable by others (nor by the group, unless a
 * socket group is configured) unless it has the sticky bit (/tmp).  A
 * missing directory is created, its last component 0700 (0750 with a
 * group).
 */
static int ensure_socket_dir(const char *path, gid_t gid, int with_group)
{
    char *dir = strdup(path);
    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = 0;
    struct stat st;
    if (lstat(dir, &st) == 0) {
        mode_t loose = with_group ? 0002 : 0022;
        const char *why = NULL;
        if (!S_ISDIR(st.st_mode))
            why = "is not a directory";
        else if (st.st_uid != geteuid() && st.st_uid != 0)
            why = "is owned by another user";
        else if ((st.st_mode & loose) && !(st.st_mode & S_ISVTX))
            why = "is writable by others";
        if (why)
            maosd_log(MAOSD_LOG_ERROR,
                      "socket directory %s %s; refusing to serve there", dir, why);
        free(dir);
        return why ? -1 : 0;
    }
    /* create parents as needed; the last component is ours: 0700/0750 */
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(dir, 0755);
        *p = '/';
    }
    if (mkdir(dir, with_group ? 0750 : 0700) && errno != EEXIST) {
        maosd_log(MAOSD_LOG_ERROR, "cannot create socket directory %s: %s", dir,
                  strerror(errno));
        free(dir);
        return -1;
    }
    if (with_group && chown(dir, (uid_t)-1, gid))
        maosd_log(MAOSD_LOG_WARN, "cannot give %s to group %u: %s", dir,
                  (unsigned)gid, strerror(errno));
    free(dir);
    return 0;
}

/* Hold <socket>.lock for the daemon's life, so that two daemons starting
 * together cannot both judge the socket stale and replace each other's. */
static int lock_socket(maosd_server *srv, const char *path)
{
    char *lp = NULL;
    if (asprintf(&lp, "%s.lock", path) < 0)
        return -1;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        maosd_log(MAOSD_LOG_ERROR, "cannot open %s: %s", lp, strerror(errno));
        free(lp);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        maosd_log(MAOSD_LOG_ERROR, "another maosd is already listening on %s "
                  "(%s is locked)", path, lp);
        close(fd);
        free(lp);
        return -1;
    }
    free(lp);
    srv->lock_fd = fd;
    return 0;
}

/* 1 when a live daemon answers on path, 0 when not (stale or absent). */
static int socket_in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return 0;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return live;
}

static int listening(maosd_server *srv);
static void rate_start(maosd_server *srv);

/*
 * Socket activation: systemd bound and listens on the socket (its unit
 * sets path, owner and mode) and passed it.  The single-instance lock is
 * taken next to the socket's own path as for a socket of ours; the socket
 * is never unlinked (systemd keeps it, and starts maosd again on the next
 * connection after a stop).
 */
static int listen_passed(maosd_server *srv)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    const char *path = srv->cfg->socket_path;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&sa, &len) == 0 &&
        len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
        path = sa.sun_path; /* a path socket: its lock sits beside it */
    if (lock_socket(srv, path))
        return -1;
    uv_pipe_init(srv->loop, &srv->listener, 0);
    srv->listener.data = srv;
    int rc = uv_pipe_open(&srv->listener, srv->listen_fd);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot listen on the socket systemd passed (%s): %s",
                  path, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        return -1;
    }
    maosd_log(MAOSD_LOG_INFO, "listening on %s, passed by systemd (socket activation)", path);
    return listening(srv);
}

int maosd_server_listen(maosd_server *srv)
{
    const maosd_config *cfg = srv->cfg;
    const char *path = cfg->socket_path;
    gid_t gid = (gid_t)-1;
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        maosd_log(MAOSD_LOG_ERROR, "socket path is too long (max %zu bytes): %s",
                  sizeof(sa.sun_path) - 1, path);
        return -1;
    }
    if (cfg->socket_group) {
        struct group *g = getgrnam(cfg->socket_group);
        if (!g) {
            maosd_log(MAOSD_LOG_ERROR, "unknown socket group '%s'", cfg->socket_group);
            return -1;
        }
        gid = g->gr_gid;
    }
    srv->sock_gid = cfg->socket_group ? gid : (gid_t)-1;
    if (srv->listen_fd >= 0) {
        /* socket activation: the unit's SocketGroup= when the socket is
         * group-accessible (0660) */
        struct stat pst;
        if (!cfg->socket_group && stat(path, &pst) == 0 && (pst.st_mode & 0060))
            srv->sock_gid = pst.st_gid;
        return listen_passed(srv);
    }
    if (ensure_socket_dir(path, gid, cfg->socket_group != NULL) ||
        lock_socket(srv, path))
        return -1;

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            maosd_log(MAOSD_LOG_ERROR, "%s exists and is not a socket; refusing to replace it",
                      path);
            return -1;
        }
        if (socket_in_use(path)) {
            maosd_log(MAOSD_LOG_ERROR, "another maosd is already listening on %s", path);
            return -1;
        }
        maosd_log(MAOSD_LOG_INFO, "replacing stale socket %s", path);
        unlink(path);
    }

    uv_pipe_init(srv->loop, &srv->listener, 0);
    srv->listener.data = srv;
    mode_t old = umask(0177); /* never world- or group-accessible while binding */
    int rc = uv_pipe_bind(&srv->listener, path);
    umask(old);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot bind %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        return -1;
    }
    if (cfg->socket_group) {
        if (chown(path, (uid_t)-1, gid) || chmod(path, 0660))
            maosd_log(MAOSD_LOG_WARN, "cannot set group/mode of %s: %s", path,
                      strerror(errno));
    } else {
        chmod(path, 0600);
    }
    rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot listen on %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        unlink(path);
        return -1;
    }
    return listening(srv);
}

/* The listener accepts: the handles the serving needs. */
static int listening(maosd_server *srv)
{
    const maosd_config *cfg = srv->cfg;
    srv->listening = 1;
    srv->euid = geteuid();
    rate_start(srv);
    uv_check_init(srv->loop, &flush_check);
    flush_check.data = srv;
    uv_check_start(&flush_check, on_flush_check);
    uv_unref((uv_handle_t *)&flush_check);
    uv_timer_init(srv->loop, &srv->hello_timer);
    srv->hello_timer.data = srv;
    uv_timer_init(srv->loop, &srv->trim_timer);
    srv->trim_timer.data = srv;
    uv_unref((uv_handle_t *)&srv->trim_timer);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
        maosd_log(MAOSD_LOG_WARN,
                  "max_connections is %u but only %llu files may be open (RLIMIT_NOFILE): "
                  "connections past that are dropped at accept",
                  cfg->max_connections, (unsigned long long)rl.rlim_cur);
    return 0;
}

/* ---- shutdown --------------------------------------------------------------- */

static void on_drain_tick(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    if (maosd_commit_in_flight(srv->commit))
        return; /* queued commits are still being written and answered */
    if (!srv->drained_at)
        srv->drained_at = uv_now(srv->loop);
    int late = uv_now(srv->loop) - srv->drained_at > DRAIN_TIMEOUT_MS;
    for (maosd_conn *c = srv->conns; c; c = c->next) {
        if (c->closing)
            continue;
        stop_reading(c);
        c->close_after_flush = 1;
        if (conn_drained(c) || late) /* late: a peer that does not read */
            conn_close(c);
    }
    if (srv->conns)
        return; /* wait for the closes */
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&flush_check, NULL);
    uv_close((uv_handle_t *)&srv->hello_timer, NULL);
    uv_close((uv_handle_t *)&srv->trim_timer, NULL);
    uv_close((uv_handle_t *)&srv->lag_prepare, NULL);
    uv_close((uv_handle_t *)&srv->rate_timer, NULL);
    maosd_subs_close(srv);
    maosd_queues_free(srv);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    maosd_commit_stop(srv->commit);
    srv->commit = NULL;
    if (srv->lock_fd >= 0)
        close(srv->lock_fd);
    free(uids);
    uids = NULL;
    n_uids = cap_uids = 0;
}

void maosd_server_stop(maosd_server *srv)
{
    srv->stopping = 1;
    maosd_sd_stopping(srv);
    maosd_queues_close(srv); /* waiting claims end (empty), timers stop */
    maosd_retention_close(srv);
    maosd_chain_close(srv);
    if (srv->listening) {
        uv_close((uv_handle_t *)&srv->listener, NULL);
        if (srv->listen_fd < 0) /* a passed socket stays systemd's */
            unlink(srv->cfg->socket_path);
        srv->listening = 0;
    }
    uv_timer_init(srv->loop, &drain_timer);
    drain_timer.data = srv;
    uv_timer_start(&drain_timer, on_drain_tick, 0, 5);
}

/* ---- loop lag -------------------------------------------------------------------- */

/* Bucket of v microseconds: exact below 8, then 8 per power of two. */
static unsigned lag_bucket(uint64_t v)
{
    if (v < 8)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    return msb * 8 + (unsigned)((v >> (msb - 3)) & 7);
}

/* The largest value of bucket b. */
static uint64_t lag_bucket_top(unsigned b)
{
    if (b < 8)
        return b;
    unsigned msb = b / 8;
    return ((uint64_t)(8 + b % 8 + 1) << (msb - 3)) - 1;
}

/* Just before each poll: the time since the last one, less what the loop
 * spent blocked in the poll (uv_metrics_idle_time), is what this
 * iteration worked -- the longest a request that arrived meanwhile waited
 * before maosd looked at it. */
static void on_lag_prepare(uv_prepare_t *h)
{
    maosd_server *srv = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(srv->loop);
    if (srv->lag_last_ns) {
        uint64_t wall = now - srv->lag_last_ns, blocked = idle - srv->lag_last_idle_ns;
        uint64_t us = (wall > blocked ? wall - blocked : 0) / 1000;
        srv->lag_hist[lag_bucket(us)]++;
        srv->lag_n++;
        if (us > srv->lag_max_us)
            srv->lag_max_us = us;
    }
    srv->lag_last_ns = now;
    srv->lag_last_idle_ns = idle;
}

void maosd_lag_start(maosd_server *srv)
{
    uv_prepare_init(srv->loop, &srv->lag_prepare);
    srv->lag_prepare.data = srv;
    uv_prepare_start(&srv->lag_prepare, on_lag_prepare);
    uv_unref((uv_handle_t *)&srv->lag_prepare); /* never keeps the loop alive */
}

static uint64_t lag_p99(const maosd_server *srv)
{
    uint64_t want = srv->lag_n - srv->lag_n / 100, seen = 0; /* 99% of them */
    for (unsigned b = 0; b < MAOSD_LAG_BUCKETS; b++) {
        seen += srv->lag_hist[b];
        if (seen >= want && seen)
            return lag_bucket_top(b) < srv->lag_max_us ? lag_bucket_top(b) : srv->lag_max_us;
    }
    return 0;
}

/* ---- rates over the last minute ------------------------------------------------ */

static void on_rate(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    unsigned i = srv->rate_n++ % MAOSD_RATE_SAMPLES;
    srv->rate[i].ms = uv_now(srv->loop);
    srv->rate[i].requests = atomic_load(&srv->counters.requests);
    srv->rate[i].events = atomic_load(&srv->counters.commit_events);
    maosd_access_tick(srv); /* connections of expired tokens */
}

static void rate_start(maosd_server *srv)
{
    uv_timer_init(srv->loop, &srv->rate_timer);
    srv->rate_timer.data = srv;
    on_rate(&srv->rate_timer); /* the first sample: now */
    uv_timer_start(&srv->rate_timer, on_rate, 1000, 1000);
    uv_unref((uv_handle_t *)&srv->rate_timer);
}

/* Requests and events per second over the last minute (since the start
 * when younger): now against the oldest sample kept. */
static void rates(maosd_server *srv, uint64_t *req_s, uint64_t *ev_s)
{
    *req_s = *ev_s = 0;
    if (!srv->rate_n)
        return;
    unsigned oldest = srv->rate_n <= MAOSD_RATE_SAMPLES ? 0 : srv->rate_n % MAOSD_RATE_SAMPLES;
    uint64_t ms = uv_now(srv->loop) - srv->rate[oldest].ms;
    if (ms == 0)
        return;
    *req_s = (atomic_load(&srv->counters.requests) - srv->rate[oldest].requests) * 1000 / ms;
    *ev_s = (atomic_load(&srv->counters.commit_events) - srv->rate[oldest].events) * 1000 / ms;
}

void maosd_server_stats(maosd_server *srv, maos_stats *st)
{
    maosd_counters *ct = &srv->counters;
    memset(st, 0, sizeof(*st));
    st->uptime_us = (uint64_t)maosd_now_us() - srv->start_us;
    st->head_position = atomic_load(&ct->head_position);
    st->connections = srv->n_conns;
    st->connections_total = srv->conns_total;
    st->requests = atomic_load(&ct->requests);
    st->commit_groups = atomic_load(&ct->commit_groups);
    st->commit_requests = atomic_load(&ct->commit_requests);
    st->commit_events = atomic_load(&ct->commit_events);
    st->commit_max_group = atomic_load(&ct->commit_max_group);
    st->commit_errors = atomic_load(&ct->commit_errors);
    st->commit_write_us = atomic_load(&ct->commit_write_us);
    st->bytes_in = atomic_load(&ct->bytes_in);
    st->bytes_out = atomic_load(&ct->bytes_out);
    st->max_frame = srv->cfg->max_frame;
    st->connections_refused = srv->conns_refused;
    st->hello_timeouts = srv->hello_timeouts;
    st->connections_paused = srv->n_paused;
    st->buffered_bytes = srv->buffered;
    st->loop_lag_max_us = srv->lag_max_us;
    st->loop_lag_p99_us = lag_p99(srv);
    st->reads_pooled = srv->reads_pooled;
    st->reads_in_memory = srv->reads_in_memory;
    st->reads_ahead = srv->reads_ahead;
    st->data_bytes = maosd_store_data_bytes(srv->store);
    rates(srv, &st->requests_per_s, &st->events_per_s);
    st->events_removed = srv->events_removed;
    st->log_anchor = srv->log_anchor;
    maosd_subs_stats(srv, st);
}
