/* Placeholder until the random binding lands. */
#include "binding.h"

void lt_l_open_random(lua_State *L) { (void)L; }
