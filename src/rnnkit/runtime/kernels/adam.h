/* One step of Adam / AdamW on one parameter, every element in one pass (the optimisers' NumPy rule,
 * rnnkit/optim/updates.py:adam, makes about ten passes over the arrays, each from memory once
 * the model outgrows the cache).
 *
 * A template: variant.h includes it with REAL and SUF defined, in each instruction set (the
 * vectorised square roots and divisions are what it costs: scalar, they took longer than
 * NumPy's passes), with the contraction of products and sums into fused multiply-adds off,
 * so that each operation rounds as NumPy's does. The operations and their order are exactly
 * those of the NumPy rule, with the hyper-parameters rounded to REAL as NumPy rounds a Python
 * float meeting a REAL array, so the result is the same bits:
 *
 *     g = grad (+ wd theta)                         (L2 weight decay, not decoupled)
 *     theta = theta * keep                          (decoupled: keep = 1 - lr wd)
 *     m = m + w (g - m)       if |w| < 0.5,  else  m = g - (g - m) (1 - w)     (w = 1 - beta1)
 *     v = v beta2;  v = v + ((1 - beta2) g) g
 *     vmax = max(vmax, v)                           (amsgrad; then v_hat = vmax, else v)
 *     theta = theta + (neg_step m) / (sqrt(v_hat) / bc2_sqrt + eps)
 *
 * with neg_step = -lr / (1 - beta1^t) and bc2_sqrt = (1 - beta2^t)^0.5 made by the caller.
 */

#define AF(name) RK_CAT(name, SUF)

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

/* Elements [i0, i1), with the choices of the rule as constants (each call below is its own
 * branch-free loop, which the compiler vectorises). */
static inline __attribute__((always_inline)) void AF(rk_adam_loop)(const rk_adam_args *a,
                                                                   int64_t i0, int64_t i1,
                                                                   const int small_w,
                                                                   const int l2,
                                                                   const int decoupled,
                                                                   const int ams)
{
    REAL *restrict p = a->param, *restrict m = a->exp_avg, *restrict v = a->exp_avg_sq;
    REAL *restrict vmax = a->max_exp_avg_sq;
    const REAL *restrict grad = a->grad;
    const REAL w = (REAL)a->w, w1 = (REAL)a->one_minus_w, beta2 = (REAL)a->beta2;
    const REAL b2 = (REAL)a->one_minus_beta2, wd = (REAL)a->weight_decay;
    const REAL keep = (REAL)a->keep, c2 = (REAL)a->bc2_sqrt, eps = (REAL)a->eps;
    const REAL neg_step = (REAL)a->neg_step;
    for (int64_t i = i0; i < i1; i++) {
        REAL theta = p[i], g = grad[i];
        if (l2)
            g = g + wd * theta;
        if (decoupled)
            theta = theta * keep;
        REAL d = g - m[i];
        REAL mi = small_w ? m[i] + w * d : g - d * w1;
        REAL vi = v[i] * beta2;
        vi = vi + (b2 * g) * g;
        REAL h = vi;
        if (ams) { /* np.maximum: NaN from either side */
            REAL x = vmax[i];
            h = (x < vi || vi != vi) ? vi : x;
            vmax[i] = h;
        }
        REAL denom = RK_ADAM_SQRT(h) / c2 + eps; /* correctly rounded, as np.sqrt */
        m[i] = mi;
        v[i] = vi;
        p[i] = theta + (neg_step * mi) / denom;
    }
}

static void AF(rk_adam_rows)(const void *args, int64_t i0, int64_t i1)
{
    const rk_adam_args *a = args;
    int ams = a->max_exp_avg_sq != NULL;
#define RK_ADAM_CASE(l2, dec)                                                                 \
    if (a->small_w)                                                                           \
        ams ? AF(rk_adam_loop)(a, i0, i1, 1, l2, dec, 1)                                      \
            : AF(rk_adam_loop)(a, i0, i1, 1, l2, dec, 0);                                     \
    else                                                                                      \
        ams ? AF(rk_adam_loop)(a, i0, i1, 0, l2, dec, 1)                                      \
            : AF(rk_adam_loop)(a, i0, i1, 0, l2, dec, 0);
    if (a->l2) {
        RK_ADAM_CASE(1, 0)
    } else if (a->decoupled) {
        RK_ADAM_CASE(0, 1)
    } else {
        RK_ADAM_CASE(0, 0)
    }
#undef RK_ADAM_CASE
}

#pragma GCC pop_options
#undef AF
