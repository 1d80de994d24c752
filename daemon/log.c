/*
 * daemon/log.c -- one line per event on stderr.  Under systemd (JOURNAL_STREAM
 * set) lines carry a "<N>" syslog priority prefix that journald understands;
 * on a terminal they carry a UTC timestamp and a level word instead.
 * What is about one request (maosd_log_req) goes to the journal with
 * fields of its own (CONN_ID, RID, OP, CODE: `journalctl CODE=WRONG_REVISION`)
 * through sd_journal_send when stderr is the journal, and as the same
 * plain line otherwise.
 * The daemon logs once, where an error is handled (docs/ARCHITECTURE.md,
 * "House rules").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <systemd/sd-journal.h>

#include "log.h"
#include "maos/proto.h"

_Atomic int maosd_log_level = MAOSD_LOG_INFO;
/* Set once by maosd_log_init, before the commit thread exists: both
 * threads log, so it is never written after that. */
static int journal;

void maosd_log_init(void)
{
    /* JOURNAL_STREAM is "dev:ino" of the stream systemd connected; it is
     * ours only while stderr is still that stream (not redirected) */
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
              (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

const char *maosd_log_level_name(int level)
{
    switch (level) {
    case MAOSD_LOG_ERROR: return "error";
    case MAOSD_LOG_WARN: return "warn";
    case MAOSD_LOG_INFO: return "info";
    default: return "debug";
    }
}

int maosd_log_parse_level(const char *s)
{
    static const int levels[] = {MAOSD_LOG_ERROR, MAOSD_LOG_WARN, MAOSD_LOG_INFO,
                                 MAOSD_LOG_DEBUG};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(s, maosd_log_level_name(levels[i])) == 0)
            return levels[i];
    return -1;
}

void maosd_log(int level, const char *fmt, ...)
{
    char line[1024];
    int n;
    if (journal) {
        n = snprintf(line, sizeof(line), "<%d>", level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ maosd %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, maosd_log_level_name(level));
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* one line per event: fold embedded newlines */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void maosd_log_req(int level, uint64_t conn_id, uint64_t rid, const char *op, int code,
                   const char *why)
{
    char head[96];
    int n = snprintf(head, sizeof head, "conn %llu rid %llu", (unsigned long long)conn_id,
                     (unsigned long long)rid);
    if (op && n > 0 && (size_t)n < sizeof head)
        snprintf(head + n, sizeof head - (size_t)n, " %s", op);
    const char *cname = code ? maos_err_name(code) : NULL;
    if (!journal) {
        if (cname)
            maosd_log(level, "%s: %s: %s", head, cname, why ? why : "-");
        else
            maosd_log(level, "%s: %s", head, why ? why : "-");
        return;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s%s%s", head, cname ? cname : "", cname ? ": " : "",
             why ? why : "-");
    sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "SYSLOG_IDENTIFIER=maosd",
                    "CONN_ID=%llu", (unsigned long long)conn_id, "RID=%llu",
                    (unsigned long long)rid, "OP=%s", op ? op : "", "CODE=%s",
                    cname ? cname : "", NULL);
}
