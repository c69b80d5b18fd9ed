/* Placeholder until the runtime binding lands. */
#include "binding.h"

void lt_l_open_runtime(lua_State *L) { (void)L; }
