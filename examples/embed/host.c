/* Placeholder until the embedding example lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "embed: not implemented yet\n"); return 1; }
