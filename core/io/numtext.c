/* Number text in the C locale (numtext.h). uselocale changes the calling
 * thread's locale only, so another host thread formatting in its own locale
 * at the same time is not disturbed; newlocale of "C" for every category
 * hands back the C library's own object, so a call costs no allocation. */
#define _POSIX_C_SOURCE 200809L
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include "io/numtext.h"

/* The C locale on this thread until c_locale_end; (locale_t)0 when it could
 * not be made, and the thread's own locale then stays. */
static locale_t c_locale_begin(locale_t *saved) {
  locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  *saved = c ? uselocale(c) : (locale_t)0;
  return c;
}

static void c_locale_end(locale_t c, locale_t saved) {
  if (!c) return;
  uselocale(saved);
  freelocale(c);
}

void lt__format_double(char *buf, size_t n, int digits, double v) {
  locale_t saved, c = c_locale_begin(&saved);
  snprintf(buf, n, "%.*g", digits, v);
  c_locale_end(c, saved);
}

void lt__format_double_exact(char *buf, size_t n, int min_digits, double v) {
  locale_t saved, c = c_locale_begin(&saved);
  for (int digits = min_digits; digits <= 17; digits++) {
    snprintf(buf, n, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) break;
  }
  c_locale_end(c, saved);
}

double lt__parse_double(const char *s, char **end) {
  locale_t saved, c = c_locale_begin(&saved);
  double v = strtod(s, end);
  c_locale_end(c, saved);
  return v;
}
