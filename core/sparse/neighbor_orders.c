/* The orders of a Morton-sorted map's rows around a query brick
 * (sparse/neighbor_shells.h, lt_shell_order): which pattern a brick's
 * neighbourhood has, and for each pattern each shell's positions in the
 * order of their source rows.
 *
 * A brick's Morton digits on one axis are u = floor(v / 4) + 2^18 (the
 * code's offset of 2^20, over 4). The brick before it on that axis differs
 * from it first (from the top) at bit ctz(u), the one after it at the count
 * of u's trailing ones, and the two around it at the higher of these; one of
 * them is bit 0, by u's low bit. Two of the 27 bricks compare as their
 * digits at the highest bit where they differ, z before y before x within a
 * bit (lt_morton_encode). So their order is fixed by the three low bits and
 * by the order of the axes by (that other bit, z y x): 8 times 6 patterns. */
#include "lattice/sparse_order.h"
#include "sparse/neighbor_shells.h"

/* The order of three distinct numbers s[0..2] as one of 0..5. */
static int order_of(const int s[3]) {
  static const int8_t by_compares[8] = {0, 1, -1, 2, 3, -1, 4, 5}; /* 2 and 5 would be cycles */
  return by_compares[(s[0] > s[1]) | (s[0] > s[2]) << 1 | (s[1] > s[2]) << 2];
}

int lt__shell_pattern(const int32_t *key) {
  int low = 0, s[3];
  for (int a = 0; a < 3; a++) {
    uint32_t u = (uint32_t)key[a + 1] + (1u << 18), run = u & 1 ? ~u : u; /* its trailing ones or zeros */
    low = low << 1 | (int)(u & 1);
    s[a] = (run ? __builtin_ctz(run) : 32) * 4 + a; /* a: 0 x, 1 y, 2 z, which wins a tie */
  }
  return low * 6 + order_of(s);
}

/* Place of each of the 27 bricks around `key` in Morton order: by the code of each brick's first cell. */
static void places_of(const int32_t *key, uint8_t place[32]) {
  uint64_t code[27];
  for (int b = 0; b < 27; b++)
    code[b] = lt_morton_encode(4 * (key[1] + b / 9 - 1), 4 * (key[2] + b / 3 % 3 - 1), 4 * (key[3] + b % 3 - 1));
  for (int b = 0; b < 27; b++) {
    int below = 0;
    for (int o = 0; o < 27; o++) below += code[o] < code[b];
    place[b] = (uint8_t)below;
  }
  for (int b = 27; b < 32; b++) place[b] = (uint8_t)b;
}

/* The positions of a query in cell c, shell by shell, by their sources'
 * brick and Morton cell (code & ~63 | Morton cell: an insertion sort, a
 * shell spans at most 64 positions); group[d][b] the first of shell d's
 * in brick b or past it (b = 28: the shell's end); bricks[d] the bricks
 * shell d has positions in. */
typedef struct cell_groups {
  int16_t sorted[LT_SHELL_PADDED];
  int16_t group[LT_SHELL_D2 + 1][29];
  uint32_t bricks[LT_SHELL_D2 + 1];
} cell_groups;

static void groups_of(const lt_shell_table *t, int c, cell_groups *g) {
  for (int d = 0; d <= LT_SHELL_D2; d++) {
    int first = t->first[d], n = t->first[d + 1] - first, key[64];
    for (int i = 0; i < n; i++) {
      int code = t->code[c][first + i], k = (code & ~63) | lt__morton_cell(code & 63), j = i;
      for (; j > 0 && key[j - 1] > k; j--) key[j] = key[j - 1], g->sorted[first + j] = g->sorted[first + j - 1];
      key[j] = k, g->sorted[first + j] = (int16_t)(first + i);
    }
    g->bricks[d] = 0;
    for (int b = 0, i = 0; b <= 28; b++) {
      while (i < n && key[i] >> 6 < b) i++;
      g->group[d][b] = (int16_t)(first + i);
      if (b > 0 && g->group[d][b] > g->group[d][b - 1]) g->bricks[d] |= 1u << (b - 1);
    }
  }
}

/* perm of a query in cell c (its groups) for the order `place` (brick_at:
 * its inverse): each shell's positions brick by brick in that order, each
 * brick's in Morton cell order, then the pads after it (brick 27, place
 * 27); the tail as it is. */
static void perm_of(const lt_shell_table *t, const cell_groups *g, const uint8_t place[32], const uint8_t brick_at[32],
                    uint8_t perm[LT_SHELL_PADDED]) {
  for (int p = t->first[LT_SHELL_D2 + 1]; p < LT_SHELL_PADDED; p++) perm[p] = (uint8_t)(p & 63);
  for (int d = 0, out = 0; d <= LT_SHELL_D2; d++) {
    uint32_t placed = 0;
    for (uint32_t m = g->bricks[d]; m; m &= m - 1) placed |= 1u << place[__builtin_ctz(m)];
    for (; placed; placed &= placed - 1) {
      int b = brick_at[__builtin_ctz(placed)];
      for (int i = g->group[d][b]; i < g->group[d][b + 1]; i++) perm[out++] = (uint8_t)(g->sorted[i] & 63);
    }
  }
}

/* Each pattern from a brick that has it: per axis its low bit, and its other
 * neighbour's bit 1, 2 or 3 as the pattern orders the axes. */
void lt__shell_orders_build(const lt_shell_table *t, lt_shell_orders *o) {
  static const int8_t bits[6][3] = {{1, 2, 3}, {1, 3, 2}, {2, 1, 3}, {2, 3, 1}, {3, 1, 2}, {3, 2, 1}};
  for (int low = 0; low < 8; low++)
    for (int r = 0; r < 6; r++) {
      int32_t key[4] = {0};
      for (int a = 0; a < 3; a++) {
        uint32_t u = 1u << 10, one = low >> (2 - a) & 1, bit = (uint32_t)bits[r][a];
        key[a + 1] = (int32_t)((one ? u + (1u << bit) - 1 : u + (1u << bit)) - (1u << 18));
      }
      int p = lt__shell_pattern(key);
      places_of(key, o->of[p].place);
      for (int b = 0; b < 32; b++) o->of[p].brick_at[o->of[p].place[b]] = (uint8_t)b;
    }
  for (int c = 0; c < LT_BRICK_CELLS; c++) {
    cell_groups g;
    groups_of(t, c, &g);
    for (int p = 0; p < LT_SHELL_PATTERNS; p++) perm_of(t, &g, o->of[p].place, o->of[p].brick_at, o->of[p].perm[c]);
  }
}
