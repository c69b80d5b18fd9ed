/* Every call into OpenBLAS as one step with the calling state's thread count.
 *
 * OpenBLAS keeps a single thread count for the whole process. A state that
 * set it and then called sgemm could find it changed by another state in
 * between, and multiply with that state's count: another summation order,
 * other bits. So each BLAS call sits between lt__blas_begin and lt__blas_end,
 * which hold a process-wide lock with the count set to the context's:
 *
 *   lt__blas_begin(ctx);
 *   cblas_sgemm(...);
 *   lt__blas_end();
 *
 * Nothing in between may raise (longjmp) or return early, and the pair does
 * not nest. BLAS calls of different states run one after the other; OpenBLAS
 * 0.3.21 serialises threaded calls itself (docs/runtime.md), so little is lost. */
#ifndef LATTICE_RUNTIME_BLAS_CALL_H
#define LATTICE_RUNTIME_BLAS_CALL_H

#include "lattice/ctx.h"

void lt__blas_begin(const lt_ctx *ctx);
void lt__blas_end(void);

/* The thread count OpenBLAS uses for ctx's next call: the context's, capped
 * at OpenBLAS's own maximum (MAX_THREADS of its build). */
int lt__blas_threads_for(const lt_ctx *ctx);

#endif
