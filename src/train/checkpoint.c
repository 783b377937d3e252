/* HDF5 checkpoints: everything needed to export or resume a run. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/finite.h"
#include "qat/fsutil.h"
#include "qat/train.h"

#define CKPT_FORMAT "qat-checkpoint"
#define CKPT_VERSION 1

static herr_t write_f32(hid_t f, const char *name, const float *data, size_t n)
{
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = ds < 0 ? -1 : (n ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0);
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(sp);
    return r;
}

static herr_t write_u64(hid_t f, const char *name, const uint64_t *data, size_t n)
{
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(sp);
    return r;
}

static herr_t write_attr_i64(hid_t obj, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return r;
}

static herr_t write_attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen(s) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, ty, s);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    return r;
}

qat_status qat_checkpoint_save(const char *path, qat_model *m, qat_optim *opt,
                               const qat_checkpoint_meta *meta, qat_error *err)
{
    size_t ns = qat_model_state_size(m);
    float *state = malloc(ns * sizeof *state);
    if (!state)
        return qat_fail(err, QAT_ENOMEM, "out of memory writing %s", path);
    qat_model_state_save(m, state);
    qat_atomic out;
    qat_status st = qat_atomic_begin(&out, path, err);
    if (st != QAT_OK) {
        free(state);
        return st;
    }
    const char *tmp = out.tmp;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        free(state);
        return qat_fail(err, QAT_EIO, "%s: cannot create checkpoint", tmp);
    }
    char *cfgtext = NULL;
    size_t cfglen = 0;
    FILE *mf = open_memstream(&cfgtext, &cfglen);
    qat_config_write(mf, qat_model_config(m));
    fclose(mf);
    size_t np, no = 0;
    float *params = qat_model_params(m, &np);
    float *ostate = opt ? qat_optim_state(opt, &no) : NULL;
    uint64_t rng[4] = {meta->shuffle.state, meta->shuffle.inc, meta->dropout.state,
                       meta->dropout.inc};
    herr_t r = 0;
    r |= write_attr_str(f, "format", CKPT_FORMAT);
    r |= write_attr_i64(f, "version", CKPT_VERSION);
    r |= write_attr_i64(f, "epoch", meta->epoch);
    r |= write_attr_i64(f, "step", meta->step);
    r |= write_attr_i64(f, "optimizer_steps", opt ? qat_optim_steps(opt) : 0);
    if (meta->ranks > 1) /* absent: one process (and the file as before MPI) */
        r |= write_attr_i64(f, "ranks", meta->ranks);
    r |= write_attr_str(f, "config", cfgtext);
    r |= write_f32(f, "params", params, np);
    r |= write_f32(f, "state", state, ns);
    r |= write_f32(f, "optimizer_state", ostate, no);
    r |= write_u64(f, "rng", rng, 4);
    if (meta->prune_state)
        r |= write_f32(f, "prune_state", meta->prune_state, meta->prune_count);
    if (meta->cluster_state)
        r |= write_f32(f, "cluster_state", meta->cluster_state, meta->cluster_count);
    free(cfgtext);
    free(state);
    if (r < 0 || H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
        H5Fclose(f);
        qat_atomic_abort(&out);
        return qat_fail(err, QAT_EIO, "%s: writing the checkpoint failed", tmp);
    }
    H5Fclose(f);
    /* on disk before the rename makes it the checkpoint */
    return qat_atomic_commit(&out, err);
}

/* Reads a 1-D dataset of exactly n elements. */
static qat_status read_exact(hid_t f, const char *path, const char *name, hid_t memtype,
                             void *out, size_t n, qat_error *err)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return qat_fail(err, QAT_EINVAL, "%s: missing dataset '/%s'", path, name);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open dataset '/%s'", path, name);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank == 1)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (rank != 1 || dims[0] != n) {
        H5Dclose(ds);
        return qat_fail(err, QAT_EINVAL,
                        "%s: dataset '/%s' has %llu elements (rank %d); this model needs %zu",
                        path, name, (unsigned long long)dims[0], rank, n);
    }
    herr_t r = n ? H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : 0;
    H5Dclose(ds);
    if (r < 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot read dataset '/%s'", path, name);
    return QAT_OK;
}

static qat_status read_attr_i64(hid_t f, const char *path, const char *name, long long *v,
                                qat_error *err)
{
    if (H5Aexists(f, name) <= 0)
        return qat_fail(err, QAT_EINVAL, "%s: missing attribute '%s'", path, name);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_LLONG, v);
    if (a >= 0)
        H5Aclose(a);
    return r < 0 ? qat_fail(err, QAT_EINVAL, "%s: attribute '%s' is not an integer", path, name)
                 : QAT_OK;
}

static qat_status read_attr_str(hid_t f, const char *path, const char *name, char **out,
                                qat_error *err)
{
    *out = NULL;
    if (H5Aexists(f, name) <= 0)
        return qat_fail(err, QAT_EINVAL, "%s: missing attribute '%s'", path, name);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t ty = a < 0 ? -1 : H5Aget_type(a);
    if (a < 0 || H5Tget_class(ty) != H5T_STRING || H5Tis_variable_str(ty) > 0) {
        if (ty >= 0)
            H5Tclose(ty);
        if (a >= 0)
            H5Aclose(a);
        return qat_fail(err, QAT_EINVAL, "%s: attribute '%s' is not a fixed-length string", path,
                        name);
    }
    size_t n = H5Tget_size(ty);
    char *s = n < (1u << 24) ? calloc(n + 1, 1) : NULL;
    herr_t r = s ? H5Aread(a, ty, s) : -1;
    H5Tclose(ty);
    H5Aclose(a);
    if (r < 0) {
        free(s);
        return qat_fail(err, QAT_EINVAL, "%s: cannot read attribute '%s'", path, name);
    }
    *out = s;
    return QAT_OK;
}

static qat_status open_checked(const char *path, hid_t *f, qat_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open checkpoint: %s", path, strerror(errno));
    *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*f < 0)
        return qat_fail(err, QAT_EINVAL, "%s: not an HDF5 file (truncated or corrupt?)", path);
    char *fmt = NULL;
    long long ver = 0;
    qat_status st = read_attr_str(*f, path, "format", &fmt, err);
    if (st == QAT_OK && strcmp(fmt, CKPT_FORMAT) != 0)
        st = qat_fail(err, QAT_EINVAL, "%s: attribute 'format' is '%s', expected '%s'%s", path, fmt,
                      CKPT_FORMAT,
                      strcmp(fmt, "qat-int8-model") == 0
                          ? " (an integer model file, not a checkpoint: give the run's "
                            "checkpoint.h5)"
                          : "");
    free(fmt);
    if (st == QAT_OK && (st = read_attr_i64(*f, path, "version", &ver, err)) == QAT_OK &&
        ver != CKPT_VERSION)
        st = qat_fail(err, QAT_EINVAL, "%s: checkpoint version %lld; this build reads version %d",
                      path, ver, CKPT_VERSION);
    if (st != QAT_OK)
        H5Fclose(*f);
    return st;
}

int qat_checkpoint_has(const char *path, const char *dataset)
{
    hid_t f;
    qat_error e;
    if (open_checked(path, &f, &e) != QAT_OK)
        return 0;
    int has = H5Lexists(f, dataset, H5P_DEFAULT) > 0;
    H5Fclose(f);
    return has;
}

qat_status qat_checkpoint_config(const char *path, const char *const *sets, int nsets,
                                 qat_config *cfg, qat_error *err)
{
    hid_t f;
    qat_status st = open_checked(path, &f, err);
    if (st != QAT_OK)
        return st;
    char *text = NULL;
    st = read_attr_str(f, path, "config", &text, err);
    H5Fclose(f);
    char name[4200];
    snprintf(name, sizeof name, "%s:/config", path);
    if (st == QAT_OK)
        st = qat_config_parse(text, strlen(text), name, NULL, 0, cfg, err);
    if (st == QAT_OK && nsets > 0) {
        /* The stored config is resolved: every layer spells out its [quant]
         * keys. Written back with only the layers' own overrides, a --set
         * of a [quant] key reaches the layers that inherit it, as it would
         * in the original config file. */
        char *min = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&min, &len);
        if (!f) {
            free(text);
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        }
        qat_config_write_minimal(f, cfg);
        fclose(f);
        st = qat_config_parse(min, len, name, sets, nsets, cfg, err);
        free(min);
    }
    free(text);
    return st;
}

qat_status qat_checkpoint_load_config(const char *path, qat_config *cfg, qat_error *err)
{
    return qat_checkpoint_config(path, NULL, 0, cfg, err);
}

qat_status qat_checkpoint_load_model(const char *path, qat_model **out, qat_error *err)
{
    *out = NULL;
    qat_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_status st = qat_checkpoint_load_config(path, cfg, err);
    if (st == QAT_OK)
        st = qat_model_create(cfg, out, err);
    free(cfg);
    if (st == QAT_OK && (st = qat_checkpoint_restore(path, *out, NULL, NULL, err)) != QAT_OK) {
        qat_model_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* Training stops before it would save a NaN or Inf (trainer.c), so one in a
 * checkpoint means the file was damaged or forged: refuse it rather than
 * resume from it or export an integer model computed from garbage. */
static qat_status check_finite(const char *path, const char *name, qat_model *m,
                               const float *v, size_t n, int are_params, qat_error *err)
{
    size_t i = qat_first_nonfinite(v, n);
    if (i < n) {
        const char *layer = NULL, *what = "";
        size_t np;
        const float *base = qat_model_params(m, &np);
        for (int k = 0; are_params && !layer && k < qat_model_num_layers(m); k++) {
            qat_layer *l = qat_model_layer(m, k);
            const qat_tensor *ts[4] = {&l->w, &l->b, &l->gamma, &l->beta};
            static const char *names[4] = {"weight", "bias", "bn gamma", "bn beta"};
            for (int j = 0; j < 4; j++)
                if (ts[j]->data && base + i >= ts[j]->data &&
                    base + i < ts[j]->data + ts[j]->numel) {
                    layer = l->cfg->name;
                    what = names[j];
                    break;
                }
        }
        if (layer)
            return qat_fail(err, QAT_EINVAL,
                            "%s: dataset '/%s' element %zu (layer '%s' %s) is %g: a checkpoint "
                            "never holds non-finite values (damaged file?)",
                            path, name, i, layer, what, (double)v[i]);
        return qat_fail(err, QAT_EINVAL,
                        "%s: dataset '/%s' element %zu is %g: a checkpoint never holds "
                        "non-finite values (damaged file?)",
                        path, name, i, (double)v[i]);
    }
    return QAT_OK;
}

/* The typed observer and LSQ state from the "state" dataset's floats. */
static qat_status load_state(const char *path, qat_model *m, const float *state, qat_error *err)
{
    qat_status st = qat_model_state_load(m, state, err);
    if (st != QAT_OK)
        qat_error_prefix(err, "%s: dataset '/state'", path);
    return st;
}

qat_status qat_checkpoint_restore(const char *path, qat_model *m, qat_optim *opt,
                                  qat_checkpoint_meta *meta, qat_error *err)
{
    hid_t f;
    qat_status st = open_checked(path, &f, err);
    if (st != QAT_OK)
        return st;
    size_t np, ns = qat_model_state_size(m), no = 0;
    float *params = qat_model_params(m, &np);
    float *state = malloc(ns * sizeof *state);
    float *ostate = opt ? qat_optim_state(opt, &no) : NULL;
    long long epoch = 0, step = 0, osteps = 0;
    uint64_t rng[4];
    if (!state) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    if ((st = read_exact(f, path, "params", H5T_NATIVE_FLOAT, params, np, err)) ||
        (st = check_finite(path, "params", m, params, np, 1, err)) ||
        (st = read_exact(f, path, "state", H5T_NATIVE_FLOAT, state, ns, err)) ||
        (st = check_finite(path, "state", m, state, ns, 0, err)) ||
        (st = load_state(path, m, state, err)) ||
        (st = read_attr_i64(f, path, "epoch", &epoch, err)) ||
        (st = read_attr_i64(f, path, "step", &step, err)) ||
        (st = read_attr_i64(f, path, "optimizer_steps", &osteps, err)) ||
        (st = read_exact(f, path, "rng", H5T_NATIVE_UINT64, rng, 4, err)))
        goto done;
    if (opt && (st = read_exact(f, path, "optimizer_state", H5T_NATIVE_FLOAT, ostate, no, err)))
        goto done;
    if (meta && meta->prune_state &&
        ((st = read_exact(f, path, "prune_state", H5T_NATIVE_FLOAT, meta->prune_state,
                          meta->prune_count, err)) ||
         (st = check_finite(path, "prune_state", m, meta->prune_state, meta->prune_count, 0,
                            err))))
        goto done;
    /* optional: a checkpoint from before clustering, or from an older
     * version, has none and the run clusters at its start step */
    if (meta && meta->cluster_state && H5Lexists(f, "cluster_state", H5P_DEFAULT) > 0 &&
        ((st = read_exact(f, path, "cluster_state", H5T_NATIVE_FLOAT, meta->cluster_state,
                          meta->cluster_count, err)) ||
         (st = check_finite(path, "cluster_state", m, meta->cluster_state, meta->cluster_count,
                            0, err))))
        goto done;
    if (meta)
        meta->cluster_restored = meta->cluster_state &&
                                 H5Lexists(f, "cluster_state", H5P_DEFAULT) > 0;
    if (epoch < 0 || step < 0 || osteps < 0 || epoch > 1000000) {
        st = qat_fail(err, QAT_EINVAL, "%s: absurd epoch/step attributes (%lld, %lld)", path,
                      epoch, step);
        goto done;
    }
    if (opt)
        qat_optim_set_steps(opt, (long)osteps);
    long long ranks = 1;
    if (H5Aexists(f, "ranks") > 0 && (st = read_attr_i64(f, path, "ranks", &ranks, err)))
        goto done;
    if (meta) {
        meta->ranks = (int)ranks;
        meta->epoch = (int)epoch;
        meta->step = (long)step;
        meta->shuffle = (qat_rng){rng[0], rng[1]};
        meta->dropout = (qat_rng){rng[2], rng[3]};
    }
done:
    free(state);
    H5Fclose(f);
    return st;
}

qat_status qat_checkpoint_read_f32(const char *path, const char *name, float *out, size_t n,
                                   qat_error *err)
{
    hid_t f;
    qat_status st = open_checked(path, &f, err);
    if (st != QAT_OK)
        return st;
    st = read_exact(f, path, name, H5T_NATIVE_FLOAT, out, n, err);
    H5Fclose(f);
    return st;
}
