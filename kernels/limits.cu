// What `gradlens bench` measures a GPU's limits with: a streaming read, a copy, and chains of
// FMAs that touch no memory until one last write. None of these is used by an attribution.

// Grid-stride sum of `n` floats: each thread writes its partial sum, so the traffic is the
// read (4 independent sums keep several loads in flight per thread).
extern "C" __global__ void read_sum(float* out, const float* a, u32 n) {
    const u32 i = flat_index();
    const u32 threads = gridDim.x * gridDim.y * blockDim.x;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    u32 j = i;
    for (; j + 3u * threads < n; j += 4u * threads) {
        s0 += a[j];
        s1 += a[j + threads];
        s2 += a[j + 2u * threads];
        s3 += a[j + 3u * threads];
    }
    for (; j < n; j += threads) s0 += a[j];
    out[i] = (s0 + s1) + (s2 + s3);
}

extern "C" __global__ void copy(float* out, const float* a, u32 n) {
    const u32 i = flat_index();
    if (i < n) out[i] = a[i];
}

// `iterations` rounds of 8 independent FMA chains (16 flops a round per thread), kept bounded
// (x ← 0.999·x + 0.001 converges to 1), written once so the compiler keeps them.
extern "C" __global__ void fma_peak(float* out, float x, u32 iterations) {
    float v[8];
    for (int c = 0; c < 8; c++) v[c] = x + 0.125f * c;
    for (u32 t = 0; t < iterations; t++) {
        for (int c = 0; c < 8; c++) v[c] = fmaf(v[c], 0.999f, 0.001f);
    }
    float s = 0.0f;
    for (int c = 0; c < 8; c++) s += v[c];
    out[flat_index()] = s;
}
