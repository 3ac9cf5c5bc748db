/* One instruction-set variant of every loop, in float and in double: included by _native.c
 * with VB (vector bytes), MR (rows of a tile) and ISA (a name suffix) defined, inside the
 * #pragma GCC target region of that instruction set. */

#define REAL float
#define RK_REAL_BYTES 4 /* sizeof(REAL), for the preprocessor */
#define RK_LANE_INDEX int32_t /* an integer of REAL's size: shuffle masks */
#define SUF RK_CAT(ISA, _f32)
#define SIGMOID rk_sigmoidf
#define TANH rk_tanhf
#define RK_ADAM_SQRT __builtin_sqrtf
#include "microkernel.h"
#include "gemm.h"
#include "loop_parts.h"
#include "lstm_loops.h"
#include "gru_loops.h"
#include "rnn_loops.h"
#include "step_loops.h"
#include "adam.h"
#undef RK_ADAM_SQRT
#undef REAL
#undef RK_REAL_BYTES
#undef RK_LANE_INDEX
#undef SUF
#undef SIGMOID
#undef TANH

#define REAL double
#define RK_REAL_BYTES 8
#define RK_LANE_INDEX int64_t
#define SUF RK_CAT(ISA, _f64)
#define SIGMOID rk_sigmoid
#define TANH rk_tanh
#define RK_ADAM_SQRT __builtin_sqrt
#include "microkernel.h"
#include "gemm.h"
#include "loop_parts.h"
#include "lstm_loops.h"
#include "gru_loops.h"
#include "rnn_loops.h"
#include "step_loops.h"
#include "adam.h"
#undef RK_ADAM_SQRT
#undef REAL
#undef RK_REAL_BYTES
#undef RK_LANE_INDEX
#undef SUF
#undef SIGMOID
#undef TANH

/* The variant's entries in the dispatch table of _native.c: a cell's packings for the forward
 * and the backward product (named by fwd and bwd) and its loops (named by loop), in one type. */
#define RK_ENTRY(fwd, bwd, loop, T)                                                           \
    {                                                                                         \
        {RK_CAT(fwd##_pack_forward_size, RK_CAT(ISA, T)),                                     \
         RK_CAT(bwd##_pack_backward_size, RK_CAT(ISA, T))},                                   \
            {RK_CAT(fwd##_pack_forward, RK_CAT(ISA, T)),                                      \
             RK_CAT(bwd##_pack_backward, RK_CAT(ISA, T))},                                    \
            {RK_CAT(loop##_forward_block, RK_CAT(ISA, T)),                                    \
             RK_CAT(loop##_backward_block, RK_CAT(ISA, T))},                                  \
    }
#define RK_CELL(code, kernel, fwd, bwd)                                                       \
    [RK_##code] = {RK_ENTRY(fwd, bwd, kernel, _f32), RK_ENTRY(fwd, bwd, kernel, _f64)},
static const rk_variant RK_CAT(rk_variant, ISA) = {
    ISA_NAME,
    {RK_CELLS(RK_CELL)}, /* every cell of the list in _native.c */
    {RK_CAT(rk_step, RK_CAT(ISA, _f32)), RK_CAT(rk_step, RK_CAT(ISA, _f64))},
    {RK_CAT(rk_gemm_rows, RK_CAT(ISA, _f32)), RK_CAT(rk_gemm_rows, RK_CAT(ISA, _f64))},
    {RK_CAT(rk_gemm_pack_shared, RK_CAT(ISA, _f32)),
     RK_CAT(rk_gemm_pack_shared, RK_CAT(ISA, _f64))},
    {RK_CAT(rk_adam_rows, RK_CAT(ISA, _f32)), RK_CAT(rk_adam_rows, RK_CAT(ISA, _f64))},
};
#undef RK_ENTRY
#undef RK_CELL
