// Elementwise arithmetic: sums, products, scaling and broadcast adds (biases, positions).

extern "C" __global__ void add(float* out, const float* a, const float* b, u32 n) {
    const u32 i = flat_index();
    if (i < n) out[i] = a[i] + b[i];
}

extern "C" __global__ void mul(float* out, const float* a, const float* b, u32 n) {
    const u32 i = flat_index();
    if (i < n) out[i] = a[i] * b[i];
}

extern "C" __global__ void scale(float* out, const float* a, float s, u32 n) {
    const u32 i = flat_index();
    if (i < n) out[i] = a[i] * s;
}

// out = a + b repeated along a (`m` = b's length).
extern "C" __global__ void add_broadcast(float* out, const float* a, const float* b, u32 n, u32 m) {
    const u32 i = flat_index();
    if (i < n) out[i] = a[i] + b[i % m];
}
