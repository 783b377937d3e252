/* bench-train: training-step throughput of a config (default: the MNIST
 * CNN) at its batch size: forward + backward + optimizer update, per layer
 * and in total, float and fake-quant side by side in one run, plus the peak
 * RSS. With a [distill] teacher (--set distill.teacher=CKPT) the step also
 * runs the teacher's forward and the distillation loss; the teacher's
 * milliseconds per step get a row of their own.
 * Usage: bench-train [CONFIG] [--set k=v]... [--steps N] [--warmup N]
 *             [--threads N] [--mode float|quant|both]
 * Data: the config's [data] dir if it holds MNIST, else the committed
 * subset (images only feed the kernels; their content does not matter). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/ops.h"
#include "qat/optim.h"
#include "ops/sgemm/sgemm.h"
#include "qat/train.h"

typedef struct {
    double step_s, opt_s, img_s, teacher_s;
    double step_min_s, step_med_s; /* single steps: a busy machine inflates the mean */
    double fwd[QAT_TAPE_MAX_TAGS], bwd[QAT_TAPE_MAX_TAGS];
} result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(const qat_config *cfg, const qat_dataset *d, int threads, int steps, int warmup,
               int quant, result *res)
{
    qat_error e;
    qat_config c = *cfg;
    c.quant.enabled = quant;
    qat_team *team;
    qat_tape *t;
    qat_model *m;
    qat_optim *o;
    qat_teacher *teacher = NULL;
    if (qat_team_create(threads, &team, &e) || qat_tape_create(team, &t, &e) ||
        qat_model_create(&c, &m, &e) ||
        (c.distill.teacher[0] &&
         qat_teacher_create(&c, team, c.train.batch_size, 0, &teacher, &e))) {
        fprintf(stderr, "bench-train: %s\n", e.msg);
        return 2;
    }
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, (qat_optim_kind)c.train.optimizer);
    size_t np;
    int ns;
    float *params = qat_model_params(m, &np), *grads = qat_model_grads(m, &np);
    const qat_param_seg *segs = qat_model_segments(m, &ns);
    if (qat_optim_create(&oc, np, segs, ns, &o, &e)) {
        fprintf(stderr, "bench-train: %s\n", e.msg);
        return 2;
    }
    qat_optim_set_team(o, team); /* as qat-train's trainer does */
    int B = c.train.batch_size;
    size_t isz = qat_dataset_image_size(d);
    uint8_t *img = malloc((size_t)B * isz), *lab = malloc((size_t)B);
    uint32_t *idx = malloc((size_t)B * sizeof *idx);
    double opt_total = 0, t0 = 0;
    double *each = malloc((size_t)steps * sizeof *each);
    if (!each)
        return 2;
    for (int s = 0; s < warmup + steps; s++) {
        double ts = qat_clock_seconds();
        if (s == warmup) {
            qat_tape_set_profiling(t, 1);
            opt_total = 0;
            if (teacher)
                qat_teacher_take_seconds(teacher);
            t0 = qat_clock_seconds();
        }
        for (int i = 0; i < B; i++)
            idx[i] = (uint32_t)(((size_t)s * B + i) % d->n);
        qat_dataset_gather(d, idx, B, img, lab);
        qat_tape_reset(t);
        qat_tape_set_training(t, 1);
        memset(grads, 0, np * sizeof *grads);
        qat_tape_set_tag(t, 0);
        qat_tensor *y = qat_model_forward(m, t, img, B);
        qat_tensor *loss = qat_op_softmax_cross_entropy(t, y, lab);
        qat_tape_set_tag(t, -1); /* the forward clock stops here */
        double kd;
        if (teacher) /* timed apart: the teacher's forward is not the student's */
            loss = qat_teacher_loss(teacher, t, loss, y, img, B, &kd);
        qat_tape_backward(t, loss);
        double a = qat_clock_seconds();
        qat_optim_step(o, params, grads, NULL, c.train.lr);
        opt_total += qat_clock_seconds() - a;
        if (s >= warmup)
            each[s - warmup] = qat_clock_seconds() - ts;
    }
    qsort(each, (size_t)steps, sizeof *each, cmp_double);
    res->step_min_s = each[0];
    res->step_med_s = each[steps / 2];
    free(each);
    double el = qat_clock_seconds() - t0;
    qat_tape_profile(t, res->fwd, res->bwd);
    res->step_s = el / steps;
    res->opt_s = opt_total / steps;
    res->img_s = (double)steps * B / el;
    res->teacher_s = teacher ? qat_teacher_take_seconds(teacher) / steps : 0.0;
    qat_teacher_destroy(teacher);
    free(img);
    free(lab);
    free(idx);
    qat_optim_destroy(o);
    qat_model_destroy(m);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = "configs/mnist_cnn.ini", *sets[64];
    int nsets = 0, steps = 100, warmup = 10, threads = 2, mode = 2; /* 0 float 1 quant 2 both */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--set") && i + 1 < argc && nsets < 64)
            sets[nsets++] = argv[++i];
        else if (!strcmp(a, "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--mode") && i + 1 < argc) {
            const char *v = argv[++i];
            mode = !strcmp(v, "float") ? 0 : !strcmp(v, "quant") ? 1 : 2;
        } else if (a[0] != '-')
            config = a;
        else {
            fprintf(stderr, "usage: bench-train [CONFIG] [--set k=v]... [--steps N] [--warmup N] "
                            "[--threads N] [--mode float|quant|both]\n");
            return 2;
        }
    }
    if (steps < 1 || threads < 1) {
        fprintf(stderr, "bench-train: --steps and --threads must be >= 1\n");
        return 2;
    }
    qat_error e;
    qat_config *cfg = malloc(sizeof *cfg);
    if (qat_config_load(config, sets, nsets, cfg, &e)) {
        fprintf(stderr, "bench-train: %s\n", e.msg);
        return 2;
    }
    qat_cpu_flush_denormals();
    qat_blas_init();
    qat_dataset d;
    if (qat_mnist_load(cfg->data.dir, "train", cfg->model.num_classes, 0, &d, &e) &&
        qat_mnist_load("datasets/mnist-subset", "train", cfg->model.num_classes, 0, &d, &e)) {
        fprintf(stderr, "bench-train: %s\n", e.msg);
        return 2;
    }
    printf("bench-train: %s, batch %d, %d threads, %d steps after %d warm-up, sgemm path %s\n",
           config, cfg->train.batch_size, threads, steps, warmup, qat_sgemm_path_default()->name);
    result r[2];
    int modes[2] = {0, 1}, nm = 0;
    for (int k = 0; k < 2; k++)
        if (mode == 2 || mode == k) {
            if (run(cfg, &d, threads, steps, warmup, modes[k], &r[nm]))
                return 2;
            modes[nm++] = k;
        }
    printf("\n%-10s", "layer");
    for (int k = 0; k < nm; k++)
        printf(" | %-6s fwd ms  bwd ms", modes[k] ? "quant" : "float");
    printf("\n");
    for (int tag = 0; tag <= cfg->nlayers; tag++) {
        printf("%-10s", tag ? cfg->layers[tag - 1].name : "input+loss");
        for (int k = 0; k < nm; k++)
            printf(" |        %7.3f %7.3f", 1e3 * r[k].fwd[tag] / steps, 1e3 * r[k].bwd[tag] / steps);
        printf("\n");
    }
    printf("%-10s", "optimizer");
    for (int k = 0; k < nm; k++)
        printf(" |        %7.3f        ", 1e3 * r[k].opt_s);
    if (cfg->distill.teacher[0]) {
        printf("\n%-10s", "teacher");
        for (int k = 0; k < nm; k++)
            printf(" |        %7.3f        ", 1e3 * r[k].teacher_s);
    }
    printf("\n%-10s", "step");
    for (int k = 0; k < nm; k++)
        printf(" |        %7.3f        ", 1e3 * r[k].step_s);
    printf("\n\n");
    for (int k = 0; k < nm; k++)
        printf("%s: %.0f images/s (one 60000-image epoch: %.1f s)\n", modes[k] ? "quant" : "float",
               r[k].img_s, 60000.0 / r[k].img_s);
    for (int k = 0; k < nm && cfg->distill.teacher[0]; k++)
        printf("%s: the teacher (%s) takes %.1f%% of the step\n", modes[k] ? "quant" : "float",
               cfg->distill.teacher, 100.0 * r[k].teacher_s / r[k].step_s);
    /* one line to compare builds by: the fastest and the median single step */
    printf("step ms (min / median of %d single steps, sgemm %s):", steps,
           qat_sgemm_path_default()->name);
    for (int k = 0; k < nm; k++) {
        if (modes[k])
            printf(" w%da%d", cfg->quant.weight_bits, cfg->quant.activation_bits);
        else
            printf(" float");
        printf(" %.3f / %.3f", 1e3 * r[k].step_min_s, 1e3 * r[k].step_med_s);
    }
    printf("\n");
    if (nm == 2)
        printf("fake-quant overhead: %+.1f%% time per step\n",
               100.0 * (r[1].step_s / r[0].step_s - 1.0));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS: %.1f MB\n", ru.ru_maxrss / 1024.0);
    qat_dataset_free(&d);
    free(cfg);
    return 0;
}
