/* The matrix product of the recurrences: a register-tiled micro-kernel over packed weights.
 *
 * A template: included once per instruction set and type, with REAL (float / double), VB (the
 * vector width in bytes), MR (the most rows of a tile) and SUF (a name suffix) defined.
 *
 * One call computes a tile of R rows x NV vectors (NV * VL columns, VL = VB / sizeof(REAL)):
 *
 *     out[r][0 : NV*VL] = sum_k a[r][k] * panel[k][0 : NV*VL]
 *
 * with the panel packed as K consecutive rows of NV*VL contiguous values, so that each k
 * loads NV aligned vectors and each row adds NV fused multiply-adds of its broadcast a[r][k].
 * R * NV accumulators stay in registers across the whole k loop. The weights are packed once
 * per sequence and then read from cache at every time step (no per-step packing, as a BLAS
 * gemm call would do). NV is 4 (rk_tile), or 3 (rk_tile3: the GRU's three gates of VL units).
 *
 * The two packings of W_hh the loops use are here too, shared by every cell:
 * rk_pack_gates for the forward product h W^T (gates interleaved per panel, so that a tile
 * holds every gate of the same units), rk_pack_rows for the backward product da W.
 */

#define RK_CAT_(a, b) a##b
#define RK_CAT(a, b) RK_CAT_(a, b)
#define MK(name) RK_CAT(name, SUF)

typedef REAL MK(rk_vec) __attribute__((vector_size(VB)));

/* The tile of R rows and NV vectors; both constants in each instance, so that the loops over
 * them unroll and the accumulators live in registers. */
#define RK_DEFINE_TILE(R, NV)                                                                 \
    static void MK(rk_tile_##R##x##NV)(int64_t K, const REAL *a, int64_t lda,               \
                                       const REAL *panel, REAL *out)                          \
    {                                                                                         \
        enum { VL = VB / sizeof(REAL) };                                                      \
        MK(rk_vec) c[R][NV];                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] = (MK(rk_vec)){0};   \
        for (int64_t k = 0; k < K; k++) {                                                     \
            const MK(rk_vec) *wk = (const MK(rk_vec) *)(panel + k * NV * VL);                 \
            MK(rk_vec) w[NV];                                                                 \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) w[v] = wk[v];                \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                             \
                REAL s = a[r * lda + k];                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] += w[v] * s;     \
            }                                                                                 \
        }                                                                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                              \
                memcpy(out + (r * NV + v) * VL, &c[r][v], VB);                                \
    }

/* Every tile height up to MR, for one NV, and the switch that picks one. */
#define RK_DEFINE_TILES(NV)                                                                   \
    RK_DEFINE_TILE(1, NV)                                                                     \
    RK_DEFINE_TILE(2, NV)                                                                     \
    RK_IF_MR3(RK_DEFINE_TILE(3, NV))                                                          \
    RK_IF_MR4(RK_DEFINE_TILE(4, NV))                                                          \
    RK_IF_MR6(RK_DEFINE_TILE(5, NV) RK_DEFINE_TILE(6, NV))
#define RK_TILE_CASES(NV)                                                                     \
    case 1: MK(rk_tile_1x##NV)(K, a, lda, panel, out); break;                                 \
    case 2: MK(rk_tile_2x##NV)(K, a, lda, panel, out); break;                                 \
    RK_IF_MR3(case 3: MK(rk_tile_3x##NV)(K, a, lda, panel, out); break;)                      \
    RK_IF_MR4(case 4: MK(rk_tile_4x##NV)(K, a, lda, panel, out); break;)                      \
    RK_IF_MR6(case 5: MK(rk_tile_5x##NV)(K, a, lda, panel, out); break;                       \
              case 6: MK(rk_tile_6x##NV)(K, a, lda, panel, out); break;)

#if MR >= 3
#define RK_IF_MR3(x) x
#else
#define RK_IF_MR3(x)
#endif
#if MR >= 4
#define RK_IF_MR4(x) x
#else
#define RK_IF_MR4(x)
#endif
#if MR >= 6
#define RK_IF_MR6(x) x
#else
#define RK_IF_MR6(x)
#endif

RK_DEFINE_TILES(4)
RK_DEFINE_TILES(3)

/* out (rows x NV*VL, rows <= MR) = a (rows x K, leading dimension lda) panel (K x NV*VL). */
static inline void MK(rk_tile)(int64_t rows, int64_t K, const REAL *a, int64_t lda,
                               const REAL *panel, REAL *out)
{
    switch (rows) {
        RK_TILE_CASES(4)
    default: break;
    }
}

static inline void MK(rk_tile3)(int64_t rows, int64_t K, const REAL *a, int64_t lda,
                                const REAL *panel, REAL *out)
{
    switch (rows) {
        RK_TILE_CASES(3)
    default: break;
    }
}

#undef RK_DEFINE_TILE
#undef RK_DEFINE_TILES
#undef RK_TILE_CASES
#undef RK_IF_MR3
#undef RK_IF_MR4
#undef RK_IF_MR6

/* -- packing ---------------------------------------------------------------------------------- */

/* Values of rk_pack_gates' layout: ceil(H / U) panels of H rows of G gates x U units. */
static inline int64_t MK(rk_pack_gates_size)(int64_t H, int64_t G, int64_t U)
{
    return (H + U - 1) / U * H * G * U;
}

/* Rows [g0 H, (g0 + G) H) of w (W_hh, rows of H values) for the forward product h W^T, G gates
 * of U units a panel (G U = NV VL, U a multiple of VL): panel p, row k, gate q, unit u holds
 * w[(g0 + q) H + p U + u, k] (0 past H), so a tile's columns are every gate of the same units. */
static void MK(rk_pack_gates)(const REAL *w, int64_t H, int64_t g0, int64_t G, int64_t U,
                              REAL *packed)
{
    enum { VL = VB / sizeof(REAL) };
    REAL block[VL][VL]; /* a VL x VL block of W_hh, transposed through L1 */
    for (int64_t j0 = 0; j0 < H; j0 += VL) { /* VL units of every gate */
        REAL *dst0 = packed + (j0 / U) * H * G * U + j0 % U;
        for (int64_t q = 0; q < G; q++)
            for (int64_t k0 = 0; k0 < H; k0 += VL) {
                int64_t nk = H - k0 < VL ? H - k0 : VL;
                for (int64_t u = 0; u < VL; u++) {
                    if (j0 + u < H)
                        memcpy(block[u], w + ((g0 + q) * H + j0 + u) * H + k0,
                               nk * sizeof(REAL));
                    else
                        memset(block[u], 0, sizeof block[u]);
                }
                REAL *dst = dst0 + k0 * G * U + q * U;
                for (int64_t k = 0; k < nk; k++)
                    for (int64_t u = 0; u < VL; u++)
                        dst[k * G * U + u] = block[u][k];
            }
    }
    /* the units of a last panel past a last whole block of VL */
    for (int64_t j0 = (H + VL - 1) / VL * VL; j0 % U; j0 += VL)
        for (int64_t k = 0; k < H; k++)
            for (int64_t q = 0; q < G; q++)
                memset(packed + (j0 / U) * H * G * U + (k * G + q) * U + j0 % U, 0,
                       VL * sizeof(REAL));
}

/* Values of rk_pack_rows' layout: ceil(H / (4 VL)) panels of `rows` rows of 4 VL units. */
static inline int64_t MK(rk_pack_rows_size)(int64_t H, int64_t rows)
{
    enum { TILE = 4 * VB / sizeof(REAL) };
    return (H + TILE - 1) / TILE * rows * TILE;
}

/* w (rows x H) for the backward product da w, panels of TILE = 4 VL columns: panel p, row k,
 * unit u holds w[k, p TILE + u] (0 past H). A product over rows [k0, k0 + K) reads the panel
 * from row k0 on. */
static void MK(rk_pack_rows)(const REAL *w, int64_t H, int64_t rows, REAL *packed)
{
    enum { TILE = 4 * VB / sizeof(REAL) };
    for (int64_t p = 0; p * TILE < H; p++)
        for (int64_t k = 0; k < rows; k++)
            for (int64_t u = 0; u < TILE; u++) {
                int64_t j = p * TILE + u;
                packed[(p * rows + k) * TILE + u] = j < H ? w[k * H + j] : 0;
            }
}
