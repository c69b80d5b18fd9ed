/* Placeholder until the index binding lands. */
#include "binding.h"

void lt_l_open_index(lua_State *L) { (void)L; }
