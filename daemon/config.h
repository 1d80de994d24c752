/*
 * daemon/config.h -- maosd's configuration: defaults, the INI file (inih)
 * and flags, in that order of precedence (config.c).
 */
#ifndef MAOSD_CONFIG_H
#define MAOSD_CONFIG_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define MAOSD_ALLOW_MAX 64

typedef struct maosd_config {
    char *config_file;   /* file read, or NULL */
    char *data_dir;
    char *socket_path;
    char *socket_group;  /* NULL: socket 0600; else 0660 owned by that group */
    int sync;            /* durability: 1 sync (default), 0 none */
    uint32_t max_frame;
    uint32_t max_connections;
    uint32_t max_connections_per_uid; /* root and the daemon's uid: exempt */
    uint32_t hello_timeout_ms;        /* a connection without hello is closed */
    size_t max_output;       /* per-connection cap on what it holds, bytes */
    size_t max_total_output; /* the same, all connections together, bytes */
    size_t block_cache_mb;
    uint32_t journal_mb; /* size of a new journal; 0: RocksDB's WAL instead */
    uint32_t max_subscriptions; /* per connection */
    /* who may connect (server.c peer_allowed): root and the daemon's own
     * uid always; then these uids and gids (n 0: nobody more, except the
     * socket group's members when socket_group is set) */
    uid_t allow_uid[MAOSD_ALLOW_MAX];
    gid_t allow_gid[MAOSD_ALLOW_MAX];
    unsigned n_allow_uid, n_allow_gid;
    /* what a connection of another uid may do (access.c): "UID=SCOPE
     * SCOPE...;UID=..." with numeric uids (names resolved at load), or
     * NULL: nothing (root and the daemon's uid: everything) */
    char *uid_scopes;
    size_t min_free;     /* bytes the data directory's file system keeps
                          * free: below it writes get NO_SPACE (commit.c) */
    uint32_t retention_interval_s; /* between retention passes (retention.c) */
    uint32_t chain_interval_s;     /* signed checkpoints (chain.c): at least */
    uint32_t chain_every_events;   /* every so often, and every so many events */
    int log_level;
    int salvage;         /* --salvage: open up to damage (flag only) */
    int read_only;       /* --read-only: inspection, nothing written (flag
                          * only; docs/ARCHITECTURE.md "Read-only mode") */
} maosd_config;

/*
 * Connections kept for root and the daemon's own uid: the last
 * MAOSD_RESERVED_CONNS of max_connections (a quarter of it when that is
 * smaller), so that the operator can always get in.
 */
#define MAOSD_RESERVED_CONNS 16u
uint32_t maosd_config_reserved(const maosd_config *cfg);

/*
 * Fill *cfg from defaults, the config file and argv, in that order of
 * increasing precedence.  Returns 0 to run, 1 when --help/--version was
 * printed (exit 0), or -1 after printing a usage error (exit 2).
 */
int maosd_config_load(maosd_config *cfg, int argc, char **argv);
void maosd_config_free(maosd_config *cfg);
/* uid_scopes (config.c; access.c builds rights with it): the scopes of
 * `uid` in text ("UID=SCOPE SCOPE ...;UID=..."; uid -1: every entry, a
 * check), each given to fn (a nonzero return: that scope is bad).  0, or
 * -1 with err. */
typedef int (*maosd_scope_fn)(void *arg, const char *s, size_t len);
int maosd_uid_scopes_walk(const char *text, long long uid, maosd_scope_fn fn, void *arg,
                          char *err, size_t errlen);
int maosd_uid_scopes_check(const char *text, char *err, size_t errlen);
/* The defaults, then the INI text (a config file's contents; name for
 * messages) as the config file would be read: 0, or -1 with the reason
 * printed on stderr.  Free with maosd_config_free either way (the fuzz
 * target fuzz_config drives it). */
int maosd_config_parse_text(maosd_config *cfg, const char *text, const char *name);
/*
 * SIGHUP: load the configuration again (same argv, the file as it is now)
 * and take what a running maosd can: log_level and the limits
 * (max_connections, max_connections_per_uid, hello_timeout_ms,
 * max_output_mb, max_total_output_mb, max_subscriptions, min_free_mb,
 * retention_interval_s, allow_uids, allow_gids, uid_scopes), each change
 * logged.  Keys that need a restart (data_dir, socket, socket_group,
 * durability, max_frame, block_cache_mb, journal_mb) are named in one log
 * line and left as they were.  A file that no longer loads changes
 * nothing (-1, logged).  Loop thread: the limits are read there.
 */
int maosd_config_reload(maosd_config *cfg, int argc, char **argv);

#endif
