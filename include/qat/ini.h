/* INI files and typed schemas.
 *
 * The parser keeps sections and keys in file order with their line numbers;
 * schema tables turn a section into a plain struct, filling documented
 * defaults and rejecting bad values with file:line. Keys that no table reads
 * are errors (a typo must not silently fall back to a default). */
#ifndef QAT_INI_H
#define QAT_INI_H

#include <stddef.h>
#include <stdio.h>

#include "qat/status.h"

#define QAT_INI_MAX_LINE 4096
#define QAT_INI_MAX_BYTES (1 << 20)

typedef struct qat_ini_entry {
    char *key, *value;
    int line;      /* 0 for values that came from --set */
    char *origin;  /* "--set section.key=value" for overrides, else NULL */
    int used;      /* set when a schema consumed it */
} qat_ini_entry;

typedef struct qat_ini_section {
    char *name;
    int line;
    qat_ini_entry *entries;
    int nentries, cap;
} qat_ini_section;

typedef struct qat_ini {
    char *path; /* file name used in messages */
    qat_ini_section *sections;
    int nsections, cap;
} qat_ini;

/* Parses text (len bytes; NUL bytes, lines over QAT_INI_MAX_LINE, an
 * unterminated section header, a key outside any section, a line without
 * '=', duplicate sections or keys are errors with name:line). */
qat_status qat_ini_parse(const char *text, size_t len, const char *name, qat_ini **out,
                         qat_error *err);
/* Reads and parses a file (at most QAT_INI_MAX_BYTES). */
qat_status qat_ini_load(const char *path, qat_ini **out, qat_error *err);
void qat_ini_free(qat_ini *ini);

/* Applies "section.key=value" (section names may contain dots: the key is
 * after the last dot before '='). A missing section is created when
 * create_sections is set, else it is an error naming the section. */
qat_status qat_ini_override(qat_ini *ini, const char *assignment, int create_sections,
                            qat_error *err);

qat_ini_section *qat_ini_find(qat_ini *ini, const char *name);
qat_ini_entry *qat_ini_section_get(qat_ini_section *s, const char *key);
/* "path:line" or "--set ..." for an entry; "path:line" for a section. */
void qat_ini_where(const qat_ini *ini, const qat_ini_entry *e, char *buf, size_t len);

/* ---- typed schemas ---------------------------------------------------------- */
typedef enum qat_cfg_type {
    QAT_CFG_INT,    /* int */
    QAT_CFG_FLOAT,  /* float; NaN and Inf rejected */
    QAT_CFG_BOOL,   /* int 0/1 from true/false/yes/no/on/off/1/0 */
    QAT_CFG_STRING, /* char[QAT_CFG_STR_MAX] */
    QAT_CFG_ENUM,   /* int index into choices */
    QAT_CFG_FLOATS  /* qat_cfg_floats: "a, b, c" (each in range), or "auto" with QAT_CFG_AUTO */
} qat_cfg_type;

#define QAT_CFG_STR_MAX 512
#define QAT_CFG_FLOATS_MAX 64

/* A list of floats (per-channel values); n = 0 stands for "auto". */
typedef struct qat_cfg_floats {
    int n;
    float v[QAT_CFG_FLOATS_MAX];
} qat_cfg_floats;

enum {
    QAT_CFG_MIN_EXCL = 1, /* value must be > min */
    QAT_CFG_MAX_EXCL = 2, /* value must be < max */
    QAT_CFG_AUTO = 4,     /* FLOATS: "auto" is a value (n = 0) */
};

typedef struct qat_cfg_key {
    const char *name;
    qat_cfg_type type;
    size_t offset;              /* of the field in the target struct */
    const char *def;            /* default as text; NULL means required */
    double min, max;            /* numeric range, inclusive unless flags say */
    int flags;
    const char *const *choices; /* ENUM: NULL-terminated */
    const char *doc;            /* one line: shown in docs and --help */
} qat_cfg_key;

/* Enum name tables (a key's choices): the names of an enum's values in value
 * order, NULL-terminated. names[value], or "unknown" outside the table: */
const char *qat_enum_name(const char *const *names, int value);
/* The value named s (ASCII case-insensitive, as config files are read), or
 * -1 if none is (or s is NULL). */
int qat_enum_parse(const char *const *names, const char *s);
/* Number of values in the table. */
int qat_enum_count(const char *const *names);

/* Sets every key of the table (count n) to its default; required keys are
 * left untouched. */
void qat_cfg_defaults(const qat_cfg_key *keys, int n, void *out);
/* Parses the section's entries that this table knows into out and marks them
 * used; unknown entries are left for qat_cfg_check_unused. If require is set,
 * missing required keys are errors naming the section's file:line. */
qat_status qat_cfg_apply(const qat_ini *ini, qat_ini_section *s, const qat_cfg_key *keys, int n,
                         void *out, int require, qat_error *err);
/* Error for the first entry of s that no table consumed, listing the keys
 * that would have been valid (valid: comma-separated names). */
qat_status qat_cfg_check_unused(const qat_ini *ini, const qat_ini_section *s, const char *valid,
                                qat_error *err);
/* Appends "a, b, c" names of the table to buf. */
void qat_cfg_names(const qat_cfg_key *keys, int n, char *buf, size_t len);
/* Writes "key = value" lines for the struct's current values. */
void qat_cfg_write(FILE *f, const qat_cfg_key *keys, int n, const void *in);
/* Formats one value (as qat_cfg_write would) into buf. */
void qat_cfg_format(const qat_cfg_key *k, const void *in, char *buf, size_t len);

#endif
