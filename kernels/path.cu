// Integration-path kernels: every path point x′ + α_k (x − x′) built in one launch (the
// quadrature-weighted sum of the steps' gradients is a matmul, `ops::weighted_batch_sum`).

// out[k, j] = x′_j + α_k (x_j − x′_j) for n = steps · len outputs.
extern "C" __global__ void interpolate(float* out, const float* x, const float* baseline, const float* alphas,
                                       u32 n, u32 len) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 j = i % len;
    const float b = baseline[j];
    out[i] = b + alphas[i / len] * (x[j] - b);
}
