/* One instruction-set variant of every loop, in float and in double: included by _native.c
 * with VB (vector bytes), MR (rows of a tile) and ISA (a name suffix) defined, inside the
 * #pragma GCC target region of that instruction set. */

#define REAL float
#define SUF RK_CAT(ISA, _f32)
#define SIGMOID rk_sigmoidf
#define TANH rk_tanhf
#include "microkernel.h"
#include "lstm_loops.h"
#undef REAL
#undef SUF
#undef SIGMOID
#undef TANH

#define REAL double
#define SUF RK_CAT(ISA, _f64)
#define SIGMOID rk_sigmoid
#define TANH rk_tanh
#include "microkernel.h"
#include "lstm_loops.h"
#undef REAL
#undef SUF
#undef SIGMOID
#undef TANH

/* The variant's entry in the dispatch table of _native.c. */
#define RK_TYPE_ENTRY(T)                                                                      \
    {                                                                                         \
        RK_CAT(lstm_pack_forward_size, RK_CAT(ISA, T)),                                       \
            RK_CAT(lstm_pack_backward_size, RK_CAT(ISA, T)),                                  \
            RK_CAT(lstm_pack_forward, RK_CAT(ISA, T)),                                        \
            RK_CAT(lstm_pack_backward, RK_CAT(ISA, T)),                                       \
            RK_CAT(lstm_forward_block, RK_CAT(ISA, T)),                                       \
            RK_CAT(lstm_backward_block, RK_CAT(ISA, T)),                                      \
    }
static const rk_variant RK_CAT(rk_variant, ISA) = {ISA_NAME, {RK_TYPE_ENTRY(_f32),
                                                              RK_TYPE_ENTRY(_f64)}};
#undef RK_TYPE_ENTRY
