/*
 * client/trust.c -- whom the client library lets answer on a socket path.
 *
 * The threat: another local user creates the socket's directory before the
 * daemon does (the /tmp/maos-$UID fallback is in a world-writable place),
 * or a symlink to a directory of their own, runs a fake maosd there and
 * receives the caller's events.  Two checks stop it; both run on every
 * connect, the first one and reconnects alike:
 *
 *  1. Before connect(), the socket's directory (lstat, so a symlink is seen
 *     as one) must be a real directory owned by a trusted uid and not
 *     writable by group or others.  A sticky directory (mode +t, such as
 *     /tmp itself) may be writable by others: there nobody can remove or
 *     replace another user's file, so it is accepted when the socket file
 *     in it (lstat: a socket, not a symlink) is owned by a trusted uid.
 *  2. After connect() and before a single byte is sent (hello included),
 *     the server's uid from SO_PEERCRED must be a trusted uid.
 *
 * Trusted uids: the caller's effective uid, root, a configured server uid
 * (maos_options.server_uid or MAOS_SERVER_UID), and the owner of the system
 * socket directory /run/maos when that directory sits in a root-owned
 * parent that only root can write to (/run): only root can have created it
 * there and given it to its owner, which is how systemd's
 * RuntimeDirectory=maos hands it to the `maos` service user.  That keeps
 * the packaged set-up (maosd as `maos`, clients as root or members of the
 * maos group) working without configuration.
 *
 * The daemon keeps the same rule for its side (daemon/server.c
 * ensure_socket_dir refuses a directory not owned by itself or root, or
 * writable by others without the sticky bit).
 *
 * Check 1 is defence in depth: it refuses a squatted directory before a
 * connection is even made; check 2 is what a race on the directory cannot
 * get around (a uid cannot be faked without root).
 *
 * Pure functions of the file system and the socket: no globals, no logging.
 */
#include "trust.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "maos/errors.h"

static int trusted(const maosc_trust *t, uid_t uid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->uids[i] == uid)
            return 1;
    return 0;
}

static void add(maosc_trust *t, uid_t uid)
{
    if (!trusted(t, uid) && t->n < sizeof t->uids / sizeof t->uids[0])
        t->uids[t->n++] = uid;
}

/* The directory part of p into buf: "." without a slash, "/" for "/x". */
static int dir_of(const char *p, char *buf, size_t len)
{
    const char *slash = strrchr(p, '/');
    int n;
    if (!slash)
        n = snprintf(buf, len, ".");
    else if (slash == p)
        n = snprintf(buf, len, "/");
    else
        n = snprintf(buf, len, "%.*s", (int)(slash - p), p);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* "you (uid 1000), root, MAOS_SERVER_UID 999" for messages. */
static void describe(const maosc_trust *t, uid_t self, uid_t extra, char *buf, size_t len)
{
    int n = snprintf(buf, len, "you (uid %u), root", (unsigned)self);
    if (extra && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", MAOS_SERVER_UID %u", (unsigned)extra);
    for (size_t i = 0; i < t->n && n >= 0 && (size_t)n < len; i++)
        if (t->uids[i] != self && t->uids[i] != 0 && t->uids[i] != extra)
            n += snprintf(buf + n, len - (size_t)n, ", the system directory's owner %u",
                          (unsigned)t->uids[i]);
}

/* Whether dir is the system socket directory in a parent only root can
 * write to; then its owner is trusted. */
static int is_system_dir(const struct stat *dst, const char *sysdir)
{
    char parent[256];
    struct stat s, ps;
    if (!sysdir || !*sysdir || stat(sysdir, &s) != 0 || s.st_dev != dst->st_dev ||
        s.st_ino != dst->st_ino)
        return 0;
    if (dir_of(sysdir, parent, sizeof parent) || lstat(parent, &ps) != 0)
        return 0;
    return S_ISDIR(ps.st_mode) && ps.st_uid == 0 && !(ps.st_mode & 0022);
}

int maosc_trust_path(const char *path, uid_t self, uid_t extra, const char *sysdir,
                     maosc_trust *out, char *why, size_t whylen)
{
    char dir[256], who[160];
    struct stat st, sk;
    maosc_trust t = {{0}, 0};
    if (dir_of(path, dir, sizeof dir)) {
        snprintf(why, whylen, "socket path too long: %s", path);
        return MAOS_ECONNECT;
    }
    if (lstat(dir, &st) != 0) {
        snprintf(why, whylen, "cannot connect to %s: %s: %s", path, dir, strerror(errno));
        return MAOS_ECONNECT;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(why, whylen, "refusing %s: its directory %s is a symbolic link", path, dir);
        return MAOS_EUNTRUSTED_SERVER;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "cannot connect to %s: %s is not a directory", path, dir);
        return MAOS_ECONNECT;
    }
    add(&t, self);
    add(&t, 0);
    if (extra)
        add(&t, extra);
    if (is_system_dir(&st, sysdir))
        add(&t, st.st_uid);
    describe(&t, self, extra, who, sizeof who);
    if (!trusted(&t, st.st_uid)) {
        snprintf(why, whylen, "refusing %s: its directory %s belongs to uid %u (trusted: %s)",
                 path, dir, (unsigned)st.st_uid, who);
        return MAOS_EUNTRUSTED_SERVER;
    }
    if (st.st_mode & 0022) {
        if (!(st.st_mode & S_ISVTX)) {
            snprintf(why, whylen,
                     "refusing %s: its directory %s is writable by group or others "
                     "(mode %04o)", path, dir, (unsigned)(st.st_mode & 07777));
            return MAOS_EUNTRUSTED_SERVER;
        }
        /* sticky: only the socket's owner can replace it */
        if (lstat(path, &sk) != 0) {
            snprintf(why, whylen, "cannot connect to %s: %s", path, strerror(errno));
            return MAOS_ECONNECT;
        }
        if (!S_ISSOCK(sk.st_mode)) {
            snprintf(why, whylen, "refusing %s: not a socket (in the shared directory %s)",
                     path, dir);
            return MAOS_EUNTRUSTED_SERVER;
        }
        if (!trusted(&t, sk.st_uid)) {
            snprintf(why, whylen,
                     "refusing %s: the socket belongs to uid %u in the shared directory %s "
                     "(trusted: %s)", path, (unsigned)sk.st_uid, dir, who);
            return MAOS_EUNTRUSTED_SERVER;
        }
    }
    *out = t;
    return 0;
}

int maosc_trust_peer(int fd, const maosc_trust *t, const char *path, char *why,
                     size_t whylen)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    memset(&cr, 0, sizeof cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof cr) {
        snprintf(why, whylen, "refusing %s: cannot read the server's credentials: %s", path,
                 strerror(errno));
        return MAOS_EUNTRUSTED_SERVER;
    }
    if (!trusted(t, cr.uid)) {
        char who[160] = "";
        size_t n = 0;
        for (size_t i = 0; i < t->n && n < sizeof who; i++) {
            int k = snprintf(who + n, sizeof who - n, "%s%u", i ? ", " : "",
                             (unsigned)t->uids[i]);
            if (k < 0)
                break;
            n += (size_t)k;
        }
        snprintf(why, whylen,
                 "refusing %s: the server runs as uid %u (pid %d), not a trusted uid (%s); "
                 "MAOS_SERVER_UID names one more", path, (unsigned)cr.uid, (int)cr.pid, who);
        return MAOS_EUNTRUSTED_SERVER;
    }
    return 0;
}
