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
 *
 * Under systemd (sdnotify.c): a socket passed by socket activation is
 * taken instead of binding one; READY=1 once the socket accepts, STOPPING=1
 * at the first signal, watchdog pings from the loop.  SIGHUP reloads the
 * configuration (config.c, maosd_config_reload) between RELOADING=1 and
 * READY=1.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "dispatch.h"
#include "queues.h"
#include "recover.h"
#include "access.h"
#include "chain.h"
#include "retention.h"
#include "sdnotify.h"

/* argv as given: a reload parses it again with the file */
static int g_argc;
static char **g_argv;

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

static void on_hup(uv_signal_t *h, int signum)
{
    maosd_server *srv = h->data;
    (void)signum;
    if (srv->stopping)
        return;
    maosd_log(MAOSD_LOG_INFO, "SIGHUP: reloading the configuration");
    maosd_sd_reloading(srv, 1);
    const maosd_config *cfg = srv->cfg;
    char *scopes0 = cfg->uid_scopes ? strdup(cfg->uid_scopes) : NULL;
    unsigned nu0 = cfg->n_allow_uid, ng0 = cfg->n_allow_gid;
    uid_t u0[MAOSD_ALLOW_MAX];
    gid_t g0[MAOSD_ALLOW_MAX];
    memcpy(u0, cfg->allow_uid, sizeof u0);
    memcpy(g0, cfg->allow_gid, sizeof g0);
    maosd_config_reload(srv->cfg, g_argc, g_argv);
    atomic_store(&srv->min_free_bytes, srv->cfg->min_free);
    int changed = (scopes0 == NULL) != (cfg->uid_scopes == NULL) ||
                  (scopes0 && strcmp(scopes0, cfg->uid_scopes)) || nu0 != cfg->n_allow_uid ||
                  ng0 != cfg->n_allow_gid || memcmp(u0, cfg->allow_uid, sizeof u0) ||
                  memcmp(g0, cfg->allow_gid, sizeof g0);
    free(scopes0);
    if (changed) /* live connections of limited uids reconnect with the new rights */
        maosd_access_reloaded(srv);
    maosd_sd_reloading(srv, 0);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* One line for each thing recovery did that an operator should know. */
static void log_recovery(const maosd_config *cfg, const maosd_recovery *r)
{
    if (r->created)
        maosd_log(MAOSD_LOG_INFO, "created a new store %s in %s", r->store_id,
                  cfg->data_dir);
    if (r->adopted)
        maosd_log(MAOSD_LOG_WARN, "adopted store %s in %s (it had no %s file: made "
                  "by an older maosd, or its creation was cut short)", r->store_id,
                  cfg->data_dir, MAOSD_IDENTITY_FILE);
    if (r->torn_tail)
        maosd_log(MAOSD_LOG_WARN, "recovered from a torn write (a crash mid-write): "
                  "%s; nothing acknowledged was lost (acknowledged head %llu, log head "
                  "%llu)", r->wal, (unsigned long long)r->acked_before,
                  (unsigned long long)r->head.position);
    if (r->unsynced_loss)
        maosd_log(MAOSD_LOG_ERROR, "durability was none: acknowledged events %llu..%llu "
                  "were lost (an OS crash?); recording it in stream $system",
                  (unsigned long long)r->head.position + 1,
                  (unsigned long long)r->acked_before);
    if (r->salvaged)
        maosd_log(MAOSD_LOG_ERROR, "SALVAGE: opened up to the damage: log head %llu, "
                  "acknowledged head was %llu%s%s; recording it in stream $system",
                  (unsigned long long)r->head.position,
                  (unsigned long long)r->acked_before, r->wal[0] ? "; WAL: " : "",
                  r->wal);
    else if (cfg->salvage)
        maosd_log(MAOSD_LOG_WARN, "--salvage: nothing to salvage, the store is intact");
}

int main(int argc, char **argv)
{
    maosd_config cfg;
    int rc = maosd_config_load(&cfg, argc, argv);
    if (rc) {
        maosd_config_free(&cfg);
        return rc > 0 ? MAOSD_EXIT_OK : MAOSD_EXIT_USAGE;
    }
    g_argc = argc;
    g_argv = argv;
    maosd_log_init();
    maosd_log_level = cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    /* The allocator keeps freed memory for the next request instead of
     * giving the top of the heap back on every free (and faulting it in
     * again: ~20% of the loop's CPU on batches of 1,000 appends) and
     * instead of mapping every block over 128 KiB afresh.  After a burst,
     * server.c's malloc_trim gives back the main arena's top and every
     * arena's free chunks, but not the top of the other threads' arenas:
     * those give back only what is over M_TRIM_THRESHOLD, at a large free.
     * So the threshold is 8 MiB (the most a thread keeps, not 64), and the
     * arenas are 3 (the loop's, and two the commit thread, the readers and
     * RocksDB's threads share; glibc's default is 8 a core).  200 catch-up
     * subscribers that never read, closed: RSS after 78-88 MiB -> 25-29
     * MiB, peak 94-99 -> ~70 MiB; no change seen in the pipelined append
     * rows (docs/ARCHITECTURE.md "Memory"). */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    mallopt(M_ARENA_MAX, 3);
    if (sodium_init() < 0) {
        maosd_log(MAOSD_LOG_ERROR, "libsodium failed to initialise");
        return MAOSD_EXIT_FAILURE;
    }

    maosd_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = &cfg;
    srv.lock_fd = -1;
    srv.listen_fd = maosd_sd_listen_fd(); /* before anything forks or execs */
    if (srv.listen_fd == -2) {
        maosd_config_free(&cfg);
        return MAOSD_EXIT_FAILURE;
    }
    srv.loop = uv_default_loop();
    /* the loop's lag in stats needs the time it spends blocked in polls */
    uv_loop_configure(srv.loop, UV_METRICS_IDLE_TIME);
    srv.start_us = (uint64_t)maosd_now_us();
    atomic_store(&srv.min_free_bytes, cfg.read_only ? 0 : cfg.min_free);
    srv.lim.max_frame = cfg.max_frame;
    maos_limits_defaults(&srv.lim);

    maosd_recover_opts ro = {
        .dir = cfg.data_dir,
        .sync = cfg.sync,
        .block_cache_bytes = cfg.block_cache_mb << 20,
        .journal_bytes = (uint64_t)cfg.journal_mb << 20,
        .salvage = cfg.salvage,
        .read_only = cfg.read_only,
    };
    maosd_recovery rec;
    rc = maosd_recover(&ro, &srv.store, &srv.headfile, &rec);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "%s", rec.err);
        maosd_config_free(&cfg);
        return rec.exit_code;
    }
    log_recovery(&cfg, &rec);
    if (cfg.read_only)
        maosd_log(MAOSD_LOG_WARN, "read-only: %s opened for reading only, writes are "
                  "refused%s%s", cfg.data_dir, rec.notes[0] ? "; " : "", rec.notes);
    else
        maosd_backup_clean(cfg.data_dir);
    /* the signing key (chain.c) is read before any thread that signs runs */
    rc = maosd_chain_load(&srv) ? MAOS_EIO : 0;
    if (!rc)
        rc = maosd_commit_start(&srv, &rec.head, rec.last_time, &srv.commit);
    if (!rc) /* effects of committed groups: the listeners, in order */
        rc = maosd_commit_listen(srv.commit, maosd_sub_fanout, NULL);
    if (!rc)
        rc = maosd_tables_init(&srv);
    if (!rc)
        rc = maosd_queues_init(&srv);
    if (!rc)
        rc = maosd_retention_init(&srv);
    if (!rc)
        rc = maosd_chain_init(&srv);
    if (!rc)
        rc = maosd_tokens_load(&srv);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR, "cannot start the commit thread: %s", maos_strerror(rc));
        maosd_queues_close(&srv);
        maosd_retention_close(&srv);
        maosd_chain_close(&srv);
        maosd_chain_free();
        uv_run(srv.loop, UV_RUN_NOWAIT); /* the commit object's close callback */
        maosd_recovery_free(&rec);
        maosd_headfile_close(srv.headfile);
        maosd_store_close(srv.store);
        maosd_config_free(&cfg);
        return MAOSD_EXIT_FAILURE;
    }
    /* The record of a salvage or loss is committed before anyone is
     * served: the first thing a client can read after it is the record. */
    if (rec.system_data && !cfg.read_only)
        maosd_append_internal(&srv, "$system", rec.system_type, rec.system_data,
                              rec.system_len);
    /* Entries bound to connections of the last run are released before
     * anyone is served (agents offline, locks free), as events. */
    if (!cfg.read_only)
        maosd_tables_release_all(&srv);
    /* Claims bound to them go back to their queues the same way; timers
     * that fell due while maosd was down fire now. */
    if (!cfg.read_only)
        maosd_queues_start(&srv);
    while (maosd_commit_in_flight(srv.commit))
        uv_run(srv.loop, UV_RUN_ONCE);
    maosd_recovery_free(&rec);
    srv.delivered_head = maosd_commit_head(srv.commit);
    maosd_subs_init(&srv);
    /* The handlers are in place before the socket accepts: a client may
     * send SIGTERM the moment it can connect (their callbacks run only
     * inside uv_run). */
    uv_signal_init(srv.loop, &srv.sig_term);
    uv_signal_init(srv.loop, &srv.sig_int);
    uv_signal_init(srv.loop, &srv.sig_hup);
    srv.sig_term.data = srv.sig_int.data = srv.sig_hup.data = &srv;
    uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv.sig_int, on_signal, SIGINT);
    uv_signal_start(&srv.sig_hup, on_hup, SIGHUP);
    uv_unref((uv_handle_t *)&srv.sig_hup); /* never what keeps the loop running */
    if (maosd_server_listen(&srv)) {
        uv_close((uv_handle_t *)&srv.sig_term, NULL);
        uv_close((uv_handle_t *)&srv.sig_int, NULL);
        uv_close((uv_handle_t *)&srv.sig_hup, NULL);
        maosd_subs_close(&srv);
        maosd_queues_close(&srv);
        maosd_retention_close(&srv);
        maosd_chain_close(&srv);
        maosd_queues_free(&srv);
        maosd_commit_stop(srv.commit);
        uv_run(srv.loop, UV_RUN_DEFAULT);
        maosd_headfile_close(srv.headfile);
        maosd_store_close(srv.store);
        maosd_config_free(&cfg);
        return MAOSD_EXIT_FAILURE;
    }
    maosd_lag_start(&srv);

    maosd_log(MAOSD_LOG_INFO,
              "maosd %s ready: socket %s, data %s, durability %s, head position %llu",
              MAOS_VERSION, cfg.socket_path, cfg.data_dir, cfg.sync ? "sync" : "none",
              (unsigned long long)atomic_load(&srv.counters.head_position));
    maosd_sd_ready(&srv);
    /* Retention's first pass and the signed checkpoints start once maosd
     * serves: a backlog of removals runs in bounded passes beside the
     * clients, never before readiness. */
    if (!cfg.read_only) {
        maosd_retention_start(&srv);
        maosd_chain_start(&srv);
    }

    uv_run(srv.loop, UV_RUN_DEFAULT);

    uv_loop_close(srv.loop);
    maosd_chain_free();
    maosd_tokens_free();
    if (maosd_headfile_close(srv.headfile))
        maosd_log(MAOSD_LOG_ERROR, "cannot sync %s at shutdown", MAOSD_HEAD_FILE);
    maosd_store_close(srv.store);
    maosd_log(MAOSD_LOG_INFO, "stopped cleanly");
    maosd_config_free(&cfg);
    return 0;
}
