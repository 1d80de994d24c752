/*
 * daemon/config.c -- maosd configuration: embedded defaults, then the INI
 * file (inih), then command-line flags, each overriding the one before.
 *
 * Defaults depend on who runs the daemon: root gets /run/maos/maosd.sock and
 * /var/lib/maos (the systemd unit's layout), anyone else
 * $XDG_RUNTIME_DIR/maos/maosd.sock and ${XDG_DATA_HOME:-~/.local/share}/maos.
 * The config file is --config FILE, else /etc/maos/maosd.conf (root) or
 * ~/.config/maos/maosd.conf, read only if it exists (an explicit --config
 * must exist).
 *
 * Every number is range-checked against what the code can carry, and a bad
 * one stops maosd naming the key and the range: max_output_mb stays under
 * 2 GiB so that a connection's output (the cap plus one reply of at most
 * max_frame) fits the 32-bit lengths of uv_write's buffers, and every MiB
 * setting fits a size_t.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "access.h"
#include "log.h"
#include "maos/proto.h"

#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_CONNECTIONS_PER_UID 1024
#define DEFAULT_HELLO_TIMEOUT_MS 10000
#define DEFAULT_MAX_OUTPUT_MB 64
#define DEFAULT_MAX_TOTAL_OUTPUT_MB 128
#define DEFAULT_BLOCK_CACHE_MB 32
#define DEFAULT_JOURNAL_MB 64
#define JOURNAL_MB_LIMIT 4096u /* MAOSD_JOURNAL_MAX_BYTES */
#define DEFAULT_MAX_SUBSCRIPTIONS 1024
#define DEFAULT_MIN_FREE_MB 64
#define DEFAULT_RETENTION_INTERVAL_S 60
#define DEFAULT_CHAIN_INTERVAL_S 60
#define DEFAULT_CHAIN_EVERY_EVENTS 10000
/* max_output_mb: cap + one reply (<= max_frame, 1 GiB) < 4 GiB */
#define MAX_OUTPUT_MB_LIMIT 2048u
/* any MiB setting: its bytes fit a size_t (and stay below 1 TiB) */
#define MB_LIMIT ((SIZE_MAX >> 20) < (1u << 20) ? (SIZE_MAX >> 20) : (1u << 20))

uint32_t maosd_config_reserved(const maosd_config *cfg)
{
    uint32_t q = cfg->max_connections / 4;
    return q < MAOSD_RESERVED_CONNS ? q : MAOSD_RESERVED_CONNS;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}

static char *path_join(const char *a, const char *b)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", a, b) < 0)
        return NULL;
    return p;
}

static void defaults(maosd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->sync = 1;
    cfg->max_frame = MAOS_DEFAULT_MAX_FRAME;
    cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->max_connections_per_uid = DEFAULT_MAX_CONNECTIONS_PER_UID;
    cfg->hello_timeout_ms = DEFAULT_HELLO_TIMEOUT_MS;
    cfg->max_output = (size_t)DEFAULT_MAX_OUTPUT_MB << 20;
    cfg->max_total_output = (size_t)DEFAULT_MAX_TOTAL_OUTPUT_MB << 20;
    cfg->block_cache_mb = DEFAULT_BLOCK_CACHE_MB;
    cfg->journal_mb = DEFAULT_JOURNAL_MB;
    cfg->max_subscriptions = DEFAULT_MAX_SUBSCRIPTIONS;
    cfg->min_free = (size_t)DEFAULT_MIN_FREE_MB << 20;
    cfg->retention_interval_s = DEFAULT_RETENTION_INTERVAL_S;
    cfg->chain_interval_s = DEFAULT_CHAIN_INTERVAL_S;
    cfg->chain_every_events = DEFAULT_CHAIN_EVERY_EVENTS;
    cfg->log_level = MAOSD_LOG_INFO;
    if (geteuid() == 0) {
        cfg->socket_path = strdup("/run/maos/maosd.sock");
        cfg->data_dir = strdup("/var/lib/maos");
        return;
    }
    const char *home = getenv("HOME") ? getenv("HOME") : "/tmp";
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (rt && *rt) {
        cfg->socket_path = path_join(rt, "maos/maosd.sock");
    } else if (asprintf(&cfg->socket_path, "/tmp/maos-%u/maosd.sock",
                        (unsigned)geteuid()) < 0) {
        cfg->socket_path = NULL;
    }
    const char *xd = getenv("XDG_DATA_HOME");
    if (xd && *xd)
        cfg->data_dir = path_join(xd, "maos");
    else
        cfg->data_dir = path_join(home, ".local/share/maos");
}

static int parse_size(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max || v[0] == '-')
        return -1;
    *out = n;
    return 0;
}

/* ---- uid_scopes ------------------------------------------------------------------ */

/*
 * uid_scopes = "UID=SCOPE SCOPE ...;UID=...": the scopes of a uid's
 * connections.  Parse scopes of `uid` (all when uid is -1: a check) from
 * text.  Each scope found is given to fn.  0, or -1 with err.
 */
int maosd_uid_scopes_walk(const char *text, long long uid, maosd_scope_fn fn, void *arg,
                          char *err, size_t errlen)
{
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        if (n) {
            if (!eq) {
                snprintf(err, errlen, "uid_scopes: '%.*s' is not UID=SCOPE...", (int)n, p);
                return -1;
            }
            char *ue;
            long long u = strtoll(p, &ue, 10);
            if (ue != eq || u < 0 || u >= (long long)UINT32_MAX) {
                snprintf(err, errlen, "uid_scopes: '%.*s' is not a numeric uid", (int)(eq - p),
                         p);
                return -1;
            }
            if (uid < 0 || u == uid) {
                const char *s = eq + 1, *e = p + n;
                while (s < e) {
                    while (s < e && (*s == ' ' || *s == '\t'))
                        s++;
                    const char *w = s;
                    while (w < e && *w != ' ' && *w != '\t')
                        w++;
                    if (w > s && fn(arg, s, (size_t)(w - s))) {
                        snprintf(err, errlen, "uid_scopes: bad scope '%.*s' for uid %lld",
                                 (int)(w - s), s, u);
                        return -1;
                    }
                    s = w;
                }
            }
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return 0;
}

static int check_one(void *arg, const char *s, size_t len)
{
    maos_scope sc;
    (void)arg;
    return maos_scope_parse(s, len, &sc, NULL, 0);
}

int maosd_uid_scopes_check(const char *text, char *err, size_t errlen)
{
    return maosd_uid_scopes_walk(text, -1, check_one, NULL, err, errlen);
}

/* The numeric settings: name, range, and where the value goes. */
enum { NUM_U32, NUM_MB };
typedef struct num_key {
    const char *name;
    uint64_t min, max;
    int kind;           /* NUM_U32: uint32_t; NUM_MB: size_t bytes = n MiB */
    size_t off;         /* in maosd_config */
} num_key;

#define NUM_(name, min, max, kind, field) {name, min, max, kind, offsetof(maosd_config, field)}
static const num_key num_keys[] = {
    NUM_("max_frame", 1024, 1u << 30, NUM_U32, max_frame),
    NUM_("max_connections", 1, 1000000, NUM_U32, max_connections),
    NUM_("max_connections_per_uid", 1, 1000000, NUM_U32, max_connections_per_uid),
    NUM_("hello_timeout_ms", 10, 3600000, NUM_U32, hello_timeout_ms),
    NUM_("max_output_mb", 1, MAX_OUTPUT_MB_LIMIT, NUM_MB, max_output),
    NUM_("max_total_output_mb", 1, MB_LIMIT, NUM_MB, max_total_output),
    NUM_("max_subscriptions", 1, 1000000, NUM_U32, max_subscriptions),
    NUM_("min_free_mb", 0, MB_LIMIT, NUM_MB, min_free),
    NUM_("retention_interval_s", 1, 86400, NUM_U32, retention_interval_s),
    NUM_("chain_interval_s", 0, 86400, NUM_U32, chain_interval_s),
    NUM_("chain_every_events", 0, 100000000, NUM_U32, chain_every_events),
};
#undef NUM_

/* allow_uids / allow_gids: names or numbers, separated by commas or
 * spaces; the list replaces the one before.  0, or -1 with err. */
static int parse_ids(maosd_config *cfg, int uids, const char *val, char *err, size_t errlen)
{
    unsigned n = 0;
    char *copy = strdup(val), *save = NULL;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (n == MAOSD_ALLOW_MAX) {
            snprintf(err, errlen, "more than %d entries", MAOSD_ALLOW_MAX);
            free(copy);
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(t, &end, 10);
        int numeric = *t >= '0' && *t <= '9' && !*end && !errno && v < (unsigned long)UINT32_MAX;
        if (uids) {
            struct passwd *pw = numeric ? NULL : getpwnam(t);
            if (!numeric && !pw) {
                snprintf(err, errlen, "unknown user '%s'", t);
                free(copy);
                return -1;
            }
            cfg->allow_uid[n++] = numeric ? (uid_t)v : pw->pw_uid;
        } else {
            struct group *gr = numeric ? NULL : getgrnam(t);
            if (!numeric && !gr) {
                snprintf(err, errlen, "unknown group '%s'", t);
                free(copy);
                return -1;
            }
            cfg->allow_gid[n++] = numeric ? (gid_t)v : gr->gr_gid;
        }
    }
    free(copy);
    if (uids)
        cfg->n_allow_uid = n;
    else
        cfg->n_allow_gid = n;
    return 0;
}

/* uid_scopes: "WHO=SCOPE SCOPE...;WHO=..." with WHO a user name or a
 * number; stored with numbers (access.c reads it at every hello, with no
 * user database lookup).  0, or -1 with err. */
static int parse_uid_scopes(maosd_config *cfg, const char *val, char *err, size_t errlen)
{
    size_t cap = strlen(val) * 2 + 64, len = 0;
    char *out = malloc(cap), *copy = strdup(val), *save = NULL;
    if (!out || !copy) {
        free(out);
        free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    out[0] = 0;
    for (char *t = strtok_r(copy, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        if (!*t)
            continue;
        char *eq = strchr(t, '=');
        if (!eq) {
            snprintf(err, errlen, "uid_scopes: '%s' is not USER=SCOPE SCOPE...", t);
            goto fail;
        }
        *eq = 0;
        char *end;
        errno = 0;
        unsigned long v = strtoul(t, &end, 10);
        int numeric = *t >= '0' && *t <= '9' && !*end && !errno && v < (unsigned long)UINT32_MAX;
        struct passwd *pw = numeric ? NULL : getpwnam(t);
        if (!numeric && !pw) {
            snprintf(err, errlen, "uid_scopes: unknown user '%s'", t);
            goto fail;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%lu=%s", len ? ";" : "",
                                numeric ? v : (unsigned long)pw->pw_uid, eq + 1);
    }
    free(copy);
    if (maosd_uid_scopes_check(out, err, errlen)) {
        free(out);
        return -1;
    }
    free(cfg->uid_scopes);
    cfg->uid_scopes = len ? out : NULL;
    if (!len)
        free(out);
    return 0;
fail:
    free(copy);
    free(out);
    return -1;
}

/* One setting by name, shared by the INI file and the flags.
 * Returns 0, or -1 with a message in err. */
static int apply(maosd_config *cfg, const char *key, const char *val, char *err,
                 size_t errlen)
{
    uint64_t n;
    for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
        const num_key *k = &num_keys[i];
        if (strcmp(key, k->name))
            continue;
        if (parse_size(val, k->min, k->max, &n)) {
            snprintf(err, errlen, "invalid value '%s' for %s: want an integer %llu..%llu%s",
                     val, key, (unsigned long long)k->min, (unsigned long long)k->max,
                     !strcmp(key, "max_output_mb")
                         ? " (a connection's output must fit uv_write's 32-bit lengths)"
                         : "");
            return -1;
        }
        char *f = (char *)cfg + k->off;
        if (k->kind == NUM_U32)
            *(uint32_t *)(void *)f = (uint32_t)n;
        else
            *(size_t *)(void *)f = (size_t)n << 20;
        return 0;
    }
    if (!strcmp(key, "data_dir")) {
        set_str(&cfg->data_dir, val);
    } else if (!strcmp(key, "socket")) {
        set_str(&cfg->socket_path, val);
    } else if (!strcmp(key, "socket_group")) {
        set_str(&cfg->socket_group, *val ? val : NULL);
    } else if (!strcmp(key, "allow_uids") || !strcmp(key, "allow_gids")) {
        return parse_ids(cfg, key[6] == 'u', val, err, errlen);
    } else if (!strcmp(key, "uid_scopes")) {
        return parse_uid_scopes(cfg, val, err, errlen);
    } else if (!strcmp(key, "durability")) {
        if (!strcmp(val, "sync"))
            cfg->sync = 1;
        else if (!strcmp(val, "none"))
            cfg->sync = 0;
        else
            goto bad;
    } else if (!strcmp(key, "block_cache_mb")) {
        if (parse_size(val, 1, MB_LIMIT, &n)) {
            snprintf(err, errlen, "invalid value '%s' for %s: want an integer 1..%llu", val,
                     key, (unsigned long long)MB_LIMIT);
            return -1;
        }
        cfg->block_cache_mb = (size_t)n;
    } else if (!strcmp(key, "journal_mb")) {
        if (parse_size(val, 0, JOURNAL_MB_LIMIT, &n)) {
            snprintf(err, errlen, "invalid value '%s' for %s: want 0 (off) or an integer "
                     "1..%llu", val, key, (unsigned long long)JOURNAL_MB_LIMIT);
            return -1;
        }
        cfg->journal_mb = (uint32_t)n;
    } else if (!strcmp(key, "log_level")) {
        int l = maosd_log_parse_level(val);
        if (l < 0)
            goto bad;
        cfg->log_level = l;
    } else {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen, "invalid value '%s' for %s", val, key);
    return -1;
}

typedef struct ini_ctx {
    maosd_config *cfg;
    const char *file;
    int failed;
} ini_ctx;

static int ini_cb(void *user, const char *section, const char *name,
                  const char *value)
{
    ini_ctx *ic = user;
    char err[256];
    if (strcmp(section, "maosd") != 0) {
        fprintf(stderr, "maosd: %s: unknown section [%s]\n", ic->file, section);
        ic->failed = 1;
        return 0;
    }
    if (apply(ic->cfg, name, value, err, sizeof(err))) {
        fprintf(stderr, "maosd: %s: %s\n", ic->file, err);
        ic->failed = 1;
        return 0;
    }
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: maosd [OPTIONS]\n"
"The maos coordination store daemon: an event store served over a Unix socket.\n"
"\n"
"Options (override the config file, which overrides the defaults):\n"
"  --config FILE          INI config file (default /etc/maos/maosd.conf as root,\n"
"                         else ~/.config/maos/maosd.conf; read if present)\n"
"  --data-dir DIR         database directory (root: /var/lib/maos;\n"
"                         else ${XDG_DATA_HOME:-~/.local/share}/maos)\n"
"  --socket PATH          Unix socket (root: /run/maos/maosd.sock;\n"
"                         else $XDG_RUNTIME_DIR/maos/maosd.sock)\n"
"  --socket-group GROUP   make the socket 0660 and owned by GROUP (default 0600)\n"
"  --durability MODE      sync (default): fsync every commit group; none: no fsync\n"
"  --max-frame BYTES      largest request frame accepted (default 16777216)\n"
"  --max-connections N    concurrent connections (default 4096; the last 16 are\n"
"                         kept for root and the daemon's own user)\n"
"  --max-connections-per-uid N\n"
"                         connections one uid may hold (default 1024; root and\n"
"                         the daemon's own user are exempt)\n"
"  --hello-timeout-ms MS  close a connection that sent no hello by then\n"
"                         (default 10000)\n"
"  --max-output-mb N      per-connection cap on unsent output and queued writes\n"
"                         (default 64, at most 2048)\n"
"  --max-total-output-mb N\n"
"                         the same for all connections together (default 128)\n"
"  --block-cache-mb N     RocksDB block cache (default 32)\n"
"  --journal-mb N         size of the journal file made for a store (default 64;\n"
"                         a store keeps the size it was made with); 0: no\n"
"                         journal, RocksDB's own WAL carries durability\n"
"  --max-subscriptions N  subscriptions per connection (default 1024)\n"
"  --allow-uids LIST      users who may connect besides root and the daemon's\n"
"                         own (names or numbers, comma-separated); others are\n"
"                         refused at accept with FORBIDDEN\n"
"  --allow-gids LIST      groups whose members may connect (also the socket\n"
"                         group, when --socket-group is set)\n"
"  --uid-scopes SPEC      what connections of other allowed users may do without\n"
"                         a token, and at most with one: USER=SCOPE SCOPE...,\n"
"                         entries separated by ';' (default: nothing; root and\n"
"                         the daemon's own user may do everything)\n"
"  --min-free-mb N        free space the data directory's file system keeps\n"
"                         (default 64): below it writes get NO_SPACE, reads go\n"
"                         on, and writes resume by themselves once space is\n"
"                         freed; 0: no reserve\n"
"  --retention-interval-s N  seconds between retention passes (default 60)\n"
"  --chain-every-events N a signed checkpoint of the log head in $chain every N\n"
"                         events (default 10000; 0: not by count)\n"
"  --chain-interval-s N   and every N seconds while written (default 60; 0: not\n"
"                         by time; both 0: no checkpoints)\n"
"  --log-level LEVEL      error, warn, info (default) or debug\n"
"  --salvage              open a damaged store up to the damage instead of\n"
"                         refusing; what was dropped is logged and recorded as\n"
"                         an event in stream $system (a one-time operator act)\n"
"  --read-only            open an existing store for reading only: nothing in the\n"
"                         data directory is written, every write is refused\n"
"                         (READ_ONLY); works beside a running maosd, and on a\n"
"                         store that will not start (maosctl inspect uses it)\n"
"  -h, --help             show this help\n"
"  -V, --version          show the version\n"
"\n"
"Config file keys, in a [maosd] section: data_dir, socket, socket_group,\n"
"durability, max_frame, max_connections, max_connections_per_uid,\n"
"hello_timeout_ms, max_output_mb, max_total_output_mb, block_cache_mb,\n"
"journal_mb, max_subscriptions, min_free_mb, retention_interval_s,\n"
"chain_interval_s, chain_every_events, allow_uids, allow_gids, uid_scopes,\n"
"log_level.\n"
"\n"
"Exit status: 0 stopped cleanly; 1 could not start or run; 2 usage or config\n"
"error; 3 the data directory is damaged, foreign, or lost acknowledged writes\n"
"(refused and left unchanged; see --salvage).\n");
}

int maosd_config_load(maosd_config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"data-dir", required_argument, 0, 'd'},
        {"socket", required_argument, 0, 's'},
        {"socket-group", required_argument, 0, 'g'},
        {"durability", required_argument, 0, 'D'},
        {"max-frame", required_argument, 0, 'f'},
        {"max-connections", required_argument, 0, 'm'},
        {"max-output-mb", required_argument, 0, 'o'},
        {"max-total-output-mb", required_argument, 0, 'O'},
        {"max-connections-per-uid", required_argument, 0, 'u'},
        {"hello-timeout-ms", required_argument, 0, 'H'},
        {"block-cache-mb", required_argument, 0, 'b'},
        {"journal-mb", required_argument, 0, 'J'},
        {"max-subscriptions", required_argument, 0, 'S'},
        {"min-free-mb", required_argument, 0, 'F'},
        {"retention-interval-s", required_argument, 0, 'r'},
        {"chain-every-events", required_argument, 0, 'E'},
        {"chain-interval-s", required_argument, 0, 'I'},
        {"allow-uids", required_argument, 0, 'U'},
        {"allow-gids", required_argument, 0, 'G'},
        {"uid-scopes", required_argument, 0, 'A'},
        {"log-level", required_argument, 0, 'l'},
        {"salvage", no_argument, 0, 'X'},
        {"read-only", no_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    static const char *const keys[128] = {
        ['d'] = "data_dir", ['s'] = "socket", ['g'] = "socket_group",
        ['D'] = "durability", ['f'] = "max_frame", ['m'] = "max_connections",
        ['o'] = "max_output_mb", ['b'] = "block_cache_mb", ['J'] = "journal_mb", ['l'] = "log_level",
        ['S'] = "max_subscriptions", ['O'] = "max_total_output_mb",
        ['u'] = "max_connections_per_uid", ['H'] = "hello_timeout_ms",
        ['F'] = "min_free_mb", ['U'] = "allow_uids", ['G'] = "allow_gids",
        ['r'] = "retention_interval_s", ['E'] = "chain_every_events",
        ['I'] = "chain_interval_s",
        ['A'] = "uid_scopes",
    };
    defaults(cfg);

    /* First pass: find --config, --help, --version; validate flags. */
    const char *cfile = NULL;
    int c, explicit_cfg = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfile = optarg; explicit_cfg = 1; break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("maosd %s (protocol %d)\n", MAOS_VERSION, MAOS_PROTOCOL_VERSION); return 1;
        case '?':
            fprintf(stderr, "maosd: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        default: break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maosd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }

    char *deflt = NULL;
    if (!cfile) {
        if (geteuid() == 0) {
            deflt = strdup("/etc/maos/maosd.conf");
        } else {
            const char *xc = getenv("XDG_CONFIG_HOME");
            if (xc && *xc)
                deflt = path_join(xc, "maos/maosd.conf");
            else if (getenv("HOME"))
                deflt = path_join(getenv("HOME"), ".config/maos/maosd.conf");
        }
        cfile = deflt;
    }
    if (cfile && (explicit_cfg || access(cfile, F_OK) == 0)) {
        ini_ctx ic = {cfg, cfile, 0};
        int rc = ini_parse(cfile, ini_cb, &ic);
        if (rc < 0) {
            fprintf(stderr, "maosd: cannot read config file %s: %s\n", cfile, strerror(errno));
            free(deflt);
            return -1;
        }
        if (rc > 0 && !ic.failed)
            fprintf(stderr, "maosd: %s:%d: syntax error\n", cfile, rc);
        if (rc > 0 || ic.failed) {
            free(deflt);
            return -1;
        }
        set_str(&cfg->config_file, cfile);
    }
    free(deflt);

    /* Second pass: flags override the file. */
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        char err[256];
        if (c == 'X')
            cfg->salvage = 1;
        if (c == 'R')
            cfg->read_only = 1;
        if (c > 0 && c < 128 && keys[c] && apply(cfg, keys[c], optarg, err, sizeof(err))) {
            const char *flag = keys[c];
            for (const struct option *o = opts; o->name; o++)
                if (o->val == c)
                    flag = o->name;
            fprintf(stderr, "maosd: --%s: %s\n", flag, err);
            return -1;
        }
    }
    if (cfg->read_only && cfg->salvage) {
        fprintf(stderr, "maosd: --read-only and --salvage exclude each other (a salvage "
                "writes)\n");
        return -1;
    }
    if (!cfg->data_dir || !cfg->socket_path) {
        fprintf(stderr, "maosd: cannot determine data dir or socket path\n");
        return -1;
    }
    return 0;
}

int maosd_config_parse_text(maosd_config *cfg, const char *text, const char *name)
{
    defaults(cfg);
    ini_ctx ic = {cfg, name, 0};
    int rc = ini_parse_string(text, ini_cb, &ic);
    if (rc > 0 && !ic.failed)
        fprintf(stderr, "maosd: %s:%d: syntax error\n", name, rc);
    return rc == 0 && !ic.failed ? 0 : -1;
}

void maosd_config_free(maosd_config *cfg)
{
    free(cfg->config_file);
    free(cfg->data_dir);
    free(cfg->socket_path);
    free(cfg->socket_group);
    free(cfg->uid_scopes);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- reload (SIGHUP) ------------------------------------------------------ */

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

int maosd_config_reload(maosd_config *cfg, int argc, char **argv)
{
    maosd_config n;
    if (maosd_config_load(&n, argc, argv) != 0) {
        maosd_config_free(&n);
        maosd_log(MAOSD_LOG_ERROR, "reload: the configuration does not load (see the line "
                  "above); nothing changed");
        return -1;
    }
    /* keys a running maosd takes at once */
#define LIVE(field, key)                                                       \
    if (n.field != cfg->field) {                                               \
        maosd_log(MAOSD_LOG_INFO, "reload: %s %llu -> %llu", key,             \
                  (unsigned long long)cfg->field, (unsigned long long)n.field); \
        cfg->field = n.field;                                                  \
    }
    LIVE(max_connections, "max_connections")
    LIVE(max_connections_per_uid, "max_connections_per_uid")
    LIVE(hello_timeout_ms, "hello_timeout_ms")
    LIVE(max_output, "max_output (bytes)")
    LIVE(max_total_output, "max_total_output (bytes)")
    LIVE(max_subscriptions, "max_subscriptions")
    LIVE(min_free, "min_free (bytes)")
    LIVE(retention_interval_s, "retention_interval_s")
    LIVE(chain_every_events, "chain_every_events")
#undef LIVE
    if (n.n_allow_uid != cfg->n_allow_uid || n.n_allow_gid != cfg->n_allow_gid ||
        memcmp(n.allow_uid, cfg->allow_uid, n.n_allow_uid * sizeof(uid_t)) ||
        memcmp(n.allow_gid, cfg->allow_gid, n.n_allow_gid * sizeof(gid_t))) {
        maosd_log(MAOSD_LOG_INFO, "reload: allow_uids (%u) and allow_gids (%u) changed: "
                  "new connections are checked against them", n.n_allow_uid, n.n_allow_gid);
        memcpy(cfg->allow_uid, n.allow_uid, sizeof(n.allow_uid));
        memcpy(cfg->allow_gid, n.allow_gid, sizeof(n.allow_gid));
        cfg->n_allow_uid = n.n_allow_uid;
        cfg->n_allow_gid = n.n_allow_gid;
    }
    if (str_differs(n.uid_scopes, cfg->uid_scopes)) {
        maosd_log(MAOSD_LOG_INFO, "reload: uid_scopes changed: new connections get them");
        char *t = cfg->uid_scopes;
        cfg->uid_scopes = n.uid_scopes;
        n.uid_scopes = t;
    }
    if (n.log_level != cfg->log_level) {
        maosd_log(MAOSD_LOG_INFO, "reload: log_level %s -> %s",
                  maosd_log_level_name(cfg->log_level), maosd_log_level_name(n.log_level));
        cfg->log_level = n.log_level;
        maosd_log_level = n.log_level;
    }
    /* keys that need a restart: named, left as they are */
    char later[256] = "";
    size_t at = 0;
#define LATER(cond, key)                                                       \
    if ((cond) && at < sizeof(later))                                          \
        at += (size_t)snprintf(later + at, sizeof(later) - at, "%s%s", at ? ", " : "", key);
    LATER(str_differs(n.data_dir, cfg->data_dir), "data_dir")
    LATER(str_differs(n.socket_path, cfg->socket_path), "socket")
    LATER(str_differs(n.socket_group, cfg->socket_group), "socket_group")
    LATER(n.sync != cfg->sync, "durability")
    LATER(n.max_frame != cfg->max_frame, "max_frame")
    LATER(n.block_cache_mb != cfg->block_cache_mb, "block_cache_mb")
    LATER(n.journal_mb != cfg->journal_mb, "journal_mb")
    LATER(n.chain_interval_s != cfg->chain_interval_s, "chain_interval_s")
#undef LATER
    if (at)
        maosd_log(MAOSD_LOG_WARN, "reload: changed but only taken at a restart, kept as "
                  "they were: %s", later);
    maosd_config_free(&n);
    return 0;
}
