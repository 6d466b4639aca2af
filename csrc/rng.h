/* rng.h -- counter-based random streams for dropout masks.
 * A stream is keyed by (seed, sample number), so a row's masks do not depend on which
 * thread trains it.  splitmix64 seeds the stream; xorshift64* draws from it. */
#ifndef H2ODL_RNG_H
#define H2ODL_RNG_H

#include <stdint.h>

static inline uint64_t h2o_splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

typedef struct { uint64_t s; } h2o_rng;

static inline h2o_rng h2o_rng_for(uint64_t seed, uint64_t counter, uint64_t salt) {
    h2o_rng r;
    r.s = h2o_splitmix64(seed ^ h2o_splitmix64(counter * 0x2545F4914F6CDD1DULL + salt));
    if (r.s == 0) r.s = 0x853C49E6748FEA9BULL;
    return r;
}

/* uniform in [0, 1) with 24 random bits */
static inline float h2o_rng_uniform(h2o_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return (float)((x * 0x2545F4914F6CDD1DULL) >> 40) * (1.0f / 16777216.0f);
}

#endif
