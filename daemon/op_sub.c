/*
 * daemon/op_sub.c -- subscriptions (catch-up then live), checkpoints and
 * ephemeral channels.
 *
 * Delivery model.  Every decision is taken on the loop thread; only the
 * disk reads of catch-up run on a reader thread (reader.c), as does
 * checkpoint_get; subscribe's from_version lookup reads on the loop:
 *
 *   subscribe --> CATCHING UP --(caught up with delivered_head)--> LIVE
 *                     ^                                            |
 *                     +------(connection over its output cap)------+
 *                               "fell_behind"
 *
 *  - srv->delivered_head is the last position handed to the fan-out.  The
 *    fan-out runs when a committed group comes back from the commit thread
 *    (before the writers' replies), so every position <= delivered_head is
 *    already durable in RocksDB and readable from disk, by any thread.
 *  - A catching-up subscription is fed from disk in slices.  The loop
 *    starts a slice as a job (at most one per subscription: s->job) with
 *    a copy of what it needs: the filter, F = next_pos, D = delivered_head
 *    now, the awaited version.  On a reader thread the job reads the
 *    matching events in [F, D] -- bounded by PUMP_LIMIT events, one reply
 *    budget and a scan budget -- into a push frame of its own, and says
 *    where it stopped (N: the next position to consider; N = D + 1 when it
 *    read everything up to D).  Back on the loop, the frame goes to the
 *    connection, next_pos becomes N, and the subscription goes live only
 *    if it read everything and N > delivered_head *now*; otherwise
 *    (delivered_head moved on meanwhile) the next slice reads from N.
 *  - A live subscription gets each later group from the fan-out, from its
 *    next_pos on.
 *  - Exactly once, in order, no gap, because next_pos has exactly one
 *    owner at a time and every owner moves it over exactly what it
 *    covered.  While catching up, only the slice's done step moves it (the
 *    fan-out skips subscriptions that are not live; a subscription with a
 *    job in flight is not live and its next_pos stays F until the job
 *    returns), from F to N, having pushed every match in [F, N).  A
 *    subscription turns live on the loop thread at a moment when next_pos
 *    > delivered_head: every later group's positions are above
 *    delivered_head, so the fan-out starts exactly where the disk reads
 *    stopped; nothing the fan-out handed out before that moment is lost,
 *    since those positions are <= delivered_head and so were left to the
 *    disk slices.  A group committed but not yet fanned out when a slice
 *    ran is past D, so the slice never reads it (its scan stops at D) even
 *    if its iterator sees it.  Fell_behind hands next_pos back from the
 *    fan-out to the slices at a position the fan-out did not push.  A
 *    subscription removed while its job runs (unsubscribe, connection
 *    closed) detaches the job, which keeps the filter's bytes and drops
 *    its frame.
 *  - Slices read what every earlier group wrote: the job is started on the
 *    loop after the group's fan-out (which follows its RocksDB write), and
 *    the reader makes its iterator after taking the job.
 *  - A live subscriber whose connection is over its output cap, or holds
 *    more than MAOSD_LIGHT_BYTES while the daemon is over its budget
 *    (max_total_output; maosd_conn_over_cap), is switched back to catching
 *    up (told "fell_behind"): the daemon keeps no per-subscriber backlog in
 *    memory, only a position.
 *  - Catch-up never buffers more than a small window: the pump serves a
 *    connection only while it holds at most MAOSD_PUMP_WINDOW (2 MiB: one
 *    slice of about a reply budget on its way while the next is read) and
 *    is not over a cap (maosd_conn_pump_ok); it can always read again from
 *    disk, so a subscriber that does not read costs one window, not its
 *    cap.  A connection whose output drains kicks the pump again.
 *  - Catch-up cannot stall the loop, writers or anyone else: the loop only
 *    moves finished frames; the reading happens on reader threads, at most
 *    PUMP_JOBS of them at a time for all catching-up subscriptions (the
 *    rest of the pool stays free for requests), round robin.  A watch's
 *    prelude pages (tables.c) are still read on the loop: at most
 *    PUMP_TURN_SCAN records' worth and PUMP_TURN_NS of time per turn.
 *  - from_version past the stream's head: the subscription starts at the
 *    live end and waits for that version (s->waiting): versions of the
 *    stream below it, written meanwhile, are skipped, live or from disk, so
 *    the first event delivered is exactly that version.
 *  - Only committed (with sync durability: synced) events are delivered.
 *  - Channels: publish goes to the channel subscriptions whose glob pattern
 *    matches, now, never stored; a subscriber over its cap misses it
 *    (at-most-once, counted in channel_dropped).
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"

#define PUMP_LIMIT 10000      /* events per catch-up push */
#define PUMP_SLICE_SCAN 20000 /* records a catch-up slice examines */
#define PUMP_JOBS 2           /* catch-up slices in flight, all subs */
#define PUMP_TURN_SCAN 20000  /* prelude: records' worth per loop turn */
#define PUMP_PAGE_SCAN 500    /* ... a page counts as this many */
#define PUMP_TURN_NS 250000   /* prelude: time one loop turn pumps */

/* A catch-up slice in flight (the job's arg).  The reader thread reads f,
 * sub_id, from, upto, waiting, wait_version and writes the results; the
 * loop thread reads the results after the job came back and writes sub and
 * mem (fields the reader never reads) when the subscription goes away. */
struct pump_job {
    maosd_sub *sub;          /* NULL once the subscription is gone */
    char *mem;               /* then: its filter's bytes, freed with the job */
    maos_filter f;           /* the subscription's filter (slices into its mem) */
    uint64_t sub_id;
    uint64_t from;           /* F: next_pos when it started */
    uint64_t upto;           /* D: delivered_head when it started */
    int waiting;
    uint64_t wait_version;
    int scope_kind;          /* the subscription's (its rights: the job's) */
    int form;                /* the subscription's */
    /* out */
    int found;               /* the awaited version is stored */
    uint32_t count;          /* events in the frame */
    int more;                /* stopped before D */
    uint64_t next;           /* N */
};

/* ---- subscription objects ---------------------------------------------------- */

static char *copy_slice(char **dst, maos_slice s)
{
    char *p = *dst;
    if (s.len) /* an unset filter part may have a NULL pointer */
        memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    *dst += s.len + 1;
    return p;
}

/* A subscription with its own copy of the filter (the request's slices
 * die with the frame). */
static maosd_sub *sub_new(maosd_conn *c, const maos_filter *f, maos_slice pattern)
{
    size_t need = pattern.len + 1;
    if (f) {
        need += f->stream.len + f->prefix.len + f->category.len + 3;
        for (uint32_t i = 0; i < f->n_types; i++)
            need += f->types[i].len + 1;
        need += f->n_types * sizeof(maos_slice);
    }
    maosd_sub *s = calloc(1, sizeof(*s));
    char *mem = malloc(need + sizeof(maos_slice));
    if (!s || !mem) {
        free(s);
        free(mem);
        return NULL;
    }
    s->mem = mem;
    s->conn = c;
    s->id = ++c->next_sub_id;
    /* types first: slices need their alignment */
    char *p = mem;
    if (f) {
        s->filter = *f;
        if (f->n_types) {
            s->filter.types = (maos_slice *)(void *)p;
            p += f->n_types * sizeof(maos_slice);
            for (uint32_t i = 0; i < f->n_types; i++) {
                s->filter.types[i].len = f->types[i].len;
                s->filter.types[i].ptr = copy_slice(&p, f->types[i]);
            }
        } else {
            s->filter.types = NULL;
        }
        s->filter.stream.ptr = copy_slice(&p, f->stream);
        s->filter.prefix.ptr = copy_slice(&p, f->prefix);
        s->filter.category.ptr = copy_slice(&p, f->category);
    }
    s->pattern = copy_slice(&p, pattern);
    s->conn_next = c->subs;
    c->subs = s;
    c->n_subs++;
    return s;
}

static void list_add(maosd_sub **head, maosd_sub *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static void list_del(maosd_sub **head, maosd_sub *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

/* The pump list is a FIFO: on_pump serves from the head and sends each
 * served subscription to the tail, so every catching-up subscription gets
 * its turn however many there are. */
static void pump_push_tail(maosd_server *srv, maosd_sub *s)
{
    s->pump_next = NULL;
    if (srv->pump_tail)
        srv->pump_tail->pump_next = s;
    else
        srv->pump = s;
    srv->pump_tail = s;
}

static void pump_add(maosd_server *srv, maosd_sub *s)
{
    if (s->pumping)
        return;
    s->pumping = 1;
    pump_push_tail(srv, s);
    maosd_sub_kick(srv);
}

static void pump_del(maosd_server *srv, maosd_sub *s)
{
    if (!s->pumping)
        return;
    maosd_sub *prev = NULL;
    for (maosd_sub *p = srv->pump; p; prev = p, p = p->pump_next)
        if (p == s) {
            if (prev)
                prev->pump_next = s->pump_next;
            else
                srv->pump = s->pump_next;
            if (srv->pump_tail == s)
                srv->pump_tail = prev;
            break;
        }
    s->pumping = 0;
}

/* Unlink from every list and free. */
static void sub_free(maosd_server *srv, maosd_sub *s)
{
    maosd_conn *c = s->conn;
    for (maosd_sub **pp = &c->subs; *pp; pp = &(*pp)->conn_next)
        if (*pp == s) {
            *pp = s->conn_next;
            break;
        }
    c->n_subs--;
    if (s->channel) {
        list_del(&srv->chan_subs, s);
        srv->n_chan_subs--;
    } else {
        list_del(&srv->subs, s);
        srv->n_subs--;
    }
    pump_del(srv, s);
    if (s->prelude_free)
        s->prelude_free(srv, s->prelude_arg);
    if (s->job) {
        /* its slice is being read: it keeps the filter's bytes and drops
         * its frame when it comes back */
        struct pump_job *p = s->job;
        p->sub = NULL;
        p->mem = s->mem;
        s->mem = NULL;
    }
    free(s->mem);
    free(s);
}

void maosd_sub_conn_closed(maosd_conn *c)
{
    while (c->subs)
        sub_free(c->srv, c->subs);
}

/* ---- pushes ------------------------------------------------------------------ */

static void push_state(maosd_sub *s, maos_push_kind kind)
{
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(s->conn, &pk);
    maos_enc_push_state(&pk, kind, s->id, s->next_pos);
    maosd_reply_end(s->conn, mark);
}

static void go_live(maosd_server *srv, maosd_sub *s)
{
    pump_del(srv, s);
    s->live = 1;
    push_state(s, MAOS_PUSH_CAUGHT_UP);
}

/*
 * One catch-up slice, on a reader thread: the matching events from F up to
 * D as one push frame in j->out (none when nothing matched), at most
 * PUMP_LIMIT events / one reply budget / PUMP_SLICE_SCAN records
 * examined.  Only the job and the store are read.
 */
static void run_pump(maosd_rjob *j)
{
    struct pump_job *p = j->arg;
    uint64_t from = p->from;
    if (p->waiting) {
        /* Start at the awaited version if it is stored (maybe past D: the
         * fan-out of its group is still to come), else nothing of the
         * stream up to D is for it. */
        uint64_t pos;
        int rc = maosd_stream_version_position(j->store, p->f.stream, p->wait_version,
                                                &pos);
        if (rc && rc != MAOS_ENOT_FOUND) {
            maosd_rjob_fail(j, 0, rc);
            return;
        }
        p->found = rc == 0;
        if (rc)
            pos = p->upto + 1;
        if (pos > from)
            from = pos;
    }
    p->next = from;
    if (from > p->upto) /* e.g. from past the head */
        return;
    msgpack_packer pk;
    maosd_rjob_reserve(j);
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    maos_list_mark lm;
    maosd_scan sc = {
        .f = &p->f,
        .upto = p->upto,
        .limit = PUMP_LIMIT,
        .budget = j->budget,
        .max_scan = PUMP_SLICE_SCAN,
        .rights = p->scope_kind ? j->rights : NULL,
        .rights_kind = p->scope_kind,
        .form = p->form,
    };
    int rc = maos_enc_push_events_begin(&j->out, p->sub_id, &lm);
    if (!rc)
        rc = maosd_collect(j->store, from, &sc, &j->out);
    /* never backwards: the subscription may have started past D */
    uint64_t next = sc.more ? sc.next : p->upto + 1;
    if (next < from)
        next = from;
    if (!rc && sc.count)
        rc = maos_enc_push_events_end(&j->out, &lm, sc.count, next);
    if (!rc && sc.count)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc) {
        maosd_rjob_fail(j, mark, rc);
        return;
    }
    if (!sc.count)
        j->out.size = mark; /* nothing to send */
    p->count = sc.count;
    p->more = sc.more;
    p->next = next;
}

/* The slice came back (loop thread): push its frame, move next_pos over
 * what it covered, and go live if nothing is left to read from disk. */
static void pump_done(maosd_rjob *j)
{
    struct pump_job *p = j->arg;
    maosd_server *srv = j->srv;
    maosd_sub *s = p->sub;
    srv->pump_jobs--;
    if (s) {
        maosd_conn *c = s->conn;
        s->job = NULL;
        if (j->rc) {
            /* The subscriber must not wait for events it will never get:
             * drop the connection; the client reconnects and resumes. */
            maosd_log(MAOSD_LOG_ERROR, "conn %llu sub %llu: catch-up read failed: %s; "
                      "closing the connection", (unsigned long long)c->id,
                      (unsigned long long)s->id, j->why);
            pump_del(srv, s);
            maosd_conn_fail(c);
        } else {
            if (p->count) {
                maosd_conn_put_frames(c, &j->out);
                srv->push_frames++;
                srv->push_events += p->count;
            }
            if (p->found)
                s->waiting = 0;
            s->next_pos = p->next;
            if (!p->more && s->next_pos > srv->delivered_head)
                go_live(srv, s);
        }
    }
    free(p->mem);
    free(p);
    maosd_sub_kick(srv);
}

/* Start a catch-up slice of s.  0, or a negative code (nothing started). */
static int pump_start(maosd_server *srv, maosd_sub *s)
{
    struct pump_job *p = calloc(1, sizeof(*p));
    if (!p)
        return MAOS_ENOMEM;
    p->sub = s;
    p->f = s->filter;
    p->sub_id = s->id;
    p->from = s->next_pos;
    p->upto = srv->delivered_head;
    p->waiting = s->waiting;
    p->wait_version = s->wait_version;
    p->scope_kind = s->scope_kind;
    p->form = s->form;
    maosd_rjob *j = maosd_rjob_new(srv, s->conn, run_pump, pump_done, p);
    if (!j) {
        free(p);
        return MAOS_ENOMEM;
    }
    int rc = maosd_rjob_submit(j); /* frees j on failure */
    if (rc) {
        free(p);
        return rc;
    }
    s->job = p;
    srv->pump_jobs++;
    return 0;
}

/* One page of a watch's prelude, on the loop thread. */
static int prelude_page(maosd_server *srv, maosd_sub *s)
{
    int done = 0, rc = s->prelude(srv, s, &done);
    if (rc)
        return rc;
    if (done) {
        s->prelude_free(srv, s->prelude_arg);
        s->prelude = NULL;
        s->prelude_free = NULL;
        s->prelude_arg = NULL;
    }
    return 0;
}

/*
 * Serve catching-up subscriptions round-robin: start a slice for each that
 * has none in flight and may take more output, up to PUMP_JOBS in flight
 * for all; a slice's return kicks the pump again.  Preludes are served
 * here, a page at a time, within PUMP_TURN_SCAN and PUMP_TURN_NS a turn.
 */
static void on_pump(uv_idle_t *h)
{
    maosd_server *srv = h->data;
    int progress = 0;
    uint32_t budget = PUMP_TURN_SCAN;
    uint64_t t_end = uv_hrtime() + PUMP_TURN_NS;
    maosd_sub *stop_at = srv->pump_tail; /* serve each at most once a turn */
    while (srv->pump && budget && (!progress || uv_hrtime() < t_end)) {
        maosd_sub *s = srv->pump;
        int last = s == stop_at;
        /* to the tail first: what follows may take it off the list */
        srv->pump = s->pump_next;
        if (!srv->pump)
            srv->pump_tail = NULL;
        pump_push_tail(srv, s);
        maosd_conn *c = s->conn;
        if (!s->job && !c->closing && !c->close_after_flush && maosd_conn_pump_ok(c)) {
            int rc = 0;
            if (s->prelude) {
                rc = prelude_page(srv, s);
                budget -= budget < PUMP_PAGE_SCAN ? budget : PUMP_PAGE_SCAN;
                progress = 1;
            } else if (!s->waiting && s->next_pos > srv->delivered_head) {
                go_live(srv, s); /* e.g. from past the head */
            } else if (srv->pump_jobs < PUMP_JOBS) {
                rc = pump_start(srv, s);
            }
            if (rc) {
                maosd_log(MAOSD_LOG_ERROR, "conn %llu sub %llu: catch-up failed: %s; "
                          "closing the connection", (unsigned long long)c->id,
                          (unsigned long long)s->id,
                          rc == MAOS_ENOMEM ? "out of memory" : maosd_store_errmsg());
                pump_del(srv, s);
                maosd_conn_fail(c);
            }
        }
        if (last)
            break;
    }
    /* Stop unless a prelude page was served: output made in this idle
     * callback is flushed by the check handle after the poll, and the poll
     * does not block while the idle handle is active.  Slices in flight
     * kick the pump when they come back; connections that hold their
     * window (or are over a cap) kick it as their output drains. */
    if (!progress) {
        uv_idle_stop(&srv->pump_idle);
        srv->pump_running = 0;
    }
}

void maosd_sub_kick(maosd_server *srv)
{
    if (srv->pump && !srv->pump_running && !srv->stopping) {
        uv_idle_start(&srv->pump_idle, on_pump);
        srv->pump_running = 1;
    }
}

void maosd_subs_init(maosd_server *srv)
{
    uv_idle_init(srv->loop, &srv->pump_idle);
    srv->pump_idle.data = srv;
}

void maosd_subs_close(maosd_server *srv)
{
    uv_idle_stop(&srv->pump_idle);
    uv_close((uv_handle_t *)&srv->pump_idle, NULL);
}

/* ---- fan-out ------------------------------------------------------------------- */

/* Record i of a fan-out's recs (n of them) in the array form, for the
 * subscriptions that asked for it: all n transcoded once per group, on
 * first need, into abuf (then never written again: the slices in *arrays
 * stay valid).  0 and *out, or MAOS_ENOMEM / MAOS_EPROTO (then *arrays
 * stays NULL). */
static int array_form(const maos_record *recs, size_t n, size_t i, maos_slice **arrays,
                      msgpack_sbuffer *abuf, maos_slice *out)
{
    if (!*arrays) {
        maos_slice *a = calloc(n, sizeof(*a));
        if (!a)
            return MAOS_ENOMEM;
        abuf->size = 0;
        for (size_t k = 0; k < n; k++) {
            size_t at = abuf->size;
            int rc = maos_record_to_array(recs[k].raw.ptr, recs[k].raw.len, abuf);
            if (rc) {
                free(a);
                return rc;
            }
            a[k].len = (uint32_t)(abuf->size - at); /* ptr once abuf is whole */
        }
        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
            a[k].ptr = abuf->data + at;
            at += a[k].len;
        }
        *arrays = a;
    }
    *out = (*arrays)[i];
    return 0;
}

void maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list)
{
    (void)arg;
    size_t n = 0;
    for (maosd_wreq *w = list; w; w = w->next)
        if (!w->code)
            n += w->n_recs;
    if (!n)
        return;
    maos_record *recs = NULL;
    maos_slice *arrays = NULL; /* recs in the array form, made on first need */
    msgpack_sbuffer abuf;
    msgpack_sbuffer_init(&abuf);
    maosd_sub *live = srv->subs;
    while (live && !live->live)
        live = live->next;
    if (!live)
        goto advance; /* no one to hand them to: do not decode them */
    recs = malloc(n * sizeof(*recs));
    if (!recs) {
        /* Cannot fan out: every live subscriber falls back to disk reads,
         * which stay correct. */
        for (maosd_sub *s = srv->subs; s; s = s->next)
            if (s->live) {
                s->live = 0;
                pump_add(srv, s);
            }
        goto advance;
    }
    size_t k = 0;
    for (maosd_wreq *w = list; w; w = w->next) {
        if (w->code)
            continue;
        maos_mpr r;
        maos_mpr_init(&r, w->recs.data, w->recs.size);
        for (uint32_t i = 0; i < w->n_recs && k < n; i++)
            if (maos_record_next(&r, &recs[k]) == 0)
                k++;
    }
    n = k;
    size_t budget = maosd_reply_budget(srv);
    for (maosd_sub *s = srv->subs; s && n; s = s->next) {
        maosd_conn *c = s->conn;
        if (!s->live || c->closing || c->close_after_flush)
            continue;
        uint64_t end = recs[n - 1].position + 1; /* where this batch leaves it */
        if (end < s->next_pos)
            end = s->next_pos; /* never backwards: it may start past the batch */
        msgpack_packer pk;
        size_t mark = 0, fstart = 0;
        maos_list_mark lm;
        uint32_t count = 0;
        uint64_t resume = 0; /* != 0: fall back to disk from this position */
        for (size_t i = 0; i < n && !resume; i++) {
            const maos_record *r = &recs[i];
            if (r->position < s->next_pos || !maos_filter_match(&s->filter, r) ||
                (s->scope_kind && !maosd_rights_allow(c->rights, s->scope_kind, r->stream)))
                continue;
            if (s->waiting) {
                if (r->version < s->wait_version)
                    continue; /* written after it subscribed, but too early */
                /* the awaited version: nothing before it was delivered
                 * (count is 0), so everything up to here is considered */
                s->waiting = 0;
                s->next_pos = r->position;
            }
            /* Frames stay within the reply budget, and the cap is checked
             * between frames: a slow consumer keeps a position, not a
             * backlog. */
            if (count && c->out.size - fstart + r->raw.len > budget) {
                if (maos_enc_push_events_end(&c->out, &lm, count, r->position)) {
                    c->out.size = mark;
                    resume = s->next_pos;
                    break;
                }
                maosd_reply_end(c, mark);
                srv->push_frames++;
                srv->push_events += count;
                s->next_pos = r->position;
                count = 0;
            }
            if (!count && maosd_conn_over_cap(c)) {
                resume = r->position > s->next_pos ? r->position : s->next_pos;
                break;
            }
            if (!count) {
                mark = maosd_reply_begin(c, &pk);
                if (maos_enc_push_events_begin(&c->out, s->id, &lm)) {
                    c->out.size = mark;
                    resume = r->position;
                    break;
                }
                fstart = c->out.size;
            }
            maos_slice bytes = r->raw;
            if (s->form == MAOS_FORM_ARRAY && array_form(recs, n, i, &arrays, &abuf, &bytes)) {
                c->out.size = mark; /* out of memory: resend it from disk */
                resume = s->next_pos;
                break;
            }
            if (msgpack_sbuffer_write(&c->out, bytes.ptr, bytes.len)) {
                c->out.size = mark; /* drop this frame; resend it from disk */
                resume = s->next_pos;
                break;
            }
            count++;
        }
        if (resume) {
            s->live = 0;
            s->next_pos = resume;
            srv->fell_behind++;
            push_state(s, MAOS_PUSH_FELL_BEHIND);
            pump_add(srv, s);
            continue;
        }
        if (count) {
            if (maos_enc_push_events_end(&c->out, &lm, count, end)) {
                c->out.size = mark; /* out of memory: resume from disk */
                s->live = 0;
                pump_add(srv, s);
                continue;
            }
            maosd_reply_end(c, mark);
            srv->push_frames++;
            srv->push_events += count;
        }
        s->next_pos = end;
    }
advance:
    free(recs);
    free(arrays);
    msgpack_sbuffer_destroy(&abuf);
    for (maosd_wreq *w = list; w; w = w->next)
        if (!w->code && w->n_recs)
            srv->delivered_head = w->last_pos;
}

/* ---- ops ------------------------------------------------------------------------ */

static int too_many(maosd_call *call)
{
    if (call->conn->n_subs < call->srv->cfg->max_subscriptions)
        return 0;
    snprintf(call->why, sizeof(call->why),
             "a connection may hold %u subscriptions (max_subscriptions)",
             call->srv->cfg->max_subscriptions);
    return MAOS_ELIMIT;
}

static void reply_fields(maosd_call *call, uint64_t sub, uint64_t from,
                         uint64_t position, uint64_t receivers)
{
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(call->conn, &pk);
    maos_enc_reply_fields(&pk, call->req->rid, sub, from, position, receivers);
    maosd_reply_end(call->conn, mark);
}

int maosd_op_subscribe(maosd_call *call)
{
    maosd_server *srv = call->srv;
    maos_request *req = call->req;
    int rc = too_many(call);
    if (rc)
        return rc;
    uint64_t from = srv->delivered_head + 1; /* default: live only */
    int waiting = 0;
    if (req->has_from) {
        from = req->from ? req->from : 1;
    } else if (req->has_from_version) {
        uint64_t pos;
        rc = maosd_stream_version_position(srv->store, req->filter.stream,
                                           req->from_version, &pos);
        if (rc == 0)
            from = pos;
        else if (rc != MAOS_ENOT_FOUND)
            return rc;
        else
            waiting = 1; /* not written yet: from the live end, waiting for it */
    }
    maosd_sub *s = maosd_sub_new(srv, call->conn, &req->filter, from, waiting,
                                 req->from_version);
    if (!s) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    s->scope_kind = MAOS_SCOPE_SUBSCRIBE; /* filtered to its rights */
    s->form = req->form;
    maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rid %llu: sub %llu from %llu",
               (unsigned long long)call->conn->id, (unsigned long long)req->rid,
               (unsigned long long)s->id, (unsigned long long)from);
    reply_fields(call, s->id, from, UINT64_MAX, UINT64_MAX);
    maosd_sub_run(srv, s);
    return 0;
}

maosd_sub *maosd_sub_new(maosd_server *srv, maosd_conn *c, const maos_filter *f,
                         uint64_t from, int waiting, uint64_t wait_version)
{
    maosd_sub *s = sub_new(c, f, (maos_slice){"", 0});
    if (!s)
        return NULL;
    list_add(&srv->subs, s);
    srv->n_subs++;
    s->next_pos = from;
    s->waiting = waiting;
    s->wait_version = wait_version;
    return s;
}

void maosd_sub_run(maosd_server *srv, maosd_sub *s)
{
    if (s->next_pos > srv->delivered_head && !s->prelude)
        go_live(srv, s);
    else
        pump_add(srv, s);
}

static maosd_sub *find_sub(maosd_conn *c, uint64_t id)
{
    for (maosd_sub *s = c->subs; s; s = s->conn_next)
        if (s->id == id)
            return s;
    return NULL;
}

int maosd_op_unsubscribe(maosd_call *call)
{
    maosd_sub *s = find_sub(call->conn, call->req->sub);
    if (!s) {
        snprintf(call->why, sizeof(call->why), "no subscription %llu on this connection",
                 (unsigned long long)call->req->sub);
        return MAOS_ENOT_FOUND;
    }
    sub_free(call->srv, s);
    reply_fields(call, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    return 0;
}

int maosd_op_checkpoint_save(maosd_call *call)
{
    int rc = maosd_queue_write(call->srv, call->conn, call->req, &call->frame,
                               call->frame_len);
    if (rc)
        snprintf(call->why, sizeof(call->why), "out of memory");
    return rc;
}

/* checkpoint_get runs on a reader thread (reader.c): the job's own
 * request, the store and the job's reply frame only. */
static void run_checkpoint_get(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char k[MAOSD_CHECKPOINT_KEY_MAX], v[8];
    size_t vlen;
    int rc = maosd_store_get(j->store, MAOSD_CF_META, k, maosd_key_checkpoint(k, req->name),
                             v, sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        j->rc = rc;
        snprintf(j->why, sizeof(j->why), "no checkpoint named %.*s", (int)req->name.len,
                 req->name.ptr);
        return;
    }
    if (!rc && vlen != 8)
        rc = maosd_store_corrupt("checkpoint %.*s (meta key) is %zu bytes, want 8",
                                 (int)req->name.len, req->name.ptr, vlen);
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (!rc && maos_enc_reply_fields(&pk, req->rid, UINT64_MAX, UINT64_MAX,
                                     maosd_get_u64(v), UINT64_MAX))
        rc = MAOS_ENOMEM;
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

int maosd_op_checkpoint_get(maosd_call *call)
{
    return maosd_rjob_call(call, run_checkpoint_get);
}

int maosd_op_publish(maosd_call *call)
{
    maosd_server *srv = call->srv;
    maos_request *req = call->req;
    char chan[MAOS_NAME_MAX + 1];
    memcpy(chan, req->channel.ptr, req->channel.len);
    chan[req->channel.len] = 0;
    uint64_t receivers = 0;
    for (maosd_sub *s = srv->chan_subs; s; s = s->next) {
        maosd_conn *c = s->conn;
        if (c->closing || fnmatch(s->pattern, chan, 0) != 0 ||
            !maosd_rights_allow(c->rights, MAOS_SCOPE_CHANNEL, req->channel))
            continue;
        if (maosd_conn_over_cap(c)) {
            srv->channel_dropped++; /* at-most-once */
            continue;
        }
        msgpack_packer pk;
        size_t mark = maosd_reply_begin(c, &pk);
        maos_enc_push_message(&pk, s->id, req->channel, req->payload);
        maosd_reply_end(c, mark);
        receivers++;
    }
    srv->channel_messages++;
    reply_fields(call, UINT64_MAX, UINT64_MAX, UINT64_MAX, receivers);
    return 0;
}

int maosd_op_subscribe_channel(maosd_call *call)
{
    int rc = too_many(call);
    if (rc)
        return rc;
    maosd_sub *s = sub_new(call->conn, NULL, call->req->pattern);
    if (!s) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    s->channel = 1;
    s->live = 1;
    list_add(&call->srv->chan_subs, s);
    call->srv->n_chan_subs++;
    reply_fields(call, s->id, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    return 0;
}

void maosd_subs_stats(maosd_server *srv, maos_stats *st)
{
    uint64_t live = 0, max_lag = 0;
    for (maosd_sub *s = srv->subs; s; s = s->next) {
        if (s->live)
            live++;
        uint64_t lag = srv->delivered_head + 1 > s->next_pos
                           ? srv->delivered_head + 1 - s->next_pos
                           : 0;
        if (lag > max_lag)
            max_lag = lag;
    }
    st->subscriptions = srv->n_subs;
    st->subscriptions_live = live;
    st->subscriptions_max_lag = max_lag;
    st->push_frames = srv->push_frames;
    st->push_events = srv->push_events;
    st->fell_behind = srv->fell_behind;
    st->channel_subscriptions = srv->n_chan_subs;
    st->channel_messages = srv->channel_messages;
    st->channel_dropped = srv->channel_dropped;
}
