/*
 * daemon/main.c -- maosd: configuration, start-up and shutdown order.
 *
 * Start-up: config -> open the store (RocksDB's LOCK makes one daemon per
 * data directory) -> commit thread (reads the log head, no scan) -> socket
 * (a live socket means another daemon: refuse; a stale one is replaced) ->
 * loop.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting and unlink the socket, let the
 * commit thread finish and answer every queued write, close connections
 * after their replies are flushed, stop the commit thread, close RocksDB.
 * A second signal exits at once; acknowledged writes are already durable.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "maosd.h"

static void on_signal(uv_signal_t *h, int signum)
{
    maosd_server *srv = h->data;
    if (srv->stopping) {
        maosd_log(MAOSD_LOG_WARN, "second signal (%s): exiting now", strsignal(signum));
        _exit(128 + signum);
    }
    maosd_log(MAOSD_LOG_INFO, "%s: shutting down (finishing queued commits)",
              strsignal(signum));
    maosd_server_stop(srv);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    maosd_config cfg;
    int rc = maosd_config_load(&cfg, argc, argv);
    if (rc) {
        maosd_config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    maosd_log_level = cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (sodium_init() < 0) {
        maosd_log(MAOSD_LOG_ERROR, "libsodium failed to initialise");
        return 1;
    }

    maosd_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = &cfg;
    srv.lock_fd = -1;
    srv.loop = uv_default_loop();
    srv.start_us = (uint64_t)maosd_now_us();
    srv.lim.max_frame = cfg.max_frame;
    maos_limits_defaults(&srv.lim);

    char err[512];
    maosd_store_opts so = {
        .dir = cfg.data_dir,
        .sync = cfg.sync,
        .block_cache_bytes = cfg.block_cache_mb << 20,
    };
    rc = maosd_store_open(&so, &srv.store, err, sizeof(err));
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "%s", err);
        maosd_config_free(&cfg);
        return 1;
    }
    rc = maosd_commit_start(&srv, maosd_append_done, &srv.commit);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot start the commit thread: %s", maos_strerror(rc));
        maosd_store_close(srv.store);
        maosd_config_free(&cfg);
        return 1;
    }
    srv.delivered_head = maosd_commit_head(srv.commit);
    maosd_subs_init(&srv);
    if (maosd_server_listen(&srv)) {
        maosd_subs_close(&srv);
        maosd_commit_stop(srv.commit);
        uv_run(srv.loop, UV_RUN_DEFAULT);
        maosd_store_close(srv.store);
        maosd_config_free(&cfg);
        return 1;
    }
    uv_signal_init(srv.loop, &srv.sig_term);
    uv_signal_init(srv.loop, &srv.sig_int);
    srv.sig_term.data = srv.sig_int.data = &srv;
    uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv.sig_int, on_signal, SIGINT);

    maosd_log(MAOSD_LOG_INFO,
              "maosd %s ready: socket %s, data %s, durability %s, head position %llu",
              MAOS_VERSION, cfg.socket_path, cfg.data_dir, cfg.sync ? "sync" : "none",
              (unsigned long long)atomic_load(&srv.counters.head_position));

    uv_run(srv.loop, UV_RUN_DEFAULT);

    uv_loop_close(srv.loop);
    maosd_store_close(srv.store);
    maosd_log(MAOSD_LOG_INFO, "stopped cleanly");
    maosd_config_free(&cfg);
    return 0;
}
