#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "qat/arena.h"
#include "qat/team.h"
#include "qat/rng.h"
#include "qat/status.h"

Test(status, fail_formats_and_prefix_adds_context)
{
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(qat_fail(&e, QAT_EINVAL, "key '%s' unknown", "lrr"), QAT_EINVAL);
    qat_error_prefix(&e, "cfg.ini:%d", 7);
    cr_assert_str_eq(e.msg, "cfg.ini:7: key 'lrr' unknown");
    cr_assert_eq(qat_status_exit_code(QAT_EINVAL), 2);
    cr_assert_eq(qat_status_exit_code(QAT_EIO), 1);
    cr_assert_eq(qat_status_exit_code(QAT_OK), 0);
}

Test(status, size_arithmetic_detects_overflow)
{
    size_t r;
    cr_assert_eq(qat_size_mul(SIZE_MAX / 2, 3, &r), 1);
    cr_assert_eq(qat_size_mul(1000, 1000, &r), 0);
    cr_assert_eq(r, 1000000u);
    cr_assert_eq(qat_size_add(SIZE_MAX, 1, &r), 1);
}

Test(arena, aligned_and_stops_mallocing_after_first_step)
{
    qat_arena *a = qat_arena_create(4096);
    cr_assert_not_null(a);
    for (int step = 0; step < 5; step++) {
        qat_arena_reset(a);
        for (int i = 0; i < 100; i++) {
            unsigned char *p = qat_arena_alloc(a, 1000 + (size_t)i);
            cr_assert_eq((uintptr_t)p % 64, 0);
            memset(p, i, 1000);
        }
        if (step == 1) {
            size_t m = qat_arena_malloc_count(a);
            (void)m;
        }
    }
    size_t before = qat_arena_malloc_count(a);
    for (int step = 0; step < 3; step++) {
        qat_arena_reset(a);
        for (int i = 0; i < 100; i++)
            qat_arena_alloc(a, 1000 + (size_t)i);
    }
    cr_assert_eq(qat_arena_malloc_count(a), before, "arena kept allocating after warm-up");
    cr_assert_geq(qat_arena_high_water(a), 100 * 1000u);
    qat_arena_destroy(a);
}

Test(arena, large_chunks_start_on_a_huge_page)
{
    /* chunks of 4 MiB and more are 2 MiB aligned (and advised as huge
     * pages); smaller ones keep 64-byte alignment */
    qat_arena *a = qat_arena_create((size_t)5 << 20);
    unsigned char *p = qat_arena_alloc(a, 100);
    cr_assert_eq((uintptr_t)p % ((size_t)2 << 20), 0);
    unsigned char *q = qat_arena_alloc(a, (size_t)6 << 20); /* a second, larger chunk */
    cr_assert_eq((uintptr_t)q % ((size_t)2 << 20), 0);
    memset(q, 7, (size_t)6 << 20);
    cr_assert_eq(q[((size_t)6 << 20) - 1], 7);
    qat_arena_reset(a); /* merged into one chunk, also aligned */
    cr_assert_eq((uintptr_t)qat_arena_alloc(a, 64) % ((size_t)2 << 20), 0);
    qat_arena_destroy(a);
    qat_arena *s = qat_arena_create(4096);
    cr_assert_eq((uintptr_t)qat_arena_alloc(s, 100) % 64, 0);
    qat_arena_destroy(s);
}

Test(arena, calloc_zeroes_recycled_memory)
{
    qat_arena *a = qat_arena_create(4096);
    memset(qat_arena_alloc(a, 256), 0xAB, 256);
    qat_arena_reset(a);
    unsigned char *p = qat_arena_calloc(a, 256);
    for (int i = 0; i < 256; i++)
        cr_assert_eq(p[i], 0);
    qat_arena_destroy(a);
}

typedef struct {
    atomic_int hits[8];
    long sum[8];
} pool_ctx;

static void pool_fn(void *vctx, int tid, int nt)
{
    pool_ctx *c = vctx;
    atomic_fetch_add(&c->hits[tid], 1);
    size_t b, e;
    qat_team_range(1000, tid, nt, &b, &e);
    long s = 0;
    for (size_t i = b; i < e; i++)
        s += (long)i;
    c->sum[tid] = s;
}

Test(team, every_member_runs_once_per_call_and_ranges_cover)
{
    for (int nt = 1; nt <= 4; nt++) {
        qat_team *p;
        cr_assert_eq(qat_team_create(nt, &p, NULL), QAT_OK);
        cr_assert_eq(qat_team_threads(p), nt);
        for (int rep = 0; rep < 200; rep++) {
            pool_ctx c;
            memset(&c, 0, sizeof c);
            qat_team_run(p, pool_fn, &c);
            long total = 0;
            for (int i = 0; i < nt; i++) {
                cr_assert_eq(atomic_load(&c.hits[i]), 1);
                total += c.sum[i];
            }
            cr_assert_eq(total, 999L * 1000 / 2);
        }
        qat_team_destroy(p);
    }
}

/* Slots >= 1 may run on the calling thread once its slot 0 is done (a
 * descheduled worker then holds up nothing); each still runs once, and with
 * flush-to-zero on as on a worker, and the caller's own FP mode comes back. */
typedef struct {
    atomic_int hits[8];
    pthread_t thread[8];
    int ftz[8];
} steal_ctx;

static int ftz_on(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return (_mm_getcsr() & 0x8000) != 0;
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return (fpcr >> 24) & 1;
#else
    return 1;
#endif
}

static void steal_fn(void *vctx, int tid, int nt)
{
    steal_ctx *c = vctx;
    cr_assert_eq(nt, 8);
    atomic_fetch_add(&c->hits[tid], 1);
    c->thread[tid] = pthread_self();
    c->ftz[tid] = ftz_on();
}

Test(team, caller_claims_slots_workers_have_not_started)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x8040u); /* the caller without FTZ / DAZ */
#endif
    qat_team *p;
    cr_assert_eq(qat_team_create(8, &p, NULL), QAT_OK);
    int stolen = 0;
    for (int rep = 0; rep < 60; rep++) {
        /* idle workers sleep after about a millisecond of spinning; waking
         * them takes far longer than the caller's empty slot 0 */
        struct timespec ts = {0, 3000000};
        nanosleep(&ts, NULL);
        steal_ctx c;
        memset(&c, 0, sizeof c);
        qat_team_run(p, steal_fn, &c);
        cr_assert(pthread_equal(c.thread[0], pthread_self()));
        for (int k = 0; k < 8; k++)
            cr_assert_eq(atomic_load(&c.hits[k]), 1, "slot %d ran %d times", k,
                         atomic_load(&c.hits[k]));
        for (int k = 1; k < 8; k++) {
            cr_assert(c.ftz[k], "slot %d ran without flush-to-zero", k);
            stolen += pthread_equal(c.thread[k], pthread_self());
        }
        cr_assert_eq(ftz_on(), 0, "the caller's FP mode was not restored");
    }
    cr_assert_gt(stolen, 0, "the caller never ran a slot of a sleeping worker");
    qat_team_destroy(p);
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
}

Test(team, rejects_bad_thread_count)
{
    qat_team *p;
    qat_error e;
    cr_assert_eq(qat_team_create(0, &p, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "threads") != NULL);
}

Test(rng, reproducible_streams_and_unbiased_range)
{
    qat_rng a, b, c;
    qat_rng_seed(&a, 42, 1);
    qat_rng_seed(&b, 42, 1);
    qat_rng_seed(&c, 42, 2);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = qat_rng_u32(&a);
        cr_assert_eq(x, qat_rng_u32(&b));
        same_c += x == qat_rng_u32(&c);
    }
    cr_assert_lt(same_c, 3, "streams 1 and 2 should differ");
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++)
        counts[qat_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++)
        cr_assert(counts[i] > 9500 && counts[i] < 10500, "bucket %d has %d", i, counts[i]);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double v = qat_rng_normal(&a);
        s += v;
        s2 += v * v;
    }
    cr_assert(s / 1e5 > -0.02 && s / 1e5 < 0.02);
    cr_assert(s2 / 1e5 > 0.97 && s2 / 1e5 < 1.03);
}

Test(rng, shuffle_is_a_permutation)
{
    qat_rng r;
    qat_rng_seed(&r, 7, 0);
    uint32_t idx[257];
    for (uint32_t i = 0; i < 257; i++)
        idx[i] = i;
    qat_rng_shuffle_u32(&r, idx, 257);
    int seen[257] = {0}, moved = 0;
    for (uint32_t i = 0; i < 257; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 257; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_gt(moved, 200);
}

#include <stdlib.h>

#include "qat/select.h"

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

Test(select, kth_matches_sorting_with_duplicates_and_edges)
{
    qat_rng r;
    qat_rng_seed(&r, 12, 0);
    for (int trial = 0; trial < 300; trial++) {
        size_t n = 1 + qat_rng_below(&r, 300);
        float v[300], w[300], sorted[300];
        for (size_t i = 0; i < n; i++) /* few distinct values: many ties */
            v[i] = (float)(qat_rng_below(&r, trial % 3 ? 1000u : 5u)) - 2.0f;
        memcpy(sorted, v, n * sizeof *v);
        qsort(sorted, n, sizeof *sorted, cmpf);
        size_t k = qat_rng_below(&r, (uint32_t)n);
        memcpy(w, v, n * sizeof *v);
        cr_assert_eq(qat_select_kth(w, n, k), sorted[k], "n=%zu k=%zu", n, k);
        memcpy(w, v, n * sizeof *v);
        cr_assert_eq(qat_select_kth(w, n, n + 5), sorted[n - 1], "k past the end");
    }
}

#include <float.h>
#include <math.h>

#include "qat/finite.h"

/* The first NaN / infinity wherever it sits relative to the scan's blocks
 * (2048 values) and vector width, the largest finite values and
 * subnormals passing, and an empty array. */
Test(finite, first_nonfinite_finds_the_first_bad_value_anywhere)
{
    enum { N = 5000 };
    static float v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = (float)i - 2500.0f;
    v[7] = FLT_MAX;
    v[8] = -FLT_MAX;
    v[9] = 1e-45f; /* subnormal */
    cr_assert_eq(qat_first_nonfinite(v, N), N);
    cr_assert_eq(qat_first_nonfinite(v, 0), 0);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const size_t at[] = {0, 1, 15, 16, 2047, 2048, 2049, 4095, 4999};
    for (size_t b = 0; b < 3; b++)
        for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
            float keep = v[at[k]];
            v[at[k]] = bad[b];
            cr_assert_eq(qat_first_nonfinite(v, N), at[k], "bad %zu at %zu", b, at[k]);
            cr_assert_eq(qat_first_nonfinite(v, at[k]), at[k], "stops before it");
            if (at[k] + 100 < N) { /* a second one later does not hide the first */
                float keep2 = v[at[k] + 100];
                v[at[k] + 100] = NAN;
                cr_assert_eq(qat_first_nonfinite(v, N), at[k]);
                v[at[k] + 100] = keep2;
            }
            v[at[k]] = keep;
        }
}
