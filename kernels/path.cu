// Integration-path kernels: every path point x′ + α_k (x − x′) built in one launch, and the
// quadrature-weighted reduction of per-step gradients.

// out[k, j] = x′_j + α_k (x_j − x′_j) for n = steps · len outputs.
extern "C" __global__ void interpolate(float* out, const float* x, const float* baseline, const float* alphas,
                                       u32 n, u32 len) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 j = i % len;
    const float b = baseline[j];
    out[i] = b + alphas[i / len] * (x[j] - b);
}

// out[j] = Σ_k w_k x[k, j].
extern "C" __global__ void weighted_batch_sum(float* out, const float* x, const float* w, u32 n, u32 steps) {
    const u32 i = flat_index();
    if (i >= n) return;
    float s = 0.0f;
    for (u32 k = 0; k < steps; k++) s += w[k] * x[(size_t)k * n + i];
    out[i] = s;
}
