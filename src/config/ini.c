/* INI parsing: sections and keys in file order, each with its line. */
#include "qat/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

void qat_ini_free(qat_ini *ini)
{
    if (!ini)
        return;
    for (int i = 0; i < ini->nsections; i++) {
        qat_ini_section *s = &ini->sections[i];
        for (int j = 0; j < s->nentries; j++) {
            free(s->entries[j].key);
            free(s->entries[j].value);
            free(s->entries[j].origin);
        }
        free(s->entries);
        free(s->name);
    }
    free(ini->sections);
    free(ini->path);
    free(ini);
}

qat_ini_section *qat_ini_find(qat_ini *ini, const char *name)
{
    for (int i = 0; i < ini->nsections; i++)
        if (strcmp(ini->sections[i].name, name) == 0)
            return &ini->sections[i];
    return NULL;
}

qat_ini_entry *qat_ini_section_get(qat_ini_section *s, const char *key)
{
    for (int j = 0; j < s->nentries; j++)
        if (strcmp(s->entries[j].key, key) == 0)
            return &s->entries[j];
    return NULL;
}

static qat_ini_section *add_section(qat_ini *ini, const char *name, size_t n, int line)
{
    if (ini->nsections == ini->cap) {
        int cap = ini->cap ? ini->cap * 2 : 16;
        qat_ini_section *ns = realloc(ini->sections, (size_t)cap * sizeof *ns);
        if (!ns)
            return NULL;
        ini->sections = ns;
        ini->cap = cap;
    }
    qat_ini_section *s = &ini->sections[ini->nsections];
    memset(s, 0, sizeof *s);
    s->name = dupn(name, n);
    if (!s->name)
        return NULL;
    s->line = line;
    ini->nsections++;
    return s;
}

static qat_ini_entry *add_entry(qat_ini_section *s, const char *k, size_t kn, const char *v,
                                size_t vn, int line)
{
    if (s->nentries == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        qat_ini_entry *ne = realloc(s->entries, (size_t)cap * sizeof *ne);
        if (!ne)
            return NULL;
        s->entries = ne;
        s->cap = cap;
    }
    qat_ini_entry *e = &s->entries[s->nentries];
    memset(e, 0, sizeof *e);
    e->key = dupn(k, kn);
    e->value = dupn(v, vn);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return NULL;
    }
    e->line = line;
    s->nentries++;
    return e;
}

static int valid_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

static qat_status parse_line(qat_ini *ini, qat_ini_section **cur, const char *b, const char *e,
                             int line, qat_error *err)
{
    const char *name = ini->path;
    trim(&b, &e);
    if (b == e || *b == '#' || *b == ';')
        return QAT_OK;
    if (*b == '[') {
        const char *close = memchr(b, ']', (size_t)(e - b));
        if (!close)
            return qat_fail(err, QAT_EINVAL, "%s:%d: unterminated section header (missing ']')",
                            name, line);
        const char *rest = close + 1, *re = e;
        trim(&rest, &re);
        if (rest != re && *rest != '#' && *rest != ';')
            return qat_fail(err, QAT_EINVAL, "%s:%d: unexpected text after section header",
                            name, line);
        const char *nb = b + 1, *ne = close;
        trim(&nb, &ne);
        if (nb == ne)
            return qat_fail(err, QAT_EINVAL, "%s:%d: empty section name", name, line);
        for (const char *p = nb; p < ne; p++)
            if (!valid_name_char(*p))
                return qat_fail(err, QAT_EINVAL,
                                "%s:%d: invalid character '%c' in section name (allowed: "
                                "letters, digits, '_', '.', '-')",
                                name, line, isprint((unsigned char)*p) ? *p : '?');
        for (int i = 0; i < ini->nsections; i++)
            if (strlen(ini->sections[i].name) == (size_t)(ne - nb) &&
                memcmp(ini->sections[i].name, nb, (size_t)(ne - nb)) == 0)
                return qat_fail(err, QAT_EINVAL, "%s:%d: duplicate section [%.*s] (first at line %d)",
                                name, line, (int)(ne - nb), nb, ini->sections[i].line);
        *cur = add_section(ini, nb, (size_t)(ne - nb), line);
        return *cur ? QAT_OK : qat_fail(err, QAT_ENOMEM, "%s: out of memory", name);
    }
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq)
        return qat_fail(err, QAT_EINVAL, "%s:%d: expected 'key = value' or '[section]'", name,
                        line);
    if (!*cur)
        return qat_fail(err, QAT_EINVAL, "%s:%d: key outside any [section]", name, line);
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    /* inline comments start at whitespace + '#' or ';' */
    for (const char *p = vb; p < ve; p++)
        if ((*p == '#' || *p == ';') && (p == vb || isspace((unsigned char)p[-1]))) {
            ve = p;
            break;
        }
    trim(&vb, &ve);
    if (kb == ke)
        return qat_fail(err, QAT_EINVAL, "%s:%d: empty key before '='", name, line);
    for (const char *p = kb; p < ke; p++)
        if (!valid_name_char(*p) || *p == '.')
            return qat_fail(err, QAT_EINVAL,
                            "%s:%d: invalid character '%c' in key (allowed: letters, digits, "
                            "'_', '-')",
                            name, line, isprint((unsigned char)*p) ? *p : '?');
    for (int j = 0; j < (*cur)->nentries; j++) {
        const qat_ini_entry *o = &(*cur)->entries[j];
        if (strlen(o->key) == (size_t)(ke - kb) && memcmp(o->key, kb, (size_t)(ke - kb)) == 0)
            return qat_fail(err, QAT_EINVAL, "%s:%d: duplicate key '%s' in [%s] (first at line %d)",
                            name, line, o->key, (*cur)->name, o->line);
    }
    if (!add_entry(*cur, kb, (size_t)(ke - kb), vb, (size_t)(ve - vb), line))
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory", name);
    return QAT_OK;
}

qat_status qat_ini_parse(const char *text, size_t len, const char *name, qat_ini **out,
                         qat_error *err)
{
    *out = NULL;
    if (len > QAT_INI_MAX_BYTES)
        return qat_fail(err, QAT_EINVAL, "%s: file is %zu bytes; config files are limited to %d",
                        name, len, QAT_INI_MAX_BYTES);
    qat_ini *ini = calloc(1, sizeof *ini);
    if (!ini || !(ini->path = strdup(name))) {
        free(ini);
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory", name);
    }
    qat_ini_section *cur = NULL;
    size_t pos = 0;
    int line = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* UTF-8 byte order mark */
    while (pos < len) {
        line++;
        const char *b = text + pos;
        const char *nl = memchr(b, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - b) : len - pos;
        if (n > QAT_INI_MAX_LINE) {
            qat_ini_free(ini);
            return qat_fail(err, QAT_EINVAL, "%s:%d: line is %zu characters long (limit %d)",
                            name, line, n, QAT_INI_MAX_LINE);
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)b[i];
            if (c == 0 || (c < 32 && c != '\t' && c != '\r')) {
                qat_ini_free(ini);
                return qat_fail(err, QAT_EINVAL,
                                "%s:%d: control byte 0x%02x at column %zu (is this a text "
                                "file?)",
                                name, line, c, i + 1);
            }
        }
        qat_status st = parse_line(ini, &cur, b, b + n, line, err);
        if (st != QAT_OK) {
            qat_ini_free(ini);
            return st;
        }
        pos += n + (nl ? 1 : 0);
    }
    if (ini->nsections == 0) {
        qat_ini_free(ini);
        return qat_fail(err, QAT_EINVAL, "%s: no [section] found (empty config?)", name);
    }
    *out = ini;
    return QAT_OK;
}

qat_status qat_ini_load(const char *path, qat_ini **out, qat_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open config: %s", path, strerror(errno));
    /* fopen succeeds on a directory and only the read fails: a usage
     * mistake, not an I/O fault */
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return qat_fail(err, QAT_EINVAL, "%s: is a directory, expected a config file", path);
    }
    char *buf = malloc(QAT_INI_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, QAT_INI_MAX_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    qat_status st;
    if (bad)
        st = qat_fail(err, QAT_EIO, "%s: read error", path);
    else
        st = qat_ini_parse(buf, n, path, out, err);
    free(buf);
    return st;
}

qat_status qat_ini_override(qat_ini *ini, const char *assignment, int create_sections,
                            qat_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return qat_fail(err, QAT_EINVAL, "--set %s: expected section.key=value", assignment);
    const char *dot = NULL;
    for (const char *p = assignment; p < eq; p++)
        if (*p == '.')
            dot = p;
    if (!dot || dot == assignment || dot + 1 == eq)
        return qat_fail(err, QAT_EINVAL, "--set %s: expected section.key=value", assignment);
    char sec[256], key[256];
    size_t sn = (size_t)(dot - assignment), kn = (size_t)(eq - dot - 1);
    if (sn >= sizeof sec || kn >= sizeof key)
        return qat_fail(err, QAT_EINVAL, "--set %s: name too long", assignment);
    memcpy(sec, assignment, sn);
    sec[sn] = '\0';
    memcpy(key, dot + 1, kn);
    key[kn] = '\0';
    const char *vb = eq + 1, *ve = eq + strlen(eq);
    trim(&vb, &ve);
    qat_ini_section *s = qat_ini_find(ini, sec);
    if (!s) {
        if (!create_sections)
            return qat_fail(err, QAT_EINVAL, "--set %s: %s has no section [%s]", assignment,
                            ini->path, sec);
        s = add_section(ini, sec, sn, 0);
        if (!s)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    qat_ini_entry *e = qat_ini_section_get(s, key);
    if (!e) {
        e = add_entry(s, key, kn, vb, (size_t)(ve - vb), 0);
        if (!e)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    } else {
        char *v = dupn(vb, (size_t)(ve - vb));
        if (!v)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        free(e->value);
        e->value = v;
        e->line = 0;
    }
    free(e->origin);
    size_t ol = strlen(assignment) + 8;
    e->origin = malloc(ol);
    if (!e->origin)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    snprintf(e->origin, ol, "--set %s", assignment);
    return QAT_OK;
}

void qat_ini_where(const qat_ini *ini, const qat_ini_entry *e, char *buf, size_t len)
{
    if (e->origin)
        snprintf(buf, len, "%s", e->origin);
    else
        snprintf(buf, len, "%s:%d", ini->path, e->line);
}
