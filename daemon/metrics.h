/*
 * daemon/metrics.h -- fixed-bucket histograms the daemon keeps for its
 * metrics (commit-group write time, request time by op), and the op
 * `metrics`, which renders every figure in the Prometheus text exposition
 * format (metrics.c).  docs/ARCHITECTURE.md "Metrics".
 *
 * Threads: maosd_hist_observe is lock-free (relaxed atomics): the commit
 * thread observes group writes, the loop thread requests; the loop thread
 * reads them all for the op.
 */
#ifndef MAOSD_METRICS_H
#define MAOSD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds in microseconds; the last bucket is +Inf. */
#define MAOSD_HIST_BOUNDS_US                                                   \
    {50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, \
     500000, 1000000, 2500000}
#define MAOSD_HIST_BUCKETS 16 /* the bounds and +Inf */

typedef struct maosd_hist {
    atomic_uint_fast64_t bucket[MAOSD_HIST_BUCKETS]; /* not cumulative */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
} maosd_hist;

void maosd_hist_observe(maosd_hist *h, uint64_t us);

#endif
