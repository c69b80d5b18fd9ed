/* What the quantization binding files share (quant.c, nn_quant.c) and what
 * linalg.c's lattice.linear reads. */
#ifndef LATTICE_QUANT_BINDING_H
#define LATTICE_QUANT_BINDING_H

#include "binding.h"

#define LT_L_QWEIGHT "lattice.QuantizedWeight"

/* The QuantizedWeight at arg as a descriptor of its (borrowed) tensors: 1 and
 * *qw filled, or 0 when the value is none. A closed part is a Lua error. */
int lt_l_toqweight(lua_State *L, int arg, lt_qweight *qw);
/* Pushes a QuantizedWeight of the tensors at stack indices w, scales and
 * biases (0: none) with that configuration, after lt_qweight_check (its
 * message names fname). The tensors are shared, not copied. */
void lt_l_pushqweight_of(lua_State *L, int w, int scales, int biases, int bits, int group_size, lt_quant_mode mode,
                         const char *fname);
/* The mode called `name`, or "<fname>: mode must be 'affine', 'mxfp8' or 'nvfp4', got 'x'". */
lt_quant_mode lt_l_quant_mode(lua_State *L, const char *name, const char *fname);

void lt_l_open_quant(lua_State *L);    /* quant.c: QuantizedWeight, quantize_weight, dequantize, ... */
void lt_l_open_nn_quant(lua_State *L); /* nn_quant.c: the quantized modules, into lattice.core.nn */

#endif
