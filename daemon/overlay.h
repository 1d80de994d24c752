/*
 * daemon/overlay.h -- the commit thread's map of the keys a write group
 * has staged (docs/ARCHITECTURE.md "The commit thread").
 *
 * A maosd_batch (store.c) is a buffer of the values staged plus this
 * overlay: for every (column family, key) the group has put or deleted,
 * the latest pending value or a delete mark.  Reads of the group's own
 * writes look here first, then in the database; iterators over batch and
 * database merge a family's overlay keys, in key order, with a database
 * iterator.
 *
 * The overlay does not copy values: a put records where its value lies
 * in the caller's buffer (the batch's values, as offset and length),
 * and a lookup returns that place; the caller resolves it against the
 * buffer's current address.  Keys are copied (a rollback truncates the
 * buffer, and the overlay must still compare keys it has forgotten
 * the values of).
 *
 * Save points: maosd_overlay_mark pushes a mark; every change after it
 * goes to an undo log, and maosd_overlay_rollback undoes the changes
 * since the latest mark (restoring the earlier value, the earlier delete
 * mark, or "not in the overlay") and pops it.  Marks nest.
 *
 * Invariants
 *  - One entry per (cf, key) ever written since the last clear; an entry
 *    whose writes were all rolled back stays, in state "absent", so a
 *    later write of the key reuses it and the sorted views never hold a
 *    key twice.
 *  - Sorted views: each family keeps its entries' indexes sorted by key
 *    (bytewise, as RocksDB's default comparator) plus an unsorted tail of
 *    the keys added since; maosd_overlay_sorted sorts the tail and merges
 *    it in (a short tail key by key: binary search and memmove), so a put
 *    costs O(1) and a view costs something only when keys were added
 *    since the last view.
 *  - The hash table is open addressing (linear probing, load <= 1/2) of
 *    entry indexes, hashed with libsodium's SipHash (crypto_shorthash)
 *    under a random key per overlay: keys come from clients.
 *  - version changes on every change of the overlay: a view (and a store
 *    iterator built on it) is valid only while it is unchanged.
 *
 * Threads: one owner (the commit thread).  Memory: grows with the group;
 * clear keeps the allocations for the next group, unless they are large
 * (over 64k entries) and the group used under a quarter of them.
 */
#ifndef MAOSD_OVERLAY_H
#define MAOSD_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#define MAOSD_OVERLAY_CFS 16 /* column families it can hold: 0..15 */

typedef struct maosd_overlay maosd_overlay;

/* NULL: out of memory.  Free with maosd_overlay_free (accepts NULL). */
maosd_overlay *maosd_overlay_new(void);
void maosd_overlay_free(maosd_overlay *o);
/* Forget every key and mark; keeps the memory. */
void maosd_overlay_clear(maosd_overlay *o);

/* A put of key in cf whose value is vlen bytes at voff of the caller's
 * buffer (del 0), or a delete (del 1, voff/vlen ignored).  0, or -1 out of
 * memory or cf out of range (the overlay is then unchanged). */
int maosd_overlay_set(maosd_overlay *o, unsigned cf, const void *key, size_t klen,
                      int del, uint64_t voff, size_t vlen);

/* 1: a pending put (*voff, *vlen written); 0: a pending delete; -1: the
 * overlay holds nothing for the key (ask the database). */
int maosd_overlay_get(const maosd_overlay *o, unsigned cf, const void *key,
                      size_t klen, uint64_t *voff, size_t *vlen);

/* Push a mark (0, or -1 out of memory: no mark pushed). */
int maosd_overlay_mark(maosd_overlay *o);
/* Undo everything since the latest mark and pop it: 0, or -1 when there is
 * no mark (nothing changed). */
int maosd_overlay_rollback(maosd_overlay *o);

/* The entries of cf sorted by key: *idx (n entries) stays valid until the
 * overlay changes (see maosd_overlay_version).  Entries may be absent (all
 * their writes rolled back): maosd_overlay_entry says so.  0, or -1 out of
 * memory. */
int maosd_overlay_sorted(maosd_overlay *o, unsigned cf, const uint32_t **idx,
                         size_t *n);
/* Entry e (from a sorted view): its key, and its state as
 * maosd_overlay_get returns it (1 put, 0 delete, -1 absent). */
int maosd_overlay_entry(const maosd_overlay *o, uint32_t e, const char **key,
                        size_t *klen, uint64_t *voff, size_t *vlen);
/* Changes on every change of the overlay (set, rollback, clear, and a
 * sorted view that merged new keys). */
uint64_t maosd_overlay_version(const maosd_overlay *o);

/* Bytewise key order (RocksDB's default comparator): <0, 0, >0. */
int maosd_overlay_keycmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
