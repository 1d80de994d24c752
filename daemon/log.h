/*
 * daemon/log.h -- logging (log.c) and the clock.
 *
 * Any thread may log: one line per call, written whole.
 */
#ifndef MAOSD_LOG_H
#define MAOSD_LOG_H

#include <stdint.h>

enum { MAOSD_LOG_ERROR = 3, MAOSD_LOG_WARN = 4, MAOSD_LOG_INFO = 6, MAOSD_LOG_DEBUG = 7 };
extern _Atomic int maosd_log_level; /* any thread reads it; SIGHUP sets it */
/* Read the environment (journald or terminal); call once at start-up,
 * before any other thread runs. */
void maosd_log_init(void);
void maosd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line about one request: "conn C rid R OP: CODE: why" (op NULL, code 0:
 * left out); in the journal with the fields CONN_ID, RID, OP and CODE. */
void maosd_log_req(int level, uint64_t conn_id, uint64_t rid, const char *op, int code,
                   const char *why);
#define maosd_logf_req(lvl, ...)                                               \
    do {                                                                       \
        if ((lvl) <= maosd_log_level)                                          \
            maosd_log_req((lvl), __VA_ARGS__);                                 \
    } while (0)
/* "error" | "warn" | "info" | "debug" -> level, or -1. */
int maosd_log_parse_level(const char *s);
/* "error", "warn", "info" or "debug" (static). */
const char *maosd_log_level_name(int level);
#define maosd_logf(lvl, ...)                                                   \
    do {                                                                       \
        if ((lvl) <= maosd_log_level)                                          \
            maosd_log((lvl), __VA_ARGS__);                                     \
    } while (0)


/* Microseconds since the epoch (CLOCK_REALTIME). */
int64_t maosd_now_us(void);

#endif
