/* The machine's limits that benchmarks state their fraction of: the fp32 FMA
 * peak of a register-only kernel, and the bandwidth of a plain memcpy. */
#ifndef LATTICE_PEAK_H
#define LATTICE_PEAK_H

#include <stddef.h>
#include "lattice/cpu.h"
#include "lattice/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GFLOP/s of fp32 multiply-adds with `isa`'s widest vectors (scalar: one lane,
 * separate multiply and add) on `threads` OpenMP threads for about `seconds`.
 * Returns a negative value when lt_cpu_isa() does not allow `isa`. */
double lt_peak_gflops(lt_isa isa, int threads, double seconds);

/* The median wall time of one memcpy of `nbytes`, split over the context's
 * threads, over `reps` copies between two buffers from the context's
 * allocator (touched before timing). */
lt_status lt_peak_memcpy(lt_ctx *ctx, size_t nbytes, int reps, double *seconds);

#ifdef __cplusplus
}
#endif

#endif
