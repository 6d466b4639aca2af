/*
 * net.c -- the h2odl_mpi kernel: H2O Deep Learning's per-row forward, backward and
 * update, Hogwild!-parallel training, forward-only scoring and one-row gradients.
 * The interface, the buffer layout and the math are documented in h2odl.h.
 *
 * Reading order: layout -> workspace -> forward pieces -> output gradients -> per-input-row
 * update sweeps (one per optimizer) -> train_row -> the three entry points.
 */
#include "h2odl.h"
#include "rng.h"

/* net.c is compiled once per instruction-set variant (see kernel_*.c); H2O_SYM names this
 * variant's copy of each entry point, and dispatch.c exports the one the CPU can run. */
#ifndef H2O_SYM
#define H2O_SYM(name) name
#endif

#include <math.h>
#include <stddef.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* the FRAME row source's decoder (static, inlined into this variant) */
#define H2O_FRAME_ROWS_INCLUDED
#include "frame_rows.c"

#define ALIGN_FLOATS 16 /* 64-byte alignment of every workspace array */

/* ------------------------------------------------------------------------------------ */
/* layout                                                                               */

static int channels_of(const h2o_config *c, int l) {
    int hidden = l < c->n_layers - 1;
    int ae_out = !hidden && c->output == H2O_OUT_AUTOENCODER;
    return ((hidden || ae_out) && c->activation == H2O_MAXOUT) ? 2 : 1;
}

/* activation of weight layer l's outputs: a hidden kind, or -1 for SOFTMAX/LINEAR outputs */
static int activation_of(const h2o_config *c, int l) {
    if (l < c->n_layers - 1 || c->output == H2O_OUT_AUTOENCODER) return c->activation;
    return -1;
}

static int64_t round_up(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static int has_momenta(const h2o_config *c) {
    return !c->adaptive_rate && (c->momentum_start != 0.f || c->momentum_stable != 0.f);
}

int H2O_SYM(h2o_layout_of)(const h2o_config *c, h2o_layout *out) {
    if (!c || !out || c->n_layers < 1 || c->n_layers > H2O_MAX_LAYERS) return H2O_EARG;
    if (c->activation < H2O_TANH || c->activation > H2O_EXPRECTIFIER) return H2O_EARG;
    if (c->output < H2O_OUT_SOFTMAX || c->output > H2O_OUT_AUTOENCODER) return H2O_EARG;
    for (int l = 0; l <= c->n_layers; l++)
        if (c->units[l] < 1) return H2O_EARG;
    if (c->output == H2O_OUT_LINEAR && c->units[c->n_layers] != 1) return H2O_EARG;
    if (c->output == H2O_OUT_AUTOENCODER && c->units[c->n_layers] != c->units[0]) return H2O_EARG;
    memset(out, 0, sizeof(*out));
    int64_t off = 0;
    for (int l = 0; l < c->n_layers; l++) {
        out->rows[l] = c->units[l + 1] * channels_of(c, l);
        out->w[l] = off; off += (int64_t)c->units[l] * out->rows[l];
        out->b[l] = off; off += out->rows[l];
    }
    out->n_params = off;
    for (int l = 0; l < c->n_layers; l++) {
        int64_t nw = (int64_t)c->units[l] * out->rows[l], nb = out->rows[l];
        out->ada_dx_w[l] = out->ada_g_w[l] = out->ada_dx_b[l] = out->ada_g_b[l] = -1;
        out->mom_w[l] = out->mom_b[l] = -1;
        if (c->adaptive_rate) {
            out->ada_dx_w[l] = off; off += nw;
            out->ada_g_w[l] = off; off += nw;
            out->ada_dx_b[l] = off; off += nb;
            out->ada_g_b[l] = off; off += nb;
        } else if (has_momenta(c)) {
            out->mom_w[l] = off; off += nw;
            out->mom_b[l] = off; off += nb;
        }
    }
    out->n_total = off;
    /* workspace: x0, xt, in_idx, in_all; per layer net, g (rows) and act, err, keep, idx,
     * amax (units) */
    int64_t ws = 4 * round_up(c->units[0]);
    for (int l = 0; l < c->n_layers; l++)
        ws += 2 * round_up(out->rows[l]) + 5 * round_up(c->units[l + 1]);
    out->workspace_per_thread = ws;
    return H2O_OK;
}

/* ------------------------------------------------------------------------------------ */
/* per-thread workspace views (pointer arithmetic only: nothing is allocated)            */

typedef struct {
    float *x0;       /* input activations after input dropout (kept all-zero for CSR rows) */
    float *xt;       /* inputs before dropout: the autoencoder target */
    int32_t *in_idx; /* active (non-zero) inputs */
    int n_in;
    int32_t *in_all; /* FRAME rows: the inputs written before input dropout (cleared after) */
    int n_all;
    const float *blk_val;     /* FRAME rows: the row's decoded slots (set before load_row) */
    const int32_t *blk_unit;
    float *net[H2O_MAX_LAYERS], *g[H2O_MAX_LAYERS];
    float *act[H2O_MAX_LAYERS], *err[H2O_MAX_LAYERS], *keep[H2O_MAX_LAYERS];
    int32_t *idx[H2O_MAX_LAYERS], *amax[H2O_MAX_LAYERS];
    int n_act[H2O_MAX_LAYERS];
} ws_t;

static ws_t ws_view(const h2o_config *c, const h2o_layout *lay, float *base) {
    ws_t w;
    float *p = base;
    w.x0 = p; p += round_up(c->units[0]);
    w.xt = p; p += round_up(c->units[0]);
    w.in_idx = (int32_t *)p; p += round_up(c->units[0]);
    w.n_in = 0;
    w.in_all = (int32_t *)p; p += round_up(c->units[0]);
    w.n_all = 0;
    w.blk_val = NULL;
    w.blk_unit = NULL;
    for (int l = 0; l < c->n_layers; l++) {
        int64_t R = round_up(lay->rows[l]), U = round_up(c->units[l + 1]);
        w.net[l] = p; p += R;
        w.g[l] = p; p += R;
        w.act[l] = p; p += U;
        w.err[l] = p; p += U;
        w.keep[l] = p; p += U;
        w.idx[l] = (int32_t *)p; p += U;
        w.amax[l] = (int32_t *)p; p += U;
        w.n_act[l] = 0;
    }
    return w;
}

/* ------------------------------------------------------------------------------------ */
/* forward                                                                              */

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
            continue;
        }
        switch (act) {
        case H2O_TANH: v = tanhf(net[u]); break;
        case H2O_RECTIFIER: v = net[u] > 0.f ? net[u] : 0.f; break;
        case H2O_EXPRECTIFIER: v = net[u] >= 0.f ? net[u] : expm1f(net[u]); break;
        default: { /* Maxout, 2 channels */
            int c = net[2 * u + 1] > net[2 * u];
            amax[u] = c;
            v = net[2 * u + c];
        }
        }
        v *= scale;
        a[u] = v;
        if (v != 0.f) idx[n++] = u;
    }
    return n;
}

static void softmax(const float *net, int K, float *y) {
    float mx = net[0];
    for (int k = 1; k < K; k++) mx = net[k] > mx ? net[k] : mx;
    float s = 0.f;
    for (int k = 0; k < K; k++) { y[k] = expf(net[k] - mx); s += y[k]; }
    const float inv = 1.f / s;
    for (int k = 0; k < K; k++) y[k] *= inv;
}

/* Load row r into ws: x0 (after input dropout), xt (before), the active input list.
 * FRAME rows: the caller has decoded the row's block and pointed w->blk_val/blk_unit at it. */
static void load_row(const h2o_config *c, const h2o_rows *d, int64_t r, ws_t *w, h2o_rng *rng,
                     int training, int need_target) {
    const int C = c->units[0];
    const float p = training ? c->input_dropout : 0.f;
    int n = 0;
    if (d->kind == H2O_ROWS_DENSE) {
        const float *x = d->x + (size_t)r * C;
        if (need_target) memcpy(w->xt, x, sizeof(float) * (size_t)C);
        for (int i = 0; i < C; i++) {
            float v = x[i];
            if (v != 0.f && p > 0.f && h2o_rng_uniform(rng) < p) v = 0.f;
            w->x0[i] = v;
            if (v != 0.f) w->in_idx[n++] = i;
        }
    } else if (d->kind == H2O_ROWS_FRAME) {
        /* x0 and xt are all-zero between rows; the decoder writes the non-zero inputs into
         * x0 and lists them ascending (as the DENSE loop visits them), then input dropout
         * draws for each in that order, exactly as for the equal DENSE row */
        const int m = frame_emit(d->frame, w->blk_val, w->blk_unit, w->x0, w->in_all);
        w->n_all = m;
        for (int k = 0; k < m; k++) {
            const int i = w->in_all[k];
            const float v = w->x0[i];
            if (need_target) w->xt[i] = v;
            if (p > 0.f && h2o_rng_uniform(rng) < p) w->x0[i] = 0.f;
            else w->in_idx[n++] = i;
        }
    } else { /* CSR: x0 and xt are all-zero between rows; scatter, cleared by unload_row */
        for (int64_t k = d->indptr[r]; k < d->indptr[r + 1]; k++) {
            const int i = d->indices[k];
            float v = d->values[k];
            if (need_target) w->xt[i] = v;
            if (v != 0.f && p > 0.f && h2o_rng_uniform(rng) < p) v = 0.f;
            if (v != 0.f) { w->x0[i] = v; w->in_idx[n++] = i; }
        }
    }
    w->n_in = n;
}

static void unload_row(const h2o_rows *d, int64_t r, ws_t *w) {
    if (d->kind == H2O_ROWS_FRAME) {
        for (int k = 0; k < w->n_all; k++) {
            w->x0[w->in_all[k]] = 0.f;
            w->xt[w->in_all[k]] = 0.f;
        }
        w->n_all = 0;
        return;
    }
    if (d->kind != H2O_ROWS_CSR) return;
    for (int64_t k = d->indptr[r]; k < d->indptr[r + 1]; k++) {
        w->x0[d->indices[k]] = 0.f;
        w->xt[d->indices[k]] = 0.f;
    }
}

/* Full forward pass.  training: dropout masks from rng; no_dropout: ratios taken as 0
 * (gradient checks); otherwise the scoring network (activations scaled by 1 - ratio). */
static void forward(const h2o_config *c, const h2o_layout *lay, const float *model, ws_t *w,
                    h2o_rng *rng, int training, int no_dropout) {
    const float *a_in = w->x0;
    const int32_t *idx = w->in_idx;
    int n_act = w->n_in;
    const int L = c->n_layers;
    for (int l = 0; l < L; l++) {
        const int U = c->units[l + 1];
        const int act = activation_of(c, l);
        const float p = (l < L - 1 && !no_dropout) ? c->hidden_dropout[l] : 0.f;
        const float *keep = NULL;
        float scale = 1.f;
        if (p > 0.f && training) {
            for (int u = 0; u < U; u++) w->keep[l][u] = h2o_rng_uniform(rng) < p ? 0.f : 1.f;
            keep = w->keep[l];
        } else if (p > 0.f) {
            scale = 1.f - p;
        }
        layer_forward(model + lay->w[l], model + lay->b[l], lay->rows[l], c->units[l], a_in, idx,
                      n_act, keep, channels_of(c, l), w->net[l]);
        if (act < 0) {
            if (c->output == H2O_OUT_SOFTMAX) softmax(w->net[l], U, w->act[l]);
            else w->act[l][0] = w->net[l][0];
            break;
        }
        w->n_act[l] = hidden_activate(act, w->net[l], U, keep, scale, w->act[l], w->amax[l],
                                      w->idx[l]);
        a_in = w->act[l];
        idx = w->idx[l];
        n_act = w->n_act[l];
    }
}

/* ------------------------------------------------------------------------------------ */
/* output gradients and losses                                                          */

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

static int is_log_link(int loss) {
    return loss == H2O_LOSS_POISSON || loss == H2O_LOSS_GAMMA || loss == H2O_LOSS_TWEEDIE;
}

/* -dLoss/dy of a LINEAR output in link space, and the loss itself */
static float linear_neg_grad(const h2o_config *c, float t, float y, float *loss) {
    const float r = t - y, p = c->tweedie_power, d = c->huber_delta, q = c->quantile_alpha;
    switch (c->loss) {
    case H2O_LOSS_ABSOLUTE: *loss = fabsf(r); return y > t ? -1.f : 1.f;
    case H2O_LOSS_HUBER:
        if (fabsf(r) <= d) { *loss = 0.5f * r * r; return r; }
        *loss = d * (fabsf(r) - 0.5f * d); return d * sgnf(r);
    case H2O_LOSS_QUANTILE: *loss = r > 0.f ? q * r : (q - 1.f) * r; return r > 0.f ? q : q - 1.f;
    case H2O_LOSS_POISSON: *loss = expf(y) - t * y; return t - expf(y);
    case H2O_LOSS_GAMMA: *loss = t * expf(-y) + y; return t * expf(-y) - 1.f;
    case H2O_LOSS_TWEEDIE:
        *loss = expf((2.f - p) * y) / (2.f - p) - t * expf((1.f - p) * y) / (1.f - p);
        return t * expf((1.f - p) * y) - expf((2.f - p) * y);
    case H2O_LOSS_BERNOULLI: {
        const float ay = fabsf(y);
        *loss = (y > 0.f ? y : 0.f) + log1pf(expf(-ay)) - t * y;
        return t - 1.f / (1.f + expf(-y));
    }
    default: *loss = 0.5f * r * r; return r;
    }
}

/* e -> g for U units of hidden kind act (channels for Maxout); zero activations pass nothing */
static void hidden_backprop(int act, const float *restrict a, const float *restrict e,
                            const int32_t *amax, int U, float *restrict g) {
    if (act == H2O_MAXOUT) {
        for (int u = 0; u < U; u++) {
            const float v = a[u] != 0.f ? e[u] : 0.f;
            g[2 * u + amax[u]] = v;
            g[2 * u + 1 - amax[u]] = 0.f;
        }
        return;
    }
    for (int u = 0; u < U; u++) {
        const float au = a[u];
        float v = 0.f;
        if (au != 0.f) {
            switch (act) {
            case H2O_TANH: v = e[u] * (1.f - au * au); break;
            case H2O_RECTIFIER: v = e[u]; break;
            default: v = au > 0.f ? e[u] : e[u] * (au + 1.f); break; /* ExpRectifier */
            }
        }
        g[u] = v;
    }
}

/* Output layer: g of the last weight layer and the row loss.  Returns 0 if non-finite. */
static int output_gradient(const h2o_config *c, const h2o_layout *lay, ws_t *w, float t,
                           float weight, float offset, float *loss) {
    const int l = c->n_layers - 1, K = c->units[c->n_layers];
    float *g = w->g[l];
    const float *y = w->act[l];
    if (c->output == H2O_OUT_SOFTMAX) {
        const int ti = (int)t;
        for (int k = 0; k < K; k++) {
            if (!isfinite(y[k])) return 0;
            g[k] = weight * ((k == ti ? 1.f : 0.f) - y[k]);
        }
        const float yt = y[ti] > 1e-30f ? y[ti] : 1e-30f;
        *loss = -logf(yt);
    } else if (c->output == H2O_OUT_LINEAR) {
        const float yl = w->net[l][0] + offset;
        if (!isfinite(yl)) return 0;
        g[0] = weight * linear_neg_grad(c, t, yl, loss);
    } else { /* autoencoder, Quadratic */
        float s = 0.f;
        for (int k = 0; k < K; k++) {
            if (!isfinite(y[k])) return 0;
            const float r = w->xt[k] - y[k];
            s += r * r;
            w->err[l][k] = weight * r;
        }
        *loss = 0.5f * s;
        hidden_backprop(c->activation, y, w->err[l], w->amax[l], K, g);
        (void)lay;
    }
    return isfinite(*loss);
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

static void update_bias(const h2o_config *c, const h2o_layout *lay, float *model, int l, int j,
                        float gj, float grad2, const upd_t *u) {
    float *b = model + lay->b[l];
    const float gb = gj - u->l1 * sgnf(b[j]) - u->l2 * b[j];
    if (c->adaptive_rate) {
        float *dx2 = model + lay->ada_dx_b[l], *g2 = model + lay->ada_g_b[l];
        g2[j] = u->rho * g2[j] + (1.f - u->rho) * grad2;
        const float r = adadelta_rate(dx2[j], g2[j], u->eps);
        dx2[j] = u->rho * dx2[j] + (1.f - u->rho) * r * r * grad2;
        b[j] += r * gb;
    } else if (lay->mom_b[l] >= 0) {
        float *V = model + lay->mom_b[l];
        if (u->nesterov) {
            V[j] = u->momentum * V[j] + gb;
            b[j] += u->rate * V[j];
        } else {
            const float dlt = u->rate * gb;
            b[j] += dlt + u->momentum * V[j];
            V[j] = dlt;
        }
    } else {
        b[j] += u->rate * gb;
    }
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

static float momentum_at(const h2o_config *c, double n) {
    if (c->momentum_ramp > 0.f && n < c->momentum_ramp)
        return (float)(c->momentum_start +
                       (c->momentum_stable - c->momentum_start) * n / c->momentum_ramp);
    return c->momentum_ramp > 0.f ? c->momentum_stable : c->momentum_start;
}

/* Update one weight layer from its row gradients g (R rows), accumulating the error of the
 * previous layer into e_prev (NULL for the first layer). */
static inline __attribute__((always_inline)) void
update_layer(int opt, const h2o_config *c, const h2o_layout *lay, float *model, int l,
             const float *g, const float *a_in, const int32_t *idx, int n_act, int sparse_path,
             float fan, float *e_prev, const upd_t *u) {
    const int R = lay->rows[l], U_in = c->units[l];
    const int isfin_w2 = isfinite(c->max_w2);
    int64_t s1_off = -1, s2_off = -1;
    if (opt == 0) { s1_off = lay->ada_dx_w[l]; s2_off = lay->ada_g_w[l]; }
    else if (opt == 1 || opt == 2) s1_off = lay->mom_w[l];
    for (int j = 0; j < R; j++) {
        const float gj = g[j];
        if (u->gate_out && gj == 0.f) continue;
        const size_t off = (size_t)j * U_in;
        row_t r = { model + lay->w[l] + off, s1_off >= 0 ? model + s1_off + off : NULL,
                    s2_off >= 0 ? model + s2_off + off : NULL };
        const float gs = sparse_path ? sweep_sparse(opt, r, a_in, idx, n_act, e_prev, gj, u)
                                     : sweep_dense(opt, r, a_in, e_prev, gj, U_in, u);
        update_bias(c, lay, model, l, j, gj, gs / fan, u);
        if (isfin_w2) apply_max_w2(r.W, U_in, c->max_w2);
    }
}

/* Backward pass and update of every layer, top down, after forward() and output_gradient(). */
static void backward_update(const h2o_config *c, const h2o_layout *lay, float *model, ws_t *w,
                            double n_samples, int sparse_row) {
    const int L = c->n_layers;
    upd_t u;
    u.rho = c->rho; u.eps = c->epsilon; u.l1 = c->l1; u.l2 = c->l2;
    u.nesterov = c->nesterov;
    u.gate_out = c->fast_mode ||
                 (!c->adaptive_rate && !has_momenta(c) && c->l1 == 0.f && c->l2 == 0.f);
    u.gate_in = c->fast_mode;
    u.momentum = c->adaptive_rate ? 0.f : momentum_at(c, n_samples);
    const float base_rate = c->adaptive_rate ? 0.f
        : (float)(c->rate / (1.0 + (double)c->rate_annealing * n_samples)) * (1.f - u.momentum);
    const int opt = c->adaptive_rate ? 0 : has_momenta(c) ? (c->nesterov ? 1 : 2) : 3;
    for (int l = L - 1; l >= 0; l--) {
        const int U_in = c->units[l];
        const float *a_in = l > 0 ? w->act[l - 1] : w->x0;
        const int32_t *idx = l > 0 ? w->idx[l - 1] : w->in_idx;
        const int n_act = l > 0 ? w->n_act[l - 1] : w->n_in;
        float *e_prev = l > 0 ? w->err[l - 1] : NULL;
        /* sparse rows' first layer and few-active inputs in fast mode: visit non-zeros only */
        const int sparse_path = (l == 0 && sparse_row) || (c->fast_mode && use_sparse_path(n_act, U_in));
        const float fan = (l == 0 && sparse_row) ? (float)(n_act > 0 ? n_act : 1) : (float)U_in;
        if (e_prev) memset(e_prev, 0, sizeof(float) * (size_t)U_in);
        u.rate = base_rate * powf(c->rate_decay, (float)l);
        switch (opt) {
        case 0: update_layer(0, c, lay, model, l, w->g[l], a_in, idx, n_act, sparse_path, fan, e_prev, &u); break;
        case 1: update_layer(1, c, lay, model, l, w->g[l], a_in, idx, n_act, sparse_path, fan, e_prev, &u); break;
        case 2: update_layer(2, c, lay, model, l, w->g[l], a_in, idx, n_act, sparse_path, fan, e_prev, &u); break;
        default: update_layer(3, c, lay, model, l, w->g[l], a_in, idx, n_act, sparse_path, fan, e_prev, &u); break;
        }
        if (l > 0)
            hidden_backprop(activation_of(c, l - 1), w->act[l - 1], e_prev, w->amax[l - 1],
                            c->units[l], w->g[l - 1]);
    }
}

/* ------------------------------------------------------------------------------------ */
/* entry points                                                                         */

static int rows_ok(const h2o_config *c, const h2o_rows *d) {
    if (!d || d->n_cols != c->units[0] || d->n_rows < 0) return 0;
    if (d->kind == H2O_ROWS_DENSE) return d->x != NULL || d->n_rows == 0;
    if (d->kind == H2O_ROWS_CSR) return d->indptr && ((d->indices && d->values) || d->n_rows == 0);
    if (d->kind == H2O_ROWS_FRAME) return frame_ok(d->frame, d->n_cols, d->n_rows, 1);
    return 0;
}

int H2O_SYM(h2o_train)(const h2o_config *c, float *model, float *workspace, int n_threads,
              const h2o_rows *d, const int64_t *order, int64_t n, int64_t samples_before,
              uint64_t seed, h2o_train_stats *stats) {
    h2o_layout lay;
    if (H2O_SYM(h2o_layout_of)(c, &lay) != H2O_OK || !model || !workspace || n_threads < 1 ||
        !rows_ok(c, d) || (n > 0 && !order) || n < 0 || !stats)
        return H2O_EARG;
    if (c->output != H2O_OUT_AUTOENCODER && !d->y) return H2O_EARG;
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    if (fr && !frame_ok(fr, d->n_cols, d->n_rows, n_threads)) return H2O_EARG;
    int64_t trained = 0, skipped = 0;
    double loss_sum = 0.0;
    int stop = 0; /* set by a thread that meets a non-finite value; read racily by others */
    const int need_target = c->output == H2O_OUT_AUTOENCODER;
    const int sparse = d->kind == H2O_ROWS_CSR; /* FRAME rows are dense rows, stored sparsely */
    const int clear = d->kind != H2O_ROWS_DENSE;
#pragma omp parallel num_threads(n_threads) reduction(+ : trained, skipped, loss_sum)
    {
        int tid = 0, T = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        ws_t w = ws_view(c, &lay, workspace + (size_t)tid * lay.workspace_per_thread);
        if (clear) {
            memset(w.x0, 0, sizeof(float) * (size_t)c->units[0]);
            memset(w.xt, 0, sizeof(float) * (size_t)c->units[0]);
        }
        const int64_t lo = n * tid / T, hi = n * (tid + 1) / T;
        for (int64_t k = lo; k < hi; k++) {
            if (stop) break;
            const int64_t r = order[k];
            if (fr) { /* FRAME: decode the thread's next block of rows when this one starts it */
                const int b = (int)((k - lo) % fr->block_rows);
                if (b == 0)
                    frame_block(fr, order + k, (int)(hi - k < fr->block_rows ? hi - k : fr->block_rows),
                                fr_hint(fr, tid), fr_block_val(fr, tid), fr_block_unit(fr, tid));
                w.blk_val = fr_block_val(fr, tid) + (size_t)b * fr->n_slots;
                w.blk_unit = fr_block_unit(fr, tid) + (size_t)b * fr->n_slots;
            }
            const float t = d->y ? d->y[r] : 0.f;
            const float wt = d->weight ? d->weight[r] : 1.f;
            if ((d->y && isnan(t)) || wt == 0.f) { skipped++; continue; }
            const double n_samples = (double)samples_before + (double)(k - lo) * T + tid;
            h2o_rng rng = h2o_rng_for(seed, (uint64_t)(samples_before + k), 0xD20D1ULL);
            load_row(c, d, r, &w, &rng, 1, need_target);
            forward(c, &lay, model, &w, &rng, 1, 0);
            float loss = 0.f;
            if (!output_gradient(c, &lay, &w, t, wt, d->offset ? d->offset[r] : 0.f, &loss)) {
                stop = 1;
                unload_row(d, r, &w);
                break;
            }
            loss_sum += (double)wt * loss;
            backward_update(c, &lay, model, &w, n_samples, sparse);
            unload_row(d, r, &w);
            trained++;
        }
    }
    stats->trained = trained;
    stats->skipped = skipped;
    stats->loss_sum = loss_sum;
    stats->nonfinite = stop;
    return stop ? H2O_ENONFINITE : H2O_OK;
}

static float response_value(const h2o_config *c, float y) {
    if (is_log_link(c->loss)) return expf(y);
    if (c->loss == H2O_LOSS_BERNOULLI) return 1.f / (1.f + expf(-y));
    return y;
}

int H2O_SYM(h2o_predict)(const h2o_config *c, const float *model, float *workspace, int n_threads,
                const h2o_rows *d, int what, int layer, float *out) {
    h2o_layout lay;
    if (H2O_SYM(h2o_layout_of)(c, &lay) != H2O_OK || !model || !workspace || n_threads < 1 ||
        !rows_ok(c, d) || !out)
        return H2O_EARG;
    const int L = c->n_layers, K = c->units[L];
    int width;
    switch (what) {
    case H2O_PRED_OUTPUT: width = c->output == H2O_OUT_LINEAR ? 1 : K; break;
    case H2O_PRED_RECON: if (c->output != H2O_OUT_AUTOENCODER) return H2O_EARG; width = 1; break;
    case H2O_PRED_HIDDEN: if (layer < 0 || layer >= L - 1) return H2O_EARG;
        width = c->units[layer + 1]; break;
    case H2O_PRED_LOSS:
        if (c->output != H2O_OUT_AUTOENCODER && !d->y) return H2O_EARG;
        width = 1; break;
    default: return H2O_EARG;
    }
    const int need_target = c->output == H2O_OUT_AUTOENCODER;
    const int64_t N = d->n_rows;
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    if (fr && !frame_ok(fr, d->n_cols, d->n_rows, n_threads)) return H2O_EARG;
#pragma omp parallel num_threads(n_threads)
    {
        int tid = 0, T = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        int64_t rows_blk[H2O_FRAME_BLOCK_MAX];
        ws_t w = ws_view(c, &lay, workspace + (size_t)tid * lay.workspace_per_thread);
        if (d->kind != H2O_ROWS_DENSE) {
            memset(w.x0, 0, sizeof(float) * (size_t)c->units[0]);
            memset(w.xt, 0, sizeof(float) * (size_t)c->units[0]);
        }
        const int64_t lo = N * tid / T, hi = N * (tid + 1) / T; /* contiguous shares */
        for (int64_t r = lo; r < hi; r++) {
            if (fr) {
                const int b = (int)((r - lo) % fr->block_rows);
                if (b == 0) {
                    const int nb = (int)(hi - r < fr->block_rows ? hi - r : fr->block_rows);
                    for (int q = 0; q < nb; q++) rows_blk[q] = r + q;
                    frame_block(fr, rows_blk, nb, fr_hint(fr, tid), fr_block_val(fr, tid),
                                fr_block_unit(fr, tid));
                }
                w.blk_val = fr_block_val(fr, tid) + (size_t)b * fr->n_slots;
                w.blk_unit = fr_block_unit(fr, tid) + (size_t)b * fr->n_slots;
            }
            h2o_rng rng = h2o_rng_for(0, 0, 0);
            load_row(c, d, r, &w, &rng, 0, need_target);
            forward(c, &lay, model, &w, &rng, 0, 0);
            float *o = out + (size_t)r * width;
            const float *y = w.act[L - 1];
            if (what == H2O_PRED_OUTPUT) {
                if (c->output == H2O_OUT_LINEAR)
                    o[0] = response_value(c, w.net[L - 1][0] + (d->offset ? d->offset[r] : 0.f));
                else memcpy(o, y, sizeof(float) * (size_t)K);
            } else if (what == H2O_PRED_RECON) {
                float s = 0.f;
                for (int k = 0; k < K; k++) { const float e = w.xt[k] - y[k]; s += e * e; }
                o[0] = s / (float)K;
            } else if (what == H2O_PRED_HIDDEN) {
                memcpy(o, w.act[layer], sizeof(float) * (size_t)width);
            } else {
                float loss = NAN;
                const float t = d->y ? d->y[r] : 0.f;
                if (!(d->y && isnan(t)))
                    output_gradient(c, &lay, &w, t, 1.f, d->offset ? d->offset[r] : 0.f, &loss);
                o[0] = loss;
            }
            unload_row(d, r, &w);
        }
    }
    return H2O_OK;
}

int H2O_SYM(h2o_gradient)(const h2o_config *c, const float *model, float *workspace, const h2o_rows *d,
                 int64_t row, float *grad) {
    h2o_layout lay;
    if (H2O_SYM(h2o_layout_of)(c, &lay) != H2O_OK || !model || !workspace || !rows_ok(c, d) || !grad ||
        row < 0 || row >= d->n_rows)
        return H2O_EARG;
    if (c->output != H2O_OUT_AUTOENCODER && (!d->y || isnan(d->y[row]))) return H2O_EARG;
    ws_t w = ws_view(c, &lay, workspace);
    if (d->kind != H2O_ROWS_DENSE) {
        memset(w.x0, 0, sizeof(float) * (size_t)c->units[0]);
        memset(w.xt, 0, sizeof(float) * (size_t)c->units[0]);
    }
    if (d->kind == H2O_ROWS_FRAME) {
        frame_block(d->frame, &row, 1, fr_hint(d->frame, 0), fr_block_val(d->frame, 0),
                    fr_block_unit(d->frame, 0));
        w.blk_val = fr_block_val(d->frame, 0);
        w.blk_unit = fr_block_unit(d->frame, 0);
    }
    h2o_rng rng = h2o_rng_for(0, 0, 0);
    load_row(c, d, row, &w, &rng, 0, c->output == H2O_OUT_AUTOENCODER);
    forward(c, &lay, model, &w, &rng, 0, 1);
    float loss;
    const float t = d->y ? d->y[row] : 0.f;
    const float wt = d->weight ? d->weight[row] : 1.f;
    int ok = output_gradient(c, &lay, &w, t, wt, d->offset ? d->offset[row] : 0.f, &loss);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const int R = lay.rows[l], U_in = c->units[l];
        const float *a_in = l > 0 ? w.act[l - 1] : w.x0;
        const float *W = model + lay.w[l];
        const float *g = w.g[l];
        float *gW = grad + lay.w[l];
        float *e_prev = l > 0 ? w.err[l - 1] : NULL;
        if (e_prev) memset(e_prev, 0, sizeof(float) * (size_t)U_in);
        for (int j = 0; j < R; j++) {
            for (int i = 0; i < U_in; i++) {
                gW[(size_t)j * U_in + i] = g[j] * a_in[i];
                if (e_prev) e_prev[i] += g[j] * W[(size_t)j * U_in + i];
            }
        }
        memcpy(grad + lay.b[l], g, sizeof(float) * (size_t)R);
        if (l > 0)
            hidden_backprop(activation_of(c, l - 1), w.act[l - 1], w.err[l - 1], w.amax[l - 1],
                            c->units[l], w.g[l - 1]);
    }
    unload_row(d, row, &w);
    return ok ? H2O_OK : H2O_ENONFINITE;
}
