/* Branch-free exp, sigmoid and tanh that GCC vectorises (no libm calls in the loops).
 *
 * Included by the loop templates with REAL defined as float or double; the functions are
 * static inline so they compile into whichever instruction set the calling loop is cloned
 * for. Accuracy, measured against NumPy over [-50, 50] (tests/test_kernels.py): a few ulp
 * relative for exp and sigmoid; for tanh a few ulp relative (a rational approximation near 0,
 * where exp(-2|x|) would cancel).
 *
 * exp: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite: ln2 in two parts), exp(r) by its Taylor
 * polynomial (degree 7 in float, 13 in double: truncation below half an ulp), and 2^n built
 * in the exponent bits. The argument is clamped so that 2^n stays a normal number: exp
 * saturates at about 1.6e38 (float) / 8e307 (double) instead of overflowing to inf, and at
 * about 1e-38 / 1e-308 instead of 0. NaN passes through (the comparisons are false).
 *
 * The selects (x < lo ? lo : x) vectorise as blends only with -fno-trapping-math (setup.py)
 * below AVX-512, which has masked moves; without it those loops stay scalar.
 */
#ifndef RNNKIT_VMATH_H
#define RNNKIT_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float rk_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f; /* 0x1.8p23: adding it rounds to an integer in the low bits */
    float kd = x * 1.44269504088896341f + shift;
    uint32_t ki;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift; /* n = round(x / ln2) */
    float r = x - kd * 0.693359375f;
    r = r - kd * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t sbits = (ki + 127u) << 23; /* the low bits of ki hold n */
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

static inline double rk_exp(double x)
{
    x = x < -708.0 ? -708.0 : x;
    x = x > 709.0 ? 709.0 : x;
    const double shift = 6755399441055744.0; /* 0x1.8p52 */
    double kd = x * 1.44269504088896338700e+00 + shift;
    uint64_t ki;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift;
    double r = x - kd * 6.93147180369123816490e-01; /* ln2 high part: kd * it is exact */
    r = r - kd * 1.90821492927058770002e-10;        /* ln2 low part */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t sbits = (ki + 1023u) << 52;
    double scale;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

/* sigma(a) = 1 / (1 + exp(-a)), as the NumPy reference writes it. */
static inline float rk_sigmoidf(float a) { return 1.0f / (1.0f + rk_expf(-a)); }
static inline double rk_sigmoid(double a) { return 1.0 / (1.0 + rk_exp(-a)); }

/* tanh: (1 - e) / (1 + e) with e = exp(-2|x|) for |x| >= 0.625, Cephes' approximations of
 * tanh(x) = x + x^3 P(x^2) (float) / x + x^3 P(x^2) / Q(x^2) (double) below, where 1 - e would
 * lose relative accuracy; both are computed and one selected, so the loop stays branch-free. */
static inline float rk_tanhf(float x)
{
    float ax = x < 0.0f ? -x : x;
    float e = rk_expf(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0.0f ? -big : big;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    return ax < 0.625f ? small : big;
}

static inline double rk_tanh(double x)
{
    double ax = x < 0.0 ? -x : x;
    double e = rk_exp(-2.0 * ax);
    double big = (1.0 - e) / (1.0 + e);
    big = x < 0.0 ? -big : big;
    double z = x * x;
    double p = -9.64399179425052238628e-1;
    p = p * z - 9.92877231001918586564e1;
    p = p * z - 1.61468768441708447952e3;
    double q = z + 1.12811678491632931402e2;
    q = q * z + 2.23548839060100448583e3;
    q = q * z + 4.84406305325125486048e3;
    double small = x + x * z * (p / q);
    return ax < 0.625 ? small : big;
}

#endif
