/* Placeholder until the elementwise binding lands. */
#include "binding.h"

void lt_l_open_elementwise(lua_State *L) { (void)L; }
