/* Run-time SIMD dispatch: lattice's own kernels pick AVX-512, AVX2 or scalar
 * from the CPU's features; LATTICE_ISA=scalar|avx2|avx512 forces a lower one. */
#ifndef LATTICE_CPU_H
#define LATTICE_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_isa { LT_ISA_SCALAR = 0, LT_ISA_AVX2 = 1, LT_ISA_AVX512 = 2 } lt_isa;

/* The best ISA this CPU supports, lowered by LATTICE_ISA if set. */
lt_isa lt_cpu_isa(void);
const char *lt_isa_name(lt_isa isa);
/* Whether the CPU adds AVX-512 VBMI and VBMI2 (byte and word permutes,
 * compress and expand), VPOPCNTDQ (a popcount a lane), BITALG (a bit
 * shuffle) and BMI2 to LT_ISA_AVX512 (Ice Lake, Zen 4 and later), for the
 * kernels that use them. */
int lt_cpu_avx512_vbmi2(void);

#ifdef __cplusplus
}
#endif

#endif
