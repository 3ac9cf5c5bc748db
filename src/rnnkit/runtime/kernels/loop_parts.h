/* Pieces the time loops of every cell share: the backward product over packed row panels, the
 * start of the backward loop, and the carrying of states over padded steps.
 *
 * A template like microkernel.h (REAL, VB, MR, SUF defined), included after it. Each function
 * works on the rows [b0, b1) of a batch, as the loops do.
 *
 * Shapes: B = batch, H = hidden size, VL = values per vector, TILE = 4 VL.
 */

/* out[b] (+)= a[b] W[k0 : k0 + K] for b in [b0, b1): a's rows lda apart (K values each), out's
 * H apart; W (rows x H) packed by rk_pack_rows, the product reading its rows [k0, k0 + K).
 * Stores when add is 0, adds when 1 (a constant at each call, so the branch folds). */
static inline __attribute__((always_inline)) void MK(rk_product_rows)(
    int64_t b0, int64_t b1, int64_t H, const REAL *a, int64_t lda, int64_t K,
    const REAL *packed, int64_t rows, int64_t k0, REAL *out, int add)
{
    enum { TILE = 4 * VB / sizeof(REAL) };
    REAL prod[MR * TILE];
    for (int64_t j0 = 0; j0 < H; j0 += TILE) {
        const REAL *panel = packed + (j0 / TILE * rows + k0) * TILE;
        int64_t n = H - j0 < TILE ? H - j0 : TILE;
        for (int64_t m = b0; m < b1; m += MR) {
            int64_t tile_rows = b1 - m < MR ? b1 - m : MR;
            MK(rk_tile)(tile_rows, K, a + m * lda, lda, panel, prod);
            for (int64_t r = 0; r < tile_rows; r++) {
                REAL *o = out + (m + r) * H + j0;
                const REAL *p = prod + r * TILE;
                if (add)
                    for (int64_t u = 0; u < n; u++)
                        o[u] += p[u];
                else
                    memcpy(o, p, n * sizeof(REAL));
            }
        }
    }
}

/* The gradient at the last hidden state: dh[b] = dh_T[b] + dhs[T - 1][b]. */
static void MK(rk_backward_start)(int64_t b0, int64_t b1, int64_t T, int64_t B, int64_t H,
                                  const REAL *dhs, const REAL *dh_T, REAL *dh)
{
    const REAL *dhs_last = dhs + (T - 1) * B * H;
    for (int64_t j = b0 * H; j < b1 * H; j++)
        dh[j] = dh_T[j] + dhs_last[j];
}

/* Padded steps carry the state: s_t[b] = s_prev[b] where mask_t[b] is False (mask_t: (B,)). */
static void MK(rk_carry)(int64_t b0, int64_t b1, int64_t H, const unsigned char *mask_t,
                         const REAL *s_prev, REAL *s_t)
{
    for (int64_t b = b0; b < b1; b++)
        if (!mask_t[b])
            memcpy(s_t + b * H, s_prev + b * H, H * sizeof(REAL));
}

/* A padded step passes the gradient at h straight on: dh += dhs_prev (NULL at t = 0), the
 * gradient from outside at the previous step. */
static inline void MK(rk_pass_through)(int64_t H, const REAL *restrict dhs_prev,
                                       REAL *restrict dh)
{
    if (dhs_prev)
        for (int64_t j = 0; j < H; j++)
            dh[j] += dhs_prev[j];
}

/* Whether row r's step is padded (mask[r] False), and if so its backward: no gate gradients
 * (da = 0, G values) and the gradient at h passing straight on (see rk_pass_through). */
static inline int MK(rk_padded)(const unsigned char *mask, int64_t r, int64_t G, int64_t H,
                                const REAL *dhs_prev, REAL *dh, REAL *da)
{
    if (!mask || mask[r])
        return 0;
    memset(da, 0, G * sizeof(REAL));
    MK(rk_pass_through)(H, dhs_prev, dh);
    return 1;
}
