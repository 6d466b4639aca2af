/*
 * workspace.c -- one thread's workspace, carved from the caller's float buffer (pointer
 * arithmetic only: nothing is allocated), and the row loaded into it from any row source
 * (DENSE, CSR, FRAME).  net.c #includes this file once per instruction-set variant, after
 * frame_rows.c (the FRAME decoder).
 */
#include "h2odl.h"
#include "rng.h"

#include <stddef.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64-byte alignment of every workspace array */

static int64_t round_up(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* One input row as loaded for the network: the row path holds one (ws_t.in), a block of
 * the mini-batch path (minibatch.c) one per row. */
typedef struct {
    float *x0;       /* (units[0]) input activations after input dropout (all-zero between
                        CSR and FRAME rows) */
    float *xt;       /* (units[0]) inputs before dropout: the autoencoder target */
    int32_t *in_idx; /* (units[0]) the n_in active (non-zero) inputs, ascending */
    int n_in;
    int32_t *in_all; /* (units[0]) FRAME rows: the n_all inputs written before input dropout
                        (cleared after the row) */
    int n_all;
    const float *blk_val;     /* FRAME rows: the row's decoded slots, (n_slots) each (set */
    const int32_t *blk_unit;  /* before load_row) */
} input_t;

/* The arrays of one thread's workspace.  U_l = units[l + 1] (the outputs of weight layer
 * l), R_l = rows[l] (its rows: U_l, or 2 U_l channels for Maxout). */
typedef struct {
    input_t in;                   /* the row's inputs */
    float *net[H2O_MAX_LAYERS];   /* (R_l) net inputs */
    float *g[H2O_MAX_LAYERS];     /* (R_l) gradients g = e f'(a) of the rows */
    float *act[H2O_MAX_LAYERS];   /* (U_l) activations (softmax / linear output: y) */
    float *err[H2O_MAX_LAYERS];   /* (U_l) errors e of the units */
    float *keep[H2O_MAX_LAYERS];  /* (U_l) dropout mask, 0 or 1 (training with dropout) */
    int32_t *idx[H2O_MAX_LAYERS]; /* (U_l) the n_act[l] units with a non-zero activation */
    int32_t *amax[H2O_MAX_LAYERS]; /* (U_l) Maxout: the winning channel, 0 or 1 */
    int n_act[H2O_MAX_LAYERS];
} ws_t;

/* Floats of one thread's workspace (h2o_layout.workspace_per_thread): the arrays of ws_t,
 * each rounded up to ALIGN_FLOATS; rows: the rows R_l of each weight layer. */
static int64_t ws_floats(const h2o_config *c, const int *rows) {
    int64_t ws = 4 * round_up(c->units[0]);
    for (int l = 0; l < c->n_layers; l++)
        ws += 2 * round_up(rows[l]) + 5 * round_up(c->units[l + 1]);
    return ws;
}

/* The workspace at base (workspace_per_thread floats) as its arrays */
static ws_t ws_view(const h2o_config *c, const h2o_layout *lay, float *base) {
    ws_t w;
    float *p = base;
    w.in.x0 = p; p += round_up(c->units[0]);
    w.in.xt = p; p += round_up(c->units[0]);
    w.in.in_idx = (int32_t *)p; p += round_up(c->units[0]);
    w.in.n_in = 0;
    w.in.in_all = (int32_t *)p; p += round_up(c->units[0]);
    w.in.n_all = 0;
    w.in.blk_val = NULL;
    w.in.blk_unit = NULL;
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
/* loading a row                                                                        */

/* The rows are well formed for cfg c (their arrays present, FRAME scratch for one thread). */
static int rows_ok(const h2o_config *c, const h2o_rows *d) {
    if (!d || d->n_cols != c->units[0] || d->n_rows < 0) return 0;
    if (d->kind == H2O_ROWS_DENSE) return d->x != NULL || d->n_rows == 0;
    if (d->kind == H2O_ROWS_CSR) return d->indptr && ((d->indices && d->values) || d->n_rows == 0);
    if (d->kind == H2O_ROWS_FRAME) return frame_ok(d->frame, d->n_cols, d->n_rows, 1);
    return 0;
}

/* Load row r into w: x0 (after input dropout), xt (before), the active input list.
 * FRAME rows: the caller has decoded the row's block and pointed w->blk_val/blk_unit at it. */
static void load_row(const h2o_config *c, const h2o_rows *d, int64_t r, input_t *w, h2o_rng *rng,
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

/* Clear what load_row scattered into x0 and xt (CSR and FRAME rows), for the next row. */
static void unload_row(const h2o_rows *d, int64_t r, input_t *w) {
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
