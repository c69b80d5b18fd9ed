/* Placeholder until the lattice command lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "lattice: not implemented yet\n"); return 1; }
