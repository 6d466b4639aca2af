/* dispatch.c -- the exported entry points of h2odl.h: each forwards to the widest
 * instruction-set variant of net.c that this CPU supports, chosen once at first call.
 * A native build (-march=native) makes the baseline variant itself use the host's ISA. */
#include "h2odl.h"

#include <stdlib.h>
#include <string.h>

#define DECLARE_VARIANT(sfx)                                                                   \
    int h2o_layout_of_##sfx(const h2o_config *, h2o_layout *);                                \
    int h2o_train_##sfx(const h2o_config *, float *, float *, int, const h2o_rows *,          \
                        const int64_t *, int64_t, int64_t, uint64_t, h2o_train_stats *);      \
    int h2o_train_replicas_##sfx(const h2o_config *, float *, float *, float *, int,           \
                                 const h2o_rows *, const int64_t *, int64_t, int64_t, uint64_t, \
                                 h2o_train_stats *);                                           \
    int h2o_predict_##sfx(const h2o_config *, const float *, float *, int64_t, int,            \
                          const h2o_rows *, int, int, float *);                                                \
    int h2o_gradient_##sfx(const h2o_config *, const float *, float *, const h2o_rows *,      \
                           int64_t, float *);
DECLARE_VARIANT(base)
#if defined(__x86_64__) && defined(__GNUC__)
DECLARE_VARIANT(avx2)
DECLARE_VARIANT(avx512)
#endif

typedef struct {
    int (*train)(const h2o_config *, float *, float *, int, const h2o_rows *, const int64_t *,
                 int64_t, int64_t, uint64_t, h2o_train_stats *);
    int (*train_replicas)(const h2o_config *, float *, float *, float *, int, const h2o_rows *,
                          const int64_t *, int64_t, int64_t, uint64_t, h2o_train_stats *);
    int (*predict)(const h2o_config *, const float *, float *, int64_t, int, const h2o_rows *,
                   int, int, float *);
    int (*gradient)(const h2o_config *, const float *, float *, const h2o_rows *, int64_t,
                    float *);
    const char *name;
} variant_t;

/* The widest variant the CPU runs, or the one named by H2ODL_ISA (baseline, avx2, avx512)
 * when the CPU can run it: tests use it to check every variant against the reference. */
static const variant_t *pick(void) {
    static const variant_t base = {h2o_train_base, h2o_train_replicas_base, h2o_predict_base,
                                   h2o_gradient_base, "baseline"};
    const char *want = getenv("H2ODL_ISA");
    if (want && strcmp(want, "baseline") == 0) return &base;
#if defined(__x86_64__) && defined(__GNUC__)
    static const variant_t avx2 = {h2o_train_avx2, h2o_train_replicas_avx2, h2o_predict_avx2,
                                   h2o_gradient_avx2, "avx2"};
    static const variant_t avx512 = {h2o_train_avx512, h2o_train_replicas_avx512,
                                     h2o_predict_avx512, h2o_gradient_avx512, "avx512"};
    __builtin_cpu_init();
    const int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") &&
                           __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (want && strcmp(want, "avx2") == 0 && has_avx2) return &avx2;
    if (has_avx512) return &avx512;
    if (has_avx2) return &avx2;
#endif
    return &base;
}

static const variant_t *chosen(void) {
    static const variant_t *v = NULL; /* first call comes from Python, single-threaded */
    if (!v) v = pick();
    return v;
}

const char *h2o_isa(void) { return chosen()->name; }

int h2o_layout_of(const h2o_config *c, h2o_layout *out) { return h2o_layout_of_base(c, out); }

int h2o_train(const h2o_config *c, float *model, float *ws, int nt, const h2o_rows *d,
              const int64_t *order, int64_t n, int64_t before, uint64_t seed,
              h2o_train_stats *st) {
    return chosen()->train(c, model, ws, nt, d, order, n, before, seed, st);
}

int h2o_train_replicas(const h2o_config *c, float *model, float *replicas, float *ws, int nt,
                       const h2o_rows *d, const int64_t *order, int64_t n, int64_t before,
                       uint64_t seed, h2o_train_stats *st) {
    return chosen()->train_replicas(c, model, replicas, ws, nt, d, order, n, before, seed, st);
}

int h2o_predict(const h2o_config *c, const float *model, float *ws, int64_t ws_floats, int nt,
                const h2o_rows *d, int what, int layer, float *out) {
    return chosen()->predict(c, model, ws, ws_floats, nt, d, what, layer, out);
}

int h2o_gradient(const h2o_config *c, const float *model, float *ws, const h2o_rows *d,
                 int64_t row, float *grad) {
    return chosen()->gradient(c, model, ws, d, row, grad);
}
