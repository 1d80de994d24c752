/*
 * daemon/sdnotify.h -- running under systemd (sdnotify.c): readiness,
 * status, watchdog, socket activation.  Loop thread only.
 */
#ifndef MAOSD_SDNOTIFY_H
#define MAOSD_SDNOTIFY_H

typedef struct maosd_server maosd_server;

/* The listening socket passed by socket activation (LISTEN_FDS): its fd;
 * -1 when none was passed (bind our own); -2 when what was passed cannot
 * be used (logged: refuse to start). */
int maosd_sd_listen_fd(void);
/* READY=1 with a STATUS= line; starts the status refresh and, under
 * WATCHDOG_USEC, the watchdog pings. */
void maosd_sd_ready(maosd_server *srv);
/* RELOADING=1 (begin) or READY=1 (end) around a reload. */
void maosd_sd_reloading(maosd_server *srv, int begin);
/* STOPPING=1; stops the timers. */
void maosd_sd_stopping(maosd_server *srv);

#endif
