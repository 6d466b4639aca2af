/*
 * net.c -- the h2odl_mpi kernel: H2O Deep Learning's per-row forward, backward and
 * update, training on threads (Hogwild! on one model, or a replica a thread and their mean),
 * forward-only scoring and one-row gradients.
 * The interface, the buffer layout and the math are documented in h2odl.h.
 *
 * The pieces it #includes (all static, so each instruction-set variant inlines its own copy):
 *   frame_rows.c  the FRAME row source: chunks of the column store decoded and transformed
 *   layers.c      one layer's math on plain arrays: the activations (forward next to
 *                 derivative), a layer's forward, output losses, the optimizers' update sweeps
 *   workspace.c   a thread's workspace and loading a row into it
 *   minibatch.c   training in blocks of mini_batch_size rows, one update a block
 *   score.c       forward-only scoring (h2o_predict) in blocks of rows, layer by layer as
 *                 matrix products
 * Reading order here: layout -> forward pass -> output gradient -> backward and update ->
 * a thread's share of h2o_train (one row at a time here, in blocks in minibatch.c) -> a
 * thread of h2o_train and h2o_train_replicas, the replicas' mean -> the entry points
 * (h2o_predict's blocks in score.c).
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

/* the math of one layer on plain arrays: activations, losses, update sweeps */
#include "layers.c"

/* a thread's workspace; rows_ok, load_row, unload_row */
#include "workspace.c"

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

/* floats of a thread's block for mini_batch_size > 1 (minibatch.c), and of its scoring
 * scratch (score.c) */
static int64_t blk_floats(const h2o_config *c, const int *rows);
static int64_t score_floats(const h2o_config *c, const int *rows);
static int64_t score_shared_floats(const h2o_config *c, const int *rows);

static int has_momenta(const h2o_config *c) {
    return !c->adaptive_rate && (c->momentum_start != 0.f || c->momentum_stable != 0.f);
}

int H2O_SYM(h2o_layout_of)(const h2o_config *c, h2o_layout *out) {
    if (!c || !out || c->n_layers < 1 || c->n_layers > H2O_MAX_LAYERS) return H2O_EARG;
    if (c->activation < 0 || c->activation >= H2O_N_ACTIVATIONS) return H2O_EARG;
    if (c->output < 0 || c->output >= H2O_N_OUTPUTS) return H2O_EARG;
    if (c->mini_batch_size < 1 || c->mini_batch_size > H2O_MAX_MINI_BATCH) return H2O_EARG;
    if (c->output == H2O_OUT_LINEAR && (c->loss < 0 || c->loss >= H2O_N_LOSSES)) return H2O_EARG;
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
    out->workspace_per_thread = ws_floats(c, out->rows) +
                                (c->mini_batch_size > 1 ? blk_floats(c, out->rows) : 0);
    out->score_shared = score_shared_floats(c, out->rows);
    out->score_per_thread = score_floats(c, out->rows);
    return H2O_OK;
}

/* ------------------------------------------------------------------------------------ */
/* forward pass                                                                         */

/* Full forward pass.  training: dropout masks from rng; no_dropout: ratios taken as 0
 * (gradient checks); otherwise the scoring network (activations scaled by 1 - ratio). */
static void forward(const h2o_config *c, const h2o_layout *lay, const float *model, ws_t *w,
                    h2o_rng *rng, int training, int no_dropout) {
    const float *a_in = w->in.x0;
    const int32_t *idx = w->in.in_idx;
    int n_act = w->in.n_in;
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
/* output layer: gradient and loss                                                      */

/* Output layer of one row: g (K rows) of the last weight layer and the row loss from its
 * net inputs, outputs y, target (t, or xt for the autoencoder) and weight; err (K) receives
 * the autoencoder's output error, amax its Maxout channels.  Returns 0 if non-finite. */
static int output_gradient_of(const h2o_config *c, const float *net, const float *y,
                              const float *xt, const int32_t *amax, float *err, float *g,
                              float t, float weight, float offset, float *loss) {
    const int K = c->units[c->n_layers];
    if (c->output == H2O_OUT_SOFTMAX) {
        const int ti = (int)t;
        for (int k = 0; k < K; k++) {
            if (!isfinite(y[k])) return 0;
            g[k] = weight * ((k == ti ? 1.f : 0.f) - y[k]);
        }
        const float yt = y[ti] > 1e-30f ? y[ti] : 1e-30f;
        *loss = -logf(yt);
    } else if (c->output == H2O_OUT_LINEAR) {
        const float yl = net[0] + offset;
        if (!isfinite(yl)) return 0;
        g[0] = weight * linear_neg_grad(c, t, yl, loss);
    } else { /* autoencoder, Quadratic: H2O's -2 x gaussian negHalfGradient per output */
        float s = 0.f;
        for (int k = 0; k < K; k++) {
            if (!isfinite(y[k])) return 0;
            const float r = xt[k] - y[k];
            s += r * r;
            err[k] = weight * 2.f * r;
        }
        *loss = s;
        hidden_backprop(c->activation, y, err, amax, K, g);
    }
    return isfinite(*loss);
}

/* Output layer of the row in w: g of the last weight layer and the row loss. */
static int output_gradient(const h2o_config *c, ws_t *w, float t, float weight, float offset,
                           float *loss) {
    const int l = c->n_layers - 1;
    return output_gradient_of(c, w->net[l], w->act[l], w->in.xt, w->amax[l], w->err[l], w->g[l],
                              t, weight, offset, loss);
}

/* ------------------------------------------------------------------------------------ */
/* backward and update                                                                  */

/* Update bias b_j of weight layer l (whenever row j is updated); grad2: the ADADELTA bias
 * rule's q, the row's sum of grad^2 divided by its fan-in. */
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

/* The optimizer of an update at sample count n_samples: *u (its rate is set per layer:
 * *base_rate * rate_decay^l) and the returned kind: 0 ADADELTA, 1 Nesterov momentum, 2 plain
 * momentum, 3 manual rate without momentum. */
static int optimizer_at(const h2o_config *c, double n_samples, upd_t *u, float *base_rate) {
    u->rho = c->rho; u->eps = c->epsilon; u->l1 = c->l1; u->l2 = c->l2;
    u->nesterov = c->nesterov;
    u->gate_out = c->fast_mode ||
                  (!c->adaptive_rate && !has_momenta(c) && c->l1 == 0.f && c->l2 == 0.f);
    u->gate_in = c->fast_mode;
    u->momentum = c->adaptive_rate ? 0.f : momentum_at(c, n_samples);
    u->rate = 0.f;
    *base_rate = c->adaptive_rate ? 0.f
        : (float)(c->rate / (1.0 + (double)c->rate_annealing * n_samples)) * (1.f - u->momentum);
    return c->adaptive_rate ? 0 : has_momenta(c) ? (c->nesterov ? 1 : 2) : 3;
}

/* Backward pass and update of every layer, top down, after forward() and output_gradient(). */
static void backward_update(const h2o_config *c, const h2o_layout *lay, float *model, ws_t *w,
                            double n_samples, int sparse_row) {
    const int L = c->n_layers;
    upd_t u;
    float base_rate;
    const int opt = optimizer_at(c, n_samples, &u, &base_rate);
    for (int l = L - 1; l >= 0; l--) {
        const int U_in = c->units[l];
        const float *a_in = l > 0 ? w->act[l - 1] : w->in.x0;
        const int32_t *idx = l > 0 ? w->idx[l - 1] : w->in.in_idx;
        const int n_act = l > 0 ? w->n_act[l - 1] : w->in.n_in;
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
/* a thread's share of h2o_train                                                        */

/* FRAME rows: point in at row q of the thread's share [lo, hi), decoding the share's next
 * block_rows rows when q starts them. */
static void frame_row(const h2o_frame *fr, const int64_t *order, int64_t q, int64_t lo,
                      int64_t hi, int tid, input_t *in) {
    const int b = (int)((q - lo) % fr->block_rows);
    if (b == 0)
        frame_block(fr, order + q, (int)(hi - q < fr->block_rows ? hi - q : fr->block_rows),
                    fr_hint(fr, tid), fr_block_val(fr, tid), fr_block_unit(fr, tid));
    in->blk_val = fr_block_val(fr, tid) + (size_t)b * fr->n_slots;
    in->blk_unit = fr_block_unit(fr, tid) + (size_t)b * fr->n_slots;
}

/* h2o_train's loop for one thread, one row at a time: rows order[lo, hi) of its share
 * (thread tid of T) in the thread's workspace at base.  *stop: set on a non-finite output,
 * read racily by the other threads before each row. */
static void train_share(const h2o_config *c, const h2o_layout *lay, float *model, float *base,
                        const h2o_rows *d, const int64_t *order, int64_t lo, int64_t hi, int T,
                        int tid, int64_t samples_before, uint64_t seed, int *stop,
                        int64_t *trained, int64_t *skipped, double *loss_sum) {
    ws_t w = ws_view(c, lay, base);
    if (d->kind != H2O_ROWS_DENSE) {
        memset(w.in.x0, 0, sizeof(float) * (size_t)c->units[0]);
        memset(w.in.xt, 0, sizeof(float) * (size_t)c->units[0]);
    }
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    const int need_target = c->output == H2O_OUT_AUTOENCODER;
    const int sparse = d->kind == H2O_ROWS_CSR; /* FRAME rows are dense rows, stored sparsely */
    for (int64_t k = lo; k < hi; k++) {
        if (*stop) break;
        const int64_t r = order[k];
        if (fr) frame_row(fr, order, k, lo, hi, tid, &w.in);
        const float t = d->y ? d->y[r] : 0.f;
        const float wt = d->weight ? d->weight[r] : 1.f;
        if ((d->y && isnan(t)) || wt == 0.f) { (*skipped)++; continue; }
        const double n_samples = (double)samples_before + (double)(k - lo) * T + tid;
        h2o_rng rng = h2o_rng_for(seed, (uint64_t)(samples_before + k), 0xD20D1ULL);
        load_row(c, d, r, &w.in, &rng, 1, need_target);
        forward(c, lay, model, &w, &rng, 1, 0);
        float loss = 0.f;
        if (!output_gradient(c, &w, t, wt, d->offset ? d->offset[r] : 0.f, &loss)) {
            *stop = 1;
            unload_row(d, r, &w.in);
            break;
        }
        *loss_sum += (double)wt * loss;
        backward_update(c, lay, model, &w, n_samples, sparse);
        unload_row(d, r, &w.in);
        (*trained)++;
    }
}

/* the mini-batch path: train_share_in_blocks (mini_batch_size > 1) */
#include "minibatch.c"

/* ------------------------------------------------------------------------------------ */
/* a thread of h2o_train and h2o_train_replicas                                         */

/* Thread tid of T trains its contiguous share of order[0, n) into `model` (one row at a
 * time, or in blocks of mini_batch_size rows), in its own part of `workspace`. */
static void train_thread(const h2o_config *c, const h2o_layout *lay, float *model,
                         float *workspace, const h2o_rows *d, const int64_t *order, int64_t n,
                         int T, int tid, int64_t samples_before, uint64_t seed, int *stop,
                         int64_t *trained, int64_t *skipped, double *loss_sum) {
    float *base = workspace + (size_t)tid * lay->workspace_per_thread;
    const int64_t lo = n * tid / T, hi = n * (tid + 1) / T; /* contiguous shares */
    if (c->mini_batch_size > 1) /* the block part follows the one-row part */
        train_share_in_blocks(c, lay, model, base + ws_floats(c, lay->rows), d, order, lo, hi, T,
                              tid, samples_before, seed, stop, trained, skipped, loss_sum);
    else
        train_share(c, lay, model, base, d, order, lo, hi, T, tid, samples_before, seed, stop,
                    trained, skipped, loss_sum);
}

/* out[i] = (r_0[i] + r_1[i] + ... + r_{T-1}[i]) / T for i in [lo, hi), r_t = replicas + t *
 * stride: float32 sums in replica order, a chunk at a time so that out stays in cache. */
static void replicas_mean(const float *restrict replicas, int64_t stride, int T, int64_t lo,
                          int64_t hi, float *restrict out) {
    enum { CHUNK = 2048 };
    const float count = (float)T;
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const int64_t c1 = hi - c0 < CHUNK ? hi : c0 + CHUNK;
        for (int64_t i = c0; i < c1; i++) out[i] = replicas[i];
        for (int t = 1; t < T; t++) {
            const float *restrict r = replicas + (size_t)t * stride;
            for (int64_t i = c0; i < c1; i++) out[i] += r[i];
        }
        for (int64_t i = c0; i < c1; i++) out[i] /= count;
    }
}

/* h2o_train's and h2o_train_replicas' checks of their common arguments; fills *lay. */
static int train_args_ok(const h2o_config *c, h2o_layout *lay, const float *model,
                         const float *workspace, int n_threads, const h2o_rows *d,
                         const int64_t *order, int64_t n, const h2o_train_stats *stats) {
    if (H2O_SYM(h2o_layout_of)(c, lay) != H2O_OK || !model || !workspace || n_threads < 1 ||
        !rows_ok(c, d) || (n > 0 && !order) || n < 0 || !stats)
        return 0;
    if (c->output != H2O_OUT_AUTOENCODER && !d->y) return 0;
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    return !fr || frame_ok(fr, d->n_cols, d->n_rows, n_threads);
}

static int train_result(h2o_train_stats *stats, int64_t trained, int64_t skipped,
                        double loss_sum, int stop) {
    stats->trained = trained;
    stats->skipped = skipped;
    stats->loss_sum = loss_sum;
    stats->nonfinite = stop;
    return stop ? H2O_ENONFINITE : H2O_OK;
}

/* The threads' shares of order[0, n): all into `model` (Hogwild!), or with `replicas` each
 * thread into its own copy of it, their mean then written into `model` (REPLICAS). */
static int train_on_threads(const h2o_config *c, const h2o_layout *lay, float *model,
                            float *replicas, float *workspace, int n_threads, const h2o_rows *d,
                            const int64_t *order, int64_t n, int64_t samples_before,
                            uint64_t seed, h2o_train_stats *stats) {
    const int64_t N = lay->n_total;
    int64_t trained = 0, skipped = 0;
    double loss_sum = 0.0;
    int stop = 0; /* set by a thread that meets a non-finite value; read racily by others */
#pragma omp parallel num_threads(n_threads) reduction(+ : trained, skipped, loss_sum)
    {
        int tid = 0, T = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        float *own = replicas ? replicas + (size_t)tid * N : model;
        if (replicas) memcpy(own, model, sizeof(float) * (size_t)N);
        train_thread(c, lay, own, workspace, d, order, n, T, tid, samples_before, seed, &stop,
                     &trained, &skipped, &loss_sum);
        if (replicas) { /* (the same branch on every thread: each meets the barrier) */
#pragma omp barrier
            replicas_mean(replicas, N, T, N * tid / T, N * (tid + 1) / T, model);
        }
    }
    return train_result(stats, trained, skipped, loss_sum, stop);
}

/* ------------------------------------------------------------------------------------ */
/* entry points                                                                         */

int H2O_SYM(h2o_train)(const h2o_config *c, float *model, float *workspace, int n_threads,
              const h2o_rows *d, const int64_t *order, int64_t n, int64_t samples_before,
              uint64_t seed, h2o_train_stats *stats) {
    h2o_layout lay;
    if (!train_args_ok(c, &lay, model, workspace, n_threads, d, order, n, stats)) return H2O_EARG;
    return train_on_threads(c, &lay, model, NULL, workspace, n_threads, d, order, n,
                            samples_before, seed, stats);
}

int H2O_SYM(h2o_train_replicas)(const h2o_config *c, float *model, float *replicas,
                                float *workspace, int n_threads, const h2o_rows *d,
                                const int64_t *order, int64_t n, int64_t samples_before,
                                uint64_t seed, h2o_train_stats *stats) {
    h2o_layout lay;
    if (!train_args_ok(c, &lay, model, workspace, n_threads, d, order, n, stats) || !replicas)
        return H2O_EARG;
    const size_t bytes = sizeof(float) * (size_t)lay.n_total;
    const uintptr_t m0 = (uintptr_t)model, r0 = (uintptr_t)replicas; /* no overlap */
    if (m0 + bytes > r0 && r0 + bytes * (size_t)n_threads > m0) return H2O_EARG;
    return train_on_threads(c, &lay, model, replicas, workspace, n_threads, d, order, n,
                            samples_before, seed, stats);
}

static float response_value(const h2o_config *c, float y) {
    if (is_log_link(c->loss)) return expf(y);
    if (c->loss == H2O_LOSS_BERNOULLI) return 1.f / (1.f + expf(-y));
    return y;
}

/* forward-only scoring in blocks of rows: score_share (h2o_predict) */
#include "score.c"

int H2O_SYM(h2o_predict)(const h2o_config *c, const float *model, float *workspace,
                         int64_t workspace_floats, int n_threads, const h2o_rows *d, int what,
                         int layer, float *out) {
    h2o_layout lay;
    if (H2O_SYM(h2o_layout_of)(c, &lay) != H2O_OK || !model || !workspace || n_threads < 1 ||
        !rows_ok(c, d) || !out ||
        workspace_floats < lay.score_shared + (int64_t)n_threads * lay.score_per_thread)
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
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    if (fr && !frame_ok(fr, d->n_cols, d->n_rows, n_threads)) return H2O_EARG;
    const int64_t S = score_block_rows(c), n_blocks = (d->n_rows + S - 1) / S;
#pragma omp parallel num_threads(n_threads)
    {
        int tid = 0, T = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        /* whole blocks, contiguous shares: a row's block does not depend on T */
        score_share(c, &lay, model, workspace,
                    workspace + lay.score_shared + (size_t)tid * lay.score_per_thread, d,
                    n_blocks * tid / T, n_blocks * (tid + 1) / T, tid, what, layer, width, out);
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
        memset(w.in.x0, 0, sizeof(float) * (size_t)c->units[0]);
        memset(w.in.xt, 0, sizeof(float) * (size_t)c->units[0]);
    }
    if (d->kind == H2O_ROWS_FRAME) {
        frame_block(d->frame, &row, 1, fr_hint(d->frame, 0), fr_block_val(d->frame, 0),
                    fr_block_unit(d->frame, 0));
        w.in.blk_val = fr_block_val(d->frame, 0);
        w.in.blk_unit = fr_block_unit(d->frame, 0);
    }
    h2o_rng rng = h2o_rng_for(0, 0, 0);
    load_row(c, d, row, &w.in, &rng, 0, c->output == H2O_OUT_AUTOENCODER);
    forward(c, &lay, model, &w, &rng, 0, 1);
    float loss;
    const float t = d->y ? d->y[row] : 0.f;
    const float wt = d->weight ? d->weight[row] : 1.f;
    int ok = output_gradient(c, &w, t, wt, d->offset ? d->offset[row] : 0.f, &loss);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const int R = lay.rows[l], U_in = c->units[l];
        const float *a_in = l > 0 ? w.act[l - 1] : w.in.x0;
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
    unload_row(d, row, &w.in);
    return ok ? H2O_OK : H2O_ENONFINITE;
}
