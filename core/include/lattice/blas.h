/* What OpenBLAS reports about itself; lattice never overrides OPENBLAS_CORETYPE. */
#ifndef LATTICE_BLAS_H
#define LATTICE_BLAS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_blas_info {
  const char *core;   /* kernel family OpenBLAS chose, e.g. "Cooperlake" or "Haswell" */
  const char *config; /* build configuration string */
  int num_threads;
  const char *parallel;     /* "pthreads", "openmp" or "sequential" */
  const char *coretype_env; /* OPENBLAS_CORETYPE, or NULL */
} lt_blas_info;

lt_blas_info lt_blas_get_info(void);

#ifdef __cplusplus
}
#endif

#endif
