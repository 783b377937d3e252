/* Counting heap calls in a test executable. A test that depends on
 * alloc_count_dep (tests/common/meson.build) is linked with -Wl,--wrap for
 * malloc, calloc, realloc, aligned_alloc and posix_memalign, so every such
 * call from the statically linked qat libraries goes through the counter in
 * alloc_count.c. */
#ifndef QAT_TEST_ALLOC_COUNT_H
#define QAT_TEST_ALLOC_COUNT_H

#include <stddef.h>

/* Heap calls so far (all threads). */
long tc_alloc_count(void);

/* The allocator itself, uncounted: for the test's own buffers. */
void *__real_malloc(size_t n);

#endif
