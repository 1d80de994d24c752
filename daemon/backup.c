/*
 * daemon/backup.c -- online backup (op `backup`): a consistent copy of the
 * store, taken while writers run, that `maosd --data-dir COPY` starts from
 * as it is.  docs/ARCHITECTURE.md "Backup" is the long form.
 *
 * Three steps on three threads:
 *  1. loop (maosd_op_backup): the target is checked (absolute, absent, its
 *     parent a directory maosd may write in); a write request of maosd's
 *     own item BACKUP goes to the commit thread, so the backup is ordered
 *     with the writes like any of them.
 *  2. commit thread, between two groups (maosd_backup_take): every
 *     memtable is flushed, so what the journal's lap holds is in table
 *     files; a RocksDB checkpoint is made in a staging directory inside
 *     the data directory (hard links: one file system, quick whatever the
 *     size); the identity file MAOS (hard link: it never changes) and a
 *     MAOS-HEAD holding the head the copy ends at join it.  The copy holds
 *     every group written before this point and nothing after it.  Writers
 *     wait for this step only.
 *  3. a pool thread (backup_move): the staging directory is renamed to the
 *     target (same file system) or copied file by file into
 *     <target>.partial.XXXXXX (mkdtemp: the job's own), synced, and
 *     renamed (another one); then the reply
 *     {position: the head the copy holds}.
 *
 * Invariants: the target appears whole or not at all (a rename); a failed
 * step removes what it made; staging directories a crash left behind are
 * removed at start-up (maosd_backup_clean).  No journal is copied: the
 * copy's memtables were empty, and the daemon that opens it makes a new
 * journal.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "chain.h"
#include "dispatch.h"
#include "fileio.h"
#include "log.h"

#define STAGING_PREFIX "backup-staging."

/* Loop thread only: names staging directories apart. */
static unsigned long long staging_seq;

typedef struct backup_move {
    char staging[PATH_MAX];
    char target[PATH_MAX];
    uint64_t position;
    int ran;
    uid_t uid;                 /* who asked (the audit record) */
    pid_t pid;
    uint64_t conn;
} backup_move;

/* ---- files ------------------------------------------------------------------ */

/* A message into why (cut to cap: paths may be long). */
static void say(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/* Remove a flat directory (RocksDB's checkpoint has no subdirectories). */
static void rm_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX + 256];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                say(p, sizeof(p), "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* The directory part of path (which has a '/' past its first byte or is
 * "/x"). */
static void parent_of(const char *path, char *out, size_t cap)
{
    say(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == out)
        out[1] = 0;
    else if (slash)
        *slash = 0;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    off_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        if (maosd_pwrite_all(out, buf, (size_t)n, off)) {
            rc = -1;
            break;
        }
        off += n;
    }
    if (!rc)
        rc = fsync(out);
    int e = errno;
    close(in);
    close(out);
    errno = e;
    return rc;
}

/* Copy the flat directory from into to (an empty directory this job
 * made), every file synced, then to itself.  0, or -1 with what failed in
 * why. */
static int copy_flat(const char *from, const char *to, char *why, size_t cap)
{
    DIR *d = opendir(from);
    if (!d) {
        say(why, cap, "cannot read %s: %s", from, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    char a[PATH_MAX + 256], b[PATH_MAX + 256];
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        say(a, sizeof(a), "%s/%s", from, e->d_name);
        say(b, sizeof(b), "%s/%s", to, e->d_name);
        if ((rc = copy_file(a, b)))
            say(why, cap, "cannot copy %s to %s: %s", a, b, strerror(errno));
    }
    closedir(d);
    if (!rc && (rc = maosd_fsync_dir(to)))
        say(why, cap, "cannot sync %s: %s", to, strerror(errno));
    return rc;
}

/* ---- 1. the loop: the request -------------------------------------------------- */

static void backup_done(maosd_server *srv, maosd_wreq *w);

int maosd_op_backup(maosd_call *call)
{
    maosd_server *srv = call->srv;
    const maos_request *req = call->req;
    /* the daemon writes where the request says: only its operator may ask
     * (root or the daemon's own uid), not every user allowed to connect */
    if (call->conn->uid != 0 && call->conn->uid != srv->euid) {
        say(call->why, sizeof(call->why), "backup is for root and the daemon's user "
            "(uid %u); uid %u may not", (unsigned)srv->euid, (unsigned)call->conn->uid);
        return MAOS_EUNAUTHORIZED;
    }
    char target[PATH_MAX], parent[PATH_MAX];
    struct stat st;
    if (req->path.len >= sizeof(target) - 16) {
        say(call->why, sizeof(call->why), "path is too long");
        return MAOS_EBAD_REQUEST;
    }
    memcpy(target, req->path.ptr, req->path.len);
    target[req->path.len] = 0;
    while (strlen(target) > 1 && target[strlen(target) - 1] == '/')
        target[strlen(target) - 1] = 0;
    if (!lstat(target, &st)) {
        say(call->why, sizeof(call->why), "%s already exists: a backup makes a new "
                 "directory", target);
        return MAOS_ECONFLICT;
    }
    if (errno != ENOENT) {
        say(call->why, sizeof(call->why), "%s: %s", target, strerror(errno));
        return MAOS_EBAD_REQUEST;
    }
    parent_of(target, parent, sizeof(parent));
    if (stat(parent, &st) || !S_ISDIR(st.st_mode)) {
        say(call->why, sizeof(call->why), "the directory %s does not exist", parent);
        return MAOS_ENOT_FOUND;
    }
    if (access(parent, W_OK | X_OK)) {
        say(call->why, sizeof(call->why), "maosd (uid %u) cannot create a directory "
                 "in %s: %s", (unsigned)geteuid(), parent, strerror(errno));
        return MAOS_EBAD_REQUEST;
    }
    backup_move *m = calloc(1, sizeof(*m));
    maos_item_in *it = calloc(1, sizeof(*it));
    maosd_wreq *w = m && it ? maosd_wreq_for(call->conn, call->req, &call->frame,
                                             call->frame_len)
                            : NULL;
    if (!w) {
        free(m);
        free(it);
        say(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    say(m->target, sizeof(m->target), "%s", target);
    m->uid = call->conn->uid;
    m->pid = call->conn->pid;
    m->conn = call->conn->id;
    say(m->staging, sizeof(m->staging), "%s/" STAGING_PREFIX "%llu",
             srv->cfg->data_dir, ++staging_seq);
    it->kind = MAOSD_ITEM_BACKUP;
    maosd_submit_item(srv, w, it, backup_done, m);
    return 0;
}

/* ---- 2. the commit thread: the checkpoint ----------------------------------------- */

/* The kind's steps (commit.c WRITE_KINDS): a backup writes nothing; it
 * runs after the group that holds it (maosd_backup_take). */
int maosd_check_backup(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)x;
    (void)w;
    (void)i;
    return 1;
}

int maosd_stage_backup(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)x;
    (void)w;
    (void)i;
    return 0;
}

int maosd_reply_backup(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)i;
    (void)top;
    const backup_move *m = w->done_arg;
    return maos_enc_reply_fields(pk, w->req.rid, UINT64_MAX, UINT64_MAX, m->position,
                                 UINT64_MAX);
}

void maosd_backup_take(maosd_store *store, const char *data_dir, const maosd_head *h,
                       maosd_wreq *w)
{
    backup_move *m = w->done_arg;
    char err[1024] = "", a[PATH_MAX + 16], b[PATH_MAX + 16];
    maosd_headfile *hf = NULL;
    int rc = maosd_store_checkpoint(store, m->staging, err, sizeof(err));
    if (!rc) {
        say(a, sizeof(a), "%s/%s", data_dir, MAOSD_IDENTITY_FILE);
        say(b, sizeof(b), "%s/%s", m->staging, MAOSD_IDENTITY_FILE);
        if (link(a, b) && copy_file(a, b)) {
            say(err, sizeof(err), "cannot copy %s: %s", a, strerror(errno));
            rc = MAOS_EIO;
        }
    }
    /* the signing key goes with the copy: a store started from it signs
     * as the original did (chain.c) */
    if (!rc) {
        say(a, sizeof(a), "%s/%s", data_dir, MAOSD_KEY_FILE);
        say(b, sizeof(b), "%s/%s", m->staging, MAOSD_KEY_FILE);
        if (!access(a, F_OK) && link(a, b) && copy_file(a, b)) {
            say(err, sizeof(err), "cannot copy %s: %s", a, strerror(errno));
            rc = MAOS_EIO;
        }
    }
    if (!rc && (rc = maosd_headfile_create(m->staging, h, &hf, err, sizeof(err))) == 0)
        rc = maosd_headfile_close(hf);
    if (!rc && chmod(m->staging, 0700)) { /* a copy of the data: owner only */
        say(err, sizeof(err), "cannot chmod %s: %s", m->staging, strerror(errno));
        rc = MAOS_EIO;
    }
    if (!rc && maosd_fsync_dir(m->staging)) {
        say(err, sizeof(err), "cannot sync %s: %s", m->staging, strerror(errno));
        rc = MAOS_EIO;
    }
    if (rc) {
        rm_flat(m->staging);
        maosd_wfail(w, MAOS_EINTERNAL, -1, "backup failed: %s", err[0] ? err : "I/O error");
        return;
    }
    m->position = h->position;
}

/* ---- 3. a pool thread: into place ------------------------------------------------ */

static void backup_run(maosd_rjob *j)
{
    backup_move *m = j->arg;
    char parent[PATH_MAX], partial[PATH_MAX + 16];
    m->ran = 1;
    parent_of(m->target, parent, sizeof(parent));
    int moved = rename(m->staging, m->target) == 0;
    if (!moved && errno == EXDEV) {
        /* another file system: a copy into a directory of this job's own
         * (mkdtemp: never one another request or a user made), renamed */
        say(partial, sizeof(partial), "%s.partial.XXXXXX", m->target);
        if (!mkdtemp(partial)) {
            say(j->why, sizeof(j->why), "cannot create %s: %s", partial, strerror(errno));
        } else {
            if (copy_flat(m->staging, partial, j->why, sizeof(j->why)) == 0) {
                moved = rename(partial, m->target) == 0;
                if (!moved)
                    say(j->why, sizeof(j->why), "cannot rename %s to %s: %s", partial,
                        m->target, strerror(errno));
            }
            if (!moved)
                rm_flat(partial);
        }
        rm_flat(m->staging);
    } else if (!moved) {
        say(j->why, sizeof(j->why), "cannot move the backup to %s: %s", m->target,
                 strerror(errno));
        rm_flat(m->staging);
    }
    if (moved && maosd_fsync_dir(parent)) {
        say(j->why, sizeof(j->why), "the backup is in %s, but syncing %s failed: %s "
            "(it may not survive a power loss)", m->target, parent, strerror(errno));
        moved = 0;
    }
    if (!moved) {
        j->rc = MAOS_EINTERNAL;
        j->log_why = 1;
        return;
    }
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (maos_enc_reply_fields(&pk, j->req.rid, UINT64_MAX, UINT64_MAX, m->position,
                              UINT64_MAX) ||
        maosd_rjob_frame_end(j, mark)) {
        j->out.size = mark;
        j->rc = MAOS_EOVERLOADED;
        say(j->why, sizeof(j->why), "out of memory (the backup is in %s)",
                 m->target);
    }
}

static void backup_moved(maosd_rjob *j)
{
    backup_move *m = j->arg;
    if (!m->ran) /* cancelled: maosd stops */
        rm_flat(m->staging);
    else if (!j->rc) {
        maosd_logf(MAOSD_LOG_INFO, "backup of position %llu made in %s",
                   (unsigned long long)m->position, m->target);
        maosd_audit a;
        maosd_audit_begin(&a, "backup", m->uid, m->pid, m->conn);
        maosd_audit_str(&a, "path", (maos_slice){m->target, (uint32_t)strlen(m->target)});
        maosd_audit_u64(&a, "position", m->position);
        maosd_audit_emit(j->srv, &a, "admin");
    }
    maosd_rjob_reply(j);
    free(m);
}

/* The commit thread is done with w: errors are answered at once; a taken
 * backup moves into place on a pool thread, which answers. */
static void backup_done(maosd_server *srv, maosd_wreq *w)
{
    backup_move *m = w->done_arg;
    maosd_conn *c = w->conn;
    if (w->code) {
        free(m);
        maosd_write_reply(srv, w);
        return;
    }
    maosd_rjob *j = maosd_rjob_new(srv, c && !c->closing ? c : NULL, backup_run,
                                   backup_moved, m);
    if (j) {
        j->req.rid = w->req.rid;
        j->req.op = MAOS_OP_BACKUP;
        j->t0_ns = w->t0_ns;
    }
    if (!j || maosd_rjob_submit(j)) {
        rm_flat(m->staging);
        free(m);
        maosd_wfail(w, MAOS_EOVERLOADED, -1, "out of memory moving the backup into place");
        maosd_write_reply(srv, w);
        return;
    }
    w->done_arg = NULL;
    maosd_conn_write_done(c, w->cost);
    maosd_conn_unref(c);
    maosd_wreq_free(w);
}

/* ---- start-up ------------------------------------------------------------------- */

void maosd_backup_clean(const char *data_dir)
{
    DIR *d = opendir(data_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[PATH_MAX + 256];
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX))) {
            say(p, sizeof(p), "%s/%s", data_dir, e->d_name);
            maosd_log(MAOSD_LOG_WARN, "removing %s, the staging copy of a backup that "
                      "did not finish (maosd stopped during it)", p);
            rm_flat(p);
        }
    closedir(d);
}
