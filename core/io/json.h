/* Private to core/io: strict JSON (RFC 8259) for safetensors headers.
 *
 * lt__json_check reads the text once and stops at the first byte the grammar
 * forbids: control bytes outside strings (NUL included; only space, tab, CR
 * and LF are whitespace), raw control characters inside strings, escapes
 * other than \" \\ \/ \b \f \n \r \t \uXXXX, a \u escape that is not four hex
 * digits, a surrogate escape that is not a high one followed by a low one,
 * numbers outside the grammar (01, 1., .5, +1, NaN), nesting past
 * LT_JSON_MAX_DEPTH. \u0000 is valid JSON and passes here; the reader refuses
 * it wherever a string becomes a name, a dtype or metadata.
 *
 * The cursor functions below it walk text the checker has accepted, so they
 * check nothing and never run past the value they are given. Positions are
 * byte indices into the text. */
#ifndef LATTICE_IO_JSON_H
#define LATTICE_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

/* serde_json, which the reference implementation uses, stops at 128 too. */
#define LT_JSON_MAX_DEPTH 128
#define LT_JSON_WHY_MAX   96

/* Checks that s[0..n) starts with one JSON value (after optional whitespace).
 * Returns -1 and sets *end to the index just past the value when it does;
 * otherwise returns the index of the offending byte (n when the text ends
 * early) and writes the reason into why[LT_JSON_WHY_MAX]. s must be valid
 * UTF-8. */
int64_t lt__json_check(const char *s, int64_t n, int64_t *end, char *why);

/* Index of the first byte at or after `at` that is not whitespace. */
int64_t lt__json_ws(const char *s, int64_t at);
/* Index just past the value that starts at `at`. */
int64_t lt__json_skip(const char *s, int64_t at);
/* Steps through an object: *at starts on its '{'. Each call returns 1 with
 * the member's key (a string) at *key and its value at *val, or 0 once the
 * object is done; *at then lies just past the '}'. */
int lt__json_member(const char *s, int64_t *at, int64_t *key, int64_t *val);
/* The same for the elements of an array whose '[' is at *at. */
int lt__json_element(const char *s, int64_t *at, int64_t *val);
/* Decodes the string that starts at `at` (its opening quote) into dst, which
 * needs room for its raw length, and NUL-terminates it. Returns the decoded
 * length, which counts any \u0000 inside: strlen(dst) is shorter then. */
size_t lt__json_string(const char *s, int64_t at, char *dst);

#endif
