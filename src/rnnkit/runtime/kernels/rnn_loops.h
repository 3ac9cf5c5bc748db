/* The vanilla RNN's time loops, tanh and ReLU, forward and backward, for one floating type and
 * instruction set.
 *
 * A template: variant.h includes it with REAL, SUF, TANH, VB and MR defined, after
 * microkernel.h and loop_parts.h. The equations, and the layout of the states and the saved
 * values, are those of the NumPy reference, rnnkit/cells/rnn.py and rnnkit/cells/timeloop.py:
 * h_cand (T, B, H) holds each step's update h~ = phi(xg_t + h_prev W_hh^T), also at a masked
 * step, where h is carried; the backward pass reads phi' from it.
 *
 * Forward, each step: for each panel of 4 VL hidden units and each tile of up to MR batch
 * rows, the micro-kernel computes the tile's h_prev W_hh^T, and phi follows at once, while the
 * tile is in L1. Backward, each step: da = dh phi' of every row (one pass), then
 * dh_prev = dhs_prev + da W_hh by the micro-kernel. Each nonlinearity has its own loops (phi
 * is a constant in the inner loops).
 *
 * Each loop runs over a block of batch rows [b0, b1): rows never interact, so blocks can run
 * on different threads with no synchronisation inside the time loop.
 *
 * Shapes: T = time steps, B = batch, H = hidden size, VL = values per vector.
 */

#define FN(name) RK_CAT(name, SUF)
#define VL ((int64_t)(VB / sizeof(REAL)))
#define TILE (4 * VL) /* columns of a tile */

/* Packed W_hh for the forward product: 4 VL units a panel (see rk_pack_gates). */
static int64_t FN(rnn_pack_forward_size)(int64_t H) { return FN(rk_pack_gates_size)(H, 1, TILE); }

static void FN(rnn_pack_forward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_gates)(w_hh, H, 0, 1, TILE, out);
}

/* Packed W_hh for the backward product (see rk_pack_rows). */
static int64_t FN(rnn_pack_backward_size)(int64_t H) { return FN(rk_pack_rows_size)(H, H); }

static void FN(rnn_pack_backward)(const void *w_hh, int64_t H, void *out)
{
    FN(rk_pack_rows)(w_hh, H, H, out);
}

/* n units of one row of one step: h~ = phi(xg + pre) into h_cand and h. NaN stays NaN in ReLU,
 * as in np.maximum. */
static inline __attribute__((always_inline)) void FN(rnn_forward_units)(
    int64_t n, int relu, const REAL *restrict pre, const REAL *restrict xg,
    REAL *restrict h_cand, REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL s = xg[u] + pre[u];
        REAL v = relu ? (s < 0 ? 0 : s) : TANH(s);
        h_cand[u] = v;
        h[u] = v;
    }
}

static inline __attribute__((always_inline)) void FN(rnn_forward)(const void *args, int64_t b0,
                                                                  int64_t b1, int relu)
{
    const rk_rnn_fwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H;
    const unsigned char *mask = p->c.mask;
    const REAL *xg = p->xg, *packed = p->c.packed;
    REAL *hs = p->hs, *h_cand = p->h_cand;
    REAL pre[MR * TILE];
    for (int64_t t = 0; t < T; t++) {
        const REAL *h_prev = t ? hs + (t - 1) * B * H : (const REAL *)p->h0;
        for (int64_t j0 = 0; j0 < H; j0 += TILE) { /* panel: units j0 .. j0 + 4 VL */
            const REAL *panel = packed + j0 * H;
            int64_t n = H - j0 < TILE ? H - j0 : TILE;
            for (int64_t m = b0; m < b1; m += MR) { /* tile: rows m .. m + MR */
                int64_t rows = b1 - m < MR ? b1 - m : MR;
                FN(rk_tile)(rows, H, h_prev + m * H, H, panel, pre);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t row = (t * B + m + r) * H + j0;
                    /* a whole panel with a constant count: whole vectors, no checks */
                    if (n == TILE)
                        FN(rnn_forward_units)(TILE, relu, pre + r * TILE, xg + row, h_cand + row,
                                              hs + row);
                    else
                        FN(rnn_forward_units)(n, relu, pre + r * TILE, xg + row, h_cand + row,
                                              hs + row);
                }
            }
        }
        if (mask)
            FN(rk_carry)(b0, b1, H, mask + t * B, h_prev, hs + t * B * H);
    }
}

static inline __attribute__((always_inline)) void FN(rnn_backward)(const void *args, int64_t b0,
                                                                   int64_t b1, int relu)
{
    const rk_rnn_bwd *p = args;
    const int64_t T = p->c.T, B = p->c.B, H = p->c.H;
    const unsigned char *mask = p->c.mask;
    const REAL *dhs = p->dhs, *h_cand = p->h_cand, *packed = p->c.packed;
    REAL *da = p->da, *dh = p->dh0; /* dh: the running gradient */
    FN(rk_backward_start)(b0, b1, T, B, H, dhs, p->dh_T, dh);
    for (int64_t t = T - 1; t >= 0; t--) {
        REAL *da_t = da + t * B * H;
        for (int64_t b = b0; b < b1; b++) {
            int64_t r = t * B + b;
            const REAL *dhs_prev = t ? dhs + (r - B) * H : NULL;
            REAL *da_b = da_t + b * H, *dh_b = dh + b * H;
            if (FN(rk_padded)(mask, r, H, H, dhs_prev, dh_b, da_b))
                continue;
            const REAL *h = h_cand + r * H;
            for (int64_t j = 0; j < H; j++)
                da_b[j] = relu ? (h[j] > 0 ? dh_b[j] : 0) : dh_b[j] * (1 - h[j] * h[j]);
            if (dhs_prev)
                memcpy(dh_b, dhs_prev, H * sizeof(REAL));
            else
                memset(dh_b, 0, H * sizeof(REAL));
        }
        /* dh[b0:b1] += da_t[b0:b1] W_hh: (n, H) x (H, H) */
        FN(rk_product_rows)(b0, b1, H, da_t, H, H, packed, H, 0, dh, 1);
    }
}

/* The loops of each nonlinearity, for the dispatch table. */
static void FN(rnn_tanh_forward_block)(const void *args, int64_t b0, int64_t b1)
{
    FN(rnn_forward)(args, b0, b1, 0);
}

static void FN(rnn_tanh_backward_block)(const void *args, int64_t b0, int64_t b1)
{
    FN(rnn_backward)(args, b0, b1, 0);
}

static void FN(rnn_relu_forward_block)(const void *args, int64_t b0, int64_t b1)
{
    FN(rnn_forward)(args, b0, b1, 1);
}

static void FN(rnn_relu_backward_block)(const void *args, int64_t b0, int64_t b1)
{
    FN(rnn_backward)(args, b0, b1, 1);
}

#undef FN
#undef VL
#undef TILE
