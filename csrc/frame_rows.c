/*
 * frame_rows.c -- rows of the compressed column store (h2odl_mpi/frame) decoded and
 * transformed in C: the H2O_ROWS_FRAME row source of h2odl.h.
 *
 * net.c #includes this file (defining H2O_FRAME_ROWS_INCLUDED first), so every instruction-
 * set variant of the kernel gets its own inlined copy of the static decoder; compiled on its
 * own (build_ffi.py lists it) it also exports h2o_rows_expand and h2o_hash.
 *
 * Chunk layout: docs/column_store.md.  Decoding of one value follows Chunk.decode in
 * h2odl_mpi/frame/encoding.py operation for operation (INT: exact integer, then one IEEE
 * division by 10^scale), so a value decoded here is bit-identical to the Python one.  The
 * transform is documented with h2o_frame_col in h2odl.h.  Random access per row: the chunk of
 * a row is found from the column's row offsets (the thread's last chunk first, else a binary
 * search); SPARSE chunks binary-search their row index; MASKED chunks count set bits from a
 * prefix count per H2O_FRAME_RANK_ROWS = 64 rows, one per 64-bit word of the bitmap (`rank`;
 * the constant is defined in h2odl.h), that Python (h2odl_mpi/frame/c_view.py) computes once.
 * Nothing here allocates.
 */
#include "h2odl.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define FR_CONST 0
#define FR_BITS 1
#define FR_INT 2
#define FR_FLOAT32 3
#define FR_FLOAT64 4
#define FR_SPARSE 5
#define FR_MASKED 6

_Static_assert(H2O_FRAME_RANK_ROWS == 64, "fr_rank reads one 64-bit bitmap word per prefix count");

static const double fr_pow10[11] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10};

static inline uint32_t fr_hash(uint32_t key, uint32_t seed) {
    uint32_t h = (key * 0x9E3779B1u) ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

static inline int fr_bit(const uint8_t *b, int64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }

/* stored value k of a dense run encoded as `enc` (CONST, INT, FLOAT32, FLOAT64) */
static inline double fr_value(int enc, const h2odl_chunk *c, const void *data, int64_t k) {
    switch (enc) {
    case FR_INT: {
        uint32_t off, na;
        switch (c->value_width) {
        case 1: off = ((const uint8_t *)data)[k]; na = 0xFFu; break;
        case 2: off = ((const uint16_t *)data)[k]; na = 0xFFFFu; break;
        default: off = ((const uint32_t *)data)[k]; na = 0xFFFFFFFFu; break;
        }
        if (c->has_na && off == na) return NAN;
        double v = (double)(c->base + (int64_t)off); /* exact: |base + off| < 2^53 */
        if (c->scale > 0) v /= fr_pow10[c->scale <= 10 ? c->scale : 10];
        return v;
    }
    case FR_FLOAT32: return (double)((const float *)data)[k];
    case FR_FLOAT64: return ((const double *)data)[k];
    default: return c->value;
    }
}

/* set bits of a MASKED bitmap (nbytes long) before row i: the prefix count of i's 64-row
 * word (rank[i / H2O_FRAME_RANK_ROWS]) plus one popcount (the bitmap's last word may be
 * short: read byte-wise there) */
static inline int64_t fr_rank(const uint8_t *bm, int64_t nbytes, const uint32_t *rank, int64_t i) {
    const int64_t wi = i >> 6;
    uint64_t w = 0;
    if ((wi + 1) * 8 <= nbytes) memcpy(&w, bm + wi * 8, 8);
    else memcpy(&w, bm + wi * 8, (size_t)(nbytes - wi * 8));
    const uint64_t below = (i & 63) ? (w & (~0ULL >> (64 - (i & 63)))) : 0ULL;
    int64_t k = __builtin_popcountll(below);
    if (rank) return k + rank[wi];
    for (int64_t q = 0; q < wi * 8; q++) k += __builtin_popcount(bm[q]); /* no index given */
    return k;
}

/* position of row i among a SPARSE chunk's ascending row numbers, or -1 (branch-free) */
#define FR_FIND(T)                                                                         \
    static inline int64_t fr_find_##T(const T *ix, int64_t n, int64_t i) {                   \
        if (n <= 0) return -1;                                                               \
        const T *base = ix;                                                                  \
        for (int64_t len = n; len > 1;) {                                                    \
            const int64_t half = len >> 1;                                                   \
            base = ((int64_t)base[half] < i) ? base + half : base;                           \
            len -= half;                                                                     \
        }                                                                                    \
        const int64_t pos = (base - ix) + ((int64_t)*base < i);                              \
        return (pos < n && (int64_t)ix[pos] == i) ? pos : -1;                                \
    }
FR_FIND(uint16_t)
FR_FIND(uint32_t)

/* present ? a : b without a branch */
static inline double fr_select(int present, double a, double b) {
    uint64_t ua, ub;
    memcpy(&ua, &a, 8);
    memcpy(&ub, &b, 8);
    const uint64_t m = (uint64_t)0 - (uint64_t)(present & 1);
    const uint64_t r = (ua & m) | (ub & ~m);
    double v;
    memcpy(&v, &r, 8);
    return v;
}

/* row i (0-based within the chunk) of one chunk */
static inline double fr_chunk_at(const h2o_frame_chunk *ch, int64_t i) {
    const h2odl_chunk *c = &ch->d;
    switch (c->encoding) {
    case FR_CONST: return c->value;
    case FR_BITS:
        if (c->has_na && fr_bit(ch->bitmap, i)) return NAN;
        return fr_bit((const uint8_t *)ch->data, i) ? 1.0 : 0.0;
    case FR_INT: case FR_FLOAT32: case FR_FLOAT64: return fr_value(c->encoding, c, ch->data, i);
    case FR_SPARSE: {
        const int64_t k = c->index_width == 2
                              ? fr_find_uint16_t((const uint16_t *)ch->index, c->nnz, i)
                              : fr_find_uint32_t((const uint32_t *)ch->index, c->nnz, i);
        return k >= 0 ? fr_value(c->value_encoding, c, ch->data, k) : c->fill;
    }
    case FR_MASKED: { /* branch-free: the presence bit is data, not a predictable branch
                       * (a mispredicted branch on a cache-missing bit would stall the
                       * independent loads of the block's other rows) */
        const int present = fr_bit(ch->bitmap, i);
        int64_t k = fr_rank(ch->bitmap, ((int64_t)c->n_rows + 7) >> 3, ch->rank, i);
        k = k < (int64_t)c->nnz ? k : (int64_t)c->nnz - 1; /* in bounds when absent */
        return fr_select(present, fr_value(c->value_encoding, c, ch->data, k), c->fill);
    }
    default: return NAN;
    }
}

/* rows li[0..nb) of one chunk: the encoding is dispatched once; SPARSE chunks walk their
 * row index once when li ascends (rows in order, the trainer's default) */
static void fr_chunk_rows(const h2o_frame_chunk *ch, const int64_t *li, int nb, int ascending,
                          double *v) {
    const h2odl_chunk *c = &ch->d;
    switch (c->encoding) {
    case FR_CONST:
        for (int b = 0; b < nb; b++) v[b] = c->value;
        return;
    case FR_MASKED: {
        const int64_t nbytes = ((int64_t)c->n_rows + 7) >> 3, last = (int64_t)c->nnz - 1;
        const int venc = c->value_encoding;
        for (int b = 0; b < nb; b++) {
            const int present = fr_bit(ch->bitmap, li[b]);
            int64_t k = fr_rank(ch->bitmap, nbytes, ch->rank, li[b]);
            k = k < last ? k : last;
            v[b] = fr_select(present, fr_value(venc, c, ch->data, k), c->fill);
        }
        return;
    }
    case FR_SPARSE:
        if (ascending) {
            int64_t p = 0;
            const int64_t nnz = c->nnz;
            for (int b = 0; b < nb; b++) {
                const int64_t i = li[b];
                if (c->index_width == 2) {
                    const uint16_t *ix = (const uint16_t *)ch->index;
                    while (p < nnz && (int64_t)ix[p] < i) p++;
                    v[b] = (p < nnz && (int64_t)ix[p] == i) ? fr_value(c->value_encoding, c, ch->data, p) : c->fill;
                } else {
                    const uint32_t *ix = (const uint32_t *)ch->index;
                    while (p < nnz && (int64_t)ix[p] < i) p++;
                    v[b] = (p < nnz && (int64_t)ix[p] == i) ? fr_value(c->value_encoding, c, ch->data, p) : c->fill;
                }
            }
            return;
        }
        break;
    default: break;
    }
    for (int b = 0; b < nb; b++) v[b] = fr_chunk_at(ch, li[b]);
}

/* the chunk of local row r: the thread's last one for this column (*hint) if it holds r,
 * else a binary search of the row offsets */
static inline int fr_chunk_of(const h2o_frame_col *col, int64_t r, int32_t *hint) {
    const int64_t *off = col->row_offsets;
    int ci = hint ? *hint : 0;
    if (ci >= 0 && ci < col->n_chunks && off[ci] <= r && r < off[ci + 1]) return ci;
    int lo = 0, hi = col->n_chunks; /* the last chunk starting at or before r */
    while (hi - lo > 1) {
        const int m = (lo + hi) >> 1;
        if (off[m] <= r) lo = m; else hi = m;
    }
    if (hint) *hint = lo;
    return lo;
}

/* training level of a decoded categorical value, -1 for NA or an unseen level */
static inline int fr_level(const h2o_frame_col *col, double v) {
    if (!(v >= 0.0)) return -1; /* NaN or negative */
    const double lim = col->level_map ? (double)col->n_map : (double)col->n_levels;
    if (!(v < lim)) return -1;
    const int code = (int)v;
    return col->level_map ? col->level_map[code] : code;
}

/* one-hot unit of a level within its column (-1: none, the dropped first level) */
static inline int fr_onehot_unit(const h2o_frame_col *col, int L) {
    if (L < 0 || L >= col->n_levels) return col->n_levels - col->first_level; /* missing unit */
    return L >= col->first_level ? L - col->first_level : -1;
}

/* Decode rows rows[0..nb) (nb <= block_rows) into the block slots val/unit (nb * n_slots
 * each): column by column, so each column's encoding branch is taken once per block and the
 * rows' loads are independent.  hint: this thread's chunk cache (n_cols) or NULL. */
static void frame_block(const h2o_frame *f, const int64_t *rows, int nb, int32_t *hint,
                        float *val, int32_t *unit) {
    int32_t ci[H2O_FRAME_BLOCK_MAX];
    int64_t li[H2O_FRAME_BLOCK_MAX];
    double v[H2O_FRAME_BLOCK_MAX];
    const int S = f->n_slots;
    const int64_t *shared = NULL; /* the row offsets ci/li were computed for */
    int one_chunk = 0, ascending = 0;  /* all rows in chunk ci[0]; li ascending */
    for (int j = 0; j < f->n_cols; j++) {
        const h2o_frame_col *col = &f->cols[j];
        if (col->row_offsets != shared) {
            one_chunk = 1;
            ascending = 1;
            for (int b = 0; b < nb; b++) {
                ci[b] = fr_chunk_of(col, rows[b], hint ? hint + j : NULL);
                li[b] = rows[b] - col->row_offsets[ci[b]];
                one_chunk &= ci[b] == ci[0];
                ascending &= b == 0 || li[b] >= li[b - 1];
            }
            shared = col->row_offsets;
        }
        if (one_chunk) fr_chunk_rows(col->chunks + ci[0] * col->chunk_stride, li, nb, ascending, v);
        else
            for (int b = 0; b < nb; b++) v[b] = fr_chunk_at(col->chunks + ci[b] * col->chunk_stride, li[b]);
        float *vo = val + col->slot;
        int32_t *uo = unit + col->slot;
        switch (col->kind) {
        case H2O_FCOL_NUMERIC:
            for (int b = 0; b < nb; b++) {
                vo[(size_t)b * S] = isnan(v[b]) ? (float)col->na_fill : (float)((v[b] - col->sub) * col->mul);
                uo[(size_t)b * S] = col->input;
            }
            break;
        case H2O_FCOL_LABEL:
            for (int b = 0; b < nb; b++) {
                const int L = fr_level(col, v[b]);
                vo[(size_t)b * S] = (L < 0 || L >= col->n_levels) ? (float)col->na_fill
                                                                   : (float)(((double)L - col->sub) * col->mul);
                uo[(size_t)b * S] = col->input;
            }
            break;
        case H2O_FCOL_BINARY:
            for (int b = 0; b < nb; b++) {
                const int L = fr_level(col, v[b]);
                const uint32_t code = L < 0 ? 0u : (uint32_t)L + 1u;
                for (int q = 0; q < col->width; q++) {
                    const double bit = (double)((code >> q) & 1u);
                    vo[(size_t)b * S + q] = (float)((bit - col->bit_sub[q]) * col->bit_mul[q]);
                    uo[(size_t)b * S + q] = col->input + q;
                }
            }
            break;
        case H2O_FCOL_ONEHOT:
            for (int b = 0; b < nb; b++) {
                const int u = fr_onehot_unit(col, fr_level(col, v[b]));
                vo[(size_t)b * S] = 1.f;
                uo[(size_t)b * S] = u >= 0 ? col->input + u : -1;
            }
            break;
        default: /* HASHED */
            for (int b = 0; b < nb; b++) {
                const int u = fr_onehot_unit(col, fr_level(col, v[b]));
                vo[(size_t)b * S] = 1.f;
                uo[(size_t)b * S] =
                    u < 0 ? -1
                          : col->input + (int)(fr_hash((uint32_t)(col->cat_offset + u), col->hash_seed) %
                                               (uint32_t)col->width);
            }
        }
    }
}

/* Emit one decoded row (its n_slots val/unit) into x, which holds zeros at its units
 * beforehand: the non-zero inputs are written and listed in idx, ascending (HASHED slots
 * accumulate into their shared region, kept sorted by insertion).  Returns the count. */
static int frame_emit(const h2o_frame *f, const float *val, const int32_t *unit, float *x,
                      int32_t *idx) {
    int n = 0;
    const int H = f->hashed_slot < f->n_slots ? f->hashed_slot : f->n_slots;
    for (int s = 0; s < H; s++) {
        const int32_t u = unit[s];
        const float v = val[s];
        if (u >= 0 && v != 0.f) { x[u] = v; idx[n++] = u; }
    }
    const int start = n;
    for (int s = H; s < f->n_slots; s++) {
        const int32_t u = unit[s];
        if (u < 0) continue;
        if (x[u] == 0.f) {
            int k = n++;
            while (k > start && idx[k - 1] > u) { idx[k] = idx[k - 1]; k--; }
            idx[k] = u;
        }
        x[u] += val[s];
    }
    return n;
}

/* the scratch of thread tid */
static inline int32_t *fr_hint(const h2o_frame *f, int tid) {
    return f->hint ? f->hint + (size_t)tid * f->n_cols : NULL;
}
static inline float *fr_block_val(const h2o_frame *f, int tid) {
    return f->block_val + (size_t)tid * f->block_rows * f->n_slots;
}
static inline int32_t *fr_block_unit(const h2o_frame *f, int tid) {
    return f->block_unit + (size_t)tid * f->block_rows * f->n_slots;
}

/* the frame is usable by `threads` threads (scratch present and large enough) */
static int frame_ok(const h2o_frame *f, int n_cols, int64_t n_rows, int threads) {
    if (!f || f->n_cols < 0 || (f->n_cols > 0 && !f->cols) || threads > f->threads ||
        f->block_rows < 1 || f->block_rows > H2O_FRAME_BLOCK_MAX || !f->block_val ||
        !f->block_unit || f->n_slots < f->n_cols || f->hashed_slot < 0)
        return 0;
    for (int j = 0; j < f->n_cols; j++) {
        const h2o_frame_col *col = &f->cols[j];
        const int slots = col->kind == H2O_FCOL_BINARY ? col->width : 1;
        if (col->input < 0 || col->width < 1 || col->input + col->width > n_cols ||
            col->slot < 0 || col->slot + slots > f->n_slots || col->n_chunks < (n_rows > 0) ||
            !col->row_offsets || !col->chunks || col->chunk_stride < 1 ||
            col->row_offsets[col->n_chunks] != n_rows || col->kind < 0 ||
            col->kind >= H2O_N_FCOL_KINDS || (col->level_map && col->n_map < 0) ||
            (col->kind == H2O_FCOL_BINARY && (col->width > 32 || !col->bit_sub || !col->bit_mul)))
            return 0;
    }
    return 1;
}

#ifndef H2O_FRAME_ROWS_INCLUDED
/* ---- exported once (this file compiled on its own) ---------------------------------- */
#include <omp.h>

uint32_t h2o_hash(uint32_t key, uint32_t seed) { return fr_hash(key, seed); }

int h2o_rows_expand(const h2o_rows *d, const int64_t *rows, int64_t n, float *out) {
    if (!d || n < 0 || (n > 0 && (!rows || !out)) || d->n_cols < 1) return H2O_EARG;
    const int C = d->n_cols;
    if (d->kind == H2O_ROWS_DENSE && !d->x && d->n_rows > 0) return H2O_EARG;
    if (d->kind == H2O_ROWS_CSR && !d->indptr) return H2O_EARG;
    if (d->kind == H2O_ROWS_FRAME && !frame_ok(d->frame, C, d->n_rows, 1)) return H2O_EARG;
    if (d->kind < 0 || d->kind >= H2O_N_ROW_KINDS) return H2O_EARG;
    for (int64_t k = 0; k < n; k++)
        if (rows[k] < 0 || rows[k] >= d->n_rows) return H2O_EARG;
    if (d->kind == H2O_ROWS_FRAME) { /* blocks of rows on the frame's threads, each with its
                                      * own scratch; the list goes to its unit slots' */
        const h2o_frame *f = d->frame;
        const int64_t n_blocks = (n + f->block_rows - 1) / f->block_rows;
#pragma omp parallel for num_threads(f->threads) schedule(static)
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            const int tid = omp_get_thread_num();
            const int64_t k0 = blk * f->block_rows;
            const int nb = (int)(n - k0 < f->block_rows ? n - k0 : f->block_rows);
            float *val = fr_block_val(f, tid);
            int32_t *unit = fr_block_unit(f, tid);
            frame_block(f, rows + k0, nb, fr_hint(f, tid), val, unit);
            for (int b = 0; b < nb; b++) {
                float *o = out + (size_t)(k0 + b) * C;
                memset(o, 0, sizeof(float) * (size_t)C);
                const size_t at = (size_t)b * f->n_slots; /* as frame_emit, without the list */
                const int H = f->hashed_slot < f->n_slots ? f->hashed_slot : f->n_slots;
                for (int s = 0; s < H; s++)
                    if (unit[at + s] >= 0 && val[at + s] != 0.f) o[unit[at + s]] = val[at + s];
                for (int s = H; s < f->n_slots; s++)
                    if (unit[at + s] >= 0) o[unit[at + s]] += val[at + s];
            }
        }
        return H2O_OK;
    }
    for (int64_t k = 0; k < n; k++) {
        const int64_t r = rows[k];
        float *o = out + (size_t)k * C;
        if (d->kind == H2O_ROWS_DENSE) {
            memcpy(o, d->x + (size_t)r * C, sizeof(float) * (size_t)C);
            continue;
        }
        memset(o, 0, sizeof(float) * (size_t)C);
        for (int64_t q = d->indptr[r]; q < d->indptr[r + 1]; q++) o[d->indices[q]] = d->values[q];
    }
    return H2O_OK;
}
#endif
