/* Placeholder until the autograd binding lands. */
#include "binding.h"

void lt_l_open_autograd(lua_State *L) { (void)L; }
