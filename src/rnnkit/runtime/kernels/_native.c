/* rnnkit.runtime.kernels._native: compiled time loops of the recurrent cells.
 *
 * (Over 500 lines because it is the module's one translation unit: the argument checking shared by
 * every loop, the table of loop functions, the matrix-product and vmath entry points and the module
 * set-up; the loops themselves live in the *_loops.h headers.)
 *
 * Written against the CPython C API and the buffer protocol only (no NumPy headers, no BLAS):
 * the Python side (rnnkit/runtime/kernels/) allocates every array, checks dtypes and makes inputs
 * C-contiguous; this module checks shapes again, releases the GIL and runs the loops.
 *
 * The per-step matrix products use the micro-kernel of microkernel.h on weights packed once
 * per sequence. The loops are compiled for several instruction sets (on x86-64 with GCC:
 * AVX-512, AVX2 + FMA and the SSE2 baseline; elsewhere one portable variant) and the best one
 * the CPU supports is chosen when the module loads, so a wheel built here also runs on an
 * older CPU. Building with -DRNNKIT_NO_VARIANTS compiles the portable variant only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#define RK_PAUSE() __builtin_ia32_pause()
#else
#define RK_PAUSE() ((void)0)
#endif

#include "vmath.h"

#define RK_CAT_(a, b) a##b
#define RK_CAT(a, b) RK_CAT_(a, b)

/* -- the loops, once per instruction set and type ------------------------------------------- */

/* What every loop gets; the first member of each cell's arguments below. */
typedef struct {
    int64_t T, B, H;
    const void *packed;        /* W_hh packed for the loop's products */
    const unsigned char *mask; /* (T, B), False at padded steps; or NULL */
    void *scratch;             /* (B, H) of working space, for the loops that need it */
} rk_common;

typedef struct {
    rk_common c;
    const void *xg, *h0, *c0;       /* (T, B, 4H), (B, H), (B, H) */
    void *hs, *cs, *gates, *tanh_c; /* (T, B, H), (T, B, H), (T, B, 4H), (T, B, H) */
} rk_lstm_fwd;

typedef struct {
    rk_common c;
    const void *dhs, *dh_T, *dc_T;       /* (T, B, H), (B, H), (B, H) */
    const void *cs, *c0, *gates, *tanh_c; /* as in and from rk_lstm_fwd */
    void *da, *dh0, *dc0;                 /* (T, B, 4H), (B, H), (B, H) */
} rk_lstm_bwd;

/* Both forms of the GRU; b_hh, hn and dgh belong to reset "after" only. */
typedef struct {
    rk_common c;
    const void *xg, *h0, *b_hh; /* (T, B, 3H), (B, H), (3H,) */
    void *hs, *gates, *hn;      /* (T, B, H), (T, B, 3H), (T, B, H) */
} rk_gru_fwd;

typedef struct {
    rk_common c;
    const void *dhs, *dh_T;           /* (T, B, H), (B, H) */
    const void *hs, *h0, *gates, *hn; /* as in and from rk_gru_fwd */
    void *da, *dgh, *dh0;             /* (T, B, 3H), (T, B, 3H), (B, H) */
} rk_gru_bwd;

typedef struct {
    rk_common c;
    const void *xg, *h0; /* (T, B, H), (B, H) */
    void *hs, *h_cand;   /* (T, B, H) each: the states, and each step's update before masking */
} rk_rnn_fwd;

typedef struct {
    rk_common c;
    const void *dhs, *dh_T, *h_cand; /* (T, B, H), (B, H), (T, B, H) */
    void *da, *dh0;                  /* (T, B, H), (B, H) */
} rk_rnn_bwd;

typedef void (*rk_block_fn)(const void *args, int64_t b0, int64_t b1);

/* A matrix product c (M, N) = op(a) (M, K) op(b) (K, N) + bias (gemm.h): op(a) (i, k) at
 * a[i rsa + k csa], op(b) (k, j) at b[k rsb + j csb], c row-major (leading dimension ldc);
 * and the row sums of op(a), sum_k op(a) (i, k), added up as op(a) is read for the product. */
typedef struct {
    int64_t M, N, K;
    const void *a, *b, *bias; /* bias: (N,) added to every row, or NULL */
    int64_t rsa, csa, rsb, csb, ldc;
    void *c;
    void *row_sums;    /* (M,): receives the row sums of op(a), or NULL */
    const void *bpack; /* op(b) packed once for every block of rows, or NULL */
    void *bpack_base;  /* its allocation, freed by the entry point */
    int failed;        /* set by a block (or the packing of op(b)) short of memory */
} rk_gemm_args;

/* One Adam / AdamW step on one parameter (adam.h): the arrays (n values each) and the
 * hyper-parameters as the NumPy rule has them (Python floats, rounded to the arrays' type). */
typedef struct {
    void *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* max_exp_avg_sq: NULL unless amsgrad */
    const void *grad;
    double w, one_minus_w, beta2, one_minus_beta2, weight_decay, keep, bc2_sqrt, eps, neg_step;
    int small_w, l2, decoupled;
} rk_adam_args;

/* One cell's loops in one type, each direction's [0] forward, [1] backward. */
typedef struct {
    int64_t (*pack_size[2])(int64_t H); /* in values */
    void (*pack[2])(const void *w_hh, int64_t H, void *packed);
    rk_block_fn loop[2];
} rk_cell_fns;

/* The cells with compiled loops, listed once: X(code, kernel, fwd, bwd), with the loops
 * <kernel>_forward_block and <kernel>_backward_block and the packings <fwd>_pack_forward and
 * <bwd>_pack_backward of the cell's loop header. The cell codes (RK_<code>), the kernel names
 * (Python's _native.CELLS, by code), each variant's dispatch table (variant.h), the method table
 * and _native.LOOPS are made from this list; a cell's own lines are its loop header, its argument
 * structs and its two RK_FUNCTION declarations below. */
#define RK_CELLS(X)                                                                           \
    X(RNN_TANH, rnn_tanh, rnn, rnn)                                                           \
    X(RNN_RELU, rnn_relu, rnn, rnn)                                                           \
    X(LSTM, lstm, lstm, lstm)                                                                 \
    X(GRU_AFTER, gru_after, gru_after, gru)                                                   \
    X(GRU_BEFORE, gru_before, gru_before, gru)

#define RK_CELL_CODE(code, kernel, fwd, bwd) RK_##code,
enum { RK_CELLS(RK_CELL_CODE) RK_N_CELLS };
#undef RK_CELL_CODE

/* One time step of a unidirectional stack of layers, for streaming (step_loops.h, step_plan.h). */
#define RK_STEP_MAX_LAYERS 4
typedef struct {
    int cell;
    int64_t L, B, D, H;
    const void *x, *h_prev, *c_prev; /* (B, D), (L, B, H), (L, B, H) or NULL (not an LSTM) */
    void *h, *c;                     /* (L, B, H), (L, B, H) or NULL */
    const void *const *w;            /* per layer W_ih, W_hh, b_ih, b_hh (NULL: no bias) */
    void *scratch;                   /* (2 G + 1) H values */
} rk_step_args;

typedef struct {
    const char *name;
    rk_cell_fns cells[RK_N_CELLS][2];           /* float, double */
    void (*step[2])(const rk_step_args *args); /* float, double */
    rk_block_fn gemm[2];                       /* float, double: rows of a rk_gemm_args */
    void (*gemm_pack_shared[2])(const void *, int64_t, void *); /* op(b) for every block */
    rk_block_fn adam[2];                                        /* elements of a rk_adam_args */
} rk_variant;

/* Aligned scratch for the packed weights: the micro-kernel loads whole aligned vectors. */
static void *rk_aligned_alloc(size_t bytes, void **base)
{
    *base = malloc(bytes + 64);
    if (!*base)
        return NULL;
    return (void *)(((uintptr_t)*base + 63) & ~(uintptr_t)63);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(RNNKIT_NO_VARIANTS)
#define RK_X86 1
#endif

#ifdef RK_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512cd,avx512bw,avx512dq,avx512vl,avx2,fma")
#define VB 64
#define MR 6
#define ISA _avx512
#define ISA_NAME "avx512"
#include "variant.h"
#undef VB
#undef MR
#undef ISA
#undef ISA_NAME
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VB 32
#define MR 3
#define ISA _avx2
#define ISA_NAME "avx2"
#include "variant.h"
#undef VB
#undef MR
#undef ISA
#undef ISA_NAME
#pragma GCC pop_options
#endif

/* The baseline: SSE2 on x86-64 (16 vector registers: 2 x 4 accumulators), 16-byte vectors
 * elsewhere (NEON has 32 registers: 4 x 4). */
#define VB 16
#ifdef RK_X86
#define MR 2
#else
#define MR 4
#endif
#define ISA _base
#define ISA_NAME "baseline"
#include "variant.h"
#undef VB
#undef MR
#undef ISA
#undef ISA_NAME

/* Best first. */
static const rk_variant *const rk_variants[] = {
#ifdef RK_X86
    &rk_variant_avx512,
    &rk_variant_avx2,
#endif
    &rk_variant_base,
};
#define RK_N_VARIANTS ((int)(sizeof rk_variants / sizeof rk_variants[0]))

static int rk_supported(const rk_variant *v)
{
#ifdef RK_X86
    __builtin_cpu_init();
    if (v == &rk_variant_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (v == &rk_variant_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return v == &rk_variant_base;
}

static const rk_variant *rk_active = NULL; /* chosen at import */


/* -- threads ----------------------------------------------------------------------------------- */

/* Rows of the batch never interact, so a block of rows runs the whole time loop on one thread:
 * no synchronisation between time steps. The blocks are handed out on demand, and the calling
 * thread waits only for helpers that took one: a helper that starts late (waking an idle CPU
 * of a virtual machine can take a millisecond: docs/performance.md) or that the OS holds
 * back takes fewer blocks, or none, instead of delaying the call. The helpers start before the
 * weights are packed, so that their wake-up overlaps the packing. The team lives on the heap
 * until its last member has let go of it: a helper may wake after the call has returned. */
typedef struct {
    rk_block_fn fn;
    const void *args;
    int64_t B, rows; /* batch, rows per block */
#ifndef _WIN32
    atomic_llong next;  /* first row of the next block */
    atomic_int ready;   /* the weights are packed */
    atomic_int working; /* helpers between arrival and departure */
    atomic_int refs;    /* members holding the team */
#endif
} rk_team;

#ifndef _WIN32
static void rk_leave(rk_team *team)
{
    if (atomic_fetch_sub(&team->refs, 1) == 1)
        free(team);
}

static void rk_take_blocks(rk_team *team)
{
    for (;;) {
        int64_t b0 = atomic_fetch_add(&team->next, team->rows);
        if (b0 >= team->B)
            return;
        team->fn(team->args, b0, b0 + team->rows < team->B ? b0 + team->rows : team->B);
    }
}

static void *rk_helper(void *arg)
{
    rk_team *team = arg;
    atomic_fetch_add(&team->working, 1);
    if (atomic_load(&team->next) < team->B) { /* else: too late, nothing left */
        while (!atomic_load_explicit(&team->ready, memory_order_acquire))
            RK_PAUSE();
        rk_take_blocks(team);
    }
    atomic_fetch_sub(&team->working, 1);
    rk_leave(team);
    return NULL;
}
#endif

#define RK_MAX_THREADS 64

/* pack(w, H, packed) (unless pack is NULL), then fn over rows [0, B) on up to `threads` threads, the calling one
 * included. Returns -1 (no memory for the team) or 0. */
static int rk_run_blocks(rk_block_fn fn, const void *args, int64_t B, int64_t rows, int threads,
                         void (*pack)(const void *, int64_t, void *), const void *w, int64_t H,
                         void *packed);

static int rk_run(rk_block_fn fn, const void *args, int64_t B, int threads,
                  void (*pack)(const void *, int64_t, void *), const void *w, int64_t H,
                  void *packed)
{
    if (threads < 1)
        threads = 1;
    /* one block of rows per thread. Each block runs the whole time loop and streams all of
     * W_hh through its core's cache at every step, so every further block costs one more pass
     * over the weights: smaller blocks (once chosen so that a late helper would leave little to
     * wait for) measured slower (docs/performance.md). A helper that arrives late still finds
     * its block untaken, and the calling thread then runs it itself. */
    int64_t rows = (B + threads - 1) / threads;
    return rk_run_blocks(fn, args, B, rows, threads, pack, w, H, packed);
}

/* As rk_run, with blocks of `rows` rows. */
static int rk_run_blocks(rk_block_fn fn, const void *args, int64_t B, int64_t rows, int threads,
                         void (*pack)(const void *, int64_t, void *), const void *w, int64_t H,
                         void *packed)
{
    if (threads > B)
        threads = (int)B;
    if (threads > RK_MAX_THREADS)
        threads = RK_MAX_THREADS;
    if (threads <= 1) {
        if (pack)
            pack(w, H, packed);
        fn(args, 0, B);
        return 0;
    }
#ifndef _WIN32
    rk_team *team = malloc(sizeof *team);
    if (!team)
        return -1;
    team->fn = fn;
    team->args = args;
    team->B = B;
    team->rows = rows;
    atomic_init(&team->next, 0);
    atomic_init(&team->ready, 0);
    atomic_init(&team->working, 0);
    atomic_init(&team->refs, 1);
    pthread_attr_t attr;
    int detach = pthread_attr_init(&attr) == 0 &&
                 pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
    for (int k = 1; detach && k < threads; k++) {
        pthread_t id;
        atomic_fetch_add(&team->refs, 1);
        if (pthread_create(&id, &attr, rk_helper, team) != 0) {
            atomic_fetch_sub(&team->refs, 1);
            break; /* no more threads to be had: fewer helpers */
        }
    }
    if (detach)
        pthread_attr_destroy(&attr);
    if (pack)
        pack(w, H, packed);
    atomic_store_explicit(&team->ready, 1, memory_order_release);
    rk_take_blocks(team);
    /* every block is taken: wait for the helpers running one (a helper arriving from now on
     * finds nothing left and touches nothing but the team) */
    while (atomic_load(&team->working) > 0)
        sched_yield(); /* a helper the OS holds back may need this CPU to finish */
    rk_leave(team);
#else
    if (pack)
        pack(w, H, packed);
    fn(args, 0, B);
#endif
    return 0;
}

/* -- buffers ---------------------------------------------------------------------------------- */

/* The buffers of one call, released together. */
typedef struct {
    Py_buffer views[16];
    int n;
} rk_views;

static void release_all(rk_views *v)
{
    for (int k = 0; k < v->n; k++)
        PyBuffer_Release(&v->views[k]);
    v->n = 0;
}

/* Borrow obj's C-contiguous buffer of the given item kind ('f'/'d' for a REAL, '?' for a
 * mask) and shape (-1: any; the number of dimensions must match). Returns its data or NULL
 * with an exception set. */
static void *get(rk_views *v, PyObject *obj, const char *name, char kind, int writable,
                 int ndim, const int64_t *shape)
{
    Py_buffer *view = &v->views[v->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a %sC-contiguous array", name,
                     writable ? "writable " : "");
        return NULL;
    }
    v->n++;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    int ok = fmt[1] == '\0' &&
             (kind == '?' ? (view->itemsize == 1 && (fmt[0] == '?' || fmt[0] == 'B' ||
                                                     fmt[0] == 'b'))
                          : fmt[0] == kind);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must have item format '%c', got '%s'", name, kind,
                     view->format ? view->format : "B");
        return NULL;
    }
    if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimensions, got %d", name, ndim,
                     view->ndim);
        return NULL;
    }
    for (int k = 0; k < ndim; k++) {
        if (shape[k] >= 0 && view->shape[k] != shape[k]) {
            PyErr_Format(PyExc_ValueError, "%s: dimension %d must be %lld, got %lld", name, k,
                         (long long)shape[k], (long long)view->shape[k]);
            return NULL;
        }
    }
    return view->buf;
}

static int real_kind(PyObject *obj, char *kind)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) < 0) /* any strides: get() checks */
        return -1;
    const char *fmt = view.format ? view.format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    *kind = fmt[0];
    PyBuffer_Release(&view);
    if ((*kind != 'f' && *kind != 'd') || fmt[1] != '\0') {
        PyErr_SetString(PyExc_TypeError, "arrays must be float32 or float64");
        return -1;
    }
    return 0;
}

/* -- weights packed once for many calls ------------------------------------------------------- */

/* Weights in a kernel's packed layout, made once and read by many calls while the weights do not
 * change (a decoder run one step at a time packs them once per sequence instead of once per
 * step): op(b) of gemm (pack_b), or W_hh of a cell's forward or backward loop (pack_hh). A
 * capsule named RK_PACKED holds it. The layout is the active instruction set's: a call under
 * another (after isa() changed it) is refused. */
#define RK_PACKED "rnnkit._native.packed"
#define RK_PACKED_GEMM (-1)

typedef struct {
    const rk_variant *variant; /* whose layout */
    char kind;                 /* 'f' or 'd' */
    int what;                  /* RK_PACKED_GEMM, or cell * 2 + backward: W_hh of that loop */
    int64_t rows, cols;        /* op(b): K, N; W_hh: G H, H */
    void *data, *base;         /* the packed values, and their allocation */
} rk_packed;

static void rk_packed_free(PyObject *capsule)
{
    rk_packed *p = PyCapsule_GetPointer(capsule, RK_PACKED);
    if (p) {
        free(p->base);
        free(p);
    }
}

/* A new capsule owning base (freed with it, also on failure). */
static PyObject *rk_packed_new(char kind, int what, int64_t rows, int64_t cols, void *data,
                               void *base)
{
    rk_packed *p = malloc(sizeof *p);
    if (!p) {
        free(base);
        return PyErr_NoMemory();
    }
    *p = (rk_packed){rk_active, kind, what, rows, cols, data, base};
    PyObject *capsule = PyCapsule_New(p, RK_PACKED, rk_packed_free);
    if (!capsule) {
        free(base);
        free(p);
    }
    return capsule;
}

/* The packed weights in obj, checked against what the call needs (rows or cols -1: any), or
 * NULL with an exception set. */
static const rk_packed *rk_packed_get(PyObject *obj, const char *name, int what, char kind,
                                      int64_t rows, int64_t cols)
{
    rk_packed *p = PyCapsule_GetPointer(obj, RK_PACKED);
    if (!p)
        return NULL;
    if (p->variant != rk_active) {
        PyErr_Format(PyExc_ValueError, "%s was packed for the instruction set %s, not %s: "
                     "pack it again", name, p->variant->name, rk_active->name);
        return NULL;
    }
    if (p->what != what || p->kind != kind || (rows >= 0 && p->rows != rows) ||
        (cols >= 0 && p->cols != cols)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: packed weights of another function, type or shape (%lld, %lld)", name,
                     (long long)p->rows, (long long)p->cols);
        return NULL;
    }
    return p;
}

/* -- Python functions ------------------------------------------------------------------------- */

#include "step_plan.h"

/* The arrays of a loop function, in the order Python passes them. dims spells the shape, one
 * character a dimension: T, B, H, or a digit d for d H (so "TB4" is (T, B, 4H)). The first
 * array sets T, B and H; at is the offset of its field in the loop's arguments, or RK_W_HH for
 * the recurrent weights, which are packed instead of passed on. */
enum { RK_IN = 0, RK_OUT = 1, RK_MASK = 2 };
#define RK_W_HH ((size_t)-1)
#define RK_MAX_ARRAYS 12

typedef struct {
    const char *name, *dims;
    size_t at;
    int flags; /* RK_OUT: written (writable); RK_MASK: (T, B) bool, or None */
} rk_array;

typedef struct {
    const char *name;
    int cell, backward, scratch; /* scratch: the loop needs (B, H) of working space */
    rk_array arrays[RK_MAX_ARRAYS];
} rk_function;

#define RK_ARRAY(type, field, dims, flags) {#field, dims, offsetof(type, field), flags}
#define RK_WEIGHTS(dims) {"w_hh", dims, RK_W_HH, RK_IN}
#define RK_MASK_ARRAY {"mask", "TB", 0, RK_MASK}

/* The size a character of rk_array.dims stands for. */
static int64_t rk_size(char dim, const rk_common *c)
{
    return dim == 'T' ? c->T : dim == 'B' ? c->B : dim == 'H' ? c->H : (dim - '0') * c->H;
}

typedef union {
    rk_common c;
    rk_lstm_fwd lstm_fwd;
    rk_lstm_bwd lstm_bwd;
    rk_gru_fwd gru_fwd;
    rk_gru_bwd gru_bwd;
    rk_rnn_fwd rnn_fwd;
    rk_rnn_bwd rnn_bwd;
} rk_any_args;

/* Check the arguments of a call of f (its arrays, then the number of threads), then pack the
 * weights and run the loop over the batch with the GIL released. */
static PyObject *rk_call(const rk_function *f, PyObject *args)
{
    int n = 0;
    while (n < RK_MAX_ARRAYS && f->arrays[n].name)
        n++;
    if (PyTuple_GET_SIZE(args) != n + 1) {
        PyErr_Format(PyExc_TypeError, "%s takes %d arguments, got %zd", f->name, n + 1,
                     PyTuple_GET_SIZE(args));
        return NULL;
    }
    long threads = PyLong_AsLong(PyTuple_GET_ITEM(args, n));
    if (threads == -1 && PyErr_Occurred())
        return NULL;
    char k;
    if (real_kind(PyTuple_GET_ITEM(args, 0), &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    rk_any_args p;
    memset(&p, 0, sizeof p);
    const void *w_hh = NULL;
    const rk_packed *given = NULL; /* W_hh packed by pack_hh */
    for (int i = 0; i < n; i++) {
        const rk_array *a = &f->arrays[i];
        PyObject *obj = PyTuple_GET_ITEM(args, i);
        if (a->at == RK_W_HH && PyCapsule_CheckExact(obj)) {
            given = rk_packed_get(obj, a->name, f->cell * 2 + f->backward, k,
                                  rk_size(a->dims[0], &p.c), p.c.H);
            if (!given)
                goto fail;
            continue;
        }
        int ndim = (int)strlen(a->dims);
        int64_t shape[3];
        for (int d = 0; d < ndim; d++) /* the first array: any shape, it sets the sizes */
            shape[d] = i == 0 ? -1 : rk_size(a->dims[d], &p.c);
        if ((a->flags & RK_MASK) && obj == Py_None)
            continue;
        void *buf = get(&v, obj, a->name, a->flags & RK_MASK ? '?' : k, a->flags & RK_OUT, ndim,
                        shape);
        if (!buf)
            goto fail;
        if (i == 0) {
            const Py_ssize_t *got = v.views[0].shape;
            char last = a->dims[ndim - 1];
            int64_t per_h = last == 'H' ? 1 : last - '0';
            p.c.T = got[0];
            p.c.B = got[1];
            p.c.H = got[2] / per_h;
            if (got[2] != per_h * p.c.H) {
                PyErr_Format(PyExc_ValueError, "%s: the last dimension must be %lldH", a->name,
                             (long long)per_h);
                goto fail;
            }
            if (f->backward && p.c.T < 1) {
                PyErr_Format(PyExc_ValueError, "%s: at least one time step is needed", a->name);
                goto fail;
            }
        }
        if (a->flags & RK_MASK)
            p.c.mask = buf;
        else if (a->at == RK_W_HH)
            w_hh = buf;
        else
            memcpy((char *)&p + a->at, &buf, sizeof buf); /* the field: a pointer to void */
    }
    const rk_cell_fns *fns = &rk_active->cells[f->cell][k == 'f' ? 0 : 1];
    size_t item = k == 'f' ? sizeof(float) : sizeof(double);
    int64_t packed_size = given ? 0 : fns->pack_size[f->backward](p.c.H);
    int64_t scratch_size = f->scratch ? p.c.B * p.c.H : 0;
    void *base;
    void *packed = rk_aligned_alloc((packed_size + scratch_size) * item, &base);
    if (!packed) {
        PyErr_NoMemory();
        goto fail;
    }
    p.c.packed = given ? given->data : packed;
    p.c.scratch = f->scratch ? (char *)packed + packed_size * item : NULL;
    int failed, most = threads < 1 ? 1 : threads < RK_MAX_THREADS ? (int)threads : RK_MAX_THREADS;
    Py_BEGIN_ALLOW_THREADS
    failed = rk_run(fns->loop[f->backward], &p, p.c.B, most,
                    given ? NULL : fns->pack[f->backward], w_hh, p.c.H, packed);
    Py_END_ALLOW_THREADS
    free(base);
    if (failed) {
        PyErr_NoMemory();
        goto fail;
    }
    release_all(&v);
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

/* A Python function of the module: its rk_function, its docstring and its wrapper. */
#define RK_FUNCTION(fname, cell_, backward_, scratch_, doc, ...)                               \
    static const rk_function fname##_spec = {#fname, cell_, backward_, scratch_,              \
                                             {__VA_ARGS__}};                                   \
    PyDoc_STRVAR(fname##_doc, doc);                                                           \
    static PyObject *fname(PyObject *self, PyObject *args) { return rk_call(&fname##_spec, args); }

RK_FUNCTION(lstm_forward, RK_LSTM, 0, 0,
            "lstm_forward(xg, h0, c0, w_hh, mask, hs, cs, gates, tanh_c, threads)\n--\n\n"
            "The LSTM's forward time loop; writes hs, cs (T, B, H), gates (T, B, 4H) and "
            "tanh_c (T, B, H).\nxg (T, B, 4H), h0, c0 (B, H), w_hh (4H, H); mask (T, B) bool "
            "or None.",
            RK_ARRAY(rk_lstm_fwd, xg, "TB4", RK_IN), RK_ARRAY(rk_lstm_fwd, h0, "BH", RK_IN),
            RK_ARRAY(rk_lstm_fwd, c0, "BH", RK_IN), RK_WEIGHTS("4H"), RK_MASK_ARRAY,
            RK_ARRAY(rk_lstm_fwd, hs, "TBH", RK_OUT), RK_ARRAY(rk_lstm_fwd, cs, "TBH", RK_OUT),
            RK_ARRAY(rk_lstm_fwd, gates, "TB4", RK_OUT),
            RK_ARRAY(rk_lstm_fwd, tanh_c, "TBH", RK_OUT))

RK_FUNCTION(lstm_backward, RK_LSTM, 1, 0,
            "lstm_backward(dhs, dh_T, dc_T, cs, c0, gates, tanh_c, w_hh, mask, da, dh0, dc0, "
            "threads)\n--\n\n"
            "The LSTM's backward time loop; writes da (T, B, 4H), dh0 and dc0 (B, H).",
            RK_ARRAY(rk_lstm_bwd, dhs, "TBH", RK_IN), RK_ARRAY(rk_lstm_bwd, dh_T, "BH", RK_IN),
            RK_ARRAY(rk_lstm_bwd, dc_T, "BH", RK_IN), RK_ARRAY(rk_lstm_bwd, cs, "TBH", RK_IN),
            RK_ARRAY(rk_lstm_bwd, c0, "BH", RK_IN), RK_ARRAY(rk_lstm_bwd, gates, "TB4", RK_IN),
            RK_ARRAY(rk_lstm_bwd, tanh_c, "TBH", RK_IN), RK_WEIGHTS("4H"), RK_MASK_ARRAY,
            RK_ARRAY(rk_lstm_bwd, da, "TB4", RK_OUT), RK_ARRAY(rk_lstm_bwd, dh0, "BH", RK_OUT),
            RK_ARRAY(rk_lstm_bwd, dc0, "BH", RK_OUT))

RK_FUNCTION(gru_after_forward, RK_GRU_AFTER, 0, 0,
            "gru_after_forward(xg, h0, w_hh, b_hh, mask, hs, gates, hn, threads)\n--\n\n"
            "The reset-after GRU's forward time loop; writes hs (T, B, H), gates (T, B, 3H) "
            "and hn (T, B, H).\nxg (T, B, 3H) without b_hh, h0 (B, H), w_hh (3H, H), "
            "b_hh (3H,); mask (T, B) bool or None.",
            RK_ARRAY(rk_gru_fwd, xg, "TB3", RK_IN), RK_ARRAY(rk_gru_fwd, h0, "BH", RK_IN),
            RK_WEIGHTS("3H"), RK_ARRAY(rk_gru_fwd, b_hh, "3", RK_IN), RK_MASK_ARRAY,
            RK_ARRAY(rk_gru_fwd, hs, "TBH", RK_OUT), RK_ARRAY(rk_gru_fwd, gates, "TB3", RK_OUT),
            RK_ARRAY(rk_gru_fwd, hn, "TBH", RK_OUT))

RK_FUNCTION(gru_after_backward, RK_GRU_AFTER, 1, 0,
            "gru_after_backward(dhs, dh_T, hs, h0, gates, hn, w_hh, mask, da, dgh, dh0, "
            "threads)\n--\n\n"
            "The reset-after GRU's backward time loop; writes da, dgh (T, B, 3H) and dh0 (B, H).",
            RK_ARRAY(rk_gru_bwd, dhs, "TBH", RK_IN), RK_ARRAY(rk_gru_bwd, dh_T, "BH", RK_IN),
            RK_ARRAY(rk_gru_bwd, hs, "TBH", RK_IN), RK_ARRAY(rk_gru_bwd, h0, "BH", RK_IN),
            RK_ARRAY(rk_gru_bwd, gates, "TB3", RK_IN), RK_ARRAY(rk_gru_bwd, hn, "TBH", RK_IN),
            RK_WEIGHTS("3H"), RK_MASK_ARRAY, RK_ARRAY(rk_gru_bwd, da, "TB3", RK_OUT),
            RK_ARRAY(rk_gru_bwd, dgh, "TB3", RK_OUT), RK_ARRAY(rk_gru_bwd, dh0, "BH", RK_OUT))

RK_FUNCTION(gru_before_forward, RK_GRU_BEFORE, 0, 1,
            "gru_before_forward(xg, h0, w_hh, mask, hs, gates, threads)\n--\n\n"
            "The reset-before GRU's forward time loop; writes hs (T, B, H) and gates "
            "(T, B, 3H).\nxg (T, B, 3H) with both biases, h0 (B, H), w_hh (3H, H); mask (T, B) "
            "bool or None.",
            RK_ARRAY(rk_gru_fwd, xg, "TB3", RK_IN), RK_ARRAY(rk_gru_fwd, h0, "BH", RK_IN),
            RK_WEIGHTS("3H"), RK_MASK_ARRAY, RK_ARRAY(rk_gru_fwd, hs, "TBH", RK_OUT),
            RK_ARRAY(rk_gru_fwd, gates, "TB3", RK_OUT))

RK_FUNCTION(gru_before_backward, RK_GRU_BEFORE, 1, 1,
            "gru_before_backward(dhs, dh_T, hs, h0, gates, w_hh, mask, da, dh0, threads)\n--\n\n"
            "The reset-before GRU's backward time loop; writes da (T, B, 3H) and dh0 (B, H).",
            RK_ARRAY(rk_gru_bwd, dhs, "TBH", RK_IN), RK_ARRAY(rk_gru_bwd, dh_T, "BH", RK_IN),
            RK_ARRAY(rk_gru_bwd, hs, "TBH", RK_IN), RK_ARRAY(rk_gru_bwd, h0, "BH", RK_IN),
            RK_ARRAY(rk_gru_bwd, gates, "TB3", RK_IN), RK_WEIGHTS("3H"), RK_MASK_ARRAY,
            RK_ARRAY(rk_gru_bwd, da, "TB3", RK_OUT), RK_ARRAY(rk_gru_bwd, dh0, "BH", RK_OUT))

/* The vanilla RNN's arrays, the same for both nonlinearities. */
#define RK_RNN_FORWARD_ARRAYS                                                                 \
    RK_ARRAY(rk_rnn_fwd, xg, "TBH", RK_IN), RK_ARRAY(rk_rnn_fwd, h0, "BH", RK_IN),            \
        RK_WEIGHTS("1H"), RK_MASK_ARRAY, RK_ARRAY(rk_rnn_fwd, hs, "TBH", RK_OUT),             \
        RK_ARRAY(rk_rnn_fwd, h_cand, "TBH", RK_OUT)
#define RK_RNN_BACKWARD_ARRAYS                                                                \
    RK_ARRAY(rk_rnn_bwd, dhs, "TBH", RK_IN), RK_ARRAY(rk_rnn_bwd, dh_T, "BH", RK_IN),         \
        RK_ARRAY(rk_rnn_bwd, h_cand, "TBH", RK_IN), RK_WEIGHTS("1H"), RK_MASK_ARRAY,          \
        RK_ARRAY(rk_rnn_bwd, da, "TBH", RK_OUT), RK_ARRAY(rk_rnn_bwd, dh0, "BH", RK_OUT)
#define RK_RNN_FORWARD_DOC(phi)                                                               \
    "rnn_" phi "_forward(xg, h0, w_hh, mask, hs, h_cand, threads)\n--\n\n"                     \
    "The " phi " RNN's forward time loop; writes hs and h_cand (T, B, H), the states and "     \
    "each step's update before masking.\nxg (T, B, H), h0 (B, H), w_hh (H, H); mask (T, B) "   \
    "bool or None."
#define RK_RNN_BACKWARD_DOC(phi)                                                              \
    "rnn_" phi "_backward(dhs, dh_T, h_cand, w_hh, mask, da, dh0, threads)\n--\n\n"            \
    "The " phi " RNN's backward time loop; writes da (T, B, H) and dh0 (B, H)."

RK_FUNCTION(rnn_tanh_forward, RK_RNN_TANH, 0, 0, RK_RNN_FORWARD_DOC("tanh"),
            RK_RNN_FORWARD_ARRAYS)
RK_FUNCTION(rnn_tanh_backward, RK_RNN_TANH, 1, 0, RK_RNN_BACKWARD_DOC("tanh"),
            RK_RNN_BACKWARD_ARRAYS)
RK_FUNCTION(rnn_relu_forward, RK_RNN_RELU, 0, 0, RK_RNN_FORWARD_DOC("relu"),
            RK_RNN_FORWARD_ARRAYS)
RK_FUNCTION(rnn_relu_backward, RK_RNN_RELU, 1, 0, RK_RNN_BACKWARD_DOC("relu"),
            RK_RNN_BACKWARD_ARRAYS)

/* A 2-D array of REALs whose rows are contiguous (any row stride): its data, rows, columns and
 * row stride in values; NULL with an exception set otherwise. */
static void *rk_matrix(rk_views *v, PyObject *obj, const char *name, char kind, int writable,
                       int64_t *rows, int64_t *cols, int64_t *ld)
{
    Py_buffer *view = &v->views[v->n];
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return NULL;
    v->n++;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    if (fmt[0] != kind || fmt[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s must have item format '%c', got '%s'", name, kind,
                     view->format ? view->format : "B");
        return NULL;
    }
    if (view->ndim != 2 || view->shape[0] < 1 || view->shape[1] < 1 ||
        view->strides[1] != view->itemsize || view->strides[0] % view->itemsize != 0 ||
        view->strides[0] < view->shape[1] * view->itemsize) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a non-empty 2-D array with contiguous, non-overlapping rows",
                     name);
        return NULL;
    }
    *rows = view->shape[0];
    *cols = view->shape[1];
    *ld = view->strides[0] / view->itemsize;
    return view->buf;
}

/* Blocks of rows per thread: more balance the threads when one starts late; with op(b)
 * packed once they cost only the edges of their tiles (1 and 4 measured no better). */
#ifndef RK_GEMM_SHARE_BYTES
#define RK_GEMM_SHARE_BYTES (8 << 20)
#endif
#ifndef RK_GEMM_BLOCKS
#define RK_GEMM_BLOCKS 2
#endif

PyDoc_STRVAR(gemm_doc,
             "gemm(a, trans_a, b, trans_b, bias, out, threads, row_sums=None)\n--\n\n"
             "out = op(a) @ op(b) (+ bias), op(x) = x.T if trans_x else x; and, unless "
             "row_sums is None, row_sums[i] = sum_k op(a)[i, k].\n"
             "a, b, out 2-D float32 or float64 (one type) with contiguous rows, or b the "
             "packed op(b) of pack_b (then trans_b False); bias (N,) contiguous or None; "
             "row_sums (M,) writable, contiguous, or None.");

/* b (2-D, contiguous rows) as op(b) of g: its data, strides and N, and its K in *K; -1 with an
 * exception set when it is not such an array. */
static int rk_gemm_b(rk_views *v, PyObject *bo, char kind, int tb, rk_gemm_args *g, int64_t *K)
{
    int64_t br, bc, ldb;
    g->b = rk_matrix(v, bo, "b", kind, 0, &br, &bc, &ldb);
    if (!g->b)
        return -1;
    *K = tb ? bc : br;
    g->N = tb ? br : bc;
    g->rsb = tb ? 1 : ldb;
    g->csb = tb ? ldb : 1;
    return 0;
}

static PyObject *gemm(PyObject *self, PyObject *args)
{
    PyObject *ao, *bo, *biaso, *oo, *rso = Py_None;
    int ta, tb, threads;
    if (!PyArg_ParseTuple(args, "OpOpOOi|O", &ao, &ta, &bo, &tb, &biaso, &oo, &threads, &rso))
        return NULL;
    char k;
    if (real_kind(ao, &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    rk_gemm_args g;
    memset(&g, 0, sizeof g);
    int64_t ar, ac, lda, Kb, cr, cc;
    g.a = rk_matrix(&v, ao, "a", k, 0, &ar, &ac, &lda);
    if (!g.a)
        goto fail;
    const rk_packed *packed = NULL;
    if (PyCapsule_CheckExact(bo)) { /* op(b) packed by pack_b: its K and N */
        packed = rk_packed_get(bo, "b", RK_PACKED_GEMM, k, -1, -1);
        if (!packed)
            goto fail;
        if (tb) {
            PyErr_SetString(PyExc_ValueError, "trans_b must be False with packed b (pack_b "
                                              "packed op(b))");
            goto fail;
        }
        Kb = packed->rows;
        g.N = packed->cols;
        g.bpack = packed->data;
    } else if (rk_gemm_b(&v, bo, k, tb, &g, &Kb) < 0) {
        goto fail;
    }
    g.c = rk_matrix(&v, oo, "out", k, 1, &cr, &cc, &g.ldc);
    if (!g.c)
        goto fail;
    g.M = ta ? ac : ar;
    g.K = ta ? ar : ac;
    g.rsa = ta ? 1 : lda;
    g.csa = ta ? lda : 1;
    if (Kb != g.K || cr != g.M || cc != g.N) {
        PyErr_Format(PyExc_ValueError,
                     "shapes do not match: op(a) (%lld, %lld), op(b) (%lld, %lld), out "
                     "(%lld, %lld)",
                     (long long)g.M, (long long)g.K, (long long)Kb, (long long)g.N,
                     (long long)cr, (long long)cc);
        goto fail;
    }
    if (biaso != Py_None) {
        int64_t n1[1] = {g.N};
        g.bias = get(&v, biaso, "bias", k, 0, 1, n1);
        if (!g.bias)
            goto fail;
    }
    if (rso != Py_None) {
        int64_t m1[1] = {g.M};
        g.row_sums = get(&v, rso, "row_sums", k, 1, 1, m1);
        if (!g.row_sums)
            goto fail;
    }
    /* RK_GEMM_BLOCKS blocks of rows per thread, of whole tiles */
    int most = threads < 1 ? 1 : threads < RK_MAX_THREADS ? threads : RK_MAX_THREADS;
    int64_t rows = (g.M + RK_GEMM_BLOCKS * most - 1) / (RK_GEMM_BLOCKS * most);
    rows = (rows + 5) / 6 * 6;
    int failed;
    int t = k == 'f' ? 0 : 1;
    /* on more than one block, op(b) is packed once, while the helpers start; unless it is
     * too large to stay in L3: each block's packing of one block of k at a time is then still
     * in L2 when read, and measured faster than sharing (docs/performance.md) */
    int share = !packed && most > 1 && rows < g.M &&
                g.K * (g.N + 63) * (k == 'f' ? 4 : 8) <= RK_GEMM_SHARE_BYTES;
    Py_BEGIN_ALLOW_THREADS
    failed = rk_run_blocks(rk_active->gemm[t], &g, g.M, rows, most,
                           share ? rk_active->gemm_pack_shared[t] : NULL, &g, 0, NULL);
    Py_END_ALLOW_THREADS
    free(g.bpack_base);
    if (failed || g.failed) {
        PyErr_NoMemory();
        goto fail;
    }
    release_all(&v);
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

PyDoc_STRVAR(pack_b_doc,
             "pack_b(b, trans_b)\n--\n\n"
             "op(b) (K, N), op(b) = b.T if trans_b else b, packed as gemm packs it, for "
             "gemm(a, trans_a, packed, False, ...): the same products, without packing op(b) "
             "at each call. b 2-D float32 or float64 with contiguous rows. The packed values "
             "are a copy: they do not follow later changes of b.");

static PyObject *pack_b(PyObject *self, PyObject *args)
{
    PyObject *bo;
    int tb;
    if (!PyArg_ParseTuple(args, "Op", &bo, &tb))
        return NULL;
    char k;
    if (real_kind(bo, &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    rk_gemm_args g;
    memset(&g, 0, sizeof g);
    if (rk_gemm_b(&v, bo, k, tb, &g, &g.K) < 0) {
        release_all(&v);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rk_active->gemm_pack_shared[k == 'f' ? 0 : 1](&g, 0, NULL);
    Py_END_ALLOW_THREADS
    release_all(&v);
    if (g.failed || !g.bpack) {
        free(g.bpack_base);
        return PyErr_NoMemory();
    }
    return rk_packed_new(k, RK_PACKED_GEMM, g.K, g.N, (void *)g.bpack, g.bpack_base);
}

PyDoc_STRVAR(pack_hh_doc,
             "pack_hh(cell, backward, w_hh)\n--\n\n"
             "W_hh (G H, H) of the cell with this code (its position in CELLS) packed as its "
             "forward (backward False) or backward loop packs it, for that loop in place of "
             "w_hh: the same results, without packing at each call. A copy: it does not follow "
             "later changes of w_hh.");

static PyObject *pack_hh(PyObject *self, PyObject *args)
{
    int cell, backward;
    PyObject *wo;
    if (!PyArg_ParseTuple(args, "ipO", &cell, &backward, &wo))
        return NULL;
    if (cell < 0 || cell >= RK_N_CELLS) {
        PyErr_Format(PyExc_ValueError, "cell must be a code in [0, %d), got %d", RK_N_CELLS,
                     cell);
        return NULL;
    }
    char k;
    if (real_kind(wo, &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    int64_t any[2] = {-1, -1};
    const void *w = get(&v, wo, "w_hh", k, 0, 2, any);
    if (!w) {
        release_all(&v);
        return NULL;
    }
    int64_t rows = v.views[0].shape[0], H = v.views[0].shape[1];
    if (H < 1 || rows < H || rows % H) {
        PyErr_Format(PyExc_ValueError, "w_hh must be (G H, H), got (%lld, %lld)",
                     (long long)rows, (long long)H);
        release_all(&v);
        return NULL;
    }
    const rk_cell_fns *fns = &rk_active->cells[cell][k == 'f' ? 0 : 1];
    size_t item = k == 'f' ? sizeof(float) : sizeof(double);
    void *base, *packed = rk_aligned_alloc(fns->pack_size[backward](H) * item, &base);
    if (!packed) {
        release_all(&v);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    fns->pack[backward](w, H, packed);
    Py_END_ALLOW_THREADS
    release_all(&v);
    return rk_packed_new(k, cell * 2 + backward, rows, H, packed, base);
}

PyDoc_STRVAR(adam_doc,
             "adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, w, one_minus_w, beta2, "
             "one_minus_beta2, weight_decay, l2, decoupled, keep, bc2_sqrt, eps, neg_step, "
             "threads)\n--\n\n"
             "One Adam/AdamW step in place, every element in one pass, rounded as "
             "rnnkit.optim.updates.adam: param, exp_avg, exp_avg_sq (and max_exp_avg_sq, or None "
             "without amsgrad) writable, grad read; all C-contiguous, one shape, float32 or "
             "float64.");

static PyObject *adam(PyObject *self, PyObject *args)
{
    PyObject *po, *go, *mo, *vo, *xo;
    rk_adam_args a;
    memset(&a, 0, sizeof a);
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOdddddppddddi", &po, &go, &mo, &vo, &xo, &a.w,
                          &a.one_minus_w, &a.beta2, &a.one_minus_beta2, &a.weight_decay, &a.l2,
                          &a.decoupled, &a.keep, &a.bc2_sqrt, &a.eps, &a.neg_step, &threads))
        return NULL;
    char k;
    if (real_kind(po, &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    int64_t any[1] = {-1};
    a.param = get(&v, po, "param", k, 1, 1, any);
    if (!a.param)
        goto fail;
    int64_t n[1] = {v.views[0].shape[0]};
    a.grad = get(&v, go, "grad", k, 0, 1, n);
    a.exp_avg = a.grad ? get(&v, mo, "exp_avg", k, 1, 1, n) : NULL;
    a.exp_avg_sq = a.exp_avg ? get(&v, vo, "exp_avg_sq", k, 1, 1, n) : NULL;
    if (!a.exp_avg_sq)
        goto fail;
    if (xo != Py_None && !(a.max_exp_avg_sq = get(&v, xo, "max_exp_avg_sq", k, 1, 1, n)))
        goto fail;
    a.small_w = fabs(a.w) < 0.5;
    int most = threads < 1 ? 1 : threads < RK_MAX_THREADS ? threads : RK_MAX_THREADS;
    int64_t rows = (n[0] + most - 1) / most;
    rows = (rows + 15) / 16 * 16; /* whole cache lines per thread */
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = rk_run_blocks(rk_active->adam[k == 'f' ? 0 : 1], &a, n[0], rows, most, NULL, NULL, 0,
                           NULL);
    Py_END_ALLOW_THREADS
    release_all(&v);
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

/* Elementwise exp, sigmoid and tanh of a contiguous array into another, for the accuracy tests. */
PyDoc_STRVAR(vmath_doc, "vmath(name, x, out)\n--\n\n"
                        "out = name(x) elementwise, name in 'exp', 'sigmoid', 'tanh' (tests).");

static PyObject *vmath(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *xo, *oo;
    if (!PyArg_ParseTuple(args, "sOO", &name, &xo, &oo))
        return NULL;
    char k;
    if (real_kind(xo, &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    int64_t any1[1] = {-1};
    const void *x = get(&v, xo, "x", k, 0, 1, any1);
    if (!x)
        goto fail;
    int64_t n1[1] = {v.views[0].shape[0]};
    void *out = get(&v, oo, "out", k, 1, 1, n1);
    if (!out)
        goto fail;
    int op = strcmp(name, "exp") == 0 ? 0 : strcmp(name, "sigmoid") == 0 ? 1
                                         : strcmp(name, "tanh") == 0    ? 2
                                                                        : -1;
    if (op < 0) {
        PyErr_Format(PyExc_ValueError, "name must be 'exp', 'sigmoid' or 'tanh', got %s", name);
        goto fail;
    }
    for (int64_t i = 0; i < n1[0]; i++) {
        if (k == 'f') {
            float a = ((const float *)x)[i];
            ((float *)out)[i] = op == 0 ? rk_expf(a) : op == 1 ? rk_sigmoidf(a) : rk_tanhf(a);
        } else {
            double a = ((const double *)x)[i];
            ((double *)out)[i] = op == 0 ? rk_exp(a) : op == 1 ? rk_sigmoid(a) : rk_tanh(a);
        }
    }
    release_all(&v);
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

PyDoc_STRVAR(isa_doc, "isa(name=None)\n--\n\n"
                      "The instruction set the loops use; with a name, switch to that one (for "
                      "tests).\nReturns (active, supported names, best first).");

static PyObject *isa(PyObject *self, PyObject *args)
{
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z", &name))
        return NULL;
    PyObject *names = PyTuple_New(0);
    if (!names)
        return NULL;
    const rk_variant *chosen = NULL;
    for (int k = 0; k < RK_N_VARIANTS; k++) {
        if (!rk_supported(rk_variants[k]))
            continue;
        if (name && strcmp(name, rk_variants[k]->name) == 0)
            chosen = rk_variants[k];
        PyObject *n = PyUnicode_FromString(rk_variants[k]->name);
        if (!n || _PyTuple_Resize(&names, PyTuple_GET_SIZE(names) + 1) < 0) {
            Py_XDECREF(n);
            Py_XDECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, PyTuple_GET_SIZE(names) - 1, n);
    }
    if (name && !chosen) {
        PyErr_Format(PyExc_ValueError, "instruction set %s is not supported here", name);
        Py_DECREF(names);
        return NULL;
    }
    if (chosen)
        rk_active = chosen;
    return Py_BuildValue("(sN)", rk_active->name, names);
}

static PyMethodDef methods[] = {
    {"isa", isa, METH_VARARGS, isa_doc},
#define RK_METHODS(code, kernel, fwd, bwd)                                                    \
    {#kernel "_forward", kernel##_forward, METH_VARARGS, kernel##_forward_doc},               \
        {#kernel "_backward", kernel##_backward, METH_VARARGS, kernel##_backward_doc},
    RK_CELLS(RK_METHODS)
#undef RK_METHODS
    {"gemm", gemm, METH_VARARGS, gemm_doc},
    {"pack_b", pack_b, METH_VARARGS, pack_b_doc},
    {"adam", adam, METH_VARARGS, adam_doc},
    {"pack_hh", pack_hh, METH_VARARGS, pack_hh_doc},
    {"vmath", vmath, METH_VARARGS, vmath_doc},
    {NULL, NULL, 0, NULL},
};

/* The kernel names of the cells, by code: the cell codes of StepPlan, and the prefix of each
 * cell's loop functions (a cell's ``kernel`` property in Python names one of these). */
static const char *const rk_cell_names[RK_N_CELLS] = {
#define RK_CELL_NAME(code, kernel, fwd, bwd) [RK_##code] = #kernel,
    RK_CELLS(RK_CELL_NAME)
#undef RK_CELL_NAME
};

/* LOOPS: {function name: ((argument, dims, role), ...)} with role "in", "out", "weights" or
 * "mask", in the order the function takes its arrays (the number of threads follows them).
 * Python lays out and allocates the arrays of every loop from this, by name. */
static PyObject *rk_loop_specs(void)
{
    static const rk_function *const specs[] = {
#define RK_SPECS(code, kernel, fwd, bwd) &kernel##_forward_spec, &kernel##_backward_spec,
        RK_CELLS(RK_SPECS)
#undef RK_SPECS
    };
    PyObject *loops = PyDict_New();
    for (size_t i = 0; loops && i < sizeof specs / sizeof specs[0]; i++) {
        const rk_function *f = specs[i];
        int n = 0;
        while (n < RK_MAX_ARRAYS && f->arrays[n].name)
            n++;
        PyObject *args = PyTuple_New(n);
        for (int k = 0; args && k < n; k++) {
            const rk_array *a = &f->arrays[k];
            const char *role = a->flags & RK_MASK ? "mask"
                               : a->at == RK_W_HH ? "weights"
                               : a->flags & RK_OUT ? "out"
                                                   : "in";
            PyObject *item = Py_BuildValue("(sss)", a->name, a->dims, role);
            if (!item) {
                Py_CLEAR(args);
                break;
            }
            PyTuple_SET_ITEM(args, k, item);
        }
        if (!args || PyDict_SetItemString(loops, f->name, args) < 0)
            Py_CLEAR(loops);
        Py_XDECREF(args);
    }
    return loops;
}

static PyObject *rk_cell_tuple(void)
{
    PyObject *names = PyTuple_New(RK_N_CELLS);
    for (int k = 0; names && k < RK_N_CELLS; k++) {
        PyObject *name = PyUnicode_FromString(rk_cell_names[k]);
        if (!name)
            Py_CLEAR(names);
        else
            PyTuple_SET_ITEM(names, k, name);
    }
    return names;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled time loops of rnnkit's recurrent cells.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    for (int k = 0; k < RK_N_VARIANTS && !rk_active; k++)
        if (rk_supported(rk_variants[k]))
            rk_active = rk_variants[k];
    if (PyType_Ready(&rk_step_plan_type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&rk_step_plan_type);
    if (PyModule_AddObject(m, "StepPlan", (PyObject *)&rk_step_plan_type) < 0) {
        Py_DECREF(&rk_step_plan_type);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *loops = rk_loop_specs(), *cells = rk_cell_tuple();
    if (!loops || !cells || PyModule_AddObject(m, "LOOPS", loops) < 0) {
        Py_XDECREF(loops);
        Py_XDECREF(cells);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObject(m, "CELLS", cells) < 0) {
        Py_DECREF(cells);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
