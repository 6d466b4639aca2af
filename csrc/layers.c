/*
 * layers.c -- the kernel's math on plain arrays, one layer or one row of weights at a time:
 * the hidden activations (each one's forward next to its derivative), a layer's forward
 * pass, the output losses and their gradients, and the optimizers' update sweeps.  The
 * network itself (buffer layout, workspace, rows, the passes over all layers, the entry
 * points) is net.c, which #includes this file once per instruction-set variant: everything
 * here is static and inlined into that variant.  The math is documented in h2odl.h.
 */
#include "h2odl.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------ */
/* scalar helpers                                                                       */

static float sgnf(float v) { return (float)((v > 0.f) - (v < 0.f)); }

/* 1/sqrt(x) for normal x > 0: an integer first guess and two Newton steps (relative error
 * below 1e-6).  Plain arithmetic, so the sweeps vectorise it; H2O-3 itself uses an
 * approximate square root for the ADADELTA rate. */
static inline float rsqrt_newton(float x) {
    union { float f; int32_t i; } u = {x};
    u.i = 0x5F375A86 - (u.i >> 1);
    float y = u.f;
    const float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

/* ADADELTA's rate sqrt((Edx2 + eps) / (Eg2 + eps)) = A / sqrt(A B), A, B >= eps > 0 */
static inline float adadelta_rate(float dx2, float g2, float eps) {
    const float A = dx2 + eps, B = g2 + eps;
    return A * rsqrt_newton(A * B);
}

/* ------------------------------------------------------------------------------------ */
/* activations                                                                          */

/* Each hidden activation's forward a = f(net) next to its backward g = e f'(a).  The
 * backward functions are called for units with a != 0 only (a zero activation passes no
 * error back), except Maxout's, which writes both channels of every unit. */

_Static_assert(H2O_N_ACTIVATIONS == 4, "an activation needs its pair below and a case in "
                                       "hidden_activate and hidden_backprop");

/* Tanh: a = tanh(net); f' = 1 - a^2 */
static inline float tanh_forward(float net) { return tanhf(net); }
static inline float tanh_backward(float e, float a) { return e * (1.f - a * a); }

/* Rectifier: a = max(0, net); f' = [a > 0] = 1 wherever a != 0 */
static inline float rectifier_forward(float net) { return net > 0.f ? net : 0.f; }
static inline float rectifier_backward(float e, float a) { (void)a; return e; }

/* ExpRectifier: a = net >= 0 ? net : exp(net) - 1; f' = a > 0 ? 1 : a + 1 */
static inline float exprectifier_forward(float net) { return net >= 0.f ? net : expm1f(net); }
static inline float exprectifier_backward(float e, float a) { return a > 0.f ? e : e * (a + 1.f); }

/* Maxout over a unit's two channels net2[0..1]: a = the larger, *win = its channel (ties go
 * to channel 0); f' = 1 on the winning channel, 0 on the other (g2[0..1]; both 0 if a == 0) */
static inline float maxout_forward(const float *net2, int32_t *win) {
    const int c = net2[1] > net2[0];
    *win = c;
    return net2[c];
}
static inline void maxout_backward(float e, float a, int32_t win, float *g2) {
    const float v = a != 0.f ? e : 0.f;
    g2[win] = v;
    g2[1 - win] = 0.f;
}

/* ------------------------------------------------------------------------------------ */
/* one layer forward                                                                    */

/* Few non-zero inputs (sparse data, one-hot codes): gather/scatter over them only. */
static int use_sparse_path(int n_act, int U_in) { return 4 * n_act < U_in; }

/* net_j = b_j + sum_i W[j,i] a_i for the R rows of one layer (output-major W).  Rows of
 * dropped units (keep[j / ch] == 0) get net 0; a holds zeros at inactive inputs.  Dense
 * rows are done four at a time: four independent accumulators share each load of a[i],
 * which keeps the FMA units busy instead of waiting on one dependency chain. */
static void layer_forward(const float *restrict W, const float *restrict b, int R, int U_in,
                          const float *restrict a, const int32_t *restrict idx, int n_act,
                          const float *keep, int ch, float *restrict net) {
    int j = 0;
    if (use_sparse_path(n_act, U_in)) {
        for (; j < R; j++) {
            const float *restrict wr = W + (size_t)j * U_in;
            float s = 0.f;
            for (int k = 0; k < n_act; k++) s += wr[idx[k]] * a[idx[k]];
            net[j] = b[j] + s;
        }
    } else {
        for (; j + 4 <= R; j += 4) {
            const float *restrict w0 = W + (size_t)j * U_in, *restrict w1 = w0 + U_in;
            const float *restrict w2 = w1 + U_in, *restrict w3 = w2 + U_in;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int i = 0; i < U_in; i++) {
                const float ai = a[i];
                s0 += w0[i] * ai; s1 += w1[i] * ai; s2 += w2[i] * ai; s3 += w3[i] * ai;
            }
            net[j] = b[j] + s0; net[j + 1] = b[j + 1] + s1;
            net[j + 2] = b[j + 2] + s2; net[j + 3] = b[j + 3] + s3;
        }
        for (; j < R; j++) {
            const float *restrict wr = W + (size_t)j * U_in;
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < U_in; i++) s += wr[i] * a[i];
            net[j] = b[j] + s;
        }
    }
    if (keep)
        for (j = 0; j < R; j++)
            if (keep[j / ch] == 0.f) net[j] = 0.f;
}

/* hidden activation of U units from net (2U channels for Maxout); keep = dropout mask or
 * NULL; scale multiplies the result (1 - dropout ratio when scoring).  Returns the number
 * of non-zero activations, listed in idx. */
static int hidden_activate(int act, const float *restrict net, int U, const float *keep,
                           float scale, float *restrict a, int32_t *restrict amax,
                           int32_t *restrict idx) {
    int n = 0;
    for (int u = 0; u < U; u++) {
        float v;
        if (keep && keep[u] == 0.f) {
            a[u] = 0.f;
            if (act == H2O_MAXOUT) amax[u] = 0; /* (a dropped unit's channel: backward reads it) */
            continue;
        }
        switch (act) {
        case H2O_TANH: v = tanh_forward(net[u]); break;
        case H2O_RECTIFIER: v = rectifier_forward(net[u]); break;
        case H2O_EXPRECTIFIER: v = exprectifier_forward(net[u]); break;
        default: v = maxout_forward(net + 2 * u, &amax[u]); break; /* H2O_MAXOUT */
        }
        v *= scale;
        a[u] = v;
        if (v != 0.f) idx[n++] = u;
    }
    return n;
}

/* e -> g for U units of hidden kind act (2U channels for Maxout); zero activations pass
 * nothing */
static void hidden_backprop(int act, const float *restrict a, const float *restrict e,
                            const int32_t *amax, int U, float *restrict g) {
    if (act == H2O_MAXOUT) {
        for (int u = 0; u < U; u++) maxout_backward(e[u], a[u], amax[u], g + 2 * u);
        return;
    }
    for (int u = 0; u < U; u++) {
        const float au = a[u];
        float v = 0.f;
        if (au != 0.f) {
            switch (act) {
            case H2O_TANH: v = tanh_backward(e[u], au); break;
            case H2O_RECTIFIER: v = rectifier_backward(e[u], au); break;
            default: v = exprectifier_backward(e[u], au); break; /* H2O_EXPRECTIFIER */
            }
        }
        g[u] = v;
    }
}

static void softmax(const float *net, int K, float *y) {
    float mx = net[0];
    for (int k = 1; k < K; k++) mx = net[k] > mx ? net[k] : mx;
    float s = 0.f;
    for (int k = 0; k < K; k++) { y[k] = expf(net[k] - mx); s += y[k]; }
    const float inv = 1.f / s;
    for (int k = 0; k < K; k++) y[k] *= inv;
}

/* ------------------------------------------------------------------------------------ */
/* losses of a LINEAR output: each loss next to its gradient                            */

_Static_assert(H2O_N_LOSSES == 8, "a loss needs a case in linear_neg_grad");

static int is_log_link(int loss) {
    return loss == H2O_LOSS_POISSON || loss == H2O_LOSS_GAMMA || loss == H2O_LOSS_TWEEDIE;
}

/* -dLoss/dy of a LINEAR output in link space, and the loss itself.  H2O-3's output gradient
 * (Neurons.Linear.setOutputLayerGradient) is -2 x its distribution's negHalfGradient: twice
 * the residual for gaussian (Quadratic), huber, poisson, gamma, tweedie and bernoulli;
 * laplace (Absolute) and quantile have half-gradients +-0.5 and 0.5 alpha / 0.5 (alpha - 1),
 * so theirs are +-1 and alpha / alpha - 1.  Each loss is the one whose -d/dy that is (H2O's
 * deviance, up to a constant for the log-link and logistic ones). */
static float linear_neg_grad(const h2o_config *c, float t, float y, float *loss) {
    const float r = t - y, p = c->tweedie_power, d = c->huber_delta, q = c->quantile_alpha;
    switch (c->loss) {
    case H2O_LOSS_ABSOLUTE: *loss = fabsf(r); return y > t ? -1.f : 1.f;
    case H2O_LOSS_HUBER:
        if (fabsf(r) <= d) { *loss = r * r; return 2.f * r; }
        *loss = d * (2.f * fabsf(r) - d); return 2.f * d * sgnf(r);
    case H2O_LOSS_QUANTILE: *loss = r > 0.f ? q * r : (q - 1.f) * r; return r > 0.f ? q : q - 1.f;
    case H2O_LOSS_POISSON: *loss = 2.f * (expf(y) - t * y); return 2.f * (t - expf(y));
    case H2O_LOSS_GAMMA: *loss = 2.f * (t * expf(-y) + y); return 2.f * (t * expf(-y) - 1.f);
    case H2O_LOSS_TWEEDIE:
        *loss = 2.f * (expf((2.f - p) * y) / (2.f - p) - t * expf((1.f - p) * y) / (1.f - p));
        return 2.f * (t * expf((1.f - p) * y) - expf((2.f - p) * y));
    case H2O_LOSS_BERNOULLI: {
        const float ay = fabsf(y);
        *loss = 2.f * ((y > 0.f ? y : 0.f) + log1pf(expf(-ay)) - t * y);
        return 2.f * (t - 1.f / (1.f + expf(-y)));
    }
    default: *loss = r * r; return 2.f * r; /* H2O_LOSS_QUADRATIC */
    }
}

/* ------------------------------------------------------------------------------------ */
/* update sweeps: one row j of W (a unit's incoming weights, contiguous over inputs i),    */
/* fused with the error to the previous layer, e_i += g_j W[j,i] (old weights).  Dense     */
/* sweeps visit every input (fast mode masks out a_i == 0); sparse sweeps visit the listed */
/* non-zero inputs only.  Each returns the sum of grad^2 over the updated weights (the     */
/* ADADELTA bias rule needs it).                                                          */

typedef struct {
    float rho, eps, l1, l2;
    float rate, momentum; /* manual mode: layer rate * (1 - m), and m */
    int nesterov;
    int gate_out;         /* skip rows with g_j == 0 */
    int gate_in;          /* dense sweeps: skip inputs with a_i == 0 (fast mode) */
} upd_t;

typedef struct { float *W, *s1, *s2; } row_t; /* weights and up to two state rows */

static inline __attribute__((always_inline)) float
sweep_dense(int opt, row_t r, const float *restrict a, float *restrict e_prev, float gj, int U,
            const upd_t *u) {
    float *restrict W = r.W, *restrict s1 = r.s1, *restrict s2 = r.s2;
    const float rho = u->rho, om = 1.f - u->rho, eps = u->eps, l1 = u->l1, l2 = u->l2;
    const float rate = u->rate, m = u->momentum;
    const int gate = u->gate_in;
    float gs = 0.f;
    if (e_prev) {
#pragma omp simd
        for (int i = 0; i < U; i++) e_prev[i] += gj * W[i];
    }
    if (opt == 0) { /* ADADELTA: s1 = Edx2, s2 = Eg2 */
#pragma omp simd reduction(+ : gs)
        for (int i = 0; i < U; i++) {
            const float wi = W[i];
            const float gr = gj * a[i] - l1 * sgnf(wi) - l2 * wi;
            const float G = rho * s2[i] + om * gr * gr;
            const float rr = adadelta_rate(s1[i], G, eps);
            const float D = rho * s1[i] + om * rr * rr * gr * gr;
            const int on = !gate | (a[i] != 0.f);
            W[i] = on ? wi + rr * gr : wi;
            s2[i] = on ? G : s2[i];
            s1[i] = on ? D : s1[i];
            gs += on ? gr * gr : 0.f;
        }
    } else if (opt == 1) { /* Nesterov momentum: s1 = V */
#pragma omp simd
        for (int i = 0; i < U; i++) {
            const float wi = W[i];
            const float gr = gj * a[i] - l1 * sgnf(wi) - l2 * wi;
            const float v = m * s1[i] + gr;
            const int on = !gate | (a[i] != 0.f);
            s1[i] = on ? v : s1[i];
            W[i] = on ? wi + rate * v : wi;
        }
    } else if (opt == 2) { /* plain momentum: s1 = V */
#pragma omp simd
        for (int i = 0; i < U; i++) {
            const float wi = W[i];
            const float gr = gj * a[i] - l1 * sgnf(wi) - l2 * wi;
            const float d = rate * gr;
            const int on = !gate | (a[i] != 0.f);
            W[i] = on ? wi + d + m * s1[i] : wi;
            s1[i] = on ? d : s1[i];
        }
    } else { /* no momentum */
#pragma omp simd
        for (int i = 0; i < U; i++) {
            const float wi = W[i];
            const float gr = gj * a[i] - l1 * sgnf(wi) - l2 * wi;
            const int on = !gate | (a[i] != 0.f);
            W[i] = on ? wi + rate * gr : wi;
        }
    }
    return gs;
}

static inline __attribute__((always_inline)) float
sweep_sparse(int opt, row_t r, const float *restrict a, const int32_t *restrict idx, int n_act,
             float *restrict e_prev, float gj, const upd_t *u) {
    float *restrict W = r.W, *restrict s1 = r.s1, *restrict s2 = r.s2;
    const float rho = u->rho, om = 1.f - u->rho, eps = u->eps, l1 = u->l1, l2 = u->l2;
    const float rate = u->rate, m = u->momentum;
    float gs = 0.f;
    for (int k = 0; k < n_act; k++) {
        const int i = idx[k];
        const float wi = W[i];
        if (e_prev) e_prev[i] += gj * wi;
        const float gr = gj * a[i] - l1 * sgnf(wi) - l2 * wi;
        if (opt == 0) {
            const float G = rho * s2[i] + om * gr * gr;
            const float rr = adadelta_rate(s1[i], G, eps);
            s1[i] = rho * s1[i] + om * rr * rr * gr * gr;
            s2[i] = G;
            W[i] = wi + rr * gr;
            gs += gr * gr;
        } else if (opt == 1) {
            s1[i] = m * s1[i] + gr;
            W[i] = wi + rate * s1[i];
        } else if (opt == 2) {
            const float d = rate * gr;
            W[i] = wi + d + m * s1[i];
            s1[i] = d;
        } else {
            W[i] = wi + rate * gr;
        }
    }
    return gs;
}

/* scale row j's incoming weights if their squared sum exceeds max_w2 */
static void apply_max_w2(float *restrict wr, int U_in, float max_w2) {
    float r2 = 0.f;
#pragma omp simd reduction(+ : r2)
    for (int i = 0; i < U_in; i++) r2 += wr[i] * wr[i];
    if (r2 > max_w2) {
        const float s = sqrtf(max_w2 / r2);
#pragma omp simd
        for (int i = 0; i < U_in; i++) wr[i] *= s;
    }
}
