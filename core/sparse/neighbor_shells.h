/* Neighbour search by shells of integer offsets (sparse/neighbor_shells.c),
 * for the near part of the relations of sparse/neighbors.c. Coordinates are
 * integers, so the sources at squared distance d from a query are the rows at
 * the offsets (dx, dy, dz) with dx^2 + dy^2 + dz^2 = d: a table of the
 * offsets sorted by d, walked shell by shell, lists a query's sources nearest
 * first with no distance computed and no candidate rejected, each shell's
 * rows sorted for the tie rule. The lookups read the source's brick index
 * (sparse/bricks.h): every offset of the table (d <= LT_SHELL_D2, all within
 * 4 cells per axis) lands in one of the 3 x 3 x 3 bricks around the query's,
 * found once for all the queries of that brick, so an offset is two loads
 * (its brick and cell from a table, then the row), no hash probe. */
#ifndef LATTICE_SPARSE_NEIGHBOR_SHELLS_H
#define LATTICE_SPARSE_NEIGHBOR_SHELLS_H

#include "lattice/cpu.h"
#include "sparse/bricks.h"

#define LT_SHELL_D2      16  /* the farthest shell: 4^2, the window's reach on every axis */
#define LT_SHELL_OFFSETS 257 /* the offsets of the shells 0..LT_SHELL_D2: a kNN of more cannot end within them */

/* The relation's edge arrays, E each, query i's edges at [start[i], start[i + 1]). */
typedef struct lt_edges {
  int32_t *query_row, *source_row, *neighbor_id;
  float *distances;
} lt_edges;

/* What one walk over the queries does, of the sources within d^2 <= limit
 * (limit <= LT_SHELL_D2) of each query (its batch only):
 *   counts != NULL: counts[i] = their number, at most cap;
 *   else:           fills query i's start[i + 1] - start[i] edges, nearest
 *                   first, ties by source row; where fewer lie within the
 *                   limit, fills what it found and sets short_of[i] = 1
 *                   (else 0), for a wider search to redo. */
typedef struct lt_shell_walk {
  /* the brick indexes of the two maps (the same one when they are), by
   * lt__bricks_index: the walk builds the source's cells where it reads them */
  lt_bricks *source;
  const lt_bricks *query;
  int64_t limit, cap;
  int64_t *counts;
  const int64_t *start;
  const lt_edges *edges;
  uint8_t *short_of;
} lt_shell_walk;

/* One task per CHUNK bricks of the query map, each writing only its
 * queries' entries: deterministic. Below AVX-512 a fill tries each query
 * on its brick's candidate window (sparse/neighbor_window.h) first, the
 * shells where that cannot decide it; with AVX-512, the shells' vector
 * kernel alone (by occupancy bits, and a count by their popcount, where the
 * CPU has VBMI2). isa picks the per-query kernel (lowered to the scalar one
 * where the keys below do not fit); *used (if not NULL) gets the one run.
 * Fails only for memory. */
lt_status lt__shell_walk(lt_ctx *ctx, const lt_shell_walk *w, lt_isa isa, lt_isa *used, int threads, const char *op);

/* The offsets with dx^2 + dy^2 + dz^2 <= LT_SHELL_D2 sorted by d^2: shell d
 * is positions first[d] .. first[d + 1] (empty where no three squares sum to
 * d), inside one block of 64 positions, pads (in brick 27, never present)
 * filling a block's rest where the next shell does not fit. A query in cell
 * c of its brick finds the source cell at offset p in brick code[c][p] >> 6
 * of the 3 x 3 x 3 around its own (x major), cell code[c][p] & 63 of it.
 * The gather kernel reads 16 positions at a time, each with key[p] = d^2 <<
 * LT_SHELL_ROW_BITS (its sort key is that or'ed with the row) and d2[p] (a
 * pad's: the next shell's); the bits kernel 64 at a time, each position's
 * entry, byte and bit, which number a brick's cells in Morton order
 * (lt__morton_cell; lex[m] the cell of Morton cell m). The tail pads them
 * (d^2 past the limit). */
#define LT_SHELL_BLOCKS   5 /* the bits kernel's blocks of 64 positions: 320 >= 257 */
#define LT_SHELL_PADDED   (64 * LT_SHELL_BLOCKS)
#define LT_SHELL_ROW_BITS 27 /* rows below 2^27: (d^2, row) in one uint32 */
typedef struct lt_shell_table {
  uint16_t code[LT_BRICK_CELLS][LT_SHELL_PADDED];
  /* by Morton cell: m = brick << 6 | lt__morton_cell(code & 63) */
  uint16_t entry[LT_BRICK_CELLS][LT_SHELL_PADDED]; /* d^2 << 11 | m */
  uint8_t byte[LT_BRICK_CELLS][LT_SHELL_PADDED];   /* m >> 3: the byte of lt_shell_bricks.occupied */
  uint8_t bit[LT_BRICK_CELLS][LT_SHELL_PADDED];    /* 1 << (m & 7): the bit in it */
  uint8_t lex[LT_BRICK_CELLS];
  uint32_t key[LT_SHELL_PADDED];
  int32_t d2[LT_SHELL_PADDED];
  int32_t first[LT_SHELL_D2 + 2];
} lt_shell_table;
void lt__shell_table_build(lt_shell_table *t);

/* The source rows around a query brick of a Morton-sorted map are in the
 * Morton order of their coordinates: by brick, in one of 48 orders of the 27
 * (a pattern: per axis, the low bit of the brick's Morton digits, and the
 * order of the axes by the highest bit where the brick differs from its
 * other neighbour on it), then by Morton cell. perm[c] lists, for a query in
 * cell c, each table position's source in its block (0..63) so that every
 * shell's positions come in that order: the bits kernel reorders a block's
 * hits and entries by it (a bit shuffle and a word permute) instead of
 * sorting them. place[b] is brick b's place in the pattern's order (27..31
 * for the bricks past 27), brick_at[q] the brick at place q. Valid only where the runs of the bricks present
 * follow it, which lt__shell_bricks_rank checks. ~1 MB for all 48, built
 * once (lt__shell_orders_build) and kept by the context. */
#define LT_SHELL_PATTERNS 48
typedef struct lt_shell_order {
  _Alignas(64) uint8_t perm[LT_BRICK_CELLS][LT_SHELL_PADDED];
  uint8_t place[32], brick_at[32];
} lt_shell_order;
typedef struct lt_shell_orders {
  lt_shell_order of[LT_SHELL_PATTERNS];
} lt_shell_orders;
void lt__shell_orders_build(const lt_shell_table *t, lt_shell_orders *o);
/* The pattern of the bricks around the brick of `key` (batch, x, y, z), 0..47. */
int lt__shell_pattern(const int32_t *key);

/* Cell c = x << 4 | y << 2 | z of a brick (lt__brick_cell) in the bricks'
 * Morton order, that of lattice's morton_codes (x the lowest bit of each
 * triple): z1 y1 x1 z0 y0 x0. Rows sorted by Morton code list each brick's
 * rows as one run in this order. */
static inline int lt__morton_cell(int c) {
  int x = c >> 4, y = c >> 2 & 3, z = c & 3;
  return (z >> 1) << 5 | (y >> 1) << 4 | (x >> 1) << 3 | (z & 1) << 2 | (y & 1) << 1 | (x & 1);
}

/* The most source bricks a walk takes: lt_shell_bricks holds a brick's first
 * cell (its number times 64) in an int32, for the vector permute. Maps of
 * more (2^25, some 9 GB of index) take the grid search (sparse/neighbors.c). */
#define LT_SHELL_MOST_BRICKS (INT32_MAX / LT_BRICK_CELLS)

/* The source bricks around one query brick: base[b] the first of brick b's
 * cells in cells (-1 where there is none), b = 9 (x + 1) + 3 (y + 1) + z + 1
 * for the brick at (x, y, z) from the query's; 32 entries, for a vector
 * permute; occupied[b] brick b's cells that hold a row, bit by Morton cell
 * (0 past 27 and where the walk keeps no occupancy; the bits kernel reads
 * the 32 as 4 vectors).
 *
 * Where every brick present is ranked (its rows one run in Morton cell
 * order, as the rows of a Morton-sorted map are), a source's row order is
 * that of (its brick's rank among the present ones by their runs, its
 * Morton cell): rank_of[b] holds brick b's rank << 6, so that the bits
 * kernel sorts 16-bit keys (d^2 << 11 | rank << 6 | cell), 32 to a vector.
 * Its row is then the run's first plus the bits below its cell, with no
 * load: by_rank[r] is the occupancy word of the brick of rank r and
 * ranks[h] the row of the first bit of its 32-bit half h = 2 r + cell / 32.
 * Where every source brick is ranked the walk builds no cells (cells NULL):
 * the bits kernel and _ref then find every row so. order (not NULL) says
 * that the runs follow the order of the pattern around (lt_shell_order),
 * so that the bits kernel lists a query's hits in row order with no sort:
 * it then needs no rank and finds rows by brick instead: rank_of and
 * by_rank are not set, the words are occupied's, ranks[h] is the row of the
 * first bit of half h = 2 b + cell / 32 of brick b, and few is 0. */
typedef struct lt_shell_bricks {
  const int32_t *cells;
  int32_t base[32];
  _Alignas(64) uint64_t occupied[32];
  int ranked, few; /* few: ranked, and at most 16 bricks present (their ranks' halves in 2 vectors) */
  const lt_shell_order *order;
  _Alignas(64) uint16_t rank_of[32];
  _Alignas(64) uint64_t by_rank[32];
  _Alignas(64) int32_t ranks[64];
} lt_shell_bricks;

/* A source brick's occupancy word (by Morton cell) and its run's first
 * row, or -1 where its rows are no run in Morton cell order: one record, so
 * that a walk's look at a brick is one line. */
typedef struct lt_brick_occupancy {
  uint64_t word;
  int32_t run;
} lt_brick_occupancy;

/* Bricks first .. last - 1 of src into occ. */
void lt__shell_occupancy(lt_brick_occupancy *occ, const lt_bricks *src, int64_t first, int64_t last);
/* near's `ranked`, and where it is its rank_of, by_rank and ranks, from
 * its base, its occupancy and its bricks' runs (run[b], as
 * lt__shell_occupancy gives them; 32 entries, read only where base[b] >=
 * 0); near->order = order where the runs follow it (order may be NULL).
 * For the bits kernel (VBMI2). */
void lt__shell_bricks_rank(lt_shell_bricks *near, const int32_t run[32], const lt_shell_order *order);

/* One query's walk, the query in cell `cell` of its brick: its nearest
 * `want` sources within d^2 <= limit into row and dist (d^2), nearest first,
 * ties by row; returns how many it found (fewer than want: the limit held
 * fewer). The AVX-512 ones return -1 for a query they leave to _ref (more
 * than 32 candidates before the k-th is final, or want > 32): _avx512 by
 * gathers of every offset's row, _bits (VBMI2: lt_cpu_avx512_vbmi2) by the
 * bricks' occupancy words, its rows by their ranks where near is ranked,
 * else by gathers of only the hits'. _bits streams the 64-byte lines of row
 * and dist it fills whole past the caches, as lt__edges_mark_avx512 does:
 * its caller fences them before other threads read them. */
int64_t lt__shell_query_ref(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit, int64_t want,
                            int32_t *row, float *dist);
int64_t lt__shell_query_avx512(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                               int64_t want, int32_t *row, float *dist);
int64_t lt__shell_query_bits(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                             int64_t want, int32_t *row, float *dist);
/* lt__shell_query_bits of two queries at once, their sorts overlapping
 * where near is ranked (each alone where not): found[q] what it returns
 * for query q. */
void lt__shell_query_bits2(const lt_shell_table *t, const lt_shell_bricks *near, const int cell[2], int64_t limit,
                           const int64_t want[2], int32_t *const row[2], float *const dist[2], int64_t found[2]);
/* Four queries at once by the bits kernel, queries query[q] in cells
 * cell[q], their edges e[start[query[q]] .. start[query[q] + 1]): all
 * their marks (as lt__edges_mark_avx512 writes them, streamed where they
 * fill a line), and the rows and d^2 of the found[q] nearest, or found[q] =
 * -1 for what lt__shell_query_bits leaves to _ref. All four at once where
 * near has its pattern's order, as two pairs where not. */
void lt__shell_query_bits4(const lt_shell_table *t, const lt_shell_bricks *near, const int cell[4], int64_t limit,
                           const lt_edges *e, const int64_t *start, const int64_t query[4], int64_t found[4]);
/* The sources within d^2 <= limit of the query in cell `cell`, at most cap,
 * by the occupancy words (VBMI2): a radius relation's count. */
int64_t lt__shell_count_bits(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                             int64_t cap);

/* Query i's n edge marks: query_row[j] = i, neighbor_id[j] = j. The
 * _avx512 one streams the lines it fills whole past the caches (sparse/
 * neighbor_edges_avx512.c); its writer calls lt__edges_fence_avx512 before
 * its writes are read (streaming stores are weakly ordered). */
void lt__edges_mark_ref(int32_t *query_row, int32_t *neighbor_id, int32_t i, int64_t n);
void lt__edges_mark_avx512(int32_t *query_row, int32_t *neighbor_id, int32_t i, int64_t n);
void lt__edges_fence_avx512(void);

/* lt_neighbors_build with the shells' kernel of one ISA (lowered to what
 * the context allows), for the specs: *used gets the one run (scalar where
 * no shell walk ran). */
lt_status lt__neighbors_build_isa(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query,
                                  lt_neighbor_kind kind, int64_t k, double radius, lt_isa isa, lt_isa *used,
                                  const char *op);

#endif
