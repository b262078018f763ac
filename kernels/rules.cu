// Local rules of the LRP and DeepLIFT rule sets. DeepLIFT batches are [inputs; references]:
// only the input half carries multipliers, the reference half gets 0.

// g ⊙ num / (den + ε·sign den), sign 0 counted as +.
extern "C" __global__ void stabilized_ratio(float* out, const float* num, const float* den, const float* g,
                                            u32 n, float eps) {
    const u32 i = flat_index();
    if (i >= n) return;
    const float d = den[i];
    out[i] = g[i] * num[i] / (d >= 0.0f ? d + eps : d - eps);
}

// Row-wise rank-one rescale of y = f(x): Δx (Δy · g) / |Δx|² over the visible entries, the
// exact gradient where |Δx|² < 1e-12. One block per row of the input half (`rows` rows).
extern "C" __global__ void rank1_rescale_halves(float* out, const float* x, const float* y, const float* g,
                                                const float* exact, u32 rows, u32 x_cols, u32 y_cols,
                                                u32 causal_len, u32 offset, u32 window) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t hx = (size_t)rows * x_cols, hy = (size_t)rows * y_cols;
    const size_t xb = (size_t)row * x_cols, yb = (size_t)row * y_cols;
    const VisibleKeys vis = visible_keys(row, x_cols, causal_len, offset, window);
    float n2 = 0.0f;
    for (u32 j = vis.lo + threadIdx.x; j < vis.hi; j += blockDim.x) {
        const float d = x[xb + j] - x[hx + xb + j];
        n2 += d * d;
    }
    n2 = block_sum(n2);
    float dyg = 0.0f;
    for (u32 j = threadIdx.x; j < y_cols; j += blockDim.x) dyg += (y[yb + j] - y[hy + yb + j]) * g[yb + j];
    dyg = block_sum(dyg);
    for (u32 j = threadIdx.x; j < x_cols; j += blockDim.x) {
        float v = 0.0f;
        if (n2 < 1e-12f) v = exact[xb + j];
        else if (j >= vis.lo && j < vis.hi) v = (x[xb + j] - x[hx + xb + j]) * dyg / n2;
        out[xb + j] = v;
        out[hx + xb + j] = 0.0f;
    }
}
