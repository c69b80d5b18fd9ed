/* Built-in modules as userdata types (core/lua/nn_module.c, nn_layers.c).
 *
 * A built-in module is a userdata holding its type's C struct (the config its
 * forward reads: eps, p, an activation's op) whose uservalue 1 is its fields
 * table: parameters by name (weight, bias, running_mean, ...), `training`,
 * read-only config values for Lua (input_dims, eps, ...) and the protocol's
 * private fields (names starting with "_"). The forward reads its parameters
 * from that table on every call, so the module protocol of lua/lattice/nn
 * (which reads and writes the table through lattice.core.nn.fields) works on
 * built-ins and Lua modules alike. Assignment from Lua goes through
 * __newindex, which checks it. */
#ifndef LATTICE_NN_MODULE_H
#define LATTICE_NN_MODULE_H

#include "binding.h"

typedef struct lt_l_module_type {
  const char *name;          /* "Linear": metatable "lattice.nn.Linear" */
  size_t size;               /* its C struct */
  lua_CFunction forward;     /* forward(m, x, ...) */
  const char *const *params; /* its tensor fields, in order (NULL-terminated) */
  const luaL_Reg *methods;   /* type-specific methods, or NULL */
} lt_l_module_type;

/* Registers the type: its metatable, and its methods table at
 * lattice.core.nn.methods[name] (the Lua protocol adds its methods there).
 * Expects lattice.core.nn at the top of the stack. */
void lt_l_module_register(lua_State *L, const lt_l_module_type *type);

/* new(fields): a module of `type` whose fields table is the table at `arg`;
 * returns its C struct (zeroed) for the constructor to fill. The userdata is
 * left on the stack. */
void *lt_l_module_new(lua_State *L, const lt_l_module_type *type, int arg);

/* The type of the built-in module at arg, or NULL when it is none. */
const lt_l_module_type *lt_l_module_type_of(lua_State *L, int arg);
/* The C struct of the module at arg, which must be of `type`. */
void *lt_l_module_check(lua_State *L, int arg, const lt_l_module_type *type);

/* Pushes field `key` of the module at arg (raw, from its fields table) and
 * returns its Lua type. */
int lt_l_module_field(lua_State *L, int arg, const char *key);
/* The tensor in field `key` (a Lua error naming the module when it is missing
 * or not a tensor), or NULL when `optional` and the field is nil. Leaves
 * nothing on the stack (the fields table keeps the tensor alive). */
lt_tensor *lt_l_module_tensor(lua_State *L, int arg, const char *key, int optional);
/* The input at arg 2 of a forward, `what` in messages ("x", "ids"): a tensor,
 * or when `sparse` a SparseTensor's features; else an error naming the module
 * `type` (through __call, Lua's own argument error would name no function). */
lt_tensor *lt_l_module_input(lua_State *L, const char *type, const char *what, int sparse);
/* Field `training` (true unless set to false). */
int lt_l_module_training(lua_State *L, int arg);
/* Sets field `key` of the module at arg to the value at the top (popped). */
void lt_l_module_setfield(lua_State *L, int arg, const char *key);

/* A number field of the options table at arg checked to [lo, hi]. */
double lt_l_module_number(lua_State *L, int arg, const char *key, double lo, double hi, const char *type);

/* Fills lattice.core.nn (at the top of the stack) with `methods` and `fields`. */
void lt_l_module_open(lua_State *L);

void lt_l_open_nn(lua_State *L);        /* nn_layers.c: lattice.core.nn */
void lt_l_open_nn_sparse(lua_State *L); /* nn_sparse.c: the sparse conv modules, into lattice.core.nn */

#endif
