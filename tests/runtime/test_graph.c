/* Graph models (format version 2) in the runtime core: every graph op
 * (grouped and depthwise conv, add, concat, global_avgpool, relu6) against
 * the naive oracle of rt_fixture.h on every kernel path, thread count and
 * batch, and the activation arena planned over the DAG. */
#include <criterion/criterion.h>

#include "../../src/runtime/kernels/kernels.h"
#include "rt_fixture.h"

/* n images through the model on kernel path isa and through the oracle;
 * returns the distinct logit codes seen (so a vacuous match fails). */
static int graph_vs_oracle(const fx_model *fx, const char *isa, int threads, int max_batch, int n,
                           uint64_t seed)
{
    qat_error e;
    qat_rt_model *m = NULL;
    cr_assert_eq(qat_rt_model_create_isa(&fx->desc, isa, &m, &e), QAT_OK, "%s", e.msg);
    size_t in = qat_rt_model_input_size(m);
    int nc = qat_rt_model_num_classes(m);
    uint8_t *px = malloc((size_t)n * in);
    int8_t *got = malloc((size_t)n * (size_t)nc), *want = malloc((size_t)nc);
    fx_images(seed, px, (size_t)n * in);
    cr_assert_eq(fx_run(m, threads, max_batch, px, n, got, &e), QAT_OK, "%s", e.msg);
    int seen[256] = {0}, distinct = 0;
    for (int b = 0; b < n; b++) {
        cr_assert_eq(fx_oracle(fx, px + (size_t)b * in, want), 0, "oracle accumulator overflow");
        for (int c = 0; c < nc; c++) {
            cr_assert_eq(got[(size_t)b * nc + c], want[c],
                         "%s: image %d class %d: runtime %d, oracle %d (threads %d, batch %d)",
                         isa, b, c, got[(size_t)b * nc + c], want[c], threads, n);
            distinct += !seen[want[c] + 128]++;
        }
    }
    free(px);
    free(got);
    free(want);
    qat_rt_model_destroy(m);
    return distinct;
}

Test(graph, every_op_matches_oracle_on_every_path)
{
    const qat_rt_kernels *paths[QAT_RT_MAX_PATHS];
    int np = qat_rt_kernels_available(paths);
    for (int bits = 4; bits <= 8; bits += 4) {
        fx_model fx;
        fx_build_graph(&fx, 40 + (uint64_t)bits, bits);
        for (int p = 0; p < np; p++) {
            cr_assert_geq(graph_vs_oracle(&fx, paths[p]->isa, 1, 1, 1, 500), 3);
            /* several chunks per thread, a ragged last chunk, and the
             * layer-by-layer phase for the leftover images */
            cr_assert_geq(graph_vs_oracle(&fx, paths[p]->isa, 2, 40, 37, 501), 5);
            graph_vs_oracle(&fx, paths[p]->isa, 3, 8, 2, 502);
        }
        fx_free(&fx);
    }
}

/* The arena holds only what is alive together: for the example graph the
 * stem output (read by the add three layers later) and the widest tensors
 * around it, far less than every tensor side by side; a chain needs about
 * two tensors, as ping-pong buffers did. */
Test(graph, arena_follows_live_ranges)
{
    fx_model fx;
    fx_build_graph(&fx, 41, 8);
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    size_t all = 11 * 9 * 3, peak_pair = 0;
    for (int i = 0; i < fx.desc.num_layers; i++) {
        const qat_rt_layer_desc *l = &fx.layers[i];
        all += (size_t)l->out_h * l->out_w * l->out_c;
    }
    /* while pw runs: the model input (kept for grp), stem (kept for the
     * add), dw's output that pw reads and pw's own: the live peak */
    peak_pair = 11 * 9 * 3 + 11 * 9 * 6 + 11 * 9 * 12 + 11 * 9 * 6;
    size_t arena = qat_rt_model_activation_bytes(m);
    cr_assert_geq(arena, peak_pair, "arena %zu below what must be alive together %zu", arena,
                  peak_pair);
    cr_assert_lt(arena, all, "arena %zu not below all tensors together %zu", arena, all);
    cr_assert_leq(arena, peak_pair + 4 * 64, "arena %zu far above the live peak %zu", arena,
                  peak_pair);
    qat_rt_model_destroy(m);
    fx_free(&fx);

    fx_build_cnn(&fx, 42, 8); /* 13x11x1 -> 13x11x7 (pool fused) -> ... */
    cr_assert_eq(qat_rt_model_create_isa(&fx.desc, "ref", &m, &e), QAT_OK, "%s", e.msg);
    /* ref fuses no pool: the peak is conv1's output with pool1's (6x5x7) */
    size_t b = 13 * 11 * 7, c = 6 * 5 * 7;
    arena = qat_rt_model_activation_bytes(m);
    cr_assert_geq(arena, b + c);
    cr_assert_leq(arena, b + c + 2 * 64, "chain arena %zu, ping-pong was %zu", arena, 2 * b);
    qat_rt_model_destroy(m);
    fx_free(&fx);
}

/* A version-2 description without input indices is a chain: the example
 * CNN as version 2 runs exactly as version 1. */
Test(graph, version_2_without_inputs_is_a_chain)
{
    fx_model fx;
    fx_build_cnn(&fx, 43, 8);
    fx.desc.version = 1;
    cr_assert_geq(graph_vs_oracle(&fx, "ref", 2, 9, 9, 503), 5);
    fx.desc.version = 2;
    cr_assert_geq(graph_vs_oracle(&fx, "ref", 2, 9, 9, 503), 5);
    fx_free(&fx);
}
