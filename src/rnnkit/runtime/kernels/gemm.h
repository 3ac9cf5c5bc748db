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
 * op(b) (192 KiB in both types with AVX-512: KC = 768 floats or 384 doubles) then stays in L2
 * (read by the hardware prefetcher in order) while every sliver of the row block passes
 * under it, and the tile kernel keeps its MR x NR sums in registers over the KC values:
 * one k costs NR/VL aligned loads, MR broadcasts and MR NR/VL fused multiply-adds. Past the
 * first block of k, tiles add to c. Packing pads with zeros, so the tile kernel always runs a
 * whole tile; the tiles cut by the edges of c go through a small buffer, and a panel cut by
 * the last column runs only the vectors it needs (N = 650: 10 columns cost 1 vector, not 4).
 * The blocks of k have even lengths (K = 1000: 500 + 500, not 768 + 232). KC = 768 rather
 * than 512 (faster on the large products), but 512 where op(a) is read in place (below),
 * where 768 ran no better (docs/performance.md).
 *
 * Where op(b) has at most RK_GEMM_DIRECT_PANELS panels (N <= 128 float32 with AVX-512: the
 * input gradient and the weight gradients of the smaller layers), each value of op(a) serves
 * one or two tiles: packing it would cost as much as those tiles' multiply-adds
 * (docs/performance.md). The tiles then read op(a) where it is, MR rows at a time (the MR
 * values of a k are contiguous in a transposed a, and each row is a stream the prefetcher
 * follows in a); only a last sliver of fewer than MR rows is packed (a tile reads MR rows,
 * and the missing ones would be read past the end of a).
 *
 * One call computes rows [i0, i1) of c: blocks of rows run on different threads with no
 * synchronisation. With more than one block, the entry point has op(b) packed whole, once,
 * before the blocks start (while the helper threads wake up), instead of once per block: a
 * long K with few rows gains most (docs/performance.md). Not beyond RK_GEMM_SHARE_BYTES
 * (_native.c) of packed op(b), nor on one thread: a single block packs op(b) a block of k at a
 * time, fresh in L2 when its tiles read it.
 *
 * The row sums of op(a) (the bias gradient db beside dW = da^T x) are added up in double, as
 * each block of op(a) is packed, or just before the tiles read it in place: that block is
 * then read from cache twice, not from memory.
 */

#define GF(name) RK_CAT(name, SUF)

#ifndef RK_GEMM_KC
#define RK_GEMM_KC 768 /* values of k per block in float (half as many in double) */
#endif
#ifndef RK_GEMM_KC_DIRECT
#define RK_GEMM_KC_DIRECT 512 /* the same, where op(a) is read in place */
#endif
#ifndef RK_GEMM_AHEAD
#define RK_GEMM_AHEAD 8 /* rows of a transposed a prefetched ahead of its packing: measured
                         * faster, and 16 no better (docs/performance.md) */
#endif
#ifndef RK_GEMM_DIRECT_PANELS
#define RK_GEMM_DIRECT_PANELS 2 /* op(a) read in place (not packed) up to this many panels */
#endif
#ifndef RK_GEMM_KB
#define RK_GEMM_KB 64 /* values of k per step of the packing of a transposed b */
#endif
#ifndef RK_GEMM_SLIVERS
#define RK_GEMM_SLIVERS 24 /* slivers of MR rows per row block (MC = 24 MR) */
#endif

/* c (rows x cols of one tile, leading dimension ldc) = or += op(a) (MR x kc) bp (kc x NR),
 * op(a) (r, k) at ap[r ars + k aks] (a packed sliver: ars = 1, aks = MR), with
 * the first NV vectors of each row of the panel only (NV = ceil(cols / VL): an edge panel of
 * 10 columns costs one vector per k, not four); on the first block of k, bias (cols values, or
 * NULL) is added. Inlined with NV a constant, so that the accumulators live in registers. */
static inline __attribute__((always_inline)) void
GF(rk_gemm_tile_nv)(const int NV, int64_t kc, const REAL *restrict ap, int64_t ars, int64_t aks,
                    const REAL *restrict bp, REAL *c, int64_t ldc, int64_t rows, int64_t cols,
                    int first, const REAL *bias)
{
    enum { VL = VB / sizeof(REAL), NR = 4 * VL };
    typedef MK(rk_vec) vec;
    vec acc[MR][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = (vec){0};
    for (int64_t k = 0; k < kc; k++) {
        const vec *wk = (const vec *)(bp + k * NR);
        vec w[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) w[v] = wk[v];
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            REAL s = ap[r * ars + k * aks];
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] += w[v] * s;
        }
    }
    if (rows == MR && cols == NV * VL) {
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
    REAL tile[MR][4 * VL];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
            memcpy(&tile[r][v * VL], &acc[r][v], VB);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            c[r * ldc + j] = (first ? (bias ? bias[j] : 0) : c[r * ldc + j]) + tile[r][j];
}

#define RK_GEMM_TILE_CASES(ars, aks)                                                          \
    switch ((cols + VL - 1) / VL) {                                                           \
    case 1: GF(rk_gemm_tile_nv)(1, kc, ap, ars, aks, bp, c, ldc, rows, cols, first, bias); break; \
    case 2: GF(rk_gemm_tile_nv)(2, kc, ap, ars, aks, bp, c, ldc, rows, cols, first, bias); break; \
    case 3: GF(rk_gemm_tile_nv)(3, kc, ap, ars, aks, bp, c, ldc, rows, cols, first, bias); break; \
    default: GF(rk_gemm_tile_nv)(4, kc, ap, ars, aks, bp, c, ldc, rows, cols, first, bias); break; \
    }

/* A tile on a packed sliver of op(a): op(a) (r, k) at ap[k MR + r]. */
static void GF(rk_gemm_tile)(int64_t kc, const REAL *restrict ap, const REAL *restrict bp,
                             REAL *c, int64_t ldc, int64_t rows, int64_t cols, int first,
                             const REAL *bias)
{
    enum { VL = VB / sizeof(REAL) };
    RK_GEMM_TILE_CASES(1, MR)
}

/* A tile on MR whole rows of op(a) read where they are: op(a) (r, k) at ap[r ars + k aks]. */
static void GF(rk_gemm_tile_direct)(int64_t kc, const REAL *restrict ap, int64_t ars,
                                    int64_t aks, const REAL *restrict bp, REAL *c, int64_t ldc,
                                    int64_t cols, int first, const REAL *bias)
{
    enum { VL = VB / sizeof(REAL) };
    int64_t rows = MR;
    RK_GEMM_TILE_CASES(ars, aks)
}
#undef RK_GEMM_TILE_CASES

/* op(b) (k0 + [0, kc), [0, N)) into panels of kc x NR, zero past N. */
static void GF(rk_gemm_pack_b)(const rk_gemm_args *g, int64_t k0, int64_t kc, REAL *restrict out)
{
    enum { NR = 4 * VB / sizeof(REAL), KB = RK_GEMM_KB };
    const REAL *b = g->b;
    for (int64_t j0 = 0; j0 < g->N; j0 += NR) {
        int64_t n = g->N - j0 < NR ? g->N - j0 : NR;
        REAL *dst = out + j0 * kc;
        if (g->csb == 1) { /* rows of op(b) contiguous */
            for (int64_t k = 0; k < kc; k++) {
                const REAL *src = b + (k0 + k) * g->rsb + j0;
                if (n == NR) {
                    memcpy(dst + k * NR, src, NR * sizeof(REAL));
                } else {
                    memcpy(dst + k * NR, src, n * sizeof(REAL));
                    memset(dst + k * NR + n, 0, (NR - n) * sizeof(REAL));
                }
            }
            continue;
        }
        /* columns of op(b) contiguous (b transposed): KB values of each column at a time, so
         * that the KB rows of the panel they fill (16 KiB for 64 floats) stay in L1 until all
         * NR columns have filled them; a whole column at a time wrote across kc rows of the
         * panel, in L2; both that and KB = 16 measured slower (docs/performance.md) */
        for (int64_t kb = 0; kb < kc; kb += KB) {
            int64_t nk = kc - kb < KB ? kc - kb : KB;
            REAL *d = dst + kb * NR;
            for (int64_t j = 0; j < n; j++) {
                const REAL *src = b + (j0 + j) * g->csb + (k0 + kb) * g->rsb;
                for (int64_t k = 0; k < nk; k++)
                    d[k * NR + j] = src[k * g->rsb];
            }
            if (n < NR)
                for (int64_t k = 0; k < nk; k++)
                    memset(d + k * NR + n, 0, (NR - n) * sizeof(REAL));
        }
    }
}

/* sums[i] += sum_k op(a) (i0 + i, k0 + k) for i in [0, mc), in double (see rk_gemm_pack_a). */
static void GF(rk_gemm_sum_a)(const rk_gemm_args *g, int64_t i0, int64_t mc, int64_t k0,
                              int64_t kc, double *restrict sums)
{
    const REAL *a = g->a;
    if (g->csa == 1) {
        for (int64_t i = 0; i < mc; i++) { /* eight partial sums: eight chains of adds, not one */
            const REAL *row = a + (i0 + i) * g->rsa + k0;
            double part[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8)
                _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++) part[u] += row[k + u];
            for (; k < kc; k++)
                part[0] += row[k];
            sums[i] += ((part[0] + part[4]) + (part[1] + part[5])) +
                       ((part[2] + part[6]) + (part[3] + part[7]));
        }
        return;
    }
    for (int64_t k = 0; k < kc; k++) { /* rows of a in order, mc sums side by side */
        const REAL *src = a + (k0 + k) * g->csa + i0 * g->rsa;
        for (int64_t i = 0; i < mc; i++)
            sums[i] += src[i];
    }
}

/* op(a) (i0 + [0, mc), k0 + [0, kc)) into slivers of kc x MR, zero past mc; and, unless sums
 * is NULL, sums[i] += sum_k op(a) (i0 + i, k0 + k) for i in [0, mc) (in double: the row sums
 * of a long K, K = T B for a bias gradient, lose nothing to the float32 sum; and the packing
 * reads every value of op(a) once anyway, so they cost one add each).
 *
 * The entry point makes two kinds of op(a): a itself (csa = 1, rows of op(a) contiguous) and
 * a transposed (rsa = 1, columns of op(a) contiguous). */
static void GF(rk_gemm_pack_a)(const rk_gemm_args *g, int64_t i0, int64_t mc, int64_t k0,
                               int64_t kc, REAL *restrict out, double *restrict sums)
{
    const REAL *a = g->a;
    int64_t full = mc / MR * MR; /* rows of whole slivers */
    if (g->csa == 1) {
        for (int64_t s = 0; s < mc; s += MR) {
            REAL *dst = out + s * kc;
            int64_t m = mc - s < MR ? mc - s : MR;
            const REAL *src = a + (i0 + s) * g->rsa + k0;
            if (m == MR) { /* MR rows read in order side by side, the sliver written in order */
                for (int64_t k = 0; k < kc; k++)
                    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                        dst[k * MR + r] = src[r * g->rsa + k];
            } else {
                for (int64_t k = 0; k < kc; k++)
                    for (int64_t r = 0; r < MR; r++)
                        dst[k * MR + r] = r < m ? src[r * g->rsa + k] : 0;
            }
        }
        if (sums)
            GF(rk_gemm_sum_a)(g, i0, mc, k0, kc, sums);
        return;
    }
    /* a transposed: the mc values of op(a) at each k are contiguous. k outer, across every
     * sliver, so that each row of a is read once and in order (the other way round, a sliver
     * at a time, reads MR values of each row of a at a time and comes back for the next MR
     * up to 24 times, from L2); each sliver's MR values of a k are one block. */
    enum { LINE = 64 / sizeof(REAL), AHEAD = RK_GEMM_AHEAD };
    for (int64_t k = 0; k < kc; k++) {
        const REAL *src = a + (k0 + k) * g->csa + i0 * g->rsa;
        /* the rows of a are far apart (csa values): no prefetcher follows them far enough
         * ahead, and the copy would wait on every line */
        if (AHEAD && k + AHEAD < kc)
            for (int64_t i = 0; i < mc; i += LINE)
                __builtin_prefetch(src + AHEAD * g->csa + i);
        for (int64_t s = 0; s < full; s += MR) {
            REAL *dst = out + s * kc + k * MR;
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) dst[r] = src[s + r];
        }
        if (full < mc) {
            REAL *dst = out + full * kc + k * MR;
            for (int64_t r = 0; r < MR; r++)
                dst[r] = full + r < mc ? src[full + r] : 0;
        }
        if (sums)
            for (int64_t i = 0; i < mc; i++)
                sums[i] += src[i];
    }
}

/* The blocks of k of a product: their panels of op(b) and their length, even (K = 1000: 500 +
 * 500, not 768 + 232: a short last block would re-read and re-write c for few multiply-adds). */
static inline int64_t GF(rk_gemm_kstep)(const rk_gemm_args *g, int64_t *panels)
{
    enum { NR = 4 * VB / sizeof(REAL) };
    *panels = (g->N + NR - 1) / NR;
    int direct = *panels <= RK_GEMM_DIRECT_PANELS;
    int64_t KC = (direct ? RK_GEMM_KC_DIRECT : RK_GEMM_KC) * 4 / (int64_t)sizeof(REAL);
    int64_t kblocks = (g->K + KC - 1) / KC;
    return (g->K + kblocks - 1) / kblocks;
}

/* op(b) whole, every block of k one after the other, into g->bpack (allocated here, its base in
 * g->bpack_base), so that the blocks of rows share one packing; the pack hook of rk_run_blocks
 * (args: the rk_gemm_args), run by the calling thread while the helpers start. */
static void GF(rk_gemm_pack_shared)(const void *args, int64_t unused, void *unused_too)
{
    enum { NR = 4 * VB / sizeof(REAL) };
    (void)unused;
    (void)unused_too;
    rk_gemm_args *g = (rk_gemm_args *)args;
    int64_t panels, kstep = GF(rk_gemm_kstep)(g, &panels), K = g->K;
    REAL *all = rk_aligned_alloc(panels * NR * K * sizeof(REAL), &g->bpack_base);
    if (!all) {
        g->failed = 1;
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += kstep) /* block k0 at all + k0 panels NR */
        GF(rk_gemm_pack_b)(g, k0, K - k0 < kstep ? K - k0 : kstep, all + k0 * panels * NR);
    g->bpack = all;
}

/* Rows [i0, i1) of c, and of row_sums (a rk_block_fn). Sets g->failed when its buffers cannot
 * be had. Reads op(b) from g->bpack when rk_gemm_pack_shared made it; else each block packs its
 * own, one block of k at a time. */
static void GF(rk_gemm_rows)(const void *args, int64_t i0, int64_t i1)
{
    enum { NR = 4 * VB / sizeof(REAL) };
    enum { MC = RK_GEMM_SLIVERS * MR };
    rk_gemm_args *g = (rk_gemm_args *)args;
    int64_t panels, kstep = GF(rk_gemm_kstep)(g, &panels), K = g->K, N = g->N;
    int direct = panels <= RK_GEMM_DIRECT_PANELS;
    if (g->failed)
        return;
    const REAL *shared = g->bpack;
    void *base;
    REAL *buf = rk_aligned_alloc(((shared ? 0 : panels * NR) + MC) * kstep * sizeof(REAL), &base);
    double *sums = g->row_sums ? calloc((size_t)(i1 - i0), sizeof(double)) : NULL;
    if (!buf || (g->row_sums && !sums)) {
        free(base);
        free(sums);
        g->failed = 1;
        return;
    }
    REAL *apack = buf, *own = buf + MC * kstep;
    REAL *c = g->c;
    const REAL *a = g->a;
    for (int64_t k0 = 0; k0 < K; k0 += kstep) {
        int64_t kc = K - k0 < kstep ? K - k0 : kstep;
        const REAL *bpack = shared ? shared + k0 * panels * NR : own;
        if (!shared)
            GF(rk_gemm_pack_b)(g, k0, kc, own);
        for (int64_t m0 = i0; m0 < i1; m0 += MC) {
            int64_t mc = i1 - m0 < MC ? i1 - m0 : MC;
            if (direct) { /* op(a) unpacked; each sliver under every panel in turn */
                if (sums)
                    GF(rk_gemm_sum_a)(g, m0, mc, k0, kc, sums + (m0 - i0));
                int64_t s = 0;
                for (; s + MR <= mc; s += MR)
                    for (int64_t p = 0; p < panels; p++) {
                        int64_t j0 = p * NR, cols = N - j0 < NR ? N - j0 : NR;
                        const REAL *bias = g->bias ? (const REAL *)g->bias + j0 : NULL;
                        GF(rk_gemm_tile_direct)(kc, a + (m0 + s) * g->rsa + k0 * g->csa,
                                                g->rsa, g->csa, bpack + j0 * kc,
                                                c + (m0 + s) * g->ldc + j0, g->ldc, cols,
                                                k0 == 0, bias);
                    }
                if (s < mc) { /* the rows past the last whole tile, through a sliver */
                    GF(rk_gemm_pack_a)(g, m0 + s, mc - s, k0, kc, apack, NULL);
                    for (int64_t p = 0; p < panels; p++) {
                        int64_t j0 = p * NR, cols = N - j0 < NR ? N - j0 : NR;
                        const REAL *bias = g->bias ? (const REAL *)g->bias + j0 : NULL;
                        GF(rk_gemm_tile)(kc, apack, bpack + j0 * kc, c + (m0 + s) * g->ldc + j0,
                                         g->ldc, mc - s, cols, k0 == 0, bias);
                    }
                }
                continue;
            }
            GF(rk_gemm_pack_a)(g, m0, mc, k0, kc, apack, sums ? sums + (m0 - i0) : NULL);
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
    if (sums)
        for (int64_t i = i0; i < i1; i++)
            ((REAL *)g->row_sums)[i] = (REAL)sums[i - i0];
    free(base);
    free(sums);
}

#undef GF
