/*
 * h2odl.h -- the only interface of the h2odl_mpi C kernel.
 *
 * A fully connected network trained one row at a time with H2O Deep Learning's math,
 * over OpenMP threads (Hogwild! on one model, or a replica a thread and their mean), plus
 * forward-only scoring.  Python (kernel.py)
 * owns every buffer and validates every argument; these functions never allocate, never
 * print and never abort: they return H2O_OK or an H2O_E* code.
 *
 * THE MODEL BUFFER.  One contiguous float32 array holds everything the ranks average:
 *   [ W_0 b_0 W_1 b_1 ... W_{L-1} b_{L-1} | optimizer state ]
 * h2o_layout_of() gives every offset (in floats).  Weight layer l maps units[l] inputs to
 * rows[l] = units[l+1] * channels(l) outputs ("rows"; channels = 2 for Maxout layers).
 * W_l is stored OUTPUT-MAJOR (as H2O's dense rows): W_l[j * units[l] + i] is the weight from
 * input i to output row j, so one unit's incoming weights are contiguous: its forward is one
 * vectorised dot product, its update one contiguous sweep, and a unit with nothing to learn
 * (inactive rectifier, dropped unit) is skipped whole in fast mode.  Rows with few non-zero
 * inputs (sparse data, one-hot categoricals) gather and scatter over those inputs only.  For
 * Maxout, output unit u owns rows 2u and 2u+1 (its two channels).  Optimizer state, when
 * present, follows all parameters:
 *   ADADELTA:  for each layer  Edx2_W, Eg2_W (like W_l), Edx2_b, Eg2_b (like b_l)
 *   momentum:  for each layer  V_W (like W_l), V_b (like b_l)   (only if a momentum != 0)
 *
 * THE MATH (H2O-3 Neurons.java semantics; e = -dLoss/d(output) = H2O's output error with
 * the sign turned: -2 x the distribution's "negative half gradient" (hex/DistributionFactory),
 * Neurons.Linear / autoEncoderGradient; softmax with CrossEntropy: t - y, as in H2O).
 *   forward, hidden layer l (activation f, dropout ratio p_l):
 *     net_j = b_j + sum_i W[j,i] a_i      (for Maxout: a_u = max(net_2u, net_2u+1))
 *     Tanh a = tanh(net); Rectifier a = max(0, net); ExpRectifier a = net >= 0 ? net : exp(net) - 1
 *     training: each unit dropped with probability p_l (a = 0, no rescaling);
 *     scoring: a *= (1 - p_l).  Input dropout: each input zeroed with probability
 *     input_dropout while training, no rescaling at scoring (as H2O).
 *   output: SOFTMAX  y = softmax(net), e_k = w_row * (t_k - y_k)   (CrossEntropy)
 *           LINEAR   y = net + offset (link space), e = w_row * 2 * neg_half_gradient(t, y):
 *             QUADRATIC 2(t - y); ABSOLUTE y > t ? -1 : 1 (laplace's half gradient is +-1/2);
 *             HUBER |t-y| <= d ? 2(t-y) : 2d*sign(t-y); QUANTILE t > y ? alpha : alpha - 1
 *             (half gradient alpha/2, (alpha-1)/2); POISSON 2(t - exp(y));
 *             GAMMA 2(t*exp(-y) - 1); TWEEDIE 2(t*exp((1-p)y) - exp((2-p)y));
 *             BERNOULLI 2(t - 1/(1+exp(-y))).
 *           AUTOENCODER  the output layer has the hidden activation (no dropout),
 *             target = the row's inputs before input dropout, e_k = w_row * 2(t_k - y_k)
 *             (Quadratic: gaussian), then g_k = e_k f'(y_k) as for a hidden unit.  (H2O-3
 *             takes g_k = e_k, without f': the gradient of the activation's matching loss,
 *             which for a Rectifier output with t_k < 0 decreases without bound.  Here g
 *             is the gradient of the reconstruction error, on purpose.)
 *   backward: g_j = e_j * f'(a_j) with f' = 1 - a^2 (Tanh), [a > 0] (Rectifier),
 *     a > 0 ? 1 : a + 1 (ExpRectifier), 1 on the winning channel (Maxout); g = e at SOFTMAX
 *     and LINEAR outputs; g = 0 for dropped units.  Error to the previous layer uses the
 *     weights before this row's update: e_i = sum_j g_j W[j,i].
 *   update of weight W[j,i] with a_i the input activation.  fast_mode (H2O's default) skips
 *     it when g_j == 0 or a_i == 0.  Without fast_mode every weight is updated, except that
 *     rows with g_j == 0 are still skipped when there is nothing else to apply (manual rate,
 *     no momentum, l1 == l2 == 0), as H2O's "shortcut" does; sparse (CSR) rows' first layer
 *     always visits only the row's non-zero inputs:
 *     grad = g_j a_i - l1 sign(W) - l2 W
 *     ADADELTA: Eg2 = rho Eg2 + (1-rho) grad^2; r = sqrt((Edx2 + eps) / (Eg2 + eps));
 *               Edx2 = rho Edx2 + (1-rho) r^2 grad^2; W += r grad
 *     manual, layer rate  R = rate * rate_decay^l / (1 + rate_annealing * n) * (1 - m),
 *       n = samples processed so far, m = momentum(n) ramping linearly from momentum_start to
 *       momentum_stable over momentum_ramp samples:
 *       Nesterov: V = m V + grad; W += R V.   plain: d = R grad; W += d + m V; V = d.
 *   bias b_j (whenever row j is updated): gb = g_j - l1 sign(b) - l2 b.  ADADELTA: with
 *     q = the sum of grad^2 over the weights of row j updated by this row, divided by the
 *     fan-in (dense rows) or by the row's non-zero inputs after input dropout (CSR rows),
 *     Eg2_b and Edx2_b follow the weight rules with q in place of grad^2, and b += r gb.
 *     Manual rate: the weight rules with gb.
 *   loss (H2O_PRED_LOSS, stats.loss_sum; the gradients above are its -d/dy; H2O's
 *     deviance, up to a constant for the last four linear ones):
 *     CrossEntropy -log y_t; QUADRATIC (t-y)^2; ABSOLUTE |t-y|; HUBER r^2 if |r| <= d
 *     else d(2|r| - d); QUANTILE alpha r if r > 0 else (alpha-1) r (r = t-y); POISSON
 *     2(exp(y) - t y); GAMMA 2(t exp(-y) + y); TWEEDIE 2(exp((2-p)y)/(2-p) - t exp((1-p)y)/(1-p));
 *     BERNOULLI 2(log(1 + exp(y)) - t y); AUTOENCODER sum_k (t_k - y_k)^2.
 *   a unit whose activation is exactly 0 (dropped, or an inactive rectifier) passes no
 *     error back (its g is 0), so in fast mode its incoming and outgoing work is skipped.
 *   momentum(n): momentum_ramp == 0 means momentum_start throughout (as H2O).
 *   Maxout ties go to channel 0.  Scoring outputs are in response space: exp(y) for the log
 *     link (poisson, gamma, tweedie), 1/(1+exp(-y)) for bernoulli.
 *   max_w2: after a row's update, each updated row j (a unit, or a Maxout channel) whose
 *     squared incoming weights sum above max_w2 has them scaled by sqrt(max_w2 / sum).
 *
 * MINI-BATCHES (mini_batch_size B > 1; B = 1 is the one-row-at-a-time math above, bit for
 * bit).  Each thread trains its share in blocks of B consecutive trained rows (rows skipped
 * for a NaN target or weight 0 do not count; the share's last block may be shorter, and so
 * a call of h2o_train ends a block).  With n the rows of a block (1 <= n <= B):
 *   - every row's forward and backward pass uses the weights as they are at the start of
 *     the block (this thread makes no update in between); its dropout masks are its own,
 *     drawn as above from its sample number; the error to the previous layer uses the
 *     weights before the block's update.
 *   - each weight row j is updated once, with grad = (1/n) sum_b g_bj a_bi - l1 sign(W) - l2 W
 *     for its weights and gb = (1/n) sum_b g_bj - l1 sign(b) - l2 b for its bias (the mean
 *     over the block's rows of the row gradients, the regularisation added once), by the
 *     rules above: ADADELTA, or the manual rate and momentum with annealing and the
 *     momentum ramp taken at the sample count n of the block's first row; max_w2 once after
 *     the update.
 *   - fast_mode skips row j when g_bj == 0 in every row b of the block, and input i when
 *     a_bi == 0 in every row b (the union of the rows' active inputs is visited); without
 *     fast_mode every weight is updated but for the same row shortcut as above, and a CSR
 *     first layer visits the union of the rows' non-zero inputs.
 *   - the ADADELTA bias rule's q is the mean over the block's rows b (every one, also those
 *     with g_bj == 0) of the row's own q as defined above:
 *       q_b = (1/fan_b) sum_{i in V_b} (g_bj a_bi - l1 sign(W[j,i]) - l2 W[j,i])^2,
 *     V_b the inputs row b alone would update (a_bi != 0 in fast mode and for a CSR first
 *     layer, else all), fan_b its fan-in (units[l], or its non-zero inputs for CSR rows),
 *     W at the start of the block.
 *   - stats: the rows' losses (before the update) and the trained / skipped counts as
 *     above; a block with a non-finite output is not applied, and nothing after it.
 * The thread's workspace holds B rows of every layer (h2o_layout.workspace_per_thread).
 *
 * SCORING (h2o_predict, csrc/score.c).  The scoring network of THE MATH (no dropout draws,
 * hidden activations times 1 - ratio) over blocks of up to 64 rows (fewer for very wide
 * inputs): each layer's net inputs are one matrix product over the block, each net input
 * b_j + (sum over the inputs in ascending order, in float32), so they equal the one-row
 * forward pass (h2o_train's, h2o_gradient's) up to the order of the sums (the tests hold
 * them to the float64 reference within 3e-5 relative).  A first layer with fewer than 1
 * non-zero input in 4 over the block sums each row over its non-zero inputs only, in the
 * same order: the same bits.  So a row's results depend neither on n_threads nor on the
 * other rows of the call, a call is bit-reproducible, and DENSE, CSR and FRAME rows holding
 * the same values give the same bits.
 *
 * HOGWILD!  h2o_train() splits its n rows into n_threads contiguous shares; all threads
 * update the same buffer with plain float stores: no locks, no atomics.  n_threads = 1
 * makes the result a pure function of (model, rows, order, seed): bit-reproducible.
 * Dropout masks come from a counter-based generator keyed by (seed, sample number), so
 * they do not depend on which thread takes a row.
 *
 * REPLICAS (local SGD inside a rank; HOGWILD++, Zhang, Hsieh and Akella 2016).
 * h2o_train_replicas() shares the rows out as h2o_train does, but thread t first copies the
 * model into its own replica R_t (replicas + t * n_total), trains its share on R_t exactly as
 * h2o_train's thread t would on the shared model (same sample numbers, dropout draws,
 * mini-batches), and after all threads are done the model becomes the mean of every float
 * of the buffer (weights, biases and optimizer state):
 *     model[i] = (R_0[i] + R_1[i] + ... + R_{T-1}[i]) / T    (float32, summed in this order)
 * each thread writing a contiguous range of i.  T = n_threads (or fewer, if the OpenMP
 * runtime gives fewer threads; then only R_0 .. R_{T-1} are written).  No thread writes
 * another's replica while training, so R_t is a pure function of (model, its share, seed),
 * and n_threads = 1 gives h2o_train's bits (the mean of one replica is its copy).  The
 * replicas hold the trained replicas after the call.  The mean is a plain one: the trainer
 * gives the kernel only rows it trains (a response, a weight not 0), so shares differ by at
 * most one row and a mean weighted by the rows trained (the ranks' rule) would be this mean
 * to within 1/share.
 */
#ifndef H2ODL_H
#define H2ODL_H

#include <stdint.h>

#define H2O_MAX_LAYERS 16 /* weight layers (hidden layers + 1) */
#define H2O_MAX_MINI_BATCH 256 /* h2o_config.mini_batch_size, at most */

/* return codes */
#define H2O_OK 0
#define H2O_EARG 1      /* an argument is out of its documented range */
#define H2O_ENONFINITE 2 /* a non-finite output or loss was met (training stops early) */

/* hidden activations (f and f' of each side by side: layers.c, "activations");
 * H2O_N_ACTIVATIONS counts them */
enum { H2O_TANH = 0, H2O_RECTIFIER = 1, H2O_MAXOUT = 2, H2O_EXPRECTIFIER = 3, H2O_N_ACTIVATIONS = 4 };

/* output layer kinds */
enum { H2O_OUT_SOFTMAX = 0, H2O_OUT_LINEAR = 1, H2O_OUT_AUTOENCODER = 2, H2O_N_OUTPUTS = 3 };

/* losses of a LINEAR output (link-space gradients) */
enum {
    H2O_LOSS_QUADRATIC = 0,
    H2O_LOSS_ABSOLUTE = 1,
    H2O_LOSS_HUBER = 2,
    H2O_LOSS_QUANTILE = 3,
    H2O_LOSS_POISSON = 4,
    H2O_LOSS_GAMMA = 5,
    H2O_LOSS_TWEEDIE = 6,
    H2O_LOSS_BERNOULLI = 7,
    H2O_N_LOSSES = 8
};

/* what h2o_predict writes per row */
#define H2O_PRED_OUTPUT 0  /* class probabilities (n_out) or the value in response space (1) */
#define H2O_PRED_RECON 1   /* autoencoder: mean squared reconstruction error (1) */
#define H2O_PRED_HIDDEN 2  /* activations of hidden layer `layer` (units[layer + 1]) */
#define H2O_PRED_LOSS 3    /* the row's loss (1) as defined above, without the row weight */

/* row formats; H2O_N_ROW_KINDS counts them */
enum {
    H2O_ROWS_DENSE = 0, /* x[r * n_cols + c] */
    H2O_ROWS_CSR = 1,   /* row r: indices/values [indptr[r], indptr[r+1]), ascending */
    H2O_ROWS_FRAME = 2, /* row r decoded from the compressed column store (h2o_frame below) */
    H2O_N_ROW_KINDS = 3
};

/* ---- FRAME rows: straight from the column store (csrc/frame_rows.c) ---------------------
 * A row of a FRAME source is the concatenation of its columns' input units, decoded from
 * the chunk encodings of docs/column_store.md and transformed (standardise, impute, one-hot,
 * binary or label code) into the thread's workspace; only its non-zero units are written,
 * in ascending order, and cleared again after the row.  A FRAME row is trained and scored
 * exactly like the DENSE row holding the same values (h2o_rows_expand writes that row): same
 * active-input list, same dropout draws, same fan-in, so results are bit-identical.
 * Nothing is allocated.  Training and scoring decode the thread's next block_rows rows at
 * once, column by column (one encoding branch per column and block, independent loads across
 * rows), into the thread's block_val/block_unit slots; each row is then emitted into the
 * workspace when its turn comes.  Each thread keeps the last chunk it used per column in
 * `hint`; columns sharing one row_offsets array look the chunk up once per row.
 *
 * Per column kind (v: the decoded float64 value, NaN = NA; L: its training level, -1 when
 * NA or when the frame's code is not a training level (unseen): L = level_map[code], or the
 * code itself when level_map is NULL; f = first_level (1 drops level 0: H2O's
 * use_all_factor_levels = false); all arithmetic in double, rounded to float at the end):
 *   NUMERIC  unit input:  NA ? na_fill : (v - sub) * mul
 *   ONEHOT   unit input + L - f = 1 (L >= f); NA/unseen: unit input + n_levels - f = 1;
 *            L < f: no unit set
 *   BINARY   units input + b, b < width: bit b of (L + 1) (0 for NA/unseen), then
 *            (bit - bit_sub[b]) * bit_mul[b]
 *   LABEL    unit input:  NA/unseen ? na_fill : (L - sub) * mul   (H2O's LabelEncoder)
 *   HASHED   the ONEHOT unit u (NA/unseen included) of a layout where this column's units
 *            start at cat_offset is hashed: unit input + h2o_hash(cat_offset + u, seed) % width
 *            += 1 (H2O's max_categorical_features); HASHED columns come last and share
 *            one region [input, input + width).
 * Columns are given in ascending `input` order and never overlap, except HASHED ones. */
typedef struct {             /* one chunk's descriptor: DESCRIPTOR_DTYPE (40 bytes) */
    uint8_t encoding;        /* 0 CONST 1 BITS 2 INT 3 FLOAT32 4 FLOAT64 5 SPARSE 6 MASKED */
    uint8_t value_encoding;  /* SPARSE/MASKED: encoding of the stored values */
    uint8_t value_width;     /* bytes per stored value */
    uint8_t index_width;     /* SPARSE: bytes per row index (2 or 4) */
    int8_t scale;            /* INT: decimal scale, 0..10 */
    uint8_t has_na;          /* INT: all-ones offset is NA; BITS: bitmap holds NA bits */
    uint16_t reserved;
    uint32_t n_rows;
    uint32_t nnz;            /* SPARSE/MASKED: stored values */
    int64_t base;            /* INT: offset origin */
    double value;            /* CONST (and CONST stored values) */
    double fill;             /* SPARSE/MASKED: value of rows not stored */
} h2odl_chunk;

/* FRAME column kinds (transforms above); H2O_N_FCOL_KINDS counts them */
enum {
    H2O_FCOL_NUMERIC = 0,
    H2O_FCOL_ONEHOT = 1,
    H2O_FCOL_BINARY = 2,
    H2O_FCOL_HASHED = 3,
    H2O_FCOL_LABEL = 4,
    H2O_N_FCOL_KINDS = 5
};

/* Rows per prefix count of a MASKED chunk's presence bitmap (h2o_frame_chunk.rank): one
 * count per 64-bit word of the bitmap.  The one definition: frame_rows.c reads a word per
 * count, and Python (h2odl_mpi/frame/c_view.py) reads it from the extension as
 * lib.H2O_FRAME_RANK_ROWS when it computes the counts. */
#define H2O_FRAME_RANK_ROWS 64

/* A chunk as the decoder reads it: descriptor and buffers (n = d.n_rows, nnz = d.nnz; a
 * buffer absent from the encoding is NULL).  Sizes per d.encoding:
 *   BITS     data (ceil(n / 8)) uint8 bits; bitmap (ceil(n / 8)) NA bits if d.has_na
 *   INT      data (n) offsets of d.value_width bytes (uint8/16/32)
 *   FLOAT32  data (n) float;  FLOAT64  data (n) double
 *   SPARSE   index (nnz) ascending rows of d.index_width bytes (uint16/32);
 *            data (nnz) values encoded as d.value_encoding
 *   MASKED   bitmap (ceil(n / 8)) presence bits; data (max(1, nnz)) values encoded as
 *            d.value_encoding; rank (ceil(n / H2O_FRAME_RANK_ROWS)) set bits before each
 *            word of the bitmap */
typedef struct {
    h2odl_chunk d;
    const void *data;
    const void *index;
    const uint8_t *bitmap;
    const uint32_t *rank;
} h2o_frame_chunk;           /* 72 bytes */

typedef struct {
    int kind;                        /* H2O_FCOL_* */
    int input;                       /* first input unit written */
    int width;                       /* units: 1, n_levels + 1 - first_level, bits, or slots */
    int n_chunks;
    const int64_t *row_offsets;      /* (n_chunks + 1): first local row of each chunk; columns
                                        with equal offsets share one array (one lookup) */
    const h2o_frame_chunk *chunks;   /* (n_chunks, chunk_stride) records, this column's
                                        chunk c at chunks[c * chunk_stride] (columns that
                                        share offsets interleave their chunks) */
    int64_t chunk_stride;
    int slot;                        /* first of this column's slots in a decoded row */
    const int32_t *level_map;        /* (n_map): frame code -> training level (-1 unseen);
                                        NULL: the code is the level */
    int32_t n_map;                   /* entries of level_map */
    int32_t n_levels;                /* training levels */
    int32_t first_level;             /* ONEHOT/HASHED: 0, or 1 to drop level 0 */
    int32_t cat_offset;              /* HASHED: this column's first unit before hashing */
    uint32_t hash_seed;              /* HASHED */
    double sub, mul, na_fill;        /* NUMERIC, LABEL; na_fill is already transformed */
    const double *bit_sub, *bit_mul; /* BINARY: (width) each */
} h2o_frame_col;

#define H2O_FRAME_BLOCK_MAX 64 /* rows decoded at a time, at most */

typedef struct {
    int n_cols;                      /* source columns feeding the inputs */
    const h2o_frame_col *cols;       /* (n_cols), ascending `input` (HASHED ones last) */
    int n_slots;                     /* decoded units per row: 1 per column, `width` for BINARY */
    int hashed_slot;                 /* first slot of a HASHED column (n_slots if none) */
    int threads;                     /* the scratch below exists for threads 0..threads-1; a
                                        call with more threads is refused */
    int block_rows;                  /* rows decoded at a time, 1..H2O_FRAME_BLOCK_MAX */
    int32_t *hint;                   /* (threads, n_cols): each thread's last chunk per column */
    float *block_val;                /* (threads, block_rows, n_slots): a block's decoded */
    int32_t *block_unit;             /* values and their input units (-1: none) */
} h2o_frame;

/* The network and its training math (names follow H2O's parameters; THE MATH above). */
typedef struct {
    int n_layers;                     /* weight layers = len(hidden) + 1, 1..H2O_MAX_LAYERS */
    int units[H2O_MAX_LAYERS + 1];    /* (n_layers + 1): units[0] inputs ... units[n_layers]
                                         outputs */
    int activation;                   /* H2O_TANH ... for every hidden layer */
    int output;                       /* H2O_OUT_* */
    int loss;                         /* H2O_LOSS_* (LINEAR output only) */
    float input_dropout;              /* [0, 1) */
    float hidden_dropout[H2O_MAX_LAYERS]; /* (n_layers - 1): per hidden layer, [0, 1) */
    int adaptive_rate;                /* 1: ADADELTA, 0: manual rate + momentum */
    float rho, epsilon;
    float rate, rate_annealing, rate_decay;
    float momentum_start, momentum_ramp, momentum_stable;
    int nesterov;
    float l1, l2, max_w2;             /* max_w2 = INFINITY disables */
    float huber_delta, quantile_alpha, tweedie_power;
    int fast_mode;
    int mini_batch_size;              /* B: a thread's rows per update, 1..H2O_MAX_MINI_BATCH
                                         (MINI-BATCHES above); 1 = one row at a time */
} h2o_config;

/* Offsets (in floats) of every array of the model buffer, per weight layer l < n_layers;
 * R = rows[l], U = units[l] (its inputs).  Weight arrays are output-major. */
typedef struct {
    int64_t w[H2O_MAX_LAYERS];        /* W_l: (R, U) output-major, W_l[j * U + i] */
    int64_t b[H2O_MAX_LAYERS];        /* b_l: (R) */
    int64_t ada_dx_w[H2O_MAX_LAYERS]; /* ADADELTA Edx2_W: (R, U) like W_l; -1 when absent */
    int64_t ada_g_w[H2O_MAX_LAYERS];  /* ADADELTA Eg2_W:  (R, U); -1 when absent */
    int64_t ada_dx_b[H2O_MAX_LAYERS]; /* ADADELTA Edx2_b: (R); -1 when absent */
    int64_t ada_g_b[H2O_MAX_LAYERS];  /* ADADELTA Eg2_b:  (R); -1 when absent */
    int64_t mom_w[H2O_MAX_LAYERS];    /* momentum V_W: (R, U); -1 when absent */
    int64_t mom_b[H2O_MAX_LAYERS];    /* momentum V_b: (R); -1 when absent */
    int rows[H2O_MAX_LAYERS];         /* R: outputs of weight layer l, units[l + 1] * channels
                                         (2 for Maxout layers, else 1) */
    int64_t n_params;                 /* floats of weights and biases */
    int64_t n_total;                  /* floats of the whole buffer */
    int64_t workspace_per_thread;     /* floats of scratch one thread needs (B rows of every
                                         layer when mini_batch_size B > 1) */
    int64_t score_shared;             /* h2o_predict's scratch: floats its threads share (the
                                         weights transposed, input-major) ... */
    int64_t score_per_thread;         /* ... then floats of each thread's own (a block of
                                         rows of every layer) */
} h2o_layout;

/* Rows to train or score; every per-row array has n_rows entries. */
typedef struct {
    int kind;              /* H2O_ROWS_* */
    int64_t n_rows;
    int n_cols;            /* must equal units[0] */
    const float *x;        /* DENSE: (n_rows, n_cols) row-major */
    const int64_t *indptr; /* CSR: (n_rows + 1) */
    const int32_t *indices; /* CSR: (indptr[n_rows]) column of each value, ascending per row */
    const float *values;   /* CSR: (indptr[n_rows]) */
    const float *y;        /* (n_rows): class index (SOFTMAX) or target; NaN skips the row;
                              NULL for AE */
    const float *weight;   /* (n_rows): observation weights, NULL = 1; rows of weight 0 are
                              skipped */
    const float *offset;   /* (n_rows): LINEAR output offsets (link space), NULL = 0 */
    const h2o_frame *frame; /* FRAME */
} h2o_rows;

typedef struct {
    int64_t trained;      /* rows that updated the model */
    int64_t skipped;      /* rows skipped: missing target or zero weight */
    double loss_sum;      /* sum over trained rows of weight * loss (before the update) */
    int nonfinite;        /* 1 if a non-finite output was met */
} h2o_train_stats;

/* Fill *out for cfg; H2O_EARG if cfg is malformed. */
int h2o_layout_of(const h2o_config *cfg, h2o_layout *out);

/* Train rows order[0..n) (indices into data) on n_threads threads, Hogwild!.
 * model: (n_total) floats, updated in place; workspace: (n_threads, workspace_per_thread)
 * floats; order: (n).  samples_before: samples the model had processed before this call
 * (annealing, momentum ramp, dropout stream).  Returns H2O_ENONFINITE (stats->nonfinite = 1)
 * when a non-finite output or loss stopped training early, stats filled either way. */
int h2o_train(const h2o_config *cfg, float *model, float *workspace, int n_threads,
              const h2o_rows *data, const int64_t *order, int64_t n,
              int64_t samples_before, uint64_t seed, h2o_train_stats *stats);

/* Train rows order[0..n) on n_threads threads, each its own replica, and write their mean
 * into model (REPLICAS above).  Arguments as h2o_train's; replicas: (n_threads, n_total)
 * floats, overwritten (they hold the trained replicas after the call), not overlapping
 * model (else H2O_EARG).  A non-finite value stops every thread, as in h2o_train; the
 * model is then still the mean of what the replicas hold. */
int h2o_train_replicas(const h2o_config *cfg, float *model, float *replicas, float *workspace,
                       int n_threads, const h2o_rows *data, const int64_t *order, int64_t n,
                       int64_t samples_before, uint64_t seed, h2o_train_stats *stats);

/* Forward-only scoring of rows [0, data->n_rows) with the full network, in parallel
 * (SCORING above).  model: (n_total); workspace: score_shared + n_threads *
 * score_per_thread floats (h2o_layout), its length workspace_floats (refused when
 * shorter); out: (n_rows, width) floats, width per
 * H2O_PRED_*. */
int h2o_predict(const h2o_config *cfg, const float *model, float *workspace,
                int64_t workspace_floats, int n_threads, const h2o_rows *data, int what,
                int layer, float *out);

/* The row's gradient: grad (n_params floats) receives -w_row dLoss/dparam for row `row`
 * of the network without dropout (ratios taken as 0, no scoring rescale), without
 * regularisation, every term computed: for gradient checks.  workspace: one thread's
 * (workspace_per_thread).  H2O_ENONFINITE (grad still written) for a non-finite output. */
int h2o_gradient(const h2o_config *cfg, const float *model, float *workspace,
                 const h2o_rows *data, int64_t row, float *grad);

/* Write rows rows[0..n) of data as the dense float32 inputs the kernel sees (before input
 * dropout): out (n, n_cols), out[k * n_cols + c].  Any row format; FRAME rows are decoded in
 * blocks on the frame's threads (h2o_frame.threads, each with its own scratch), the others
 * on one. */
int h2o_rows_expand(const h2o_rows *data, const int64_t *rows, int64_t n, float *out);

/* The hash of HASHED frame columns (murmur3's 32-bit finaliser of key * golden ^ seed). */
uint32_t h2o_hash(uint32_t key, uint32_t seed);

/* ---- combine_precision bfloat16_log8 (csrc/codec.c) ----------------------------------
 * out[i] (n of them): the 8-bit logarithmic code of v[i] against the scale top: 254 for top,
 * each code below 2^(-1/8) of the one above, the nearest in the logarithm; 0 for zero and for
 * values below code 1's half step; 255 for NaN, infinities, negative values, and for every
 * non-zero value when top is not a positive finite number (for every value when top is not
 * finite).  Values above top take code 254.  H2O_LOG8_STEPS codes an octave. */
#define H2O_LOG8_STEPS 8
void h2o_log8_encode(const float *v, int64_t n, float top, uint8_t *out);

/* The instruction-set variant the entry points run ("baseline", "avx2", "avx512"). */
const char *h2o_isa(void);

/* ---- the exit alarm (csrc/exit_alarm.c) -------------------------------------------------
 * `seconds` from now (0: cancel), unless the process has ended by then, write `line` to
 * stderr and end the process with `status` (_exit): a SIGALRM handler that calls write(2)
 * and _exit(2) only, so it runs whatever the process is doing, also inside MPI_Finalize
 * after Python has ended (where no Python code can run).  `line` is copied (at most
 * H2O_EXIT_LINE_MAX - 1 bytes, else H2O_EARG); status 0..255. */
#define H2O_EXIT_LINE_MAX 1024
int h2o_exit_alarm(int seconds, const char *line, int status);

#endif
