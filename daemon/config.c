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
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "maosd.h"

#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_OUTPUT_MB 64
#define DEFAULT_BLOCK_CACHE_MB 32
#define DEFAULT_MAX_SUBSCRIPTIONS 1024

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
    cfg->max_output = (size_t)DEFAULT_MAX_OUTPUT_MB << 20;
    cfg->block_cache_mb = DEFAULT_BLOCK_CACHE_MB;
    cfg->max_subscriptions = DEFAULT_MAX_SUBSCRIPTIONS;
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

/* One setting by name, shared by the INI file and the flags.
 * Returns 0, or -1 with a message in err. */
static int apply(maosd_config *cfg, const char *key, const char *val, char *err,
                 size_t errlen)
{
    uint64_t n;
    if (!strcmp(key, "data_dir")) {
        set_str(&cfg->data_dir, val);
    } else if (!strcmp(key, "socket")) {
        set_str(&cfg->socket_path, val);
    } else if (!strcmp(key, "socket_group")) {
        set_str(&cfg->socket_group, *val ? val : NULL);
    } else if (!strcmp(key, "durability")) {
        if (!strcmp(val, "sync"))
            cfg->sync = 1;
        else if (!strcmp(val, "none"))
            cfg->sync = 0;
        else
            goto bad;
    } else if (!strcmp(key, "max_frame")) {
        if (parse_size(val, 1024, 1u << 30, &n))
            goto bad;
        cfg->max_frame = (uint32_t)n;
    } else if (!strcmp(key, "max_connections")) {
        if (parse_size(val, 1, 1000000, &n))
            goto bad;
        cfg->max_connections = (uint32_t)n;
    } else if (!strcmp(key, "max_output_mb")) {
        if (parse_size(val, 1, 1u << 20, &n))
            goto bad;
        cfg->max_output = (size_t)n << 20;
    } else if (!strcmp(key, "max_subscriptions")) {
        if (parse_size(val, 1, 1000000, &n))
            goto bad;
        cfg->max_subscriptions = (uint32_t)n;
    } else if (!strcmp(key, "block_cache_mb")) {
        if (parse_size(val, 1, 1u << 20, &n))
            goto bad;
        cfg->block_cache_mb = (size_t)n;
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
"  --max-connections N    concurrent connections (default 4096)\n"
"  --max-output-mb N      per-connection output buffer cap (default 64)\n"
"  --block-cache-mb N     RocksDB block cache (default 32)\n"
"  --max-subscriptions N  subscriptions per connection (default 1024)\n"
"  --log-level LEVEL      error, warn, info (default) or debug\n"
"  --salvage              open a damaged store up to the damage instead of\n"
"                         refusing; what was dropped is logged and recorded as\n"
"                         an event in stream $system (a one-time operator act)\n"
"  -h, --help             show this help\n"
"  -V, --version          show the version\n"
"\n"
"Config file keys, in a [maosd] section: data_dir, socket, socket_group,\n"
"durability, max_frame, max_connections, max_output_mb, block_cache_mb,\n"
"max_subscriptions, log_level.\n"
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
        {"block-cache-mb", required_argument, 0, 'b'},
        {"max-subscriptions", required_argument, 0, 'S'},
        {"log-level", required_argument, 0, 'l'},
        {"salvage", no_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    static const char *const keys[128] = {
        ['d'] = "data_dir", ['s'] = "socket", ['g'] = "socket_group",
        ['D'] = "durability", ['f'] = "max_frame", ['m'] = "max_connections",
        ['o'] = "max_output_mb", ['b'] = "block_cache_mb", ['l'] = "log_level",
        ['S'] = "max_subscriptions",
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
        if (c > 0 && c < 128 && keys[c] && apply(cfg, keys[c], optarg, err, sizeof(err))) {
            fprintf(stderr, "maosd: --%s: %s\n", keys[c], err);
            return -1;
        }
    }
    if (!cfg->data_dir || !cfg->socket_path) {
        fprintf(stderr, "maosd: cannot determine data dir or socket path\n");
        return -1;
    }
    return 0;
}

void maosd_config_free(maosd_config *cfg)
{
    free(cfg->config_file);
    free(cfg->data_dir);
    free(cfg->socket_path);
    free(cfg->socket_group);
    memset(cfg, 0, sizeof(*cfg));
}
