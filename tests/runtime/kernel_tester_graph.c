/* The kernel tester's graph layers (docs/ARITHMETIC.md §4.1): grouped and
 * depthwise conv2d, add, concat and global_avgpool on every path this
 * build and CPU can run, byte for byte against ref, whole and in the row
 * (and, for convs, channel) slices threads cut. Shapes with channel tails
 * (1..3, odd counts, one past each vector width), multipliers 1..3,
 * strides 1 and 2, padding, 1x1 images, extreme zero points, multipliers
 * and shifts, and relu / relu6-style clamps. */
#include <stdlib.h>
#include <string.h>

#include "kernel_tester.h"

#include "qat/fixedpoint.h"

/* ---- grouped / depthwise conv2d ------------------------------------------------------------ */

typedef struct gconv_case {
    conv_case cc;
    int groups;
    int six; /* > 0: act_max = out_zp + six (a relu6 clamp) */
} gconv_case;

/* Runs one case on every path; returns the distinct codes ref produced. */
static int run_gconv_case(const gconv_case *gc)
{
    const conv_case *cc = &gc->cc;
    char what[320];
    snprintf(what, sizeof what,
             "gconv n=%d in=%dx%dx%d oc=%d groups=%d k=%dx%d s=%dx%d p=%dx%d wzp=%d w=%d x=%d "
             "rq=%d in_zp=%d out_zp=%d relu=%d six=%d",
             cc->n, cc->in_h, cc->in_w, cc->in_c, cc->out_c, gc->groups, cc->kh, cc->kw, cc->sh,
             cc->sw, cc->ph, cc->pw, cc->wzp_mode, (int)cc->wp, (int)cc->xp, (int)cc->rq,
             cc->in_zp, cc->out_zp, cc->relu, gc->six);
    qat_rt_conv_params p = {
        .in_h = cc->in_h, .in_w = cc->in_w, .in_c = cc->in_c, .out_c = cc->out_c,
        .kernel_h = cc->kh, .kernel_w = cc->kw, .stride_h = cc->sh, .stride_w = cc->sw,
        .pad_h = cc->ph, .pad_w = cc->pw, .in_zp = cc->in_zp, .out_zp = cc->out_zp,
        .groups = gc->groups,
    };
    p.out_h = (cc->in_h + 2 * cc->ph - cc->kh) / cc->sh + 1;
    p.out_w = (cc->in_w + 2 * cc->pw - cc->kw) / cc->sw + 1;
    p.act_min = cc->relu ? cc->out_zp : -128;
    p.act_max = gc->six > 0 && cc->out_zp + gc->six < 127 ? cc->out_zp + gc->six : 127;
    const size_t k = (size_t)cc->kh * cc->kw * (cc->in_c / gc->groups), oc = (size_t)cc->out_c;
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
    const int depthwise = gc->groups > 1 && gc->groups == cc->in_c; /* groups 1: a plain conv */
    int8_t *want = NULL;
    int distinct = 0;
    for (int pi = 0; pi < npaths; pi++) {
        const qat_rt_kernels *kt = paths[pi];
        qat_rt_conv_params q = p;
        void *packed = NULL;
        if (kt->gconv_pack) {
            packed = xalloc(kt->gconv_packed_size(&q));
            kt->gconv_pack(&q, packed);
            q.packed = packed;
            if (depthwise)
                q.weights = NULL; /* the depthwise kernels read only the packed form */
        }
        void *scratch = xalloc((kt->gconv_scratch ? kt->gconv_scratch(&q, cc->n) : 0) + 1);
        int8_t *got = guarded(out_n);
        kt->gconv2d(&q, x, got, 0, rows, 0, cc->out_c, scratch);
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
        /* in slices, as threads cut a layer: odd row runs, channel groups of
         * channel_align (the last one ragged) */
        int8_t *sl = guarded(out_n);
        memset(sl, 0, out_n);
        for (size_t r0 = 0, r1; r0 < rows; r0 = r1) {
            r1 = r0 + 1 + (size_t)srnd(0, (int32_t)(rows < 30 ? rows : 30));
            r1 = r1 > rows ? rows : r1;
            for (int c0 = 0, c1; c0 < cc->out_c; c0 = c1) {
                c1 = c0 + kt->channel_align * (1 + srnd(0, 2));
                c1 = c1 > cc->out_c ? cc->out_c : c1;
                kt->gconv2d(&q, x, sl, r0, r1, c0, c1, scratch);
            }
        }
        CHECK(guards_ok(sl, out_n) && memcmp(sl, want, out_n) == 0,
              "[%s] sliced run differs from ref: %s", kt->isa, what);
        unguard(sl);
        free(packed);
        free(scratch);
    }
    unguard(want);
    free(w);
    free(x);
    free(wzp);
    free(bias);
    free(mult);
    free(shift);
    return distinct;
}

void test_gconv(void)
{
    /* tails of every vector width (8, 16, 32, 64 channels) and small counts */
    static const int chans[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65};
    const int nch = sizeof chans / sizeof chans[0];
    long cases = 0;
    int checked = 0, vacuous = 0;
    for (int ci = 0; ci < nch; ci++)
        for (int rep = 0; rep < (quick ? 3 : 6); rep++) {
            const int mult = 1 + rep % 3;
            gconv_case g = {.cc = {.n = 1 + rep % 2, .in_c = chans[ci], .bits = 8,
                                   .wp = W_RANDOM, .xp = X_RANDOM,
                                   .rq = ci % 2 ? RQ_SPREAD_RIGHT : RQ_SPREAD},
                            .groups = chans[ci]};
            conv_case *c = &g.cc;
            c->out_c = c->in_c * mult;
            c->in_h = rep == 5 ? 1 : 1 + rnd(0, 9);
            c->in_w = rep == 5 ? 1 : 1 + rnd(0, 9);
            c->kh = rnd(1, 3);
            c->kw = rnd(1, 3);
            if (rep == 1) /* a 5x5 window, bigger than small images */
                c->kh = c->kw = 5;
            c->sh = rnd(1, 2);
            c->sw = rnd(1, 2);
            c->ph = rnd(0, c->kh - 1);
            c->pw = rnd(0, c->kw - 1);
            if (c->in_h + 2 * c->ph < c->kh)
                c->ph = (c->kh - c->in_h + 1) / 2;
            if (c->in_w + 2 * c->pw < c->kw)
                c->pw = (c->kw - c->in_w + 1) / 2;
            if (c->ph >= c->kh || c->pw >= c->kw) /* the window cannot fit: shrink it */
                c->kh = c->kw = 1, c->ph = c->pw = 0;
            c->wzp_mode = rep % 3;
            c->in_zp = rnd(-128, 127);
            c->out_zp = rnd(-20, 20);
            c->relu = rep % 2;
            g.six = rep == 3 ? rnd(1, 60) : 0;
            int d = run_gconv_case(&g);
            if ((size_t)c->n * c->out_c >= 16) {
                checked++;
                vacuous += d < 3;
            }
            cases++;
        }
    /* DS-CNN / MobileNet layers: 3x3 depthwise, stride 1 and 2, padding 1,
     * with and without relu6's lower clamp */
    for (int s = 1; s <= 2; s++)
        for (int ci = 0; ci < 3; ci++) {
            static const int cs[] = {32, 64, 65};
            gconv_case g = {.cc = {.n = 2, .in_h = 14, .in_w = 13, .in_c = cs[ci],
                                   .out_c = cs[ci], .kh = 3, .kw = 3, .sh = s, .sw = s, .ph = 1,
                                   .pw = 1, .bits = 8, .wzp_mode = ci % 2, .wp = W_RANDOM,
                                   .xp = X_RANDOM,
                                   .rq = s == 1 || ci == 2 ? RQ_SPREAD_RIGHT : RQ_SPREAD,
                                   .in_zp = -128 + 50 * ci,
                                   .out_zp = (s + ci) % 2 ? -128 : 5 * ci - 10,
                                   .relu = (s + ci) % 2},
                            .groups = cs[ci], .six = 40};
            run_gconv_case(&g);
            cases++;
        }
    /* extremes: weights and activations at both ends, zero points at both
     * ends (padding reads them), requantization at both ends */
    for (int wp = 0; wp < W_COUNT; wp++)
        for (int xp = 0; xp < X_COUNT; xp++)
            for (int zpi = 0; zpi < (quick ? 2 : 4); zpi++) {
                gconv_case g = {.cc = {.n = 1, .in_h = 5, .in_w = 6, .in_c = 19, .out_c = 38,
                                       .kh = 3, .kw = 3, .sh = 1 + zpi % 2, .sw = 1, .ph = 1,
                                       .pw = 1, .bits = 8, .wzp_mode = wp == W_RANDOM ? 2 : 0,
                                       .wp = wp, .xp = xp,
                                       .rq = rq_pattern(zpi % 2, (wp + xp) % 2),
                                       .in_zp = zpi < 2 ? -128 : 127,
                                       .out_zp = zpi < 2 ? 127 : -128, .relu = xp % 2},
                                .groups = 19};
                run_gconv_case(&g);
                cases++;
            }
    /* general grouped convs (1 < groups < in_c), sub-8-bit weight ranges */
    static const int grp[][3] = {{6, 2, 6}, {6, 3, 12}, {12, 4, 8}, {33, 11, 33}, {64, 32, 64}};
    for (int gi = 0; gi < 5; gi++)
        for (int bits = 4; bits <= 8; bits += 4) {
            gconv_case g = {.cc = {.n = 2, .in_h = 7, .in_w = 5, .in_c = grp[gi][0],
                                   .out_c = grp[gi][2], .kh = 3, .kw = 3, .sh = 2, .sw = 1,
                                   .ph = 1, .pw = 1, .bits = bits, .wzp_mode = gi % 3,
                                   .wp = W_RANDOM, .xp = X_RANDOM, .rq = RQ_SPREAD,
                                   .in_zp = rnd(-128, 127)},
                            .groups = grp[gi][1]};
            run_gconv_case(&g);
            cases++;
        }
    CHECK(vacuous * 10 <= checked,
          "%d of %d random grouped cases produced fewer than 3 distinct codes: the comparison is "
          "vacuous", vacuous, checked);
    printf("gconv2d: %ld cases (%d of %d random ones give < 3 distinct codes)\n", cases, vacuous,
           checked);
}

/* ---- add, concat, global_avgpool ------------------------------------------------------------ */

/* A multiplier and shift: a real one (M), or, with extreme, one of the
 * ends (shift in [smin, smax]). */
static void pick_mult(double M, int extreme, int32_t smin, int32_t smax, int32_t *m, int32_t *s)
{
    if (!extreme) {
        if (qat_fp_quantize_multiplier(M, m, s) || *s < smin || *s > smax)
            abort();
        return;
    }
    static const int32_t ms[] = {0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX};
    *m = rnd(0, 2) ? ms[rnd(0, 5)] : rnd(0, INT32_MAX);
    *s = rnd(0, 2) ? (rnd(0, 1) ? smin : smax) : rnd(smin, smax);
}

static void fill_codes(int8_t *x, size_t n, int pat)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (int8_t)(pat == 1 ? 127 : pat == 2 ? -128 : pat == 3 ? (i % 3 ? 127 : -128)
                                                                     : rnd(-128, 127));
}

static qat_rt_merge_fn pick_add(const qat_rt_kernels *k) { return k->add; }

/* One merge layer on every path over rows [0, rows), whole and in odd
 * slices; returns the distinct codes ref produced. A path whose add packs
 * data (add_pack) runs the add twice: with it, as a model runs it, and
 * without, its fallback on a CPU that lacks what the packed form needs. */
static int run_merge(qat_rt_merge_fn (*pick)(const qat_rt_kernels *), const char *op,
                     const qat_rt_merge_params *p0, const int8_t *const *in, size_t rows)
{
    const size_t out_n = rows * (size_t)p0->out_c;
    int8_t *want = NULL;
    int distinct = 0;
    for (int pi = 0; pi < npaths; pi++) {
        const qat_rt_kernels *k = paths[pi];
        const size_t pbytes =
            pick == pick_add && k->add_packed_size ? k->add_packed_size(p0) : 0;
        for (int packed = pbytes ? 1 : 0; packed >= 0; packed--) {
            qat_rt_merge_fn fn = pick(k);
            qat_rt_merge_params pp = *p0;
            const qat_rt_merge_params *p = &pp;
            void *pk = NULL;
            if (packed) {
                pk = xalloc(pbytes);
                k->add_pack(p0, pk);
            }
            pp.packed = pk;
            const char *how = packed ? " (packed)" : "";
            int8_t *got = guarded(out_n), *sl = guarded(out_n);
            fn(p, in, got, 0, rows);
            memset(sl, 0, out_n);
            for (size_t r0 = 0, r1; r0 < rows; r0 = r1) {
                r1 = r0 + 1 + (size_t)srnd(0, 6);
                fn(p, in, sl, r0, r1 < rows ? r1 : rows);
            }
            free(pk);
            CHECK(guards_ok(got, out_n) && guards_ok(sl, out_n),
                  "[%s%s] %s wrote outside its output", k->isa, how, op);
            CHECK(memcmp(sl, got, out_n) == 0, "[%s%s] %s in slices differs from whole", k->isa,
                  how, op);
            unguard(sl);
            if (!want) {
                want = got;
                int seen[256] = {0};
                for (size_t i = 0; i < out_n; i++)
                    distinct += !seen[want[i] + 128]++;
                continue;
            }
            size_t bad = first_diff(got, want, out_n);
            CHECK(bad == out_n,
                  "[%s%s] %s differs from ref at row %zu channel %zu: %d vs %d (out_c %d, zp %d, "
                  "mult %d shift %d, in_zp %d %d, in_mult %d %d, in_shift %d %d, clamp [%d, %d])",
                  k->isa, how, op, bad / (size_t)p->out_c, bad % (size_t)p->out_c,
                  bad < out_n ? got[bad] : 0, bad < out_n ? want[bad] : 0, p->out_c, p->out_zp,
                  p->out_mult, p->out_shift, p->in_zp[0], p->in_zp[1], p->in_mult[0],
                  p->in_mult[1], p->in_shift[0], p->in_shift[1], p->act_min, p->act_max);
            unguard(got);
        }
    }
    unguard(want);
    return distinct;
}

static qat_rt_merge_fn pick_concat(const qat_rt_kernels *k) { return k->concat; }
static qat_rt_merge_fn pick_gap(const qat_rt_kernels *k) { return k->global_avgpool; }

/* act_min / act_max: none, relu, relu6-like, a narrow band. */
static void pick_clamp(qat_rt_merge_params *p, int mode)
{
    p->act_min = mode == 0 ? -128 : p->out_zp;
    p->act_max = mode == 2 ? (p->out_zp + 50 < 127 ? p->out_zp + 50 : 127)
                 : mode == 3 ? (p->out_zp + 3 < 127 ? p->out_zp + 3 : 127)
                             : 127;
}

static const int32_t zps[] = {-128, 127, 0, -1};

/* The add's per-input rescale where one step of its rounding shows in the
 * output: small multipliers (M < 2^13, so the rescaled input is a few
 * hundred at most) at right shifts 0-3, the other input's multiplier 0 and
 * an identity output stage (M = 2^30, shift 1: the code is the sum plus
 * the zero point), over every code and four zero points. A path that
 * rounds v M 2^20 / 2^31 or the right shift differently at a tie (v Ml +
 * 2^10 a multiple of 2^11, or an exact half after the shift) differs here;
 * random multipliers almost never land on those. Then the same sums through
 * an output stage of M = 1/2 and right shifts 1-3 (ties at every other
 * code, negative sums' too), with and without relu's lower clamp (with it,
 * AVX-512 takes requant.h's shorter stage). */
static void test_add_rounding(void)
{
    static const int32_t ms[] = {1, 1023, 1024, 1025, 2047, 2048, 3072, 4095, 6144, 8191};
    const int nm = sizeof ms / sizeof ms[0];
    int8_t a[256], b[256];
    for (int i = 0; i < 256; i++) {
        a[i] = (int8_t)(i - 128);
        b[i] = (int8_t)rnd(-128, 127);
    }
    long cases = 0;
    for (int mi = 0; mi < nm; mi++)
        for (int r = 0; r <= 3; r++)
            for (int zi = 0; zi < 4; zi++)
                for (int side = 0; side < 4; side++) {
                    const int outr = side < 2 ? 0 : 1 + (mi + zi + r) % 3;
                    qat_rt_merge_params p = {.n = 2, .c = {16, 16}, .out_c = 16,
                                             .out_mult = 1 << 30, .out_shift = outr ? -outr : 1,
                                             .act_min = -128, .act_max = 127};
                    if (outr && (mi + zi) % 2)
                        p.act_min = p.out_zp; /* relu */
                    const int k = side % 2;
                    p.in_mult[k] = ms[mi];
                    p.in_shift[k] = -r;
                    p.in_zp[k] = zps[zi];
                    p.in_zp[1 - k] = rnd(-128, 127);
                    const int8_t *ab[2] = {k ? b : a, k ? a : b};
                    run_merge(pick_add, "add (rounding ties)", &p, ab, 16);
                    cases++;
                }
    printf("add rounding ties: %ld cases of 256 codes\n", cases);
}

void test_merge(void)
{
    test_add_rounding();
    static const int chans[] = {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 64, 65};
    const int nch = sizeof chans / sizeof chans[0];
    long cases = 0;
    int checked = 0, vacuous = 0;
    for (int ci = 0; ci < nch; ci++)
        for (int rep = 0; rep < (quick ? 4 : 8); rep++) {
            const int C = chans[ci], extreme = rep % 4 == 3;
            const size_t rows = (size_t)(1 + rnd(0, 40));
            const int pat = rep % 4;
            /* add: TFLite's multipliers from three scales, or extremes */
            qat_rt_merge_params p = {.n = 2, .c = {C, C}, .out_c = C};
            double s0 = 0.002 + 0.05 * qat_rng_uniform(&rng), s1 = s0 * (0.2 + 4 * qat_rng_uniform(&rng));
            double so = (s0 + s1) * (0.3 + qat_rng_uniform(&rng)), t = 2 * (s0 > s1 ? s0 : s1);
            pick_mult(s0 / t, extreme, QAT_SHIFT_MIN, 0, &p.in_mult[0], &p.in_shift[0]);
            pick_mult(s1 / t, extreme, QAT_SHIFT_MIN, 0, &p.in_mult[1], &p.in_shift[1]);
            pick_mult(t / (1048576.0 * so), extreme, QAT_SHIFT_MIN, QAT_SHIFT_MAX, &p.out_mult,
                      &p.out_shift);
            p.in_zp[0] = rep < 4 ? zps[rep] : rnd(-128, 127);
            p.in_zp[1] = rep < 4 ? zps[3 - rep] : rnd(-128, 127);
            p.out_zp = rep < 4 ? zps[(rep + 1) % 4] : rnd(-128, 127);
            pick_clamp(&p, rep % 4);
            int8_t *a = xalloc(rows * C), *b = xalloc(rows * C);
            fill_codes(a, rows * C, pat);
            fill_codes(b, rows * C, pat == 3 ? 0 : pat);
            const int8_t *ab[2] = {a, b};
            int d = run_merge(pick_add, "add", &p, ab, rows);
            if (!extreme && rows * C >= 16 && pat == 0) {
                checked++;
                vacuous += d < 3;
            }
            free(a);
            free(b);
            /* concat of 1..4 inputs: real rescales, the identity (a copy,
             * clamped), and near misses of it */
            qat_rt_merge_params q = {.n = 1 + rep % 4, .out_zp = rnd(-128, 127)};
            const int8_t *ins[4];
            int8_t *bufs[4];
            for (int k = 0; k < q.n; k++) {
                q.c[k] = chans[(ci + 3 * k) % nch];
                q.out_c += q.c[k];
                q.in_zp[k] = k == 0 ? q.out_zp : rnd(0, 1) ? zps[rnd(0, 3)] : rnd(-128, 127);
                switch ((k + rep) % 4) {
                case 0: q.in_mult[k] = 1 << 30, q.in_shift[k] = 1; break; /* identity if zp same */
                case 1: q.in_mult[k] = (1 << 30) + 1, q.in_shift[k] = 1; break;
                case 2: pick_mult(0.05 + 3 * qat_rng_uniform(&rng), 0, QAT_SHIFT_MIN,
                                  QAT_SHIFT_MAX, &q.in_mult[k], &q.in_shift[k]);
                        break;
                default: pick_mult(0, 1, QAT_SHIFT_MIN, QAT_SHIFT_MAX, &q.in_mult[k],
                                   &q.in_shift[k]);
                }
                bufs[k] = xalloc(rows * (size_t)q.c[k]);
                fill_codes(bufs[k], rows * (size_t)q.c[k], (pat + k) % 4);
                ins[k] = bufs[k];
            }
            pick_clamp(&q, (rep + ci) % 4);
            run_merge(pick_concat, "concat", &q, ins, rows);
            for (int k = 0; k < q.n; k++)
                free(bufs[k]);
            /* global_avgpool over windows from 1 pixel to 40x40 */
            static const int wins[] = {1, 4, 9, 49, 196, 1600};
            qat_rt_merge_params g = {.n = 1, .c = {C}, .out_c = C, .window = wins[rep % 6]};
            const size_t imgs = (size_t)(1 + rnd(0, 3));
            pick_mult(1.0 / (g.window * (0.3 + qat_rng_uniform(&rng))), extreme, QAT_SHIFT_MIN,
                      QAT_SHIFT_MAX, &g.out_mult, &g.out_shift);
            g.in_zp[0] = zps[rep % 4];
            g.out_zp = zps[(rep + 2) % 4];
            pick_clamp(&g, (rep + 1) % 4);
            int8_t *x = xalloc(imgs * (size_t)g.window * C);
            fill_codes(x, imgs * (size_t)g.window * C, pat);
            const int8_t *gx[1] = {x};
            run_merge(pick_gap, "global_avgpool", &g, gx, imgs);
            free(x);
            cases += 3;
        }
    /* add, whose SIMD kernels walk the rows x channels elements as one run
     * (16 a step on AVX-512, a masked step for the rest): every element
     * count from 1 to 80 as rows of one channel (run_merge's slices start
     * the run at every offset), then ResNet-8's stage-1 add (28 x 28 x 16,
     * 3 images) and an odd-sized one */
    for (int n = 1; n <= 80 + 2; n++) {
        const int C = n <= 80 ? 1 : n == 81 ? 16 : 33;
        const size_t rows = n <= 80 ? (size_t)n : n == 81 ? 3 * 784 : 197;
        qat_rt_merge_params p = {.n = 2, .c = {C, C}, .out_c = C, .in_zp = {rnd(-128, 127),
                                 rnd(-128, 127)}, .out_zp = rnd(-128, 127)};
        pick_mult(0.2 + 0.3 * qat_rng_uniform(&rng), 0, QAT_SHIFT_MIN, 0, &p.in_mult[0],
                  &p.in_shift[0]);
        pick_mult(0.5, n % 7 == 0, QAT_SHIFT_MIN, 0, &p.in_mult[1], &p.in_shift[1]);
        pick_mult(1.0 / (1048576.0 * (0.3 + qat_rng_uniform(&rng))), n % 5 == 0,
                  QAT_SHIFT_MIN, QAT_SHIFT_MAX, &p.out_mult, &p.out_shift);
        pick_clamp(&p, n % 4);
        int8_t *a = xalloc(rows * (size_t)C), *b = xalloc(rows * (size_t)C);
        fill_codes(a, rows * (size_t)C, n % 4);
        fill_codes(b, rows * (size_t)C, 0);
        const int8_t *ab[2] = {a, b};
        run_merge(pick_add, "add", &p, ab, rows);
        free(a);
        free(b);
        cases++;
    }
    /* the identity fast path is exactly the identity: every code, every zp */
    for (int32_t zp = -128; zp <= 127; zp += 51) {
        qat_rt_merge_params q = {.n = 1, .c = {256}, .out_c = 256, .in_zp = {zp}, .out_zp = zp,
                                 .in_mult = {1 << 30}, .in_shift = {1}, .act_min = -128,
                                 .act_max = 127};
        int8_t codes[256], got[256];
        for (int i = 0; i < 256; i++)
            codes[i] = (int8_t)(i - 128);
        const int8_t *in[1] = {codes};
        for (int pi = 0; pi < npaths; pi++) {
            paths[pi]->concat(&q, in, got, 0, 1);
            CHECK(memcmp(got, codes, 256) == 0, "[%s] concat identity zp %d", paths[pi]->isa, zp);
        }
        for (int i = 0; i < 256; i++)
            CHECK(qat_fp_requantize(codes[i] - zp, 1 << 30, 1, zp, -128, 127) == codes[i],
                  "identity rescale of %d (zp %d)", codes[i], zp);
    }
    CHECK(vacuous * 10 <= checked,
          "%d of %d random add cases produced fewer than 3 distinct codes: the comparison is "
          "vacuous", vacuous, checked);
    printf("add/concat/global_avgpool: %ld cases (%d of %d random adds give < 3 distinct "
           "codes)\n", cases, vacuous, checked);
}
