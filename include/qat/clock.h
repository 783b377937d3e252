/* Elapsed time for progress lines, profiles and run reports. */
#ifndef QAT_CLOCK_H
#define QAT_CLOCK_H

/* Seconds on a monotonic clock (CLOCK_MONOTONIC): unaffected by changes to
 * the wall clock, so only differences between two calls mean anything. */
double qat_clock_seconds(void);

#endif
