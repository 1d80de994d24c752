/*
 * tests/fault/fault_util.h -- what the crash, fault, allocation-failure and
 * shutdown tests share: event ids that say who wrote them, a writer's
 * record of what was acknowledged, the whole log loaded by position, the
 * history check of "acknowledged means stored, once, in place", and the
 * LD_PRELOAD set-up for the fault shim.
 *
 * Failing: helpers fail through MT_FAIL in the test process.  Helpers that
 * forked processes use (fu_append_rec and friends) never fail: they
 * return codes and the process decides.
 *
 * Ownership: fu_log and fu_acks own their arrays (fu_log_free,
 * fu_acks_free).  Not thread-safe (tests are single-threaded processes).
 */
#ifndef MAOS_TESTS_FAULT_UTIL_H
#define MAOS_TESTS_FAULT_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

/* ---- ids ----------------------------------------------------------------- */

/*
 * The id of event i of append s of writer w, in a test run tagged `tag`
 * (so runs and phases never share ids).  A UUID-shaped, non-nil value;
 * w and i < 256.
 */
void fu_mk_id(uint8_t id[16], uint8_t tag, uint32_t w, uint32_t s, uint32_t i);
/* 1 and (w, s, i) when id was made by fu_mk_id with this tag, else 0. */
int fu_parse_id(const uint8_t id[16], uint8_t tag, uint32_t *w, uint32_t *s,
                uint32_t *i);

/* ---- what a writer was told ---------------------------------------------- */

/*
 * One acknowledged append: writer w's append s of k events got positions
 * pos..pos+k-1 and versions version..version+k-1 in `stream_no` (a small
 * number the test maps to a name).  dup: the reply said duplicate (a
 * re-send of an append that had been stored before a crash).  A writer
 * writes each record with one write() on an O_APPEND file, so the record
 * survives the writer or the daemon being killed; a torn last record
 * (only when the writer itself dies mid-write) is ignored by fu_acks_load.
 */
typedef struct fu_ack {
    uint32_t w, s, k, dup;
    uint32_t stream_no, pad;
    uint64_t pos, version;
} fu_ack;

typedef struct fu_acks {
    fu_ack *v;
    size_t n;
} fu_acks;

/* Append one record to fd.  0, or -1 (the writer exits with an error). */
int fu_ack_write(int fd, const fu_ack *a);
/* Append one record to a list in memory. */
void fu_acks_push(fu_acks *a, const fu_ack *k);
/* Load the records of path (missing file: none); appends to *out. */
void fu_acks_load(const char *path, fu_acks *out);
void fu_acks_free(fu_acks *a);

/* ---- the stored log ------------------------------------------------------ */

typedef struct fu_ev {
    uint64_t pos, version;
    uint8_t id[16];
    char stream[64];
    uint64_t hash; /* FNV-1a of the whole stored record */
} fu_ev;

/* The log 1..n: v[p - 1] is position p. */
typedef struct fu_log {
    fu_ev *v;
    uint64_t n;
} fu_log;

/*
 * Read head_position from stats, then read_all 1..head forward, asserting
 * positions dense and no event beyond the head.  c must be healthy.
 */
void fu_log_load(maos_ctx *c, fu_log *out);
void fu_log_free(fu_log *l);
uint64_t fu_hash(const void *p, size_t n);

/*
 * The history check shared by every test here, for the appends of the
 * writers tagged `tag` (events of other tags are ignored):
 *  - every acknowledged append is stored exactly where its reply said
 *    (positions, versions, stream `streams[stream_no]`), event i of it
 *    at pos + i: present, and present once (ids are unique in the log);
 *  - every append of this tag in the log is whole: its k events (k from
 *    kf(w, s)) at consecutive positions, in order -- nothing visible
 *    partly, acknowledged or not;
 *  - with `sequential` (a writer sends append s+1 only after s was
 *    acknowledged): per writer, the appends in the log are 0..x without a
 *    hole, and x >= the last acknowledged one.
 * Returns the number of appends in the log that no reply acknowledged
 * (outcome unknown to their writer: stored before a crash, or refused
 * after a storage error).  writers: number of writers (w < writers).
 */
typedef uint32_t (*fu_k_fn)(uint32_t w, uint32_t s);
uint64_t fu_check_history(const fu_log *log, const fu_acks *acks, uint8_t tag,
                          uint32_t writers, fu_k_fn kf,
                          const char *const *streams, int sequential,
                          const char *when);

/* maosctl verify must print OK (the hash chain). */
void fu_verify_ok(const mt_daemon *d);

/* A client connection that must work (30 s connect timeout). */
maos_ctx *fu_connect(const mt_daemon *d);

/* Frame (4-byte length) and send one encoded msgpack value on a raw
 * socket.  0, or -1 when the peer is gone. */
int fu_send_frame(int fd, const void *p, size_t n);

/* ---- the fault shim ------------------------------------------------------ */

/* Path of faultshim.so ($MAOS_FAULTSHIM, else the build path). */
const char *fu_shim_path(void);
/*
 * Set LD_PRELOAD for d's next starts to lib, after the sanitizer runtime
 * this test binary runs with, if that is a shared library (ASan insists on
 * coming first; the test binary and maosd are built with the same flags).
 */
void fu_preload(mt_daemon *d, const char *lib);

/* 1 when the daemon's log (all starts so far) contains s. */
int fu_log_has(const mt_daemon *d, const char *s);

#endif
