/* One time step of a unidirectional stack of recurrent layers, for streaming inference.
 *
 * A template: variant.h includes it with REAL, SUF, SIGMOID, TANH and VB defined, after
 * microkernel.h (whose vector type it uses). The equations are those of the cell modules
 * (rnnkit/cells/rnn.py, lstm.py, gru.py), in evaluation mode, one step:
 *
 *     gi = W_ih x + b_ih,   gh = W_hh h_prev + b_hh           (G H each, G = gates)
 *     RNN:   h = act(gi + gh)
 *     LSTM:  i, f, g, o = sigma, sigma, tanh, sigma of (gi + gh);  c = f c_prev + i g;
 *            h = o tanh(c)
 *     GRU:   r, z = sigma(gi + gh) over the first 2H;  h = (1 - z) n + z h_prev with
 *            n = tanh(gi_n + r gh_n)                              reset "after"
 *            n = tanh(gi_n + W_hn (r h_prev) + b_hn)             reset "before"
 *
 * Layer l > 0 reads the new h of layer l - 1. At a batch of one row a step is two
 * matrix-vector products whose weights are read once each: the time goes into streaming the
 * weights through the cache, so the products read the parameter arrays as they are (row-major,
 * PyTorch's layout: no packing, nothing to keep in sync with the live parameters), each
 * output row a dot product over contiguous memory, VL rows at a time (VL independent chains
 * of fused multiply-adds) whose sums are folded into one vector (rk_matvec_block).
 *
 * Shapes: B = batch, D = input size, H = hidden size, G = gates (1, 3 or 4), L = layers.
 */

#define FN(name) RK_CAT(name, SUF)
#define VEC MK(rk_vec)
#define VL ((int64_t)(VB / sizeof(REAL)))

/* The sum of a vector's lanes by halving it down to 16 bytes (register extracts and vector
 * adds; a loop over the lanes compiled into stores and reloads through the stack, which
 * measured much slower: docs/performance.md). */
static inline REAL FN(rk_hsum)(VEC v)
{
    typedef REAL v16 __attribute__((vector_size(16)));
    v16 s;
#if VB >= 32
#if VB == 64
    typedef REAL v32 __attribute__((vector_size(32)));
    v32 lo32, hi32;
    memcpy(&lo32, &v, 32);
    memcpy(&hi32, (char *)&v + 32, 32);
    lo32 += hi32;
#else
    VEC lo32 = v;
#endif
    v16 lo, hi;
    memcpy(&lo, &lo32, 16);
    memcpy(&hi, (char *)&lo32 + 16, 16);
    s = lo + hi;
#else
    s = v;
#endif
    REAL lanes[16 / sizeof(REAL)];
    memcpy(lanes, &s, 16);
    return sizeof(REAL) == 4 ? (lanes[0] + lanes[2]) + (lanes[1] + lanes[3 % (16 / sizeof(REAL))])
                             : lanes[0] + lanes[1];
}

/* -- the transposing reduction ----------------------------------------------------------------
 *
 * A block of VL rows leaves VL accumulators, row r's dot product spread over the lanes of its
 * own vector. Summing each vector alone (rk_hsum) costs about as much as the multiply-adds at
 * K = 128. Instead the VL vectors are folded together, log2(VL) levels of pairs: at the level
 * of segment length s every vector holds rows in segments of s lanes, and
 *
 *     combine(a, b)  = for each segment q: [a_q low half + a_q high half,
 *                                           b_q low half + b_q high half]
 *
 * (two shuffles and an add) halves the segments and doubles the rows a vector holds, until
 * one vector holds a whole sum per lane: VL - 1 combines for VL rows instead of VL reductions.
 * Accumulator i is ordered so that the lane of the result is the row's place: the folding
 * leaves accumulator bitrev(i) in lane i (bit-reversed over log2(VL) bits), an involution, so
 * accumulator i takes row bitrev(i). */

#define RK_VLN (VB / RK_REAL_BYTES) /* VL for the preprocessor */
/* lanes of the two shuffles of combine at segment length s, in the lanes 0 .. 2 VL - 1 of the
 * pair (a, b) */
#define RK_LO(p, s)                                                                           \
    ((p) % (s) < (s) / 2 ? (p) / (s) * (s) + (p) % (s)                                        \
                         : RK_VLN + (p) / (s) * (s) + (p) % (s) - (s) / 2)
#define RK_HI(p, s) (RK_LO(p, s) + (s) / 2)
#if RK_VLN == 16
#define RK_LANES(F, s)                                                                        \
    {F(0, s),  F(1, s),  F(2, s),  F(3, s),  F(4, s),  F(5, s),  F(6, s),  F(7, s),           \
     F(8, s),  F(9, s),  F(10, s), F(11, s), F(12, s), F(13, s), F(14, s), F(15, s)}
#define RK_BITREV(i) ((((i) & 1) << 3) | (((i) & 2) << 1) | (((i) & 4) >> 1) | (((i) & 8) >> 3))
#elif RK_VLN == 8
#define RK_LANES(F, s) {F(0, s), F(1, s), F(2, s), F(3, s), F(4, s), F(5, s), F(6, s), F(7, s)}
#define RK_BITREV(i) ((((i) & 1) << 2) | ((i) & 2) | (((i) & 4) >> 2))
#elif RK_VLN == 4
#define RK_LANES(F, s) {F(0, s), F(1, s), F(2, s), F(3, s)}
#define RK_BITREV(i) ((((i) & 1) << 1) | (((i) & 2) >> 1))
#elif RK_VLN == 2
#define RK_LANES(F, s) {F(0, s), F(1, s)}
#define RK_BITREV(i) (i)
#else
#error "the transposing reduction covers 2, 4, 8 or 16 lanes"
#endif
typedef RK_LANE_INDEX FN(rk_lanes) __attribute__((vector_size(VB)));
#define RK_COMBINE(a, b, s)                                                                   \
    (__builtin_shuffle(a, b, (FN(rk_lanes))RK_LANES(RK_LO, s)) +                            \
     __builtin_shuffle(a, b, (FN(rk_lanes))RK_LANES(RK_HI, s)))
/* one level: acc[0 .. s/2) from the pairs of acc[0 .. s) */
#define RK_LEVEL(s)                                                                           \
    _Pragma("GCC unroll 8") for (int i = 0; i < (s) / 2; i++) acc[i] =                        \
        RK_COMBINE(acc[2 * i], acc[2 * i + 1], s);

/* y[j0 + r] = W[j0 + r, :] x for the VL rows of a block, r = 0 .. VL - 1, as one vector. */
static inline __attribute__((always_inline)) VEC FN(rk_matvec_block)(int64_t K,
                                                                    const REAL *restrict W,
                                                                    const REAL *restrict x)
{
    VEC acc[RK_VLN];
    const REAL *w[RK_VLN];
    _Pragma("GCC unroll 16") for (int i = 0; i < RK_VLN; i++) {
        acc[i] = (VEC){0};
        w[i] = W + RK_BITREV(i) * K;
    }
    int64_t k = 0;
    for (; k + VL <= K; k += VL) {
        VEC xv, v;
        memcpy(&xv, x + k, VB);
        _Pragma("GCC unroll 16") for (int i = 0; i < RK_VLN; i++) {
            memcpy(&v, w[i] + k, VB);
            acc[i] += v * xv;
        }
    }
#if RK_VLN >= 16
    RK_LEVEL(16)
#endif
#if RK_VLN >= 8
    RK_LEVEL(8)
#endif
#if RK_VLN >= 4
    RK_LEVEL(4)
#endif
    RK_LEVEL(2)
    if (k < K) { /* the last K % VL values of each row */
        REAL rest[RK_VLN];
        for (int r = 0; r < RK_VLN; r++) {
            REAL t = 0;
            for (int64_t kk = k; kk < K; kk++)
                t += W[r * K + kk] * x[kk];
            rest[r] = t;
        }
        VEC rv;
        memcpy(&rv, rest, VB);
        acc[0] += rv;
    }
    return acc[0];
}
#undef RK_LEVEL
#undef RK_COMBINE
#undef RK_LANES
#undef RK_BITREV
#undef RK_LO
#undef RK_HI
#undef RK_VLN

/* y[j] = W[j, :] x + b1[j] + b2[j] for j < n; W (n, K) row-major; b1, b2 may be NULL. Blocks of
 * VL rows by the transposing reduction; the last n % VL rows 4 at a time, each reduced alone. */
static void FN(rk_matvec)(int64_t n, int64_t K, const REAL *restrict W, const REAL *restrict x,
                          const REAL *b1, const REAL *b2, REAL *restrict y)
{
    int64_t j = 0;
    for (; j + VL <= n; j += VL) {
        VEC s = FN(rk_matvec_block)(K, W + j * K, x);
        memcpy(y + j, &s, VB);
    }
    for (; j + 4 <= n; j += 4) {
        const REAL *w0 = W + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        int64_t k = 0;
        for (; k + VL <= K; k += VL) {
            VEC xa, v;
            memcpy(&xa, x + k, VB);
            memcpy(&v, w0 + k, VB);
            a0 += v * xa;
            memcpy(&v, w1 + k, VB);
            a1 += v * xa;
            memcpy(&v, w2 + k, VB);
            a2 += v * xa;
            memcpy(&v, w3 + k, VB);
            a3 += v * xa;
        }
        REAL s0 = FN(rk_hsum)(a0), s1 = FN(rk_hsum)(a1);
        REAL s2 = FN(rk_hsum)(a2), s3 = FN(rk_hsum)(a3);
        for (; k < K; k++) {
            s0 += w0[k] * x[k];
            s1 += w1[k] * x[k];
            s2 += w2[k] * x[k];
            s3 += w3[k] * x[k];
        }
        y[j] = s0;
        y[j + 1] = s1;
        y[j + 2] = s2;
        y[j + 3] = s3;
    }
    for (; j < n; j++) {
        REAL s = 0;
        for (int64_t k = 0; k < K; k++)
            s += W[j * K + k] * x[k];
        y[j] = s;
    }
    for (j = 0; b1 && j < n; j++)
        y[j] += b1[j];
    for (j = 0; b2 && j < n; j++)
        y[j] += b2[j];
}

/* The elementwise part of a step over n units (the gates H apart in gi and gh), in functions
 * of their own with restrict pointers and called with a constant n = VL over whole vectors:
 * written inline in rk_step_row, GCC left these loops scalar, which cost more than the
 * products. */
#define RK_UNITS(name, ...)                                                                   \
    static inline __attribute__((always_inline)) void FN(name)(                               \
        int64_t n, int64_t H, const REAL *restrict gi, const REAL *restrict gh, __VA_ARGS__)

RK_UNITS(rk_lstm_units, const REAL *restrict c_prev, REAL *restrict c, REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL i = SIGMOID(gi[u] + gh[u]);
        REAL f = SIGMOID(gi[H + u] + gh[H + u]);
        REAL g = TANH(gi[2 * H + u] + gh[2 * H + u]);
        REAL o = SIGMOID(gi[3 * H + u] + gh[3 * H + u]);
        REAL cu = f * c_prev[u] + i * g;
        c[u] = cu;
        h[u] = o * TANH(cu);
    }
}

RK_UNITS(rk_rnn_units, int relu, REAL *restrict h)
{
    if (relu) {
#pragma GCC ivdep
        for (int64_t u = 0; u < n; u++) {
            REAL a = gi[u] + gh[u];
            h[u] = a > 0 ? a : 0;
        }
    } else {
#pragma GCC ivdep
        for (int64_t u = 0; u < n; u++)
            h[u] = TANH(gi[u] + gh[u]);
    }
}

/* GRU: r and z written into rz (r at u, z at H + u), and r h_prev into rh. */
RK_UNITS(rk_gru_rz_units, const REAL *restrict h_prev, REAL *restrict rz, REAL *restrict rh)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL r = SIGMOID(gi[u] + gh[u]);
        rz[u] = r;
        rz[H + u] = SIGMOID(gi[H + u] + gh[H + u]);
        rh[u] = r * h_prev[u];
    }
}

/* GRU: h = (1 - z) n + z h_prev, n = tanh(gi_n + r gh_n) (after) or tanh(gi_n + gh_n)
 * (before: gh_n is then W_hn (r h_prev) + b_hn). */
RK_UNITS(rk_gru_h_units, int after, const REAL *restrict rz, const REAL *restrict h_prev,
         REAL *restrict h)
{
#pragma GCC ivdep
    for (int64_t u = 0; u < n; u++) {
        REAL hn = after ? rz[u] * gh[2 * H + u] : gh[2 * H + u];
        REAL nu = TANH(gi[2 * H + u] + hn);
        REAL z = rz[H + u];
        h[u] = (1 - z) * nu + z * h_prev[u];
    }
}
#undef RK_UNITS

/* Run a units function over H units, by whole vectors (constant count) and a rest. */
#define RK_BY_VECTORS(call)                                                                   \
    for (int64_t j0 = 0; j0 < H; j0 += VL) {                                                  \
        if (H - j0 >= VL) {                                                                   \
            const int64_t n = VL;                                                             \
            call;                                                                             \
        } else {                                                                              \
            const int64_t n = H - j0;                                                         \
            call;                                                                             \
        }                                                                                     \
    }

/* One step of one layer for one row: in (K), h_prev (H) [, c_prev (H)] -> h (H) [, c (H)].
 * w: W_ih (G H, K), W_hh (G H, H), b_ih, b_hh (G H or NULL); scratch: 2 G H + 2 H values. */
/* flatten: inline the vector math too (GCC otherwise called one scalar, baseline-ISA copy of
 * tanh per unit, a third of the step's time) */
static __attribute__((flatten)) void FN(rk_step_row)(int cell, int64_t K, int64_t H, const REAL *const *w,
                            const REAL *in, const REAL *h_prev, const REAL *c_prev, REAL *h,
                            REAL *c, REAL *scratch)
{
    const int64_t G = cell == RK_LSTM ? 4 : cell >= RK_GRU_AFTER ? 3 : 1;
    REAL *gi = scratch, *gh = scratch + G * H, *rz = scratch + 2 * G * H;
    REAL *rh = rz + 2 * H;
    if (cell == RK_GRU_AFTER || cell == RK_GRU_BEFORE) {
        int after = cell == RK_GRU_AFTER;
        FN(rk_matvec)(G * H, K, w[0], in, w[2], NULL, gi);
        /* reset "before": only r and z from h_prev here; n's product needs r first */
        FN(rk_matvec)(after ? G * H : 2 * H, H, w[1], h_prev, w[3], NULL, gh);
        RK_BY_VECTORS(FN(rk_gru_rz_units)(n, H, gi + j0, gh + j0, h_prev + j0, rz + j0,
                                          rh + j0))
        if (!after)
            FN(rk_matvec)(H, H, w[1] + 2 * H * H, rh, w[3] ? w[3] + 2 * H : NULL, NULL,
                          gh + 2 * H);
        RK_BY_VECTORS(FN(rk_gru_h_units)(n, H, gi + j0, gh + j0, after, rz + j0, h_prev + j0,
                                         h + j0))
        return;
    }
    FN(rk_matvec)(G * H, K, w[0], in, w[2], w[3], gi);
    FN(rk_matvec)(G * H, H, w[1], h_prev, NULL, NULL, gh);
    if (cell == RK_LSTM)
        RK_BY_VECTORS(FN(rk_lstm_units)(n, H, gi + j0, gh + j0, c_prev + j0, c + j0, h + j0))
    else
        RK_BY_VECTORS(FN(rk_rnn_units)(n, H, gi + j0, gh + j0, cell == RK_RNN_RELU, h + j0))
}
#undef RK_BY_VECTORS

/* The whole step: every row, every layer (see rk_step in _native.c). */
static void FN(rk_step)(const rk_step_args *p)
{
    const int64_t B = p->B, H = p->H, D = p->D;
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < p->L; l++) {
            const REAL *in = l ? (const REAL *)p->h + ((l - 1) * B + b) * H
                               : (const REAL *)p->x + b * D;
            int64_t s = (l * B + b) * H;
            const REAL *c_prev = p->c_prev ? (const REAL *)p->c_prev + s : NULL;
            REAL *c = p->c ? (REAL *)p->c + s : NULL;
            FN(rk_step_row)(p->cell, l ? H : D, H, (const REAL *const *)p->w + 4 * l, in,
                            (const REAL *)p->h_prev + s, c_prev, (REAL *)p->h + s, c,
                            p->scratch);
        }
}

#undef FN
#undef VEC
#undef VL
