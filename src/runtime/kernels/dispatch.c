/* The dispatch point: a model asks once, at creation, for a kernel table.
 * The CPU is probed here (cpuid + xgetbv on x86-64, getauxval on aarch64
 * Linux) on each call, never cached in a global: a probe costs well under a
 * microsecond and models are created rarely. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kernels/kernels.h"

#if defined(QAT_RT_HAVE_AVX2)
#include <cpuid.h>

/* AVX2 needs the instructions (cpuid leaf 7 EBX.5, leaf 1 ECX.12 FMA, 28
 * AVX) and the OS saving YMM state on context switches (leaf 1 ECX.27
 * OSXSAVE, then XCR0 bits 1 and 2): a CPU with AVX2 under an OS without
 * XSAVE support would fault on the first ymm instruction. */
static int cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28)) || !(c & (1u << 12)))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u)
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0;
}

/* AVX-512 F, BW, VL and VNNI (leaf 7 EBX.16/30/31, ECX.11) on top of AVX2,
 * with the OS saving opmask and all 32 zmm (XCR0 bits 5, 6, 7). */
static int cpu_has_avx512vnni(void)
{
    if (!cpu_has_avx2())
        return 0;
    unsigned lo, hi, a, b, c, d;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6u) != 0xE6u)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned need = (1u << 16) | (1u << 30) | (1u << 31);
    return (b & need) == need && (c & (1u << 11)) != 0;
}

/* AVX-512 VBMI (leaf 7 ECX.1): not among the avx512vnni path's needs
 * (Cascade Lake lacks it); its add asks at model creation (graph.c). */
int qat_rt_cpu_has_avx512vbmi(void)
{
    if (!cpu_has_avx512vnni())
        return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    return (c & (1u << 1)) != 0;
}
#endif

#if defined(QAT_RT_HAVE_NEON)
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
static int cpu_has_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#else
/* No auxiliary vector (bare metal, RTOS): trust the compiler's target. */
static int cpu_has_dotprod(void)
{
#if defined(__ARM_FEATURE_DOTPROD)
    return 1;
#else
    return 0;
#endif
}
#endif
#endif

int qat_rt_kernels_available(const qat_rt_kernels *out[QAT_RT_MAX_PATHS])
{
    int n = 0;
    out[n++] = &qat_rt_kernels_ref;
#if defined(QAT_RT_HAVE_AVX2)
    if (cpu_has_avx2())
        out[n++] = &qat_rt_kernels_avx2;
    if (cpu_has_avx512vnni())
        out[n++] = &qat_rt_kernels_avx512vnni;
#endif
#if defined(QAT_RT_HAVE_NEON)
    out[n++] = &qat_rt_kernels_neon_plain; /* NEON is part of base aarch64 */
    if (cpu_has_dotprod())
        out[n++] = &qat_rt_kernels_neon_dot;
#endif
    return n;
}

static const char *const known[] = {"avx2", "avx512vnni", "neon", "neon-dot", "neon-plain"};

qat_status qat_rt_kernels_select(const char *isa, const qat_rt_kernels **out, qat_error *err)
{
    *out = NULL;
    const char *origin = "isa";
    if (!isa || strcmp(isa, "auto") == 0) {
        const char *env = getenv("QAT_ISA");
        if (env && *env && strcmp(env, "auto") != 0) {
            isa = env;
            origin = "QAT_ISA (environment)";
        } else {
            isa = NULL;
        }
    }
    const qat_rt_kernels *avail[QAT_RT_MAX_PATHS];
    int n = qat_rt_kernels_available(avail);
    if (!isa) { /* best = last: tables are listed in increasing preference */
        *out = avail[n - 1];
        return QAT_OK;
    }
    char list[64] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 avail[i]->isa);
    const char *want = isa;
    if (strcmp(isa, "neon") == 0) /* the best NEON table */
        for (int i = 0; i < n; i++)
            if (strncmp(avail[i]->isa, "neon", 4) == 0)
                want = avail[i]->isa;
    for (int i = 0; i < n; i++)
        if (strcmp(avail[i]->isa, want) == 0) {
            *out = avail[i];
            return QAT_OK;
        }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(isa, known[i]) != 0)
            continue;
        int x86 = strncmp(isa, "avx", 3) == 0;
#if defined(QAT_RT_HAVE_AVX2)
        int built = x86;
#elif defined(QAT_RT_HAVE_NEON)
        int built = !x86;
#else
        int built = 0;
#endif
        if (built)
            return qat_fail(err, QAT_EUNSUPPORTED,
                            "%s '%s': this CPU lacks %s (available here: %s)", origin, isa,
                            x86 ? (strcmp(isa, "avx2") == 0
                                       ? "AVX2/FMA (or the OS does not enable YMM state)"
                                       : "AVX-512 F/BW/VL/VNNI (or the OS does not enable ZMM "
                                         "state)")
                                : "the dot-product extension (HWCAP_ASIMDDP)",
                            list);
        return qat_fail(err, QAT_EUNSUPPORTED,
                        "%s '%s': this build has no %s kernels (they are built for %s targets; "
                        "available here: %s)",
                        origin, isa, isa, x86 ? "x86-64" : "aarch64", list);
    }
    return qat_fail(err, QAT_EINVAL,
                    "%s: expected one of auto, ref, avx2, avx512vnni, neon, neon-dot, neon-plain; "
                    "found '%s'",
                    origin, isa);
}
