/* l2.c: squared Euclidean distance blocks by one sgemm (see l2.h). */
#include "cluster/l2.h"

#include <cblas.h>

void fn_l2_norms(const float *v, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *x = v + i * FN_DESC_DIM;
        float s = 0;
        for (int k = 0; k < FN_DESC_DIM; k++)
            s += x[k] * x[k];
        out[i] = s;
    }
}

void fn_l2sq_block(const float *q, const float *qn, size_t nq, const float *r, const float *rn,
                   size_t nr, float *d, size_t ldd)
{
    if (nq == 0 || nr == 0) return;
    /* d = -2 q r^T, then the norms are added row by row while the block is still in cache */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nr, FN_DESC_DIM, -2.0f, q,
                FN_DESC_DIM, r, FN_DESC_DIM, 0.0f, d, (int)ldd);
    for (size_t i = 0; i < nq; i++) {
        float *row = d + i * ldd;
        for (size_t j = 0; j < nr; j++) {
            float v = row[j] + qn[i] + rn[j];
            row[j] = v > 0 ? v : 0;
        }
    }
}
