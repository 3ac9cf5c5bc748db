/* The LSTM's time loops, forward and backward, for one floating type and instruction set.
 *
 * A template: variant.h includes it with REAL, SUF, SIGMOID, TANH, VB and MR defined, after
 * microkernel.h and loop_parts.h. The equations, and the layout of the states and the saved
 * values, are those of the NumPy reference, rnnkit/cells/lstm.py and rnnkit/cells/timeloop.py:
 * gates (T, B, 4H) hold the activated i, f, g, o, tanh_c (T, B, H) holds tanh(c~), and at a
 * masked step both still hold the step's candidate values while h and c are carried.
 *
 * Forward, each step: for each panel of VL hidden units and each tile of up to MR batch rows,
 * the micro-kernel computes the tile's pre-activations h_prev W_hh^T of all four gates (the
 * packed weights interleave the gates unit by unit), and the gate nonlinearities and the state
 * update of those units follow at once, while the tile is in L1. Backward, each step: the
 * gate gradients of every row (one pass), then dh_prev += da W_hh by the micro-kernel.
 *
 * Each loop runs over a block of batch rows [b0, b1): rows never interact, so blocks can run
 * on different threads with no synchronisation inside the time loop.
 *
 * Shapes: T = time steps, B = batch, H = hidden size, G = 4H, VL = values per vector.
 */

#define FN(name) RK_CAT(name, SUF)
#define VL ((int64_t)(VB / sizeof(REAL)))
#define TILE (4 * VL) /* columns of a tile */

/* Packed W_hh for the forward product: 4 gates of VL units a panel (see rk_pack_gates). */
static int64_t FN(lstm_pack_forward_size)(int64_t H) { return FN(rk_pack_gates_size)(H, 4, VL); }

static void FN(lstm_pack_forward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_gates)(w_hh, H, 0, 4, VL, out);
}

/* Packed W_hh for the backward product, panels of its 4H rows (see rk_pack_rows). */
static int64_t FN(lstm_pack_backward_size)(int64_t H) { return FN(rk_pack_rows_size)(H, 4 * H); }

static void FN(lstm_pack_backward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_rows)(w_hh, H, 4 * H, out);
}

/* n units of one row of one step: from the pre-activations pre (the four gates VL apart) and
 * xg (H apart), the activated gates (written to a, H apart), c~ = f c_prev + i g, tanh(c~) and
 * h~ = o tanh(c~). */
static inline __attribute__((always_inline)) void FN(lstm_forward_units)(int64_t n, int64_t H, const REAL *restrict pre,
                                          const REAL *restrict xg,
                                          const REAL *restrict c_prev, REAL *restrict a,
                                          REAL *restrict c, REAL *restrict tanh_c,
                                          REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL i = SIGMOID(pre[u] + xg[u]);
        REAL f = SIGMOID(pre[VL + u] + xg[H + u]);
        REAL g = TANH(pre[2 * VL + u] + xg[2 * H + u]);
        REAL o = SIGMOID(pre[3 * VL + u] + xg[3 * H + u]);
        a[u] = i;
        a[H + u] = f;
        a[2 * H + u] = g;
        a[3 * H + u] = o;
        REAL cu = f * c_prev[u] + i * g;
        REAL tc = TANH(cu);
        c[u] = cu;
        tanh_c[u] = tc;
        h[u] = o * tc;
    }
}

/* One row of one backward step. In: dh, dc, the gradients at this step's h and c (dh already
 * holding dhs[t]). Out: da (4H), dc <- dL/dc_prev, and dh <- dhs_prev (the gradient from
 * outside at the previous step, or 0 at t = 0): the caller then adds da W_hh into dh. */
static inline void FN(lstm_backward_row)(int64_t H, const REAL *restrict a,
                                         const REAL *restrict tanh_c,
                                         const REAL *restrict c_prev,
                                         const REAL *restrict dhs_prev, REAL *restrict dh,
                                         REAL *restrict dc, REAL *restrict da)
{
    for (int64_t j = 0; j < H; j++) {
        REAL i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        REAL tc = tanh_c[j], dhj = dh[j];
        REAL dct = dc[j] + dhj * o * (1 - tc * tc);
        da[j] = dct * g * (i * (1 - i));
        da[H + j] = dct * c_prev[j] * (f * (1 - f));
        da[2 * H + j] = dct * i * (1 - g * g);
        da[3 * H + j] = dhj * tc * (o * (1 - o));
        dc[j] = dct * f;
    }
    if (dhs_prev)
        memcpy(dh, dhs_prev, H * sizeof(REAL));
    else
        memset(dh, 0, H * sizeof(REAL));
}

static void FN(lstm_forward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_lstm_fwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H;
    const unsigned char *mask = p->c.mask;
    const REAL *xg = p->xg, *packed = p->c.packed;
    REAL *hs = p->hs, *cs = p->cs, *gates = p->gates, *tanh_c = p->tanh_c;
    REAL pre[MR * TILE];
    for (int64_t t = 0; t < T; t++) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        const REAL *c_prev = t ? cs + (t - 1) * B * H : (const REAL *)p->c0;
        for (int64_t j0 = 0; j0 < H; j0 += VL) { /* panel: units j0 .. j0 + VL */
            const REAL *panel = packed + j0 * TILE / VL * H;
            int64_t n = H - j0 < VL ? H - j0 : VL;
            for (int64_t m = b0; m < b1; m += MR) { /* tile: rows m .. m + MR */
                int64_t rows = b1 - m < MR ? b1 - m : MR;
                FN(rk_tile)(rows, H, h_prev + m * H, H, panel, pre);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t b = m + r, row = (t * B + b) * H + j0;
                    const REAL *pre_r = pre + r * TILE, *xg_r = xg + 4 * row - 3 * j0;
                    const REAL *c_prev_r = c_prev + b * H + j0;
                    REAL *a_r = gates + 4 * row - 3 * j0;
                    /* a whole panel with a constant count, which GCC turns into whole vectors
                     * with no checks (with a variable one it ran scalar code for AVX2) */
                    if (n == VL)
                        FN(lstm_forward_units)(VL, H, pre_r, xg_r, c_prev_r, a_r, cs + row,
                                               tanh_c + row, hs + row);
                    else
                        FN(lstm_forward_units)(n, H, pre_r, xg_r, c_prev_r, a_r, cs + row,
                                               tanh_c + row, hs + row);
                }
            }
        }
        if (mask) {
            FN(rk_carry)(b0, b1, H, mask + t * B, h_prev, hs + t * B * H);
            FN(rk_carry)(b0, b1, H, mask + t * B, c_prev, cs + t * B * H);
        }
    }
}

static void FN(lstm_backward_block)(const void *args, int64_t b0, int64_t b1)
{
    const rk_lstm_bwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H, G = 4 * H;
    const unsigned char *mask = p->c.mask;
    const REAL *dhs = p->dhs, *cs = p->cs, *gates = p->gates, *tanh_c = p->tanh_c;
    const REAL *packed = p->c.packed, *dc_T = p->dc_T;
    REAL *da = p->da, *dh = p->dh0, *dc = p->dc0; /* dh, dc: the running gradients */
    FN(rk_backward_start)(b0, b1, T, B, H, dhs, p->dh_T, dh);
    memcpy(dc + b0 * H, dc_T + b0 * H, (b1 - b0) * H * sizeof(REAL));
    for (int64_t t = T - 1; t >= 0; t--) {
        const REAL *c_prev = t ? cs + (t - 1) * B * H : (const REAL *)p->c0;
        REAL *da_t = da + t * B * G;
        for (int64_t b = b0; b < b1; b++) {
            int64_t r = t * B + b;
            const REAL *dhs_prev = t ? dhs + (r - B) * H : NULL;
            if (FN(rk_padded)(mask, r, G, H, dhs_prev, dh + b * H, da_t + b * G))
                continue; /* dc passes through unchanged */
            FN(lstm_backward_row)(H, gates + r * G, tanh_c + r * H, c_prev + b * H, dhs_prev,
                                  dh + b * H, dc + b * H, da_t + b * G);
        }
        /* dh[b0:b1] += da_t[b0:b1] W_hh: (n, 4H) x (4H, H) */
        FN(rk_product_rows)(b0, b1, H, da_t, G, G, packed, G, 0, dh, 1);
    }
}

#undef FN
#undef VL
#undef TILE
