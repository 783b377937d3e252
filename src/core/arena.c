#include "qat/arena.h"
#include "qat/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_ALIGN 64
/* Chunks of at least two of these are aligned to them and advised as
 * transparent huge pages (a hint; Linux honours it when THP is "madvise"
 * or "always"): a training step's arena is hundreds of MB at batch 64
 * (the DS-CNN's QAT step ~240 MB), and its first touch in 4 KiB pages was
 * ~180,000 page faults in the first two steps, ~0.5 s of a 6,000-image
 * epoch on the test machine (a VM, where a fault costs ~3 us). */
#define ARENA_HUGE ((size_t)2 << 20)

typedef struct chunk {
    struct chunk *prev;
    size_t cap, used;
    unsigned char *base;
} chunk;

struct qat_arena {
    chunk *top;
    size_t total_cap;    /* sum of caps of all chunks */
    size_t used_before;  /* bytes used in chunks below top */
    size_t high_water;
    size_t mallocs;
};

static chunk *chunk_new(size_t cap)
{
    chunk *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    const size_t align = cap >= 2 * ARENA_HUGE ? ARENA_HUGE : ARENA_ALIGN;
    const size_t bytes = (cap + align - 1) / align * align;
    c->base = aligned_alloc(align, bytes);
#ifdef MADV_HUGEPAGE
    if (c->base && align == ARENA_HUGE)
        (void)madvise(c->base, bytes, MADV_HUGEPAGE);
#endif
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->used = 0;
    c->prev = NULL;
    return c;
}

qat_arena *qat_arena_create(size_t initial_bytes)
{
    qat_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (initial_bytes < 4096)
        initial_bytes = 4096;
    a->top = chunk_new(initial_bytes);
    if (!a->top) {
        free(a);
        return NULL;
    }
    a->total_cap = initial_bytes;
    a->mallocs = 1;
    return a;
}

static void free_chunks(chunk *c)
{
    while (c) {
        chunk *p = c->prev;
        free(c->base);
        free(c);
        c = p;
    }
}

void qat_arena_destroy(qat_arena *a)
{
    if (!a)
        return;
    free_chunks(a->top);
    free(a);
}

void *qat_arena_alloc(qat_arena *a, size_t bytes)
{
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need < bytes) {
        fprintf(stderr, "qat: arena request of %zu bytes overflows\n", bytes);
        abort();
    }
    chunk *c = a->top;
    if (c->cap - c->used < need) {
        size_t cap = a->total_cap > need ? a->total_cap : need;
        chunk *n = chunk_new(cap);
        if (!n) {
            fprintf(stderr, "qat: out of memory allocating %zu bytes of activations\n", cap);
            abort();
        }
        a->mallocs++;
        a->used_before += c->used;
        n->prev = c;
        a->top = c = n;
        a->total_cap += cap;
    }
    void *p = c->base + c->used;
    c->used += need;
    size_t in_use = a->used_before + c->used;
    if (in_use > a->high_water)
        a->high_water = in_use;
    return p;
}

void *qat_arena_calloc(qat_arena *a, size_t bytes)
{
    void *p = qat_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void qat_arena_reset(qat_arena *a)
{
    if (a->top->prev) {
        /* Merge: one chunk big enough for everything the last step used. */
        size_t cap = a->high_water > a->total_cap ? a->high_water : a->total_cap;
        free_chunks(a->top);
        a->top = chunk_new(cap);
        if (!a->top) {
            fprintf(stderr, "qat: out of memory allocating %zu bytes of activations\n", cap);
            abort();
        }
        a->mallocs++;
        a->total_cap = cap;
    }
    a->top->used = 0;
    a->used_before = 0;
}

size_t qat_arena_used(const qat_arena *a) { return a->used_before + a->top->used; }
size_t qat_arena_high_water(const qat_arena *a) { return a->high_water; }
size_t qat_arena_malloc_count(const qat_arena *a) { return a->mallocs; }
