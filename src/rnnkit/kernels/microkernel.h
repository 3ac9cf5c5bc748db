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
 * gemm call would do).
 */

#define RK_CAT_(a, b) a##b
#define RK_CAT(a, b) RK_CAT_(a, b)
#define MK(name) RK_CAT(name, SUF)

#define NV 4
typedef REAL MK(rk_vec) __attribute__((vector_size(VB)));

/* The tile of R rows; R a constant in each instance, so that the row loops unroll. */
#define RK_DEFINE_TILE(R)                                                                     \
    static void MK(rk_tile_##R)(int64_t K, const REAL *a, int64_t lda, const REAL *panel,   \
                                REAL *out)                                                    \
    {                                                                                         \
        enum { VL = VB / sizeof(REAL) };                                                      \
        MK(rk_vec) c[R][NV];                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] = (MK(rk_vec)){0};   \
        for (int64_t k = 0; k < K; k++) {                                                     \
            const MK(rk_vec) *w = (const MK(rk_vec) *)(panel + k * NV * VL);                  \
            MK(rk_vec) w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];                            \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                             \
                REAL s = a[r * lda + k];                                                      \
                c[r][0] += w0 * s;                                                            \
                c[r][1] += w1 * s;                                                            \
                c[r][2] += w2 * s;                                                            \
                c[r][3] += w3 * s;                                                            \
            }                                                                                 \
        }                                                                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                              \
                memcpy(out + (r * NV + v) * VL, &c[r][v], VB);                                \
    }

RK_DEFINE_TILE(1)
RK_DEFINE_TILE(2)
#if MR >= 3
RK_DEFINE_TILE(3)
#endif
#if MR >= 4
RK_DEFINE_TILE(4)
#endif
#if MR >= 6
RK_DEFINE_TILE(5)
RK_DEFINE_TILE(6)
#endif

/* out (rows x NV*VL, rows <= MR) = a (rows x K, leading dimension lda) panel (K x NV*VL). */
static inline void MK(rk_tile)(int64_t rows, int64_t K, const REAL *a, int64_t lda,
                               const REAL *panel, REAL *out)
{
    switch (rows) {
    case 1: MK(rk_tile_1)(K, a, lda, panel, out); break;
    case 2: MK(rk_tile_2)(K, a, lda, panel, out); break;
#if MR >= 3
    case 3: MK(rk_tile_3)(K, a, lda, panel, out); break;
#endif
#if MR >= 4
    case 4: MK(rk_tile_4)(K, a, lda, panel, out); break;
#endif
#if MR >= 6
    case 5: MK(rk_tile_5)(K, a, lda, panel, out); break;
    case 6: MK(rk_tile_6)(K, a, lda, panel, out); break;
#endif
    default: break;
    }
}

#undef NV
