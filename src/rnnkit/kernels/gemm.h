/* The matrix products around the time loops: c = op(a) op(b) (+ bias), cache-blocked.
 *
 * A template: variant.h includes it with REAL, SUF, VB and MR defined, after microkernel.h.
 * The three products of a layer's sequence passes (rnnkit/cells/base.py) are all of this form:
 *
 *     project      xg (TB, G)  = x (TB, D)   W_ih^T     + b     a = x,    b = W_ih^T
 *     input_grads  dx (TB, D)  = da (TB, G)  W_ih                a = da,   b = W_ih
 *     outer_sum    dW (G, M)   = da^T (G, TB) a (TB, M)          a = da^T, b = a
 *
 * op(a) (i, k) is read at a[i rsa + k csa] and op(b) (k, j) at b[k rsb + j csb], so a transpose
 * is only a swap of strides; c is row-major with leading dimension ldc.
 *
 * The blocking is that of BLIS / GotoBLAS: for each block of KC values of k, op(b) is packed
 * into panels of KC x NR (NR = 4 VL columns, contiguous per k); for each block of MC rows,
 * op(a) is packed into slivers of KC x MR (MR rows contiguous per k). Each packed panel of
 * op(b) (128 KiB in both types with AVX-512: KC = 512 floats or 256 doubles) then stays in L2
 * (read by the hardware prefetcher in order) while every sliver of the row block passes
 * under it, and the tile kernel keeps its MR x NR sums in registers over the KC values:
 * one k costs NR/VL aligned loads, MR broadcasts and MR NR/VL fused multiply-adds. Past the
 * first block of k, tiles add to c. Packing pads with zeros, so the tile kernel always runs a
 * whole tile; the tiles cut by the edges of c go through a small buffer.
 *
 * One call computes rows [i0, i1) of c: blocks of rows run on different threads with no
 * synchronisation (each packs op(b) on its own: the packing is K N values against K N
 * (i1 - i0) multiply-adds).
 */

#define GF(name) RK_CAT(name, SUF)

#ifndef RK_GEMM_KC
#define RK_GEMM_KC 512 /* values of k per packed block in float (half as many in double) */
#endif
#ifndef RK_GEMM_SLIVERS
#define RK_GEMM_SLIVERS 24 /* slivers of MR rows per row block (MC = 24 MR) */
#endif

/* c (rows x cols of one tile, leading dimension ldc) = or += ap (KC x MR) bp (KC x NR);
 * on the first block of k, bias (cols values, or NULL) is added. */
static inline __attribute__((always_inline)) void
GF(rk_gemm_tile)(int64_t kc, const REAL *restrict ap, const REAL *restrict bp, REAL *c,
                 int64_t ldc, int64_t rows, int64_t cols, int first, const REAL *bias)
{
    enum { VL = VB / sizeof(REAL), NV = 4, NR = NV * VL };
    typedef MK(rk_vec) vec;
    vec acc[MR][NV];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = (vec){0};
    for (int64_t k = 0; k < kc; k++) {
        const vec *wk = (const vec *)(bp + k * NR);
        vec w[NV];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) w[v] = wk[v];
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            REAL s = ap[k * MR + r];
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] += w[v] * s;
        }
    }
    if (rows == MR && cols == NR) {
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
                REAL *p = c + r * ldc + v * VL;
                vec old;
                if (first) {
                    if (bias)
                        memcpy(&old, bias + v * VL, VB);
                    else
                        old = (vec){0};
                } else
                    memcpy(&old, p, VB);
                old += acc[r][v];
                memcpy(p, &old, VB);
            }
        return;
    }
    REAL tile[MR][NR];
    memcpy(tile, acc, sizeof tile);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            c[r * ldc + j] = (first ? (bias ? bias[j] : 0) : c[r * ldc + j]) + tile[r][j];
}

/* op(b) (k0 + [0, kc), [0, N)) into panels of kc x NR, zero past N. */
static void GF(rk_gemm_pack_b)(const rk_gemm_args *g, int64_t k0, int64_t kc, REAL *restrict out)
{
    enum { NR = 4 * VB / sizeof(REAL) };
    const REAL *b = g->b;
    for (int64_t j0 = 0; j0 < g->N; j0 += NR) {
        int64_t n = g->N - j0 < NR ? g->N - j0 : NR;
        REAL *dst = out + j0 * kc;
        if (g->csb == 1) { /* rows of op(b) contiguous */
            for (int64_t k = 0; k < kc; k++) {
                memcpy(dst + k * NR, b + (k0 + k) * g->rsb + j0, n * sizeof(REAL));
                for (int64_t j = n; j < NR; j++)
                    dst[k * NR + j] = 0;
            }
        } else { /* read each column of op(b) in order */
            for (int64_t j = 0; j < n; j++) {
                const REAL *src = b + (j0 + j) * g->csb + k0 * g->rsb;
                for (int64_t k = 0; k < kc; k++)
                    dst[k * NR + j] = src[k * g->rsb];
            }
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = n; j < NR; j++)
                    dst[k * NR + j] = 0;
        }
    }
}

/* op(a) (i0 + [0, mc), k0 + [0, kc)) into slivers of kc x MR, zero past mc. */
static void GF(rk_gemm_pack_a)(const rk_gemm_args *g, int64_t i0, int64_t mc, int64_t k0,
                               int64_t kc, REAL *restrict out)
{
    const REAL *a = g->a;
    for (int64_t s = 0; s < mc; s += MR) {
        REAL *dst = out + s * kc;
        int64_t m = mc - s < MR ? mc - s : MR;
        if (g->csa == 1) { /* rows of op(a) contiguous: read each in order */
            for (int64_t r = 0; r < m; r++) {
                const REAL *src = a + (i0 + s + r) * g->rsa + k0;
                for (int64_t k = 0; k < kc; k++)
                    dst[k * MR + r] = src[k];
            }
        } else { /* columns of op(a) contiguous (a transposed): MR values of each k in order */
            for (int64_t k = 0; k < kc; k++) {
                const REAL *src = a + (k0 + k) * g->csa + (i0 + s) * g->rsa;
                for (int64_t r = 0; r < m; r++)
                    dst[k * MR + r] = src[r * g->rsa];
            }
        }
        for (int64_t r = m; r < MR; r++)
            for (int64_t k = 0; k < kc; k++)
                dst[k * MR + r] = 0;
    }
}

/* Rows [i0, i1) of c (a rk_block_fn). Sets g->failed when its buffers cannot be had. */
static void GF(rk_gemm_rows)(const void *args, int64_t i0, int64_t i1)
{
    enum { NR = 4 * VB / sizeof(REAL), KC = RK_GEMM_KC * 4 / sizeof(REAL) };
    enum { MC = RK_GEMM_SLIVERS * MR };
    rk_gemm_args *g = (rk_gemm_args *)args;
    int64_t N = g->N, K = g->K, panels = (N + NR - 1) / NR;
    int64_t kcap = K < KC ? K : KC;
    void *base;
    REAL *bpack = rk_aligned_alloc((panels * NR + MC) * kcap * sizeof(REAL), &base);
    if (!bpack) {
        g->failed = 1;
        return;
    }
    REAL *apack = bpack + panels * NR * kcap;
    REAL *c = g->c;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        GF(rk_gemm_pack_b)(g, k0, kc, bpack);
        for (int64_t m0 = i0; m0 < i1; m0 += MC) {
            int64_t mc = i1 - m0 < MC ? i1 - m0 : MC;
            GF(rk_gemm_pack_a)(g, m0, mc, k0, kc, apack);
            for (int64_t p = 0; p < panels; p++) {
                int64_t j0 = p * NR, cols = N - j0 < NR ? N - j0 : NR;
                const REAL *bias = g->bias ? (const REAL *)g->bias + j0 : NULL;
                for (int64_t s = 0; s < mc; s += MR)
                    GF(rk_gemm_tile)(kc, apack + s * kc, bpack + j0 * kc,
                                     c + (m0 + s) * g->ldc + j0, g->ldc,
                                     mc - s < MR ? mc - s : MR, cols, k0 == 0, bias);
            }
        }
    }
    free(base);
}

#undef GF
