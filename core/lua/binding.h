/* Helpers shared by the binding's files (core/lua/). Every function registered
 * with lt_l_register gets the context userdata as upvalue 1. Positions counted
 * by Lua (axes, slice bounds) are 1-based and converted here, nowhere else;
 * data inside tensors is never shifted. */
#ifndef LATTICE_BINDING_H
#define LATTICE_BINDING_H

#include <lua.h>
#include <lauxlib.h>
#include "lattice/lattice.h"
#include "lattice/transformer.h"

#define LT_L_TENSOR "lattice.Tensor"
/* Registry field holding this state's context userdata (an lt_ctx *). */
#define LT_L_CONTEXT "lattice.context"

/* The userdata behind a lattice.Tensor: NULL after close(). */
typedef struct lt_l_tensor {
  lt_tensor *t;
} lt_l_tensor;

/* The context of this lua_State (upvalue 1 of every registered function). */
lt_ctx *lt_l_ctx(lua_State *L);

/* The tensor at `arg`, or a Lua error in Lua's own shape:
 * "bad argument #2 to 'matmul' (lattice.Tensor expected, got string)". */
lt_tensor *lt_l_checktensor(lua_State *L, int arg);
/* The tensor at `arg`, or NULL if the value is not a (live) tensor. */
lt_tensor *lt_l_totensor(lua_State *L, int arg);
/* Operands of elementwise ops: a tensor or a Lua number at `arg`, as a NEW
 * reference the caller releases once the op has run (a number becomes a 0-d
 * tensor without a Lua userdata, which keeps small ops cheap). A number takes
 * like's dtype when like is float; a Lua integer beside an integer tensor
 * keeps its value (int32 beside bool, int64 when like's type cannot hold it);
 * otherwise float32. like == NULL: float32. Raises before creating anything. */
lt_tensor *lt_l_checkoperand(lua_State *L, int arg, const lt_tensor *like);
/* Arguments i and j as operands: a number takes its dtype from the other side,
 * so `2 - t` and `t - 2` agree. Both are new references. */
void lt_l_checkpair(lua_State *L, int i, int j, lt_tensor **a, lt_tensor **b);
/* Results are made userdata first, as Lua's liolib makes files: push an empty
 * lattice.Tensor, then let the op write into it, so that an error raised in
 * between (out of memory while pushing, a bad argument) leaks nothing:
 *   lt_l_tensor *u = lt_l_newtensor(L);
 *   return lt_l_result(L, lt_exp(lt_l_ctx(L), &u->t, x));
 * lt_l_result raises the context's message on failure (the empty userdata is
 * left to the GC), else reports the new bytes to the GC and returns 1. */
lt_l_tensor *lt_l_newtensor(lua_State *L);
int lt_l_result(lua_State *L, lt_status st);
/* The same for ops with several outputs: lt_l_newlist pushes a Lua list of n
 * empty lattice.Tensors; after the op has filled ts[0..n), lt_l_fill_list
 * moves them into the list at `list` (nothing can raise in between). */
void lt_l_newlist(lua_State *L, int n);
void lt_l_fill_list(lua_State *L, int list, int n, lt_tensor **ts);
/* Tells the GC about the tensor bytes allocated since the last report, so
 * loops that drop tensors collect them at the pace they allocate. */
void lt_l_report_alloc(lua_State *L, lt_ctx *ctx);
/* Raises the context's message as a Lua error when st != LT_OK. */
void lt_l_check(lua_State *L, lt_status st);
/* lt_l_check for a message that may come from a core function beneath the one
 * the user called: a message "<core_name>: ..." is raised as "<fname>: ...". */
void lt_l_check_renamed(lua_State *L, lt_status st, const char *core_name, const char *fname);
/* lt_l_result for the creation functions: lt_tensor_new's messages ("tensor:
 * shape too large", "tensor: out of memory ...") name `fname` instead. */
int lt_l_created(lua_State *L, lt_status st, const char *fname);

/* Raises "<fname>: too many arguments (expected at most 2, got 3)" when an
 * argument past the max-th is given; trailing nils count as absent. Call it
 * before anything is pushed, and before lua_settop. */
void lt_l_checkmaxargs(lua_State *L, int max, const char *fname);
/* The length of the table at idx read as a sequence: every key an integer from
 * 1 to the length, else "<fname>: <what> is not a sequence (key 'x')" or
 * "<fname>: <what> has a hole at index 2". Unlike luaL_len, never a guess. */
lua_Integer lt_l_seqlen(lua_State *L, int idx, const char *fname, const char *what);
/* How the value at idx reads in a message: a number as itself ("3.5"), any
 * other value by its type ("string"). */
const char *lt_l_valuename(lua_State *L, int idx);

/* Axis from Lua (1-based, negative from the end) to C (0-based); a Lua error
 * "<fname>: axis 4 is out of range for 3 dimensions" when it does not exist. */
int lt_l_checkaxis(lua_State *L, int arg, int ndim, const char *fname);
int lt_l_optaxis(lua_State *L, int arg, int ndim, const char *fname, int def0);
/* nil: 0 axes (meaning all); a number or a table of numbers: their count. */
int lt_l_checkaxes(lua_State *L, int arg, int ndim, int *axes, const char *fname);
/* A Lua axis number to C's 0-based one; -1 when out of range. */
int lt_l_axis_from_lua(lua_Integer axis, int ndim);

/* A dtype name at `arg`; an unknown name is an argument error that lists the
 * known ones. */
lt_dtype lt_l_checkdtype(lua_State *L, int arg);
lt_dtype lt_l_optdtype(lua_State *L, int arg, lt_dtype def);
/* The dtype called `name` (from an options table), else "<fname>: unknown
 * dtype 'x'; known dtypes: ...". */
lt_dtype lt_l_dtype_named(lua_State *L, const char *name, const char *fname);
/* An ISA name ("scalar", "avx2", "avx512") at arg, for the specs' hooks that
 * run one ISA's kernels (elementwise.c). */
lt_isa lt_l_checkisa(lua_State *L, int arg, const char *fname);
/* A spec hook `fname(x, isa) -> y, the ISA used` over a kernel of one
 * tensor run with one ISA's variant (lowered to what the CPU has). */
typedef lt_status (*lt_l_isa_kernel)(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_isa isa, lt_isa *used);
int lt_l_isa_hook(lua_State *L, lt_l_isa_kernel kernel, const char *fname);
/* A shape table {2, 3} or a lone number (1-D) at `arg`; returns ndim. */
int lt_l_checkshape(lua_State *L, int arg, int64_t *shape, const char *fname);
/* The shape table at `arg`, each element an integer of at least `min`
 * (reshape allows -1); an error names the element: "shape[2] must be ...". */
int lt_l_readshape(lua_State *L, int arg, int64_t *shape, lua_Integer min, const char *fname);
/* Pushes a shape as a Lua sequence. */
void lt_l_pushshape(lua_State *L, int ndim, const int64_t *shape);

/* Options tables: an error names any key not in `allowed` (NULL-terminated).
 * nil or none at `arg` is an empty table. */
void lt_l_checkoptions(lua_State *L, int arg, const char *fname, const char *const *allowed);
lua_Number lt_l_optnumberfield(lua_State *L, int arg, const char *key, lua_Number def);
lua_Integer lt_l_optintegerfield(lua_State *L, int arg, const char *key, lua_Integer def);
const char *lt_l_optstringfield(lua_State *L, int arg, const char *key, const char *def);
int lt_l_optbooleanfield(lua_State *L, int arg, const char *key, int def);

/* Registers `fns` into the table at the top of the stack, each with the
 * context userdata as upvalue 1. */
void lt_l_register(lua_State *L, const luaL_Reg *fns);
/* Pushes the context userdata. */
void lt_l_pushctx(lua_State *L);

/* Each area's binding file fills the module table at the top of the stack. */
void lt_l_open_tensor(lua_State *L);      /* tensor.c: type, creation, layout */
void lt_l_open_random(lua_State *L);      /* random.c */
void lt_l_open_elementwise(lua_State *L); /* elementwise.c: unary, binary, where, clip */
void lt_l_open_reduce(lua_State *L);      /* reduce.c: reductions, arg*, softmax */
void lt_l_open_linalg(lua_State *L);      /* linalg.c: matmul, norms */
void lt_l_open_index(lua_State *L);       /* index.c: take, gather, embedding, losses */
void lt_l_open_autograd(lua_State *L);    /* autograd.c */
void lt_l_open_io(lua_State *L);          /* io.c: safetensors */
void lt_l_open_runtime(lua_State *L);     /* runtime.c: threads, blas_info, memory, now */
void lt_l_open_optim(lua_State *L);       /* optim.c: fused optimizer steps */
void lt_l_open_tokens(lua_State *L);      /* tokens.c: tokenizer kernels, lattice.Pieces */
void lt_l_open_json(lua_State *L);        /* json.c: lattice.json */
void lt_l_open_fs(lua_State *L);          /* fs.c: isatty, directories written whole */
void lt_l_open_config(lua_State *L);      /* config.c: BlockConfig, ModelConfig */
void lt_l_open_transformer(lua_State *L); /* transformer.c: rope, linear_act */
void lt_l_open_attention(lua_State *L);   /* attention.c: scaled_dot_product_attention */
void lt_l_open_sample(lua_State *L);      /* sample.c: the token choosers behind lattice.sample, topk */
void lt_l_open_kernels(lua_State *L);     /* kernels.c: microkernel test hooks (ggemm_with_isa, ...) */

/* The config at `arg`, or Lua's own type error
 * ("bad argument #1 to 'f' (lattice.BlockConfig expected, got table)"). */
const lt_block_config *lt_l_checkblockconfig(lua_State *L, int arg);
const lt_model_config *lt_l_checkmodelconfig(lua_State *L, int arg);

#endif
