/* Placeholder until the reduce binding lands. */
#include "binding.h"

void lt_l_open_reduce(lua_State *L) { (void)L; }
