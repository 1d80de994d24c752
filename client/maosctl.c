/*
 * client/maosctl.c -- the command-line tool for people and scripts.
 *
 * Everything the tool knows about its commands and options is in two
 * tables below (commands[], options[]): the parser, `maosctl --help` and
 * `maosctl CMD --help` are all generated from them.
 *
 * Exit status (the contract scripts rely on):
 *   0 success
 *   1 the server refused (conflict, not found, bad request, ...),
 *     `verify` found a broken chain, or `tail`/`listen` timed out before
 *     --count items
 *   2 usage error: unknown command/option, bad JSON argument, bad UUID, ...
 *   3 cannot connect, the connection was lost, the server did not answer
 *     within --timeout, is not trusted (socket directory or uid), or broke
 *     the protocol (e.g. a reply without the fields it promises)
 *
 * --timeout S is global: it bounds connect + hello and every wait for a
 * reply (the library's bounds, client.h "Timeouts"); for tail and listen it
 * also keeps its older meaning, the end after S seconds without an event.
 *
 * Output: one line per item.  Without --json a compact human form; with
 * --json one JSON object per line (events exactly as maos_event_to_json).
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "maos/client.h"
#include "maos/json.h"
#include "maosctl_data.h"
#include "maos/proto.h" /* helpers: maos_uuid_*, maos_mpr_*, maos_utf8_check */

#ifndef MAOS_VERSION
#define MAOS_VERSION MAOS_CLIENT_VERSION
#endif

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

/* Page size used under the hood when printing "everything". */
#define PAGE_EVENTS MAOS_READ_LIMIT_MAX

/* ---- the option table ----------------------------------------------------- */

enum opt_id {
    O_EXPECT, O_ID, O_META, O_BATCH, O_FROM, O_BACKWARD, O_LIMIT, O_STREAM,
    O_PREFIX, O_CATEGORY, O_TYPE, O_SINCE, O_UNTIL, O_COUNT, O_WAIT, O_SESSION,
    O_STATUS, O_NAME, O_KIND, O_STATE, O_TAG, O_PRIORITY, O_DELAY, O_MAX_ATTEMPTS,
    O_DEDUPE, O_ORDERING_KEY, O_LEASE, O_ERROR, O_RETRY_AFTER, O_ALL, O_DEAD, O_VERIFY,
    O_TO, O_OUTPUT, O_FORMAT, O_PROMETHEUS, O_MAX_COUNT, O_MAX_AGE, O_CLEAR, O_BEFORE,
    O_PUBKEY, O_EXPORT, O_SCOPE, O_EXPIRES, O_UID, O__COUNT
};
_Static_assert(O__COUNT <= 64, "command option sets are 64-bit masks");

struct option_def {
    const char *name;
    const char *arg;  /* NULL: a flag */
    int repeat;       /* may be given several times */
    const char *help;
};

static const struct option_def options[O__COUNT] = {
    [O_EXPECT] = {"expect", "V", 0,
                  "append: expected stream version, a number, any (default), no_stream\n"
                  "or exists; kv put/del: expected revision, a number, any (default),\n"
                  "absent or exists"},
    [O_ID] = {"id", "ID", 0,
              "append: event id (UUID text; default: the server makes a UUIDv7);\n"
              "session create, agent run: the session's / agent's id"},
    [O_META] = {"meta", "JSON", 0,
                "event meta data, a JSON object (queue enqueue: the task's meta)"},
    [O_BATCH] = {"batch", "FILE", 0,
                 "append the JSON Lines of FILE (- for stdin), one object\n"
                 "{\"type\",\"data\",\"id\"?,\"meta\"?} per line, as one atomic append"},
    [O_FROM] = {"from", "N", 0,
                "start at this version (read) or position (read-all, tail), inclusive;\n"
                "default: the first event, or the last with --backward;\n"
                "tail also takes start or end (the default: new events only)"},
    [O_BACKWARD] = {"backward", NULL, 0, "read from newest to oldest"},
    [O_LIMIT] = {"limit", "N", 0,
                 "print at most N events (default: all, paged); queue claim: claim up\n"
                 "to N tasks (default 1)"},
    [O_STREAM] = {"stream", "S", 0, "only events of stream S"},
    [O_PREFIX] = {"prefix", "P", 0, "only streams whose name starts with P"},
    [O_CATEGORY] = {"category", "C", 0,
                    "only streams of category C (the name before the first '-')"},
    [O_TYPE] = {"type", "T", 1, "only events of type T (repeat for several types)"},
    [O_SINCE] = {"since", "TIME", 0,
                 "only events at or after TIME (RFC 3339, or microseconds since the epoch)"},
    [O_UNTIL] = {"until", "TIME", 0, "only events at or before TIME"},
    [O_COUNT] = {"count", "N", 0,
                 "exit 0 after N events (tail) or messages (listen); with --timeout S,\n"
                 "S seconds without one before N exits 1; queue work: stop after N\n"
                 "tasks"},
    [O_WAIT] = {"wait", "S", 0,
                "lock: wait at most S seconds for the holder to go (default: for\n"
                "ever; 0: try once); queue claim: wait at most S milliseconds for a\n"
                "task (default 0: do not wait)"},
    [O_SESSION] = {"session", "S", 0,
                   "the session (agent run), or only agents of S; token create: the\n"
                   "scopes an agent of session S needs (its streams S-..., kv keys\n"
                   "S/..., queues S-..., channels S-*, agents S-...)"},
    [O_SCOPE] = {"scope", "SCOPE", 1,
                 "token create: a scope (repeat for several): read:PREFIX,\n"
                 "append:PREFIX, subscribe:PREFIX, kv.read:TABLE/PREFIX,\n"
                 "kv.write:TABLE/PREFIX, queue.enqueue:Q, queue.work:Q, channel:GLOB,\n"
                 "agent.register:PREFIX, admin"},
    [O_EXPIRES] = {"expires", "D", 0,
                   "token create: the token expires D after now (a number with ms, s,\n"
                   "m, h or d; default: never)"},
    [O_UID] = {"uid", "U", 0,
               "token create: only connections of uid U may use it (a number or a\n"
               "user name)"},
    [O_STATUS] = {"status", "S", 0, "only agents with status S (online, offline, ...)"},
    [O_NAME] = {"name", "N", 0, "agent run: the agent's name; token create: the token's name"},
    [O_KIND] = {"kind", "K", 0, "agent run: the agent's kind"},
    [O_STATE] = {"state", "S", 0, "only sessions in state S (open, closed)"},
    [O_TAG] = {"tag", "T", 0,
               "agent run: a capability/tag of the agent; agent list: only agents\n"
               "with that tag"},
    [O_PRIORITY] = {"priority", "P", 0, "queue enqueue: priority (higher first, default 0)"},
    [O_DELAY] = {"delay", "MS", 0, "queue enqueue: ready after MS milliseconds"},
    [O_MAX_ATTEMPTS] = {"max-attempts", "N", 0,
                        "queue enqueue: deliveries before it is a dead letter (default 5)"},
    [O_DEDUPE] = {"dedupe", "KEY", 0,
                  "queue enqueue: while a task with KEY is unfinished, return its id"},
    [O_ORDERING_KEY] = {"ordering-key", "K", 0,
                        "queue enqueue: tasks of K are handed out one at a time, in order"},
    [O_LEASE] = {"lease", "MS", 0,
                 "queue: lease in milliseconds (enqueue: the task's default, 30000;\n"
                 "claim, work: this claim's; extend: the new lease from now)"},
    [O_ERROR] = {"error", "MSG", 0, "queue nack: why the attempt failed"},
    [O_RETRY_AFTER] = {"retry-after", "MS", 0,
                       "queue nack: ready again after MS milliseconds (default: the\n"
                       "task's backoff)"},
    [O_ALL] = {"all", NULL, 0, "queue retry: every dead letter of the queue"},
    [O_TO] = {"to", "P", 0, "export: the last position (default: the head when it starts)"},
    [O_OUTPUT] = {"output", "FILE", 0, "export: write to FILE (also -o FILE; default stdout)"},
    [O_FORMAT] = {"format", "F", 0,
                  "export: jsonl (default: JSON Lines with a header and a trailer) or\n"
                  "pg-copy (PostgreSQL COPY text, packaging/maos-export-pg.sql)"},
    [O_PROMETHEUS] = {"prometheus", NULL, 0,
                      "stats: the Prometheus text exposition format (HELP, TYPE,\n"
                      "histograms), for node_exporter's textfile collector"},
    [O_VERIFY] = {"verify", NULL, 0,
                  "backup: check the copy in DIR offline instead of making one (a\n"
                  "read-only maosd on it, then verify)"},
    [O_DEAD] = {"dead", NULL, 0, "queue purge: delete the dead letters (required)"},
    [O_MAX_COUNT] = {"max-count", "N", 0, "stream set-retention: keep the last N events"},
    [O_MAX_AGE] = {"max-age", "D", 0,
                   "stream set-retention: keep the events younger than D (a number and a\n"
                   "unit: ms, s, m, h, d, e.g. 30d; a plain number: seconds)"},
    [O_CLEAR] = {"clear", NULL, 0, "stream set-retention: remove the rule"},
    [O_BEFORE] = {"before", "V", 0, "stream truncate: remove the versions below V"},
    [O_PUBKEY] = {"pubkey", "FILE", 0,
                  "verify: also check the signed checkpoints of $chain with the public\n"
                  "key in FILE (as maosctl pubkey prints it); at least one must be there"},
    [O_EXPORT] = {"export", "FILE", 0,
                  "verify: check an export file offline instead (a whole one: no\n"
                  "filter, from the start), its chain and, with --pubkey, its signature"},
};

#define OPT(x) (1ull << (x))

struct args {
    const char *socket;
    const char *data_dir; /* --data-dir: a private read-only maosd on it */
    int no_request_timeout; /* the command waits as long as its request runs */
    int timeout_set;    /* --timeout given */
    int timeout_ms;     /* > 0, or MAOS_TIMEOUT_NONE */
    int json;
    int help;
    const char *val[O__COUNT];
    int set[O__COUNT];
    const char **types; /* every --type */
    size_t n_types;
    const char **scopes; /* every --scope */
    size_t n_scopes;
    char **pos;         /* positional arguments after the command */
    int npos;
};

/* ---- the command table -------------------------------------------------- */

struct command {
    const char *name;
    int (*run)(struct args *a);
    const char *usage;   /* after "maosctl NAME " */
    const char *summary;
    unsigned long long opts; /* OPT() bits */
    int min_pos, max_pos;
    const char *details; /* extra help paragraph, or NULL */
};

static int cmd_ping(struct args *a);
static int cmd_append(struct args *a);
static int cmd_read(struct args *a);
static int cmd_read_all(struct args *a);
static int cmd_streams(struct args *a);
static int cmd_stats(struct args *a);
static int cmd_status(struct args *a);
static int cmd_verify(struct args *a);
static int cmd_pubkey(struct args *a);
static int cmd_tail(struct args *a);
static int cmd_publish(struct args *a);
static int cmd_listen(struct args *a);
static int cmd_checkpoint(struct args *a);
static int cmd_backup(struct args *a);
static int cmd_export(struct args *a);
static int cmd_import(struct args *a);
static int run_on_dir(struct args *a, const char *data_dir, int (*cmd)(struct args *a));
static int cmd_kv(struct args *a);
static int cmd_lock(struct args *a);
static int cmd_session(struct args *a);
static int cmd_agent(struct args *a);
static int cmd_queue(struct args *a);
static int cmd_stream(struct args *a);
static int parse_duration_ms(const char *s, uint64_t *out);
static int cmd_compact(struct args *a);
static int cmd_token(struct args *a);
static json_t *queue_info_json(const maos_queue_stat *q);
static void print_queue_info(const struct args *a, const maos_queue_stat *q);

#define FILTER_OPTS                                                                \
    (OPT(O_STREAM) | OPT(O_PREFIX) | OPT(O_CATEGORY) | OPT(O_TYPE) | OPT(O_SINCE) |  \
     OPT(O_UNTIL))

static const struct command commands[] = {
    {"ping", cmd_ping, "", "check that maosd answers", 0, 0, 0, NULL},
    {"append", cmd_append,
     "STREAM TYPE DATA_JSON [--expect V] [--id UUID] [--meta JSON]\n"
     "       maosctl append STREAM --batch FILE|- [--expect V]",
     "append events to a stream", OPT(O_EXPECT) | OPT(O_ID) | OPT(O_META) | OPT(O_BATCH),
     1, 3,
     "Prints stream@version, position and id of each appended event\n"
     "(with --json: {\"stream\",\"version\",\"position\",\"id\"} per event).\n"
     "A batch is written all or nothing."},
    {"read", cmd_read, "STREAM [--from V] [--backward] [--limit N]",
     "print the events of one stream",
     OPT(O_FROM) | OPT(O_BACKWARD) | OPT(O_LIMIT), 1, 1, NULL},
    {"read-all", cmd_read_all,
     "[--from P] [--backward] [--limit N] [--stream S] [--prefix P]\n"
     "       [--category C] [--type T]... [--since T] [--until T]",
     "print the global log ($all), optionally filtered by the server",
     OPT(O_FROM) | OPT(O_BACKWARD) | OPT(O_LIMIT) | FILTER_OPTS, 0, 0, NULL},
    {"tail", cmd_tail,
     "[--from start|end|P] [--count N] [--timeout S] [--stream S] [--prefix P]\n"
     "       [--category C] [--type T]... [--since T] [--until T]",
     "print events as they are committed (a subscription)",
     OPT(O_FROM) | OPT(O_COUNT) | FILTER_OPTS, 0, 0,
     "Prints stored events from --from, then new ones as they come, in the\n"
     "format of read-all, until interrupted, --count or --timeout.  Survives a\n"
     "daemon restart (reconnects and resumes without gap or duplicate).\n"
     "--timeout S: exit 0 after S seconds without an event (with --count,\n"
     "exit 1 if fewer than N came); it also bounds connecting and the\n"
     "subscribe request, as for every command (exit 3)."},
    {"publish", cmd_publish, "CHANNEL JSON", "publish a message on an ephemeral channel", 0,
     2, 2,
     "Prints how many channel subscriptions it was sent to.  Nothing is\n"
     "stored: subscribers that are not listening now never see it."},
    {"listen", cmd_listen, "PATTERN [--count N] [--timeout S]",
     "print channel messages (PATTERN: a name or a glob like 'task.*')",
     OPT(O_COUNT), 1, 1,
     "Prints CHANNEL  PAYLOAD per message (with --json:\n"
     "{\"channel\",\"payload\"}).  At most once: messages published while\n"
     "listen is not connected are lost.  --timeout S: exit 0 after S seconds\n"
     "without a message (as tail)."},
    {"checkpoint", cmd_checkpoint, "NAME [POSITION]",
     "show a named checkpoint, or set it to POSITION", 0, 1, 2,
     "Checkpoints are positions saved by consumers (e.g. the last event an\n"
     "agent processed); a missing one exits 1 with NOT_FOUND."},
    {"streams", cmd_streams, "[--prefix P]", "list streams with head version and count",
     OPT(O_PREFIX), 0, 0, NULL},
    {"kv", cmd_kv,
     "get TABLE KEY\n"
     "       maosctl kv put TABLE KEY JSON [--expect REV|absent|exists]\n"
     "       maosctl kv del TABLE KEY [--expect REV]\n"
     "       maosctl kv list TABLE [PREFIX] [--limit N]\n"
     "       maosctl kv watch TABLE [PREFIX] [--from REV|now] [--count N] [--timeout S]",
     "read and write key-value tables (TABLE is kv.TABLE on the wire)",
     OPT(O_EXPECT) | OPT(O_LIMIT) | OPT(O_FROM) | OPT(O_COUNT), 2, 4,
     "An entry prints as KEY  REVISION  JSON (with --json: {\"table\",\"key\",\n"
     "\"revision\",\"created_revision\",\"created\",\"updated\",\"data\",\n"
     "\"bound\"}).  put/del print the new revision.  A failed --expect exits 1\n"
     "(WRONG_REVISION, with the actual revision).  watch prints the entries,\n"
     "then every change as put/deleted KEY REVISION JSON; --from REV: only the\n"
     "changes after revision REV; --from now: only new ones."},
    {"lock", cmd_lock, "NAME [--wait S] -- COMMAND [ARGS...]",
     "run COMMAND while holding the lock NAME (like flock(1))",
     OPT(O_WAIT), 2, 100000,
     "Takes the lock (waiting, told by push when the holder goes), runs COMMAND\n"
     "with MAOS_LOCK_TOKEN set to the fencing token, releases the lock and exits\n"
     "with COMMAND's status.  If maosctl dies, maosd frees the lock.  Exit 1\n"
     "when --wait ran out."},
    {"session", cmd_session,
     "create [--id ID] [METADATA_JSON] | list [--state S] | show ID | close ID [RESULT_JSON]",
     "create, list, show and close sessions", OPT(O_ID) | OPT(O_STATE), 1, 3,
     "create prints the session id (a UUIDv7 unless --id).  Events of a session\n"
     "carry meta.session = ID by convention; its agents name it in --session."},
    {"agent", cmd_agent,
     "list [--session S] [--status S] [--tag T] | show ID\n"
     "       maosctl agent run --id ID [--session S] [--name N] [--kind K] [--tag T]\n"
     "                         -- COMMAND...",
     "list agents, or run COMMAND as a registered agent", OPT(O_ID) | OPT(O_SESSION) |
     OPT(O_STATUS) | OPT(O_NAME) | OPT(O_KIND) | OPT(O_TAG), 1, 100000,
     "An agent prints as ID  STATUS  SESSION  LAST_SEEN (with --json: its whole\n"
     "entry).  run registers ID (online), runs COMMAND and exits with its status;\n"
     "the agent is offline as soon as COMMAND exits or maosctl dies: how a shell\n"
     "script or any program gets liveness.  Events COMMAND appends itself are\n"
     "not stamped (they come over other connections)."},
    {"queue", cmd_queue,
     "enqueue QUEUE JSON [--priority P] [--delay MS] [--max-attempts N]\n"
     "                     [--dedupe KEY] [--ordering-key K] [--lease MS]\n"
     "                     [--meta JSON]\n"
     "       maosctl queue claim QUEUE... [--lease MS] [--wait MS] [--limit N]\n"
     "       maosctl queue ack ID TOKEN [RESULT_JSON]\n"
     "       maosctl queue nack ID TOKEN [--error MSG] [--retry-after MS]\n"
     "       maosctl queue extend ID TOKEN --lease MS | release ID TOKEN\n"
     "       maosctl queue list | stats [QUEUE] | show ID | dead QUEUE\n"
     "       maosctl queue retry QUEUE [ID|--all] | purge QUEUE --dead\n"
     "       maosctl queue work QUEUE[,QUEUE...] [--lease MS] [--count N] -- COMMAND...",
     "task queues: enqueue, claim, ack, dead letters, and a worker for any command",
     OPT(O_PRIORITY) | OPT(O_DELAY) | OPT(O_MAX_ATTEMPTS) | OPT(O_DEDUPE) |
     OPT(O_ORDERING_KEY) | OPT(O_LEASE) | OPT(O_WAIT) | OPT(O_LIMIT) | OPT(O_ERROR) |
     OPT(O_RETRY_AFTER) | OPT(O_ALL) | OPT(O_DEAD) | OPT(O_COUNT) | OPT(O_META), 1, 100000,
     "enqueue prints the task id.  claim prints ID  ATTEMPT  TOKEN  DATA per task\n"
     "(nothing when none is ready); pass ID and TOKEN to ack/nack/extend/release.\n"
     "A task in --json is one object: id, queue, state, attempt, max_attempts,\n"
     "priority, data, meta, enqueued, not_before, dedupe_key, ordering_key,\n"
     "last_error, result, history, and for a claim token and lease_until.\n"
     "A lost lease (LEASE_LOST) or an unknown task (NOT_FOUND) exits 1.\n"
     "work claims one task at a time (bound to its connection: if maosctl dies,\n"
     "the task goes back at once), runs COMMAND with the payload JSON on stdin,\n"
     "extends the lease while it runs, and acks with COMMAND's stdout (JSON, or\n"
     "else a string) when it exits 0, or nacks with its exit status and the\n"
     "tail of its stderr (which also goes on to maosctl's); --count N: stop\n"
     "after N tasks; SIGINT/SIGTERM: stop after the task in hand.  It lives\n"
     "through restarts of maosd: it reconnects and claims again (the task in\n"
     "hand when the connection was lost went back to its queue)."},
    {"stream", cmd_stream,
     "info STREAM | info --category C\n"
     "       maosctl stream set-retention STREAM|--category C [--max-count N]\n"
     "                                    [--max-age D] [--clear]\n"
     "       maosctl stream truncate STREAM --before V | delete STREAM",
     "retention, truncation and deletion of streams", OPT(O_CATEGORY) | OPT(O_MAX_COUNT) |
     OPT(O_MAX_AGE) | OPT(O_CLEAR) | OPT(O_BEFORE), 1, 2,
     "info prints the rule (max_count, max_age_ms; 0: none) and, for a stream, its\n"
     "first readable version, head and whether it is deleted.  set-retention sets the\n"
     "rule of a stream, or of every stream of category C (a stream's own rule wins);\n"
     "--max-count and --max-age together keep what both keep.  truncate removes\n"
     "the versions below V; delete removes every event (versions go on when it is\n"
     "written again).  Removed events disappear from reads of the stream at once,\n"
     "and from read-all, tail and export when maosd's removal pass reaches them\n"
     "(it starts at once and runs every retention_interval_s); verify still checks\n"
     "the whole chain through what is left (docs/ARCHITECTURE.md \"Retention\")."},
    {"status", cmd_status, "", "a one-screen summary of the daemon, for a person", 0, 0, 0,
     "Version, uptime, data directory and its size on disk, durability, head,\n"
     "requests and events per second over the last minute, connections,\n"
     "subscriptions and the slowest one's lag, state (ok or read_only).\n"
     "With --json one object with the same figures (as numbers)."},
    {"stats", cmd_stats, "[--prometheus]",
     "print the daemon's counters and every queue's figures", OPT(O_PROMETHEUS), 0, 0,
     "--prometheus prints the daemon's figures in the Prometheus text format\n"
     "instead: maos_* counters and gauges with HELP and TYPE lines, histograms of\n"
     "commit-group write time and of request time by op (fixed buckets), read-only\n"
     "state, disk usage, RocksDB pending compaction bytes and write stalls.  For\n"
     "node_exporter's textfile collector: maosctl stats --prometheus > maos.prom.$$\n"
     "&& mv maos.prom.$$ /var/lib/node_exporter/textfile/maos.prom"},
    {"backup", cmd_backup, "DIR [--verify]",
     "an online, consistent copy of the whole store in DIR", OPT(O_VERIFY), 1, 1,
     "maosd makes DIR (an absolute path that must not exist yet; relative paths are\n"
     "taken from maosctl's directory) holding the store as of one moment, while\n"
     "writers run, and prints the head position it holds: every event up to it,\n"
     "none after.  maosd --data-dir DIR starts from the copy as it is.  On the data\n"
     "directory's file system the copy is hard links (instant); elsewhere maosd\n"
     "copies the files before it answers (backup waits for it: no request timeout\n"
     "unless --timeout).  Only root and maosd's own user may ask (UNAUTHORIZED).\n"
     "maosd must be allowed to write in DIR's\n"
     "parent (under systemd: ReadWritePaths=).  --verify DIR checks a copy offline:\n"
     "a private read-only maosd on it (maosctl inspect), then verify: the chain up\n"
     "to its head."},
    {"compact", cmd_compact, "",
     "compact the store now (the space of removed events comes back at once)", 0, 0, 0,
     "RocksDB rewrites every table file without the values that were overwritten or\n"
     "deleted -- the data of events removed by retention, truncation or deletion\n"
     "among them -- instead of at its own pace.  Waits until it is done (no request\n"
     "timeout unless --timeout).  Only root and maosd's own user may ask."},
    {"export", cmd_export,
     "[--from P] [--to P] [--prefix P] [--category C] [--stream S] [--type T]...\n"
     "       [--since T] [--until T] [--format jsonl|pg-copy] [-o FILE]",
     "write the log (or part of it) as JSON Lines, for backups and migrations",
     OPT(O_FROM) | OPT(O_TO) | FILTER_OPTS | OPT(O_OUTPUT) | OPT(O_FORMAT), 0, 0,
     "One header line ({\"kind\":\"header\",\"format\":\"maos-export\",...}), one line\n"
     "per event exactly as read --json prints it, one trailer line (count and the\n"
     "hash of the last event) so a cut file is detected; docs/EXPORT.md has the\n"
     "format.  It ends at --to or at the head when it starts.  A progress line on\n"
     "stderr when that is a terminal.  --format pg-copy writes rows for\n"
     "PostgreSQL's COPY instead (packaging/maos-export-pg.sql loads them)."},
    {"import", cmd_import, "FILE|-",
     "load an export into this store (ids kept; a re-run completes a partial import)",
     0, 1, 1,
     "The file is checked whole first: a truncated or damaged export is refused with\n"
     "its line number and nothing is written.  Events are appended in their order,\n"
     "in transactions of up to 100, with their ids, types, data and meta; positions\n"
     "and times are this store's, and the source's position and time are kept in\n"
     "meta.source_position and meta.source_time.  Events whose id is already stored\n"
     "are skipped, so importing twice writes nothing the second time.  Prints how\n"
     "many were imported and how many were there already."},
    {"inspect", NULL, "--data-dir DIR COMMAND [ARGS...]",
     "run a command on a data directory without its daemon (read-only)", 0, 1, 100000,
     "Starts a private maosd --read-only on DIR (on a temporary socket; it writes\n"
     "nothing in DIR and works beside a running maosd, or on a store whose maosd\n"
     "will not start), runs COMMAND against it -- read, read-all, streams, stats,\n"
     "status, verify, kv get/list, queue stats, ... with their usual output -- and\n"
     "stops it.  Writes are refused (READ_ONLY).  Beside a running maosd it shows\n"
     "what is in table files: the newest groups, still only in that daemon's\n"
     "journal (at most one lap), are not applied; its log says how many.\n"
     "maosd is $MAOSD_BIN, else the installed one, else maosd from PATH."},
    {"token", cmd_token,
     "create --name NAME --scope SCOPE... [--session S] [--expires D] [--uid U]\n"
     "       maosctl token list\n"
     "       maosctl token revoke NAME",
     "access tokens: create (printed once), list, revoke",
     OPT(O_NAME) | OPT(O_SCOPE) | OPT(O_SESSION) | OPT(O_EXPIRES) | OPT(O_UID), 1, 2,
     "create prints the token once (maos_ and 43 base64url characters): give it\n"
     "to the agent as MAOS_TOKEN; maosd keeps only its hash.  A connection with\n"
     "a token may do what its scopes allow, within what its uid may do (root and\n"
     "maosd's user: everything; others: maosd's uid_scopes).  list prints NAME,\n"
     "scopes, created, expires, last used (never the secret).  revoke deletes the\n"
     "token and closes every connection using it at once.  Needs scope admin."},
    {"verify", cmd_verify, "[--pubkey FILE] [--export FILE]",
     "check the whole log: dense positions and the BLAKE2b hash chain",
     OPT(O_PUBKEY) | OPT(O_EXPORT), 0, 0,
     "Prints \"OK: N events, head P\", or the first bad position and exits 1.\n"
     "--pubkey FILE also checks every signed checkpoint (stream $chain) with the\n"
     "daemon's public key and prints the last signed position: the log up to it\n"
     "is proven unaltered, unless the key itself was stolen.  With --data-dir DIR\n"
     "(or maosctl backup --verify) it checks a copy offline.  --export FILE checks\n"
     "a JSON Lines export instead, without a daemon: every record rebuilt from its\n"
     "line and the chain followed through them, the trailer's counts and last hash,\n"
     "and with --pubkey the signature maosd put in the trailer and every checkpoint:\n"
     "one changed character is named by line and position."},
    {"pubkey", cmd_pubkey, "", "print the daemon's public signing key (hex)", 0, 0, 0,
     "The ed25519 key that signs the checkpoints in stream $chain and the\n"
     "trailers of exports.  Keep a copy where the daemon's user cannot write:\n"
     "maosctl pubkey > maos.pub; later maosctl verify --pubkey maos.pub."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char *const global_help =
    "  --socket PATH  daemon socket (default: $MAOS_SOCKET, then the per-user default)\n"
    "  --timeout S    give up when the daemon does not answer: S seconds (fractions\n"
    "                 allowed) to connect and say hello, and S seconds without\n"
    "                 progress on each request; exit 3.  Default 10 s to connect,\n"
    "                 30 s per request; none: wait for ever.  tail and listen also\n"
    "                 end after S seconds without an event (exit 0)\n"
    "  --data-dir DIR a private read-only maosd on the data directory DIR instead\n"
    "                 of the daemon at --socket (as maosctl inspect)\n"
    "  --json         one JSON object per line\n"
    "  --help         show help (for a command: maosctl CMD --help, or\n"
    "                 maosctl help CMD)\n"
    "  --version      show the version\n";

/* ---- output helpers ---------------------------------------------------------- */

static const struct command *current;

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "maosctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'maosctl %s%s--help'.\n", current ? current->name : "",
            current ? " " : "");
}

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: maosctl [--socket PATH] [--timeout S] [--json] COMMAND [ARGS...]\n\n"
               "Talk to maosd, the maos coordination store.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nGlobal options (before or after the command):\n%s", global_help);
    fprintf(f, "\nExit status: 0 ok, 1 refused by the server, 2 usage error,\n"
               "3 cannot connect, connection lost, timed out (--timeout), server not\n"
               "trusted (socket directory or uid; MAOS_SERVER_UID), or protocol error.\n");
}

static void print_cmd_help(const struct command *c)
{
    printf("Usage: maosctl %s%s%s\n\n%c%s.\n", c->name, *c->usage ? " " : "", c->usage,
           toupper((unsigned char)c->summary[0]), c->summary + 1);
    if (c->details)
        printf("\n%s\n", c->details);
    if (c->opts) {
        printf("\nOptions:\n");
        for (int i = 0; i < O__COUNT; i++) {
            if (!(c->opts & OPT(i)))
                continue;
            char head[40];
            snprintf(head, sizeof head, "--%s%s%s", options[i].name,
                     options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
            /* indent continuation lines of the help text under the first */
            printf("  %-16s ", head);
            for (const char *p = options[i].help; *p; p++) {
                putchar(*p);
                if (*p == '\n')
                    printf("  %-16s ", "");
            }
            putchar('\n');
        }
    }
    printf("\nGlobal options:\n%s", global_help);
}

/* Print a library error and map it to an exit status. */
static int report(maos_ctx *c, const char *what)
{
    int64_t actual;
    fprintf(stderr, "maosctl: %s: %s: %s", what, maos_err_name(c->err), c->errstr);
    if (c->err == MAOS_EWRONG_EXPECTED_VERSION && maos_err_actual(c, &actual))
        fprintf(stderr, " (actual version: %" PRId64 ")", actual);
    if (c->err == MAOS_EWRONG_REVISION && maos_err_actual(c, &actual))
        fprintf(stderr, " (actual revision: %" PRId64 ")", actual);
    if (c->err == MAOS_ETIMEOUT)
        fputs("; --timeout S changes the bound", stderr);
    fputc('\n', stderr);
    if (maos_fd(c) < 0 || maos_err_is_fatal(c->err))
        return EXIT_CONNECT;
    if (c->err == MAOS_EINVALID_ARG)
        return EXIT_USAGE;
    return EXIT_REFUSED;
}

static int connect_to(struct args *a, maos_ctx **out)
{
    maos_options o = {.path = a->socket, .client_name = "maosctl"};
    if (a->timeout_set)
        o.timeout_ms = o.connect_timeout_ms = a->timeout_ms;
    if (a->no_request_timeout)
        o.timeout_ms = MAOS_TIMEOUT_NONE;
    maos_ctx *c = maos_connect_with(&o);
    if (!c) {
        fprintf(stderr, "maosctl: out of memory\n");
        return EXIT_CONNECT;
    }
    if (c->err) {
        /* errstr names the path ("cannot connect to PATH: reason",
         * "refusing PATH: ...", "timed out: no answer to hello from PATH ...");
         * the code's name first, as report() prints a request's */
        fprintf(stderr, "maosctl: %s: %s%s\n", maos_err_name(c->err), c->errstr,
                c->err == MAOS_ETIMEOUT ? "; --timeout S changes the bound" : "");
        maos_free(c);
        return EXIT_CONNECT;
    }
    *out = c;
    return 0;
}

/* Print one JSON value as a line; consumes the reference. */
static void print_json_line(json_t *v)
{
    char *s = NULL;
    if (v && maos_json_dump(v, &s) != 0)
        s = NULL;
    json_decref(v);
    if (!s) {
        fprintf(stderr, "maosctl: out of memory\n");
    } else {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

static int print_event(const struct args *a, const maos_event *e)
{
    if (a->json) {
        json_t *o;
        int rc = maos_event_to_json(e, &o);
        if (rc) {
            fprintf(stderr, "maosctl: cannot show event at position %" PRIu64 ": %s\n",
                    e->position, maos_strerror(rc));
            return rc;
        }
        print_json_line(o);
        return 0;
    }
    char t[40], *data = NULL;
    if (maos_time_format(e->time, t, sizeof t) < 0)
        snprintf(t, sizeof t, "%" PRId64, e->time);
    int rc = maos_msgpack_to_json_text(e->data, e->data_len, &data);
    printf("%" PRIu64 "  %.*s@%" PRIu64 "  %.*s  %s  %s\n", e->position,
           (int)e->stream_len, e->stream, e->version, (int)e->type_len, e->type, t,
           rc ? "(undisplayable data)" : data);
    free(data);
    return 0;
}

/* ---- argument parsing ------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* --expect: a number, any, exists, and no_stream (appends: a stream
 * version) or absent (tables: a revision). */
static int parse_expect_as(const char *s, int64_t *out, int table)
{
    uint64_t v;
    if (!s || strcmp(s, "any") == 0)
        *out = MAOS_EXPECT_ANY;
    else if (strcmp(s, table ? "absent" : "no_stream") == 0)
        *out = table ? MAOS_EXPECT_ABSENT : MAOS_EXPECT_NO_STREAM;
    else if (strcmp(s, "exists") == 0)
        *out = MAOS_EXPECT_EXISTS;
    else if (parse_u64(s, &v) == 0 && v <= (uint64_t)INT64_MAX)
        *out = (int64_t)v;
    else
        return -1;
    return 0;
}

static int parse_expect(const char *s, int64_t *out)
{
    return parse_expect_as(s, out, 0);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* --timeout S: seconds > 0 with fractions (at least 1 ms once rounded), or
 * none.  0 or a usage error (printed). */
static int parse_timeout(const char *v, int *ms)
{
    char *end;
    if (strcmp(v, "none") == 0) {
        *ms = MAOS_TIMEOUT_NONE;
        return 0;
    }
    errno = 0;
    double sec = strtod(v, &end);
    if (errno || end == v || *end || !(sec > 0) || sec > 86400.0 * 24 ||
        sec * 1000 + 0.5 < 1) {
        usage_error("bad --timeout '%s' (seconds > 0, e.g. 5 or 0.5, up to 24 days; "
                    "or none)", v);
        return -1;
    }
    *ms = (int)(sec * 1000 + 0.5);
    return 0;
}

/*
 * Options may stand anywhere; "--" ends them.  Options are long only
 * ("--name VALUE" or "--name=VALUE"), so "-" (stdin) and "-5" (a JSON
 * number) are positional.  "-h" is accepted for --help.
 */
static const struct command *find_command(const char *name);

static int parse_args(int argc, char **argv, struct args *a, const char **cmdname)
{
    int only_pos = 0;
    a->pos = calloc((size_t)argc, sizeof *a->pos);
    a->types = calloc((size_t)argc, sizeof *a->types);
    a->scopes = calloc((size_t)argc, sizeof *a->scopes);
    if (!a->pos || !a->types || !a->scopes) {
        fprintf(stderr, "maosctl: out of memory\n");
        return -1;
    }
    *cmdname = NULL;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_pos || arg[0] != '-' || arg[1] == '\0' ||
            (arg[1] != '-' && strcmp(arg, "-h") != 0 && strcmp(arg, "-o") != 0)) {
            if (!*cmdname) {
                *cmdname = arg;
                current = find_command(arg); /* for usage messages */
            } else
                a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(arg, "-o") == 0) { /* export: short for --output */
            if (i + 1 >= argc) {
                usage_error("-o needs a FILE");
                return -1;
            }
            if (a->set[O_OUTPUT]) {
                usage_error("--output given twice");
                return -1;
            }
            a->set[O_OUTPUT]++;
            a->val[O_OUTPUT] = argv[++i];
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->help = 1;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("maosctl %s\n", MAOS_VERSION);
            exit(EXIT_OK);
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = 1;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        if (nlen == 6 && strncmp(name, "socket", 6) == 0) {
            if (!value && i + 1 >= argc) {
                usage_error("--socket needs a PATH");
                return -1;
            }
            a->socket = value ? value : argv[++i];
            continue;
        }
        if (nlen == 8 && strncmp(name, "data-dir", 8) == 0) {
            if (!value && i + 1 >= argc) {
                usage_error("--data-dir needs a DIR");
                return -1;
            }
            a->data_dir = value ? value : argv[++i];
            continue;
        }
        if (nlen == 7 && strncmp(name, "timeout", 7) == 0) {
            if (!value && i + 1 >= argc) {
                usage_error("--timeout needs S (seconds) or none");
                return -1;
            }
            if (a->timeout_set) {
                usage_error("--timeout given twice");
                return -1;
            }
            if (parse_timeout(value ? value : argv[++i], &a->timeout_ms))
                return -1;
            a->timeout_set = 1;
            continue;
        }
        int id = -1;
        for (int k = 0; k < O__COUNT; k++)
            if (strlen(options[k].name) == nlen && strncmp(options[k].name, name, nlen) == 0)
                id = k;
        if (id < 0) {
            usage_error("unknown option '%s'", arg);
            return -1;
        }
        if (!options[id].arg) {
            if (value) {
                usage_error("--%s takes no value", options[id].name);
                return -1;
            }
            a->set[id]++;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                usage_error("--%s needs a value (%s)", options[id].name, options[id].arg);
                return -1;
            }
            value = argv[++i];
        }
        if (a->set[id] && !options[id].repeat) {
            usage_error("--%s given twice", options[id].name);
            return -1;
        }
        a->set[id]++;
        a->val[id] = value;
        if (id == O_TYPE)
            a->types[a->n_types++] = value;
        if (id == O_SCOPE)
            a->scopes[a->n_scopes++] = value;
    }
    return 0;
}

/* ---- commands ----------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmd_ping(struct args *a)
{
    maos_ctx *c;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    double t0 = now_ms();
    if (maos_ping(c)) {
        rc = report(c, "ping");
    } else if (a->json) {
        json_t *o = json_pack("{s:b,s:s,s:f}", "ok", 1, "server", maos_server_name(c),
                              "ms", (double)(long long)((now_ms() - t0) * 1000) / 1000);
        print_json_line(o);
    } else {
        printf("pong from %s (%.3f ms)\n", maos_server_name(c), now_ms() - t0);
    }
    maos_free(c);
    return rc;
}

/* Events being built for an append: their msgpack buffers are owned here. */
struct batch {
    maos_event_spec *ev;
    uint8_t (*ids)[16];
    char **bufs;   /* malloc'd data/meta/type copies to free */
    size_t n, cap, nbufs, bufcap;
};

static int batch_keep(struct batch *b, char *p)
{
    if (b->nbufs == b->bufcap) {
        size_t cap = b->bufcap ? b->bufcap * 2 : 16;
        char **nb = realloc(b->bufs, cap * sizeof *nb);
        if (!nb)
            return -1;
        b->bufs = nb;
        b->bufcap = cap;
    }
    b->bufs[b->nbufs++] = p;
    return 0;
}

static maos_event_spec *batch_add(struct batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        maos_event_spec *ne = realloc(b->ev, cap * sizeof *ne);
        if (!ne)
            return NULL;
        b->ev = ne;
        uint8_t(*ni)[16] = realloc(b->ids, cap * sizeof *ni);
        if (!ni)
            return NULL;
        b->ids = ni;
        b->cap = cap;
    }
    maos_event_spec *e = &b->ev[b->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->nbufs; i++)
        free(b->bufs[i]);
    free(b->bufs);
    free(b->ev);
    free(b->ids);
}

/* Fill e from JSON parts; usage errors are printed with `where`. */
static int event_from(struct batch *b, maos_event_spec *e, const char *where,
                      const char *type, const json_t *data, const char *id_text,
                      const json_t *meta)
{
    char why[200], *buf;
    size_t len;
    size_t idx = (size_t)(e - b->ev);
    char *t = strdup(type);
    if (!t || batch_keep(b, t))
        return usage_error("out of memory"), -1;
    e->type = t;
    if (data) {
        if (maos_json_to_msgpack(data, &buf, &len, why, sizeof why)) {
            usage_error("%sdata: %s", where, why);
            return -1;
        }
        if (batch_keep(b, buf))
            return free(buf), -1;
        e->data = buf;
        e->data_len = len;
    }
    if (meta) {
        if (!json_is_object(meta)) {
            usage_error("%smeta must be a JSON object", where);
            return -1;
        }
        if (maos_json_to_msgpack(meta, &buf, &len, why, sizeof why)) {
            usage_error("%smeta: %s", where, why);
            return -1;
        }
        if (batch_keep(b, buf))
            return free(buf), -1;
        e->meta = buf;
        e->meta_len = len;
    }
    if (id_text) {
        if (maos_uuid_parse(id_text, strlen(id_text), b->ids[idx])) {
            usage_error("%sbad UUID '%s'", where, id_text);
            return -1;
        }
        e->id = b->ids[idx];
    }
    return 0;
}

static json_t *parse_json_arg(const char *what, const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                           &err);
    if (!v)
        usage_error("%s is not valid JSON: %s (column %d)", what, err.text, err.column);
    return v;
}

static int read_batch(struct batch *b, const char *file)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    char *line = NULL, where[64];
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    if (!f) {
        usage_error("cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        json_error_t err;
        lineno++;
        snprintf(where, sizeof where, "line %ld: ", lineno);
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (!o) {
            usage_error("%sinvalid JSON: %s (column %d)", where, err.text, err.column);
            rc = -1;
            break;
        }
        const char *key;
        json_t *v;
        json_t *type = json_object_get(o, "type"), *data = json_object_get(o, "data");
        json_t *id = json_object_get(o, "id"), *meta = json_object_get(o, "meta");
        json_object_foreach(o, key, v)
        {
            if (strcmp(key, "type") && strcmp(key, "data") && strcmp(key, "id") &&
                strcmp(key, "meta")) {
                usage_error("%sunknown key \"%s\"", where, key);
                rc = -1;
            }
        }
        if (!rc && !json_is_string(type)) {
            usage_error("%s\"type\" (a string) is required", where);
            rc = -1;
        }
        if (!rc && !data) {
            usage_error("%s\"data\" is required", where);
            rc = -1;
        }
        if (!rc && id && !json_is_string(id)) {
            usage_error("%s\"id\" must be a UUID string", where);
            rc = -1;
        }
        if (!rc) {
            maos_event_spec *e = batch_add(b);
            if (!e) {
                usage_error("out of memory");
                rc = -1;
            } else {
                rc = event_from(b, e, where, json_string_value(type), data,
                                id ? json_string_value(id) : NULL, meta);
            }
        }
        json_decref(o);
    }
    if (!rc && ferror(f)) {
        usage_error("cannot read %s: %s", file, strerror(errno));
        rc = -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (!rc && b->n == 0) {
        usage_error("%s holds no events", file);
        rc = -1;
    }
    return rc;
}

static int cmd_append(struct args *a)
{
    struct batch b = {0};
    int64_t expect;
    int rc;
    const char *stream = a->pos[0];
    if (parse_expect(a->val[O_EXPECT], &expect)) {
        usage_error("bad --expect '%s' (a number, any, no_stream or exists)",
                    a->val[O_EXPECT]);
        return EXIT_USAGE;
    }
    if (a->set[O_BATCH]) {
        if (a->npos != 1 || a->set[O_ID] || a->set[O_META]) {
            usage_error("--batch takes only STREAM (type, data, id and meta come from "
                        "the lines)");
            return EXIT_USAGE;
        }
        if (read_batch(&b, a->val[O_BATCH])) {
            batch_free(&b);
            return EXIT_USAGE;
        }
    } else {
        if (a->npos != 3) {
            usage_error("append needs STREAM TYPE DATA_JSON (or STREAM --batch FILE)");
            return EXIT_USAGE;
        }
        json_t *data = parse_json_arg("DATA_JSON", a->pos[2]), *meta = NULL;
        if (!data)
            return EXIT_USAGE;
        if (a->val[O_META] && !(meta = parse_json_arg("--meta", a->val[O_META]))) {
            json_decref(data);
            return EXIT_USAGE;
        }
        maos_event_spec *e = batch_add(&b);
        rc = e ? event_from(&b, e, "", a->pos[1], data, a->val[O_ID], meta) : -1;
        json_decref(data);
        json_decref(meta);
        if (rc) {
            batch_free(&b);
            return EXIT_USAGE;
        }
    }

    maos_ctx *c;
    if ((rc = connect_to(a, &c))) {
        batch_free(&b);
        return rc;
    }
    uint8_t(*ids)[16] = calloc(b.n, 16);
    maos_append_info info;
    if (!ids) {
        fprintf(stderr, "maosctl: out of memory\n");
        rc = EXIT_REFUSED;
    } else if (maos_append_ids(c, stream, expect, b.ev, b.n, &info, ids)) {
        rc = report(c, "append");
    } else {
        for (uint32_t i = 0; i < info.count && i < b.n; i++) {
            char idt[37];
            maos_uuid_format(ids[i], idt);
            if (a->json)
                print_json_line(json_pack("{s:s,s:I,s:I,s:s}", "stream", stream,
                                          "version", (json_int_t)(info.version + i),
                                          "position", (json_int_t)(info.position + i),
                                          "id", idt));
            else
                printf("%s@%" PRIu64 "  position %" PRIu64 "  id %s%s\n", stream,
                       info.version + i, info.position + i, idt,
                       info.duplicate ? "  (duplicate, already stored)" : "");
        }
    }
    free(ids);
    maos_free(c);
    batch_free(&b);
    return rc;
}

/* Shared paging loop of read and read-all. */
static int print_pages(struct args *a, const char *stream, const maos_read_filter *f)
{
    uint64_t from = MAOS_FROM_START, limit = 0, left;
    int backward = a->set[O_BACKWARD] > 0;
    maos_ctx *c;
    int rc;
    if (a->set[O_FROM] && parse_u64(a->val[O_FROM], &from)) {
        usage_error("bad --from '%s' (a non-negative number)", a->val[O_FROM]);
        return EXIT_USAGE;
    }
    if (from == MAOS_FROM_START && a->set[O_FROM]) {
        usage_error("--from out of range");
        return EXIT_USAGE;
    }
    if (a->set[O_LIMIT] && (parse_u64(a->val[O_LIMIT], &limit) || limit == 0)) {
        usage_error("bad --limit '%s' (a positive number)", a->val[O_LIMIT]);
        return EXIT_USAGE;
    }
    if ((rc = connect_to(a, &c)))
        return rc;
    left = limit;
    for (;;) {
        maos_page *pg;
        uint32_t want = PAGE_EVENTS;
        if (limit && left < want)
            want = (uint32_t)left;
        int err = stream ? maos_read(c, stream, from, backward, want, &pg)
                         : maos_read_all(c, f, from, backward, want, &pg);
        if (err) {
            rc = report(c, stream ? "read" : "read-all");
            break;
        }
        for (size_t i = 0; i < pg->n && !rc; i++)
            if (print_event(a, &pg->events[i]))
                rc = EXIT_REFUSED;
        if (limit)
            left -= pg->n < left ? pg->n : left;
        int more = pg->has_next && (!limit || left > 0);
        from = pg->next;
        maos_page_free(pg);
        if (rc || !more)
            break;
    }
    maos_free(c);
    return rc;
}

static int cmd_read(struct args *a)
{
    return print_pages(a, a->pos[0], NULL);
}

/* The server-side filter of read-all and tail; 0 or EXIT_USAGE. */
static int parse_filter(struct args *a, maos_read_filter *f)
{
    memset(f, 0, sizeof *f);
    f->stream = a->val[O_STREAM];
    f->prefix = a->val[O_PREFIX];
    f->category = a->val[O_CATEGORY];
    f->types = a->types;
    f->n_types = a->n_types;
    if (a->set[O_SINCE]) {
        if (maos_time_parse(a->val[O_SINCE], &f->since)) {
            usage_error("bad --since '%s' (RFC 3339 or microseconds)", a->val[O_SINCE]);
            return EXIT_USAGE;
        }
        f->has_since = 1;
    }
    if (a->set[O_UNTIL]) {
        if (maos_time_parse(a->val[O_UNTIL], &f->until)) {
            usage_error("bad --until '%s' (RFC 3339 or microseconds)", a->val[O_UNTIL]);
            return EXIT_USAGE;
        }
        f->has_until = 1;
    }
    return 0;
}

static int cmd_read_all(struct args *a)
{
    maos_read_filter f;
    if (parse_filter(a, &f))
        return EXIT_USAGE;
    return print_pages(a, NULL, &f);
}

static int cmd_streams(struct args *a)
{
    maos_ctx *c;
    char *after = NULL;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    for (;;) {
        maos_stream_page *pg;
        if (maos_streams(c, a->val[O_PREFIX], after, MAOS_READ_LIMIT_MAX, &pg)) {
            rc = report(c, "streams");
            break;
        }
        for (size_t i = 0; i < pg->n; i++) {
            const maos_stream_entry *s = &pg->streams[i];
            if (a->json)
                print_json_line(json_pack("{s:s%,s:I,s:I,s:I}", "stream", s->stream,
                                          s->stream_len, "head", (json_int_t)s->head,
                                          "count", (json_int_t)s->count,
                                          "last_position", (json_int_t)s->last_position));
            else
                printf("%.*s  head %" PRIu64 "  count %" PRIu64 "  last position %" PRIu64
                       "\n",
                       (int)s->stream_len, s->stream, s->head, s->count, s->last_position);
        }
        free(after);
        after = pg->has_next && *pg->next ? strdup(pg->next) : NULL;
        int more = pg->has_next && *pg->next;
        maos_stream_page_free(pg);
        if (!more)
            break;
        if (!after) {
            fprintf(stderr, "maosctl: out of memory\n");
            rc = EXIT_REFUSED;
            break;
        }
    }
    free(after);
    maos_free(c);
    return rc;
}

/* Every counter the daemon sends, by name (maos_stats_kv): a newer
 * daemon's counters show up without a new maosctl. */
static int cmd_stats(struct args *a)
{
    maos_ctx *c;
    maos_stats_kv *kv = NULL;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (a->set[O_PROMETHEUS]) {
        char *text = NULL;
        if (maos_metrics(c, &text))
            rc = report(c, "stats");
        else
            fputs(text, stdout);
        free(text);
        maos_free(c);
        return rc;
    }
    maos_queue_stat *qi = NULL;
    size_t nq = 0;
    const char *name;
    uint64_t v;
    if (maos_stats_get_kv(c, &kv) || maos_queue_stats(c, NULL, &qi, &nq)) {
        rc = report(c, "stats");
    } else {
        const char *texts[3] = {"server", "state", "durability"};
        const char *tv[3];
        for (int i = 0; i < 3; i++)
            tv[i] = maos_stats_text(kv, texts[i]) ? maos_stats_text(kv, texts[i]) : "";
        if (a->json) {
            json_t *o = json_pack("{s:s,s:s,s:s}", "server", tv[0], "state", tv[1],
                                  "durability", tv[2]);
            while (maos_stats_next(kv, &name, &v))
                json_object_set_new(o, name, json_integer((json_int_t)v));
            /* the queues' figures, as queue stats prints them */
            json_t *qs = json_array();
            for (size_t i = 0; i < nq; i++)
                json_array_append_new(qs, queue_info_json(&qi[i]));
            json_object_set_new(o, "queues", qs);
            print_json_line(o);
        } else {
            for (int i = 0; i < 3; i++)
                printf("%-18s %s\n", texts[i], tv[i]);
            while (maos_stats_next(kv, &name, &v))
                printf("%-18s %" PRIu64 "\n", name, v);
            for (size_t i = 0; i < nq; i++)
                print_queue_info(a, &qi[i]);
        }
    }
    maos_stats_kv_free(kv);
    free(qi);
    maos_free(c);
    return rc;
}

/* n bytes for a person: "12.3 MiB" */
static void human_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%" PRIu64 " bytes", n);
    else
        snprintf(out, cap, "%.1f %s", v, unit[u]);
}

static int cmd_status(struct args *a)
{
    maos_ctx *c;
    maos_stats_info s;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (maos_stats_get(c, &s)) {
        rc = report(c, "status");
        maos_free(c);
        return rc;
    }
    uint64_t up = s.uptime_us / 1000000;
    if (a->json) {
        json_t *o = json_pack(
            "{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "server", s.server,
            "state", s.state, "durability", s.durability, "data_dir", s.data_dir,
            "data_bytes", (json_int_t)s.data_bytes, "uptime_s", (json_int_t)up,
            "head_position", (json_int_t)s.head_position, "requests_per_s",
            (json_int_t)s.requests_per_s, "events_per_s", (json_int_t)s.events_per_s,
            "connections", (json_int_t)s.connections, "connections_total",
            (json_int_t)s.connections_total, "subscriptions", (json_int_t)s.subscriptions,
            "subscriptions_live", (json_int_t)s.subscriptions_live,
            "subscriptions_max_lag", (json_int_t)s.subscriptions_max_lag);
        print_json_line(o);
    } else {
        char size[32];
        human_bytes(s.data_bytes, size, sizeof size);
        printf("%s, state %s, durability %s\n", s.server, s.state, s.durability);
        printf("%-14s %" PRIu64 "d %02" PRIu64 "h %02" PRIu64 "m %02" PRIu64 "s\n",
               "uptime", up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
        printf("%-14s %s, %s on disk\n", "data", s.data_dir[0] ? s.data_dir : "?", size);
        printf("%-14s position %" PRIu64 "\n", "head", s.head_position);
        printf("%-14s %" PRIu64 " requests/s, %" PRIu64 " events/s (last minute)\n", "rate",
               s.requests_per_s, s.events_per_s);
        printf("%-14s %" PRIu64 " now, %" PRIu64 " since start\n", "connections",
               s.connections, s.connections_total);
        printf("%-14s %" PRIu64 " (%" PRIu64 " live), the slowest %" PRIu64
               " events behind\n",
               "subscriptions", s.subscriptions, s.subscriptions_live,
               s.subscriptions_max_lag);
    }
    maos_free(c);
    return rc;
}

/*
 * verify: positions must be 1, 2, 3, ... and each record's prev must be the
 * BLAKE2b-256 (unkeyed) of the previous record's bytes (zeros before 1), or
 * for the stub of a removed event the hash it keeps; after retention
 * collapsed the log's start, from the stub at log_anchor (its prev is
 * taken as the chain's start);
 * and the record at the head the daemon reported when verify started must
 * hash to the head hash it stores, so that a rewritten newest event (which
 * no later record's prev covers yet) is caught too.  A read that fails on
 * damaged storage names the first position that cannot be read: the
 * daemon hands out every intact event before damage and fails the read
 * that starts at it.
 */
static int verify_bad(struct args *a, uint64_t pos, const char *why)
{
    if (a->json)
        print_json_line(json_pack("{s:b,s:I,s:s}", "ok", 0, "position", (json_int_t)pos,
                                  "error", why));
    else
        printf("BAD: position %" PRIu64 ": %s\n", pos, why);
    return EXIT_REFUSED;
}

/* The public key in a file, as maosctl pubkey prints it (64 hex digits). */
static int read_pubkey(const char *path, uint8_t key[32])
{
    char buf[256];
    size_t n, bin;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "maosctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && isspace((unsigned char)buf[n - 1]))
        buf[--n] = 0;
    if (n != 64 || sodium_hex2bin(key, 32, buf, n, NULL, &bin, NULL) || bin != 32) {
        fprintf(stderr, "maosctl: %s does not hold a public key (64 hex digits, as "
                "maosctl pubkey prints it)\n", path);
        return -1;
    }
    return 0;
}


/* The first readable version of streams, as verify met their stubs: a
 * small cache, so a log of many stubs asks once per stream (up to its
 * size; past it, once per stub). */
#define FIRST_CACHE 1024
struct first_cache {
    char *name[FIRST_CACHE];
    uint64_t first[FIRST_CACHE];
};

/* 0 and *first for stream (len bytes), or -1 (c->err says why). */
static int stream_first(maos_ctx *c, struct first_cache *fc, const char *s, size_t len,
                        uint64_t *first)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    size_t at = h % FIRST_CACHE;
    for (size_t k = 0; k < 8; k++) {
        size_t i = (at + k) % FIRST_CACHE;
        if (fc->name[i] && strlen(fc->name[i]) == len && !memcmp(fc->name[i], s, len)) {
            *first = fc->first[i];
            return 0;
        }
    }
    char *name = strndup(s, len);
    maos_stream_meta_info info;
    if (!name || maos_stream_meta(c, name, NULL, NULL, &info)) {
        free(name);
        return -1;
    }
    *first = info.first_version;
    for (size_t k = 0; k < 8; k++) {
        size_t i = (at + k) % FIRST_CACHE;
        if (!fc->name[i]) {
            fc->name[i] = name;
            fc->first[i] = info.first_version;
            return 0;
        }
    }
    free(name);
    return 0;
}

static int verify_log(struct args *a, struct first_cache *fc)
{
    uint8_t prev[MAOS_HASH_BYTES] = {0}, key[32];
    uint64_t expect = 1, from = 1, count = 0, removed = 0, anchor = 0, signed_to = 0;
    uint64_t n_signed = 0;
    int with_key = a->set[O_PUBKEY];
    maos_stats_info st;
    maos_stats_kv *kv = NULL;
    maos_ctx *c;
    int rc;
    if (sodium_init() < 0) {
        fprintf(stderr, "maosctl: libsodium cannot be initialized\n");
        return EXIT_REFUSED;
    }
    if (with_key && read_pubkey(a->val[O_PUBKEY], key))
        return EXIT_USAGE;
    if ((rc = connect_to(a, &c)))
        return rc;
    if (maos_stats_get(c, &st) || maos_stats_get_kv(c, &kv)) {
        rc = report(c, "verify");
        maos_free(c);
        return rc;
    }
    /* after retention the chain starts at the stub kept at log_anchor
     * (an older daemon has no such counter: the whole log) */
    if (maos_stats_find(kv, "log_anchor", &anchor))
        anchor = 0;
    maos_stats_kv_free(kv);
    for (;;) {
        maos_page *pg;
        if (maos_read_log(c, from, PAGE_EVENTS, &pg)) {
            if (c->err == MAOS_ECORRUPT) {
                char why[sizeof c->errstr + 32];
                snprintf(why, sizeof why, "cannot be read: %s", c->errstr);
                rc = verify_bad(a, expect, why);
            } else {
                rc = report(c, "verify");
            }
            break;
        }
        for (size_t i = 0; i < pg->n && !rc; i++) {
            const maos_event *e = &pg->events[i];
            uint8_t stub[MAOS_HASH_BYTES];
            uint64_t first = 0;
            int is_stub = maos_event_removed(e, stub);
            char why[128];
            if (is_stub && e->position > expect && e->position != anchor &&
                !maos_stats_get_kv(c, &kv)) {
                /* a retention pass collapsed the log's start while this ran:
                 * the stub at the new anchor is where the chain goes on */
                if (maos_stats_find(kv, "log_anchor", &anchor))
                    anchor = 0;
                maos_stats_kv_free(kv);
                if (e->position == anchor)
                    expect = 1;
            }
            if (expect == 1 && anchor > 1 && e->position == anchor && is_stub) {
                /* the anchor: what came before it is gone, its prev
                 * is where the chain starts */
                expect = anchor;
                memcpy(prev, e->prev, sizeof prev);
            }
            if (e->position != expect) {
                snprintf(why, sizeof why, "expected position %" PRIu64 ", found %" PRIu64,
                         expect, e->position);
                rc = verify_bad(a, expect, why);
            } else if (memcmp(e->prev, prev, sizeof prev) != 0) {
                rc = verify_bad(a, e->position,
                                "prev hash does not match the previous record");
            } else if (is_stub && stream_first(c, fc, e->stream, e->stream_len, &first)) {
                rc = report(c, "verify");
            } else if (is_stub && e->version >= first) {
                /* only retention makes stubs, and only below its stream's
                 * first version: anything else is an event taken out */
                snprintf(why, sizeof why, "a removed event (version %" PRIu64 ") that its "
                         "stream still holds (first version %" PRIu64 ")", e->version, first);
                rc = verify_bad(a, e->position, why);
            } else {
                if (is_stub)
                    memcpy(prev, stub, sizeof prev);
                else
                    crypto_generichash(prev, sizeof prev, e->raw, e->raw_len, NULL, 0);
                if (e->position == st.head_position &&
                    memcmp(prev, st.head_hash, sizeof prev) != 0)
                    rc = verify_bad(a, e->position,
                                    "the record does not match the head hash the "
                                    "daemon stored for it");
                const char *bad;
                if (!rc && with_key && !is_stub && e->stream_len == 6 &&
                    !memcmp(e->stream, "$chain", 6) && e->type_len == 10 &&
                    !memcmp(e->type, "checkpoint", 10)) {
                    if ((bad = maosctl_checkpoint_bad(e, key)))
                        rc = verify_bad(a, e->position, bad);
                    signed_to = e->position - 1;
                    n_signed++;
                }
                expect++;
                if (is_stub)
                    removed++;
                else
                    count++;
            }
        }
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (rc || !more)
            break;
    }
    if (!rc && expect - 1 < st.head_position) {
        char why[96];
        snprintf(why, sizeof why, "the log ends at position %" PRIu64
                 " but the daemon's head is %" PRIu64, expect - 1, st.head_position);
        rc = verify_bad(a, expect, why);
    }
    if (!rc && with_key && !n_signed)
        rc = verify_bad(a, expect, "no signed checkpoint in the log: nothing is proven by "
                        "the key (maosd signs every chain_interval_s while it is written)");
    if (!rc) {
        if (a->json)
            print_json_line(json_pack("{s:b,s:I,s:I,s:I,s:I,s:I}", "ok", 1, "events",
                                      (json_int_t)count, "head", (json_int_t)(expect - 1),
                                      "removed", (json_int_t)removed, "anchor",
                                      (json_int_t)anchor, "signed_to",
                                      (json_int_t)signed_to));
        else if (removed || anchor > 1)
            printf("OK: %" PRIu64 " events, head %" PRIu64 " (%" PRIu64 " removed by "
                   "retention, chain from position %" PRIu64 ")\n", count, expect - 1,
                   removed, anchor > 1 ? anchor : 1);
        else
            printf("OK: %" PRIu64 " events, head %" PRIu64 "\n", count, expect - 1);
        if (with_key && !a->json)
            printf("signed: %" PRIu64 " checkpoints; the log up to position %" PRIu64
                   " is signed by the key\n", n_signed, signed_to);
    }
    maos_free(c);
    return rc;
}

static int cmd_verify(struct args *a)
{
    if (a->set[O_EXPORT]) {
        uint8_t key[32];
        if (a->set[O_PUBKEY] && read_pubkey(a->val[O_PUBKEY], key))
            return EXIT_USAGE;
        int rc = maosctl_verify_export(a->val[O_EXPORT], a->set[O_PUBKEY] ? key : NULL,
                                       a->json, stdout);
        return rc == 0 ? EXIT_OK : rc == 1 ? EXIT_REFUSED : EXIT_USAGE;
    }
    struct first_cache *fc = calloc(1, sizeof *fc);
    if (!fc) {
        fprintf(stderr, "maosctl: out of memory\n");
        return EXIT_REFUSED;
    }
    int rc = verify_log(a, fc);
    for (size_t i = 0; i < FIRST_CACHE; i++)
        free(fc->name[i]);
    free(fc);
    return rc;
}

/* ---- subscriptions ----------------------------------------------------------------- */

/* --count and --timeout of tail and listen. */
struct watch {
    uint64_t count;  /* 0: unlimited */
    int timeout_ms;  /* -1: none */
    uint64_t got;
    double last;     /* now_ms() of the last item (or the start) */
};

static int parse_watch(struct args *a, struct watch *w)
{
    memset(w, 0, sizeof *w);
    w->timeout_ms = -1;
    if (a->set[O_COUNT] && (parse_u64(a->val[O_COUNT], &w->count) || w->count == 0)) {
        usage_error("bad --count '%s' (a positive number)", a->val[O_COUNT]);
        return EXIT_USAGE;
    }
    if (a->timeout_set && a->timeout_ms > 0)
        w->timeout_ms = a->timeout_ms; /* --timeout none: no idle end */
    return 0;
}

/* Milliseconds maos_next may wait: the rest of the idle timeout, or -1. */
static int watch_wait(const struct watch *w)
{
    if (w->timeout_ms < 0)
        return -1;
    double left = w->last + w->timeout_ms - now_ms();
    return left <= 0 ? 0 : (int)(left + 0.999);
}

/*
 * Take deliveries until --count items, --timeout without one, or an error.
 * item() prints one delivery and returns how many items it counted (it
 * gets the number still wanted, 0 for no limit), or < 0 on error.
 */
static int watch_loop(struct args *a, maos_ctx *c, struct watch *w, const char *what,
                      int (*item)(struct args *, const maos_delivery *, uint64_t))
{
    w->last = now_ms();
    for (;;) {
        maos_delivery *d;
        int err = maos_next(c, watch_wait(w), &d);
        if (err == MAOS_ETIMEOUT && !maos_is_dead(c)) {
            if (w->count && w->got < w->count) {
                fprintf(stderr,
                        "maosctl: %s: timed out after %" PRIu64 " of %" PRIu64 "\n",
                        what, w->got, w->count);
                return EXIT_REFUSED;
            }
            return EXIT_OK;
        }
        if (err)
            return report(c, what);
        int n = item(a, d, w->count ? w->count - w->got : 0);
        maos_delivery_free(d);
        if (n < 0)
            return EXIT_REFUSED;
        if (n > 0) {
            w->got += (uint64_t)n;
            w->last = now_ms();
            if (fflush(stdout) != 0)
                return EXIT_REFUSED; /* main reports the write error */
        }
        if (w->count && w->got >= w->count)
            return EXIT_OK;
    }
}

static int tail_item(struct args *a, const maos_delivery *d, uint64_t want)
{
    if (d->kind != MAOS_PUSH_EVENTS)
        return 0; /* caught_up / fell_behind: nothing to print */
    size_t n = d->n;
    if (want && want < n)
        n = (size_t)want;
    for (size_t i = 0; i < n; i++)
        if (print_event(a, &d->events[i]))
            return -1;
    return (int)n;
}

static int cmd_tail(struct args *a)
{
    maos_read_filter f;
    struct watch w;
    int kind = MAOS_FROM_LIVE, rc;
    uint64_t from = 0;
    maos_ctx *c;
    if (parse_filter(a, &f) || parse_watch(a, &w))
        return EXIT_USAGE;
    if (a->set[O_FROM]) {
        const char *v = a->val[O_FROM];
        if (strcmp(v, "start") == 0) {
            kind = MAOS_FROM_POSITION;
            from = 1;
        } else if (strcmp(v, "end") != 0) {
            if (parse_u64(v, &from) || from == 0) {
                usage_error("bad --from '%s' (start, end or a position >= 1)", v);
                return EXIT_USAGE;
            }
            kind = MAOS_FROM_POSITION;
        }
    }
    if ((rc = connect_to(a, &c)))
        return rc;
    maos_set_reconnect(c, 1, 0);
    if (maos_subscribe(c, &f, kind, from, NULL))
        rc = report(c, "tail");
    else
        rc = watch_loop(a, c, &w, "tail", tail_item);
    maos_free(c);
    return rc;
}

static int listen_item(struct args *a, const maos_delivery *d, uint64_t want)
{
    (void)want;
    if (d->kind != MAOS_PUSH_MESSAGE)
        return 0;
    json_t *payload;
    int rc = maos_msgpack_to_json(d->payload, d->payload_len, &payload);
    if (rc) {
        fprintf(stderr, "maosctl: cannot show a message on %.*s: %s\n",
                (int)d->channel_len, d->channel, maos_strerror(rc));
        return -1;
    }
    if (a->json) {
        print_json_line(json_pack("{s:s%,s:o}", "channel", d->channel, d->channel_len,
                                  "payload", payload));
        return 1;
    }
    char *text = NULL;
    rc = maos_json_dump(payload, &text);
    json_decref(payload);
    if (rc) {
        fprintf(stderr, "maosctl: out of memory\n");
        return -1;
    }
    printf("%.*s  %s\n", (int)d->channel_len, d->channel, text);
    free(text);
    return 1;
}

static int cmd_listen(struct args *a)
{
    struct watch w;
    maos_ctx *c;
    int rc;
    if (parse_watch(a, &w))
        return EXIT_USAGE;
    if ((rc = connect_to(a, &c)))
        return rc;
    maos_set_reconnect(c, 1, 0);
    if (maos_subscribe_channel(c, a->pos[0], NULL))
        rc = report(c, "listen");
    else
        rc = watch_loop(a, c, &w, "listen", listen_item);
    maos_free(c);
    return rc;
}

static int cmd_publish(struct args *a)
{
    maos_ctx *c;
    uint64_t receivers = 0;
    json_t *v = parse_json_arg("JSON", a->pos[1]);
    int rc;
    if (!v)
        return EXIT_USAGE;
    json_decref(v); /* checked here so a bad argument never connects */
    if ((rc = connect_to(a, &c)))
        return rc;
    if (maos_publish_json(c, a->pos[0], a->pos[1], &receivers))
        rc = report(c, "publish");
    else if (a->json)
        print_json_line(json_pack("{s:s,s:I}", "channel", a->pos[0], "receivers",
                                  (json_int_t)receivers));
    else
        printf("%s: sent to %" PRIu64 " subscriber%s\n", a->pos[0], receivers,
               receivers == 1 ? "" : "s");
    maos_free(c);
    return rc;
}

static void print_stream_meta(const struct args *a, const char *name, int category,
                              const maos_stream_meta_info *m)
{
    if (a->json) {
        json_t *o = json_pack("{s:s,s:I,s:I}", category ? "category" : "stream", name,
                              "max_count", (json_int_t)m->max_count, "max_age_ms",
                              (json_int_t)m->max_age_ms);
        if (m->is_stream)
            json_object_update_new(o, json_pack("{s:I,s:I,s:b}", "first_version",
                                                (json_int_t)m->first_version, "head",
                                                (json_int_t)m->head, "deleted", m->deleted));
        print_json_line(o);
        return;
    }
    printf("%s %s: max_count %" PRIu64 ", max_age_ms %" PRIu64, category ? "category" : "stream",
           name, m->max_count, m->max_age_ms);
    if (m->is_stream)
        printf(", first version %" PRIu64 ", head %" PRId64 "%s", m->first_version, m->head,
               m->deleted ? ", deleted" : "");
    printf("\n");
}

static int cmd_pubkey(struct args *a)
{
    maos_ctx *c;
    uint8_t key[32];
    char hex[65];
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (maos_pubkey(c, key)) {
        rc = report(c, "pubkey");
    } else {
        sodium_bin2hex(hex, sizeof hex, key, sizeof key);
        if (a->json)
            print_json_line(json_pack("{s:s}", "pubkey", hex));
        else
            printf("%s\n", hex);
    }
    maos_free(c);
    return rc;
}

static int cmd_compact(struct args *a)
{
    maos_ctx *c;
    a->no_request_timeout = !a->timeout_set; /* a large store takes minutes */
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (maos_compact(c))
        rc = report(c, "compact");
    else if (a->json)
        print_json_line(json_pack("{s:b}", "ok", 1));
    else
        printf("compacted\n");
    maos_free(c);
    return rc;
}

static int cmd_stream(struct args *a)
{
    const char *sub = a->pos[0];
    const char *stream = a->npos > 1 ? a->pos[1] : NULL;
    const char *category = a->set[O_CATEGORY] ? a->val[O_CATEGORY] : NULL;
    maos_stream_meta_set set;
    memset(&set, 0, sizeof set);
    int retention = !strcmp(sub, "set-retention");
    if (strcmp(sub, "info") && !retention && strcmp(sub, "truncate") && strcmp(sub, "delete")) {
        usage_error("unknown stream command '%s' (info, set-retention, truncate, delete)", sub);
        return EXIT_USAGE;
    }
    if (!stream == !category || (category && !retention && strcmp(sub, "info"))) {
        usage_error("stream %s needs a STREAM%s", sub,
                    retention || !strcmp(sub, "info") ? " or --category C (one of them)" : "");
        return EXIT_USAGE;
    }
    if (!retention && (a->set[O_MAX_COUNT] || a->set[O_MAX_AGE] || a->set[O_CLEAR])) {
        usage_error("--max-count, --max-age and --clear are for stream set-retention");
        return EXIT_USAGE;
    }
    if (retention) {
        if (a->set[O_CLEAR] && (a->set[O_MAX_COUNT] || a->set[O_MAX_AGE])) {
            usage_error("--clear removes the rule: not with --max-count or --max-age");
            return EXIT_USAGE;
        }
        if (!a->set[O_CLEAR] && !a->set[O_MAX_COUNT] && !a->set[O_MAX_AGE]) {
            usage_error("stream set-retention needs --max-count, --max-age or --clear");
            return EXIT_USAGE;
        }
        if (a->set[O_MAX_COUNT] && (parse_u64(a->val[O_MAX_COUNT], &set.max_count) ||
                                    set.max_count == 0)) {
            usage_error("bad --max-count '%s' (a number >= 1)", a->val[O_MAX_COUNT]);
            return EXIT_USAGE;
        }
        if (a->set[O_MAX_AGE] && (parse_duration_ms(a->val[O_MAX_AGE], &set.max_age_ms) ||
                                  set.max_age_ms == 0)) {
            usage_error("bad --max-age '%s' (a number and a unit: ms, s, m, h, d)",
                        a->val[O_MAX_AGE]);
            return EXIT_USAGE;
        }
        set.set = !a->set[O_CLEAR];
        set.clear = a->set[O_CLEAR];
    }
    if (!strcmp(sub, "truncate")) {
        if (!a->set[O_BEFORE] || parse_u64(a->val[O_BEFORE], &set.truncate_before)) {
            usage_error("stream truncate needs --before V (a version)");
            return EXIT_USAGE;
        }
        set.has_truncate_before = 1;
    } else if (a->set[O_BEFORE]) {
        usage_error("--before is for stream truncate");
        return EXIT_USAGE;
    }
    set.delete_stream = !strcmp(sub, "delete");
    maos_ctx *c;
    maos_stream_meta_info info;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (maos_stream_meta(c, stream, stream ? NULL : category, &set, &info))
        rc = report(c, "stream");
    else
        print_stream_meta(a, stream ? stream : category, !stream, &info);
    maos_free(c);
    return rc;
}

static int cmd_checkpoint(struct args *a)
{
    maos_ctx *c;
    uint64_t pos = 0;
    int rc;
    const char *name = a->pos[0];
    if (a->npos == 2 && parse_u64(a->pos[1], &pos)) {
        usage_error("bad POSITION '%s' (a non-negative number)", a->pos[1]);
        return EXIT_USAGE;
    }
    if ((rc = connect_to(a, &c)))
        return rc;
    if (a->npos == 2 ? maos_checkpoint_save(c, name, pos) : maos_checkpoint_get(c, name, &pos))
        rc = report(c, "checkpoint");
    else if (a->json)
        print_json_line(json_pack("{s:s,s:I}", "name", name, "position", (json_int_t)pos));
    else
        printf("%s  %" PRIu64 "\n", name, pos);
    maos_free(c);
    return rc;
}

static int cmd_backup(struct args *a)
{
    if (a->set[O_VERIFY])
        return run_on_dir(a, a->pos[0], cmd_verify);
    a->no_request_timeout = !a->timeout_set; /* a copy elsewhere takes its time */
    maos_ctx *c;
    uint64_t pos = 0;
    char dir[PATH_MAX];
    int rc;
    if (a->pos[0][0] == '/') {
        snprintf(dir, sizeof dir, "%s", a->pos[0]);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) ||
            snprintf(dir, sizeof dir, "%s/%s", cwd, a->pos[0]) >= (int)sizeof dir) {
            usage_error("cannot make %s an absolute path", a->pos[0]);
            return EXIT_USAGE;
        }
    }
    if ((rc = connect_to(a, &c)))
        return rc;
    if (maos_backup(c, dir, &pos))
        rc = report(c, "backup");
    else if (a->json)
        print_json_line(json_pack("{s:s,s:I}", "dir", dir, "position", (json_int_t)pos));
    else
        printf("backup of position %" PRIu64 " in %s\n", pos, dir);
    maos_free(c);
    return rc;
}

/* ---- export, import (maosctl_data.c) ---------------------------------------------- */

static int cmd_export(struct args *a)
{
    maos_read_filter f;
    export_opts o = {.filter = &f, .format = EXPORT_JSONL};
    if (parse_filter(a, &f))
        return EXIT_USAGE;
    if ((a->set[O_FROM] && (parse_u64(a->val[O_FROM], &o.from) || o.from == 0)) ||
        (a->set[O_TO] && (parse_u64(a->val[O_TO], &o.to) || o.to == 0))) {
        usage_error("bad --from/--to (positions, from 1)");
        return EXIT_USAGE;
    }
    if (o.from && o.to && o.from > o.to) {
        usage_error("--from %" PRIu64 " is past --to %" PRIu64, o.from, o.to);
        return EXIT_USAGE;
    }
    if (a->set[O_FORMAT]) {
        if (!strcmp(a->val[O_FORMAT], "pg-copy"))
            o.format = EXPORT_PG_COPY;
        else if (strcmp(a->val[O_FORMAT], "jsonl")) {
            usage_error("bad --format '%s' (jsonl or pg-copy)", a->val[O_FORMAT]);
            return EXIT_USAGE;
        }
    }
    FILE *out = stdout;
    if (a->set[O_OUTPUT] && strcmp(a->val[O_OUTPUT], "-") &&
        !(out = fopen(a->val[O_OUTPUT], "w"))) {
        fprintf(stderr, "maosctl: export: cannot create %s: %s\n", a->val[O_OUTPUT],
                strerror(errno));
        return EXIT_REFUSED;
    }
    o.progress = isatty(2) && (out != stdout || !isatty(1));
    maos_ctx *c;
    int rc = connect_to(a, &c);
    if (!rc) {
        rc = maosctl_export(c, &o, out) ? EXIT_REFUSED : EXIT_OK;
        maos_free(c);
    }
    if (out != stdout && fclose(out) && !rc) {
        fprintf(stderr, "maosctl: export: cannot write %s: %s\n", a->val[O_OUTPUT],
                strerror(errno));
        rc = EXIT_REFUSED;
    }
    return rc;
}

static int cmd_import(struct args *a)
{
    maos_ctx *c;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    rc = maosctl_import(c, a->pos[0], a->json, stdout) ? EXIT_REFUSED : EXIT_OK;
    maos_free(c);
    return rc;
}

/* ---- token ---------------------------------------------------------------------- */

/* "90s", "15m", "2h", "7d", "500ms" or plain seconds -> ms.  0 or -1. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = !*end ? 1000 : !strcmp(end, "ms") ? 1 : !strcmp(end, "s") ? 1000
                 : !strcmp(end, "m") ? 60e3 : !strcmp(end, "h") ? 3600e3
                 : !strcmp(end, "d") ? 86400e3 : -1;
    if (end == s || errno || mul < 0 || !(v > 0) || v * mul > 100.0 * 365 * 86400e3)
        return -1;
    *out = (uint64_t)(v * mul) ? (uint64_t)(v * mul) : 1;
    return 0;
}

static void print_time_us(int64_t us)
{
    if (!us) {
        fputs("-", stdout);
        return;
    }
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char b[32];
    gmtime_r(&t, &tm);
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fputs(b, stdout);
}

static int cmd_token(struct args *a)
{
    const char *sub = a->pos[0];
    int create = !strcmp(sub, "create"), list = !strcmp(sub, "list"),
        revoke = !strcmp(sub, "revoke");
    if (!create && !list && !revoke) {
        usage_error("unknown token command '%s' (create, list, revoke)", sub);
        return EXIT_USAGE;
    }
    /* the name: --name NAME (create), or the argument */
    const char *name = a->npos == 2 ? a->pos[1] : NULL;
    if (create && a->set[O_NAME]) {
        if (name) {
            usage_error("give the token's name once (--name NAME)");
            return EXIT_USAGE;
        }
        name = a->val[O_NAME];
    }
    if ((list && a->npos != 1) || (!list && !name)) {
        usage_error("token %s takes %s", sub, list ? "no argument" : "a NAME");
        return EXIT_USAGE;
    }
    if (!create && (a->n_scopes || a->set[O_SESSION] || a->set[O_EXPIRES] || a->set[O_UID] ||
                    a->set[O_NAME])) {
        usage_error("--name, --scope, --session, --expires and --uid are for token create");
        return EXIT_USAGE;
    }
    uint64_t expires_ms = 0;
    int64_t uid = -1;
    if (create) {
        if (!a->n_scopes && !a->set[O_SESSION]) {
            usage_error("token create needs --scope (one or more) or --session");
            return EXIT_USAGE;
        }
        if (a->set[O_EXPIRES] && parse_duration_ms(a->val[O_EXPIRES], &expires_ms)) {
            usage_error("bad --expires '%s' (e.g. 90s, 15m, 2h, 7d, 500ms)",
                        a->val[O_EXPIRES]);
            return EXIT_USAGE;
        }
        if (a->set[O_UID]) {
            const char *u = a->val[O_UID];
            char *end;
            errno = 0;
            unsigned long v = strtoul(u, &end, 10);
            if (*u >= '0' && *u <= '9' && !*end && !errno && v < (unsigned long)UINT32_MAX) {
                uid = (int64_t)v;
            } else {
                struct passwd *pw = getpwnam(u);
                if (!pw) {
                    usage_error("--uid '%s' is no user", u);
                    return EXIT_USAGE;
                }
                uid = (int64_t)pw->pw_uid;
            }
        }
    }
    maos_ctx *c;
    int rc = connect_to(a, &c);
    if (rc)
        return rc;
    if (create) {
        char tok[MAOS_TOKEN_TEXT_SIZE];
        if (maos_token_create(c, name, a->scopes, a->n_scopes, expires_ms, uid,
                              a->set[O_SESSION] ? a->val[O_SESSION] : NULL, tok)) {
            rc = report(c, "token create");
        } else if (a->json) {
            json_t *o = json_pack("{s:s, s:s}", "name", name, "token", tok);
            char *t = json_dumps(o, JSON_COMPACT);
            if (t)
                puts(t);
            free(t);
            json_decref(o);
        } else {
            puts(tok);
        }
        sodium_memzero(tok, sizeof tok);
    } else if (revoke) {
        uint64_t closed = 0;
        if (maos_token_revoke(c, name, &closed))
            rc = report(c, "token revoke");
        else if (a->json)
            printf("{\"name\":\"%s\",\"closed\":%" PRIu64 "}\n", name, closed);
        else
            printf("revoked %s: %" PRIu64 " connections closed\n", name, closed);
    } else {
        char *text = NULL;
        if (maos_token_list(c, &text)) {
            rc = report(c, "token list");
        } else {
            json_error_t je;
            json_t *arr = json_loads(text, 0, &je);
            size_t i;
            json_t *t;
            json_array_foreach(arr, i, t) {
                if (a->json) {
                    char *s = json_dumps(t, JSON_COMPACT);
                    if (s)
                        puts(s);
                    free(s);
                    continue;
                }
                printf("%s  ", json_string_value(json_object_get(t, "name")));
                size_t j;
                json_t *sc;
                json_array_foreach(json_object_get(t, "scopes"), j, sc)
                    printf("%s%s", j ? "," : "", json_string_value(sc));
                printf("  created ");
                print_time_us(json_integer_value(json_object_get(t, "created")));
                printf("  expires ");
                print_time_us(json_integer_value(json_object_get(t, "expires")));
                printf("  last used ");
                print_time_us(json_integer_value(json_object_get(t, "last_used")));
                json_int_t u = json_integer_value(json_object_get(t, "uid"));
                if (u >= 0)
                    printf("  uid %lld", (long long)u);
                const char *se = json_string_value(json_object_get(t, "session"));
                if (se)
                    printf("  session %s", se);
                putchar('\n');
            }
            json_decref(arr);
        }
        free(text);
    }
    maos_free(c);
    return rc;
}

/* ---- a private read-only maosd (inspect, backup --verify) ------------------------ */

typedef struct priv_daemon {
    pid_t pid;
    char dir[PATH_MAX];  /* temporary: the socket and maosd's log */
    char sock[PATH_MAX + 16];
    char log[PATH_MAX + 16];
} priv_daemon;

static void priv_log_tail(const priv_daemon *p)
{
    FILE *f = fopen(p->log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "maosd: %s", line);
    if (f)
        fclose(f);
}

static void priv_stop(priv_daemon *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        int st;
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
        }
        p->pid = 0;
    }
    /* the socket, its single-instance lock (<socket>.lock), the log */
    char lock[PATH_MAX + 32];
    snprintf(lock, sizeof lock, "%s.lock", p->sock);
    unlink(lock);
    unlink(p->sock);
    unlink(p->log);
    rmdir(p->dir);
}

/* Start maosd --read-only on data_dir; wait until it accepts (the time
 * bound of --timeout, default 30 s).  0, or an exit status (its log
 * printed). */
static int priv_start(priv_daemon *p, const char *data_dir, const struct args *a)
{
    memset(p, 0, sizeof *p);
    const char *tmp = getenv("TMPDIR");
    snprintf(p->dir, sizeof p->dir, "%s/maosctl-inspect-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(p->dir)) {
        fprintf(stderr, "maosctl: cannot make a temporary directory in %s: %s\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return EXIT_CONNECT;
    }
    snprintf(p->sock, sizeof p->sock, "%s/s.sock", p->dir);
    snprintf(p->log, sizeof p->log, "%s/maosd.log", p->dir);
    const char *bin = getenv("MAOSD_BIN");
    if (!bin || !*bin)
        bin = access(MAOS_SBINDIR "/maosd", X_OK) == 0 ? MAOS_SBINDIR "/maosd" : "maosd";
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "maosctl: cannot create %s: %s\n", p->log, strerror(errno));
        rmdir(p->dir);
        return EXIT_CONNECT;
    }
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid == 0) {
        /* The private daemon goes when maosctl goes, however it goes
         * (killed, crashed): SIGTERM is its clean shutdown.  A parent gone
         * before the prctl is seen by getppid. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        dup2(logfd, 1);
        dup2(logfd, 2);
        /* no config file: only what inspection needs */
        execlp(bin, bin, "--config", "/dev/null", "--data-dir", data_dir, "--socket",
               p->sock, "--read-only", "--log-level", "warn", "--block-cache-mb", "8",
               (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    if (p->pid < 0) {
        fprintf(stderr, "maosctl: fork: %s\n", strerror(errno));
        priv_stop(p);
        return EXIT_CONNECT;
    }
    int ms = a->timeout_set && a->timeout_ms > 0 ? a->timeout_ms : 30000;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            fprintf(stderr, "maosctl: maosd --read-only on %s exited (%s %d):\n", data_dir,
                    WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            priv_log_tail(p);
            priv_stop(p);
            return EXIT_REFUSED;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int ok = snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->sock) <
                     (int)sizeof sa.sun_path &&
                 fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms) {
            fprintf(stderr, "maosctl: maosd --read-only on %s did not start within %d ms\n",
                    data_dir, ms);
            priv_log_tail(p);
            priv_stop(p);
            return EXIT_CONNECT;
        }
        struct timespec pause = {0, 5 * 1000000}; /* polling a child's socket */
        nanosleep(&pause, NULL);
    }
}

/* Run cmd with a private read-only maosd on data_dir as its daemon. */
static int run_on_dir(struct args *a, const char *data_dir, int (*cmd)(struct args *a))
{
    priv_daemon p;
    int rc = priv_start(&p, data_dir, a);
    if (rc)
        return rc;
    a->socket = p.sock;
    rc = cmd(a);
    fflush(stdout);
    priv_stop(&p);
    return rc;
}

/* ---- main ----------------------------------------------------------------------- */


/* ---- tables: kv, lock, session, agent ------------------------------------------- */

/* JSON text of a document (one msgpack value); "(undisplayable)" when not. */
static char *doc_text(maos_str d)
{
    char *t = NULL;
    if (maos_msgpack_to_json_text(d.ptr, d.len, &t))
        return strdup("(undisplayable)");
    return t;
}

static json_t *time_json(int64_t us)
{
    char t[40];
    if (maos_time_format(us, t, sizeof t) < 0)
        return json_integer(us);
    return json_string(t);
}

/* The one JSON form of an entry (maos/json.h); NULL when it cannot be
 * made (out of memory). */
static json_t *entry_json(const maos_table_entry *e)
{
    json_t *o = NULL;
    int rc = maos_entry_to_json(e, &o);
    if (rc) {
        fprintf(stderr, "maosctl: cannot show entry %.*s of %.*s: %s\n", (int)e->key.len,
                e->key.ptr, (int)e->table.len, e->table.ptr, maos_strerror(rc));
        return NULL;
    }
    return o;
}

static void print_entry(const struct args *a, const maos_table_entry *e)
{
    if (a->json) {
        json_t *o = entry_json(e);
        if (o)
            print_json_line(o);
        return;
    }
    char *t = doc_text(e->data);
    printf("%.*s  %" PRIu64 "  %s\n", (int)e->key.len, e->key.ptr, e->revision,
           t ? t : "");
    free(t);
}

static int json_arg(const char *text, const char *what, char **mp, size_t *len)
{
    char why[256] = "";
    if (maos_json_text_to_msgpack(text, strlen(text), mp, len, why, sizeof why)) {
        usage_error("%s is not JSON: %s", what, why);
        return EXIT_USAGE;
    }
    return 0;
}

static void print_revision(const struct args *a, const char *what, uint64_t rev)
{
    if (a->json)
        print_json_line(json_pack("{s:s,s:I}", "op", what, "revision", (json_int_t)rev));
    else
        printf("revision %" PRIu64 "\n", rev);
}

/* Every entry of table (prefix, where), page by page, up to limit (0: all). */
static int print_all_entries(struct args *a, maos_ctx *c, const char *table,
                             const char *prefix, const char *where, size_t where_len,
                             uint64_t limit)
{
    char *after = NULL;
    uint64_t shown = 0;
    int rc = 0;
    for (;;) {
        maos_table_page *pg = NULL;
        if (maos_list(c, table, prefix, after, where, where_len, 0, &pg)) {
            rc = report(c, "list");
            break;
        }
        for (size_t i = 0; i < pg->n && (!limit || shown < limit); i++, shown++)
            print_entry(a, &pg->entries[i]);
        free(after);
        after = pg->has_next ? strdup(pg->next) : NULL;
        maos_table_page_free(pg);
        if (!after || (limit && shown >= limit))
            break;
    }
    free(after);
    return rc;
}

static int kv_item(struct args *a, const maos_delivery *d, uint64_t want)
{
    (void)want;
    int items = 0;
    for (size_t i = 0; i < d->n_entries; i++, items++)
        print_entry(a, &d->entries[i]);
    for (size_t i = 0; i < d->n; i++, items++) {
        const maos_event *e = &d->events[i];
        /* data {table, key, data, created_revision, bound} */
        json_t *ev = NULL;
        if (maos_msgpack_to_json(e->data, e->data_len, &ev))
            continue;
        json_t *key = json_object_get(ev, "key"), *doc = json_object_get(ev, "data");
        if (a->json) {
            print_json_line(json_pack("{s:s%,s:O,s:I,s:O,s:o}", "op", e->type,
                                      e->type_len, "key", key ? key : json_null(),
                                      "revision", (json_int_t)e->position, "data",
                                      doc ? doc : json_null(), "time",
                                      time_json(e->time)));
        } else {
            char *t = NULL;
            if (doc)
                maos_json_dump(doc, &t);
            printf("%.*s  %s  %" PRIu64 "  %s\n", (int)e->type_len, e->type,
                   json_is_string(key) ? json_string_value(key) : "?", e->position,
                   t ? t : "");
            free(t);
        }
        json_decref(ev);
    }
    fflush(stdout);
    return items;
}

static int cmd_kv(struct args *a)
{
    const char *sub = a->pos[0];
    char table[3 + 256];
    if (strlen(a->pos[1]) > 200) {
        usage_error("table name too long");
        return EXIT_USAGE;
    }
    snprintf(table, sizeof table, "kv.%s", a->pos[1]);
    int64_t expect;
    if (parse_expect_as(a->set[O_EXPECT] ? a->val[O_EXPECT] : NULL, &expect, 1)) {
        usage_error("bad --expect '%s' (a revision, any, absent or exists)",
                    a->val[O_EXPECT]);
        return EXIT_USAGE;
    }
    int need = !strcmp(sub, "put") ? 4 : !strcmp(sub, "get") || !strcmp(sub, "del") ? 3
               : !strcmp(sub, "list") || !strcmp(sub, "watch") ? 2 : 0;
    if (!need) {
        usage_error("unknown kv command '%s' (get, put, del, list, watch)", sub);
        return EXIT_USAGE;
    }
    if (a->npos < need || a->npos > (need == 2 ? 3 : need)) {
        usage_error("kv %s: wrong number of arguments", sub);
        return EXIT_USAGE;
    }
    char *doc = NULL;
    size_t doclen = 0;
    int rc;
    if (need == 4 && (rc = json_arg(a->pos[3], "the document", &doc, &doclen)))
        return rc;
    struct watch w;
    int from_kind = MAOS_WATCH_FROM_ENTRIES;
    uint64_t from = 0, limit = 0;
    if (!strcmp(sub, "watch")) {
        if (parse_watch(a, &w)) {
            free(doc);
            return EXIT_USAGE;
        }
        if (a->set[O_FROM]) {
            if (!strcmp(a->val[O_FROM], "now"))
                from_kind = MAOS_WATCH_FROM_NOW;
            else if (parse_u64(a->val[O_FROM], &from) == 0)
                from_kind = MAOS_WATCH_FROM_REVISION;
            else {
                usage_error("bad --from '%s' (a revision or now)", a->val[O_FROM]);
                return EXIT_USAGE;
            }
        }
    }
    if (a->set[O_LIMIT] && parse_u64(a->val[O_LIMIT], &limit)) {
        usage_error("bad --limit '%s'", a->val[O_LIMIT]);
        free(doc);
        return EXIT_USAGE;
    }
    maos_ctx *c;
    if ((rc = connect_to(a, &c))) {
        free(doc);
        return rc;
    }
    const char *key = a->npos > 2 ? a->pos[2] : "";
    uint64_t rev = 0;
    if (!strcmp(sub, "get")) {
        maos_table_page *pg = NULL;
        if (maos_get(c, table, key, &pg))
            rc = report(c, "kv get");
        else
            print_entry(a, &pg->entries[0]);
        maos_table_page_free(pg);
    } else if (!strcmp(sub, "put")) {
        if (maos_put(c, table, key, doc, doclen, expect, 0, &rev))
            rc = report(c, "kv put");
        else
            print_revision(a, "put", rev);
    } else if (!strcmp(sub, "del")) {
        if (maos_delete(c, table, key, expect, &rev))
            rc = report(c, "kv del");
        else
            print_revision(a, "deleted", rev);
    } else if (!strcmp(sub, "list")) {
        rc = print_all_entries(a, c, table, key, NULL, 0, limit);
    } else {
        maos_set_reconnect(c, 1, 0);
        if (maos_watch(c, table, key, from_kind, from, NULL))
            rc = report(c, "kv watch");
        else
            rc = watch_loop(a, c, &w, "kv watch", kv_item);
    }
    free(doc);
    maos_free(c);
    return rc;
}

/* Run argv (NULL-terminated) with extra environment name=value; its exit
 * status (128 + signal when killed), or 127 when it could not start. */
static int run_child(char **argv, const char *name, const char *value)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "maosctl: fork: %s\n", strerror(errno));
        return 127;
    }
    if (pid == 0) {
        if (name)
            setenv(name, value, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "maosctl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmd_lock(struct args *a)
{
    int wait_ms = -1, rc;
    if (a->set[O_WAIT]) {
        char *end;
        double sec = strtod(a->val[O_WAIT], &end);
        if (*end || sec < 0 || sec > 86400.0 * 24) {
            usage_error("bad --wait '%s' (seconds)", a->val[O_WAIT]);
            return EXIT_USAGE;
        }
        wait_ms = (int)(sec * 1000 + 0.5);
    }
    maos_ctx *c;
    if ((rc = connect_to(a, &c)))
        return rc;
    uint64_t token;
    if (maos_lock(c, a->pos[0], wait_ms, &token)) {
        if (c->err == MAOS_ETIMEOUT && !maos_is_dead(c)) {
            /* --wait ran out: the lock is held, the connection is fine */
            fprintf(stderr, "maosctl: lock: %s\n", c->errstr);
            maos_free(c);
            return EXIT_REFUSED;
        }
        rc = report(c, "lock");
        maos_free(c);
        return rc == EXIT_CONNECT ? rc : EXIT_REFUSED;
    }
    char tok[24];
    snprintf(tok, sizeof tok, "%" PRIu64, token);
    fprintf(stderr, "maosctl: lock %s held (fencing token %s)\n", a->pos[0], tok);
    rc = run_child(&a->pos[1], "MAOS_LOCK_TOKEN", tok);
    if (maos_unlock(c, a->pos[0], token))
        report(c, "unlock"); /* the connection's close frees it anyway */
    maos_free(c);
    return rc;
}

static int cmd_session(struct args *a)
{
    const char *sub = a->pos[0];
    maos_ctx *c;
    int rc;
    char *mp = NULL;
    size_t mlen = 0;
    int create = !strcmp(sub, "create"), close_ = !strcmp(sub, "close");
    if (!create && !close_ && strcmp(sub, "list") && strcmp(sub, "show")) {
        usage_error("unknown session command '%s' (create, list, show, close)", sub);
        return EXIT_USAGE;
    }
    if ((!strcmp(sub, "show") || close_) && a->npos < 2) {
        usage_error("session %s needs an ID", sub);
        return EXIT_USAGE;
    }
    const char *json = create ? (a->npos > 1 ? a->pos[1] : NULL)
                       : close_ ? (a->npos > 2 ? a->pos[2] : NULL) : NULL;
    if (json && (rc = json_arg(json, create ? "the metadata" : "the result", &mp, &mlen)))
        return rc;
    if ((rc = connect_to(a, &c))) {
        free(mp);
        return rc;
    }
    if (create) {
        char id[37];
        if (maos_session_create(c, a->set[O_ID] ? a->val[O_ID] : NULL, mp, mlen, id, NULL))
            rc = report(c, "session create");
        else if (a->json)
            print_json_line(json_pack("{s:s}", "id", id));
        else
            printf("%s\n", id);
    } else if (close_) {
        uint64_t rev;
        if (maos_session_close(c, a->pos[1], mp, mlen, &rev))
            rc = report(c, "session close");
        else
            print_revision(a, "closed", rev);
    } else if (!strcmp(sub, "show")) {
        maos_table_page *pg = NULL;
        if (maos_get(c, "sessions", a->pos[1], &pg))
            rc = report(c, "session show");
        else
            print_entry(a, &pg->entries[0]);
        maos_table_page_free(pg);
    } else {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (a->set[O_STATE]) {
            const char *st = a->val[O_STATE];
            msgpack_pack_map(&pk, 1);
            msgpack_pack_str(&pk, 5);
            msgpack_pack_str_body(&pk, "state", 5);
            msgpack_pack_str(&pk, strlen(st));
            msgpack_pack_str_body(&pk, st, strlen(st));
        }
        rc = print_all_entries(a, c, "sessions", "", sb.data, sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
    free(mp);
    maos_free(c);
    return rc;
}

static void print_agent(const struct args *a, const maos_table_entry *e)
{
    json_t *o = entry_json(e);
    if (!o)
        return;
    json_t *d = json_object_get(o, "data");
    if (a->json) {
        /* the agent: its document, with the entry's revision */
        json_t *ag = json_deep_copy(d);
        if (ag) {
            json_object_set_new(ag, "revision", json_integer((json_int_t)e->revision));
            json_t *ls = json_object_get(ag, "last_seen");
            if (json_is_integer(ls))
                json_object_set_new(ag, "last_seen", time_json(json_integer_value(ls)));
        }
        print_json_line(ag);
    } else {
        json_t *ls = json_object_get(d, "last_seen");
        json_t *lst = json_is_integer(ls) ? time_json(json_integer_value(ls)) : NULL;
        const char *sess = json_string_value(json_object_get(d, "session"));
        printf("%.*s  %s  %s  %s\n", (int)e->key.len, e->key.ptr,
               json_string_value(json_object_get(d, "status"))
                   ? json_string_value(json_object_get(d, "status"))
                   : "?",
               sess ? sess : "-", lst ? json_string_value(lst) : "-");
        json_decref(lst);
    }
    json_decref(o);
}

static int cmd_agent(struct args *a)
{
    const char *sub = a->pos[0];
    maos_ctx *c;
    int rc;
    if (!strcmp(sub, "run")) {
        if (!a->set[O_ID] || a->npos < 2) {
            usage_error("agent run needs --id ID and -- COMMAND");
            return EXIT_USAGE;
        }
        if ((rc = connect_to(a, &c)))
            return rc;
        const char *tag = a->set[O_TAG] ? a->val[O_TAG] : NULL;
        maos_agent_spec sp = {.id = a->val[O_ID],
                              .session = a->set[O_SESSION] ? a->val[O_SESSION] : NULL,
                              .name = a->set[O_NAME] ? a->val[O_NAME] : NULL,
                              .kind = a->set[O_KIND] ? a->val[O_KIND] : NULL,
                              .tags = tag ? &tag : NULL,
                              .n_tags = tag ? 1 : 0};
        if (maos_agent_register(c, &sp, NULL)) {
            rc = report(c, "agent run");
            maos_free(c);
            return rc;
        }
        rc = run_child(&a->pos[1], "MAOS_AGENT_ID", a->val[O_ID]);
        maos_free(c); /* the connection closes: the agent is offline */
        return rc;
    }
    if (strcmp(sub, "list") && strcmp(sub, "show")) {
        usage_error("unknown agent command '%s' (list, show, run)", sub);
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "show") && a->npos < 2) {
        usage_error("agent show needs an ID");
        return EXIT_USAGE;
    }
    if ((rc = connect_to(a, &c)))
        return rc;
    if (!strcmp(sub, "show")) {
        maos_table_page *pg = NULL;
        if (maos_get(c, "agents", a->pos[1], &pg))
            rc = report(c, "agent show");
        else
            print_agent(a, &pg->entries[0]);
        maos_table_page_free(pg);
        maos_free(c);
        return rc;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int n = a->set[O_SESSION] + a->set[O_STATUS] + a->set[O_TAG];
    if (n) {
        msgpack_pack_map(&pk, (size_t)n);
        if (a->set[O_TAG]) { /* tags contains it */
            msgpack_pack_str(&pk, 4);
            msgpack_pack_str_body(&pk, "tags", 4);
            msgpack_pack_str(&pk, strlen(a->val[O_TAG]));
            msgpack_pack_str_body(&pk, a->val[O_TAG], strlen(a->val[O_TAG]));
        }
        if (a->set[O_SESSION]) {
            msgpack_pack_str(&pk, 7);
            msgpack_pack_str_body(&pk, "session", 7);
            msgpack_pack_str(&pk, strlen(a->val[O_SESSION]));
            msgpack_pack_str_body(&pk, a->val[O_SESSION], strlen(a->val[O_SESSION]));
        }
        if (a->set[O_STATUS]) {
            msgpack_pack_str(&pk, 6);
            msgpack_pack_str_body(&pk, "status", 6);
            msgpack_pack_str(&pk, strlen(a->val[O_STATUS]));
            msgpack_pack_str_body(&pk, a->val[O_STATUS], strlen(a->val[O_STATUS]));
        }
    }
    char *after = NULL;
    for (;;) {
        maos_table_page *pg = NULL;
        if (maos_list(c, "agents", "", after, sb.data, sb.size, 0, &pg)) {
            rc = report(c, "agent list");
            break;
        }
        for (size_t i = 0; i < pg->n; i++)
            print_agent(a, &pg->entries[i]);
        free(after);
        after = pg->has_next ? strdup(pg->next) : NULL;
        maos_table_page_free(pg);
        if (!after)
            break;
    }
    free(after);
    msgpack_sbuffer_destroy(&sb);
    maos_free(c);
    return rc;
}

/* ---- queue ------------------------------------------------------------------------- */

static volatile sig_atomic_t queue_stop;

static void on_queue_stop(int sig)
{
    (void)sig;
    queue_stop = 1;
}

/* The one JSON form of a task (maos/json.h); NULL when it cannot be made
 * (named on stderr). */
static json_t *task_json(const maos_task_info *t)
{
    json_t *o = NULL;
    int rc = maos_task_to_json(t, &o);
    if (rc) {
        char id[37];
        maos_uuid_format(t->id, id);
        fprintf(stderr, "maosctl: cannot show task %s: %s\n", id, maos_strerror(rc));
        return NULL;
    }
    return o;
}

static void print_task(const struct args *a, const maos_task_info *t)
{
    if (a->json) {
        json_t *o = task_json(t);
        if (o)
            print_json_line(o);
        return;
    }
    char id[37];
    maos_uuid_format(t->id, id);
    char *d = doc_text(t->data);
    if (t->token)
        printf("%s  %" PRIu64 "  %" PRIu64 "  %s\n", id, t->attempt, t->token, d ? d : "");
    else
        printf("%s  %.*s  attempt %" PRIu64 "  %s\n", id, (int)t->state.len, t->state.ptr,
               t->attempt, d ? d : "");
    free(d);
}

/* The JSON form of a queue's figures (queue stats, stats). */
static json_t *queue_info_json(const maos_queue_stat *q)
{
    return json_pack("{s:s#,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "queue", q->queue.ptr,
                     (size_t)q->queue.len, "ready", (json_int_t)q->ready, "delayed",
                     (json_int_t)q->delayed, "blocked", (json_int_t)q->blocked, "leased",
                     (json_int_t)q->leased, "done", (json_int_t)q->done, "dead",
                     (json_int_t)q->dead, "waiting", (json_int_t)q->waiting, "oldest_ready",
                     q->oldest_ready ? time_json(q->oldest_ready) : json_null());
}

static void print_queue_info(const struct args *a, const maos_queue_stat *q)
{
    if (a->json) {
        print_json_line(queue_info_json(q));
        return;
    }
    printf("%.*s  ready %" PRIu64 "  delayed %" PRIu64 "  blocked %" PRIu64 "  leased %" PRIu64
           "  done %" PRIu64 "  dead %" PRIu64 "  waiting %" PRIu64 "\n",
           (int)q->queue.len, q->queue.ptr, q->ready, q->delayed, q->blocked, q->leased,
           q->done, q->dead, q->waiting);
}

static int parse_task_id(const char *s, uint8_t id[16])
{
    if (maos_uuid_parse(s, strlen(s), id)) {
        usage_error("bad task id '%s' (a UUID)", s);
        return EXIT_USAGE;
    }
    return 0;
}

/* An optional numeric option into *v; EXIT_USAGE when it is not a number. */
static int num_opt(const struct args *a, int id, uint64_t max, uint64_t *v)
{
    if (!a->set[id])
        return 0;
    if (parse_u64(a->val[id], v) || *v > max) {
        usage_error("bad --%s '%s'", options[id].name, a->val[id]);
        return EXIT_USAGE;
    }
    return 0;
}

/* The last bytes of a command's stderr, kept for the nack's error. */
#define WORK_ERR_TAIL 1024

struct tail {
    char buf[WORK_ERR_TAIL];
    size_t len;
};

static void tail_add(struct tail *t, const char *p, size_t n)
{
    if (n >= sizeof t->buf) {
        memcpy(t->buf, p + n - sizeof t->buf, sizeof t->buf);
        t->len = sizeof t->buf;
        return;
    }
    if (t->len + n > sizeof t->buf) {
        size_t drop = t->len + n - sizeof t->buf;
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

/* A nack's error from the exit status and the stderr tail: its last
 * non-empty lines, whitespace trimmed, a cut character at the start
 * skipped and any invalid UTF-8 byte replaced by '?' (the daemon takes
 * 1..4096 bytes of UTF-8).  Writes into out (at least 64 +
 * WORK_ERR_TAIL bytes). */
static void work_error(int status, struct tail *t, char *out, size_t cap)
{
    size_t b = 0, e = t->len;
    while (e > b && (t->buf[e - 1] == '\n' || t->buf[e - 1] == '\r' || t->buf[e - 1] == ' ' ||
                     t->buf[e - 1] == '\t'))
        e--;
    while (b < e && ((unsigned char)t->buf[b] & 0xc0) == 0x80)
        b++;
    int n = snprintf(out, cap, "exit status %d%s", status, e > b ? ": " : "");
    size_t o = n > 0 ? (size_t)n : 0;
    for (size_t i = b; i < e && o + 1 < cap;) {
        /* the longest valid UTF-8 sequence at i, else one '?' */
        size_t len = 1;
        unsigned char ch = (unsigned char)t->buf[i];
        if (ch >= 0x80) {
            len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 0;
            if (len == 0 || i + len > e ||
                maos_utf8_check((maos_slice){t->buf + i, (uint32_t)len}, 1, 4) != 0) {
                out[o++] = '?';
                i++;
                continue;
            }
        }
        if (o + len >= cap)
            break;
        memcpy(out + o, t->buf + i, len);
        o += len;
        i += len;
    }
    out[o] = 0;
}

/* Run argv with the payload JSON on stdin; its stdout into *out (malloc'ed,
 * *out_len); its stderr goes on to ours and its tail into *err_tail;
 * extending the lease every lease/3 while it runs.  Its exit status (128 +
 * signal), or 127 when it could not start. */
static int work_one(maos_ctx *c, char **argv, const maos_task_info *t, uint32_t lease_ms,
                    char **out, size_t *out_len, struct tail *err_tail)
{
    char *in = NULL;
    if (maos_msgpack_to_json_text(t->data.ptr, t->data.len, &in))
        in = NULL;
    int pin[2], pout[2], perr[2];
    *out = NULL;
    *out_len = 0;
    err_tail->len = 0;
    if (pipe(pin)) {
        free(in);
        return 127;
    }
    if (pipe(pout)) {
        close(pin[0]);
        close(pin[1]);
        free(in);
        return 127;
    }
    if (pipe(perr)) {
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        free(in);
        return 127;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        for (int i = 0; i < 2; i++) {
            close(pin[i]);
            close(pout[i]);
            close(perr[i]);
        }
        free(in);
        return 127;
    }
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        close(perr[0]);
        close(perr[1]);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "maosctl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (in) { /* small payloads; a command that does not read gets EPIPE */
        signal(SIGPIPE, SIG_IGN);
        ssize_t w = write(pin[1], in, strlen(in));
        (void)w;
    }
    close(pin[1]);
    free(in);
    size_t cap = 0;
    double next_extend = now_ms() + lease_ms / 3.0;
    int open_out = 1, open_err = 1;
    while (open_out || open_err) {
        struct pollfd p[2] = {{.fd = open_out ? pout[0] : -1, .events = POLLIN},
                              {.fd = open_err ? perr[0] : -1, .events = POLLIN}};
        int left = (int)(next_extend - now_ms());
        int pr = poll(p, 2, left > 0 ? left : 0);
        if (pr > 0) {
            if (p[0].revents) {
                if (*out_len + 4096 > cap) {
                    cap = cap ? 2 * cap : 8192;
                    char *n = realloc(*out, cap);
                    if (!n) {
                        open_out = 0; /* out of memory: the result is cut */
                        continue;
                    }
                    *out = n;
                }
                ssize_t r = read(pout[0], *out + *out_len, cap - *out_len - 1);
                if (r > 0)
                    *out_len += (size_t)r;
                else if (r == 0 || errno != EINTR)
                    open_out = 0; /* EOF: the command closed its stdout */
            }
            if (p[1].revents) {
                char buf[4096];
                ssize_t r = read(perr[0], buf, sizeof buf);
                if (r > 0) {
                    tail_add(err_tail, buf, (size_t)r);
                    ssize_t w = write(2, buf, (size_t)r);
                    (void)w;
                } else if (r == 0 || errno != EINTR) {
                    open_err = 0;
                }
            }
        } else if (pr == 0) {
            /* still running: keep the lease (a lost one is reported at ack) */
            maos_extend(c, t->id, t->token, lease_ms, NULL);
            next_extend = now_ms() + lease_ms / 3.0;
        } else if (errno != EINTR) {
            break;
        }
    }
    close(pout[0]);
    close(perr[0]);
    if (*out)
        (*out)[*out_len] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A claim, ack or nack of queue work failed: go on (1) when the
 * connection is being re-made (maosd restarted: the bound claim of the
 * task in hand went back to its queue) or maosd is stopping or
 * overloaded (after a pause that doubles up to 1 s), else stop (0). */
static int work_can_go_on(maos_ctx *c, int *pause_ms)
{
    if (maos_is_dead(c))
        return 0;
    if (maos_err_is_fatal(c->err)) /* a lost connection: reconnecting */
        return 1;
    if (c->err == MAOS_ESHUTTING_DOWN || c->err == MAOS_EOVERLOADED) {
        *pause_ms = *pause_ms ? (*pause_ms * 2 > 1000 ? 1000 : *pause_ms * 2) : 50;
        return 1;
    }
    return 0;
}

static int queue_work(struct args *a, maos_ctx *c, const char *const *queues, size_t nq,
                      char **argv)
{
    uint64_t lease = 60000, count = 0, done = 0;
    int rc, pause = 0;
    static struct tail err_tail;
    if ((rc = num_opt(a, O_LEASE, MAOS_LEASE_MS_MAX, &lease)) ||
        (rc = num_opt(a, O_COUNT, UINT32_MAX, &count)))
        return rc;
    if (!lease)
        lease = 60000;
    signal(SIGINT, on_queue_stop);
    signal(SIGTERM, on_queue_stop);
    maos_set_reconnect(c, 1, 0);
    while (!queue_stop && (!count || done < count)) {
        maos_task_page *pg = NULL;
        if (pause)
            poll(NULL, 0, pause);
        if (maos_claim(c, queues, nq, (uint32_t)lease, 1000, 1, 1, &pg)) {
            if (work_can_go_on(c, &pause))
                continue;
            return report(c, "queue work: claim");
        }
        pause = 0;
        if (!pg->n) {
            maos_task_page_free(pg);
            continue;
        }
        const maos_task_info *t = &pg->tasks[0];
        char *out;
        size_t out_len;
        int st = work_one(c, argv, t, (uint32_t)lease, &out, &out_len, &err_tail);
        char *res = NULL;
        size_t res_len = 0;
        if (st == 0) {
            /* the result: stdout as JSON, or else as a string */
            char *trim = out ? out : "";
            while (out_len && (trim[out_len - 1] == '\n' || trim[out_len - 1] == ' '))
                trim[--out_len] = 0;
            if (out_len && maos_json_text_to_msgpack(trim, out_len, &res, &res_len, NULL, 0)) {
                json_t *sj = json_stringn(trim, out_len);
                if (!sj || maos_json_to_msgpack(sj, &res, &res_len, NULL, 0))
                    res = NULL, res_len = 0;
                json_decref(sj);
            }
            rc = maos_ack(c, t->id, t->token, res, res_len);
        } else {
            char why[64 + WORK_ERR_TAIL];
            work_error(st, &err_tail, why, sizeof why);
            rc = maos_nack(c, t->id, t->token, why, -1, NULL);
        }
        char id[37];
        maos_uuid_format(t->id, id);
        const char *how = st == 0 ? "done" : "failed";
        if (rc == MAOS_ELEASE_LOST || rc == MAOS_ENOT_FOUND) {
            how = "lease lost (the task went to another worker)";
        } else if (rc && work_can_go_on(c, &pause)) {
            how = "not finished: the connection to maosd was lost (the task goes back to "
                  "its queue)";
        } else if (rc) {
            free(out);
            free(res);
            maos_task_page_free(pg);
            return report(c, "queue work");
        }
        fprintf(stderr, "maosctl: task %s: %s\n", id, how);
        free(out);
        free(res);
        maos_task_page_free(pg);
        done++;
    }
    return EXIT_OK;
}

static int cmd_queue(struct args *a)
{
    const char *sub = a->pos[0];
    int n = a->npos - 1;
    char **pos = a->pos + 1;
    static const struct {
        const char *name;
        int min, max;
    } subs[] = {{"enqueue", 2, 2}, {"claim", 1, MAOS_CLAIM_QUEUES_MAX}, {"ack", 2, 3},
                {"nack", 2, 2},    {"extend", 2, 2}, {"release", 2, 2},
                {"list", 0, 0},    {"stats", 0, 1},  {"show", 1, 1},
                {"dead", 1, 1},    {"retry", 1, 2},  {"purge", 1, 1},
                {"work", 2, 100000}};
    int which = -1;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(sub, subs[i].name))
            which = (int)i;
    if (which < 0) {
        usage_error("unknown queue command '%s' (enqueue, claim, ack, nack, extend, "
                    "release, list, stats, show, dead, retry, purge, work)", sub);
        return EXIT_USAGE;
    }
    /* work: QUEUE[,QUEUE...] -- COMMAND... */
    const char *wq[MAOS_CLAIM_QUEUES_MAX];
    size_t nwq = 0;
    char *wlist = NULL;
    if (!strcmp(sub, "work")) {
        if (n < 2) {
            usage_error("queue work QUEUE[,QUEUE...] -- COMMAND...");
            return EXIT_USAGE;
        }
        wlist = pos[0];
        for (char *save = NULL, *q = strtok_r(wlist, ",", &save); q;
             q = strtok_r(NULL, ",", &save)) {
            if (nwq == MAOS_CLAIM_QUEUES_MAX) {
                usage_error("queue work: at most %d queues", MAOS_CLAIM_QUEUES_MAX);
                return EXIT_USAGE;
            }
            wq[nwq++] = q;
        }
    } else if (n < subs[which].min || n > subs[which].max) {
        usage_error("queue %s: wrong number of arguments", sub);
        return EXIT_USAGE;
    }
    uint64_t prio_u = 0, delay = 0, attempts = 0, lease = 0, wait = 0, limit = 1, retry = 0;
    int64_t prio = 0;
    int rc;
    if (a->set[O_PRIORITY]) {
        char *end;
        errno = 0;
        long long v = strtoll(a->val[O_PRIORITY], &end, 10);
        if (errno || *end || v < INT32_MIN || v > INT32_MAX) {
            usage_error("bad --priority '%s'", a->val[O_PRIORITY]);
            return EXIT_USAGE;
        }
        prio = v;
    }
    (void)prio_u;
    if ((rc = num_opt(a, O_DELAY, MAOS_DELAY_MS_MAX, &delay)) ||
        (rc = num_opt(a, O_MAX_ATTEMPTS, MAOS_ATTEMPTS_MAX, &attempts)) ||
        (rc = num_opt(a, O_LEASE, MAOS_LEASE_MS_MAX, &lease)) ||
        (rc = num_opt(a, O_WAIT, MAOS_WAIT_MS_MAX, &wait)) ||
        (rc = num_opt(a, O_LIMIT, MAOS_CLAIM_MAX, &limit)) ||
        (rc = num_opt(a, O_RETRY_AFTER, MAOS_DELAY_MS_MAX, &retry)))
        return rc;
    uint8_t id[16];
    uint64_t token = 0;
    int has_id = !strcmp(sub, "ack") || !strcmp(sub, "nack") || !strcmp(sub, "extend") ||
                 !strcmp(sub, "release") || !strcmp(sub, "show") ||
                 (!strcmp(sub, "retry") && n == 2);
    if (has_id && (rc = parse_task_id(pos[!strcmp(sub, "retry") ? 1 : 0], id)))
        return rc;
    if (has_id && strcmp(sub, "show") && strcmp(sub, "retry") &&
        (parse_u64(pos[1], &token) || !token)) {
        usage_error("bad token '%s'", pos[1]);
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "extend") && !lease) {
        usage_error("queue extend needs --lease MS");
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "purge") && !a->set[O_DEAD]) {
        usage_error("queue purge QUEUE --dead (dead letters are the only tasks deleted)");
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "retry") && (n == 2) == (a->set[O_ALL] != 0)) {
        usage_error("queue retry QUEUE ID, or QUEUE --all");
        return EXIT_USAGE;
    }
    char *doc = NULL;
    size_t doclen = 0;
    if (!strcmp(sub, "enqueue") && (rc = json_arg(pos[1], "the task's data", &doc, &doclen)))
        return rc;
    if (!strcmp(sub, "ack") && n == 3 && (rc = json_arg(pos[2], "the result", &doc, &doclen)))
        return rc;
    char *meta = NULL;
    size_t metalen = 0;
    if (a->set[O_META]) {
        json_t *mj = NULL;
        char why[200];
        if (strcmp(sub, "enqueue"))
            usage_error("--meta is for queue enqueue");
        else if (!(mj = parse_json_arg("--meta", a->val[O_META])))
            ; /* said */
        else if (!json_is_object(mj))
            usage_error("--meta must be a JSON object");
        else if (maos_json_to_msgpack(mj, &meta, &metalen, why, sizeof why))
            usage_error("--meta: %s", why);
        if (!meta) {
            json_decref(mj);
            free(doc);
            return EXIT_USAGE;
        }
        json_decref(mj);
    }
    maos_ctx *c;
    if ((rc = connect_to(a, &c))) {
        free(doc);
        free(meta);
        return rc;
    }
    maos_task_page *pg = NULL;
    if (!strcmp(sub, "enqueue")) {
        maos_task_opts o = {.priority = (int32_t)prio, .delay_ms = (int64_t)delay,
                            .max_attempts = (uint32_t)attempts, .lease_ms = (uint32_t)lease,
                            .dedupe_key = a->val[O_DEDUPE],
                            .ordering_key = a->val[O_ORDERING_KEY]};
        int dup = 0;
        o.meta = meta;
        o.meta_len = metalen;
        if (maos_enqueue(c, pos[0], doc, doclen, &o, id, &dup)) {
            rc = report(c, "queue enqueue");
        } else {
            char text[37];
            maos_uuid_format(id, text);
            if (a->json)
                print_json_line(json_pack("{s:s,s:s,s:b}", "id", text, "queue", pos[0],
                                          "duplicate", dup));
            else
                printf("%s%s\n", text, dup ? "  (duplicate: already queued)" : "");
        }
    } else if (!strcmp(sub, "claim")) {
        if (maos_claim(c, (const char *const *)pos, (size_t)n, (uint32_t)lease,
                       (uint32_t)wait, (uint32_t)limit, 0, &pg))
            rc = report(c, "queue claim");
        else
            for (size_t i = 0; i < pg->n; i++)
                print_task(a, &pg->tasks[i]);
    } else if (!strcmp(sub, "ack")) {
        if (maos_ack(c, id, token, doc, doclen))
            rc = report(c, "queue ack");
        else if (a->json)
            print_json_line(json_pack("{s:s}", "state", "done"));
        else
            printf("done\n");
    } else if (!strcmp(sub, "nack")) {
        char st[16];
        if (maos_nack(c, id, token, a->val[O_ERROR],
                      a->set[O_RETRY_AFTER] ? (int64_t)retry : -1, st))
            rc = report(c, "queue nack");
        else if (a->json)
            print_json_line(json_pack("{s:s}", "state", st));
        else
            printf("%s\n", st);
    } else if (!strcmp(sub, "extend")) {
        int64_t until;
        if (maos_extend(c, id, token, (uint32_t)lease, &until))
            rc = report(c, "queue extend");
        else if (a->json)
            print_json_line(json_pack("{s:o}", "lease_until", time_json(until)));
        else {
            char t[40];
            maos_time_format(until, t, sizeof t);
            printf("lease until %s\n", t);
        }
    } else if (!strcmp(sub, "release")) {
        if (maos_task_release(c, id, token))
            rc = report(c, "queue release");
        else if (!a->json)
            printf("released\n");
        else
            print_json_line(json_pack("{s:s}", "state", "ready"));
    } else if (!strcmp(sub, "list") || !strcmp(sub, "stats")) {
        maos_queue_stat *qi = NULL;
        size_t nqi = 0;
        if (maos_queue_stats(c, n ? pos[0] : NULL, &qi, &nqi))
            rc = report(c, "queue stats");
        for (size_t i = 0; i < nqi; i++)
            print_queue_info(a, &qi[i]);
        free(qi);
    } else if (!strcmp(sub, "show")) {
        if (maos_task_get(c, id, &pg)) {
            rc = report(c, "queue show");
        } else if (a->json) {
            print_task(a, &pg->tasks[0]);
        } else {
            const maos_task_info *t = &pg->tasks[0];
            char text[37], *d = doc_text(t->data);
            maos_uuid_format(t->id, text);
            printf("task %s of queue %.*s: %.*s, attempt %" PRIu64 " of %" PRIu64
                   ", priority %" PRId64 "\ndata: %s\n",
                   text, (int)t->queue.len, t->queue.ptr, (int)t->state.len, t->state.ptr,
                   t->attempt, t->max_attempts, t->priority, d ? d : "");
            free(d);
            if (t->last_error.len)
                printf("last error: %.*s\n", (int)t->last_error.len, t->last_error.ptr);
            /* the history: each event, read back at its position */
            maos_mpr r;
            uint32_t hn;
            maos_mpr_init(&r, t->history.ptr, t->history.len);
            if (maos_mpr_array(&r, &hn) == 0)
                for (uint32_t i = 0; i < hn; i++) {
                    uint64_t p;
                    maos_page *ev = NULL;
                    if (maos_mpr_uint(&r, &p))
                        break;
                    if (maos_read_all(c, NULL, p, 0, 1, &ev) == 0 && ev->n) {
                        char tm[40];
                        maos_time_format(ev->events[0].time, tm, sizeof tm);
                        printf("  %" PRIu64 "  %s  %.*s\n", p, tm,
                               (int)ev->events[0].type_len, ev->events[0].type);
                    }
                    maos_page_free(ev);
                }
        }
    } else if (!strcmp(sub, "dead")) {
        uint8_t after[16];
        int have_after = 0;
        do {
            maos_task_page_free(pg);
            pg = NULL;
            if (maos_dead_list(c, pos[0], have_after ? after : NULL, 0, &pg)) {
                rc = report(c, "queue dead");
                break;
            }
            for (size_t i = 0; i < pg->n; i++)
                print_task(a, &pg->tasks[i]);
            have_after = pg->has_next;
            memcpy(after, pg->next, 16);
        } while (have_after);
    } else if (!strcmp(sub, "retry") || !strcmp(sub, "purge")) {
        uint32_t total = 0, cnt;
        int more = 1;
        while (!rc && more) {
            if (!strcmp(sub, "retry") ? maos_dead_retry(c, pos[0], n == 2 ? id : NULL, &cnt,
                                                        &more)
                                      : maos_dead_purge(c, pos[0], &cnt, &more))
                rc = report(c, !strcmp(sub, "retry") ? "queue retry" : "queue purge");
            else
                total += cnt;
        }
        if (!rc) {
            if (a->json)
                print_json_line(json_pack("{s:I}", "count", (json_int_t)total));
            else
                printf("%s %u\n", !strcmp(sub, "retry") ? "retried" : "purged", total);
        }
    } else {
        rc = queue_work(a, c, wq, nwq, pos + 1);
    }
    maos_task_page_free(pg);
    free(doc);
    free(meta);
    maos_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    const char *name;
    int rc;
    if (parse_args(argc, argv, &a, &name)) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (!name) {
        if (a.help) {
            print_main_help(stdout);
            rc = EXIT_OK;
        } else {
            print_main_help(stderr);
            rc = EXIT_USAGE;
        }
        goto out;
    }
    if (strcmp(name, "help") == 0) { /* maosctl help [COMMAND]: as --help */
        if (a.npos == 0) {
            print_main_help(stdout);
            rc = EXIT_OK;
            goto out;
        }
        name = a.pos[0];
        a.help = 1;
    }
    current = find_command(name);
    if (current && !current->run && !a.help) { /* inspect --data-dir DIR COMMAND ... */
        if (!a.data_dir || a.npos < 1) {
            usage_error("inspect needs --data-dir DIR and a COMMAND");
            rc = EXIT_USAGE;
            goto out;
        }
        name = a.pos[0];
        memmove(a.pos, a.pos + 1, (size_t)(a.npos - 1) * sizeof *a.pos);
        a.npos--;
        current = find_command(name);
        if (current && !current->run)
            current = NULL;
    }
    if (!current) {
        usage_error("unknown command '%s'", name);
        rc = EXIT_USAGE;
        goto out;
    }
    if (a.help) {
        print_cmd_help(current);
        rc = EXIT_OK;
        goto out;
    }
    for (int i = 0; i < O__COUNT; i++) {
        if (a.set[i] && !(current->opts & OPT(i))) {
            usage_error("%s does not take --%s", current->name, options[i].name);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    if (a.npos < current->min_pos || a.npos > current->max_pos) {
        usage_error("%s: wrong number of arguments", current->name);
        rc = EXIT_USAGE;
        goto out;
    }
    if (a.data_dir && a.socket) {
        usage_error("give --socket or --data-dir, not both");
        rc = EXIT_USAGE;
        goto out;
    }
    rc = a.data_dir ? run_on_dir(&a, a.data_dir, current->run) : current->run(&a);
    if (fflush(stdout) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "maosctl: cannot write output: %s\n", strerror(errno));
        rc = EXIT_REFUSED;
    }
out:
    free(a.pos);
    free(a.types);
    free(a.scopes);
    return rc;
}
