/* What the sparse binding files share (sparse.c, sparse_ops.c, relation.c). */
#ifndef LATTICE_SPARSE_BINDING_H
#define LATTICE_SPARSE_BINDING_H

#include "binding.h"

#define LT_L_KEY    "lattice.CoordinateMapKey"
#define LT_L_SPARSE "lattice.SparseTensor"

/* The map of the key at arg, or NULL when it is not a key. */
lt_coords *lt_l_tokey(lua_State *L, int arg);
/* Pushes a key owning the reference c. */
void lt_l_pushkey(lua_State *L, lt_coords *c);
int lt_l_issparse(lua_State *L, int arg);
void lt_l_checksparse(lua_State *L, int arg);
/* The map and the features of the SparseTensor at arg (borrowed). */
lt_coords *lt_l_sparse_coords(lua_State *L, int arg);
lt_tensor *lt_l_sparse_feats(lua_State *L, int arg);
/* Pushes the batch counts of the SparseTensor at arg (a list, or nil). */
void lt_l_push_sparse_counts(lua_State *L, int arg);
/* Pushes a SparseTensor of the key, features and counts (nil or a list) at those indices. */
void lt_l_pushsparse(lua_State *L, int key, int feats, int counts);
/* Pushes the list of the rows of each batch 0 .. batches-1 of the map; returns
 * -1, or the first row (0-based) whose batch is not below `batches`. */
int64_t lt_l_push_batch_counts(lua_State *L, const lt_coords *c, lua_Integer batches);
/* How the value at i reads in a message: its __name ("lattice.Tensor"), else
 * its Lua type. */
const char *lt_l_type_name(lua_State *L, int i);
/* The number of batch counts of the SparseTensor at arg, -1 when it has none. */
lua_Integer lt_l_sparse_batches(lua_State *L, int arg);
/* lt_l_push_batch_counts, or nil (returning -1) when batches < 0. */
int64_t lt_l_push_counts_for(lua_State *L, const lt_coords *c, lua_Integer batches);
/* Pushes a SparseTensor with the key and batch counts of the one at `like`
 * and the features at `feats` (not checked: the caller made them). */
void lt_l_push_with_feats(lua_State *L, int like, int feats);
/* Three positive integers from a number or a list of 3 at arg (default 1). */
void lt_l_checkstride(lua_State *L, int arg, int *stride, const char *fname, const char *what);

/* Pushes the SparseTensor conv(x) for the SparseTensor at xarg (sparse_ops.c)
 * with the dense weight w, or the quantized weight qw when w is NULL;
 * target_arg: nil, a SparseTensor, a key or coordinates. */
int lt_l_sparse_conv_push(lua_State *L, lt_relation_kind kind, int xarg, lt_tensor *w, const lt_qweight *qw,
                          lt_tensor *bias, const lt_kernel_spec *spec, int target_arg, const char *op);

void lt_l_open_sparse(lua_State *L);     /* sparse.c: SparseTensor, CoordinateMapKey */
void lt_l_open_sparse_ops(lua_State *L); /* sparse_ops.c: relations and convolutions */
/* lattice.core.sparse, the entry points of the other sparse families (made by
 * the first of these to run), and the modules they add to lattice.core.nn: */
void lt_l_open_sparse_pool(lua_State *L);    /* sparse_pool.c: pooling, the pooling modules */
void lt_l_open_sparse_algebra(lua_State *L); /* sparse_algebra.c: joins, SparseTensor arithmetic */
void lt_l_open_sparse_rows(lua_State *L);    /* sparse_rows.c: row subsets, ordering, occupancy */
void lt_l_open_sparse_voxel(lua_State *L);   /* sparse_voxel.c: quantizing, voxelize, devoxelize */
void lt_l_open_sparse_coords(lua_State *L);  /* sparse_coords.c: set operations, lookups, orders, dense grids */
/* Pushes lattice.core.sparse (lattice.core at the top of the stack), making it. */
void lt_l_sparse_table(lua_State *L);

#endif
