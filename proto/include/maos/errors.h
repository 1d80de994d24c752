/*
 * maos/errors.h -- the one list of maos error codes.
 *
 * Every error that crosses the wire or leaves the client library is one of
 * these.  The list is an X-macro so that the enum, the name table, the
 * message table and the daemon's error replies all come from one place.
 *
 * Invariants:
 *  - Codes are stable: a code's number and NAME never change once released.
 *    New codes are appended.
 *  - Functions return 0 (or a count) on success and a negative MAOS_E* on
 *    failure (libuv style): MAOS_EBAD_REQUEST == -1, and so on.
 *  - Codes 1..99 are sent by the daemon on the wire as their NAME string.
 *    Codes from 100 up are produced by the client library only (I/O,
 *    protocol violations by the server, timeouts) and never sent.
 */
#ifndef MAOS_ERRORS_H
#define MAOS_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, number, "default message") */
#define MAOS_ERRNO_MAP(X)                                                      \
    X(BAD_REQUEST, 1, "malformed or invalid request")                         \
    X(UNKNOWN_OP, 2, "unknown operation")                                     \
    X(FRAME_TOO_LARGE, 3, "frame exceeds the maximum frame size")             \
    X(BAD_FRAME, 4, "frame is not one well-formed msgpack value")             \
    X(HELLO_REQUIRED, 5, "the first request must be hello")                   \
    X(PROTOCOL_VERSION, 6, "unsupported protocol version")                    \
    X(WRONG_EXPECTED_VERSION, 7, "stream is not at the expected version")     \
    X(NOT_FOUND, 8, "not found")                                              \
    X(CONFLICT, 9, "conflict")                                                \
    X(INVALID_NAME, 10, "invalid stream or type name")                        \
    X(INVALID_ID, 11, "invalid event id")                                     \
    X(LIMIT, 12, "a limit was exceeded")                                      \
    X(READ_ONLY, 13, "store is in read-only degraded state")                  \
    X(UNAUTHORIZED, 14, "not authorized")                                     \
    X(OVERLOADED, 15, "server overloaded, retry later")                       \
    X(SHUTTING_DOWN, 16, "server is shutting down")                           \
    X(LEASE_LOST, 17, "lease lost")                                           \
    X(INTERNAL, 18, "internal server error")                                  \
    X(CORRUPT, 19, "stored data is damaged")                                  \
    X(WRONG_REVISION, 20, "entry is not at the expected revision")            \
    X(OUTCOME_UNKNOWN, 21, "the storage write failed: outcome unknown")       \
    X(NO_SPACE, 22, "the data directory's file system is full: writes refused until space is freed") \
    X(FORBIDDEN, 23, "not allowed: the connection lacks the scope")           \
    X(UNAUTHENTICATED, 24, "the token is unknown, malformed, expired or revoked") \
    X(IO, 100, "connection I/O error")                                        \
    X(CLOSED, 101, "connection closed")                                       \
    X(PROTO, 102, "protocol violation by the peer")                           \
    X(NOMEM, 103, "out of memory")                                            \
    X(TIMEOUT, 104, "timed out")                                              \
    X(INVALID_ARG, 105, "invalid argument")                                   \
    X(CONNECT, 106, "cannot connect")                                         \
    X(BUSY, 107, "replies of pipelined requests are outstanding")              \
    X(UNTRUSTED_SERVER, 108, "the socket or the server is not owned by a trusted user") \
    X(CONNECTION, 109, "connection lost with the request in flight: outcome unknown")

typedef enum maos_errno {
#define MAOS_ERRNO_ENUM_(name, num, msg) MAOS_E##name = -(num),
    MAOS_ERRNO_MAP(MAOS_ERRNO_ENUM_)
#undef MAOS_ERRNO_ENUM_
} maos_errno;

/* First code that is local to the client library (never on the wire). */
#define MAOS_ERRNO_LOCAL_MIN 100

/* "WRONG_EXPECTED_VERSION" for MAOS_EWRONG_EXPECTED_VERSION; "UNKNOWN" for
 * anything not in the list.  Returns a static string. */
const char *maos_err_name(int err);

/* Default human message for a code; static string, never NULL. */
const char *maos_strerror(int err);

/* Inverse of maos_err_name over a byte slice (not NUL-terminated).
 * Returns the negative code, or 0 when the name is not in the list. */
int maos_err_from_name(const char *name, unsigned len);

#ifdef __cplusplus
}
#endif
#endif
