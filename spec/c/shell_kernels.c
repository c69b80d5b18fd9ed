/* The shells' per-query kNN kernels (sparse/neighbor_shells.h) against the
 * scalar one, on random 3 x 3 x 3 brick neighbourhoods: the gather kernel
 * (every AVX-512 CPU) and the occupancy-bits kernel (VBMI2), which a walk
 * picks by the CPU, so that on any one machine the specs of
 * sparse_neighbors_spec.lua reach only one of them; the bits kernel on
 * rows in no order (its gathers) and on ranked bricks (its rows by rank).
 * Every cell, limit and count from 1 to past 32, at densities from 2% to
 * full; the bits kernel's radius counts; the occupancy words and runs of a
 * map's bricks. Prints one line per check and ends with "N passed, N
 * failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lattice/sparse_order.h"
#include "sparse/neighbor_shells.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  ok ? passed++ : failed++;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

/* The occupancy word of a brick's 64 cells, bit by Morton cell. */
static uint64_t occupancy_of(const int32_t *cells) {
  uint64_t m = 0;
  for (int c = 0; c < LT_BRICK_CELLS; c++)
    if (cells[c] >= 0) m |= 1ull << lt__morton_cell(c);
  return m;
}

/* A neighbourhood of density `percent`: each brick absent one time in
 * eight (in half the ranked ones, one time in two: at most 16 present, the
 * kernel's `few`), each present cell a row (distinct, below 2^27) or -1.
 * Ranked: each brick's rows one run in Morton cell order, the runs apart and
 * in an order of their own (not the bricks'); else rows in no order. */
static void neighbourhood(lt_shell_bricks *near, int32_t *cells, int percent, int ranked) {
  uint32_t absent = ranked && next() % 2 ? 2 : 8;
  int32_t run[32], order[27];
  for (int b = 0; b < 27 * LT_BRICK_CELLS; b++)
    cells[b] = (int)(next() % 100) < percent ? (int32_t)((next() % (1u << 20)) << 6 | (uint32_t)(b & 63)) : -1;
  for (int b = 0; b < 27; b++) order[b] = b;
  for (int b = 26; b > 0; b--) {
    int j = (int)(next() % (uint32_t)(b + 1)), o = order[b];
    order[b] = order[j], order[j] = o;
  }
  for (int i = 0, at = (int)(next() % 1000); i < 27 && ranked; i++) { /* the bricks' runs in `order` */
    int32_t *c = cells + order[i] * LT_BRICK_CELLS;
    run[order[i]] = at;
    for (int m = 0; m < LT_BRICK_CELLS; m++) /* cell lex(m) in Morton order */
      for (int l = 0; l < LT_BRICK_CELLS; l++)
        if (lt__morton_cell(l) == m && c[l] >= 0) c[l] = at++;
    at += (int)(next() % 3);
  }
  near->cells = cells;
  for (int b = 0; b < 32; b++) {
    int present = b < 27 && next() % absent != 0;
    near->base[b] = present ? b * LT_BRICK_CELLS : -1;
    near->occupied[b] = present ? occupancy_of(cells + b * LT_BRICK_CELLS) : 0;
    if (!ranked) run[b] = -1;
  }
  lt__shell_bricks_rank(near, run, NULL);
}

typedef int64_t (*query_fn)(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit, int64_t want,
                            int32_t *row, float *dist);

/* Every cell, limit and want of one neighbourhood: the kernel's answers
 * where it gives one; *ran counts them. A ranked one is asked without its
 * cells (a walk builds none where every brick is ranked): the kernel's
 * answers, and _ref's by rank, against _ref's by the cells. */
static int same_as_ref(const lt_shell_table *t, const lt_shell_bricks *near, query_fn kernel, int64_t *ran) {
  static const int64_t limits[] = {0, 1, 3, 6, 9, 16}, wants[] = {1, 2, 5, 8, 16, 17, 24, 31, 32, 33, 257};
  static int32_t row[LT_SHELL_OFFSETS], ref_row[LT_SHELL_OFFSETS];
  static float dist[LT_SHELL_OFFSETS], ref_dist[LT_SHELL_OFFSETS];
  lt_shell_bricks bare = *near;
  bare.cells = NULL;
  const lt_shell_bricks *asked = near->ranked ? &bare : near;
  for (int cell = 0; cell < LT_BRICK_CELLS; cell++)
    for (int l = 0; l < 6; l++)
      for (int w = 0; w < 11; w++) {
        int64_t want = wants[w], n = kernel(t, asked, cell, limits[l], want, row, dist);
        if (n < 0)
          n = near->ranked ? lt__shell_query_ref(t, &bare, cell, limits[l], want, row, dist) : -1;
        else
          ++*ran;
        if (n < 0) continue;
        int64_t m = lt__shell_query_ref(t, near, cell, limits[l], want, ref_row, ref_dist);
        if (n != m || memcmp(row, ref_row, (size_t)n * sizeof *row) ||
            memcmp(dist, ref_dist, (size_t)n * sizeof *dist)) {
          printf("  cell %d limit %lld want %lld: %lld found, ref %lld\n", cell, (long long)limits[l], (long long)want,
                 (long long)n, (long long)m);
          return 0;
        }
      }
  return 1;
}

static void test_kernel(const lt_shell_table *t, query_fn kernel, const char *name, int ranked) {
  static const int percents[] = {2, 10, 30, 60, 100};
  static int32_t cells[27 * LT_BRICK_CELLS];
  lt_shell_bricks near;
  int few = 0;
  for (int p = 0; p < 5; p++) {
    int ok = 1;
    int64_t ran = 0, asked = 0;
    for (int trial = 0; trial < 20 && ok; trial++, asked += LT_BRICK_CELLS * 6 * 11) {
      neighbourhood(&near, cells, percents[p], ranked);
      ok = same_as_ref(t, &near, kernel, &ran) && near.ranked == ranked;
      few += near.few;
    }
    char what[128];
    snprintf(what, sizeof what, "%s: the scalar kernel's answers at %d%% density%s", name, percents[p],
             ranked ? ", ranked" : "");
    check(ok, what);
    /* it leaves only want > 32 and queries of more than 32 candidates to _ref */
    snprintf(what, sizeof what, "%s: answers most queries itself at %d%% density (%lld of %lld)", name, percents[p],
             (long long)ran, (long long)asked);
    check(ran * 2 > asked, what);
  }
  if (ranked)
    check(few > 10, "occupancy bits (avx512 vbmi2): neighbourhoods of at most 16 bricks among the ranked ones");
}

/* The bits kernel's two queries at once on one neighbourhood against the
 * scalar kernel: every cell with a random other, each of the nl limits,
 * wants drawn from the nw; a ranked one asked without its cells, as a walk
 * leaves it. Counts the queries asked and those the kernel answered (the
 * others it leaves to _ref: found -1). */
static int pairs_same_as_ref(const lt_shell_table *t, const lt_shell_bricks *near, const int64_t *limits, int nl,
                             const int64_t *wants, int nw, int *asked, int *answered) {
  int32_t got[2][64], ref_row[64];
  float gotd[2][64], ref_dist[64];
  lt_shell_bricks bare = *near;
  if (near->ranked) bare.cells = NULL;
  for (int c = 0; c < LT_BRICK_CELLS; c++)
    for (int l = 0; l < nl; l++) {
      int cell[2] = {c, (int)(next() % LT_BRICK_CELLS)};
      int64_t want[2] = {wants[next() % (uint32_t)nw], wants[next() % (uint32_t)nw]}, found[2];
      int32_t *row[2] = {got[0], got[1]};
      float *dist[2] = {gotd[0], gotd[1]};
      lt__shell_query_bits2(t, &bare, cell, limits[l], want, row, dist, found);
      for (int q = 0; q < 2; q++) {
        ++*asked;
        if (found[q] < 0) continue; /* left to _ref */
        ++*answered;
        int64_t m = lt__shell_query_ref(t, near, cell[q], limits[l], want[q], ref_row, ref_dist);
        if (found[q] != m || memcmp(got[q], ref_row, (size_t)m * sizeof *ref_row) ||
            memcmp(gotd[q], ref_dist, (size_t)m * sizeof *ref_dist)) {
          printf("  cells %d, %d limit %lld wants %lld, %lld: query %d found %lld, ref %lld\n", cell[0], cell[1],
                 (long long)limits[l], (long long)want[0], (long long)want[1], q, (long long)found[q], (long long)m);
          return 0;
        }
      }
    }
  return 1;
}

/* The bits kernel's two queries at once against the scalar kernel, on
 * ranked neighbourhoods and not (where it runs each alone): every limit,
 * and wants from 0 to past 32. */
static void test_pairs(const lt_shell_table *t) {
  static const int64_t limits[] = {0, 1, 3, 6, 9, 16}, wants[] = {0, 1, 5, 16, 17, 32, 33};
  static int32_t cells[27 * LT_BRICK_CELLS];
  lt_shell_bricks near;
  int ok = 1, asked = 0, answered = 0;
  for (int ranked = 0; ranked < 2; ranked++)
    for (int trial = 0; trial < 6 && ok; trial++) {
      neighbourhood(&near, cells, trial < 3 ? 10 : 60, ranked);
      ok = pairs_same_as_ref(t, &near, limits, 6, wants, 7, &asked, &answered);
    }
  check(ok, "occupancy bits (avx512 vbmi2): two queries at once, the scalar kernel's answers, ranked and not");
  check(answered * 3 > asked * 2, "occupancy bits (avx512 vbmi2): two queries at once, most answered by the kernel");
}

/* The bits kernel's counts against the scalar walk's (all the sources within
 * the limit), capped and not. */
static void test_count_bits(const lt_shell_table *t) {
  static const int percents[] = {2, 30, 100};
  static const int64_t limits[] = {0, 1, 3, 6, 9, 16}, caps[] = {INT64_MAX, 5};
  static int32_t cells[27 * LT_BRICK_CELLS], row[LT_SHELL_OFFSETS];
  static float dist[LT_SHELL_OFFSETS];
  lt_shell_bricks near;
  int ok = 1;
  for (int p = 0; p < 3; p++)
    for (int trial = 0; trial < 10; trial++) {
      neighbourhood(&near, cells, percents[p], 0);
      for (int cell = 0; cell < LT_BRICK_CELLS; cell++)
        for (int l = 0; l < 6; l++) {
          int64_t all = lt__shell_query_ref(t, &near, cell, limits[l], LT_SHELL_OFFSETS, row, dist);
          for (int c = 0; c < 2; c++) {
            int64_t want = all < caps[c] ? all : caps[c],
                    got = lt__shell_count_bits(t, &near, cell, limits[l], caps[c]);
            if (got != want && ok)
              printf("  cell %d limit %lld: %lld counted, ref %lld\n", cell, (long long)limits[l], (long long)got,
                     (long long)want);
            ok &= got == want;
          }
        }
    }
  check(ok, "occupancy bits (avx512 vbmi2): a radius count is the scalar walk's, capped and not");
}

/* lt__shell_occupancy on a hand-made index of four bricks in brick order:
 * rows in Morton cell order (a run), in lex order (none), one row (a run),
 * none; and the same rows listed out of order (no runs at all). */
static void test_occupancy(void) {
  /* brick 0: cells (x, y, z) = (1,0,0), (0,1,0): Morton 1 then 2; brick 1: (0,1,0), (1,0,0): Morton 2 then 1 */
  static const int32_t rows[] = {0, 1, 0, 0, 0, 0, 1, 0, 0, 4, 1, 0, 0, 5, 0, 0, 0, 8, 3, 3};
  static int32_t first[] = {0, 2, 4, 5, 5}, order[] = {0, 1, 2, 3, 4};
  lt_bricks b = {0};
  b.rows = rows, b.first = first, b.nb = 4;
  lt_brick_occupancy occ[4];
  uint64_t want_occ[4] = {1ull << 1 | 1ull << 2, 1ull << 1 | 1ull << 2, 1ull << lt__morton_cell(3 << 2 | 3), 0};
  int32_t want_run[2][4] = {{0, -1, 4, 5}, {-1, -1, -1, -1}};
  static const char *what[2] = {
      "occupancy: each brick's word by Morton cell, its run where its rows are one in Morton cell order",
      "occupancy: no runs where the rows are not in brick order"};
  for (int listed = 0; listed < 2; listed++) {
    b.order = listed ? order : NULL;
    lt__shell_occupancy(occ, &b, 0, 4);
    int ok = 1;
    for (int k = 0; k < 4; k++) ok &= occ[k].word == want_occ[k] && occ[k].run == want_run[listed][k];
    check(ok, what[listed]);
  }
}

/* A neighbourhood one of whose present bricks has no run is not ranked. */
static void test_unranked(void) {
  static int32_t cells[27 * LT_BRICK_CELLS];
  lt_shell_bricks near;
  int32_t run[32];
  neighbourhood(&near, cells, 30, 1);
  int ok = near.ranked;
  for (int b = 0; b < 32; b++) run[b] = near.base[b] >= 0 ? near.ranks[0] : -1; /* any, all present */
  for (int b = 0; b < 27; b++) {
    if (near.base[b] < 0) continue;
    int32_t keep = run[b];
    run[b] = -1;
    lt__shell_bricks_rank(&near, run, NULL);
    ok &= !near.ranked;
    run[b] = keep;
  }
  check(ok, "occupancy bits: a neighbourhood with one brick of no run is not ranked");
}

/* The table's layout: each shell (and the pads after it) inside one block
 * of 64 positions, the offsets all there once, the pads in brick 27. */
static void test_layout(const lt_shell_table *t) {
  int ok = 1, offsets = 0;
  for (int d = 0; d <= LT_SHELL_D2; d++) {
    int first = t->first[d], last = t->first[d + 1];
    ok &= first <= last && (first == last || first / 64 == (last - 1) / 64);
    for (int p = first; p < last; p++) {
      int pad = t->code[0][p] >> 6 == 27;
      for (int c = 0; c < LT_BRICK_CELLS; c++) ok &= (t->code[c][p] >> 6 == 27) == pad;
      offsets += !pad;
      ok &= pad || t->d2[p] == d;
    }
  }
  check(ok && offsets == LT_SHELL_OFFSETS && t->first[LT_SHELL_D2 + 1] <= LT_SHELL_PADDED,
        "table: every shell inside one block of 64 positions, each offset once, the pads in brick 27");
}

/* A brick key (batch, x, y, z) with x, y, z in the Morton range: random,
 * or near 0 and near powers of two, where the carries are long. */
static void brick_key(int32_t *key) {
  key[0] = (int32_t)(next() % 3);
  for (int a = 1; a < 4; a++) {
    int32_t v = (int32_t)(next() % (1u << 18)) - (1 << 17);
    if (next() % 2) v = (int32_t)(1 << (next() % 17)) + (int32_t)(next() % 3) - (1 << 18) * (int32_t)(next() % 2);
    key[a] = v;
  }
}

/* The Morton code of the first cell of brick b (0..26) around key. */
static uint64_t brick_code(const int32_t *key, int b) {
  return lt_morton_encode(4 * (key[1] + b / 9 - 1), 4 * (key[2] + b / 3 % 3 - 1), 4 * (key[3] + b % 3 - 1));
}

/* The pattern of random bricks orders their 27 as their Morton codes do. */
static void test_patterns(const lt_shell_orders *o) {
  int ok = 1, seen[LT_SHELL_PATTERNS] = {0}, all = 1;
  for (int trial = 0; trial < 20000 && ok; trial++) {
    int32_t key[4];
    brick_key(key);
    int p = lt__shell_pattern(key);
    ok = p >= 0 && p < LT_SHELL_PATTERNS;
    for (int b = 0; b < 27 && ok; b++)
      for (int c = 0; c < 27; c++)
        ok &= (brick_code(key, b) < brick_code(key, c)) == (o->of[p].place[b] < o->of[p].place[c]);
    if (ok) seen[p] = 1;
    if (!ok) printf("  key %d %d %d: pattern %d\n", key[1], key[2], key[3], p);
  }
  for (int p = 0; p < LT_SHELL_PATTERNS; p++) all &= seen[p];
  check(ok, "orders: a brick's pattern orders the 27 around it as their Morton codes");
  check(all, "orders: random bricks meet all 48 patterns");
}

typedef struct coded {
  uint64_t code;
  int32_t cell; /* b * 64 + lex cell */
} coded;

static int by_code(const void *a, const void *b) {
  uint64_t x = ((const coded *)a)->code, y = ((const coded *)b)->code;
  return (x > y) - (x < y);
}

/* The neighbourhood of brick `key` in a Morton-sorted map of density
 * `percent`: each brick absent one time in eight, each present cell a row,
 * numbered (from a random first) in the Morton order of their coordinates;
 * ranked with the orders (or without, o NULL). */
static void morton_neighbourhood(lt_shell_bricks *near, int32_t *cells, int percent, const int32_t *key,
                                 const lt_shell_orders *o) {
  static coded rows[27 * LT_BRICK_CELLS];
  int32_t run[32];
  int n = 0;
  for (int b = 0; b < 32; b++) {
    int present = b < 27 && next() % 8 != 0;
    near->base[b] = present ? b * LT_BRICK_CELLS : -1;
    run[b] = -1;
  }
  for (int b = 0; b < 27; b++)
    for (int c = 0; c < LT_BRICK_CELLS; c++) {
      cells[b * LT_BRICK_CELLS + c] = -1;
      if (near->base[b] < 0 || (int)(next() % 100) >= percent) continue;
      int32_t x = 4 * (key[1] + b / 9 - 1) + (c >> 4), y = 4 * (key[2] + b / 3 % 3 - 1) + (c >> 2 & 3),
              z = 4 * (key[3] + b % 3 - 1) + (c & 3);
      rows[n++] = (coded){lt_morton_encode(x, y, z), b * LT_BRICK_CELLS + c};
    }
  qsort(rows, (size_t)n, sizeof *rows, by_code);
  int32_t first = (int32_t)(next() % 1000);
  for (int i = n - 1; i >= 0; i--) cells[rows[i].cell] = first + i, run[rows[i].cell / LT_BRICK_CELLS] = first + i;
  near->cells = cells;
  for (int b = 0; b < 32; b++) {
    near->occupied[b] = b < 27 ? occupancy_of(cells + b * LT_BRICK_CELLS) : 0;
    if (!near->occupied[b]) near->base[b] = -1; /* a map's bricks have rows */
  }
  lt__shell_bricks_rank(near, run, o ? &o->of[lt__shell_pattern(key)] : NULL);
}

/* The bits kernel on Morton-sorted neighbourhoods with their orders (its
 * hits listed sorted, no sort run): the scalar kernel's answers, one query
 * and two at once; and every such neighbourhood in order. One with its
 * runs in another order is not (and answers the same by its sort). */
static void test_ordered(const lt_shell_table *t, const lt_shell_orders *o) {
  static const int percents[] = {5, 30, 70, 100};
  static const int64_t limits[] = {1, 6, 16}, wants[] = {1, 16, 32};
  static int32_t cells[27 * LT_BRICK_CELLS];
  int ok = 1, ordered = 1, asked = 0, answered = 0;
  lt_shell_bricks near;
  for (int p = 0; p < 4; p++)
    for (int trial = 0; trial < 10 && ok; trial++) {
      int32_t key[4];
      brick_key(key);
      morton_neighbourhood(&near, cells, percents[p], key, o);
      ordered &= near.ranked && near.order == &o->of[lt__shell_pattern(key)];
      int64_t ran = 0;
      ok = same_as_ref(t, &near, lt__shell_query_bits, &ran) &&
           pairs_same_as_ref(t, &near, limits, 3, wants, 3, &asked, &answered);
    }
  check(ordered, "orders: a Morton-sorted map's neighbourhoods are ranked in their pattern's order");
  int four = 1;
  for (int trial = 0; trial < 20 && four; trial++) { /* four at once (a pair twice where a want is past 32) */
    static int32_t qrow[4 * 64], srow[4 * 64], nid[4 * 64], ref4[64];
    static float dists4[4 * 64], refd4[64];
    int32_t key[4];
    brick_key(key);
    morton_neighbourhood(&near, cells, percents[trial % 4], key, o);
    lt_shell_bricks bare = near;
    bare.cells = NULL;
    lt_edges e = {qrow, srow, nid, dists4};
    for (int c = 0; c < LT_BRICK_CELLS && four; c++) {
      int cell[4] = {c, (int)(next() % LT_BRICK_CELLS), (int)(next() % LT_BRICK_CELLS), (int)(next() % LT_BRICK_CELLS)};
      int64_t start[5] = {0}, query[4] = {3, 0, 2, 1}, found[4], limit = limits[next() % 3];
      for (int q = 0; q < 4; q++) start[q + 1] = start[q] + (trial == 19 && q == 3 ? 33 : wants[next() % 3]);
      memset(qrow, 0xff, sizeof qrow), memset(nid, 0xff, sizeof nid);
      lt__shell_query_bits4(t, &bare, cell, limit, &e, start, query, found);
      for (int q = 0; q < 4 && four; q++) {
        int64_t s = start[query[q]], want = start[query[q] + 1] - s;
        for (int64_t j = 0; j < want; j++) four &= qrow[s + j] == query[q] && nid[s + j] == j;
        if (found[q] < 0) continue;
        int64_t m = lt__shell_query_ref(t, &near, cell[q], limit, want, ref4, refd4);
        four &= found[q] == m && !memcmp(srow + s, ref4, (size_t)m * sizeof *ref4) &&
                !memcmp(dists4 + s, refd4, (size_t)m * sizeof *refd4);
      }
    }
  }
  check(four, "occupancy bits (avx512 vbmi2): four queries at once in a pattern's order, the scalar kernel's answers "
              "and every edge's marks");
  check(ok && answered * 3 > asked * 2,
        "occupancy bits (avx512 vbmi2): in a pattern's order, the scalar kernel's answers, one query and two");
  int unordered = 0, same = 1;
  for (int trial = 0; trial < 20; trial++) { /* runs in an order of their own, the pattern offered */
    int32_t key[4], run[32];
    brick_key(key);
    neighbourhood(&near, cells, 30, 1);
    for (int b = 0; b < 32; b++) run[b] = near.base[b] >= 0 ? near.ranks[2 * (near.rank_of[b] >> 6)] : -1;
    lt__shell_bricks_rank(&near, run, &o->of[lt__shell_pattern(key)]);
    unordered += near.ranked && !near.order;
    int64_t ran = 0;
    same &= same_as_ref(t, &near, lt__shell_query_bits, &ran);
  }
  check(unordered >= 19 && same,
        "orders: runs in another order are ranked by them, not the pattern's, and answer the same");
}

int main(void) {
  lt_shell_table *t = malloc(sizeof *t);
  if (!t) return 1;
  lt__shell_table_build(t);
  test_layout(t);
  test_occupancy();
  if (lt_cpu_isa() >= LT_ISA_AVX512)
    test_kernel(t, lt__shell_query_avx512, "gathers (avx512)", 0);
  else
    printf("skipped: the gather kernel (no AVX-512 here)\n");
  if (lt_cpu_isa() >= LT_ISA_AVX512 && lt_cpu_avx512_vbmi2()) {
    test_kernel(t, lt__shell_query_bits, "occupancy bits (avx512 vbmi2)", 0);
    test_kernel(t, lt__shell_query_bits, "occupancy bits (avx512 vbmi2)", 1);
    test_pairs(t);
    test_count_bits(t);
    test_unranked();
    lt_shell_orders *o = malloc(sizeof *o);
    if (!o) return 1;
    lt__shell_orders_build(t, o);
    test_patterns(o);
    test_ordered(t, o);
    free(o);
  } else {
    printf("skipped: the bits kernel (no AVX-512 VBMI2 here)\n");
  }
  free(t);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
