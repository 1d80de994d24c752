/*
 * tests/bench/sqlite.c -- the alternative, done the way teams first do it.
 *
 * Issue 4 fixes the set-up, and this file is the only place that knows it:
 *  - one database file shared by every process, journal_mode=WAL,
 *    busy_timeout=5000 on every connection;
 *  - synchronous=FULL where maos runs with durability sync, NORMAL where
 *    maos runs with none;
 *  - an events table with a (stream, version) unique index; an append is
 *    BEGIN IMMEDIATE, read the stream's last version, insert, COMMIT (what
 *    an expected-version check needs; a retry loop is the caller's);
 *  - notifications by polling PRAGMA data_version every millisecond.
 * The event body is the same ~200-byte content as maos's, as JSON text, and
 * the id is 16 random bytes, as a UUID would be.
 *
 * An SQLITE_BUSY that escapes busy_timeout is counted (r->busy), the
 * transaction rolled back and the append not counted: users meet those
 * errors, so the benchmark reports them instead of hiding them by retrying.
 */
#include "bench.h"

#ifdef BENCH_HAVE_SQLITE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* Where bsq_read leaves a value derived from every row, so that the
 * compiler cannot drop the column reads. */
static volatile uint64_t read_sink;

struct bsq {
    sqlite3 *db;
    sqlite3_stmt *begin, *head, *ins, *commit, *rollback, *dv, *after;
    sqlite3_stmt *kv_get, *kv_set; /* the kv-cas table */
    sqlite3_stmt *q_ins, *q_pick, *q_take, *q_done, *q_ready; /* the queue's tasks */
    uint64_t rnd;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS events("
    " pos INTEGER PRIMARY KEY,"  /* the global log position (rowid) */
    " stream TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " id BLOB NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " meta TEXT NOT NULL,"
    " time INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events(stream, version);"
    /* kv-cas (issue 7): a revisioned key-value table */
    "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, rev INTEGER NOT NULL,"
    " val INTEGER NOT NULL);"
    /* queue (issue 8): a tasks table as teams build it; state 0 ready,
     * 1 claimed, 2 done */
    "CREATE TABLE IF NOT EXISTS tasks(id INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, data INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, priority, id);";

int bsq_create(const char *path)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, schema, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        bench_say("sqlite %s: %s", path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

void bsq_close(bsq *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->head);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->dv);
    sqlite3_finalize(s->after);
    sqlite3_finalize(s->kv_get);
    sqlite3_finalize(s->kv_set);
    sqlite3_finalize(s->q_ins);
    sqlite3_finalize(s->q_pick);
    sqlite3_finalize(s->q_take);
    sqlite3_finalize(s->q_done);
    sqlite3_finalize(s->q_ready);
    sqlite3_close(s->db);
    free(s);
}

bsq *bsq_open(const char *path, int full, bench_wres *r)
{
    bsq *s = calloc(1, sizeof(*s));
    if (!s) {
        bench_fail(r, "out of memory");
        return NULL;
    }
    s->rnd = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ bench_now_ns();
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(s->db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db,
                          full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                          NULL, NULL, NULL);
#define PREP(stmt, sql)                                                        \
    if (rc == SQLITE_OK)                                                       \
    rc = sqlite3_prepare_v2(s->db, sql, -1, &s->stmt, NULL)
    PREP(begin, "BEGIN IMMEDIATE");
    PREP(head, "SELECT max(version) FROM events WHERE stream = ?1");
    PREP(ins, "INSERT INTO events(stream, version, id, type, data, meta, time) "
              "VALUES (?1, ?2, ?3, ?4, ?5, '{}', ?6)");
    PREP(commit, "COMMIT");
    PREP(rollback, "ROLLBACK");
    PREP(dv, "PRAGMA data_version");
    PREP(after, "SELECT pos, stream, data FROM events WHERE pos > ?1 ORDER BY pos LIMIT ?2");
    PREP(kv_get, "SELECT rev, val FROM kv WHERE key = ?1");
    PREP(kv_set, "UPDATE kv SET val = ?2, rev = rev + 1 WHERE key = ?1 AND rev = ?3");
    PREP(q_ins, "INSERT INTO tasks(state, priority, data) VALUES (0, 0, ?1)");
    PREP(q_pick, "SELECT id, data FROM tasks WHERE state = 0 ORDER BY priority DESC, id "
                 "LIMIT 1");
    PREP(q_take, "UPDATE tasks SET state = 1 WHERE id = ?1");
    PREP(q_done, "UPDATE tasks SET state = 2 WHERE id = ?1");
    PREP(q_ready, "SELECT count(*) FROM tasks WHERE state = 0");
#undef PREP
    if (rc != SQLITE_OK) {
        bench_fail(r, "sqlite open %s: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        bsq_close(s);
        return NULL;
    }
    return s;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

static uint64_t next_rnd(bsq *s)
{
    s->rnd ^= s->rnd << 13;
    s->rnd ^= s->rnd >> 7;
    s->rnd ^= s->rnd << 17;
    return s->rnd;
}

/* bsq_append, or with body != NULL one event whose data is body. */
static int append_tx(bsq *s, const char *stream, int proc, uint64_t n0, int n,
                     const char *body, size_t body_len, bench_wres *r)
{
    int rc = step_done(s->begin);
    if (is_busy(rc)) {
        r->busy++;
        return 1;
    }
    if (rc != SQLITE_DONE) {
        bench_fail(r, "BEGIN IMMEDIATE: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_bind_text(s->head, 1, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(s->head);
    int64_t v = -1;
    if (rc == SQLITE_ROW && sqlite3_column_type(s->head, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s->head, 0);
    sqlite3_reset(s->head);
    if (rc != SQLITE_ROW)
        goto fail;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (int i = 0; i < n; i++) {
        char json[512];
        uint64_t id[2] = {next_rnd(s), next_rnd(s)};
        size_t len = body ? body_len
                          : bench_data_json(json, sizeof(json), proc, n0 + (uint64_t)i);
        sqlite3_bind_text(s->ins, 1, stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 2, v + 1 + i);
        sqlite3_bind_blob(s->ins, 3, id, 16, SQLITE_STATIC);
        sqlite3_bind_text(s->ins, 4, BENCH_EVENT_TYPE, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->ins, 5, body ? body : json, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 6, now);
        rc = step_done(s->ins);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    rc = step_done(s->commit);
    if (rc == SQLITE_DONE)
        return 0;
fail:
    if (is_busy(rc)) {
        r->busy++;
        step_done(s->rollback);
        return 1;
    }
    bench_fail(r, "sqlite append: %s", sqlite3_errmsg(s->db));
    step_done(s->rollback);
    return -1;
}

int bsq_append(bsq *s, const char *stream, int proc, uint64_t n0, int n,
               bench_wres *r)
{
    return append_tx(s, stream, proc, n0, n, NULL, 0, r);
}

int bsq_append_data(bsq *s, const char *stream, const char *data, size_t len,
                    bench_wres *r)
{
    return append_tx(s, stream, 0, 0, 1, data, len, r);
}

int bsq_read_after(bsq *s, int64_t *last_pos, int limit, bsq_row_fn fn, void *ud,
                   bench_wres *r)
{
    sqlite3_bind_int64(s->after, 1, *last_pos);
    sqlite3_bind_int(s->after, 2, limit);
    int rc, n = 0;
    while ((rc = sqlite3_step(s->after)) == SQLITE_ROW) {
        int64_t pos = sqlite3_column_int64(s->after, 0);
        const char *stream = (const char *)sqlite3_column_text(s->after, 1);
        const char *data = (const char *)sqlite3_column_text(s->after, 2);
        int len = sqlite3_column_bytes(s->after, 2);
        fn(ud, pos, stream ? stream : "", data ? data : "", len);
        *last_pos = pos;
        n++;
    }
    sqlite3_reset(s->after);
    if (rc != SQLITE_DONE) {
        bench_fail(r, "sqlite read_after: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return n;
}

int64_t bsq_last_pos(bsq *s)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(pos), 0) FROM events", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int bsq_read(bsq *s, const char *stream, bench_wres *r)
{
    sqlite3_stmt *st = NULL;
    const char *sql = stream
        ? "SELECT pos, stream, version, id, type, data, meta, time FROM events "
          "WHERE stream = ?1 ORDER BY version"
        : "SELECT pos, stream, version, id, type, data, meta, time FROM events "
          "ORDER BY pos";
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        bench_fail(r, "sqlite read: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    if (stream)
        sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    uint64_t sink = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* Touch every column as a reader that hands events on would. */
        uint64_t b = 24; /* pos, version, time */
        sink += (uint64_t)sqlite3_column_int64(st, 0);
        for (int c = 1; c <= 6; c++) {
            if (c == 2)
                continue;
            const unsigned char *p = c == 3 ? sqlite3_column_blob(st, c)
                                            : sqlite3_column_text(st, c);
            int n = sqlite3_column_bytes(st, c);
            if (p && n > 0)
                sink += p[n - 1];
            b += (uint64_t)n;
        }
        sink += (uint64_t)sqlite3_column_int64(st, 2) + (uint64_t)sqlite3_column_int64(st, 7);
        r->events++;
        r->bytes += b;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        bench_fail(r, "sqlite read: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    read_sink = sink;
    return 0;
}

int bsq_wait_change(bsq *s, int64_t *seen, int timeout_ms)
{
    for (int waited = 0;; waited++) {
        int rc = sqlite3_step(s->dv);
        int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s->dv, 0) : -1;
        sqlite3_reset(s->dv);
        if (rc != SQLITE_ROW)
            return -1;
        if (v != *seen) {
            *seen = v;
            return 1;
        }
        if (waited >= timeout_ms)
            return 0;
        bench_sleep_us(1000);
    }
}
/* ---- kv-cas (issue 7) ------------------------------------------------------- */

int bsq_kv_seed(bsq *s, int nkeys)
{
    char sql[96];
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int k = 0; rc == SQLITE_OK && k < nkeys; k++) {
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO kv(key, rev, val) VALUES ('k%d', 0, 0)", k);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : -1;
}

int bsq_kv_incr(bsq *s, const char *key, bench_wres *r)
{
    /* BEGIN IMMEDIATE; SELECT; UPDATE ... WHERE rev = ?; COMMIT */
    int rc = step_done(s->begin);
    if (rc != SQLITE_DONE) {
        if (is_busy(rc)) {
            r->busy++;
            return 1;
        }
        bench_fail(r, "sqlite begin: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_bind_text(s->kv_get, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s->kv_get);
    int64_t rev = rc == SQLITE_ROW ? sqlite3_column_int64(s->kv_get, 0) : -1;
    int64_t val = rc == SQLITE_ROW ? sqlite3_column_int64(s->kv_get, 1) : 0;
    sqlite3_reset(s->kv_get);
    sqlite3_bind_text(s->kv_set, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->kv_set, 2, val + 1);
    sqlite3_bind_int64(s->kv_set, 3, rev);
    rc = step_done(s->kv_set);
    int changed = sqlite3_changes(s->db);
    if (rc == SQLITE_DONE)
        rc = step_done(s->commit);
    if (rc != SQLITE_DONE) {
        step_done(s->rollback);
        if (is_busy(rc)) {
            r->busy++;
            return 1;
        }
        bench_fail(r, "sqlite kv: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return changed == 1 ? 0 : 1; /* 1: the revision moved (never, under the lock) */
}

/* ---- queue (issue 8) ---------------------------------------------------------------- */

/* Run st (reset after); busy counted.  0, 1 busy, -1 error. */
static int q_step(bsq *s, sqlite3_stmt *st, bench_wres *r, const char *what)
{
    int rc = step_done(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (is_busy(rc)) {
        r->busy++;
        return 1;
    }
    bench_fail(r, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
    return -1;
}

int bsq_q_enqueue(bsq *s, const int64_t *data, int n, bench_wres *r)
{
    int rc = q_step(s, s->begin, r, "begin");
    for (int i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(s->q_ins, 1, data[i]);
        rc = q_step(s, s->q_ins, r, "insert");
    }
    if (rc == 0)
        rc = q_step(s, s->commit, r, "commit");
    if (rc)
        step_done(s->rollback);
    return rc;
}

int bsq_q_claim(bsq *s, int64_t *id, int64_t *data, bench_wres *r)
{
    /* BEGIN IMMEDIATE; SELECT ... LIMIT 1; UPDATE; COMMIT */
    int rc = q_step(s, s->begin, r, "begin");
    if (rc)
        return rc;
    int found = 0;
    rc = sqlite3_step(s->q_pick);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s->q_pick, 0);
        *data = sqlite3_column_int64(s->q_pick, 1);
        found = 1;
    }
    sqlite3_reset(s->q_pick);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : is_busy(rc) ? (r->busy++, 1) : -1;
    if (rc == 0 && found) {
        sqlite3_bind_int64(s->q_take, 1, *id);
        rc = q_step(s, s->q_take, r, "claim");
    }
    if (rc == 0)
        rc = q_step(s, s->commit, r, "commit");
    if (rc) {
        step_done(s->rollback);
        if (rc < 0 && !r->err[0])
            bench_fail(r, "sqlite claim: %s", sqlite3_errmsg(s->db));
        return rc;
    }
    return found ? 0 : 2;
}

int64_t bsq_q_ready(bsq *s, bench_wres *r)
{
    int rc = sqlite3_step(s->q_ready);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(s->q_ready, 0) : -1;
    sqlite3_reset(s->q_ready);
    if (n < 0)
        bench_fail(r, "sqlite count: %s", sqlite3_errmsg(s->db));
    return n;
}

int bsq_q_ack(bsq *s, int64_t id, bench_wres *r)
{
    sqlite3_bind_int64(s->q_done, 1, id);
    return q_step(s, s->q_done, r, "ack");
}

#else
/* Built without SQLite: --vs sqlite is refused by main.c. */
typedef int bench_no_sqlite;
#endif
