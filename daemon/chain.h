/*
 * daemon/chain.h -- signed checkpoints (docs/ARCHITECTURE.md "Signed
 * checkpoints"): the daemon's ed25519 key, the $chain events that sign the
 * log's head, and the ops pubkey and chain_sign.
 */
#ifndef MAOSD_CHAIN_H
#define MAOSD_CHAIN_H

#include <stdint.h>

typedef struct maosd_server maosd_server;
typedef struct maosd_call maosd_call;

#define MAOSD_KEY_FILE "maos.key"

/* Loop thread, before the commit thread starts: load the key from the
 * data directory, or make it (not with --read-only: then a store without
 * one has none, and pubkey/chain_sign answer NOT_FOUND).  0, or -1 with
 * the reason logged (maosd does not start). */
int maosd_chain_load(maosd_server *srv);
/* Loop thread: the timer and the listener that submit checkpoints;
 * start arms them (not read-only); close stops them (shutdown). */
int maosd_chain_init(maosd_server *srv);
void maosd_chain_start(maosd_server *srv);
void maosd_chain_close(maosd_server *srv);
/* Free the key (after the commit thread stopped). */
void maosd_chain_free(void);

int maosd_op_pubkey(maosd_call *call);
int maosd_op_chain_sign(maosd_call *call);

#endif
