/* libFuzzer target for the safetensors reader. Each input becomes a file (a
 * memfd, reached as /proc/self/fd/N, so no disk is touched) and goes through
 * the public lt_safetensors_load, as a user's file would. Besides the
 * sanitizers' own checks it asserts what the reader promises:
 *   - a failure leaves *out NULL and a message "load_safetensors: <path>: ...";
 *   - a success returns tensors whose bytes tile the data buffer exactly (so
 *     their sizes add up to it), each byte readable, BOOLs 0 or 1, and names
 *     and metadata that are C strings.
 * Build and run: see fuzz/README.md (ctest runs it for 20 s). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "lattice/lattice.h"

#define CHECK(c)                                                                \
  do {                                                                          \
    if (!(c)) {                                                                 \
      fprintf(stderr, "safetensors_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* A memory file holding the input, or -1. */
static int memory_file(const uint8_t *data, size_t size) {
  int fd = memfd_create("safetensors_fuzz", MFD_CLOEXEC);
  for (size_t done = 0; fd >= 0 && done < size;) {
    ssize_t put = write(fd, data + done, size - done);
    if (put <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)put;
  }
  return fd;
}

/* The data buffer's length as the input's own header length gives it. */
static uint64_t data_len(const uint8_t *data, size_t size) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
  return size - 8 - n;
}

static void check_loaded(const lt_safetensors *st, const uint8_t *data, size_t size) {
  uint64_t total = 0;
  for (int i = 0; i < st->n; i++) {
    const lt_tensor *t = st->tensors[i].tensor;
    CHECK(st->tensors[i].name && t);
    size_t bytes = (size_t)lt_tensor_size(t) * lt_dtype_info(lt_tensor_dtype(t))->size;
    const uint8_t *p = lt_tensor_data(t);
    unsigned sum = 0;
    for (size_t k = 0; k < bytes; k++) sum |= p[k];
    if (lt_tensor_dtype(t) == LT_BOOL) CHECK(sum <= 1);
    total += bytes;
  }
  for (int i = 0; i < st->nmeta; i++) CHECK(strlen(st->meta[i].key) + strlen(st->meta[i].value) < size);
  CHECK(total == data_len(data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memory_file(data, size);
  CHECK(fd >= 0);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lt_ctx *ctx = lt_ctx_new();
  CHECK(ctx);
  lt_safetensors *st = (lt_safetensors *)&st; /* not NULL: the reader must set it */
  if (lt_safetensors_load(ctx, path, &st) == LT_OK) {
    CHECK(st);
    check_loaded(st, data, size);
  } else {
    char prefix[96];
    snprintf(prefix, sizeof prefix, "load_safetensors: %s: ", path);
    CHECK(st == NULL);
    CHECK(strncmp(lt_ctx_error(ctx), prefix, strlen(prefix)) == 0);
  }
  lt_safetensors_free(st);
  lt_ctx_release(ctx);
  close(fd);
  return 0;
}
