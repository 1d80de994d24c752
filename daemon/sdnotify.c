/*
 * daemon/sdnotify.c -- running under systemd (libsystemd): readiness and
 * status (sd_notify), the watchdog, and a listening socket passed by
 * socket activation.  docs/ARCHITECTURE.md "Running under systemd".
 *
 * Everything here is a no-op outside systemd: sd_notify without
 * NOTIFY_SOCKET does nothing, no watchdog without WATCHDOG_USEC, and no
 * passed socket without LISTEN_FDS.
 *
 *  - READY=1 is sent once RocksDB is open, recovery is done and the socket
 *    accepts (main.c calls maosd_sd_ready after maosd_server_listen), with
 *    a STATUS= line; STATUS= is refreshed every MAOSD_SD_STATUS_MS;
 *    STOPPING=1 at the first signal; RELOADING=1 ... READY=1 around a
 *    reload (SIGHUP, main.c).
 *  - Watchdog: a loop timer at half WATCHDOG_USEC pings WATCHDOG=1, so a
 *    stuck loop stops pinging by itself; and it pings only while the
 *    commit thread is not stuck in a group's write for longer than the
 *    watchdog interval (maosd_commit_write_age_us).  A tick that withholds
 *    the ping says why in STATUS= instead, so an operator (and the test)
 *    sees it; systemd then restarts maosd.
 *  - Loop thread only.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-daemon.h>

#include "commit.h"
#include "sdnotify.h"
#include "server.h"

#define MAOSD_SD_STATUS_MS 5000

int maosd_sd_listen_fd(void)
{
    int n = sd_listen_fds(1); /* unsets LISTEN_* for our children */
    if (n <= 0)
        return -1;
    if (n != 1) {
        maosd_log(MAOSD_LOG_ERROR, "socket activation passed %d sockets; maosd takes one", n);
        return -2;
    }
    int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
        maosd_log(MAOSD_LOG_ERROR,
                  "socket activation passed fd %d, which is not a listening Unix stream "
                  "socket", fd);
        return -2;
    }
    return fd;
}

/* head, connections, durability: one line for `systemctl status` */
static void status_line(maosd_server *srv, char *buf, size_t cap)
{
    snprintf(buf, cap, "head %llu, %u connections, durability %s%s",
             (unsigned long long)atomic_load(&srv->counters.head_position), srv->n_conns,
             srv->cfg->sync ? "sync" : "none",
             maosd_store_state(srv->store) == MAOSD_STORE_OK ? "" : ", READ-ONLY");
}

static void on_status(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    char line[160];
    status_line(srv, line, sizeof line);
    sd_notifyf(0, "STATUS=%s", line);
}

static void on_watchdog(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    uint64_t age = maosd_commit_write_age_us(srv->commit);
    if (age > srv->sd_watchdog_us) {
        /* no ping: systemd restarts maosd once the interval runs out */
        if (!srv->sd_stuck)
            maosd_log(MAOSD_LOG_ERROR,
                      "the commit thread has been in one write for %llu ms (watchdog %llu "
                      "ms): not pinging the watchdog",
                      (unsigned long long)(age / 1000),
                      (unsigned long long)(srv->sd_watchdog_us / 1000));
        srv->sd_stuck = 1;
        sd_notifyf(0, "STATUS=commit thread stuck in a write for %llu ms",
                   (unsigned long long)(age / 1000));
        return;
    }
    if (srv->sd_stuck) {
        srv->sd_stuck = 0;
        maosd_log(MAOSD_LOG_INFO, "the commit thread's write ended: pinging the watchdog again");
        on_status(&srv->sd_status_timer);
    }
    sd_notify(0, "WATCHDOG=1");
}

void maosd_sd_ready(maosd_server *srv)
{
    char line[160];
    status_line(srv, line, sizeof line);
    sd_notifyf(0, "READY=1\nSTATUS=%s", line);
    uv_timer_init(srv->loop, &srv->sd_status_timer);
    srv->sd_status_timer.data = srv;
    uv_timer_start(&srv->sd_status_timer, on_status, MAOSD_SD_STATUS_MS,
                   MAOSD_SD_STATUS_MS);
    uv_unref((uv_handle_t *)&srv->sd_status_timer);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        srv->sd_watchdog_us = usec;
        uint64_t every = usec / 2000 ? usec / 2000 : 1; /* ms, half the interval */
        uv_timer_init(srv->loop, &srv->sd_watchdog_timer);
        srv->sd_watchdog_timer.data = srv;
        uv_timer_start(&srv->sd_watchdog_timer, on_watchdog, every, every);
        uv_unref((uv_handle_t *)&srv->sd_watchdog_timer);
        srv->sd_watchdog_on = 1;
        maosd_log(MAOSD_LOG_INFO, "systemd watchdog: %llu ms, pinged every %llu ms",
                  (unsigned long long)(usec / 1000), (unsigned long long)every);
    }
    srv->sd_on = 1;
}

void maosd_sd_reloading(maosd_server *srv, int begin)
{
    if (begin) {
        sd_notify(0, "RELOADING=1");
        return;
    }
    char line[160];
    status_line(srv, line, sizeof line);
    sd_notifyf(0, "READY=1\nSTATUS=%s", line);
}

void maosd_sd_stopping(maosd_server *srv)
{
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down: finishing queued commits");
    if (!srv->sd_on)
        return;
    srv->sd_on = 0;
    uv_close((uv_handle_t *)&srv->sd_status_timer, NULL);
    if (srv->sd_watchdog_on) {
        srv->sd_watchdog_on = 0;
        uv_close((uv_handle_t *)&srv->sd_watchdog_timer, NULL);
    }
}
