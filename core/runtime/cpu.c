#include <stdatomic.h>
#include <stdio.h>
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

/* A LATTICE_ISA that names no ISA is most likely a typo that would otherwise
 * go unnoticed (the kernels simply run at the CPU's best), so it is reported
 * on stderr, once per process: the variable belongs to the process, and this
 * runs for every new context, so a host with many states hears it once. */
static void warn_unknown(const char *env, lt_isa best) {
  static atomic_flag warned = ATOMIC_FLAG_INIT;
  if (atomic_flag_test_and_set(&warned)) return;
  fprintf(stderr, "lattice: ignoring LATTICE_ISA='%s' (expected scalar, avx2 or avx512); using %s\n", env,
          lt_isa_name(best));
}

lt_isa lt_cpu_isa(void) {
  lt_isa best = detect();
  const char *env = getenv("LATTICE_ISA");
  if (!env || !*env) return best; /* unset or empty: the CPU's best */
  for (int i = LT_ISA_SCALAR; i <= LT_ISA_AVX512; i++)
    if (strcmp(env, lt_isa_name((lt_isa)i)) == 0) return (lt_isa)i < best ? (lt_isa)i : best; /* never above the CPU */
  warn_unknown(env, best);
  return best;
}

int lt_cpu_avx512_vbmi2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
         __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bitalg") &&
         __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
}

const char *lt_isa_name(lt_isa isa) {
  static const char *const names[] = {"scalar", "avx2", "avx512"};
  return names[isa];
}
