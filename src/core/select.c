#include "qat/select.h"

float qat_select_kth(float *v, size_t n, size_t k)
{
    size_t l = 0, r = n - 1;
    if (k >= n)
        k = n - 1;
    while (l < r) {
        /* Hoare partition around the median of three */
        float a = v[l], b = v[l + (r - l) / 2], c = v[r];
        float p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = l, j = r;
        while (i <= j) {
            while (v[i] < p)
                i++;
            while (v[j] > p)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            r = j;
        else if (k >= i)
            l = i;
        else
            return v[k];
    }
    return v[k];
}
