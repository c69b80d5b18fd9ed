/* Private to core/io: what the safetensors reader and writer share.
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * unsigned header length N, N bytes of UTF-8 JSON, then the data buffer.
 * lattice targets little-endian hosts only (x86_64): tensor bytes go to and
 * from the file unchanged. A big-endian port would byte-swap here. */
#ifndef LATTICE_IO_SAFETENSORS_H
#define LATTICE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lattice's safetensors I/O assumes a little-endian host"
#endif

/* The reference implementation refuses headers past 100 MB; so do we, which
 * also bounds what a hostile file can make us allocate before validation. */
#define LT_ST_MAX_HEADER 100000000LL
/* At most this many tensors, and as many metadata entries, in one file: a
 * tensor costs ~600 bytes and a few microseconds to create even when empty,
 * so a hostile header stays under ~100 MB and half a second beyond its own
 * size. Sharded checkpoints hold a few thousand tensors per file. */
#define LT_ST_MAX_TENSORS  131072 /* 2^17 */
#define LT_ST_MAX_METADATA 131072

/* Index of the first byte that breaks UTF-8 (overlongs, surrogates and code
 * points past U+10FFFF included), or -1 when all n bytes are valid. */
int64_t lt__utf8_invalid_at(const char *s, size_t n);

/* Sorts the n strings in place (byte order) and returns 1 with *dup set when
 * two are equal, else 0. */
int lt__find_duplicate(const char **names, int64_t n, const char **dup);

#endif
