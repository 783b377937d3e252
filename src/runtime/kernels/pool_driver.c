/* The portable driver behind every SIMD path's maxpool2d and avgpool2d
 * (microkernel.h): plain C. It walks the output pixels of a batch and hands
 * the path's row ukernel each run of consecutive pixels within one output
 * row, whose windows are then a fixed stride apart. */
#include "runtime/kernels/microkernel.h"

void qat_rt_pool_run(qat_rt_pool_row_ukernel *row, const qat_rt_pool_params *p, const int8_t *in,
                     int8_t *out, size_t m0, size_t m1)
{
    const size_t c = (size_t)p->c, ow = (size_t)p->out_w, per = (size_t)p->out_h * ow;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t ystep = (size_t)p->stride_h * (size_t)p->in_w * c;
    const size_t xstep = (size_t)p->stride_w * c;
    size_t img = m0 / per, y = m0 % per / ow, x = m0 % per % ow;
    for (size_t m = m0; m < m1;) {
        size_t n = ow - x < m1 - m ? ow - x : m1 - m;
        row(p, in + img * in_size + y * ystep + x * xstep, n, out + m * c);
        m += n;
        x += n;
        if (x == ow) {
            x = 0;
            if (++y == (size_t)p->out_h) {
                y = 0;
                img++;
            }
        }
    }
}
