/* rnnkit.kernels._native: compiled time loops of the recurrent cells.
 *
 * Written against the CPython C API and the buffer protocol only (no NumPy headers, no BLAS):
 * the Python side (rnnkit/kernels/) allocates every array, checks dtypes and makes inputs
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

typedef struct {
    int64_t T, B, H;
    const void *xg, *h0, *c0;       /* (T, B, 4H), (B, H), (B, H) */
    const void *packed;             /* W_hh (4H, H) packed for the forward product */
    const unsigned char *mask;      /* (T, B) or NULL */
    void *hs, *cs, *gates, *tanh_c; /* (T, B, H), (T, B, H), (T, B, 4H), (T, B, H) */
} rk_lstm_fwd;

typedef struct {
    int64_t T, B, H;
    const void *dhs, *dh_T, *dc_T;       /* (T, B, H), (B, H), (B, H) */
    const void *cs, *c0, *gates, *tanh_c; /* as in and from rk_lstm_fwd */
    const void *packed;                   /* W_hh packed for the backward product */
    const unsigned char *mask;
    void *da, *dh0, *dc0; /* (T, B, 4H), (B, H), (B, H) */
} rk_lstm_bwd;

typedef void (*rk_block_fn)(const void *args, int64_t b0, int64_t b1);

typedef struct {
    int64_t (*pack_forward_size)(int64_t H); /* in values */
    int64_t (*pack_backward_size)(int64_t H);
    void (*pack_forward)(const void *w_hh, int64_t H, void *packed);
    void (*pack_backward)(const void *w_hh, int64_t H, void *packed);
    rk_block_fn forward, backward;
} rk_lstm_fns;

typedef struct {
    const char *name;
    rk_lstm_fns lstm[2]; /* float, double */
} rk_variant;

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

/* Aligned scratch for the packed weights: the micro-kernel loads whole aligned vectors. */
static void *rk_aligned_alloc(size_t bytes, void **base)
{
    *base = malloc(bytes + 64);
    if (!*base)
        return NULL;
    return (void *)(((uintptr_t)*base + 63) & ~(uintptr_t)63);
}

/* -- threads ----------------------------------------------------------------------------------- */

/* Rows of the batch never interact, so a block of rows runs the whole time loop on one thread:
 * no synchronisation between time steps. The blocks are handed out on demand, and the calling
 * thread waits only for helpers that took one: a helper that starts late (waking an idle CPU
 * of a virtual machine was measured at up to a millisecond) or that the OS holds back takes
 * fewer blocks, or none, instead of delaying the call. The helpers start before the weights
 * are packed, so that their wake-up overlaps the packing. The team lives on the heap until its
 * last member has let go of it: a helper may wake after the call has returned. */
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

/* pack(w, H, packed), then fn over rows [0, B) on up to `threads` threads, the calling one
 * included. Returns -1 (no memory for the team) or 0. */
static int rk_run(rk_block_fn fn, const void *args, int64_t B, int threads,
                  void (*pack)(const void *, int64_t, void *), const void *w, int64_t H,
                  void *packed)
{
    if (threads > B)
        threads = (int)B;
    if (threads > RK_MAX_THREADS)
        threads = RK_MAX_THREADS;
    if (threads <= 1) {
        pack(w, H, packed);
        fn(args, 0, B);
        return 0;
    }
#ifndef _WIN32
    rk_team *team = malloc(sizeof *team);
    if (!team)
        return -1;
    /* about four blocks per thread, so that a late or slow helper leaves little to wait for,
     * of whole tiles of 6 rows (the tile height of AVX-512; 3 and 2, those of the other
     * variants, divide it) */
    int64_t rows = (B + 4 * threads - 1) / (4 * threads);
    team->fn = fn;
    team->args = args;
    team->B = B;
    team->rows = (rows + 5) / 6 * 6;
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
    pack(w, H, packed);
    atomic_store_explicit(&team->ready, 1, memory_order_release);
    rk_take_blocks(team);
    /* every block is taken: wait for the helpers running one (a helper arriving from now on
     * finds nothing left and touches nothing but the team) */
    while (atomic_load(&team->working) > 0)
        sched_yield(); /* a helper the OS holds back may need this CPU to finish */
    rk_leave(team);
#else
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
    if (PyObject_GetBuffer(obj, &view, PyBUF_FORMAT | PyBUF_ND) < 0)
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

/* -- Python functions ------------------------------------------------------------------------- */

PyDoc_STRVAR(lstm_forward_doc,
             "lstm_forward(xg, h0, c0, w_hh, mask, hs, cs, gates, tanh_c, threads)\n--\n\n"
             "The LSTM's forward time loop; writes hs, cs (T, B, H), gates (T, B, 4H) and "
             "tanh_c (T, B, H).\nxg (T, B, 4H), h0, c0 (B, H), w_hh (4H, H); mask (T, B) bool "
             "or None.");

static PyObject *lstm_forward(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOi", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8], &threads))
        return NULL;
    char k;
    if (real_kind(o[0], &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    rk_lstm_fwd p = {0};
    const void *w_hh;
    int64_t any3[3] = {-1, -1, -1};
    if (!(p.xg = get(&v, o[0], "xg", k, 0, 3, any3)))
        goto fail;
    p.T = v.views[0].shape[0];
    p.B = v.views[0].shape[1];
    p.H = v.views[0].shape[2] / 4;
    int64_t T = p.T, B = p.B, H = p.H;
    int64_t tb4h[3] = {T, B, 4 * H}, tbh[3] = {T, B, H}, bh[2] = {B, H}, w[2] = {4 * H, H},
            tb[2] = {T, B};
    if (v.views[0].shape[2] != 4 * H) {
        PyErr_SetString(PyExc_ValueError, "xg: the last dimension must be 4H");
        goto fail;
    }
    if (!(p.h0 = get(&v, o[1], "h0", k, 0, 2, bh)) || !(p.c0 = get(&v, o[2], "c0", k, 0, 2, bh)) ||
        !(w_hh = get(&v, o[3], "w_hh", k, 0, 2, w)))
        goto fail;
    if (o[4] != Py_None && !(p.mask = get(&v, o[4], "mask", '?', 0, 2, tb)))
        goto fail;
    if (!(p.hs = get(&v, o[5], "hs", k, 1, 3, tbh)) || !(p.cs = get(&v, o[6], "cs", k, 1, 3, tbh)) ||
        !(p.gates = get(&v, o[7], "gates", k, 1, 3, tb4h)) ||
        !(p.tanh_c = get(&v, o[8], "tanh_c", k, 1, 3, tbh)))
        goto fail;
    const rk_lstm_fns *fns = &rk_active->lstm[k == 'f' ? 0 : 1];
    void *base;
    size_t item = k == 'f' ? sizeof(float) : sizeof(double);
    void *packed = rk_aligned_alloc(fns->pack_forward_size(H) * item, &base);
    if (!packed) {
        PyErr_NoMemory();
        goto fail;
    }
    p.packed = packed;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = rk_run(fns->forward, &p, B, threads, fns->pack_forward, w_hh, H, packed);
    Py_END_ALLOW_THREADS
    if (failed) {
        free(base);
        PyErr_NoMemory();
        goto fail;
    }
    free(base);
    release_all(&v);
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

PyDoc_STRVAR(lstm_backward_doc,
             "lstm_backward(dhs, dh_T, dc_T, cs, c0, gates, tanh_c, w_hh, mask, da, dh0, dc0, "
             "threads)\n"
             "--\n\n"
             "The LSTM's backward time loop; writes da (T, B, 4H), dh0 and dc0 (B, H).");

static PyObject *lstm_backward(PyObject *self, PyObject *args)
{
    PyObject *o[12];
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOi", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8], &o[9], &o[10], &o[11], &threads))
        return NULL;
    char k;
    if (real_kind(o[0], &k) < 0)
        return NULL;
    rk_views v = {.n = 0};
    rk_lstm_bwd p = {0};
    const void *w_hh;
    int64_t any3[3] = {-1, -1, -1};
    if (!(p.dhs = get(&v, o[0], "dhs", k, 0, 3, any3)))
        goto fail;
    p.T = v.views[0].shape[0];
    p.B = v.views[0].shape[1];
    p.H = v.views[0].shape[2];
    int64_t T = p.T, B = p.B, H = p.H;
    int64_t tb4h[3] = {T, B, 4 * H}, tbh[3] = {T, B, H}, bh[2] = {B, H}, w[2] = {4 * H, H},
            tb[2] = {T, B};
    if (T < 1) {
        PyErr_SetString(PyExc_ValueError, "dhs: at least one time step is needed");
        goto fail;
    }
    if (!(p.dh_T = get(&v, o[1], "dh_T", k, 0, 2, bh)) ||
        !(p.dc_T = get(&v, o[2], "dc_T", k, 0, 2, bh)) ||
        !(p.cs = get(&v, o[3], "cs", k, 0, 3, tbh)) || !(p.c0 = get(&v, o[4], "c0", k, 0, 2, bh)) ||
        !(p.gates = get(&v, o[5], "gates", k, 0, 3, tb4h)) ||
        !(p.tanh_c = get(&v, o[6], "tanh_c", k, 0, 3, tbh)) ||
        !(w_hh = get(&v, o[7], "w_hh", k, 0, 2, w)))
        goto fail;
    if (o[8] != Py_None && !(p.mask = get(&v, o[8], "mask", '?', 0, 2, tb)))
        goto fail;
    if (!(p.da = get(&v, o[9], "da", k, 1, 3, tb4h)) || !(p.dh0 = get(&v, o[10], "dh0", k, 1, 2, bh)) ||
        !(p.dc0 = get(&v, o[11], "dc0", k, 1, 2, bh)))
        goto fail;
    const rk_lstm_fns *fns = &rk_active->lstm[k == 'f' ? 0 : 1];
    void *base;
    size_t item = k == 'f' ? sizeof(float) : sizeof(double);
    void *packed = rk_aligned_alloc(fns->pack_backward_size(H) * item, &base);
    if (!packed) {
        PyErr_NoMemory();
        goto fail;
    }
    p.packed = packed;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = rk_run(fns->backward, &p, B, threads, fns->pack_backward, w_hh, H, packed);
    Py_END_ALLOW_THREADS
    if (failed) {
        free(base);
        PyErr_NoMemory();
        goto fail;
    }
    free(base);
    release_all(&v);
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
    {"lstm_forward", lstm_forward, METH_VARARGS, lstm_forward_doc},
    {"lstm_backward", lstm_backward, METH_VARARGS, lstm_backward_doc},
    {"vmath", vmath, METH_VARARGS, vmath_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled time loops of rnnkit's recurrent cells.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    for (int k = 0; k < RK_N_VARIANTS && !rk_active; k++)
        if (rk_supported(rk_variants[k]))
            rk_active = rk_variants[k];
    return PyModule_Create(&module);
}
