/* Placeholder until the io binding lands. */
#include "binding.h"

void lt_l_open_io(lua_State *L) { (void)L; }
