/* The transformer ops' binding: rope and linear_act (filled below). */
#include "binding.h"

void lt_l_open_transformer(lua_State *L) { (void)L; }
