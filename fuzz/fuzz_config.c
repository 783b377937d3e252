/* libFuzzer target: the INI parser with the run-config schema.
 *
 * Input: INI text, optionally followed by "\n--set\n" and one override per
 * line (what qat-train's --set passes). Any input must either be refused
 * with a message or give a config that survives the round trip the
 * checkpoint relies on: --resume re-parses qat_config_write's text, so
 * write -> parse -> write must reproduce the text exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/config.h"

#define MAX_SETS 8

static char *write_config(const qat_config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        abort();
    qat_config_write(f, cfg);
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char marker[] = "\n--set\n";
    const char *text = (const char *)data;
    size_t text_len = size;
    const char *sets[MAX_SETS];
    int nsets = 0;
    char *set_buf = NULL;
    const char *m = memmem(data, size, marker, sizeof marker - 1);
    if (m) {
        text_len = (size_t)(m - text);
        size_t rest = size - text_len - (sizeof marker - 1);
        set_buf = malloc(rest + 1);
        if (!set_buf)
            return 0;
        memcpy(set_buf, m + sizeof marker - 1, rest);
        set_buf[rest] = '\0';
        /* --set values come from argv: no NUL inside, one per line */
        for (char *p = set_buf, *save = NULL; nsets < MAX_SETS; p = NULL) {
            char *tok = strtok_r(p, "\n", &save);
            if (!tok)
                break;
            sets[nsets++] = tok;
        }
    }
    qat_config *cfg = malloc(sizeof *cfg), *back = malloc(sizeof *back);
    if (!cfg || !back)
        abort();
    qat_error err;
    qat_error_clear(&err);
    qat_status st = qat_config_parse(text, text_len, "fuzz.ini", sets, nsets, cfg, &err);
    if (st != QAT_OK) {
        /* a refusal must explain itself */
        if (err.msg[0] == '\0' || st == QAT_OK)
            abort();
    } else {
        size_t len1 = 0, len2 = 0;
        char *t1 = write_config(cfg, &len1);
        if (qat_config_parse(t1, len1, "fuzz.ini", NULL, 0, back, &err) != QAT_OK) {
            fprintf(stderr, "round trip: the written config does not parse: %s\n%s\n", err.msg,
                    t1);
            abort();
        }
        char *t2 = write_config(back, &len2);
        if (len1 != len2 || memcmp(t1, t2, len1) != 0) {
            fprintf(stderr, "round trip: text changed\n--- first\n%s\n--- second\n%s\n", t1, t2);
            abort();
        }
        free(t1);
        free(t2);
    }
    free(cfg);
    free(back);
    free(set_buf);
    return 0;
}
