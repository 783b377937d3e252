/* Bump allocator that owns per-step activations. Reset at each step; after
 * the first step it has grown to the step's high-water mark and never calls
 * malloc again. Pure C (the runtime may use it too). */
#ifndef QAT_ARENA_H
#define QAT_ARENA_H

#include <stddef.h>

typedef struct qat_arena qat_arena;

/* Returns NULL if the first chunk cannot be allocated. */
qat_arena *qat_arena_create(size_t initial_bytes);
void qat_arena_destroy(qat_arena *a);
/* 64-byte aligned, uninitialised. Aborts on OOM: callers size models up
 * front (see train limits), so running out here is a broken invariant. */
void *qat_arena_alloc(qat_arena *a, size_t bytes);
/* As qat_arena_alloc, zero-filled. */
void *qat_arena_calloc(qat_arena *a, size_t bytes);
/* Frees everything allocated since create/reset. If the step needed more than
 * one chunk, they are merged into one chunk of the combined size. */
void qat_arena_reset(qat_arena *a);
size_t qat_arena_used(const qat_arena *a);
/* Largest total ever in use between two resets. */
size_t qat_arena_high_water(const qat_arena *a);
/* How many times the arena called malloc (tests use it to prove the hot path
 * stopped allocating). */
size_t qat_arena_malloc_count(const qat_arena *a);

#endif
