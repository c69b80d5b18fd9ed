#include <stdlib.h>
#include "lattice/blas.h"

/* Declared by OpenBLAS's cblas.h; repeated here to keep the header out of our API. */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
int openblas_get_parallel(void);

lt_blas_info lt_blas_get_info(void) {
  static const char *const parallel[] = {"sequential", "pthreads", "openmp"};
  int p = openblas_get_parallel();
  return (lt_blas_info){
      .core = openblas_get_corename(),
      .config = openblas_get_config(),
      .num_threads = openblas_get_num_threads(), /* process-wide: the last call's; Lua's blas_info gives the state's */
      .parallel = (p >= 0 && p <= 2) ? parallel[p] : "unknown",
      .coretype_env = getenv("OPENBLAS_CORETYPE"),
  };
}
