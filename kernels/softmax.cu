// Row softmax with causal and sliding-window masks (`visible_keys`), its backward, and the
// softmax-pick of probability targets. One 256-thread block per row.

extern "C" __global__ void softmax(float* out, const float* x, u32 rows, u32 cols, u32 causal_len,
                                   u32 offset, u32 window) {
    const u32 row = group_index();
    if (row >= rows) return;
    const float* src = x + (size_t)row * cols;
    float* dst = out + (size_t)row * cols;
    const VisibleKeys vis = visible_keys(row, cols, causal_len, offset, window);
    float m = -3.402823e38f;
    for (u32 j = vis.lo + threadIdx.x; j < vis.hi; j += blockDim.x) m = fmaxf(m, src[j]);
    m = block_max(m);
    float s = 0.0f;
    for (u32 j = vis.lo + threadIdx.x; j < vis.hi; j += blockDim.x) s += __expf(src[j] - m);
    const float inv = 1.0f / block_sum(s);
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x)
        dst[j] = j >= vis.lo && j < vis.hi ? __expf(src[j] - m) * inv : 0.0f;
}

// factor · y ⊙ (g − Σ y g) (factor folds in a following scale and a rule's share).
extern "C" __global__ void softmax_backward(float* out, const float* y, const float* g, u32 rows,
                                            u32 cols, float factor) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float d = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) d += y[base + j] * g[base + j];
    d = block_sum(d);
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) out[base + j] = factor * y[base + j] * (g[base + j] - d);
}

__device__ float log_sum_exp(const float* src, u32 cols) {
    float m = -3.402823e38f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, src[j]);
    m = block_max(m);
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += __expf(src[j] - m);
    return m + logf(block_sum(s));
}

// Probability (log_prob = 0) or log-probability of column `col` of each row.
extern "C" __global__ void pick(float* out, const float* x, u32 rows, u32 cols, u32 col, u32 log_prob) {
    const u32 row = group_index();
    if (row >= rows) return;
    const float* src = x + (size_t)row * cols;
    const float lp = src[col] - log_sum_exp(src, cols);
    if (threadIdx.x == 0) out[row] = log_prob ? lp : __expf(lp);
}

// d log p_t / d x_j = 1[j = t] − p_j; d p_t = p_t · d log p_t.
extern "C" __global__ void pick_backward(float* out, const float* x, const float* g, u32 rows, u32 cols,
                                         u32 col, u32 log_prob) {
    const u32 row = group_index();
    if (row >= rows) return;
    const float* src = x + (size_t)row * cols;
    const float lse = log_sum_exp(src, cols);
    const float scale = log_prob ? g[row] : g[row] * __expf(src[col] - lse);
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x)
        out[(size_t)row * cols + j] = scale * ((j == col ? 1.0f : 0.0f) - __expf(src[j] - lse));
}
