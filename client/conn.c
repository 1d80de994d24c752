/*
 * client/conn.c -- the connection of a maos_ctx: errors (fail/die), connect
 * (trust checks, connect(), hello, all within the connect timeout), the
 * accessors, and reconnect with its backoff (the state machine is drawn in
 * client_priv.h).
 *
 * Invariants: a context is either connected, down (reconnecting, fd -1)
 * or dead (sticky err); no byte is written before the trust checks passed.
 */
#include "client_priv.h"

/* ---- errors ------------------------------------------------------------ */

static void vset_msg(maos_ctx *c, int code, const char *fmt, va_list ap)
{
    c->err = code;
    if (fmt)
        vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    else
        snprintf(c->errstr, sizeof c->errstr, "%s", maos_strerror(code));
}

/* A per-call failure: the context lives on. */
int maosc_fail(maos_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_msg(c, code, fmt, ap);
    va_end(ap);
    return code;
}

static int monotonic_ms(long long *ms)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts))
        return -1;
    *ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

long long maosc_now_ms(void)
{
    long long t = 0;
    monotonic_ms(&t);
    return t;
}

/*
 * Tell the loop what to watch: the socket for reading (and for writing
 * while output waits), and a wake-up at the earliest of wake_ms (-1: none),
 * the next request deadline and, while down, the next reconnect attempt.
 * The ops hear only changes; the hooks' update hears every call.
 */
void maosc_hooks_update(struct maos_ctx_priv *p, int wake_ms)
{
    int fd = p->dead ? -1 : p->fd;
    long long now = maosc_now_ms(), at = wake_ms >= 0 ? now + wake_ms : -1;
    if (p->next_deadline && !p->dead && (at < 0 || p->next_deadline < at))
        at = p->next_deadline < now ? now : p->next_deadline;
    if (p->down && !p->dead && !p->handshaking && (at < 0 || p->next_attempt < at))
        at = p->next_attempt < now ? now : p->next_attempt;
    int t = at < 0 ? -1 : at - now > INT_MAX ? INT_MAX : (int)(at - now);
    maos_loop_ops *o = &p->ops;
    if (o->add_read || o->del_read || o->add_write || o->del_write || o->timer) {
        int want_r = fd >= 0, want_w = fd >= 0 && p->out_off < p->out.size;
        if (p->ops_fd != fd) {
            if (p->ops_fd >= 0 && p->ops_read && o->del_read)
                o->del_read(o->data, p->ops_fd);
            if (p->ops_fd >= 0 && p->ops_write && o->del_write)
                o->del_write(o->data, p->ops_fd);
            p->ops_read = p->ops_write = 0;
            p->ops_fd = fd;
        }
        if (want_r != p->ops_read) {
            if (want_r && o->add_read)
                o->add_read(o->data, fd);
            else if (!want_r && o->del_read)
                o->del_read(o->data, fd);
            p->ops_read = want_r;
        }
        if (want_w != p->ops_write) {
            if (want_w && o->add_write)
                o->add_write(o->data, fd);
            else if (!want_w && o->del_write)
                o->del_write(o->data, fd);
            p->ops_write = want_w;
        }
        if (at != p->ops_timer_at && (at >= 0 || p->ops_timer_at >= 0)) {
            if (o->timer)
                o->timer(o->data, t);
            p->ops_timer_at = at;
        }
    }
    /* the hooks cannot watch for writability: output that waits (the
     * socket was full) is retried on a short wake-up */
    if (p->hooks.update && fd >= 0 && p->out_off < p->out.size && (t < 0 || t > 1))
        t = 1;
    if (p->hooks.update)
        p->hooks.update(p->hooks.data, fd, t);
}

/* Errors after which a reconnect may help (the daemon went away, is
 * restarting, or the connection stalled). */
static int recoverable(const struct maos_ctx_priv *p, int code)
{
    if (!(p->connect_nb && !p->ever_connected) && (!p->reconnect || !p->ever_connected))
        return 0;
    switch (code) {
    case MAOS_ECLOSED:
    case MAOS_EIO:
    case MAOS_ETIMEOUT:
    case MAOS_ECONNECT:
    case MAOS_ESHUTTING_DOWN:
    case MAOS_EOVERLOADED:
        return 1;
    default:
        return 0;
    }
}


/* Forget everything that belonged to the lost connection; subscriptions
 * and queued deliveries stay. */
static void drop_connection_state(struct maos_ctx_priv *p)
{
    maos_reader_free(&p->rd);
    p->rd.err = 0;
    maosc_free_rxf_list(&p->rxq_head, &p->rxq_tail);
    p->out.size = 0;
    p->out_gen++;
    p->out_off = 0;
    p->pending = 0;
    maosc_win_reset(&p->win);
    maosc_late_locks_free(p);
    for (size_t i = 0; i < p->n_subs; i++)
        p->subs[i]->server_id = 0;
    maosc_aclaims_lost(p);
}

/* A reconnect attempt failed: the next one after the backoff, or, once
 * reconnect_max_ms passed since the loss, give up (the context dies). */
static void attempt_failed(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    long long now = maosc_now_ms();
    int first = p->connect_nb && !p->ever_connected;
    int limit = first ? p->connect_timeout_ms : p->reconnect_max_ms; /* 0: never */
    if (limit > 0 && now - p->down_since >= limit) {
        int code = p->down_err ? p->down_err : MAOS_ECONNECT;
        p->down = 0;
        p->dead = code;
        c->err = code;
        snprintf(c->errstr, sizeof c->errstr, "gave up %s after %d ms: %.200s",
                 first ? "connecting" : "reconnecting", limit, p->down_why);
        maosc_pends_lost(c, code, 0);
        maosc_hooks_update(p, 0);
        return;
    }
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : MAOS_RECONNECT_MIN_DELAY_MS;
    if (p->backoff_ms > MAOS_RECONNECT_MAX_DELAY_MS)
        p->backoff_ms = MAOS_RECONNECT_MAX_DELAY_MS;
    p->next_attempt = now + p->backoff_ms;
    maosc_hooks_update(p, p->backoff_ms);
}

/* A connection failure: close the socket; the context is dead, or, with
 * reconnect on and a recoverable error, down (reconnecting). */
int maosc_die(maos_ctx *c, int code, const char *fmt, ...)
{
    struct maos_ctx_priv *p = c->priv;
    va_list ap;
    va_start(ap, fmt);
    vset_msg(c, code, fmt, ap);
    va_end(ap);
    if (p) {
        /* The hooks hear fd -1 while the old socket is still open, so an
         * event loop can stop watching it cleanly; it is closed below. */
        int old = p->fd;
        int was_hs = p->handshaking;
        p->fd = -1;
        p->handshaking = 0;
        p->hs_left = 0;
        if (recoverable(p, code)) {
            maosc_pends_lost(c, code, 1); /* before `out` is dropped */
            drop_connection_state(p);
            p->down_err = code;
            memcpy(p->down_why, c->errstr, sizeof p->down_why);
            if (!p->down) { /* the first attempt is at once */
                p->down = 1;
                p->down_since = maosc_now_ms();
                p->next_attempt = p->down_since;
                p->backoff_ms = 0;
                maosc_hooks_update(p, 0);
            } else if (was_hs) { /* an attempt failed: back off, or give up */
                attempt_failed(c);
            }
        } else {
            p->down = 0;
            p->dead = code;
            maosc_pends_lost(c, code, 0);
            maosc_hooks_update(p, 0);
        }
        if (old >= 0)
            close(old);
    }
    return code;
}

int maosc_die_errno(maos_ctx *c, const char *what)
{
    int e = errno;
    if (e == EPIPE || e == ECONNRESET)
        return maosc_die(c, MAOS_ECLOSED, "connection closed by the server (%s: %s)",
                   what, strerror(e));
    return maosc_die(c, MAOS_EIO, "%s: %s", what, strerror(e));
}


/* Start of every public call: reconnect when down (blocking, until
 * connected or given up), refuse on a dead context, clear the last
 * per-call error. */
int maosc_enter(maos_ctx *c)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    if (c->priv->down && !c->priv->dead && !c->priv->submit_async) {
        int rc = maosc_reconnect_until(c, -1);
        if (rc)
            return rc;
    }
    if (c->priv->dead) {
        c->err = c->priv->dead;
        return c->err;
    }
    c->err = 0;
    c->errstr[0] = '\0';
    c->priv->has_actual = 0;
    c->priv->actual = 0;
    c->priv->index = -1;
    free(c->priv->err_entry);
    c->priv->err_entry = NULL;
    return 0;
}

int maos_err_is_fatal(int err)
{
    switch (err) {
    case MAOS_ECONNECT:
    case MAOS_EIO:
    case MAOS_ECLOSED:
    case MAOS_EPROTO:
    case MAOS_ETIMEOUT:
    case MAOS_EPROTOCOL_VERSION:
    case MAOS_EHELLO_REQUIRED:
    case MAOS_EUNTRUSTED_SERVER:
        return 1;
    default:
        return 0;
    }
}

int maos_err_actual(const maos_ctx *c, int64_t *actual)
{
    if (!c || !c->priv || !c->priv->has_actual)
        return 0;
    if (actual)
        *actual = c->priv->actual;
    return 1;
}

int64_t maos_err_index(const maos_ctx *c)
{
    return c && c->priv ? c->priv->index : -1;
}


int maos_err_entry(maos_ctx *c, maos_table_page **out)
{
    if (!c || !c->priv || !out)
        return MAOS_EINVALID_ARG;
    const struct rxf *e = c->priv->err_entry;
    if (!e)
        return MAOS_ENOT_FOUND;
    struct rxf *f = maosc_rxf_new(e->data, e->len, 0);
    if (!f)
        return MAOS_ENOMEM;
    maos_reply rep = {.entry = {f->data, (uint32_t)f->len}};
    return maosc_make_table_page(c, f, &rep, 1, out);
}

/* ---- pushes -------------------------------------------------------------- */

/* ---- connect ------------------------------------------------------------------ */

const char *maos_default_socket(char *buf, size_t len)
{
    const char *env = getenv("MAOS_SOCKET");
    int n;
    if (!buf)
        return NULL;
    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else if (geteuid() == 0) {
        n = snprintf(buf, len, "/run/maos/maosd.sock");
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg)
            n = snprintf(buf, len, "%s/maos/maosd.sock", xdg);
        else
            n = snprintf(buf, len, "/tmp/maos-%u/maosd.sock", (unsigned)geteuid());
    }
    if (n < 0 || (size_t)n >= len)
        return NULL;
    return buf;
}

/*
 * Connect the socket at path, non-blocking, retrying while the listen
 * backlog is full until the connect deadline (or for ever without one).
 * The trust checks of trust.c run first on the directory and then on the
 * server's uid, before this function returns and so before any byte is
 * sent: a socket whose directory or server is not trusted is
 * MAOS_EUNTRUSTED_SERVER (sticky, never retried by reconnect).
 */
static int sock_connect(maos_ctx *c, const char *path)
{
    struct maos_ctx_priv *p = c->priv;
    struct sockaddr_un sa;
    maosc_trust trust;
    char why[sizeof c->errstr];
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return maosc_die(c, MAOS_ECONNECT, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);

    int rc = maosc_trust_path(path, geteuid(), p->server_uid, MAOSC_SYSTEM_SOCKET_DIR,
                              &trust, why, sizeof why);
    if (rc)
        return maosc_die(c, rc, "%s", why);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return maosc_die(c, MAOS_ECONNECT, "socket: %s", strerror(errno));
    p->fd = fd;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EINPROGRESS) { /* not done by AF_UNIX today; handled anyway */
            if (!p->connecting)
                return maosc_die(c, MAOS_ECONNECT, "cannot connect to %s: in progress",
                                 path);
            int rev = maosc_wait_fd(c, POLLOUT);
            if (rev < 0)
                return rev;
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
                return maosc_die(c, MAOS_ECONNECT, "cannot connect to %s: %s", path,
                           strerror(soerr ? soerr : errno));
            break;
        }
        if (e == EAGAIN) { /* backlog full: the daemon is busy accepting */
            if (!p->connecting) /* maos_process: never wait; back off */
                return maosc_die(c, MAOS_ECONNECT, "cannot connect to %s: server busy",
                                 path);
            if (p->deadline && maosc_now_ms() >= p->deadline)
                return maosc_die(c, MAOS_ECONNECT, "cannot connect to %s: server busy for %d ms",
                           path, p->connect_timeout_ms);
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        return maosc_die(c, MAOS_ECONNECT, "cannot connect to %s: %s", path, strerror(e));
    }
    rc = maosc_trust_peer(fd, &trust, path, why, sizeof why);
    if (rc)
        return maosc_die(c, rc, "%s", why);
    return 0;
}

/*
 * The handshake, pipelined: hello, then (after a reconnect) the agent's
 * registration and every subscription, then the requests kept from the
 * lost connection, all queued at once as internal requests (the server
 * answers them in order).  Each answer is handled the moment it is routed
 * (hello_done, agent_done, subs.c's re-subscribe); the connection is up
 * when the last one came (hs_left 0).  A refusal kills the attempt: the
 * context dies or, reconnecting, is down again.  Nothing here waits.
 */
static void conn_up(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    p->handshaking = 0;
    if (p->down) {
        p->down = 0;
        p->backoff_ms = 0;
        if (!p->connect_nb) /* the first connect is no reconnect */
            p->reconnects++;
        p->connect_nb = 0;
        c->err = 0;
        c->errstr[0] = '\0';
    }
    maosc_hooks_update(p, p->dq_head || p->cq_head ? 0 : -1);
}

void maosc_hs_step(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->handshaking && --p->hs_left == 0)
        conn_up(c);
}

static void hello_done(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                       const maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    if (!f || !rep)
        return; /* the connection failed: that error is handled */
    if (status) {
        maosc_die(c, status, "hello refused: %s",
                  pd->errstr[0] ? pd->errstr : maos_strerror(status));
        return;
    }
    if (rep->version != MAOS_PROTOCOL_VERSION) {
        maosc_die(c, MAOS_EPROTOCOL_VERSION, "server speaks protocol %llu, this client %d",
                  (unsigned long long)rep->version, MAOS_PROTOCOL_VERSION);
        return;
    }
    p->max_frame = rep->max_frame ? rep->max_frame : MAOS_DEFAULT_MAX_FRAME;
    snprintf(p->server, sizeof p->server, "%.*s", (int)rep->server.len,
             rep->server.ptr ? rep->server.ptr : "");
    /* Replies may exceed the request limit by the envelope slack. */
    uint64_t rmax = (uint64_t)p->max_frame + MAOS_REPLY_SLACK;
    p->rd.max_frame = rmax > UINT32_MAX ? UINT32_MAX : (uint32_t)rmax;
    p->ever_connected = 1;
    maosc_hs_step(c);
}

static void agent_done(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                       const maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    (void)rep;
    if (!f)
        return;
    if (status) {
        maosc_die(c, status, "registering agent %.*s again was refused: %s",
                  (int)p->agent.id.len, p->agent.id.ptr,
                  pd->errstr[0] ? pd->errstr : maos_strerror(status));
        return;
    }
    maosc_hs_step(c);
}

/* Connect (trust checks first) and queue the handshake.  0, or the error
 * (the context is dead or down again). */
static int conn_begin(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    struct maosc_req rq;
    int rc;
    p->handshaking = 1;
    p->hs_left = 1;
    if ((rc = sock_connect(c, p->path)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)))
        return maosc_die(c, rc, "out of memory saying hello");
    rq.internal_only = 1;
    rq.internal = hello_done;
    rc = maosc_call(c, &rq, MAOS_OP_HELLO,
                    maos_enc_hello_token(&rq.pk, rq.rid, MAOS_PROTOCOL_VERSION, p->client_name,
                                         p->token),
                    NULL, NULL);
    if (rc != MAOSC_QUEUED)
        return p->fd < 0 || p->dead ? rc : maosc_die(c, rc, "cannot say hello");
    /* Nothing is written before the whole handshake is queued (the writes
     * below are the first), so the connection cannot break in between. */
    if (p->agent_mem) {
        if ((rc = maosc_req_begin(c, &rq)))
            return maosc_die(c, rc, "out of memory registering the agent");
        rq.internal_only = 1;
        rq.internal = agent_done;
        rc = maosc_call(c, &rq, MAOS_OP_AGENT_REGISTER,
                        maos_enc_agent_register(&rq.pk, rq.rid, &p->agent), NULL, NULL);
        if (rc != MAOSC_QUEUED)
            return p->fd < 0 || p->dead ? rc : maosc_die(c, rc, "cannot register the agent");
        p->hs_left++;
    }
    if ((rc = maosc_subs_resume(c)))
        return rc;
    if ((rc = maosc_pends_resend(c)))
        return rc;
    if ((rc = maosc_flush_nb(c)))
        return rc;
    maosc_hooks_update(p, -1);
    return 0;
}

/* Until the handshake is over, blocking (within the connect deadline). */
static int conn_finish(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    int rc = 0;
    p->connecting = 1;
    if (!p->deadline)
        p->deadline = p->connect_timeout_ms ? maosc_now_ms() + p->connect_timeout_ms : 0;
    while (p->handshaking && p->fd >= 0) {
        if (p->out_off < p->out.size)
            rc = maosc_flush_out(c);
        else if ((rc = maosc_wait_fd(c, POLLIN)) >= 0)
            rc = maosc_rx_read_some(c);
        if (rc < 0)
            break;
        rc = 0;
    }
    p->connecting = 0;
    p->deadline = 0;
    if (p->dead)
        return p->dead;
    if (p->fd < 0)
        return c->err ? c->err : MAOS_ECONNECT;
    return 0;
}

/* Connect, check trust and say hello within the connect timeout (one
 * deadline for the whole phase).  0 or the error (the context is dead, or
 * down when reconnecting). */
static int open_conn(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    p->deadline = p->connect_timeout_ms ? maosc_now_ms() + p->connect_timeout_ms : 0;
    p->connecting = 1;
    int rc = conn_begin(c);
    if (!rc)
        rc = conn_finish(c);
    p->connecting = 0;
    p->deadline = 0;
    return rc;
}

/* MAOS_SERVER_UID: a decimal uid, or unset/empty (0). */
static int env_server_uid(maos_ctx *c, uid_t *out)
{
    const char *v = getenv("MAOS_SERVER_UID");
    char *end;
    *out = 0;
    if (!v || !*v)
        return 0;
    errno = 0;
    unsigned long u = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno || u >= (unsigned long)(uid_t)-1)
        return maosc_die(c, MAOS_ECONNECT, "MAOS_SERVER_UID='%.64s' is not a numeric uid", v);
    *out = (uid_t)u;
    return 0;
}

/* A context set up from opt, not connected (fd -1): maos_connect_with's
 * first half, and the fuzz target's way to a context on a socketpair.
 * NULL when out of memory; c->err set (dead) when opt is unusable. */
maos_ctx *maosc_ctx_new(const maos_options *opt)
{
    maos_options o = {0};
    char defpath[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
    if (opt)
        o = *opt;
    maos_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    struct maos_ctx_priv *p = calloc(1, sizeof *p);
    if (!p) {
        free(c);
        return NULL;
    }
    c->priv = p;
    p->fd = -1;
    p->ops_fd = -1;
    p->ops_timer_at = -1;
    p->client_ids = o.client_ids ? 1 : 0;
    p->next_rid = 1;
    p->index = -1;
    /* 0: the default; negative (MAOS_TIMEOUT_NONE): none, stored as 0 */
    p->timeout_ms = o.timeout_ms > 0    ? o.timeout_ms
                    : o.timeout_ms == 0 ? MAOS_REQUEST_TIMEOUT_DEFAULT_MS
                                        : 0;
    p->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms
                            : o.connect_timeout_ms < 0 ? 0
                            : o.timeout_ms > 0         ? o.timeout_ms
                                                       : MAOS_CONNECT_TIMEOUT_DEFAULT_MS;
    p->reconnect = o.reconnect ? 1 : 0;
    p->reconnect_max_ms = o.reconnect_max_ms > 0 ? o.reconnect_max_ms
                                                 : MAOS_RECONNECT_MAX_MS;
    /* Until hello tells us, assume the default limits. */
    p->max_frame = MAOS_DEFAULT_MAX_FRAME;
    msgpack_sbuffer_init(&p->out);
    maos_reader_init(&p->rd, MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK);

    const char *path = o.path;
    if (!path || !*path) {
        path = maos_default_socket(defpath, sizeof defpath);
        if (!path) {
            maosc_die(c, MAOS_ECONNECT, "default socket path too long");
            return c;
        }
    }
    p->path = strdup(path);
    p->client_name = strdup(o.client_name ? o.client_name : "libmaos-client");
    if (!p->path || !p->client_name) {
        maosc_die(c, MAOS_ENOMEM, "out of memory");
        return c;
    }
    p->server_uid = o.server_uid;
    if (!p->server_uid)
        env_server_uid(c, &p->server_uid);
    return c;
}

/* The token of the context: token, else $MAOS_TOKEN when set and not
 * empty, else none.  0, or the context dies out of memory. */
static int set_token(maos_ctx *c, const char *token)
{
    struct maos_ctx_priv *p = c->priv;
    if (!token || !*token)
        token = getenv("MAOS_TOKEN");
    if (!token || !*token)
        return 0;
    p->token = strdup(token);
    if (!p->token)
        return maosc_die(c, MAOS_ENOMEM, "out of memory");
    return 0;
}

maos_ctx *maos_connect_with(const maos_options *opt)
{
    return maos_connect_token(opt, NULL);
}

maos_ctx *maos_connect_token(const maos_options *opt, const char *token)
{
    maos_ctx *c = maosc_ctx_new(opt);
    if (c && !c->priv->dead && !set_token(c, token))
        open_conn(c);
    return c;
}

maos_ctx *maos_async_connect(const maos_options *opt)
{
    return maos_async_connect_token(opt, NULL);
}

maos_ctx *maos_async_connect_token(const maos_options *opt, const char *token)
{
    maos_ctx *c = maosc_ctx_new(opt);
    if (c && !c->priv->dead)
        set_token(c, token);
    if (!c || c->priv->dead)
        return c;
    struct maos_ctx_priv *p = c->priv;
    /* down from the start: the connect is an attempt as a reconnect's,
     * begun now without waiting and driven by maos_process */
    p->connect_nb = 1;
    p->down = 1;
    p->down_since = p->next_attempt = maosc_now_ms();
    p->backoff_ms = 0;
    p->down_err = MAOS_ECONNECT;
    snprintf(p->down_why, sizeof p->down_why, "not connected to %s yet", p->path);
    maosc_reconnect_nb(c);
    if (!p->dead) { /* a failed first attempt is not an error yet */
        c->err = 0;
        c->errstr[0] = '\0';
    }
    return c;
}

maos_ctx *maos_connect(const char *path)
{
    maos_options o = {.path = path};
    return maos_connect_with(&o);
}

maos_ctx *maos_connect_timeout(const char *path, int timeout_ms)
{
    maos_options o = {.path = path, .timeout_ms = timeout_ms};
    return maos_connect_with(&o);
}

void maos_free(maos_ctx *c)
{
    if (!c)
        return;
    struct maos_ctx_priv *p = c->priv;
    if (p) {
        /* Callbacks of requests in flight run once, with MAOS_ECONNECTION;
         * calls they make fail at once (the context is dead). */
        memset(&p->hooks, 0, sizeof p->hooks);
        memset(&p->ops, 0, sizeof p->ops);
        if (!p->dead)
            p->dead = MAOS_ECLOSED;
        maosc_pends_lost(c, MAOS_ECONNECTION, 0);
        maosc_lockw_abort(c, MAOS_ECONNECTION);
        p->in_process = 1;
        maosc_run_completions(c, SIZE_MAX);
        if (p->fd >= 0)
            close(p->fd);
        msgpack_sbuffer_destroy(&p->out);
        maos_reader_free(&p->rd);
        maosc_free_rxf_list(&p->rxq_head, &p->rxq_tail);
        while (p->dq_head)
            free(maosc_dq_pop(p));
        for (size_t i = 0; i < p->n_subs; i++)
            free(p->subs[i]);
        free(p->subs);
        free(p->agent_mem);
        maosc_late_locks_free(p);
        free(p->err_entry);
        free(p->path);
        free(p->client_name);
        if (p->token) {
            explicit_bzero(p->token, strlen(p->token));
            free(p->token);
        }
        free(p->win.op);
        free(p->win.pd);
        free(p);
    }
    free(c);
}

int maos_fd(const maos_ctx *c)
{
    return c && c->priv && !c->priv->dead ? c->priv->fd : -1;
}

int maos_set_timeout(maos_ctx *c, int timeout_ms)
{
    if (!c || !c->priv || timeout_ms < MAOS_TIMEOUT_NONE)
        return MAOS_EINVALID_ARG;
    c->priv->timeout_ms = timeout_ms > 0    ? timeout_ms
                          : timeout_ms == 0 ? MAOS_REQUEST_TIMEOUT_DEFAULT_MS
                                            : 0;
    return 0;
}

uint32_t maos_max_frame(const maos_ctx *c)
{
    return c && c->priv && c->priv->server[0] ? c->priv->max_frame : 0;
}

const char *maos_server_name(const maos_ctx *c)
{
    return c && c->priv ? c->priv->server : "";
}


/* ---- reconnect ------------------------------------------------------------------- */

void maosc_sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One attempt: connect, hello, re-subscribe everything.  0 (up again) or
 * the error (down again, or dead). */
static int reconnect_once(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->handshaking && p->fd >= 0) /* begun by maos_process: finish it */
        return conn_finish(c);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    drop_connection_state(p);
    return open_conn(c);
}

/*
 * While down: attempt when the backoff allows, sleeping in between, until
 * connected (0), given up (the dead error), or, with deadline >= 0 (a
 * monotonic ms time), the deadline passed (MAOS_ETIMEOUT; still down, err
 * untouched by the wait itself).  It gives up only after an attempt failed
 * reconnect_max_ms or more after the loss (attempt_failed), so a caller
 * that comes back late still gets one try.
 */
int maosc_reconnect_until(maos_ctx *c, long long deadline)
{
    struct maos_ctx_priv *p = c->priv;
    while (p->down && !p->dead) {
        long long now = maosc_now_ms();
        if (!p->handshaking && now < p->next_attempt) {
            if (deadline >= 0 && deadline < p->next_attempt) {
                if (deadline > now)
                    maosc_sleep_ms(deadline - now);
                return MAOS_ETIMEOUT;
            }
            maosc_sleep_ms(p->next_attempt - now);
            continue;
        }
        if (reconnect_once(c) == 0 && !p->down)
            return 0;
        if (p->dead)
            return p->dead;
        if (deadline >= 0 && maosc_now_ms() >= deadline)
            return MAOS_ETIMEOUT;
    }
    return p->dead;
}

/* maos_process's reconnect: when an attempt is due, begin it without
 * waiting (the handshake completes as its answers are read).  0 or the
 * dead error. */
int maosc_reconnect_nb(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    if (!p->down || p->dead || p->handshaking)
        return p->dead;
    long long now = maosc_now_ms();
    if (now < p->next_attempt) {
        long long w = p->next_attempt - now;
        maosc_hooks_update(p, w > INT_MAX ? INT_MAX : (int)w);
        return 0;
    }
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    drop_connection_state(p);
    conn_begin(c);
    return p->dead;
}

int maos_set_reconnect(maos_ctx *c, int on, int max_ms)
{
    if (!c || !c->priv || max_ms < 0)
        return MAOS_EINVALID_ARG;
    c->priv->reconnect = on ? 1 : 0;
    c->priv->reconnect_max_ms = max_ms ? max_ms : MAOS_RECONNECT_MAX_MS;
    return 0;
}

int maos_is_dead(const maos_ctx *c)
{
    return !c || !c->priv || c->priv->dead != 0;
}

uint64_t maos_reconnects(const maos_ctx *c)
{
    return c && c->priv ? c->priv->reconnects : 0;
}
