/* The exp kernel written once over the primitives of the simd_*.h header the
 * including file chose; LT_EXP_SHIFT names the function to define. The tail
 * goes through a zero-padded vector, so every element gets the same math. */
#include <string.h>
#include "kernels/simd_math.h"

void LT_EXP_SHIFT(float *y, const float *x, float shift, int64_t n) {
  vf s = vset(shift);
  int64_t i = 0;
  for (; i + LT_W <= n; i += LT_W) vstore(y + i, v_exp(vsub(vload(x + i), s)));
  if (i < n) {
    float buf[LT_W] = {0};
    memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
    vstore(buf, v_exp(vsub(vload(buf), s)));
    memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
  }
}
