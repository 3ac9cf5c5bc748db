/* The GRU's time loops, both reset forms, forward and backward, for one floating type and
 * instruction set.
 *
 * A template: variant.h includes it with REAL, SUF, SIGMOID, TANH, VB and MR defined, after
 * microkernel.h and loop_parts.h. The equations, and the layout of the states and the saved
 * values, are those of the NumPy reference, rnnkit/cells/gru.py and rnnkit/cells/timeloop.py:
 * gates (T, B, 3H) hold the activated r, z, n, and for reset "after" hn (T, B, H) holds
 * W_hn h_prev + b_hn; at a masked step they still hold the step's candidate values while h is
 * carried.
 *
 * Reset "after", forward, each step: for each panel of VL hidden units and each tile of up to
 * MR batch rows, the micro-kernel (3 vectors wide) computes the tile's h_prev W_hh^T of all
 * three gates (the packed weights interleave the gates unit by unit), and the gates and the
 * new state of those units follow at once, while the tile is in L1. Backward, each step: the
 * gate gradients da and those of the recurrent product dgh of every row (one pass), then
 * dh_prev += dgh W_hh by the micro-kernel.
 *
 * Reset "before" needs two products a step, the second on r * h_prev: forward, the panels of
 * r and z (2 VL units of both gates a panel) give r and z and r * h_prev (into the scratch),
 * then the panels of n (4 VL units) give n and the new state. Backward: da_z and da_n of every
 * row, then rho = da_n W_hn (into the scratch), then da_r and dh_prev = dhs_prev + dh z +
 * rho r, then dh_prev += [da_r, da_z] W_{hr,hz}.
 *
 * Each loop runs over a block of batch rows [b0, b1): rows never interact, so blocks can run
 * on different threads with no synchronisation inside the time loop.
 *
 * Shapes: T = time steps, B = batch, H = hidden size, G = 3H, VL = values per vector.
 */

#define FN(name) RK_CAT(name, SUF)
#define VL ((int64_t)(VB / sizeof(REAL)))
#define TILE (4 * VL) /* columns of a 4-vector tile */

/* -- packings --------------------------------------------------------------------------------- */

/* Reset "after", forward: 3 gates of VL units a panel (see rk_pack_gates). */
static int64_t FN(gru_after_pack_forward_size)(int64_t H)
{
    return FN(rk_pack_gates_size)(H, 3, VL);
}

static void FN(gru_after_pack_forward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_gates)(w_hh, H, 0, 3, VL, out);
}

/* Reset "before", forward: the r and z rows, 2 gates of 2 VL units a panel, then the n rows,
 * 4 VL units a panel. */
static int64_t FN(gru_before_pack_rz_size)(int64_t H)
{
    return FN(rk_pack_gates_size)(H, 2, 2 * VL);
}

static int64_t FN(gru_before_pack_forward_size)(int64_t H)
{
    return FN(gru_before_pack_rz_size)(H) + FN(rk_pack_gates_size)(H, 1, TILE);
}

static void FN(gru_before_pack_forward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_gates)(w_hh, H, 0, 2, 2 * VL, out);
    FN(rk_pack_gates)(w_hh, H, 2, 1, TILE, (REAL *)out + FN(gru_before_pack_rz_size)(H));
}

/* Both forms, backward: panels of the 3H rows (see rk_pack_rows). */
static int64_t FN(gru_pack_backward_size)(int64_t H) { return FN(rk_pack_rows_size)(H, 3 * H); }

static void FN(gru_pack_backward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_rows)(w_hh, H, 3 * H, out);
}

/* -- reset "after" ----------------------------------------------------------------------------- */

/* n units of one row of one step: from pre = h_prev W_hh^T (the three gates VL apart), b_hh and
 * xg (H apart), the activated gates (into a, H apart), hn = pre_n + b_hn and
 * h~ = (1 - z) n + z h_prev. */
static inline __attribute__((always_inline)) void FN(gru_after_forward_units)(
    int64_t n, int64_t H, const REAL *restrict pre, const REAL *restrict xg,
    const REAL *restrict b, const REAL *restrict h_prev, REAL *restrict a, REAL *restrict hn,
    REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL r = SIGMOID(xg[u] + (pre[u] + b[u]));
        REAL z = SIGMOID(xg[H + u] + (pre[VL + u] + b[H + u]));
        REAL hn_u = pre[2 * VL + u] + b[2 * H + u];
        REAL n_u = TANH(r * hn_u + xg[2 * H + u]);
        a[u] = r;
        a[H + u] = z;
        a[2 * H + u] = n_u;
        hn[u] = hn_u;
        h[u] = (h_prev[u] - n_u) * z + n_u;
    }
}

static void FN(gru_after_forward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_gru_fwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H;
    const unsigned char *mask = p->c.mask;
    const REAL *xg = p->xg, *packed = p->c.packed, *b_hh = p->b_hh;
    REAL *hs = p->hs, *gates = p->gates, *hn = p->hn;
    REAL pre[MR * 3 * VL];
    for (int64_t t = 0; t < T; t++) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        for (int64_t j0 = 0; j0 < H; j0 += VL) { /* panel: units j0 .. j0 + VL */
            const REAL *panel = packed + j0 * 3 * H;
            int64_t n = H - j0 < VL ? H - j0 : VL;
            for (int64_t m = b0; m < b1; m += MR) { /* tile: rows m .. m + MR */
                int64_t rows = b1 - m < MR ? b1 - m : MR;
                FN(rk_tile3)(rows, H, h_prev + m * H, H, panel, pre);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t b = m + r, row = (t * B + b) * H + j0;
                    const REAL *pre_r = pre + r * 3 * VL, *xg_r = xg + 3 * row - 2 * j0;
                    const REAL *h_prev_r = h_prev + b * H + j0;
                    REAL *a_r = gates + 3 * row - 2 * j0;
                    /* a whole panel with a constant count: whole vectors, no checks */
                    if (n == VL)
                        FN(gru_after_forward_units)(VL, H, pre_r, xg_r, b_hh + j0, h_prev_r, a_r,
                                                    hn + row, hs + row);
                    else
                        FN(gru_after_forward_units)(n, H, pre_r, xg_r, b_hh + j0, h_prev_r, a_r,
                                                    hn + row, hs + row);
                }
            }
        }
        if (mask)
            FN(rk_carry)(b0, b1, H, mask + t * B, h_prev, hs + t * B * H);
    }
}

/* One row of one backward step. In: dh, the gradient at this step's h (dhs[t] included). Out:
 * da and dgh (3H each), and dh <- dh z + dhs_prev (dhs_prev NULL at t = 0): the caller then
 * adds dgh W_hh into dh. */
static inline void FN(gru_after_backward_row)(int64_t H, const REAL *restrict a,
                                              const REAL *restrict hn,
                                              const REAL *restrict h_prev,
                                              const REAL *restrict dhs_prev, REAL *restrict dh,
                                              REAL *restrict da, REAL *restrict dgh)
{
    for (int64_t j = 0; j < H; j++) {
        REAL r = a[j], z = a[H + j], n = a[2 * H + j], d = dh[j];
        REAL dan = d * (1 - z) * (1 - n * n);
        REAL daz = d * (h_prev[j] - n) * (z * (1 - z));
        REAL dar = dan * hn[j] * (r * (1 - r));
        da[j] = dar;
        da[H + j] = daz;
        da[2 * H + j] = dan;
        dgh[j] = dar;
        dgh[H + j] = daz;
        dgh[2 * H + j] = dan * r;
        dh[j] = d * z;
    }
    FN(rk_pass_through)(H, dhs_prev, dh); /* not in the loop: its test would keep it scalar */
}

static void FN(gru_after_backward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_gru_bwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H, G = 3 * H;
    const unsigned char *mask = p->c.mask;
    const REAL *dhs = p->dhs, *hs = p->hs, *gates = p->gates, *hn = p->hn;
    const REAL *packed = p->c.packed;
    REAL *da = p->da, *dgh = p->dgh, *dh = p->dh0; /* dh: the running gradient */
    FN(rk_backward_start)(b0, b1, T, B, H, dhs, p->dh_T, dh);
    for (int64_t t = T - 1; t >= 0; t--) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        REAL *da_t = da + t * B * G, *dgh_t = dgh + t * B * G;
        for (int64_t b = b0; b < b1; b++) {
            int64_t r = t * B + b;
            const REAL *dhs_prev = t ? dhs + (r - B) * H : NULL;
            if (FN(rk_padded)(mask, r, G, H, dhs_prev, dh + b * H, da_t + b * G)) {
                memset(dgh_t + b * G, 0, G * sizeof(REAL));
                continue;
            }
            FN(gru_after_backward_row)(H, gates + r * G, hn + r * H, h_prev + b * H, dhs_prev,
                                       dh + b * H, da_t + b * G, dgh_t + b * G);
        }
        /* dh[b0:b1] += dgh_t[b0:b1] W_hh: (n, 3H) x (3H, H) */
        FN(rk_product_rows)(b0, b1, H, dgh_t, G, G, packed, G, 0, dh, 1);
    }
}

/* -- reset "before" ---------------------------------------------------------------------------- */

/* n units of one row of one step, r and z: from pre = h_prev W_{hr,hz}^T (the two gates 2 VL
 * apart) and xg (H apart), r and z (into a, H apart) and r * h_prev (into rh). */
static inline __attribute__((always_inline)) void FN(gru_before_rz_units)(
    int64_t n, int64_t H, const REAL *restrict pre, const REAL *restrict xg,
    const REAL *restrict h_prev, REAL *restrict a, REAL *restrict rh)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL r = SIGMOID(xg[u] + pre[u]);
        REAL z = SIGMOID(xg[H + u] + pre[2 * VL + u]);
        a[u] = r;
        a[H + u] = z;
        rh[u] = r * h_prev[u];
    }
}

/* n units of one row of one step, n and the state: from pre = (r h_prev) W_hn^T, xg_n and z,
 * n (into a_n) and h~ = (1 - z) n + z h_prev. */
static inline __attribute__((always_inline)) void FN(gru_before_n_units)(
    int64_t n, const REAL *restrict pre, const REAL *restrict xg_n, const REAL *restrict z,
    const REAL *restrict h_prev, REAL *restrict a_n, REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL n_u = TANH(xg_n[u] + pre[u]);
        a_n[u] = n_u;
        h[u] = (h_prev[u] - n_u) * z[u] + n_u;
    }
}

static void FN(gru_before_forward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_gru_fwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H, G = 3 * H;
    const unsigned char *mask = p->c.mask;
    const REAL *xg = p->xg, *packed_rz = p->c.packed;
    const REAL *packed_n = packed_rz + FN(gru_before_pack_rz_size)(H);
    REAL *hs = p->hs, *gates = p->gates, *rh = p->c.scratch; /* rh: r * h_prev (B, H) */
    REAL pre[MR * TILE];
    for (int64_t t = 0; t < T; t++) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        for (int64_t j0 = 0; j0 < H; j0 += 2 * VL) { /* panel: r, z of units j0 .. j0 + 2 VL */
            const REAL *panel = packed_rz + j0 * 2 * H;
            int64_t n = H - j0 < 2 * VL ? H - j0 : 2 * VL;
            for (int64_t m = b0; m < b1; m += MR) {
                int64_t rows = b1 - m < MR ? b1 - m : MR;
                FN(rk_tile)(rows, H, h_prev + m * H, H, panel, pre);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t b = m + r, g = (t * B + b) * G + j0;
                    const REAL *pre_r = pre + r * TILE, *h_prev_r = h_prev + b * H + j0;
                    if (n == 2 * VL)
                        FN(gru_before_rz_units)(2 * VL, H, pre_r, xg + g, h_prev_r, gates + g,
                                                rh + b * H + j0);
                    else
                        FN(gru_before_rz_units)(n, H, pre_r, xg + g, h_prev_r, gates + g,
                                                rh + b * H + j0);
                }
            }
        }
        for (int64_t j0 = 0; j0 < H; j0 += TILE) { /* panel: n of units j0 .. j0 + 4 VL */
            const REAL *panel = packed_n + j0 * H;
            int64_t n = H - j0 < TILE ? H - j0 : TILE;
            for (int64_t m = b0; m < b1; m += MR) {
                int64_t rows = b1 - m < MR ? b1 - m : MR;
                FN(rk_tile)(rows, H, rh + m * H, H, panel, pre);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t b = m + r, g = (t * B + b) * G + j0, row = (t * B + b) * H + j0;
                    const REAL *pre_r = pre + r * TILE, *h_prev_r = h_prev + b * H + j0;
                    if (n == TILE)
                        FN(gru_before_n_units)(TILE, pre_r, xg + g + 2 * H, gates + g + H,
                                               h_prev_r, gates + g + 2 * H, hs + row);
                    else
                        FN(gru_before_n_units)(n, pre_r, xg + g + 2 * H, gates + g + H, h_prev_r,
                                               gates + g + 2 * H, hs + row);
                }
            }
        }
        if (mask)
            FN(rk_carry)(b0, b1, H, mask + t * B, h_prev, hs + t * B * H);
    }
}

static void FN(gru_before_backward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_gru_bwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H, G = 3 * H;
    const unsigned char *mask = p->c.mask;
    const REAL *dhs = p->dhs, *hs = p->hs, *gates = p->gates, *packed = p->c.packed;
    REAL *da = p->da, *dh = p->dh0, *rho = p->c.scratch; /* rho: dL/d(r h_prev) (B, H) */
    FN(rk_backward_start)(b0, b1, T, B, H, dhs, p->dh_T, dh);
    for (int64_t t = T - 1; t >= 0; t--) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        REAL *da_t = da + t * B * G;
        for (int64_t b = b0; b < b1; b++) { /* da_z, da_n; da = 0 at padding */
            int64_t r = t * B + b;
            const REAL *a = gates + r * G, *h_prev_b = h_prev + b * H, *dh_b = dh + b * H;
            REAL *da_b = da_t + b * G;
            if (mask && !mask[r]) {
                memset(da_b, 0, G * sizeof(REAL));
                continue;
            }
            for (int64_t j = 0; j < H; j++) {
                REAL z = a[H + j], n = a[2 * H + j], d = dh_b[j];
                da_b[2 * H + j] = d * (1 - z) * (1 - n * n);
                da_b[H + j] = d * (h_prev_b[j] - n) * (z * (1 - z));
            }
        }
        /* rho[b0:b1] = da_n[b0:b1] W_hn: (n, H) x (H, H) */
        FN(rk_product_rows)(b0, b1, H, da_t + 2 * H, G, H, packed, G, 2 * H, rho, 0);
        for (int64_t b = b0; b < b1; b++) { /* da_r, and dh <- dh z + rho r + dhs_prev */
            int64_t r = t * B + b;
            const REAL *dhs_prev = t ? dhs + (r - B) * H : NULL;
            const REAL *a = gates + r * G, *h_prev_b = h_prev + b * H, *rho_b = rho + b * H;
            REAL *da_b = da_t + b * G, *dh_b = dh + b * H;
            if (mask && !mask[r]) {
                FN(rk_pass_through)(H, dhs_prev, dh_b);
                continue;
            }
            for (int64_t j = 0; j < H; j++) {
                REAL r_j = a[j], z = a[H + j];
                da_b[j] = rho_b[j] * h_prev_b[j] * (r_j * (1 - r_j));
                dh_b[j] = dh_b[j] * z + rho_b[j] * r_j;
            }
            FN(rk_pass_through)(H, dhs_prev, dh_b);
        }
        /* dh[b0:b1] += [da_r, da_z][b0:b1] W_{hr,hz}: (n, 2H) x (2H, H) */
        FN(rk_product_rows)(b0, b1, H, da_t, G, 2 * H, packed, G, 0, dh, 1);
    }
}

#undef FN
#undef VL
#undef TILE
