/* Strict JSON for safetensors headers: the checker and the cursor (json.h).
 * cJSON, which read headers before, takes control bytes as whitespace, raw
 * control characters in strings, bad \u escapes (as U+0000) and keeps numbers
 * only as doubles; this file is the grammar of RFC 8259 and nothing more. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "io/json.h"

typedef struct checker {
  const unsigned char *s;
  int64_t n, at; /* the text and the next byte to read */
  int depth;
  char *why;
} checker;

__attribute__((format(printf, 2, 3))) static int fail(checker *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, LT_JSON_WHY_MAX, fmt, ap);
  va_end(ap);
  return 0;
}

/* The byte at i, or -1 past the end. */
static int peek(const checker *c, int64_t i) { return i < c->n ? c->s[i] : -1; }
static int is_digit(int b) { return b >= '0' && b <= '9'; }
static int is_ws(int b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
static void skip_ws(checker *c) {
  while (is_ws(peek(c, c->at))) c->at++;
}

/* "expected <what>, found <the byte at c->at>" */
static int expected(checker *c, const char *what) {
  int b = peek(c, c->at);
  if (b < 0) return fail(c, "expected %s, found the end of the header", what);
  if (b < 0x20 || b == 0x7f) return fail(c, "expected %s, found control byte 0x%02x", what, (unsigned)b);
  if (b >= 0x80) return fail(c, "expected %s, found byte 0x%02x", what, (unsigned)b);
  return fail(c, "expected %s, found '%c'", what, b);
}

static int hex_value(int b) {
  return is_digit(b) ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
}

/* The code unit of "\uXXXX" starting at i (its backslash), or -1. */
static long unicode_escape(const checker *c, int64_t i) {
  if (peek(c, i) != '\\' || peek(c, i + 1) != 'u') return -1;
  long u = 0;
  for (int k = 2; k < 6; k++) {
    int h = hex_value(peek(c, i + k));
    if (h < 0) return -1;
    u = u * 16 + h;
  }
  return u;
}

/* c->at on a backslash inside a string. */
static int escape(checker *c) {
  int e = peek(c, c->at + 1);
  if (e > 0 && e != 'u' && strchr("\"\\/bfnrt", e)) { /* e > 0: strchr finds the terminator */
    c->at += 2;
    return 1;
  }
  if (e < 0) return fail(c, "the header ends inside a string");
  if (e != 'u')
    return e >= 0x20 && e < 0x7f ? fail(c, "invalid escape '\\%c' in a string", e)
                                 : fail(c, "invalid escape: byte 0x%02x after a backslash", (unsigned)e);
  long u = unicode_escape(c, c->at);
  if (u < 0) return fail(c, "'\\u' is not followed by four hex digits");
  if (u >= 0xdc00 && u <= 0xdfff) return fail(c, "lone low surrogate \\u%04lx (no high surrogate before it)", u);
  if (u >= 0xd800 && u <= 0xdbff) {
    long lo = unicode_escape(c, c->at + 6);
    if (lo < 0xdc00 || lo > 0xdfff) return fail(c, "lone high surrogate \\u%04lx (no low surrogate after it)", u);
    c->at += 6;
  }
  c->at += 6;
  return 1;
}

/* c->at on the opening quote. */
static int string(checker *c) {
  for (c->at++;;) {
    int b = peek(c, c->at);
    if (b < 0) return fail(c, "the header ends inside a string");
    if (b == '"') break;
    if (b < 0x20) return fail(c, "raw control byte 0x%02x inside a string (JSON needs an escape)", (unsigned)b);
    if (b != '\\')
      c->at++;
    else if (!escape(c))
      return 0;
  }
  c->at++;
  return 1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(checker *c) {
  if (peek(c, c->at) == '-') c->at++;
  if (!is_digit(peek(c, c->at))) return expected(c, "a digit");
  if (peek(c, c->at) == '0' && is_digit(peek(c, c->at + 1))) {
    c->at++;
    return fail(c, "a number has a leading zero");
  }
  while (is_digit(peek(c, c->at))) c->at++;
  if (peek(c, c->at) == '.') {
    c->at++;
    if (!is_digit(peek(c, c->at))) return expected(c, "a digit after '.'");
    while (is_digit(peek(c, c->at))) c->at++;
  }
  if (peek(c, c->at) == 'e' || peek(c, c->at) == 'E') {
    c->at++;
    if (peek(c, c->at) == '+' || peek(c, c->at) == '-') c->at++;
    if (!is_digit(peek(c, c->at))) return expected(c, "a digit in the exponent");
    while (is_digit(peek(c, c->at))) c->at++;
  }
  return 1;
}

static int literal(checker *c, const char *word) {
  size_t len = strlen(word);
  if (c->n - c->at < (int64_t)len || memcmp(c->s + c->at, word, len) != 0) return expected(c, "a value");
  c->at += (int64_t)len;
  return 1;
}

static int value(checker *c);

/* Objects and arrays: c->at on the opening bracket. */
static int container(checker *c, int close) {
  if (++c->depth > LT_JSON_MAX_DEPTH) return fail(c, "nesting deeper than %d levels", LT_JSON_MAX_DEPTH);
  c->at++;
  skip_ws(c);
  if (peek(c, c->at) == close) {
    c->at++;
    c->depth--;
    return 1;
  }
  for (;;) {
    if (close == '}') {
      if (peek(c, c->at) != '"') return expected(c, "a string key");
      if (!string(c)) return 0;
      skip_ws(c);
      if (peek(c, c->at) != ':') return expected(c, "':' after the key");
      c->at++;
      skip_ws(c);
    }
    if (!value(c)) return 0;
    skip_ws(c);
    int b = peek(c, c->at);
    if (b == close) break;
    if (b != ',') return expected(c, close == '}' ? "',' or '}'" : "',' or ']'");
    c->at++;
    skip_ws(c);
  }
  c->at++;
  c->depth--;
  return 1;
}

/* c->at on the first byte of a value (whitespace already skipped). */
static int value(checker *c) {
  int b = peek(c, c->at);
  switch (b) {
  case '{': return container(c, '}');
  case '[': return container(c, ']');
  case '"': return string(c);
  case 't': return literal(c, "true");
  case 'f': return literal(c, "false");
  case 'n': return literal(c, "null");
  default: return b == '-' || is_digit(b) ? number(c) : expected(c, "a value");
  }
}

int64_t lt__json_check(const char *s, int64_t n, int64_t *end, char *why) {
  checker c = {.s = (const unsigned char *)s, .n = n, .why = why};
  skip_ws(&c);
  if (!value(&c)) return c.at;
  *end = c.at;
  return -1;
}

/* ---- the cursor: text that lt__json_check accepted ---- */

int64_t lt__json_ws(const char *s, int64_t at) {
  while (is_ws(s[at])) at++;
  return at;
}

static int64_t string_end(const char *s, int64_t at) {
  for (at++; s[at] != '"'; at++)
    if (s[at] == '\\') at++;
  return at + 1;
}

int64_t lt__json_skip(const char *s, int64_t at) {
  if (s[at] == '"') return string_end(s, at);
  if (s[at] != '{' && s[at] != '[') { /* a number or a literal: up to what follows any value */
    while (!is_ws(s[at]) && s[at] != ',' && s[at] != '}' && s[at] != ']' && s[at]) at++;
    return at;
  }
  int64_t depth = 0;
  for (;;) {
    char b = s[at];
    if (b == '"') {
      at = string_end(s, at);
      continue;
    }
    if (b == '{' || b == '[') depth++;
    if ((b == '}' || b == ']') && --depth == 0) return at + 1;
    at++;
  }
}

int lt__json_member(const char *s, int64_t *at, int64_t *key, int64_t *val) {
  if (s[*at] == '}') { /* after the last member */
    (*at)++;
    return 0;
  }
  int64_t i = lt__json_ws(s, *at + 1); /* past '{' or ',' */
  if (s[i] == '}') {                   /* an empty object */
    *at = i + 1;
    return 0;
  }
  *key = i;
  i = lt__json_ws(s, lt__json_skip(s, i)); /* on ':' */
  *val = lt__json_ws(s, i + 1);
  *at = lt__json_ws(s, lt__json_skip(s, *val)); /* on ',' or '}' */
  return 1;
}

int lt__json_element(const char *s, int64_t *at, int64_t *val) {
  if (s[*at] == ']') {
    (*at)++;
    return 0;
  }
  int64_t i = lt__json_ws(s, *at + 1);
  if (s[i] == ']') {
    *at = i + 1;
    return 0;
  }
  *val = i;
  *at = lt__json_ws(s, lt__json_skip(s, i));
  return 1;
}

static int hex4(const char *s) {
  int u = 0;
  for (int k = 0; k < 4; k++) u = u * 16 + hex_value((unsigned char)s[k]);
  return u;
}

static size_t put_utf8(char *d, unsigned long cp) {
  if (cp < 0x80) {
    d[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    d[0] = (char)(0xc0 | cp >> 6);
    d[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    d[0] = (char)(0xe0 | cp >> 12);
    d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
    d[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  d[0] = (char)(0xf0 | cp >> 18);
  d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
  d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
  d[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Every escape decodes to no more bytes than it is written with ("\u00e9" is
 * 6 bytes, "é" 2; a surrogate pair is 12, its code point 4), so dst never
 * needs more room than the raw string. */
size_t lt__json_string(const char *s, int64_t at, char *dst) {
  size_t len = 0;
  for (at++; s[at] != '"'; at++) {
    if (s[at] != '\\') {
      dst[len++] = s[at];
      continue;
    }
    char e = s[++at];
    const char *from = "bfnrt", *to = "\b\f\n\r\t", *p = strchr(from, e);
    if (e != 'u') {
      dst[len++] = p ? to[p - from] : e; /* \" \\ \/ stand for themselves */
      continue;
    }
    unsigned long cp = (unsigned long)hex4(s + at + 1);
    at += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) { /* the checker saw the low half follow */
      cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned long)hex4(s + at + 3) - 0xdc00);
      at += 6;
    }
    len += put_utf8(dst + len, cp);
  }
  dst[len] = '\0';
  return len;
}
