/*
 * tests/subs/subs_util.h -- raw-protocol helpers shared by the subscription
 * tests (issue 3, "Tests"): a framed connection that tells pushes from
 * replies, request helpers built on proto's encoders, event collectors that
 * check every push as it arrives, and read_all paging for the expected
 * sequences.
 *
 * Only proto and the harness: no client library, so these tests exercise
 * the daemon's wire behaviour directly.
 *
 * Failing: helpers fail through SU_FAIL, which is MT_FAIL in the test
 * process and "print the message with su_tag, then _exit(1)" in a helper
 * process forked with su_fork (cmocka's longjmp must never run in a
 * forked copy of the test).  A helper's exit status is its verdict; the
 * test process asserts it with mt_wait.
 *
 * Ownership: su_conn, su_evs and reply frames from su_call belong to the
 * caller (su_close, su_evs_free, free).  Not thread-safe.
 */
#ifndef MAOS_TESTS_SUBS_UTIL_H
#define MAOS_TESTS_SUBS_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/proto.h"

#define SU_REPLY_MAX (MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK)

/* ---- failing in the test process or in a helper ---------------------------- */

/* Non-empty in a helper process: prefixed to its failure messages (e.g.
 * "subscriber 3, seed 42"). */
extern char su_tag[128];
extern int su_in_child;

void su_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define SU_FAIL(...) su_fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define SU_EQ_U64(a, b)                                                        \
    do {                                                                       \
        unsigned long long su_a_ = (unsigned long long)(a),                    \
                           su_b_ = (unsigned long long)(b);                    \
        if (su_a_ != su_b_)                                                    \
            SU_FAIL("%s == %s: got %llu, want %llu", #a, #b, su_a_, su_b_);    \
    } while (0)

#define SU_EQ_ERR(a, b)                                                        \
    do {                                                                       \
        int su_a_ = (int)(a), su_b_ = (int)(b);                                \
        if (su_a_ != su_b_)                                                    \
            SU_FAIL("%s == %s: got %d (%s), want %d (%s)", #a, #b, su_a_,      \
                    su_a_ ? maos_err_name(su_a_) : "OK", su_b_,                \
                    su_b_ ? maos_err_name(su_b_) : "OK");                      \
    } while (0)

#define SU_TRUE(c)                                                             \
    do {                                                                       \
        if (!(c))                                                              \
            SU_FAIL("expected true: %s", #c);                                  \
    } while (0)

/* mt_fork, and in the child: su_in_child = 1, su_tag = the formatted tag. */
pid_t su_fork(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 while pid (a child of this process) has not exited; does not reap it
 * (mt_wait still does). */
int su_alive(pid_t pid);

/* ---- collected events ------------------------------------------------------- */

/* One delivered or read event: its position and a hash of its stored
 * bytes (the whole record, so stream, type, id, data and the hash chain
 * link all take part in "the same event"). */
typedef struct su_ev {
    uint64_t pos;
    uint64_t hash;
} su_ev;

typedef struct su_evs {
    su_ev *v;
    size_t n, cap;
} su_evs;

void su_evs_push(su_evs *e, uint64_t pos, uint64_t hash);
void su_evs_free(su_evs *e);
uint64_t su_hash(const void *p, size_t n);

/*
 * Assert got[0..) == want[0..) (same positions and record bytes, in order),
 * printing the first difference and a window of both sequences.  what names
 * the comparison in the message.
 */
void su_evs_assert_equal(const char *what, const su_evs *got,
                         const su_evs *want);

/* ---- a framed connection ----------------------------------------------------- */

typedef struct su_conn su_conn;

/* Called for every push read while waiting for something else (and by
 * su_pump).  The push's slices are valid only during the call. */
typedef void (*su_push_fn)(su_conn *c, const maos_push *p, void *user);

struct su_conn {
    int fd;
    maos_reader rd;
    uint64_t next_rid;
    su_push_fn on_push;
    void *user;
};

/* Connect and say hello; fails (SU_FAIL) on any error. */
su_conn *su_open(const char *sock);
/* Same, NULL when the daemon cannot be reached or the hello fails. */
su_conn *su_try_open(const char *sock);
void su_close(su_conn *c);
void su_set_push(su_conn *c, su_push_fn fn, void *user);
uint64_t su_rid(su_conn *c);

/* Frame the packed bytes and send them all.  0 or -errno. */
int su_send(su_conn *c, const void *p, size_t n);
/* Send the packed request; fails the test on a send error. */
void su_send_sb(su_conn *c, msgpack_sbuffer *sb);

/*
 * Next frame within timeout_ms: 1 with *frame valid until the next call on
 * c, 0 when the peer closed, -1 on timeout.  A broken frame fails.
 */
int su_recv(su_conn *c, int timeout_ms, maos_slice *frame);

/*
 * Read frames until the reply with this rid arrives; pushes go to the push
 * callback (a push without one fails).  A reply for another rid fails.
 * Returns the reply frame (malloc, caller frees; rep's slices point into
 * it).  Fails on close or after timeout_ms.
 */
char *su_wait_reply(su_conn *c, uint64_t rid, maos_reply *rep, int timeout_ms);

/* Send sb (its request carries rid) and wait for the reply: returns 0 when
 * ok, else the error code (rep->message holds the reason; *frame keeps it
 * alive: free it).  frame may be NULL (then freed here). */
int su_call(su_conn *c, msgpack_sbuffer *sb, uint64_t rid, maos_reply *rep,
            char **frame);

/*
 * Read and dispatch pushes for up to timeout_ms (or until *stop becomes
 * nonzero after a dispatch when stop is set).  A reply frame here fails.
 * Returns 1 when stopped, 0 when the time ran out, -1 when the peer closed.
 */
int su_pump(su_conn *c, int timeout_ms, const int *stop);

/* ---- requests -------------------------------------------------------------------- */

/* subscribe: 0 with *sub and *from_out set, or the error code. */
int su_subscribe(su_conn *c, const maos_filter *f, int from_kind,
                 uint64_t from, uint64_t *sub, uint64_t *from_out);
int su_unsubscribe(su_conn *c, uint64_t sub);
/* stats (the numbers; slices are dropped). */
void su_stats(su_conn *c, maos_stats *st);
uint64_t su_head(su_conn *c);
void su_ping(su_conn *c);

/* An event to append: type and raw msgpack data (len 0: nil). */
typedef struct su_ev_in {
    const char *type;
    const void *data;
    size_t data_len;
} su_ev_in;

/* Append evs to stream (expect any); 0 and *first_pos, or the error. */
int su_append(su_conn *c, const char *stream, const su_ev_in *evs, size_t n,
              uint64_t *first_pos);
/* Encode an append request with this rid into sb (for pipelining). */
void su_enc_append(msgpack_sbuffer *sb, uint64_t rid, const char *stream,
                   const su_ev_in *evs, size_t n);

/*
 * Every event matching f with from <= position <= upto (upto 0: no bound),
 * by paging read_all forward; appended to out.
 */
void su_read_all(su_conn *c, const maos_filter *f, uint64_t from,
                 uint64_t upto, su_evs *out);

/* ---- a checked collector for event subscriptions ------------------------------ */

/*
 * What one subscription received.  su_collect (as the push callback, with
 * user = su_collector) checks each push as it arrives: events pushes are
 * non-empty, positions strictly increase within and across pushes, `next`
 * never decreases and is above every delivered position; caught_up /
 * fell_behind are counted.  A violation fails at once.
 */
typedef struct su_sub {
    uint64_t id;
    uint64_t from;         /* the subscribe reply's from */
    su_evs got;
    uint64_t next;         /* last `next` seen (0: none yet) */
    uint64_t caught_up;    /* caught_up pushes */
    uint64_t fell_behind;  /* fell_behind pushes */
    uint64_t frames;       /* events pushes */
} su_sub;

typedef struct su_collector {
    su_sub *subs;
    size_t n;
    uint64_t unknown;      /* pushes for a sub id not in the list */
    uint64_t messages;     /* channel messages (kept as raw below) */
    void (*on_message)(const maos_push *p, void *user);
    void *msg_user;
} su_collector;

void su_collect(su_conn *c, const maos_push *p, void *user);
su_sub *su_collector_find(su_collector *col, uint64_t id);

/* ---- misc ----------------------------------------------------------------------- */

/* A small deterministic PRNG (xorshift64*), for seeded property tests. */
typedef struct su_rng {
    uint64_t s;
} su_rng;
void su_rng_seed(su_rng *r, uint64_t seed);
uint64_t su_rng_next(su_rng *r);
/* Uniform in [0, n). */
uint64_t su_rng_below(su_rng *r, uint64_t n);

/* A maos_slice of a NUL-terminated string (NULL: empty). */
maos_slice su_s(const char *s);

/* Pack {"w": w, "i": i, "pad": <pad bytes of 'x'>} into sb (reset first). */
void su_mk_data(msgpack_sbuffer *sb, uint64_t w, uint64_t i, size_t pad);

#endif
