/* Numbers as text that files and Lua read back: '.' is the decimal point
 * whatever locale the host runs in. printf and strtod follow LC_NUMERIC, and
 * a host that calls setlocale(LC_ALL, "") under a German or French locale
 * would otherwise write 1.5 as "1,5" (invalid JSON, and a Lua constructor
 * with one more positional value) and read "1.5" as 1. */
#ifndef LATTICE_IO_NUMTEXT_H
#define LATTICE_IO_NUMTEXT_H

#include <stddef.h>

/* snprintf(buf, n, "%.*g", digits, v) in the C locale. */
void lt__format_double(char *buf, size_t n, int digits, double v);
/* The shortest "%.*g" text of v, from `min_digits` up to 17 digits, that
 * reads back as v. */
void lt__format_double_exact(char *buf, size_t n, int min_digits, double v);
/* strtod(s, end) in the C locale. */
double lt__parse_double(const char *s, char **end);

#endif
