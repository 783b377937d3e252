/* The kernel tester, in the manner of XNNPACK's: every kernel path this
 * build and CPU can run (ref, avx2, avx512vnni, neon-plain, neon-dot), and
 * the conv driver with scalar test microkernels, gets the same
 * inputs, and every output byte must equal the reference path's. Covers
 * conv2d and linear (shapes with channel tails 1, 3, 7, 33, every out_c
 * 1..16 (AVX-512's narrow tile), odd spatial
 * sizes, strides, padding, batch 1..3; weights all +-127 or -128, weight
 * zero points at both ends, activations at both ends, patterns whose int16
 * pair sums would saturate vpmaddubsw, requantization shifts and multipliers
 * at both ends), random row/channel slices (how threads split a layer), the
 * standalone output stage against qat_fp_requantize over extreme
 * accumulators, pools, input quantization, and whole models (every weight
 * width 2..8, asymmetric weights, 1..3 threads, batch 1 and larger) against
 * the naive oracle of rt_fixture.h.
 *
 * Plain C (no Criterion) so that the aarch64 cross build runs it under
 * qemu. Usage: kernel_tester [--quick]. Exit 0 pass, 1 failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver_paths.h"
#include "kernel_tester.h"
#include "rt_fixture.h"
#include "runtime/kernels/kernels.h"
#include "runtime/rt_internal.h"

int failures;
long checks;
int quick;
const qat_rt_kernels *paths[QAT_RT_MAX_PATHS];
int npaths;
/* conv and pools: also the drivers with scalar test microkernels */
static const qat_rt_kernels *cpaths[QAT_RT_MAX_PATHS + 2];
static int ncpaths;

/* rng makes the cases; srng cuts slices, so that which paths a CPU has
 * (and so how many slices are cut) does not change the cases. */
qat_rng rng, srng;

int32_t rnd(int32_t lo, int32_t hi)
{
    return lo + (int32_t)qat_rng_below(&rng, (uint32_t)((int64_t)hi - lo + 1));
}

int32_t srnd(int32_t lo, int32_t hi)
{
    return lo + (int32_t)qat_rng_below(&srng, (uint32_t)((int64_t)hi - lo + 1));
}

void *xalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 64) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "kernel_tester: out of memory\n");
        exit(1);
    }
    return p;
}

/* Guard bytes around every output buffer: a kernel writing out of bounds
 * fails the test instead of silently corrupting the heap. */
int8_t *guarded(size_t n)
{
    int8_t *b = xalloc(n + 2 * GUARD);
    memset(b, 0x5A, n + 2 * GUARD);
    return b + GUARD;
}
int guards_ok(const int8_t *o, size_t n)
{
    for (size_t i = 0; i < GUARD; i++)
        if (o[-1 - (long)i] != 0x5A || o[n + i] != 0x5A)
            return 0;
    return 1;
}
size_t first_diff(const int8_t *got, const int8_t *want, size_t n)
{
    size_t i = 0;
    while (i < n && got[i] == want[i])
        i++;
    return i;
}
void unguard(int8_t *o)
{
    if (o)
        free(o - GUARD);
}

/* ---- conv2d / linear ------------------------------------------------------------- */

static const char *const wnames[] = {"random", "+127", "-127", "+-127", "-128"};
static const char *const xnames[] = {"random", "max", "min", "ends"};

static void describe(const conv_case *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "%s n=%d in=%dx%dx%d oc=%d k=%dx%d s=%dx%d p=%dx%d bits=%d wzp=%d w=%s x=%s rq=%d "
             "in_zp=%d out_zp=%d relu=%d",
             c->linear ? "linear" : "conv2d", c->n, c->in_h, c->in_w, c->in_c, c->out_c, c->kh,
             c->kw, c->sh, c->sw, c->ph, c->pw, c->bits, c->wzp_mode, wnames[c->wp],
             xnames[c->xp], c->rq, c->in_zp, c->out_zp, c->relu);
}

/* Weights (cc's pattern, range and zero points), biases folded as
 * qat_rt_model_create folds them (within validation's accumulator bound
 * for k taps) and requantization (cc->rq) for oc channels of k weights. */
void make_weights(const conv_case *cc, size_t k, size_t oc, int8_t *w, int32_t *wzp,
                  int32_t *bias, int32_t *mult, int32_t *shift, const char *what)
{
    const int32_t wmin = -(1 << (cc->bits - 1)), wmax = (1 << (cc->bits - 1)) - 1;
    for (size_t c = 0; c < oc; c++) {
        wzp[c] = cc->wzp_mode == 0 ? 0 : cc->wzp_mode == 1 ? rnd(wmin, wmax)
                                                          : (c % 2 ? wmax : wmin);
        int32_t maxdev = 0;
        for (size_t j = 0; j < k; j++) {
            int32_t v;
            switch (cc->wp) {
            case W_PLUS127: v = wmax; break;
            case W_MINUS127: v = -wmax; break;
            case W_ALT127: v = (j + c) % 2 ? wmax : -wmax; break;
            case W_MIN8: v = wmin; break;
            default: v = rnd(wmin, wmax);
            }
            w[c * k + j] = (int8_t)v;
            int32_t d = abs(v - wzp[c]);
            maxdev = d > maxdev ? d : maxdev;
        }
        /* validation's bound: K * max|w - wzp| * 255 + |bias| < 2^31 */
        long long room = (1LL << 31) - 1 - (long long)k * maxdev * 255;
        if (room < 0) {
            fprintf(stderr, "kernel_tester: case exceeds the accumulator bound: %s\n", what);
            exit(1);
        }
        long long b = room > 100000 ? rnd(-100000, 100000) : 0;
        const int extreme = cc->rq == RQ_EXTREME || cc->rq == RQ_EXTREME_RIGHT;
        const int right = cc->rq == RQ_SPREAD_RIGHT || cc->rq == RQ_EXTREME_RIGHT;
        if (extreme && c % 3 == 0)
            b = c % 2 ? room : -room; /* the accumulator may reach the bound */
        long long sum = 0;
        for (size_t j = 0; j < k; j++)
            sum += (long long)w[c * k + j] - wzp[c];
        bias[c] = (int32_t)(b - (long long)cc->in_zp * sum); /* as qat_rt_model_create folds */
        if (!extreme) {
            /* outputs spread over the int8 range; some channels shift left
             * (right-only patterns with relu and odd K: some shift 0 instead) */
            double M = c % 5 == 4 && !right ? 1.0 + qat_rng_uniform(&rng) * 3.0
                       : c % 7 == 3 && right && cc->relu && k % 2
                           ? 0.5 + 0.49 * qat_rng_uniform(&rng)
                                            : 40.0 / ((double)(maxdev ? maxdev : 1) * 128.0 *
                                                      (1.0 + sqrt((double)k))) *
                                                  (0.5 + qat_rng_uniform(&rng));
            if (qat_fp_quantize_multiplier(M, &mult[c], &shift[c]))
                abort();
        } else {
            static const int32_t ms[] = {0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX};
            const int32_t smax = right ? 0 : QAT_SHIFT_MAX;
            shift[c] = QAT_SHIFT_MIN + (int32_t)(c * 7 % (smax - QAT_SHIFT_MIN + 1));
            if (c % 11 == 0)
                shift[c] = c % 2 ? smax : QAT_SHIFT_MIN;
            mult[c] = c % 4 == 3 ? rnd(0, INT32_MAX) : ms[c % 6];
        }
    }
}

/* n activation codes in cc's pattern. */
void make_inputs(const conv_case *cc, int8_t *x, size_t in_n)
{
    for (size_t i = 0; i < in_n; i++) {
        switch (cc->xp) {
        case X_MAX: x[i] = 127; break;
        case X_MIN: x[i] = -128; break;
        /* a pair of 255s (after +128) against a pair of 127s is what makes
         * vpmaddubsw's int16 pair sums saturate */
        case X_ENDS: x[i] = (int8_t)((i / 2) % 3 ? 127 : -128); break;
        default: x[i] = (int8_t)rnd(-128, 127);
        }
    }
}

static int run_conv_case(const conv_case *cc)
{
    char what[320];
    describe(cc, what, sizeof what);
    qat_rt_conv_params p = {
        .in_h = cc->in_h, .in_w = cc->in_w, .in_c = cc->in_c, .out_c = cc->out_c,
        .kernel_h = cc->kh, .kernel_w = cc->kw, .stride_h = cc->sh, .stride_w = cc->sw,
        .pad_h = cc->ph, .pad_w = cc->pw, .in_zp = cc->in_zp, .out_zp = cc->out_zp,
    };
    p.out_h = (cc->in_h + 2 * cc->ph - cc->kh) / cc->sh + 1;
    p.out_w = (cc->in_w + 2 * cc->pw - cc->kw) / cc->sw + 1;
    p.act_min = cc->relu ? cc->out_zp : -128;
    p.act_max = 127;
    const size_t k = (size_t)cc->kh * cc->kw * cc->in_c, oc = (size_t)cc->out_c;
    const size_t in_n = (size_t)cc->n * cc->in_h * cc->in_w * cc->in_c;
    const size_t rows = (size_t)cc->n * p.out_h * p.out_w, out_n = rows * oc;
    int8_t *w = xalloc(k * oc), *x = xalloc(in_n);
    int32_t *wzp = xalloc(oc * 4), *bias = xalloc(oc * 4), *mult = xalloc(oc * 4),
            *shift = xalloc(oc * 4);
    make_weights(cc, k, oc, w, wzp, bias, mult, shift, what);
    make_inputs(cc, x, in_n);
    p.weights = w;
    p.weight_zp = wzp;
    p.bias_folded = bias;
    p.multiplier = mult;
    p.shift = shift;

    /* conv2d + 2x2 stride-2 maxpool over its output, for fused kernels */
    qat_rt_pool_params pool = {.in_h = p.out_h, .in_w = p.out_w, .c = cc->out_c,
                               .kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    pool.out_h = p.out_h / 2;
    pool.out_w = p.out_w / 2;
    const size_t prow = (size_t)cc->n * pool.out_h * pool.out_w, pout_n = prow * oc;
    int8_t *pwant = NULL;
    if (!cc->linear && prow > 0) {
        qat_rt_conv_params q = p;
        q.packed = w; /* the reference layout is the unpacked weights */
        pwant = guarded(pout_n);
        qat_s8_conv2d_maxpool__ref(&q, &pool, x, pwant, 0, prow, 0, cc->out_c, NULL);
    }

    int8_t *want = NULL;
    int distinct = 0;
    for (int pi = 0; pi < ncpaths; pi++) {
        const qat_rt_kernels *kt = cpaths[pi];
        qat_rt_conv_params q = p;
        void *packed = xalloc(kt->conv_packed_size(&q));
        kt->conv_pack(&q, packed);
        q.weights = NULL; /* kernels must read only the packed form */
        q.packed = packed;
        void *scratch = xalloc(kt->conv_scratch(&q, cc->n) + 1);
        int8_t *got = guarded(out_n);
        qat_rt_conv_fn fn = cc->linear ? kt->linear : kt->conv2d;
        fn(&q, x, got, 0, rows, 0, cc->out_c, scratch);
        CHECK(guards_ok(got, out_n), "[%s] wrote outside its output: %s", kt->isa, what);
        if (!want) {
            want = got;
            int seen[256] = {0};
            for (size_t i = 0; i < out_n; i++)
                distinct += !seen[want[i] + 128]++;
        } else {
            size_t bad = first_diff(got, want, out_n);
            CHECK(bad == out_n, "[%s] differs from ref at row %zu channel %zu: %d vs %d: %s",
                  kt->isa, bad / oc, bad % oc, bad < out_n ? got[bad] : 0,
                  bad < out_n ? want[bad] : 0, what);
            unguard(got);
        }
        /* the same layer computed in slices, as threads split it */
        int8_t *sl = guarded(out_n);
        memset(sl, 0, out_n);
        size_t r0 = 0;
        while (r0 < rows) {
            size_t r1 = r0 + 1 + (size_t)srnd(0, (int32_t)(rows < 40 ? rows : 40));
            r1 = r1 > rows ? rows : r1;
            int a = kt->channel_align, c0 = 0;
            while (c0 < cc->out_c) {
                int c1 = c0 + a * (1 + srnd(0, 2));
                c1 = c1 > cc->out_c ? cc->out_c : c1;
                fn(&q, x, sl, r0, r1, c0, c1, scratch);
                c0 = c1;
            }
            r0 = r1;
        }
        CHECK(guards_ok(sl, out_n) && memcmp(sl, want, out_n) == 0,
              "[%s] sliced run differs from ref: %s", kt->isa, what);
        unguard(sl);
        if (pwant && kt->conv2d_maxpool) {
            /* fused pooling: whole, then in slices */
            int8_t *pg = guarded(pout_n);
            kt->conv2d_maxpool(&q, &pool, x, pg, 0, prow, 0, cc->out_c, scratch);
            size_t bad = first_diff(pg, pwant, pout_n);
            CHECK(bad == pout_n && guards_ok(pg, pout_n),
                  "[%s] conv2d+maxpool differs from conv2d then maxpool at pooled row %zu "
                  "channel %zu: %d vs %d: %s",
                  kt->isa, bad / oc, bad % oc, bad < pout_n ? pg[bad] : 0,
                  bad < pout_n ? pwant[bad] : 0, what);
            memset(pg, 0, pout_n);
            for (size_t r0 = 0, r1; r0 < prow; r0 = r1) {
                r1 = r0 + 1 + (size_t)srnd(0, 9);
                r1 = r1 > prow ? prow : r1;
                for (int c0 = 0, c1; c0 < cc->out_c; c0 = c1) {
                    c1 = c0 + kt->channel_align * (1 + srnd(0, 1));
                    c1 = c1 > cc->out_c ? cc->out_c : c1;
                    kt->conv2d_maxpool(&q, &pool, x, pg, r0, r1, c0, c1, scratch);
                }
            }
            CHECK(guards_ok(pg, pout_n) && memcmp(pg, pwant, pout_n) == 0,
                  "[%s] sliced conv2d+maxpool differs: %s", kt->isa, what);
            unguard(pg);
        }
        free(packed);
        free(scratch);
    }
    unguard(want);
    unguard(pwant);
    free(w);
    free(x);
    free(wzp);
    free(bias);
    free(mult);
    free(shift);
    return distinct;
}

/* The output stage where its rounding ties show (AVX-512's one-rounding
 * forms, requant.h's round_nn for relu layers and round_sg for the others,
 * derive RDPOT's ties away from zero from the accumulator's sign): a 1x1
 * layer of 2 input channels whose weights 1 and 16 give row a of 4096 the
 * accumulator a - 2048 + bias (x0 = a mod 16, x1 = a / 16 - 128), over
 * channels of multipliers with few bits set (so SRDHM's results land on
 * RDPOT's halves) or at the ends, right shifts 1 to 5 (and one channel of
 * shift 0 in mode 3: the general stage), with and without relu, several
 * zero points; narrow (16) and wide (32 channel) tiles. Each path against
 * the first (the reference). Returns the ties checked. */
static long test_conv_ties(void)
{
    static const int32_t ms[] = {1 << 30, 3 << 29, (1 << 30) + 1, INT32_MAX,
                                 0,       1,       5 << 28,       (1 << 30) + (1 << 20)};
    long ties = 0;
    for (int oc = 16; oc <= 32; oc += 16)
        for (int mode = 0; mode < 4; mode++) {
            const int side = 64, rows = side * side;
            qat_rt_conv_params p = {.in_h = side, .in_w = side, .in_c = 2, .out_h = side,
                                    .out_w = side, .out_c = oc, .kernel_h = 1, .kernel_w = 1,
                                    .stride_h = 1, .stride_w = 1};
            p.out_zp = mode == 0 ? 0 : mode == 1 ? -128 : mode == 2 ? 7 : -3;
            p.act_min = mode % 2 ? p.out_zp : -128; /* relu in modes 1 and 3 */
            p.act_max = 127;
            int8_t w[32 * 2], x[64 * 64 * 2];
            int32_t wzp[32], bias[32], mult[32], shift[32];
            for (int c = 0; c < oc; c++) {
                w[2 * c] = 1;
                w[2 * c + 1] = 16;
                wzp[c] = 0;
                bias[c] = c % 3 ? 0 : c - 2048 / (1 + c % 4);
                mult[c] = ms[c % 8];
                shift[c] = mode == 3 && c == 5 ? 0 : -(1 + c % 5);
                /* rows whose negative rescaled value is an exact half before
                 * RDPOT and whose code is not clamped */
                const int r = -shift[c];
                for (int a = 0; r > 0 && a < rows; a++) {
                    const int32_t acc = a - 2048 + bias[c], v = qat_fp_srdhm(acc, mult[c]);
                    const int32_t code = qat_fp_requantize(acc, mult[c], shift[c], p.out_zp,
                                                           p.act_min, p.act_max);
                    ties += v < 0 && (v & ((1 << r) - 1)) == 1 << (r - 1) &&
                            code > p.act_min && code < p.act_max;
                }
            }
            for (int a = 0; a < rows; a++) {
                x[2 * a] = (int8_t)(a % 16);
                x[2 * a + 1] = (int8_t)(a / 16 - 128);
            }
            p.weights = w;
            p.weight_zp = wzp;
            p.bias_folded = bias;
            p.multiplier = mult;
            p.shift = shift;
            const size_t out_n = (size_t)rows * (size_t)oc;
            int8_t *want = NULL;
            for (int pi = 0; pi < ncpaths; pi++) {
                const qat_rt_kernels *kt = cpaths[pi];
                qat_rt_conv_params q = p;
                void *packed = xalloc(kt->conv_packed_size(&q));
                kt->conv_pack(&q, packed);
                q.weights = NULL;
                q.packed = packed;
                void *scratch = xalloc(kt->conv_scratch(&q, 1) + 1);
                int8_t *got = guarded(out_n);
                kt->conv2d(&q, x, got, 0, (size_t)rows, 0, oc, scratch);
                CHECK(guards_ok(got, out_n), "[%s] ties: wrote outside its output", kt->isa);
                if (!want) {
                    want = got;
                } else {
                    size_t bad = first_diff(got, want, out_n);
                    CHECK(bad == out_n,
                          "[%s] ties (out_c %d, mode %d) differ from ref at accumulator %d "
                          "channel %zu (mult %d shift %d): %d vs %d",
                          kt->isa, oc, mode,
                          (int)(bad / (size_t)oc) - 2048 + bias[bad % (size_t)oc % 32],
                          bad % (size_t)oc, mult[bad % (size_t)oc % 32],
                          shift[bad % (size_t)oc % 32], bad < out_n ? got[bad] : 0,
                          bad < out_n ? want[bad] : 0);
                    unguard(got);
                }
                free(packed);
                free(scratch);
            }
            unguard(want);
        }
    return ties;
}

static void test_conv(void)
{
    static const int chans[] = {1, 3, 7, 33};
    static const int outs[] = {1, 7, 16, 17, 33, 64};
    long cases = 0;
    int checked = 0, vacuous = 0; /* random cases, and those with < 3 distinct codes */
    /* shapes x channel tails, with random data and spread requantization */
    for (int ci = 0; ci < 4; ci++)
        for (int oi = 0; oi < 6; oi++)
            for (int shape = 0; shape < (quick ? 2 : 4); shape++) {
                conv_case c = {.n = 1 + shape % 3, .in_c = chans[ci], .out_c = outs[oi],
                               .bits = 8, .wp = W_RANDOM, .xp = X_RANDOM,
                               .rq = ci % 2 ? RQ_SPREAD_RIGHT : RQ_SPREAD};
                c.in_h = 1 + 2 * rnd(0, 4);
                c.in_w = 1 + 2 * rnd(0, 4) + (shape == 3);
                c.kh = rnd(1, c.in_h < 5 ? c.in_h : 5);
                c.kw = rnd(1, c.in_w < 4 ? c.in_w : 4);
                c.sh = rnd(1, 3);
                c.sw = rnd(1, 2);
                c.ph = rnd(0, c.kh - 1);
                c.pw = rnd(0, c.kw - 1);
                c.wzp_mode = shape % 3;
                c.in_zp = rnd(-128, 127);
                c.out_zp = rnd(-20, 20);
                c.relu = shape % 2;
                int d = run_conv_case(&c);
                if (c.n * c.out_c >= 16) {
                    checked++;
                    vacuous += d < 3;
                }
                cases++;
            }
    /* adversarial extremes on a few shapes (3x3 pad 1 conv, a long linear) */
    for (int wp = 0; wp < W_COUNT; wp++)
        for (int xp = 0; xp < X_COUNT; xp++)
            for (int zpi = 0; zpi < 4; zpi++)
                for (int lin = 0; lin < 2; lin++) {
                    if (quick && (zpi == 1 || zpi == 2))
                        continue;
                    conv_case c = {.linear = lin, .n = lin ? 3 : 1, .bits = 8, .wp = wp,
                                   .xp = xp, .rq = rq_pattern(zpi % 2, (wp + xp) % 2)};
                    if (lin) {
                        c.in_h = c.in_w = c.kh = c.kw = c.sh = c.sw = 1;
                        c.in_c = 1 + 600 * (zpi + 1) + zpi; /* odd K: the padded pair */
                        c.out_c = zpi < 2 ? 33 : 10; /* 10: AVX-512's narrow tile */
                    } else {
                        c.in_h = 9, c.in_w = 7, c.in_c = 33, c.out_c = zpi < 2 ? 17 : 13;
                        c.kh = c.kw = 3, c.sh = c.sw = 1, c.ph = c.pw = 1;
                    }
                    c.in_zp = zpi < 2 ? -128 : 127; /* padding reads both ends */
                    c.out_zp = zpi < 2 ? 127 : -128;
                    c.wzp_mode = wp == W_RANDOM ? 2 : 0;
                    c.relu = xp % 2;
                    run_conv_case(&c);
                    cases++;
                }
    /* every channel count of AVX-512's narrow tile (16 rows x 16 channels,
     * for out_c <= 16): K not a multiple of 4, row counts around multiples
     * of 16 (and pooled ones around multiples of 4), stride 2, padding,
     * weight zero points; then linear layers at batch 1..3 (its one- and
     * two-row tiles) and 17 */
    for (int oc = 1; oc <= 16; oc++) {
        conv_case c = {.n = 1 + oc % 3, .in_c = oc % 4 ? 2 * (oc % 5) + 1 : 16, .out_c = oc,
                       .bits = 8, .wp = W_RANDOM, .xp = X_RANDOM,
                       .rq = oc % 4 == 1 ? RQ_SPREAD_RIGHT : RQ_SPREAD};
        c.in_h = 5 + oc % 7;
        c.in_w = 4 + oc * 5 % 9;
        c.kh = 1 + oc % 3;
        c.kw = 1 + (oc + 1) % 3;
        c.sh = c.sw = 1 + (oc % 4 == 1);
        c.ph = c.kh / 2;
        c.pw = c.kw / 2;
        c.wzp_mode = oc % 3;
        c.in_zp = rnd(-128, 127);
        c.out_zp = rnd(-20, 20);
        c.relu = oc % 2;
        run_conv_case(&c);
        cases++;
    }
    /* AVX-512's run K loop (narrow tile, 3-wide stride-1 windows over 16
     * input channels): output rows of 1..70 (the driver cuts such a layer's
     * tiles at row ends into near-equal ones, and a row past the 64-row
     * block into two blocks), stride 2 down, side padding 0..2, 16 and 11
     * output channels, window heights 1, 3, 5, relu and not, weight zero
     * points */
    static const int run_w[] = {1, 2, 3, 14, 15, 16, 17, 30, 33, 70};
    for (int i = 0; i < (int)(sizeof run_w / sizeof run_w[0]); i++) {
        conv_case c = {.n = 1 + i % 2, .in_h = 3 + i % 4, .in_w = run_w[i], .in_c = 16,
                       .out_c = i % 3 ? 16 : 11, .kh = 1 + 2 * (i % 3), .kw = 3,
                       .sh = 1 + i % 2, .sw = 1, .bits = 8, .wp = W_RANDOM, .xp = X_RANDOM,
                       .rq = i % 2 ? RQ_SPREAD_RIGHT : RQ_SPREAD, .wzp_mode = i % 3,
                       .in_zp = rnd(-128, 127), .out_zp = rnd(-20, 20), .relu = i % 2};
        c.ph = c.kh / 2;
        c.pw = run_w[i] < 3 ? 1 + i % 2 : i % 3;
        run_conv_case(&c);
        cases++;
    }
    for (int n = 1; n <= 4; n++) {
        conv_case c = {.linear = 1, .n = n < 4 ? n : 17, .in_h = 1, .in_w = 1, .kh = 1, .kw = 1,
                       .sh = 1, .sw = 1, .in_c = 61 + 2 * n, .out_c = 6 + 3 * n, .bits = 8,
                       .wp = W_RANDOM, .xp = X_RANDOM, .rq = RQ_SPREAD, .wzp_mode = n % 3,
                       .in_zp = rnd(-128, 127), .out_zp = rnd(-20, 20), .relu = n % 2};
        run_conv_case(&c);
        cases++;
    }
    /* sub-8-bit weight ranges (the values a packed 2..7-bit layer unpacks to) */
    for (int bits = 2; bits <= 7; bits++)
        for (int wzp = 0; wzp < 3; wzp++) {
            conv_case c = {.n = 2, .in_h = 7, .in_w = 5, .in_c = 7, .out_c = 33, .kh = 3,
                           .kw = 3, .sh = 2, .sw = 1, .ph = 1, .pw = 0, .bits = bits,
                           .wzp_mode = wzp, .wp = bits % 2 ? W_MIN8 : W_RANDOM,
                           .xp = X_RANDOM, .rq = RQ_SPREAD, .in_zp = rnd(-128, 127)};
            run_conv_case(&c);
            cases++;
        }
    /* the CNN's own layers (conv1, conv2, fc1 at batch 3) and two like them */
    conv_case cnn[] = {
        {.n = 1, .in_h = 28, .in_w = 28, .in_c = 1, .out_c = 32, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
        {.n = 1, .in_h = 14, .in_w = 14, .in_c = 32, .out_c = 64, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
        {.linear = 1, .n = 3, .in_h = 1, .in_w = 1, .in_c = 3136, .out_c = 128, .kh = 1,
         .kw = 1, .sh = 1, .sw = 1, .bits = 8},
        /* tiles of weights past L1, so the driver's rows go outside
         * (head.rows_outer): fc1 at batch 21 with a channel tail, and a
         * deep 3x3 conv + pool, several row groups and tiles each */
        {.linear = 1, .n = 21, .in_h = 1, .in_w = 1, .in_c = 3136, .out_c = 75, .kh = 1,
         .kw = 1, .sh = 1, .sw = 1, .bits = 8},
        {.n = 2, .in_h = 6, .in_w = 10, .in_c = 131, .out_c = 37, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
        /* 63 channels: a last tile of 31 (AVX-512's output stage packs
         * whole tiles only) */
        {.n = 2, .in_h = 9, .in_w = 7, .in_c = 20, .out_c = 63, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
        /* ResNet-8's first stage (configs/fashion_resnet8.ini): the stem and
         * a 16 -> 16 conv, on AVX-512's narrow tile */
        {.n = 1, .in_h = 28, .in_w = 28, .in_c = 1, .out_c = 16, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
        {.n = 2, .in_h = 28, .in_w = 28, .in_c = 16, .out_c = 16, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1, .bits = 8},
    };
    for (size_t i = 0; i < sizeof cnn / sizeof cnn[0]; i++) {
        cnn[i].in_zp = -128 + 7 * (int)i;
        cnn[i].out_zp = -100;
        cnn[i].relu = 1;
        cnn[i].rq = i % 2 ? RQ_SPREAD : RQ_SPREAD_RIGHT;
        run_conv_case(&cnn[i]);
        cases++;
    }
    CHECK(vacuous * 10 <= checked,
          "%d of %d random cases produced fewer than 3 distinct codes: the comparison is "
          "vacuous", vacuous, checked);
    printf("conv2d/linear: %ld cases (%d of %d random ones give < 3 distinct codes)\n", cases,
           vacuous, checked);
    const long ties = test_conv_ties();
    CHECK(ties >= 1000, "conv output-stage ties: only %ld negative unclamped ties", ties);
    printf("conv output-stage rounding ties: %ld negative unclamped ties\n", ties);
}

/* ---- the output stage ------------------------------------------------------------ */

static void test_requantize(void)
{
    static const int32_t accs[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30),
                                   -65536, -32769, -256, -129, -128, -3, -2, -1, 0, 1, 2, 3,
                                   127, 128, 255, 256, 32768, 1 << 30, INT32_MAX - 1,
                                   INT32_MAX};
    static const int32_t mults[] = {0, 1, 2, 1 << 30, (1 << 30) + 1, 1518500250,
                                    INT32_MAX - 1, INT32_MAX, -1 /* random */};
    const int nshift = QAT_SHIFT_MAX - QAT_SHIFT_MIN + 1, nm = sizeof mults / sizeof mults[0];
    const int channels = nshift * nm; /* 549: not a multiple of any vector width */
    const size_t rows = sizeof accs / sizeof accs[0] + 40;
    int32_t *mult = xalloc((size_t)channels * 4), *shift = xalloc((size_t)channels * 4);
    int32_t *acc = xalloc(rows * (size_t)channels * 4);
    int8_t *want = xalloc(rows * (size_t)channels);
    for (int s = 0; s < nshift; s++)
        for (int mi = 0; mi < nm; mi++) {
            shift[s * nm + mi] = QAT_SHIFT_MIN + s;
            mult[s * nm + mi] = mults[mi] < 0 ? rnd(0, INT32_MAX) : mults[mi];
        }
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < channels; c++)
            acc[r * channels + c] = r < sizeof accs / sizeof accs[0]
                                        ? accs[r]
                                        : (int32_t)qat_rng_u32(&rng) >> rnd(0, 31);
    static const int32_t ranges[][3] = {{0, -128, 127}, {-128, -128, 127}, {127, -128, 127},
                                        {5, 5, 127},    {-128, -8, 7},     {127, 127, 127},
                                        {-128, -128, -128}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
        qat_rt_requant_params q = {.channels = channels, .multiplier = mult, .shift = shift,
                                   .out_zp = ranges[ri][0], .act_min = ranges[ri][1],
                                   .act_max = ranges[ri][2]};
        for (size_t i = 0; i < rows * (size_t)channels; i++)
            want[i] = (int8_t)qat_fp_requantize(acc[i], mult[i % channels], shift[i % channels],
                                                q.out_zp, q.act_min, q.act_max);
        for (int pi = 0; pi < npaths; pi++) {
            int8_t *got = guarded(rows * (size_t)channels);
            paths[pi]->requantize(&q, acc, got, rows);
            size_t bad = first_diff(got, want, rows * (size_t)channels);
            CHECK(bad == rows * (size_t)channels && guards_ok(got, rows * (size_t)channels),
                  "[%s] requantize(acc %d, m0 %d, shift %d, zp %d, [%d, %d]) = %d, want %d",
                  paths[pi]->isa, acc[bad % (rows * channels)], mult[bad % channels],
                  shift[bad % channels], q.out_zp, q.act_min, q.act_max,
                  got[bad % (rows * channels)], want[bad % (rows * channels)]);
            unguard(got);
        }
    }
    /* the oracle against ARITHMETIC.md's worked examples, so the comparison
     * above is anchored to the spec and not only to itself */
    CHECK(qat_fp_requantize(-4193, 1077952640, -8, 5, -128, 127) == -3, "worked example 1");
    CHECK(qat_fp_requantize(6553, 2105376150, 1, 0, -128, 127) == 127, "worked example 2");
    printf("requantize: %d channels x %zu accumulators x 7 clamp ranges\n", channels, rows);
    free(mult);
    free(shift);
    free(acc);
    free(want);
}

/* ---- pools and input quantization ------------------------------------------------- */

static void test_pools(void)
{
    static const int chans[] = {1, 3, 7, 16, 31, 32, 33, 64, 65};
    long cases = 0;
    for (int ci = 0; ci < 9; ci++)
        for (int rep = 0; rep < (quick ? 3 : 8); rep++) {
            qat_rt_pool_params p = {.c = chans[ci]};
            p.kernel_h = rnd(1, 5);
            p.kernel_w = rnd(1, 4);
            if (rep == 7) /* a big window with a non-power-of-2 count */
                p.kernel_h = 13, p.kernel_w = 9;
            p.stride_h = rnd(1, 3);
            p.stride_w = rnd(1, 3);
            p.in_h = p.kernel_h + rnd(0, 6);
            p.in_w = p.kernel_w + rnd(0, 5);
            p.out_h = (p.in_h - p.kernel_h) / p.stride_h + 1;
            p.out_w = (p.in_w - p.kernel_w) / p.stride_w + 1;
            p.zp = rep % 4 == 0 ? -128 : rep % 4 == 1 ? 127 : rnd(-128, 127);
            qat_rt_pool_divisor(p.kernel_h * p.kernel_w, &p.div_mul, &p.div_shift);
            int n = 1 + rep % 3;
            size_t in_n = (size_t)n * p.in_h * p.in_w * p.c;
            size_t rows = (size_t)n * p.out_h * p.out_w, out_n = rows * (size_t)p.c;
            int8_t *x = xalloc(in_n);
            for (size_t i = 0; i < in_n; i++)
                x[i] = (int8_t)(rep % 3 == 0 ? (i % 2 ? 127 : -128)
                                : rep % 3 == 1 ? rnd(-128, 127)
                                               : (rnd(0, 1) ? 127 : 126));
            for (int op = 0; op < 2; op++) {
                int8_t *want = NULL;
                for (int pi = 0; pi < ncpaths; pi++) {
                    qat_rt_pool_fn fn = op ? cpaths[pi]->avgpool2d : cpaths[pi]->maxpool2d;
                    int8_t *got = guarded(out_n);
                    size_t half = rows / 2;
                    fn(&p, x, got, 0, half);
                    fn(&p, x, got, half, rows);
                    CHECK(guards_ok(got, out_n), "[%s] pool wrote outside its output",
                          cpaths[pi]->isa);
                    if (!want) {
                        want = got;
                        continue;
                    }
                    CHECK(memcmp(got, want, out_n) == 0,
                          "[%s] %s differs: n=%d in=%dx%dx%d k=%dx%d s=%dx%d zp=%d",
                          cpaths[pi]->isa, op ? "avgpool" : "maxpool", n, p.in_h, p.in_w, p.c,
                          p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.zp);
                    unguard(got);
                }
                unguard(want);
            }
            free(x);
            cases++;
        }
    /* DivRound's tie rule and divisor exactness over every count up to 300 */
    for (int32_t n = 1; n <= 300; n++) {
        uint32_t mul;
        int sh;
        qat_rt_pool_divisor(n, &mul, &sh);
        for (int32_t u = 0; u < 255 * n + n; u += 1 + n / 8)
            CHECK((int64_t)(((uint64_t)u * mul) >> sh) == u / n, "divisor n=%d u=%d", n, u);
        uint32_t big[] = {(uint32_t)INT32_MAX, (uint32_t)INT32_MAX - 1, 1u << 30};
        for (int i = 0; i < 3; i++)
            CHECK((uint64_t)(((uint64_t)big[i] * mul) >> sh) == big[i] / (uint32_t)n,
                  "divisor n=%d u=%u", n, big[i]);
    }
    uint32_t mul;
    int sh;
    qat_rt_pool_divisor(1 << 23, &mul, &sh);
    CHECK(((uint64_t)INT32_MAX * mul) >> sh == (uint64_t)INT32_MAX >> 23, "divisor 2^23");
    qat_rt_pool_divisor((1 << 23) - 1, &mul, &sh);
    CHECK(((uint64_t)INT32_MAX * mul) >> sh == (uint64_t)INT32_MAX / ((1 << 23) - 1),
          "divisor 2^23-1");
    printf("pools: %ld cases\n", cases);
}

static void test_quantize_input(void)
{
    size_t lens[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 784, 100003};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        uint8_t *px = xalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            px[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : rnd(0, 255));
        for (int pi = 0; pi < npaths; pi++) {
            int8_t *got = guarded(n);
            paths[pi]->quantize_input(px, got, n);
            int ok = guards_ok(got, n);
            for (size_t i = 0; i < n; i++)
                ok &= got[i] == (int8_t)((int)px[i] - 128);
            CHECK(ok, "[%s] quantize_input of %zu pixels", paths[pi]->isa, n);
            unguard(got);
        }
        free(px);
    }
}

/* ---- whole models: every path, every thread count, against the oracle -------------- */

static void run_model(const fx_model *fx, int nimg, const char *label)
{
    qat_error e;
    size_t in = (size_t)fx->desc.in_h * fx->desc.in_w * fx->desc.in_c;
    int nc = fx->desc.num_classes;
    uint8_t *px = xalloc((size_t)nimg * in);
    int8_t *want = xalloc((size_t)nimg * nc), *got = xalloc((size_t)nimg * nc);
    fx_images((uint64_t)nimg * 31 + 7, px, (size_t)nimg * in);
    for (int b = 0; b < nimg; b++)
        CHECK(fx_oracle(fx, px + (size_t)b * in, want + (size_t)b * nc) == 0,
              "%s: oracle accumulator overflow", label);
    for (int pi = 0; pi < npaths; pi++) {
        qat_rt_model *m = NULL;
        qat_status st = qat_rt_model_create_isa(&fx->desc, paths[pi]->isa, &m, &e);
        CHECK(st == QAT_OK, "%s: create [%s]: %s", label, paths[pi]->isa, e.msg);
        if (st)
            continue;
        CHECK(strcmp(qat_rt_model_isa(m), paths[pi]->isa) == 0, "model isa %s",
              qat_rt_model_isa(m));
        for (int t = 1; t <= 3; t++) {
            /* batch 1 (layer phases when t > 1: these small models' layers
             * are one task each, so also with every layer split as far as
             * it goes), then everything at once */
            const struct {
                int batch, split;
            } runs[] = {{1, 0}, {1, 1}, {nimg, 0}};
            for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
                const int batch = runs[r].batch, split = runs[r].split;
                if (split && t == 1)
                    continue;
                memset(got, 0x55, (size_t)nimg * nc);
                qat_rt_options o = {.threads = t, .max_batch = batch};
                qat_rt_session *s = NULL;
                st = qat_rt_session_create(m, &o, &s, &e);
                if (!st && split)
                    qat_rt_session_set_min_task_macs(s, 1);
                for (int i = 0; !st && i < nimg; i += batch) {
                    int n = nimg - i < batch ? nimg - i : batch;
                    st = qat_rt_run(s, px + (size_t)i * in, n, got + (size_t)i * nc, &e);
                }
                qat_rt_session_destroy(s);
                CHECK(st == QAT_OK, "%s: run: %s", label, e.msg);
                size_t bad = first_diff(got, want, (size_t)nimg * nc);
                CHECK(bad == (size_t)nimg * nc,
                      "%s [%s] threads %d batch %d%s: image %zu class %zu: %d, oracle %d", label,
                      paths[pi]->isa, t, batch, split ? " (every layer split)" : "", bad / nc,
                      bad % nc, got[bad % (nimg * nc)],
                      want[bad % (nimg * nc)]);
            }
        }
        qat_rt_model_destroy(m);
    }
    free(px);
    free(want);
    free(got);
}

static void test_models(void)
{
    for (int bits = 2; bits <= 8; bits++) {
        fx_model fx;
        char label[32];
        snprintf(label, sizeof label, "cnn %d-bit", bits);
        fx_build_cnn(&fx, 500 + (uint64_t)bits, bits);
        run_model(&fx, quick ? 5 : 11, label);
        fx_free(&fx);
    }
    /* asymmetric weights on every layer, wide channels (tiles and tails) */
    fx_model fx;
    fx_begin(&fx, 9, 8, 3, 77);
    const int outs[] = {33, 40, 0};
    for (int i = 0; i < 2; i++) {
        qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_CONV2D, i ? "conv_b" : "conv_a");
        l->kernel_h = l->kernel_w = 3;
        l->stride_h = l->stride_w = 1 + i;
        l->pad_h = l->pad_w = 1;
        l->out_h = fx_out(l->in_h, 3, 1 + i, 1);
        l->out_w = fx_out(l->in_w, 3, 1 + i, 1);
        l->out_c = outs[i];
        fx_fill_weights(&fx, l, 8 - 3 * i, i, 8, 20);
        fx_commit(&fx, l);
    }
    fx_pool(&fx, QAT_RT_AVGPOOL2D, "pool", 2, 1);
    fx_flatten(&fx, "flatten");
    qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_LINEAR, "fc");
    l->out_h = l->out_w = 1;
    l->out_c = 19;
    fx_fill_weights(&fx, l, 8, 0, 8, 60);
    fx_commit(&fx, l);
    fx_finish(&fx);
    run_model(&fx, quick ? 4 : 9, "asymmetric");
    fx_free(&fx);
    /* a graph model: depthwise x2, grouped, add, concat, relu6, global_avgpool */
    for (int bits = 4; bits <= 8; bits += 4) {
        fx_build_graph(&fx, 60 + (uint64_t)bits, bits);
        run_model(&fx, quick ? 4 : 9, bits == 4 ? "graph 4-bit" : "graph 8-bit");
        fx_free(&fx);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: kernel_tester [--quick]\n");
            return 2;
        }
    }
    qat_rng_seed(&rng, 2024, 11);
    qat_rng_seed(&srng, 2024, 12);
    npaths = qat_rt_kernels_available(paths);
    for (int i = 0; i < npaths; i++)
        cpaths[ncpaths++] = paths[i];
    cpaths[ncpaths++] = &qat_test_driver_gemm;
    cpaths[ncpaths++] = &qat_test_driver_igemm;
    printf("kernel paths:");
    for (int i = 0; i < npaths; i++)
        printf(" %s", paths[i]->isa);
    printf("; conv and pools also through the drivers with test microkernels: %s, %s",
           qat_test_driver_gemm.isa, qat_test_driver_igemm.isa);
    printf("%s\n", npaths == 1 ? " (only the reference: comparisons are against the oracle)"
                               : "");
    test_quantize_input();
    test_requantize();
    test_pools();
    test_conv();
    test_gconv();
    test_merge();
    test_models();
    printf("%ld checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
