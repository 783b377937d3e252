/* Float layers (ARITHMETIC.md §7) on every kernel path this CPU runs, as a
 * plain C program for the runtime-only (cross) build: the synthetic CNN
 * with its first and last layers float (float logits) and with a middle
 * one float, against the independent oracle of rt_fixture.h, byte for
 * byte. Under qemu it is what shows that NEON builds compute the float
 * layers without fused multiply-adds. Exit 0: pass. */
#include <stdio.h>

#include "float_fixture.h"

static const char *const isas[] = {"ref", "avx2", "avx512vnni", "neon-plain", "neon-dot"};

static int check(unsigned mask, int bits)
{
    fx_model fx;
    fx_float f;
    fx_build_cnn(&fx, 31 + (uint64_t)bits, bits);
    fx_floatize(&fx, &f, mask);
    const qat_rt_model_desc *d = &fx.desc;
    int fl = qat_rt_desc_float_logits(d), C = d->num_classes, n = 9, bad = 0;
    size_t isz = (size_t)d->in_h * d->in_w * d->in_c;
    uint8_t px[9 * 13 * 11];
    fx_images(7, px, sizeof px);
    int8_t want[9 * 10], got[9 * 10];
    float fwant[9 * 10], fgot[9 * 10];
    for (int i = 0; i < n; i++)
        if (fx_oracle_f(&fx, px + i * isz, want + i * C, fl ? fwant + i * C : NULL))
            bad = 1;
    int paths = 0;
    for (int k = 0; k < 5 && !bad; k++) {
        qat_rt_model *rm;
        qat_error e;
        if (qat_rt_model_create_isa(d, isas[k], &rm, &e) != QAT_OK)
            continue;
        paths++;
        for (int threads = 1; threads <= 2; threads++) {
            qat_rt_options o = {.threads = threads, .max_batch = n};
            qat_rt_session *s;
            if (qat_rt_session_create(rm, &o, &s, &e) != QAT_OK ||
                (fl ? qat_rt_run_logits(s, px, n, fgot, &e) : qat_rt_run(s, px, n, got, &e))) {
                fprintf(stderr, "%s: %s\n", isas[k], e.msg);
                return 1;
            }
            if (fl ? memcmp(fgot, fwant, sizeof(float) * (size_t)(n * C))
                   : memcmp(got, want, (size_t)(n * C))) {
                fprintf(stderr, "float layers (mask %u, %d bits): %s, %d threads: logits differ "
                                "from the oracle\n", mask, bits, isas[k], threads);
                bad = 1;
            }
            qat_rt_session_destroy(s);
        }
        qat_rt_model_destroy(rm);
    }
    if (!bad)
        printf("ok: float layers (mask %u, %d bits): %d kernel paths equal the oracle\n", mask,
               bits, paths);
    fx_float_free(&f);
    fx_free(&fx);
    return bad || paths == 0;
}

int main(void)
{
    return check(1u << 0 | 1u << 5, 4) | check(1u << 2, 8) | check(1u << 0 | 1u << 2, 2);
}
