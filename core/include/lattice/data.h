/* Tokenizer kernels: text (bytes) to token ids and back. Ids are int32,
 * 0-based, as the reference projects store them.
 *
 * Characters: a text reads as UTF-8 characters (RFC 3629: shortest forms,
 * no surrogates, at most U+10FFFF); a byte that does not begin a valid
 * character is a character of its own, a raw byte. A character's key is its
 * code point, or LT_CHAR_RAW_BYTE + b for the raw byte b, so every byte
 * string splits one way and its characters join back to the same bytes.
 *
 * Byte-level BPE: the base vocabulary is the 256 byte values; merge i (0-based)
 * makes id 256 + i from an adjacent pair of ids. Training counts every
 * adjacent pair of the text (overlapping ones too: "aaa" holds (a, a) twice),
 * takes the most frequent pair (ties: the smallest left id, then the smallest
 * right id), replaces its occurrences from left to right without overlap, and
 * repeats. Encoding applies the merges in their order, each from left to right,
 * which gives the training text the ids training ended with. Errors start
 * with the operation ("encode: ", "decode: ", "vocab: ", "train: "), which
 * callers rename after the tokenizer. */
#ifndef LATTICE_DATA_H
#define LATTICE_DATA_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LT_CHAR_RAW_BYTE 0x110000

/* ids (n) int32: the byte values of text. */
lt_status lt_bytes_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n);

/* keys (V) int32: the distinct character keys of text, ascending. */
lt_status lt_chars_vocab(lt_ctx *ctx, lt_tensor **keys, const uint8_t *text, int64_t n);
/* ids (n_chars) int32: each character's position in `keys` (1-D, int32,
 * ascending, distinct). A character not in keys is an error naming its byte
 * offset. */
lt_status lt_chars_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n, const lt_tensor *keys);

/* Decoding joins pieces: piece k is bytes[offsets[k] .. offsets[k+1]), for
 * k < npieces (offsets non-decreasing, offsets[0] = 0). The size of the
 * joined text of ids (any integer dtype and shape, read in row-major order),
 * checking every id lies in [0, npieces). */
lt_status lt_tokens_decoded_size(lt_ctx *ctx, int64_t *size, const lt_tensor *ids, const int64_t *offsets,
                                 int64_t npieces);
/* Writes the joined text into dst (room for the size above). */
lt_status lt_tokens_decode(lt_ctx *ctx, uint8_t *dst, const lt_tensor *ids, const int64_t *offsets,
                           const uint8_t *bytes);

/* merges (M, 2) int32, M <= max_merges: fewer when no pair occurs at least
 * min_frequency (>= 1) times. */
lt_status lt_bpe_train(lt_ctx *ctx, lt_tensor **merges, const uint8_t *text, int64_t n, int64_t max_merges,
                       int64_t min_frequency);
/* Checks merges for use: (M, 2) integers, merge i's ids below 256 + i, no
 * pair twice. */
lt_status lt_bpe_check_merges(lt_ctx *ctx, const lt_tensor *merges);
/* ids int32 of text under merges (checked as above). */
lt_status lt_bpe_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n, const lt_tensor *merges);

#ifdef __cplusplus
}
#endif

#endif
