/*
 * score.c -- forward-only scoring in blocks of rows (h2o_predict; h2odl.h, SCORING): a
 * thread loads the next block of up to S rows (any row source: DENSE, CSR, FRAME) into its
 * scoring scratch and each weight layer's forward over the block is one matrix product,
 *   NET[b, j] = b_j + sum_i A[b, i] Wt[i, j],
 * with Wt the layer's weights transposed once a call into the shared part of the scratch
 * (input-major, each input's weights to every output contiguous).  A register tile holds
 * the sums of TILE_ROWS rows by two vectors of outputs; each step broadcasts one input of
 * each row and loads two vectors of Wt, so nothing is summed across vector lanes and every
 * sum runs over the inputs in ascending order.  A first layer whose block is mostly zeros
 * (sparse or one-hot rows) adds the rows of Wt of each row's non-zero inputs instead, in the
 * same order: the same bits.  Then the activation (times 1 - dropout ratio, the scoring
 * network), and the output: softmax, the LINEAR value in response space, the autoencoder's
 * reconstruction or its error, a hidden layer's activations, or the row loss.
 *
 * A row's sums do not depend on the other rows of its block nor on the thread count.  net.c
 * #includes this file after minibatch.c and shares its pieces: load_row, unload_row, softmax,
 * the activations, linear_neg_grad, response_value, VEC and vec_t, blk_ld, carve.  Nothing
 * is allocated.
 */

/* Rows of a scoring block: SCORE_BLOCK_MAX, fewer when a block's inputs would pass
 * SCORE_INPUT_FLOATS floats (wide inputs), at least SCORE_BLOCK_MIN. */
#define SCORE_BLOCK_MAX 64
#define SCORE_BLOCK_MIN 4
#define SCORE_INPUT_FLOATS (1 << 18)
/* A first layer goes row by row over the non-zero inputs when fewer than 1 in
 * SCORE_SPARSE_RATIO of the block's inputs are non-zero (a sum of rows of Wt kept in
 * memory against the register tiles). */
#define SCORE_SPARSE_RATIO 4
/* Rows of a register tile: its 2 x TILE_ROWS vector sums, two vectors of Wt and a
 * broadcast fit the variant's vector registers (32 with AVX-512, else 16). */
#if VEC == 16
#define TILE_ROWS 8
#else
#define TILE_ROWS 4
#endif

/* One thread's scoring scratch: the block's inputs and every layer's net inputs and
 * activations, row-major, one row per row of data (row strides as minibatch.c's blocks:
 * ld[l] = blk_ld(units[l]), ldr[l] = round_up(rows[l])).  Padding stays zero: block_dots
 * reads it. */
typedef struct {
    int S;                                /* rows a block holds */
    int ld[H2O_MAX_LAYERS + 1], ldr[H2O_MAX_LAYERS];
    input_t in[SCORE_BLOCK_MAX];          /* row b's inputs: views of x0, in_idx, in_all at b */
    float *x0;                            /* (S, ld[0]) inputs (all zero between CSR and FRAME
                                             rows) */
    int32_t *in_idx, *in_all;             /* (S, ld[0]) their lists (input_t) */
    float *net[H2O_MAX_LAYERS];           /* (S, ldr[l]) net inputs of weight layer l */
    float *act[H2O_MAX_LAYERS];           /* (S, ld[l + 1]) its activations (outputs: y) */
} score_t;

static int score_block_rows(const h2o_config *c) {
    const int64_t s = SCORE_INPUT_FLOATS / blk_ld(c->units[0]);
    return (int)(s > SCORE_BLOCK_MAX ? SCORE_BLOCK_MAX : s < SCORE_BLOCK_MIN ? SCORE_BLOCK_MIN : s);
}

/* Lay the scratch out from base (NULL: only count); returns the floats it takes. */
static int64_t score_carve(const h2o_config *c, const int *rows, float *base, score_t *k) {
    const int S = score_block_rows(c), L = c->n_layers;
    int64_t off = 0;
    k->S = S;
    for (int l = 0; l <= L; l++) k->ld[l] = blk_ld(c->units[l]);
    for (int l = 0; l < L; l++) k->ldr[l] = (int)round_up(rows[l]);
    const int64_t in = (int64_t)S * k->ld[0];
    k->x0 = carve(base, &off, in);
    k->in_idx = (int32_t *)carve(base, &off, in);
    k->in_all = (int32_t *)carve(base, &off, in);
    for (int l = 0; l < L; l++) {
        k->net[l] = carve(base, &off, (int64_t)S * k->ldr[l]);
        k->act[l] = carve(base, &off, (int64_t)S * k->ld[l + 1]);
    }
    return off;
}

/* The transposed weights and padded biases every thread reads, at the start of the
 * workspace: layer l's Wt (units[l], ldt) then its biases (ldt), ldt = round_up(rows[l])
 * (a multiple of every variant's VEC), zero past rows[l]. */
typedef struct {
    float *wt[H2O_MAX_LAYERS], *bt[H2O_MAX_LAYERS];
    int ldt[H2O_MAX_LAYERS];
} score_shared_t;

static int64_t score_shared_carve(const h2o_config *c, const int *rows, float *base,
                                  score_shared_t *t) {
    int64_t off = 0;
    for (int l = 0; l < c->n_layers; l++) {
        t->ldt[l] = (int)round_up(rows[l]);
        t->wt[l] = carve(base, &off, (int64_t)c->units[l] * t->ldt[l]);
        t->bt[l] = carve(base, &off, t->ldt[l]);
    }
    return off;
}

/* Floats of the shared part (h2o_layout.score_shared). */
static int64_t score_shared_floats(const h2o_config *c, const int *rows) {
    score_shared_t t;
    return score_shared_carve(c, rows, NULL, &t);
}

/* Layer l's weights transposed into t, this thread's share of its inputs (inside a
 * parallel region: every thread calls it; the caller waits at a barrier after). */
static void score_transpose(const h2o_config *c, const h2o_layout *lay, const float *model,
                            const score_shared_t *t, int l) {
    const int R = lay->rows[l], U_in = c->units[l], ldt = t->ldt[l];
    const float *W = model + lay->w[l], *bias = model + lay->b[l];
#pragma omp for schedule(static) nowait
    for (int i0 = 0; i0 < U_in; i0 += 16) { /* 16 inputs at a time: a cache line of W's rows */
        const int i1 = i0 + 16 < U_in ? i0 + 16 : U_in;
        for (int j = 0; j < ldt; j++)
            for (int i = i0; i < i1; i++)
                t->wt[l][(size_t)i * ldt + j] = j < R ? W[(size_t)j * U_in + i] : 0.f;
    }
#pragma omp single nowait
    for (int j = 0; j < ldt; j++) t->bt[l][j] = j < R ? bias[j] : 0.f;
}

/* Floats of one thread's scoring scratch (h2o_layout.score_per_thread). */
static int64_t score_floats(const h2o_config *c, const int *rows) {
    score_t k;
    return score_carve(c, rows, NULL, &k);
}

/* The scratch at base, all zero, with its row views. */
static void score_view(const h2o_config *c, const h2o_layout *lay, float *base, score_t *k) {
    const int64_t n = score_carve(c, lay->rows, base, k);
    memset(base, 0, sizeof(float) * (size_t)n);
    const int ld0 = k->ld[0];
    for (int b = 0; b < k->S; b++) {
        input_t *in = &k->in[b];
        in->x0 = k->x0 + (size_t)b * ld0;
        in->xt = in->x0; /* scoring has no input dropout: the target is the input */
        in->in_idx = k->in_idx + (size_t)b * ld0;
        in->in_all = k->in_all + (size_t)b * ld0;
        in->n_in = in->n_all = 0;
        in->blk_val = NULL;
        in->blk_unit = NULL;
    }
}

/* Rows r0 .. r0 + nb - 1 into the block (FRAME rows decoded block_rows at a time). */
static void score_load(const h2o_config *c, const h2o_rows *d, score_t *k, int64_t r0, int nb,
                       int tid) {
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    int64_t rows_blk[H2O_FRAME_BLOCK_MAX];
    for (int b = 0; b < nb; b++) {
        if (fr) {
            const int q = b % fr->block_rows;
            if (q == 0) {
                const int m = nb - b < fr->block_rows ? nb - b : fr->block_rows;
                for (int s = 0; s < m; s++) rows_blk[s] = r0 + b + s;
                frame_block(fr, rows_blk, m, fr_hint(fr, tid), fr_block_val(fr, tid),
                            fr_block_unit(fr, tid));
            }
            k->in[b].blk_val = fr_block_val(fr, tid) + (size_t)q * fr->n_slots;
            k->in[b].blk_unit = fr_block_unit(fr, tid) + (size_t)q * fr->n_slots;
        }
        h2o_rng rng = h2o_rng_for(0, 0, 0); /* not drawn from: no dropout at scoring */
        load_row(c, d, r0 + b, &k->in[b], &rng, 0, 0);
    }
}

/* The scoring activation of U units from net (2U channels for Maxout), times scale: each
 * kind's own loop, vectorisable where its function is. */
static void score_activate(int act, const float *restrict net, int U, float scale,
                           float *restrict a) {
    switch (act) {
    case H2O_TANH:
        for (int u = 0; u < U; u++) a[u] = tanh_forward(net[u]) * scale;
        break;
    case H2O_RECTIFIER:
#pragma omp simd
        for (int u = 0; u < U; u++) a[u] = rectifier_forward(net[u]) * scale;
        break;
    case H2O_EXPRECTIFIER:
        for (int u = 0; u < U; u++) a[u] = exprectifier_forward(net[u]) * scale;
        break;
    default: /* H2O_MAXOUT: the larger channel, ties to channel 0 (maxout_forward) */
#pragma omp simd
        for (int u = 0; u < U; u++) {
            const float n0 = net[2 * u], n1 = net[2 * u + 1];
            a[u] = (n1 > n0 ? n1 : n0) * scale;
        }
        break;
    }
}

/* The sums of one register tile: rows a[0 .. TILE_ROWS) (stride-free pointers to their
 * inputs), outputs [j, j + NV VEC) of Wt (stride ldt), over inputs i < n in order; out:
 * the rows' net inputs (stride ldo) = bias + sum, the first nr rows written. */
static inline __attribute__((always_inline)) void
score_tile(const float *const *a, int nr, const float *restrict wt, int ldt, int j, int n,
           const float *restrict bt, int NV, float *restrict out, int ldo) {
    vec_t s[TILE_ROWS][2];
    for (int r = 0; r < TILE_ROWS; r++) s[r][0] = s[r][1] = (vec_t){0.f};
    for (int i = 0; i < n; i++) {
        const float *w = wt + (size_t)i * ldt + j;
        const vec_t w0 = *(const vec_t *)w, w1 = NV > 1 ? *(const vec_t *)(w + VEC) : w0;
        for (int r = 0; r < TILE_ROWS; r++) {
            const float ai = a[r][i];
            s[r][0] += ai * w0;
            if (NV > 1) s[r][1] += ai * w1;
        }
    }
    const vec_t b0 = *(const vec_t *)(bt + j), b1 = NV > 1 ? *(const vec_t *)(bt + j + VEC) : b0;
    for (int r = 0; r < nr; r++) {
        *(vec_t *)(out + (size_t)r * ldo + j) = b0 + s[r][0];
        if (NV > 1) *(vec_t *)(out + (size_t)r * ldo + j + VEC) = b1 + s[r][1];
    }
}

/* NET = bias + A Wt for the nb rows of A (stride lda, inputs i < n), R outputs (their
 * vectors up to round_up(R, VEC) written; out's stride ldo >= that). */
static void score_product(const float *A, int lda, int nb, int n, const float *wt, int ldt,
                          const float *bt, int R, float *out, int ldo) {
    const int nvec = (R + VEC - 1) / VEC;
    for (int b = 0; b < nb; b += TILE_ROWS) {
        const int nr = nb - b < TILE_ROWS ? nb - b : TILE_ROWS;
        const float *a[TILE_ROWS];
        for (int r = 0; r < TILE_ROWS; r++) a[r] = A + (size_t)(b + (r < nr ? r : 0)) * lda;
        float *o = out + (size_t)b * ldo;
        int v = 0;
        for (; v + 2 <= nvec; v += 2) score_tile(a, nr, wt, ldt, v * VEC, n, bt, 2, o, ldo);
        if (v < nvec) score_tile(a, nr, wt, ldt, v * VEC, n, bt, 1, o, ldo);
    }
}

/* The first layer's NET of the block row by row: the rows of Wt of each row's non-zero
 * inputs added in ascending order (the sums score_product forms, without the zero terms). */
static void score_sparse_first(const score_t *k, int nb, const float *restrict wt, int ldt,
                               const float *restrict bt, float *restrict net, int ldr) {
    for (int b = 0; b < nb; b++) {
        const input_t *in = &k->in[b];
        float *restrict o = net + (size_t)b * ldr;
        memset(o, 0, sizeof(float) * (size_t)ldt);
        for (int q = 0; q < in->n_in; q++) {
            const int i = in->in_idx[q];
            const float ai = in->x0[i];
            const float *restrict w = wt + (size_t)i * ldt;
#pragma omp simd
            for (int j = 0; j < ldt; j++) o[j] += ai * w[j];
        }
#pragma omp simd
        for (int j = 0; j < ldt; j++) o[j] = bt[j] + o[j];
    }
}

/* Weight layer l forward for the nb rows of the block: net inputs, then activations (the
 * scoring network: hidden activations times 1 - dropout ratio) or the output layer's y. */
static void score_layer(const h2o_config *c, const h2o_layout *lay, const score_shared_t *t,
                        score_t *k, int l, int nb) {
    const int R = lay->rows[l], U_in = c->units[l], U = c->units[l + 1], L = c->n_layers;
    const int ldr = k->ldr[l], ld = k->ld[l + 1];
    float *net = k->net[l];
    int64_t nnz = 0;
    if (l == 0)
        for (int b = 0; b < nb; b++) nnz += k->in[b].n_in;
    if (l == 0 && SCORE_SPARSE_RATIO * nnz < (int64_t)nb * U_in)
        score_sparse_first(k, nb, t->wt[0], t->ldt[0], t->bt[0], net, ldr);
    else
        score_product(l == 0 ? k->x0 : k->act[l - 1], k->ld[l], nb, U_in, t->wt[l], t->ldt[l],
                      t->bt[l], R, net, ldr);
    const int act = activation_of(c, l);
    const float p = l < L - 1 ? c->hidden_dropout[l] : 0.f;
    const float scale = p > 0.f ? 1.f - p : 1.f;
    for (int b = 0; b < nb; b++) {
        const float *netb = net + (size_t)b * ldr;
        float *ab = k->act[l] + (size_t)b * ld;
        if (act >= 0) score_activate(act, netb, U, scale, ab);
        else if (c->output == H2O_OUT_SOFTMAX) softmax(netb, U, ab);
        else ab[0] = netb[0];
    }
}

/* The row loss of H2O_PRED_LOSS from the output layer's net inputs and outputs y (target t,
 * or the inputs xt for the autoencoder): NaN when an output is not finite (h2odl.h, loss). */
static float score_loss(const h2o_config *c, const float *net, const float *y, const float *xt,
                        float t, float offset) {
    const int K = c->units[c->n_layers];
    if (c->output == H2O_OUT_LINEAR) {
        const float yl = net[0] + offset;
        float loss = NAN;
        if (isfinite(yl)) linear_neg_grad(c, t, yl, &loss);
        return loss;
    }
    for (int k = 0; k < K; k++)
        if (!isfinite(y[k])) return NAN;
    if (c->output == H2O_OUT_SOFTMAX) {
        const float yt = y[(int)t];
        return -logf(yt > 1e-30f ? yt : 1e-30f);
    }
    float s = 0.f;
    for (int k = 0; k < K; k++) { const float r = xt[k] - y[k]; s += r * r; }
    return s;
}

/* Row b of the block (data row r) written to o, width per what (h2o_predict). */
static void score_write(const h2o_config *c, const score_t *k, const h2o_rows *d, int b,
                        int64_t r, int what, int layer, float *o) {
    const int L = c->n_layers, K = c->units[L];
    const float *y = k->act[L - 1] + (size_t)b * k->ld[L];
    const float *net = k->net[L - 1] + (size_t)b * k->ldr[L - 1];
    const float *x = k->in[b].x0;
    const float off = d->offset ? d->offset[r] : 0.f;
    if (what == H2O_PRED_OUTPUT) {
        if (c->output == H2O_OUT_LINEAR) o[0] = response_value(c, net[0] + off);
        else memcpy(o, y, sizeof(float) * (size_t)K);
    } else if (what == H2O_PRED_RECON) {
        float s = 0.f;
        for (int q = 0; q < K; q++) { const float e = x[q] - y[q]; s += e * e; }
        o[0] = s / (float)K;
    } else if (what == H2O_PRED_HIDDEN) {
        memcpy(o, k->act[layer] + (size_t)b * k->ld[layer + 1],
               sizeof(float) * (size_t)c->units[layer + 1]);
    } else {
        const float t = d->y ? d->y[r] : 0.f;
        o[0] = d->y && isnan(t) ? NAN : score_loss(c, net, y, x, t, off);
    }
}

/* h2o_predict's part for one thread (inside its parallel region): its share of the
 * weights transposed into `shared`, then blocks [blo, bhi) of S rows each in its scratch at
 * base; out has `width` floats a row. */
static void score_share(const h2o_config *c, const h2o_layout *lay, const float *model,
                        float *shared, float *base, const h2o_rows *d, int64_t blo, int64_t bhi,
                        int tid, int what, int layer, int width, float *out) {
    score_t k;
    score_shared_t t;
    score_view(c, lay, base, &k);
    score_shared_carve(c, lay->rows, shared, &t);
    const int last = what == H2O_PRED_HIDDEN ? layer + 1 : c->n_layers; /* layers needed */
    for (int l = 0; l < last; l++) score_transpose(c, lay, model, &t, l);
#pragma omp barrier
    const int64_t N = d->n_rows;
    for (int64_t blk = blo; blk < bhi; blk++) {
        const int64_t r0 = blk * k.S;
        const int nb = (int)(N - r0 < k.S ? N - r0 : k.S);
        score_load(c, d, &k, r0, nb, tid);
        for (int l = 0; l < last; l++) score_layer(c, lay, &t, &k, l, nb);
        for (int b = 0; b < nb; b++) {
            score_write(c, &k, d, b, r0 + b, what, layer, out + (size_t)(r0 + b) * width);
            unload_row(d, r0 + b, &k.in[b]);
        }
    }
}
