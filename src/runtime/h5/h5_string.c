/* String attributes of qat HDF5 files (docs/FORMAT.md §1), shared by the
 * model reader and the format probe: scalar, fixed- or variable-length,
 * declared ASCII or UTF-8, and in either case bytes that are valid UTF-8.
 * h5py stores a Python str as a variable-length UTF-8 string; HDF5 refuses
 * to convert between character sets, so each string is read in the set the
 * file declares and its bytes are checked here instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5/h5_internal.h"

size_t qat_h5_utf8_invalid_at(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Unicode Table 3-7: no overlong forms (C0, C1, E0 80..9F, F0
         * 80..8F), no surrogates (ED A0..BF), nothing above U+10FFFF */
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : lo;
            hi = c == 0xED ? 0x9F : hi;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : lo;
            hi = c == 0xF4 ? 0x8F : hi;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

static const char *cset_name(H5T_cset_t cs)
{
    return cs == H5T_CSET_ASCII ? "ASCII" : cs == H5T_CSET_UTF8 ? "UTF-8" : NULL;
}

void qat_h5_describe_type(hid_t t, char *buf, size_t cap)
{
    static const char *const classes[] = {"time",      "bitfield", "opaque", "compound",
                                          "reference", "enum",     "vlen",   "array"};
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    switch (cls) {
    case H5T_INTEGER:
        snprintf(buf, cap, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", size * 8);
        return;
    case H5T_FLOAT: snprintf(buf, cap, "float%zu", size * 8); return;
    case H5T_STRING: {
        H5T_cset_t cs = H5Tget_cset(t);
        char set[32], len[40];
        if (cset_name(cs))
            snprintf(set, sizeof set, "%s", cset_name(cs));
        else
            snprintf(set, sizeof set, "character set %d", (int)cs);
        if (H5Tis_variable_str(t) > 0)
            snprintf(len, sizeof len, "variable-length");
        else
            snprintf(len, sizeof len, "fixed-length %zu-byte", size);
        snprintf(buf, cap, "a %s string (%s)", len, set);
        return;
    }
    default:
        if (cls >= H5T_TIME && cls <= H5T_ARRAY)
            snprintf(buf, cap, "%s (%zu bytes)", classes[cls - H5T_TIME], size);
        else
            snprintf(buf, cap, "HDF5 type class %d (%zu bytes)", (int)cls, size);
        return;
    }
}

void qat_h5_describe_space(hid_t sp, char *buf, size_t cap)
{
    H5S_class_t cls = H5Sget_simple_extent_type(sp);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (cls == H5S_SCALAR) {
        snprintf(buf, cap, "a scalar");
        return;
    }
    if (cls != H5S_SIMPLE || rank < 0 || rank > 32) {
        snprintf(buf, cap, "an empty or invalid dataspace");
        return;
    }
    hsize_t dims[32];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    int n = snprintf(buf, cap, "shape (");
    for (int i = 0; i < rank && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%llu", i ? ", " : "",
                      (unsigned long long)dims[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ")");
}

/* The byte at offset i of the file image, zero past its end (HDF5's sec2
 * driver reads zeros there too). */
static unsigned char image_byte(const unsigned char *img, size_t n, size_t i)
{
    return i < n ? img[i] : 0;
}

static unsigned long long image_le(const unsigned char *img, size_t n, size_t i, int bytes)
{
    unsigned long long v = 0;
    for (int k = bytes - 1; k >= 0; k--)
        v = v << 8 | image_byte(img, n, i + (size_t)k);
    return v;
}

/* Why HDF5 1.10 cannot safely decode the global heap collection whose
 * signature is at offset c, with lengths of lbytes bytes: 0 it can, 1 it
 * would spin forever, 2 an object runs past the collection's end.
 * Its decoder steps over each object by the object's size, and a free-space
 * object (index 0) of size 0 does not step at all (a corrupt file found this
 * by fuzzing; the variable-length strings h5py writes live in these heaps).
 * Objects with an index step by at least their header, so only index 0 can
 * stall the walk. An indexed object's size is not checked against the
 * collection either: reading it copies that many bytes out of the
 * collection's buffer (fuzz_model found a heap buffer overflow so). */
static int collection_problem(const unsigned char *img, size_t n, size_t c, int lbytes)
{
    unsigned long long csize = image_le(img, n, c + 8, lbytes);
    size_t hdr = 16; /* collection and object headers, 8 + lbytes padded to 8 (H5HG_ALIGN) */
    if (image_byte(img, n, c + 4) != 1 || csize < hdr)
        return 0;
    unsigned long long end = c + csize, p = c + hdr;
    if (end < c)
        return 0;
    while (p < end && end - p >= hdr) {
        unsigned idx = (unsigned)image_le(img, n, (size_t)p, 2);
        unsigned long long size = image_le(img, n, (size_t)p + 8, lbytes);
        if (idx == 0) {
            if (size == 0)
                return 1;
            if (size > end - p)
                return 0;
            p += size;
        } else {
            if (size > end - p || hdr + ((size + 7) & ~7ULL) > end - p)
                return 2;
            p += hdr + ((size + 7) & ~7ULL);
        }
    }
    return 0;
}

/* The superblock's size of lengths (HDF5 file format §II.A: the signature
 * at byte 0, 512, 1024, ...; the field at byte 14 of versions 0 and 1, 10
 * of versions 2 and 3); 8, HDF5's default, when it cannot be found. */
static int length_bytes(const unsigned char *img, size_t n)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (size_t at = 0; at + 16 <= n; at = at ? at * 2 : 512) {
        if (memcmp(img + at, sig, 8) != 0)
            continue;
        unsigned ver = img[at + 8], l = ver < 2 ? img[at + 14] : img[at + 10];
        return l == 2 || l == 4 || l == 8 ? (int)l : 8;
    }
    return 8;
}

/* Refuses (returns 0 with why filled) a file holding a global heap
 * collection that would stall HDF5 or make it read past a buffer, before a variable-length read asks
 * HDF5 to decode one. A collection is found by its "GCOL" signature, so
 * weight bytes that merely spell "GCOL" are refused only if they would
 * also trip HDF5 were it to read them as a collection. */
static int heaps_ok(hid_t obj, char *why, size_t why_cap)
{
    hid_t f = H5Iget_file_id(obj);
    ssize_t n = f >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    unsigned char *img = n > 0 ? malloc((size_t)n) : NULL;
    int ok = 1;
    if (!img || H5Fget_file_image(f, img, (size_t)n) != n) {
        snprintf(why, why_cap, "cannot be read: the file's image cannot be checked (%s)",
                 img ? "HDF5 refused to copy it" : "out of memory or empty");
        ok = 0;
    }
    int lbytes = ok ? length_bytes(img, (size_t)n) : 8;
    for (size_t i = 0; ok && i + 4 <= (size_t)n; i++) {
        if (memcmp(img + i, "GCOL", 4) != 0)
            continue;
        int problem = collection_problem(img, (size_t)n, i, lbytes);
        if (problem) {
            snprintf(why, why_cap,
                     "cannot be read: the global heap collection at byte %zu, which holds "
                     "variable-length strings, %s (corrupt)",
                     i, problem == 1 ? "has a free-space entry of size 0"
                                     : "has an object that runs past its end");
            ok = 0;
        }
    }
    free(img);
    if (f >= 0)
        H5Fclose(f);
    return ok;
}

/* A character set HDF5 reserves (the file's bits say 2..15) fails
 * H5Tset_cset and lands here too. */
#define UNREADABLE "expected an ASCII or UTF-8 string, found %s that cannot be read (corrupt?)"

/* The value of open scalar string attribute a (of string type t),
 * NUL-terminated, into tmp (QAT_H5_MAX_STR + 1 bytes), read in the
 * character set t declares. Returns its length, or -1 with why filled. */
static long read_value(hid_t a, hid_t t, char *tmp, char *why, size_t why_cap)
{
    H5T_cset_t cs = H5Tget_cset(t);
    char found[96];
    qat_h5_describe_type(t, found, sizeof found);
    hid_t mt = H5Tcopy(H5T_C_S1);
    long len = -1;
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        if (!heaps_ok(a, why, why_cap)) {
            if (mt >= 0)
                H5Tclose(mt);
            return -1;
        }
        if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, cs) >= 0 &&
            H5Aread(a, mt, &s) >= 0 && s) {
            size_t n = strlen(s);
            if (n > QAT_H5_MAX_STR) {
                snprintf(why, why_cap, "expected a string of at most %d bytes, found %zu",
                         QAT_H5_MAX_STR, n);
            } else {
                memcpy(tmp, s, n + 1);
                len = (long)n;
            }
        } else {
            snprintf(why, why_cap, UNREADABLE, found);
        }
        if (s)
            H5free_memory(s);
    } else {
        size_t size = H5Tget_size(t);
        if (size == 0 || size > QAT_H5_MAX_STR) {
            snprintf(why, why_cap, "expected a string of at most %d bytes, found %s",
                     QAT_H5_MAX_STR, found);
        } else if (mt < 0 || H5Tset_size(mt, size + 1) < 0 || H5Tset_cset(mt, cs) < 0 ||
                   H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, tmp) < 0) {
            snprintf(why, why_cap, UNREADABLE, found);
        } else {
            /* a fixed-length string ends at its first NUL; space padding goes */
            tmp[size] = '\0';
            size_t n = strlen(tmp);
            if (H5Tget_strpad(t) == H5T_STR_SPACEPAD)
                while (n && tmp[n - 1] == ' ')
                    tmp[--n] = '\0';
            len = (long)n;
        }
    }
    if (mt >= 0)
        H5Tclose(mt);
    return len;
}

int qat_h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t cap, char *why,
                         size_t why_cap)
{
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) {
        snprintf(why, why_cap, "%s",
                 ex < 0 ? "cannot be looked up (corrupt object header?)" : "missing");
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        snprintf(why, why_cap, "cannot be opened");
        return -1;
    }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char found[96], tmp[QAT_H5_MAX_STR + 1];
    long len = -1;
    if (t < 0 || sp < 0) {
        snprintf(why, why_cap, "cannot read its type or shape");
    } else if (H5Tget_class(t) != H5T_STRING) {
        qat_h5_describe_type(t, found, sizeof found);
        snprintf(why, why_cap, "expected a string, found %s", found);
    } else if (H5Sget_simple_extent_type(sp) != H5S_SCALAR) {
        qat_h5_describe_space(sp, found, sizeof found);
        snprintf(why, why_cap, "expected a scalar string, found %s", found);
    } else {
        len = read_value(a, t, tmp, why, why_cap);
    }
    size_t bad = 0;
    if (len >= 0 && (size_t)len >= cap) {
        snprintf(why, why_cap, "expected at most %zu bytes, found %ld", cap - 1, len);
        len = -1;
    } else if (len >= 0 && (bad = qat_h5_utf8_invalid_at(tmp, (size_t)len)) < (size_t)len) {
        /* ASCII is a subset of UTF-8, so one test serves both sets (HDF5
         * checks neither); names end up in our messages */
        snprintf(why, why_cap,
                 "expected UTF-8 text, found byte 0x%02x at offset %zu, which does not start a "
                 "valid UTF-8 sequence",
                 (unsigned char)tmp[bad], bad);
        len = -1;
    } else if (len >= 0) {
        memcpy(buf, tmp, (size_t)len + 1);
    }
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    H5Aclose(a);
    return len < 0 ? -1 : 0;
}
