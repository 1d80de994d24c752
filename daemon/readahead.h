/*
 * daemon/readahead.h -- read-ahead of the next page of read and read_all
 * (readahead.c; docs/ARCHITECTURE.md "Read-ahead").  Loop thread only.
 */
#ifndef MAOSD_READAHEAD_H
#define MAOSD_READAHEAD_H

#include "dispatch.h"
#include "reader.h"

typedef struct maosd_ahead maosd_ahead;

/* The handler of read and read_all (run: its reader step, which sets the
 * job's page_more/page_next): answered from the connection's read-ahead
 * slot when that holds (or is reading) exactly this request's page; else
 * a read job, whose done step reads the next page ahead when this one is
 * full.  0, or a negative code with call->why set. */
int maosd_read_call(maosd_call *call, void (*run)(maosd_rjob *j));

/* Drop c's slot (a read that does not match it, or its connection
 * closes). */
void maosd_ahead_drop(maosd_conn *c);

#endif
