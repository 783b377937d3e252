/* A minimal JSON writer for summary.json (train-internal): keys and values
 * appended to an open object. */
#ifndef QAT_TRAIN_JSON_WRITER_H
#define QAT_TRAIN_JSON_WRITER_H

#include <stdio.h>

typedef struct qat_json {
    FILE *f;
    int first;
} qat_json;
void qat_json_begin(qat_json *j, FILE *f);
void qat_json_end(qat_json *j);
void qat_json_num(qat_json *j, const char *key, double v); /* NaN -> null */
void qat_json_int(qat_json *j, const char *key, long long v);
void qat_json_str(qat_json *j, const char *key, const char *v);
void qat_json_array(qat_json *j, const char *key, const double *v, int n);
/* Starts a nested object under key; end it with qat_json_end. */
void qat_json_object(qat_json *j, const char *key, qat_json *inner);

#endif
