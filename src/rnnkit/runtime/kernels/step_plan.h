/* StepPlan: one time step of a stack of recurrent layers, for streaming inference.
 *
 * Included by _native.c after its buffer helpers. A plan holds the buffers of a layer's live
 * parameter arrays (borrowed once, when it is made: a step then costs the borrowing of its
 * five state and input arrays only) and a scratch row; StepPlan.step runs the step of
 * step_loops.h for the instruction set chosen at import. The GIL stays held: a step at a batch
 * of one row lasts microseconds, about what releasing and taking it back would cost, and the
 * scratch row is then safe to share.
 */

typedef struct {
    PyObject_HEAD int cell;
    char kind; /* 'f' or 'd' */
    int64_t L, D, H, G;
    rk_views held; /* the parameters' buffers (4 RK_STEP_MAX_LAYERS <= 16 of them) */
    const void *w[4 * RK_STEP_MAX_LAYERS]; /* per layer W_ih, W_hh, b_ih, b_hh (NULL: none) */
    void *scratch;                         /* 2 G H + 3 H values */
} rk_step_plan;

static void step_plan_dealloc(rk_step_plan *self)
{
    release_all(&self->held);
    free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int step_plan_init(rk_step_plan *self, PyObject *args, PyObject *kwds)
{
    int cell;
    PyObject *weights;
    static char *names[] = {"cell", "weights", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO!", names, &cell, &PyTuple_Type, &weights))
        return -1;
    if (self->held.n || self->scratch) {
        PyErr_SetString(PyExc_RuntimeError, "a StepPlan is made once");
        return -1;
    }
    if (cell < 0 || cell >= RK_N_CELLS) {
        PyErr_Format(PyExc_ValueError, "cell must be a cell code 0 .. %d, got %d", RK_N_CELLS - 1,
                     cell);
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(weights);
    if (n < 4 || n % 4 || n / 4 > RK_STEP_MAX_LAYERS) {
        PyErr_Format(PyExc_ValueError,
                     "weights must hold 4 entries (W_ih, W_hh, b_ih, b_hh) per layer, 1 to %d "
                     "layers, got %zd entries",
                     RK_STEP_MAX_LAYERS, n);
        return -1;
    }
    if (real_kind(PyTuple_GET_ITEM(weights, 0), &self->kind) < 0)
        return -1;
    self->cell = cell;
    self->G = cell == RK_LSTM ? 4 : cell >= RK_GRU_AFTER ? 3 : 1;
    self->L = n / 4;
    rk_views *v = &self->held;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *obj = PyTuple_GET_ITEM(weights, k);
        int64_t l = k / 4;
        char name[32];
        snprintf(name, sizeof name, "weights[%zd]", k);
        if (obj == Py_None) {
            if (k % 4 < 2) {
                PyErr_Format(PyExc_TypeError, "%s: a weight matrix is required", name);
                goto fail;
            }
            self->w[k] = NULL;
            continue;
        }
        if (k == 0) { /* W_ih of layer 0: gives D and H */
            int64_t any2[2] = {-1, -1};
            if (!(self->w[0] = get(v, obj, name, self->kind, 0, 2, any2)))
                goto fail;
            self->D = v->views[0].shape[1];
            self->H = v->views[0].shape[0] / self->G;
            if (self->H < 1 || v->views[0].shape[0] != self->G * self->H || self->D < 1) {
                PyErr_Format(PyExc_ValueError, "%s: shape (G H, D) expected", name);
                goto fail;
            }
            continue;
        }
        int64_t H = self->H, GH = self->G * H;
        int64_t wih[2] = {GH, l ? H : self->D}, whh[2] = {GH, H}, bias[1] = {GH};
        const int64_t *shape = k % 4 == 0 ? wih : k % 4 == 1 ? whh : bias;
        if (!(self->w[k] = get(v, obj, name, self->kind, 0, k % 4 < 2 ? 2 : 1, shape)))
            goto fail;
    }
    size_t item = self->kind == 'f' ? sizeof(float) : sizeof(double);
    self->scratch = malloc((2 * self->G + 3) * self->H * item);
    if (!self->scratch) {
        PyErr_NoMemory();
        goto fail;
    }
    return 0;
fail:
    release_all(v);
    return -1;
}

PyDoc_STRVAR(step_plan_step_doc,
             "step(x, h_prev, c_prev, h, c)\n--\n\n"
             "One step: x (B, D), h_prev (L, B, H), c_prev (L, B, H) or None (not an LSTM) "
             "-> writes h and c (None: not an LSTM). Raises ValueError if x is not finite.");

static PyObject *step_plan_step(rk_step_plan *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "step takes 5 arguments, got %zd", nargs);
        return NULL;
    }
    int lstm = self->cell == RK_LSTM;
    if ((args[2] == Py_None) == lstm || (args[4] == Py_None) == lstm) {
        PyErr_SetString(PyExc_TypeError,
                        lstm ? "c_prev and c are required" : "c_prev and c must be None");
        return NULL;
    }
    rk_views v = {.n = 0};
    rk_step_args p = {.cell = self->cell, .L = self->L, .D = self->D, .H = self->H};
    int64_t xs[2] = {-1, self->D};
    if (!(p.x = get(&v, args[0], "x", self->kind, 0, 2, xs)))
        goto fail;
    p.B = v.views[0].shape[0];
    int64_t lbh[3] = {self->L, p.B, self->H};
    if (!(p.h_prev = get(&v, args[1], "h_prev", self->kind, 0, 3, lbh)) ||
        (lstm && !(p.c_prev = get(&v, args[2], "c_prev", self->kind, 0, 3, lbh))) ||
        !(p.h = get(&v, args[3], "h", self->kind, 1, 3, lbh)) ||
        (lstm && !(p.c = get(&v, args[4], "c", self->kind, 1, 3, lbh))))
        goto fail;
    int64_t n = p.B * self->D;
    int finite = 1;
    if (self->kind == 'f') {
        const float *x = p.x;
        for (int64_t i = 0; i < n; i++)
            finite &= x[i] - x[i] == 0;
    } else {
        const double *x = p.x;
        for (int64_t i = 0; i < n; i++)
            finite &= x[i] - x[i] == 0;
    }
    if (!finite) {
        PyErr_SetString(PyExc_ValueError, "x must be finite (no NaN or Inf)");
        goto fail;
    }
    p.w = self->w;
    p.scratch = self->scratch;
    rk_active->step[self->kind == 'f' ? 0 : 1](&p);
    release_all(&v);
    Py_RETURN_NONE;
fail:
    release_all(&v);
    return NULL;
}

static PyMethodDef step_plan_methods[] = {
    {"step", (PyCFunction)(void (*)(void))step_plan_step, METH_FASTCALL, step_plan_step_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(step_plan_doc,
             "StepPlan(cell, weights)\n--\n\n"
             "One time step of a unidirectional stack of layers over its live parameters.\n"
             "cell: the position of the cell's kernel name in CELLS; "
             "weights: (W_ih, W_hh, b_ih, b_hh) of each layer in one tuple, None for no bias.");

static PyTypeObject rk_step_plan_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rnnkit.runtime.kernels._native.StepPlan",
    .tp_basicsize = sizeof(rk_step_plan),
    .tp_dealloc = (destructor)step_plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = step_plan_doc,
    .tp_methods = step_plan_methods,
    .tp_init = (initproc)step_plan_init,
    .tp_new = PyType_GenericNew,
};
