/*
 * tests/bench/main.c -- maos-bench: options, the scenario loop, the report.
 *
 * The scenarios come from BENCH_SCENARIOS (bench.h), run in that order
 * (or the --scenario order).  The table goes to stdout after the last
 * scenario, progress to stderr as it happens.  Exit status: 0 when every
 * chosen scenario ran (or was skipped with a reason), 1 when one failed,
 * 2 for a usage error.  Never anything about speed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_DEFAULT_MAOSD
#define BENCH_DEFAULT_MAOSD "maosd"
#endif

typedef struct scenario {
    const char *name;
    const char *desc;
    int (*run)(const bench_opts *o);
} scenario;

#define BENCH_SCENARIO_ROW_(id, nm, ds) {nm, ds, bench_sc_##id},
static const scenario scenarios[] = {BENCH_SCENARIOS(BENCH_SCENARIO_ROW_)};
#undef BENCH_SCENARIO_ROW_
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static const int full_procs[] = {1, 4, 8, 16, 64, 0};
static const int quick_procs[] = {1, 2, 0};
static int user_procs[33];

static void usage(FILE *f)
{
    fprintf(f,
"Usage: maos-bench [OPTIONS]\n"
"\n"
"Measure maosd with real client processes, optionally side by side with\n"
"SQLite in WAL mode, and print a table (median [min..max] of repetitions).\n"
"Starts its own maosd on a temp dir and socket per scenario.\n"
"\n"
"  --list                 name the scenarios and exit\n"
"  --scenario NAME        run this scenario (repeatable; default: all)\n"
"  --vs sqlite            also run each figure against SQLite (WAL,\n"
"                         busy_timeout=5000, BEGIN IMMEDIATE) and print ratios\n"
"  --quick                tiny sizes: a smoke test in seconds (the test suite)\n"
"  --json FILE            also write the results as a JSON array\n"
"  --reps N               repetitions per figure (default 3; --quick 1)\n"
"  --seconds S            length of one timed run (default 3; --quick 0.2)\n"
"  --procs LIST           scenario 1 process counts (default 1,4,8,16,64)\n"
"  --depth N              scenario 2/3 appends in flight per process (64)\n"
"  --batch N              scenario 2/3 events per batched append (100)\n"
"  --warm-events N        scenarios 1-3: events loaded before timing, so the\n"
"                         store is in steady state (200000; 0: none)\n"
"  --replay-events N      scenario 4 global log size (1000000)\n"
"  --stream-events N      scenario 4 one-stream size, 14 events read (100000)\n"
"  --startup-events N     scenario 5 events stored (10000000)\n"
"  --idle-conns N         scenario 5 idle connections (1000)\n"
"  --catchup-events N     scenario 7 events stored before subscribing (200000)\n"
"  --flood-requests N     scenario 8 appends pipelined per connection (300000)\n"
"  --lazy-events N        scenario 9 events stored (810000)\n"
"  --lazy-subs N          scenario 9 subscribers that never read (200)\n"
"  --hold-conns N         scenario 10 connections held open (5000)\n"
"  --block-cache-mb N     block cache of the daemons we start (32)\n"
"  --maosd PATH           daemon binary (default: $MAOSD_BIN, else the build's)\n"
"  --socket PATH          use this running maosd instead of starting one\n"
"                         (scenarios needing another durability are skipped)\n"
"  --tmp DIR              where temp dirs go (default $TMPDIR or /tmp); use a\n"
"                         disk, not tmpfs, or fsync costs nothing\n"
"  --keep                 keep temp dirs (data, maosd.log)\n"
"  -v, --verbose          more progress output\n"
"  -h, --help             this text\n");
}

static int parse_u64(const char *s, uint64_t *out, uint64_t min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < min || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_procs(const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || n >= 32)
            return -1;
        user_procs[n++] = (int)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    user_procs[n] = 0;
    return n ? 0 : -1;
}

static const scenario *find(const char *name)
{
    for (size_t i = 0; i < N_SCENARIOS; i++)
        if (!strcmp(scenarios[i].name, name))
            return &scenarios[i];
    return NULL;
}

static void print_machine(const bench_opts *o)
{
    struct utsname u;
    double la[3] = {0};
    uname(&u);
    getloadavg(la, 3);
    printf("maos-bench: %ld cores, %s %s, load average %.2f %.2f %.2f; temp dirs in %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, la[0], la[1], la[2], o->tmp);
    printf("maos-bench: %d reps x %.1f s, maosd %s%s\n", o->reps, o->seconds,
           o->socket ? "at " : "", o->socket ? o->socket : o->maosd);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    /* Same order as lo[] below: the error message indexes it. */
    enum { O_LIST = 256, O_SCEN, O_VS, O_QUICK, O_JSON, O_REPS, O_SECS, O_PROCS,
           O_DEPTH, O_BATCH, O_WARM, O_REPLAY, O_STREAM, O_STARTUP, O_IDLE, O_CACHE, O_MAOSD,
           O_SOCKET, O_TMP, O_KEEP, O_CATCHUP, O_FLOOD, O_LAZY_EV, O_LAZY_SUBS, O_HOLD };
    static const struct option lo[] = {
        {"list", no_argument, 0, O_LIST},
        {"scenario", required_argument, 0, O_SCEN},
        {"vs", required_argument, 0, O_VS},
        {"quick", no_argument, 0, O_QUICK},
        {"json", required_argument, 0, O_JSON},
        {"reps", required_argument, 0, O_REPS},
        {"seconds", required_argument, 0, O_SECS},
        {"procs", required_argument, 0, O_PROCS},
        {"depth", required_argument, 0, O_DEPTH},
        {"batch", required_argument, 0, O_BATCH},
        {"warm-events", required_argument, 0, O_WARM},
        {"replay-events", required_argument, 0, O_REPLAY},
        {"stream-events", required_argument, 0, O_STREAM},
        {"startup-events", required_argument, 0, O_STARTUP},
        {"idle-conns", required_argument, 0, O_IDLE},
        {"block-cache-mb", required_argument, 0, O_CACHE},
        {"maosd", required_argument, 0, O_MAOSD},
        {"socket", required_argument, 0, O_SOCKET},
        {"tmp", required_argument, 0, O_TMP},
        {"keep", no_argument, 0, O_KEEP},
        {"catchup-events", required_argument, 0, O_CATCHUP},
        {"flood-requests", required_argument, 0, O_FLOOD},
        {"lazy-events", required_argument, 0, O_LAZY_EV},
        {"lazy-subs", required_argument, 0, O_LAZY_SUBS},
        {"hold-conns", required_argument, 0, O_HOLD},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    bench_opts o = {0};
    const scenario *chosen[64];
    size_t n_chosen = 0;
    const char *json = NULL;
    uint64_t reps = 0, replay = 0, stream = 0, startup = 0, idle = 0, cache = 32;
    uint64_t depth = 64, batch = 100, catchup = 0, flood = 0, lazy_ev = 0, lazy_subs = 0;
    uint64_t hold = 0;
    double seconds = 0;
    uint64_t warm = 0;
    int list = 0, have_procs = 0, have_warm = 0;

    int c;
    while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case O_LIST: list = 1; break;
        case O_SCEN:
            if (!find(optarg)) {
                fprintf(stderr, "maos-bench: unknown scenario '%s' (see --list)\n", optarg);
                return 2;
            }
            if (n_chosen < 64)
                chosen[n_chosen++] = find(optarg);
            break;
        case O_VS:
            if (strcmp(optarg, "sqlite")) {
                fprintf(stderr, "maos-bench: --vs: only 'sqlite' is known\n");
                return 2;
            }
#ifndef BENCH_HAVE_SQLITE
            fprintf(stderr, "maos-bench: built without SQLite (libsqlite3-dev was "
                            "not found): --vs sqlite is not available\n");
            return 2;
#endif
            o.vs_sqlite = 1;
            break;
        case O_QUICK: o.quick = 1; break;
        case O_JSON: json = optarg; break;
        case O_SECS: {
            char *end;
            seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(seconds > 0) || seconds > 3600) {
                fprintf(stderr, "maos-bench: bad --seconds\n");
                return 2;
            }
            break;
        }
        case O_PROCS:
            if (parse_procs(optarg)) {
                fprintf(stderr, "maos-bench: bad --procs (e.g. 1,4,8)\n");
                return 2;
            }
            have_procs = 1;
            break;
        case O_REPS: case O_DEPTH: case O_BATCH: case O_WARM: case O_REPLAY: case O_STREAM:
        case O_STARTUP: case O_IDLE: case O_CACHE: case O_CATCHUP: case O_FLOOD:
        case O_LAZY_EV: case O_LAZY_SUBS: case O_HOLD:
            if (parse_u64(optarg, &v, c == O_WARM ? 0 : 1) ||
                (c == O_REPS && v > 64) || (c == O_DEPTH && v > 1000) ||
                (c == O_BATCH && v > 10000) || (c == O_IDLE && v > 100000) ||
                (c == O_LAZY_SUBS && v > 10000) || (c == O_HOLD && v > 15000)) {
                fprintf(stderr, "maos-bench: bad value for --%s\n", lo[c - O_LIST].name);
                return 2;
            }
            if (c == O_REPS) reps = v;
            else if (c == O_DEPTH) depth = v;
            else if (c == O_BATCH) batch = v;
            else if (c == O_WARM) warm = v, have_warm = 1;
            else if (c == O_REPLAY) replay = v;
            else if (c == O_STREAM) stream = v;
            else if (c == O_STARTUP) startup = v;
            else if (c == O_IDLE) idle = v;
            else if (c == O_CATCHUP) catchup = v;
            else if (c == O_FLOOD) flood = v;
            else if (c == O_LAZY_EV) lazy_ev = v;
            else if (c == O_LAZY_SUBS) lazy_subs = v;
            else if (c == O_HOLD) hold = v;
            else cache = v;
            break;
        case O_MAOSD: o.maosd = optarg; break;
        case O_SOCKET: o.socket = optarg; break;
        case O_TMP: o.tmp = optarg; break;
        case O_KEEP: o.keep = 1; break;
        case 'v': o.verbose = bench_verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maos-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (list) {
        for (size_t i = 0; i < N_SCENARIOS; i++)
            printf("%-14s %s\n", scenarios[i].name, scenarios[i].desc);
        return 0;
    }

    o.reps = reps ? (int)reps : o.quick ? 1 : 3;
    o.seconds = seconds > 0 ? seconds : o.quick ? 0.2 : 3.0;
    o.procs = have_procs ? user_procs : o.quick ? quick_procs : full_procs;
    o.depth = o.quick && depth == 64 ? 8 : (int)depth;
    o.batch = (int)batch;
    o.warm_events = have_warm ? warm : o.quick ? 0 : 200000;
    o.replay_events = replay ? replay : o.quick ? 5000 : 1000000;
    o.stream_events = stream ? stream : o.quick ? 500 : 100000;
    if (o.stream_events > o.replay_events)
        o.stream_events = o.replay_events;
    o.startup_events = startup ? startup : o.quick ? 5000 : 10000000;
    o.idle_conns = idle ? (int)idle : o.quick ? 20 : 1000;
    o.block_cache_mb = (int)cache;
    o.catchup_events = catchup ? catchup : o.quick ? 2000 : 200000;
    o.flood_requests = flood ? flood : o.quick ? 2000 : 300000;
    o.lazy_events = lazy_ev ? lazy_ev : o.quick ? 2000 : 810000;
    o.lazy_subs = lazy_subs ? (int)lazy_subs : o.quick ? 10 : 200;
    o.hold_conns = hold ? (int)hold : o.quick ? 50 : 5000;
    if (!o.maosd)
        o.maosd = getenv("MAOSD_BIN") && getenv("MAOSD_BIN")[0] ? getenv("MAOSD_BIN")
                                                                : BENCH_DEFAULT_MAOSD;
    if (!o.tmp)
        o.tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    if (!o.socket && access(o.maosd, X_OK)) {
        fprintf(stderr, "maos-bench: cannot run maosd at %s (use --maosd PATH)\n", o.maosd);
        return 2;
    }
    /* Many processes, each with a socket or a database, and the idle
     * connections of scenario 5 in one process. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!n_chosen)
        for (size_t i = 0; i < N_SCENARIOS; i++)
            chosen[n_chosen++] = &scenarios[i];

    print_machine(&o);
    int failed = 0;
    for (size_t i = 0; i < n_chosen; i++) {
        uint64_t t0 = bench_now_ns();
        bench_say("== %s: %s", chosen[i]->name, chosen[i]->desc);
        int rc = chosen[i]->run(&o);
        if (rc < 0) {
            bench_say("%s FAILED", chosen[i]->name);
            failed = 1;
        }
        bench_say("== %s: %s in %.1f s", chosen[i]->name,
                  rc < 0 ? "failed" : rc == BENCH_SKIPPED ? "skipped" : "done",
                  (double)(bench_now_ns() - t0) / 1e9);
    }
    bench_print_table();
    double la[3] = {0};
    getloadavg(la, 3);
    printf("\nload average at the end: %.2f %.2f %.2f\n", la[0], la[1], la[2]);
    if (json && bench_write_json(json))
        failed = 1;
    return failed;
}
