/* The 8-bit logarithmic code of combine_precision bfloat16_log8 (h2odl_mpi/collectives.py,
 * to_log8): non-negative float32 values against a positive scale `top`, code 254 for top and
 * each code below it 2^(-1/8) of the one above, down to code 1 (about 3e-10 top); 0 for zero
 * and for values below code 1's half step, 255 (NaN) for NaN, infinities and negative values.
 *
 * The nearest code in the logarithm, without a logarithm: r = v / top (in double, a normal
 * number for any float32 v > 0 and top) is m 2^e with m in [1, 2), so 8 log2 r = 8 e + 8 log2 m,
 * and the nearest integer to 8 log2 m is the count of the half steps 2^((j + 1/2) / 8),
 * j = 0..7, at or below m (no m is exactly on one: they are irrational).  A loop of
 * compares and integer arithmetic the compiler vectorises. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "h2odl.h"

void h2o_log8_encode(const float *v, int64_t n, float top, uint8_t *out)
{
    if (!(isfinite(top) && top > 0.0f)) {   /* no scale: zeros stay 0, the rest is NaN */
        for (int64_t i = 0; i < n; i++)
            out[i] = (isfinite(top) && v[i] == 0.0f) ? 0 : 255;
        return;
    }
    double half[H2O_LOG8_STEPS];   /* the half steps 2^((j + 1/2) / 8) */
    for (int j = 0; j < H2O_LOG8_STEPS; j++)
        half[j] = exp2((j + 0.5) / H2O_LOG8_STEPS);
    const double t = (double)top;
    for (int64_t i = 0; i < n; i++) {   /* (doubles and 64-bit lanes throughout: it vectorises) */
        const float x = v[i];
        const double r = (double)x / t;
        uint64_t bits, ebits;
        memcpy(&bits, &r, sizeof bits);
        ebits = (bits >> 52) | 0x4330000000000000ull;        /* 2^52 + the biased exponent */
        bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;   /* m in [1, 2) */
        double m, e;
        memcpy(&m, &bits, sizeof m);
        memcpy(&e, &ebits, sizeof e);
        e -= 4503599627370496.0 + 1023.0;                    /* the exponent, as a double */
        double code = 254.0 + H2O_LOG8_STEPS * e;
        for (int j = 0; j < H2O_LOG8_STEPS; j++)
            code += m >= half[j] ? 1.0 : 0.0;
        code = code < 0.0 ? 0.0 : (code > 254.0 ? 254.0 : code);
        const double special = x == 0.0f ? 0.0 : 255.0;
        out[i] = (uint8_t)(int)((x > 0.0f && x <= FLT_MAX) ? code : special);
    }
}
