/*
 * client/trust.h -- libmaos-client internals (not installed): may the
 * client talk to the server behind a socket path?
 *
 * Used by client.c before every connect (first connect and reconnects) and
 * by tests/unit/test_trust.c, which passes its own system directory.  The
 * rules are stated once, in trust.c; client.h and README.md ("Security")
 * repeat them for users.
 *
 * maosc_ is the prefix of client-library functions shared between its own
 * files: they are not part of the API and may change at any time.
 */
#ifndef MAOS_CLIENT_TRUST_H
#define MAOS_CLIENT_TRUST_H

#include <stddef.h>
#include <sys/types.h>

/* The system socket directory: its owner (the service user of
 * maosd.service) is trusted, see trust.c. */
#define MAOSC_SYSTEM_SOCKET_DIR "/run/maos"

/* The uids a server on one socket path may run as. */
typedef struct maosc_trust {
    uid_t uids[4];
    size_t n;
} maosc_trust;

/*
 * Check the directory of the socket `path` (and, in a sticky directory,
 * the socket file itself) before connecting, and fill *t with the uids a
 * server there may run as: self (the caller's effective uid), root, extra
 * (a configured server uid; 0: none) and, for sysdir only, its owner.
 * Returns 0; MAOS_EUNTRUSTED_SERVER with the reason in why (a symlinked,
 * foreign-owned or group/other-writable directory, a foreign socket in a
 * sticky directory); or MAOS_ECONNECT when the directory or socket cannot
 * be examined (absent, no permission: the connect would fail the same
 * way).  why always names path.  Nothing is written to *t on failure.
 */
int maosc_trust_path(const char *path, uid_t self, uid_t extra, const char *sysdir,
                     maosc_trust *t, char *why, size_t whylen);

/*
 * After connect() and before anything is sent: the server's uid
 * (SO_PEERCRED: the process that called listen()) must be one of t.
 * 0 or MAOS_EUNTRUSTED_SERVER (why names the uid and path).
 */
int maosc_trust_peer(int fd, const maosc_trust *t, const char *path, char *why,
                     size_t whylen);

#endif
