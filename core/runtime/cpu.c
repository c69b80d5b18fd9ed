#include <stdlib.h>
#include <string.h>
#include "lattice/cpu.h"

static lt_isa detect(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return LT_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LT_ISA_AVX2;
  return LT_ISA_SCALAR;
}

lt_isa lt_cpu_isa(void) {
  lt_isa best = detect();
  const char *env = getenv("LATTICE_ISA");
  if (!env) return best;
  lt_isa want = best;
  if (strcmp(env, "scalar") == 0)
    want = LT_ISA_SCALAR;
  else if (strcmp(env, "avx2") == 0)
    want = LT_ISA_AVX2;
  else if (strcmp(env, "avx512") == 0)
    want = LT_ISA_AVX512;
  return want < best ? want : best; /* never more than the CPU has */
}

const char *lt_isa_name(lt_isa isa) {
  static const char *const names[] = {"scalar", "avx2", "avx512"};
  return names[isa];
}
