/* What every file of the core shares: the alignment of buffers, the assertion
 * for lattice's own bugs, and the shape helpers. No types of the core's areas
 * live here; each area has its own header (tensor/internal.h, autograd/tape.h,
 * runtime/context.h, runtime/parallel.h, ops/internal.h). */
#ifndef LATTICE_BASE_H
#define LATTICE_BASE_H

#include <stddef.h>
#include <stdint.h>
#include "lattice/lattice.h"

#define LT_ALIGN 64

/* Only for lattice's own bugs, never for input a user can pass. */
#define LT_ASSERT(c) ((c) ? (void)0 : lt__assert_fail(#c, __FILE__, __LINE__))
void lt__assert_fail(const char *cond, const char *file, int line);

int64_t lt__numel(int ndim, const int64_t *shape);
/* Normalises a possibly negative axis; returns -1 when out of range. */
int lt__axis(int axis, int ndim);
/* Formats a shape as "{2,3}" into buf. */
const char *lt__shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
#define LT_SHAPE_STR_MAX 200

#endif
