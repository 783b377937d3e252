/* qat_rt_run must not touch the heap. Every allocator call made from the
 * statically linked runtime and core libraries is counted (alloc_count.h). */
#include <criterion/criterion.h>

#include "alloc_count.h"
#include "rt_fixture.h"
#include "runtime/kernels/kernels.h"

Test(noalloc, run_never_allocates_for_any_path_and_thread_count)
{
    fx_model fx;
    fx_build_cnn(&fx, 77, 8);
    qat_error e;
    enum { N = 40 };
    const size_t in = (size_t)fx.desc.in_h * fx.desc.in_w * fx.desc.in_c;
    uint8_t *px = __real_malloc(N * in);
    int8_t lg[N * 10];
    fx_images(3, px, N * in);
    const qat_rt_kernels *paths[QAT_RT_MAX_PATHS];
    int np = qat_rt_kernels_available(paths);
    for (int pi = 0; pi < np; pi++) {
        qat_rt_model *m;
        cr_assert_eq(qat_rt_model_create_isa(&fx.desc, paths[pi]->isa, &m, &e), QAT_OK, "%s",
                     e.msg);
        for (int t = 1; t <= 3; t++) {
            qat_rt_options o = {.threads = t, .max_batch = N, .profile = t == 2};
            qat_rt_session *s;
            long before = tc_alloc_count();
            cr_assert_eq(qat_rt_session_create(m, &o, &s, &e), QAT_OK, "%s", e.msg);
            /* the counter is live: creating a session does allocate */
            cr_assert_gt(tc_alloc_count(), before, "allocator wrap is not in effect");
            before = tc_alloc_count();
            /* n = 1, 14, 27, 40: layer split, batch split and both */
            for (int rep = 0; rep < 3; rep++)
                for (int n = 1; n <= N; n += 13)
                    cr_assert_eq(qat_rt_run(s, px, n, lg, &e), QAT_OK, "%s", e.msg);
            cr_assert_eq(tc_alloc_count(), before, "qat_rt_run allocated (%s, threads %d)",
                         paths[pi]->isa, t);
            qat_rt_session_destroy(s);
        }
        qat_rt_model_destroy(m);
    }
    free(px);
    fx_free(&fx);
}
