/* Shared helpers for the sweep tests: temporary folders, small files, and a
 * tiny MLP base config on the committed MNIST subset. */
#ifndef QAT_TEST_SWEEP_FIXTURE_H
#define QAT_TEST_SWEEP_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tmpdir.h"

__attribute__((unused)) static void fx_tmpdir(char *buf, size_t n)
{
    tc_tmpdir(buf, n, "qat-sweep-test");
}

__attribute__((unused)) static void fx_write(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* Whole small file; "" when missing. Caller frees. */
__attribute__((unused)) static char *fx_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* dir/base.ini: 784 -> 16 (relu) -> 10, 1 epoch on 300 subset images,
 * one thread; data_dir "" means the committed subset. */
__attribute__((unused)) static void fx_base_config(const char *dir, const char *data_dir)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test (QAT_SOURCE_ROOT)");
    char text[4096], data[1024];
    if (data_dir && data_dir[0])
        snprintf(data, sizeof data, "%s", data_dir);
    else
        snprintf(data, sizeof data, "%s/datasets/mnist-subset", root);
    snprintf(text, sizeof text,
             "[data]\ndir = %s\ntrain_limit = 300\n\n"
             "[train]\nepochs = 1\nbatch_size = 32\nlr = 0.003\nseed = 1\nthreads = 1\n"
             "progress = false\n\n"
             "[quant]\nenabled = true\nweight_bits = 8\nactivation_bits = 8\n\n"
             "[layer.flatten]\ntype = flatten\n\n"
             "[layer.fc1]\ntype = linear\nout_features = 16\nactivation = relu\n\n"
             "[layer.fc2]\ntype = linear\nout_features = 10\n",
             data);
    fx_write(dir, "base.ini", text);
}

#endif
