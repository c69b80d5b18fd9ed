/* Placeholder until the linalg binding lands. */
#include "binding.h"

void lt_l_open_linalg(lua_State *L) { (void)L; }
