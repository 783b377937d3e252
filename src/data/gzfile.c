/* Whole-file reading with transparent gunzip: the byte source for IDX files.
 * Everything is held in memory because IDX files are parsed as one buffer;
 * the size caps keep a corrupt or hostile file from exhausting memory. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data_internal.h"
#include "qat/data.h"

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

qat_status qat_data_gunzip(const uint8_t *in, size_t in_len, size_t max_out, const char *name,
                           uint8_t **out, size_t *out_len, qat_error *err)
{
    QAT_ASSERT(max_out < SIZE_MAX);
    *out = NULL;
    *out_len = 0;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 16 + MAX_WBITS: accept only a gzip wrapper (not raw zlib), so the CRC32
     * and length trailer are checked and a truncated file is detected. */
    int zr = inflateInit2(&zs, 16 + MAX_WBITS);
    if (zr != Z_OK)
        return qat_fail(err, zr == Z_MEM_ERROR ? QAT_ENOMEM : QAT_EINTERNAL,
                        "%s: cannot start gzip decompression (zlib: %s)", name,
                        zs.msg ? zs.msg : zError(zr));

    /* Grow geometrically from a guess; the buffer may reach max_out + 1 so
     * that "one byte too many" is observable without a second pass. */
    size_t cap = min_size(in_len < SIZE_MAX / 4 ? in_len * 4 : SIZE_MAX, max_out + 1);
    if (cap < 4096)
        cap = min_size(4096, max_out + 1);
    uint8_t *buf = malloc(cap);
    if (!buf) {
        inflateEnd(&zs);
        return qat_fail(err, QAT_ENOMEM, "%s: cannot allocate %zu bytes for gunzip", name, cap);
    }

    size_t pos = 0, len = 0;
    qat_status st = QAT_OK;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap > (max_out + 1) / 2 ? max_out + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                st = qat_fail(err, QAT_ENOMEM, "%s: cannot grow gunzip buffer to %zu bytes",
                              name, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        /* z_stream counts are uInt; feed at most UINT_MAX per call. */
        zs.next_in = (Bytef *)(uintptr_t)(in + pos);
        zs.avail_in = (uInt)min_size(in_len - pos, UINT_MAX);
        zs.next_out = buf + len;
        zs.avail_out = (uInt)min_size(cap - len, UINT_MAX);
        zr = inflate(&zs, Z_NO_FLUSH);
        pos = (size_t)(zs.next_in - in);
        len = (size_t)(zs.next_out - buf);

        if (len > max_out) {
            st = qat_fail(err, QAT_EINVAL,
                          "%s: gzip data decompresses to more than %zu bytes (the limit); "
                          "refusing it as corrupt or not a dataset",
                          name, max_out);
            break;
        }
        if (zr == Z_STREAM_END) {
            if (pos == in_len)
                break;
            /* Concatenated members are valid gzip (`cat a.gz b.gz`); anything
             * else after a member means the file is damaged. */
            if (in_len - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            st = qat_fail(err, QAT_EINVAL,
                          "%s: corrupt gzip data: %zu bytes of trailing garbage after the gzip "
                          "stream (stream ends at byte %zu of %zu)",
                          name, in_len - pos, pos, in_len);
            break;
        }
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && zs.avail_out == 0)
            continue; /* output full: grow and go on */
        if (zr == Z_BUF_ERROR) {
            /* No progress with output room left: the input ran out before
             * the end-of-stream marker and trailer. */
            st = qat_fail(err, QAT_EINVAL,
                          "%s: truncated gzip data: compressed stream ends after %zu bytes "
                          "without its end marker and trailer (%zu bytes decompressed so far)",
                          name, in_len, len);
            break;
        }
        if (zr == Z_MEM_ERROR) {
            st = qat_fail(err, QAT_ENOMEM, "%s: zlib ran out of memory while decompressing",
                          name);
            break;
        }
        /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR: the bytes are not valid
         * gzip (bad header, bad block, CRC or length mismatch). */
        st = qat_fail(err, QAT_EINVAL, "%s: corrupt gzip data (zlib: %s) near compressed byte %zu",
                      name, zs.msg ? zs.msg : zError(zr), pos);
        break;
    }
    inflateEnd(&zs);
    if (st != QAT_OK) {
        free(buf);
        return st;
    }
    /* Give back the slack of the geometric growth; keep 1 byte so the
     * result is non-NULL even for an empty stream. */
    uint8_t *shrunk = realloc(buf, len ? len : 1);
    *out = shrunk ? shrunk : buf;
    *out_len = len;
    return QAT_OK;
}

/* Reads the raw bytes of path, refusing files over max_len bytes. */
static qat_status read_raw(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                           qat_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        /* A path that does not exist is a usage/data mistake, not an I/O fault. */
        qat_status s = (e == ENOENT || e == ENOTDIR) ? QAT_EINVAL : QAT_EIO;
        return qat_fail(err, s, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return qat_fail(err, QAT_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        fclose(f);
        return qat_fail(err, QAT_EINVAL, "%s: is a directory, expected a data file", path);
    }
    if (S_ISREG(sb.st_mode) && (unsigned long long)sb.st_size > max_len) {
        fclose(f);
        return qat_fail(err, QAT_EINVAL, "%s: file is %lld bytes, more than the %zu-byte limit",
                        path, (long long)sb.st_size, max_len);
    }

    /* The stat size is only a hint (pipes, files that change under us), so
     * read until EOF; +1 lets a regular file hit EOF in the first pass. */
    size_t cap = (S_ISREG(sb.st_mode) && sb.st_size > 0) ? (size_t)sb.st_size + 1 : 65536;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return qat_fail(err, QAT_ENOMEM, "%s: cannot allocate %zu bytes", path, cap);
    }
    size_t len = 0;
    for (;;) {
        len += fread(buf + len, 1, cap - len, f);
        if (len > max_len) {
            free(buf);
            fclose(f);
            return qat_fail(err, QAT_EINVAL, "%s: file is more than the %zu-byte limit", path,
                            max_len);
        }
        if (len < cap)
            break; /* EOF or error, told apart below */
        size_t ncap = cap > (max_len + 1) / 2 ? max_len + 1 : cap * 2;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            fclose(f);
            return qat_fail(err, QAT_ENOMEM, "%s: cannot allocate %zu bytes", path, ncap);
        }
        buf = nb;
        cap = ncap;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return qat_fail(err, QAT_EIO, "%s: read error after %zu bytes: %s", path, len,
                        strerror(e));
    }
    fclose(f);
    *out = buf;
    *out_len = len;
    return QAT_OK;
}

qat_status qat_read_file_maybe_gz(const char *path, uint8_t **buf, size_t *len, qat_error *err)
{
    *buf = NULL;
    *len = 0;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    qat_status st = read_raw(path, QAT_DATA_MAX_FILE_BYTES, &raw, &raw_len, err);
    if (st != QAT_OK)
        return st;
    /* Decide by content, not by the .gz suffix: renamed files still work. */
    if (raw_len >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        st = qat_data_gunzip(raw, raw_len, QAT_DATA_MAX_FILE_BYTES, path, buf, len, err);
        free(raw);
        return st;
    }
    *buf = raw;
    *len = raw_len;
    return QAT_OK;
}
