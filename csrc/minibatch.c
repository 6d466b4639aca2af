/*
 * minibatch.c -- training in blocks of B = mini_batch_size rows (h2odl.h, MINI-BATCHES):
 * every row of a block goes forward and backward on the weights as they were when the block
 * began, and each row of W is then updated once with the block's mean gradient.  A layer's
 * passes are small matrix products over the block, so a weight row is loaded once and used
 * for all B rows:
 *   forward   NET[b, j]   = b_j + sum_i W[j, i] A[b, i]
 *   backward  E_prev[b,i] += sum_j G[b, j] W[j, i]             (W before the update)
 *   update    grad[j, i]  = (1/n) sum_b G[b, j] A[b, i] - l1 sign(W) - l2 W, one sweep of row j
 * Inputs that are zero in every row of the block are left out: a layer whose block has few
 * active inputs (or a CSR first layer) works on a compact copy of the union of them
 * ("compact path": A's columns gathered once a block, a weight row gathered per use and its
 * updated entries scattered back), the others on the full rows ("dense path").
 *
 * net.c #includes this file after its one-row path and shares its pieces: load_row,
 * unload_row, frame_row, hidden_activate, hidden_backprop, softmax, output_gradient_of,
 * update_bias, optimizer_at, apply_max_w2.  B = 1 never comes here.
 * Reading order: the block's workspace -> loading a row into it -> a layer forward -> a
 * layer backward and update -> a block's training step -> a thread's share in blocks.
 */

/* ------------------------------------------------------------------------------------ */
/* the block's workspace                                                                */

/* One thread's block: B rows of every layer, each matrix row-major with one block row per
 * row of data.  Layer l's inputs (units[l] a row) have ld[l] = blk_ld(units[l]) floats a
 * row, weight layer l's rows (net inputs, gradients) ldr[l] = round_up(rows[l]). */
typedef struct {
    int B, nb;                            /* rows a block holds; rows in it now */
    int ld[H2O_MAX_LAYERS + 1], ldr[H2O_MAX_LAYERS];
    input_t in[H2O_MAX_MINI_BATCH];       /* row b's inputs: views of x0, xt, ... at b */
    float t[H2O_MAX_MINI_BATCH], wt[H2O_MAX_MINI_BATCH], off[H2O_MAX_MINI_BATCH];
    int64_t r[H2O_MAX_MINI_BATCH];        /* row b's target, weight, offset, index */
    float *x0, *xt;                       /* (B, ld[0]) inputs after / before input dropout */
    int32_t *in_idx, *in_all;             /* (B, ld[0]) their active lists (input_t) */
    /* weight layer l: its outputs (U = units[l + 1] units, R = rows[l] rows) */
    float *net[H2O_MAX_LAYERS], *g[H2O_MAX_LAYERS];     /* (B, ldr[l]) */
    float *act[H2O_MAX_LAYERS], *err[H2O_MAX_LAYERS];   /* (B, ld[l + 1]) */
    float *keep[H2O_MAX_LAYERS];                        /* (B, ld[l + 1]) dropout masks */
    int32_t *idx[H2O_MAX_LAYERS], *amax[H2O_MAX_LAYERS]; /* (B, ld[l + 1]) */
    int32_t *n_act[H2O_MAX_LAYERS];                     /* (B) */
    /* weight layer l: its inputs over the block (units[l] of them) */
    float *cover[H2O_MAX_LAYERS];  /* (ld[l]) input i: the sum of c_b = 1 / fan_b over the
                                      rows b with a_bi != 0; 0: zero in every row (all zero
                                      between blocks) */
    int32_t *list[H2O_MAX_LAYERS]; /* (ld[l]) the union: the n_list[l] inputs with cover != 0 */
    int n_list[H2O_MAX_LAYERS];
    float *ccov[H2O_MAX_LAYERS];   /* (ld[l]) cover[list[k]] */
    float *ac[H2O_MAX_LAYERS];     /* (B, ld[l]) compact path: A[b, list[k]] */
    float *cb[H2O_MAX_LAYERS];     /* (B) c_b = 1 / fan_b */
    float *cs[H2O_MAX_LAYERS];     /* (B) c_b ||a_b||^2 */
    int compact[H2O_MAX_LAYERS];   /* the forward pass took the compact path */
    /* scratch of one layer at a time; ldm = the largest ld */
    float *ec;                     /* (B, ldm) compact path: errors at the union */
    float *gsum, *msum;            /* (ldm) a row's sum_b g_bj a_bi, sum_b c_b g_bj a_bi */
    float *wt4;                    /* (4, ldm) compact path: gathered weight rows */
    float *s1t, *s2t;              /* (ldm) compact path: gathered optimizer state rows */
} blk_t;

/* The vector registers of the variant as a GCC/Clang vector type: its arithmetic is the
 * vector units', a scalar operand is broadcast, and *(vec_t *)p loads or stores the VEC
 * floats at p (any float alignment).  A tile of the backward pass is 4 of them. */
#if defined(__AVX512F__)
#define VEC 16
#elif defined(__AVX__)
#define VEC 8
#else
#define VEC 4
#endif
typedef float vec_t __attribute__((vector_size(4 * VEC), aligned(4), may_alias));
#define BLK_TILE (4 * VEC)
/* Row stride of the block's matrices over a layer's units: a multiple of the widest tile, so
 * that a tile never leaves its row (one value for every variant: h2o_layout_of sizes it). */
#define BLK_PAD 64
static int blk_ld(int n) { return (n + BLK_PAD - 1) / BLK_PAD * BLK_PAD; }

static float *carve(float *base, int64_t *off, int64_t n) {
    float *p = base ? base + *off : NULL;
    *off += round_up(n);
    return p;
}

/* Lay the block's arrays out from base (NULL: only count); returns the floats it takes. */
static int64_t blk_carve(const h2o_config *c, const int *rows, float *base, blk_t *k) {
    const int B = c->mini_batch_size, L = c->n_layers;
    int64_t off = 0, ldm = 0;
    k->B = B;
    k->nb = 0;
    for (int l = 0; l <= L; l++) {
        k->ld[l] = blk_ld(c->units[l]);
        if (k->ld[l] > ldm) ldm = k->ld[l];
    }
    for (int l = 0; l < L; l++) k->ldr[l] = (int)round_up(rows[l]);
    const int64_t in = (int64_t)B * k->ld[0];
    k->x0 = carve(base, &off, in);
    k->xt = carve(base, &off, in);
    k->in_idx = (int32_t *)carve(base, &off, in);
    k->in_all = (int32_t *)carve(base, &off, in);
    for (int l = 0; l < L; l++) {
        const int64_t nr = (int64_t)B * k->ldr[l], nu = (int64_t)B * k->ld[l + 1];
        k->net[l] = carve(base, &off, nr);
        k->g[l] = carve(base, &off, nr);
        k->act[l] = carve(base, &off, nu);
        k->err[l] = carve(base, &off, nu);
        k->keep[l] = carve(base, &off, nu);
        k->idx[l] = (int32_t *)carve(base, &off, nu);
        k->amax[l] = (int32_t *)carve(base, &off, nu);
        k->n_act[l] = (int32_t *)carve(base, &off, B);
        k->cover[l] = carve(base, &off, k->ld[l]);
        k->list[l] = (int32_t *)carve(base, &off, k->ld[l]);
        k->ccov[l] = carve(base, &off, k->ld[l]);
        k->ac[l] = carve(base, &off, (int64_t)B * k->ld[l]);
        k->cb[l] = carve(base, &off, B);
        k->cs[l] = carve(base, &off, B);
        k->n_list[l] = 0;
        k->compact[l] = 0;
    }
    k->ec = carve(base, &off, (int64_t)B * ldm);
    k->gsum = carve(base, &off, ldm);
    k->msum = carve(base, &off, ldm);
    k->wt4 = carve(base, &off, 4 * ldm);
    k->s1t = carve(base, &off, ldm);
    k->s2t = carve(base, &off, ldm);
    return off;
}

/* Floats of the block part of a thread's workspace (after ws_floats' one-row part). */
static int64_t blk_floats(const h2o_config *c, const int *rows) {
    blk_t k;
    memset(&k, 0, sizeof(k));
    return blk_carve(c, rows, NULL, &k);
}

/* The block at base as training a share starts from: the row views set; the inputs, the
 * activations and the covers all zero (the padding of a row stays zero: block_dots reads
 * it); clear: the targets xt too (CSR and FRAME rows are scattered into x0 and xt). */
static void blk_view(const h2o_config *c, const h2o_layout *lay, float *base, int clear,
                     blk_t *k) {
    blk_carve(c, lay->rows, base, k);
    const int ld0 = k->ld[0];
    for (int b = 0; b < k->B; b++) {
        input_t *in = &k->in[b];
        in->x0 = k->x0 + (size_t)b * ld0;
        in->xt = k->xt + (size_t)b * ld0;
        in->in_idx = k->in_idx + (size_t)b * ld0;
        in->in_all = k->in_all + (size_t)b * ld0;
        in->n_in = in->n_all = 0;
        in->blk_val = NULL;
        in->blk_unit = NULL;
    }
    memset(k->x0, 0, sizeof(float) * (size_t)k->B * ld0);
    if (clear) memset(k->xt, 0, sizeof(float) * (size_t)k->B * ld0);
    for (int l = 0; l < c->n_layers; l++) {
        memset(k->act[l], 0, sizeof(float) * (size_t)k->B * k->ld[l + 1]);
        memset(k->cover[l], 0, sizeof(float) * (size_t)k->ld[l]);
    }
}

/* Row b's inputs of weight layer l: the activations A and their active list. */
static const float *row_inputs(const blk_t *k, int l, int b, const int32_t **idx, int *n) {
    if (l == 0) {
        *idx = k->in[b].in_idx;
        *n = k->in[b].n_in;
        return k->in[b].x0;
    }
    *idx = k->idx[l - 1] + (size_t)b * k->ld[l];
    *n = k->n_act[l - 1][b];
    return k->act[l - 1] + (size_t)b * k->ld[l];
}

/* ------------------------------------------------------------------------------------ */
/* a row into the block                                                                 */

/* Row r into slot b: its inputs (load_row, input dropout) and the hidden dropout masks that
 * forward() would draw for it, in the same order from the same stream. */
static void blk_load(const h2o_config *c, const h2o_rows *d, blk_t *k, int b, int64_t r,
                     h2o_rng *rng, int need_target) {
    load_row(c, d, r, &k->in[b], rng, 1, need_target);
    for (int l = 0; l < c->n_layers - 1; l++) {
        const float p = c->hidden_dropout[l];
        if (p <= 0.f) continue;
        float *keep = k->keep[l] + (size_t)b * k->ld[l + 1];
        for (int u = 0; u < c->units[l + 1]; u++) keep[u] = h2o_rng_uniform(rng) < p ? 0.f : 1.f;
    }
}

/* ------------------------------------------------------------------------------------ */
/* one layer forward over the block                                                     */

/* The union of the block's active inputs of weight layer l (cover, list, ccov) and each
 * row's c_b and c_b ||a_b||^2, c_b = 1 / fan_b (fan_b: units[l], or a CSR row's non-zero
 * inputs in its first layer). */
static void block_union(const h2o_config *c, blk_t *k, int l, int csr_first) {
    float *restrict cover = k->cover[l];
    int32_t *restrict list = k->list[l];
    int m = 0;
    for (int b = 0; b < k->nb; b++) {
        const int32_t *idx;
        int n;
        const float *a = row_inputs(k, l, b, &idx, &n);
        const float cb = 1.f / (float)(csr_first ? (n > 0 ? n : 1) : c->units[l]);
        float s = 0.f;
        for (int q = 0; q < n; q++) {
            const int i = idx[q];
            s += a[i] * a[i];
            list[m] = i;
            m += cover[i] == 0.f;
            cover[i] += cb;
        }
        k->cb[l][b] = cb;
        k->cs[l][b] = cb * s;
    }
    for (int q = 0; q < m; q++) k->ccov[l][q] = cover[list[q]];
    k->n_list[l] = m;
}

/* Rows of A a step of block_dots takes with 4 rows of W: their 4 x BLK_ROWS sums, the 4
 * weight vectors and the BLK_ROWS input vectors fit the variant's vector registers. */
#if VEC == 16
#define BLK_ROWS 4
#else
#define BLK_ROWS 2
#endif

/* out[b, j] = bias[j] + sum_{i < n} W[j, i] A[b, i] for the R rows j of W (row stride ldw)
 * and the nb rows b of A (row stride lda; zero from n on up to a whole vector), out's row
 * stride ldo.  A row of W is loaded once for every row of the block: 4 rows of W and
 * BLK_ROWS rows of A a step, their sums in vector registers.  The rows of W end at n: their
 * last, partial vector is read from wpad (zeros after n). */
static void block_dots(const float *restrict W, int64_t ldw, const float *restrict bias, int R,
                       const float *restrict A, int lda, int nb, int n, float *restrict out,
                       int ldo) {
    const int nv = n / VEC * VEC; /* whole vectors of a row of W */
    float wpad[4][VEC];
    for (int j = 0; j < R; j += 4) {
        const int rj = R - j < 4 ? R - j : 4;
        const float *w[4];
        for (int q = 0; q < 4; q++) {
            w[q] = W + (size_t)(j + (q < rj ? q : 0)) * ldw;
            for (int i = 0; i < VEC; i++) wpad[q][i] = nv + i < n ? w[q][nv + i] : 0.f;
        }
        for (int b = 0; b < nb; b += BLK_ROWS) {
            const int rb = nb - b < BLK_ROWS ? nb - b : BLK_ROWS;
            const float *a[BLK_ROWS];
            for (int r = 0; r < BLK_ROWS; r++) a[r] = A + (size_t)(b + (r < rb ? r : 0)) * lda;
            vec_t s[4][BLK_ROWS];
            for (int q = 0; q < 4; q++)
                for (int r = 0; r < BLK_ROWS; r++) s[q][r] = (vec_t){0.f};
            for (int i = 0; i < nv; i += VEC) {
                vec_t wv[4], av[BLK_ROWS];
                for (int q = 0; q < 4; q++) wv[q] = *(const vec_t *)(w[q] + i);
                for (int r = 0; r < BLK_ROWS; r++) av[r] = *(const vec_t *)(a[r] + i);
                for (int q = 0; q < 4; q++)
                    for (int r = 0; r < BLK_ROWS; r++) s[q][r] += wv[q] * av[r];
            }
            if (nv < n) { /* the partial vector: zeros after n in wpad and in A's rows */
                for (int q = 0; q < 4; q++)
                    for (int r = 0; r < BLK_ROWS; r++)
                        s[q][r] += *(const vec_t *)wpad[q] * *(const vec_t *)(a[r] + nv);
            }
            for (int q = 0; q < rj; q++)
                for (int r = 0; r < rb; r++) {
                    float t = 0.f;
                    for (int v = 0; v < VEC; v++) t += s[q][r][v];
                    out[(size_t)(b + r) * ldo + j + q] = bias[j + q] + t;
                }
        }
    }
}

/* Weight layer l forward for every row of the block: net inputs, dropout, activations (and
 * each row's active list), or the output layer's y.  Few active inputs in the block (or a
 * CSR first layer): the compact path, on the union of the active inputs only. */
static void block_forward_layer(const h2o_config *c, const h2o_layout *lay, const float *model,
                                blk_t *k, int l, int sparse) {
    const int R = lay->rows[l], U_in = c->units[l], U = c->units[l + 1], nb = k->nb;
    const int ld_in = k->ld[l], ld = k->ld[l + 1], ldr = k->ldr[l], ch = channels_of(c, l);
    const float *W = model + lay->w[l], *bias = model + lay->b[l];
    float *net = k->net[l];
    block_union(c, k, l, l == 0 && sparse);
    const int m = k->n_list[l];
    k->compact[l] = (l == 0 && sparse) || use_sparse_path(m, U_in);
    if (k->compact[l]) {
        const int32_t *list = k->list[l];
        for (int b = 0; b < nb; b++) { /* A's columns at the union, once for the block */
            const int32_t *idx;
            int n;
            const float *a = row_inputs(k, l, b, &idx, &n);
            float *acb = k->ac[l] + (size_t)b * ld_in;
            for (int q = 0; q < m; q++) acb[q] = a[list[q]];
            for (int q = m; q < ld_in && q < m + VEC; q++) acb[q] = 0.f; /* padding */
        }
        for (int j = 0; j < R; j += 4) { /* four rows of W gathered at the union at a time */
            const int r4 = R - j < 4 ? R - j : 4;
            for (int q = 0; q < r4; q++) {
                const float *wr = W + (size_t)(j + q) * U_in;
                float *wt = k->wt4 + (size_t)q * ld_in;
                for (int s = 0; s < m; s++) wt[s] = wr[list[s]];
            }
            block_dots(k->wt4, ld_in, bias + j, r4, k->ac[l], ld_in, nb, m, net + j, ldr);
        }
    } else {
        const float *A = l == 0 ? k->x0 : k->act[l - 1];
        block_dots(W, U_in, bias, R, A, ld_in, nb, U_in, net, ldr);
    }
    const int act = activation_of(c, l);
    const int dropout = l < c->n_layers - 1 && c->hidden_dropout[l] > 0.f;
    for (int b = 0; b < nb; b++) {
        float *netb = net + (size_t)b * ldr, *ab = k->act[l] + (size_t)b * ld;
        if (act < 0) { /* SOFTMAX or LINEAR output */
            if (c->output == H2O_OUT_SOFTMAX) softmax(netb, U, ab);
            else ab[0] = netb[0];
            continue;
        }
        const float *keep = dropout ? k->keep[l] + (size_t)b * ld : NULL;
        if (keep)
            for (int j = 0; j < R; j++)
                if (keep[j / ch] == 0.f) netb[j] = 0.f;
        k->n_act[l][b] = hidden_activate(act, netb, U, keep, 1.f, ab, k->amax[l] + (size_t)b * ld,
                                         k->idx[l] + (size_t)b * ld);
    }
}

/* ------------------------------------------------------------------------------------ */
/* one layer backward and update over the block                                         */

/* The backward pass of one row j of W (n weights w, the row itself or its compact gather)
 * over the nz rows of the block with g_bj != 0 (rows bs[q], gradients gs[q]):
 *   gsum[i] = sum_q gs[q] A[bs[q], i]        (the weight gradients' sum over the block)
 *   E[bs[q], i] += gs[q] w[i]                (the error to the previous layer; E may be NULL)
 * tile by tile, a tile of w and of gsum held in registers while the rows pass.  The last
 * tile runs past n into the rows' padding (BLK_PAD), with w taken as 0 there. */
static inline __attribute__((always_inline)) void
row_backward(const float *restrict w, const float *restrict A, float *restrict E, int ld,
             const int32_t *restrict bs, const float *restrict gs, int nz, int n,
             float *restrict gsum) {
    for (int i0 = 0; i0 < n; i0 += BLK_TILE) {
        float wpad[BLK_TILE];
        const int m = n - i0 < BLK_TILE ? n - i0 : BLK_TILE;
        for (int i = 0; i < BLK_TILE; i++) wpad[i] = i < m ? w[i0 + i] : 0.f;
        const vec_t *wv = (const vec_t *)wpad;
        const vec_t w0 = wv[0], w1 = wv[1], w2 = wv[2], w3 = wv[3];
        vec_t s0 = {0.f}, s1 = {0.f}, s2 = {0.f}, s3 = {0.f};
        for (int q = 0; q < nz; q++) {
            const size_t row = (size_t)bs[q] * ld + i0;
            const float g = gs[q];
            const vec_t *a = (const vec_t *)(A + row);
            s0 += g * a[0]; s1 += g * a[1]; s2 += g * a[2]; s3 += g * a[3];
            if (E) {
                vec_t *e = (vec_t *)(E + row);
                e[0] += g * w0; e[1] += g * w1; e[2] += g * w2; e[3] += g * w3;
            }
        }
        vec_t *out = (vec_t *)(gsum + i0);
        out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
    }
}

/* One row of W, updated once for the block: n contiguous weights (the row itself, or its
 * compact gather) with gsum_i = sum_b g_bj a_bi, grad_i = inv gsum_i - r_i, r_i = l1 sign(W_i)
 * + l2 W_i, where cover_i != 0 (every i when !gate).  ADADELTA's bias rule needs the sum
 * over the block's rows of q_b = c_b sum_{i in V_b} (g_bj a_bi - r_i)^2 (THE MATH), i.e.
 *   sum_b c_b g_bj^2 ||a_b||^2  +  sum_i r_i (r_i N_i - 2 M_i)
 * with N_i = sum of c_b over the rows b whose V_b holds i (= nbase + nmul cover_i) and
 * M_i = sum_b c_b g_bj a_bi (= mmul msum_i); this returns the second sum (0 for the other
 * optimizers), the caller adds the first. */
static inline __attribute__((always_inline)) float
sweep_block(int opt, row_t r, const float *restrict gsum, float inv, const float *restrict cover,
            int gate, float nbase, float nmul, const float *restrict msum, float mmul, int n,
            const upd_t *u) {
    float *restrict W = r.W, *restrict s1 = r.s1, *restrict s2 = r.s2;
    const float rho = u->rho, om = 1.f - u->rho, eps = u->eps, l1 = u->l1, l2 = u->l2;
    const float rate = u->rate, m = u->momentum;
    float qr = 0.f;
    if (opt == 0) { /* ADADELTA: s1 = Edx2, s2 = Eg2 */
#pragma omp simd reduction(+ : qr)
        for (int i = 0; i < n; i++) {
            const float wi = W[i], ri = l1 * sgnf(wi) + l2 * wi;
            const float gr = inv * gsum[i] - ri;
            const float G = rho * s2[i] + om * gr * gr;
            const float rr = adadelta_rate(s1[i], G, eps);
            const float D = rho * s1[i] + om * rr * rr * gr * gr;
            const int on = !gate | (cover[i] != 0.f);
            W[i] = on ? wi + rr * gr : wi;
            s2[i] = on ? G : s2[i];
            s1[i] = on ? D : s1[i];
            qr += on ? ri * (ri * (nbase + nmul * cover[i]) - 2.f * mmul * msum[i]) : 0.f;
        }
    } else if (opt == 1) { /* Nesterov momentum: s1 = V */
#pragma omp simd
        for (int i = 0; i < n; i++) {
            const float wi = W[i];
            const float gr = inv * gsum[i] - l1 * sgnf(wi) - l2 * wi;
            const float v = m * s1[i] + gr;
            const int on = !gate | (cover[i] != 0.f);
            s1[i] = on ? v : s1[i];
            W[i] = on ? wi + rate * v : wi;
        }
    } else if (opt == 2) { /* plain momentum: s1 = V */
#pragma omp simd
        for (int i = 0; i < n; i++) {
            const float wi = W[i];
            const float gr = inv * gsum[i] - l1 * sgnf(wi) - l2 * wi;
            const float d = rate * gr;
            const int on = !gate | (cover[i] != 0.f);
            W[i] = on ? wi + d + m * s1[i] : wi;
            s1[i] = on ? d : s1[i];
        }
    } else { /* no momentum */
#pragma omp simd
        for (int i = 0; i < n; i++) {
            const float wi = W[i];
            const float gr = inv * gsum[i] - l1 * sgnf(wi) - l2 * wi;
            const int on = !gate | (cover[i] != 0.f);
            W[i] = on ? wi + rate * gr : wi;
        }
    }
    return qr;
}

/* Weight layer l's backward and update for the block, after its g: each row j of W is
 * updated once from the block's gradients (its error to the previous layer accumulated into
 * err[l - 1] first, with the weights before the update), then g of layer l - 1 follows. */
static inline __attribute__((always_inline)) void
block_update_layer(int opt, const h2o_config *c, const h2o_layout *lay, float *model, blk_t *k,
                   int l, int sparse, const upd_t *u) {
    const int R = lay->rows[l], U_in = c->units[l], nb = k->nb, ld = k->ld[l], ldr = k->ldr[l];
    const int csr_first = l == 0 && sparse;
    /* the compact path where the forward pass took it, except where every weight learns */
    const int compact = k->compact[l] && (csr_first || c->fast_mode);
    const int n = compact ? k->n_list[l] : U_in;
    const int32_t *list = k->list[l];
    const float *A = compact ? k->ac[l] : l == 0 ? k->x0 : k->act[l - 1];
    float *e_prev = l > 0 ? k->err[l - 1] : NULL;
    float *E = e_prev && compact ? k->ec : e_prev; /* row stride ld either way */
    const float *G = k->g[l], *cs = k->cs[l], *cbs = k->cb[l];
    const float inv = 1.f / (float)nb;
    /* the ADADELTA bias rule's N_i and M_i (sweep_block); M_i from gsum when c_b is one value */
    const int gate = compact || u->gate_in;
    const float nbase = gate ? 0.f : (float)nb / (float)U_in, nmul = gate ? 1.f : 0.f;
    float *msum = opt == 0 && csr_first ? k->msum : NULL;
    const float mmul = msum ? 1.f : 1.f / (float)U_in;
    const int isfin_w2 = isfinite(c->max_w2);
    int64_t s1_off = -1, s2_off = -1;
    if (opt == 0) { s1_off = lay->ada_dx_w[l]; s2_off = lay->ada_g_w[l]; }
    else if (opt == 1 || opt == 2) s1_off = lay->mom_w[l];
    int32_t bz[H2O_MAX_MINI_BATCH];
    float gz[H2O_MAX_MINI_BATCH];
    if (E)
        for (int b = 0; b < nb; b++) memset(E + (size_t)b * ld, 0, sizeof(float) * (size_t)n);
    for (int j = 0; j < R; j++) {
        int nz = 0; /* the rows of the block with g_bj != 0 */
        for (int b = 0; b < nb; b++) {
            const float gb = G[(size_t)b * ldr + j];
            bz[nz] = b;
            gz[nz] = gb;
            nz += gb != 0.f; /* (no branch: the pattern is random) */
        }
        if (u->gate_out && nz == 0) continue;
        const size_t off = (size_t)j * U_in;
        const row_t full = { model + lay->w[l] + off, s1_off >= 0 ? model + s1_off + off : NULL,
                             s2_off >= 0 ? model + s2_off + off : NULL };
        row_t r = full;
        if (compact) { /* the row at the union, gathered */
            r.W = k->wt4;
            r.s1 = full.s1 ? k->s1t : NULL;
            r.s2 = full.s2 ? k->s2t : NULL;
            for (int q = 0; q < n; q++) r.W[q] = full.W[list[q]];
            if (r.s1) for (int q = 0; q < n; q++) r.s1[q] = full.s1[list[q]];
            if (r.s2) for (int q = 0; q < n; q++) r.s2[q] = full.s2[list[q]];
        }
        float *gsum = k->gsum;
        float gj = 0.f, qsum = 0.f; /* sum_b g_bj, sum_b c_b g_bj^2 ||a_b||^2 */
        for (int s = 0; s < nz; s++) { gj += gz[s]; qsum += cs[bz[s]] * gz[s] * gz[s]; }
        if (E) row_backward(r.W, A, E, ld, bz, gz, nz, n, gsum);
        else row_backward(r.W, A, NULL, ld, bz, gz, nz, n, gsum);
        if (msum) { /* CSR first layer, ADADELTA: sum_b c_b g_bj a_bi for the bias rule */
            memset(msum, 0, sizeof(float) * (size_t)n);
            for (int s = 0; s < nz; s++) {
                const float cg = cbs[bz[s]] * gz[s];
                const float *restrict a = A + (size_t)bz[s] * ld;
#pragma omp simd
                for (int i = 0; i < n; i++) msum[i] += cg * a[i];
            }
        }
        qsum += sweep_block(opt, r, gsum, inv, compact ? k->ccov[l] : k->cover[l], gate, nbase,
                            nmul, msum ? msum : gsum, mmul, n, u);
        if (compact) { /* scatter the updated row back */
            for (int s = 0; s < n; s++) full.W[list[s]] = r.W[s];
            if (r.s1) for (int s = 0; s < n; s++) full.s1[list[s]] = r.s1[s];
            if (r.s2) for (int s = 0; s < n; s++) full.s2[list[s]] = r.s2[s];
        }
        update_bias(c, lay, model, l, j, gj * inv, (qsum > 0.f ? qsum : 0.f) * inv, u);
        if (isfin_w2) apply_max_w2(full.W, U_in, c->max_w2);
    }
    if (e_prev && compact) { /* the union's errors into the full rows (zero elsewhere) */
        for (int b = 0; b < nb; b++) {
            float *e = e_prev + (size_t)b * ld;
            const float *ecb = k->ec + (size_t)b * ld;
            memset(e, 0, sizeof(float) * (size_t)U_in);
            for (int s = 0; s < n; s++) e[list[s]] = ecb[s];
        }
    }
    for (int s = 0; s < k->n_list[l]; s++) k->cover[l][list[s]] = 0.f; /* for the next block */
    if (l > 0)
        for (int b = 0; b < nb; b++)
            hidden_backprop(activation_of(c, l - 1), k->act[l - 1] + (size_t)b * ld,
                            e_prev + (size_t)b * ld, k->amax[l - 1] + (size_t)b * ld, c->units[l],
                            k->g[l - 1] + (size_t)b * k->ldr[l - 1]);
}

/* ------------------------------------------------------------------------------------ */
/* a block's training step                                                              */

/* Train the block's rows: forward over every layer, the output gradients and losses, then
 * backward and one update per layer, top down, at sample count n_samples (the block's first
 * row).  Returns 0, applying nothing, when a row's output or loss is non-finite. */
static int block_train(const h2o_config *c, const h2o_layout *lay, float *model, blk_t *k,
                       double n_samples, int sparse, double *loss_sum) {
    const int L = c->n_layers, nb = k->nb, lo = L - 1;
    for (int l = 0; l < L; l++) block_forward_layer(c, lay, model, k, l, sparse);
    double block_loss = 0.0;
    for (int b = 0; b < nb; b++) {
        const size_t yo = (size_t)b * k->ld[L], go = (size_t)b * k->ldr[lo];
        float loss = 0.f;
        if (!output_gradient_of(c, k->net[lo] + go, k->act[lo] + yo, k->in[b].xt,
                                k->amax[lo] + yo, k->err[lo] + yo, k->g[lo] + go, k->t[b],
                                k->wt[b], k->off[b], &loss)) {
            for (int l = 0; l < L; l++) /* leave the covers clear, as after an update */
                for (int s = 0; s < k->n_list[l]; s++) k->cover[l][k->list[l][s]] = 0.f;
            return 0;
        }
        block_loss += (double)k->wt[b] * loss;
    }
    upd_t u;
    float base_rate;
    const int opt = optimizer_at(c, n_samples, &u, &base_rate);
    for (int l = L - 1; l >= 0; l--) {
        u.rate = base_rate * powf(c->rate_decay, (float)l);
        switch (opt) {
        case 0: block_update_layer(0, c, lay, model, k, l, sparse, &u); break;
        case 1: block_update_layer(1, c, lay, model, k, l, sparse, &u); break;
        case 2: block_update_layer(2, c, lay, model, k, l, sparse, &u); break;
        default: block_update_layer(3, c, lay, model, k, l, sparse, &u); break;
        }
    }
    *loss_sum += block_loss;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* a thread's share in blocks                                                           */

/* h2o_train's loop for one thread with mini_batch_size > 1: rows order[lo, hi) of its share
 * (thread tid of T) gathered into blocks of B trained rows, each block trained at once.
 * *stop: set on a non-finite output, read (racily, as the one-row loop does) before each row. */
static void train_share_in_blocks(const h2o_config *c, const h2o_layout *lay, float *model,
                                  float *base, const h2o_rows *d, const int64_t *order,
                                  int64_t lo, int64_t hi, int T, int tid, int64_t samples_before,
                                  uint64_t seed, int *stop, int64_t *trained, int64_t *skipped,
                                  double *loss_sum) {
    blk_t k;
    blk_view(c, lay, base, d->kind != H2O_ROWS_DENSE, &k);
    const h2o_frame *fr = d->kind == H2O_ROWS_FRAME ? d->frame : NULL;
    const int need_target = c->output == H2O_OUT_AUTOENCODER;
    const int sparse = d->kind == H2O_ROWS_CSR;
    double n_first = 0.0;
    for (int64_t q = lo; q < hi && !*stop; q++) {
        const int64_t r = order[q];
        if (fr) frame_row(fr, order, q, lo, hi, tid, &k.in[k.nb]);
        const float t = d->y ? d->y[r] : 0.f;
        const float wt = d->weight ? d->weight[r] : 1.f;
        if ((d->y && isnan(t)) || wt == 0.f) { (*skipped)++; continue; }
        if (k.nb == 0) n_first = (double)samples_before + (double)(q - lo) * T + tid;
        h2o_rng rng = h2o_rng_for(seed, (uint64_t)(samples_before + q), 0xD20D1ULL);
        blk_load(c, d, &k, k.nb, r, &rng, need_target);
        k.r[k.nb] = r;
        k.t[k.nb] = t;
        k.wt[k.nb] = wt;
        k.off[k.nb] = d->offset ? d->offset[r] : 0.f;
        if (++k.nb < k.B) continue;
        if (!block_train(c, lay, model, &k, n_first, sparse, loss_sum)) *stop = 1;
        else *trained += k.nb;
        for (int b = 0; b < k.nb; b++) unload_row(d, k.r[b], &k.in[b]);
        k.nb = 0;
    }
    if (k.nb > 0 && !*stop) { /* the share's last, shorter block */
        if (!block_train(c, lay, model, &k, n_first, sparse, loss_sum)) *stop = 1;
        else *trained += k.nb;
    }
    for (int b = 0; b < k.nb; b++) unload_row(d, k.r[b], &k.in[b]);
    k.nb = 0;
}
