/* qat-train: train a config end to end (thin main over qat_run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/config.h"
#include "qat/dist.h"
#include "qat/run.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qat-train CONFIG [--set section.key=value]... [--init CHECKPOINT] [--out DIR]\n"
            "                 [--quiet]\n"
            "       qat-train --resume DIR [--quiet]\n"
            "       qat-train --help | --help-config\n"
            "\n"
            "Trains the model described by CONFIG (INI) with simulated quantization, then\n"
            "exports the integer model and evaluates it on the integer runtime.\n"
            "\n"
            "  --set section.key=value  override one config key (repeatable), e.g.\n"
            "                           --set train.epochs=1 --set layer.fc1.weight_bits=4\n"
            "  --init CHECKPOINT        start from a checkpoint.h5: parameters, BN statistics,\n"
            "                           compatible observer/LSQ state, matched by layer name\n"
            "                           and shape (the same as --set train.init=CHECKPOINT);\n"
            "                           optimizer state, step count and RNG start fresh\n"
            "  --out DIR                run directory (default: runs/<config name>/)\n"
            "  --resume DIR             continue the run in DIR from its last checkpoint, with\n"
            "                           the configuration stored there; the result is\n"
            "                           bit-identical to an uninterrupted run\n"
            "  --quiet                  no progress bar\n"
            "  --help-config            print every config key with its default\n"
            "\n"
            "Writes DIR/checkpoint.h5, DIR/model.int8.h5, DIR/metrics.csv, DIR/summary.json\n"
            "and DIR/config.ini. Exit status: 0 success, 2 bad usage/config/input, 1 other.\n"
            "\n"
            "Data parallel (built with MPI): mpirun -np N qat-train CONFIG (or srun) splits\n"
            "every global batch of [train] batch_size over the N ranks; rank 0 writes the\n"
            "run. An error on any rank ends every rank (MPI_Abort) with that exit status.\n");
}

static int run_with(const char *config, const char **sets, int nsets, qat_train_opts *opts_in);

/* Everything but the argument array, which main owns: usage errors return
 * early and must not leak it. */
static int run(int argc, char **argv, const char **sets, qat_dist *dist)
{
    const char *config = NULL, *init = NULL;
    int nsets = 0;
    qat_train_opts opts = {.dist = dist};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--help-config") == 0) {
            qat_config_write_reference(stdout);
            return 0;
        } else if (strcmp(a, "--resume") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "qat-train: --resume needs a run directory\n");
                return 2;
            }
            opts.out_dir = argv[++i];
            opts.resume = 1;
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "--out") == 0 ||
                   strcmp(a, "--init") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "qat-train: %s needs an argument\n", a);
                return 2;
            }
            if (a[2] == 's')
                sets[nsets++] = argv[++i];
            else if (a[2] == 'o')
                opts.out_dir = argv[++i];
            else
                init = argv[++i];
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[nsets++] = a + 6;
        } else if (strncmp(a, "--out=", 6) == 0) {
            opts.out_dir = a + 6;
        } else if (strcmp(a, "--quiet") == 0) {
            opts.quiet = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "qat-train: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (config) {
            fprintf(stderr, "qat-train: more than one config given ('%s' and '%s')\n", config, a);
            return 2;
        } else {
            config = a;
        }
    }
    char *init_set = NULL;
    if (init) { /* after the user's --set, so it wins over a train.init there */
        size_t n = strlen(init) + 16;
        if (!(init_set = malloc(n)))
            return 1;
        snprintf(init_set, n, "train.init=%s", init);
        sets[nsets++] = init_set;
    }
    int rc = run_with(config, sets, nsets, &opts);
    free(init_set);
    return rc;
}

static int run_with(const char *config, const char **sets, int nsets, qat_train_opts *opts_in)
{
    qat_train_opts opts = *opts_in;
    qat_dist *dist = opts.dist;
    /* tests of [distributed] verify only: this rank drifts from the others */
    const char *perturb = getenv("QAT_TEST_PERTURB_RANK");
    opts.perturb_rank = perturb ? atoi(perturb) : 0;
    opts.perturb_cluster = getenv("QAT_TEST_PERTURB_CLUSTER") != NULL;
    /* tests of --resume under mpirun: stop (exit 0) after this epoch's checkpoint */
    const char *stop = getenv("QAT_TEST_STOP_AFTER");
    opts.stop_after = stop ? atoi(stop) : 0;
    if (opts.resume && (config || nsets)) {
        fprintf(stderr, "qat-train: --resume takes the configuration from the checkpoint; do not "
                        "give CONFIG, --set or --init with it\n");
        return 2;
    }
    if (!config && !opts.resume) {
        fprintf(stderr, "qat-train: missing CONFIG argument\n");
        usage(stderr);
        return 2;
    }
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error err;
    qat_error_clear(&err);
    qat_status st;
    if (!cfg) {
        st = qat_fail(&err, QAT_ENOMEM, "out of memory");
    } else if (opts.resume) {
        char path[4200];
        snprintf(path, sizeof path, "%s/checkpoint.h5", opts.out_dir);
        st = qat_checkpoint_load_config(path, cfg, &err);
    } else {
        st = qat_config_load(config, sets, nsets, cfg, &err);
    }
    if (st == QAT_OK) {
        st = qat_run(cfg, &opts, &err);
        if (st == QAT_EINTERNAL && opts.stop_after) /* stopped as asked */
            st = QAT_OK;
    }
    free(cfg);
    /* one rank's failure must not leave the others waiting for it */
    if (st != QAT_OK && qat_dist_size(dist) > 1)
        qat_dist_fail(dist, qat_status_exit_code(st), "qat-train", err.msg);
    if (st != QAT_OK)
        fprintf(stderr, "qat-train: error: %s\n", err.msg);
    return qat_status_exit_code(st);
}

int main(int argc, char **argv)
{
    qat_dist *dist = qat_dist_init(&argc, &argv);
    const char **sets = calloc((size_t)argc + 2, sizeof *sets);
    if (!sets || !dist)
        return 1;
    int rc = run(argc, argv, sets, dist);
    free(sets);
    if (rc != 0 && qat_dist_size(dist) > 1) /* usage errors: every rank has the same */
        qat_dist_abort(dist, rc);
    qat_dist_finalize(dist);
    return rc;
}
