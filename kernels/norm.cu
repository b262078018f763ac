// LayerNorm and RMSNorm: forward, exact backward, and the LRP variants that hold the normaliser
// constant. One 256-thread block per row.

extern "C" __global__ void layer_norm(float* y, float* xhat, float* rstd, const float* x, const float* w,
                                      const float* b, u32 rows, u32 cols, float eps) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += x[base + j];
    const float mean = block_sum(s) / cols;
    float v = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = x[base + j] - mean;
        v += d * d;
    }
    const float r = rsqrtf(block_sum(v) / cols + eps);
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
        const float xh = (x[base + j] - mean) * r;
        xhat[base + j] = xh;
        y[base + j] = xh * w[j] + b[j];
    }
    if (threadIdx.x == 0) rstd[row] = r;
}

extern "C" __global__ void rms_norm(float* y, float* rstd, const float* x, const float* w, u32 rows,
                                    u32 cols, float eps) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += x[base + j] * x[base + j];
    const float r = rsqrtf(block_sum(s) / cols + eps);
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) y[base + j] = w[j] * (x[base + j] * r);
    if (threadIdx.x == 0) rstd[row] = r;
}

// ∂x = (1/σ)(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ w.
extern "C" __global__ void layer_norm_backward(float* out, const float* g, const float* xhat,
                                               const float* rstd, const float* w, u32 rows, u32 cols) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float sg = 0.0f, sgx = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
        const float gh = g[base + j] * w[j];
        sg += gh;
        sgx += gh * xhat[base + j];
    }
    const float mg = block_sum(sg) / cols;
    const float mgx = block_sum(sgx) / cols;
    const float r = rstd[row];
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x)
        out[base + j] = r * (g[base + j] * w[j] - mg - xhat[base + j] * mgx);
}

// ∂x = r(ĝ − x r² mean(ĝ ⊙ x)), r = 1/rms.
extern "C" __global__ void rms_norm_backward(float* out, const float* g, const float* x, const float* rstd,
                                             const float* w, u32 rows, u32 cols) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += g[base + j] * w[j] * x[base + j];
    const float m = block_sum(s) / cols;
    const float r = rstd[row];
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x)
        out[base + j] = r * (g[base + j] * w[j] - x[base + j] * r * r * m);
}

// Normaliser held constant (LRP): (1/σ)(ĝ − mean ĝ).
extern "C" __global__ void layer_norm_const_backward(float* out, const float* g, const float* rstd,
                                                     const float* w, u32 rows, u32 cols) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += g[base + j] * w[j];
    const float mg = block_sum(s) / cols;
    const float r = rstd[row];
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) out[base + j] = r * (g[base + j] * w[j] - mg);
}

// Normaliser held constant (LRP): (1/rms) w ⊙ g.
extern "C" __global__ void rms_norm_const_backward(float* out, const float* g, const float* rstd,
                                                   const float* w, u32 rows, u32 cols) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    const float r = rstd[row];
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) out[base + j] = r * w[j] * g[base + j];
}
