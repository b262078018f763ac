// Cosine similarity of each row with a constant vector (embedding targets), its exact backward,
// and the LRP variant with 1/|x| held constant. One 256-thread block per row.

struct Dots {
    float xc, nx, nc;
};

__device__ Dots dots(const float* x, const float* c, u32 d) {
    float xc = 0.0f, xx = 0.0f, cc = 0.0f;
    for (u32 j = threadIdx.x; j < d; j += blockDim.x) {
        xc += x[j] * c[j];
        xx += x[j] * x[j];
        cc += c[j] * c[j];
    }
    Dots r;
    r.xc = block_sum(xc);
    r.nx = sqrtf(block_sum(xx));
    r.nc = sqrtf(block_sum(cc));
    return r;
}

extern "C" __global__ void cosine_rows(float* out, const float* x, const float* c, u32 rows, u32 d) {
    const u32 row = group_index();
    if (row >= rows) return;
    const Dots s = dots(x + (size_t)row * d, c, d);
    if (threadIdx.x == 0) out[row] = s.xc / fmaxf(s.nx * s.nc, 1e-12f);
}

// ∂cos/∂x = c/(|x||c|) − cos · x/|x|².
extern "C" __global__ void cosine_rows_backward(float* out, const float* x, const float* c, const float* g,
                                                u32 rows, u32 d) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * d;
    const Dots s = dots(x + base, c, d);
    const float nx = fmaxf(s.nx, 1e-12f), nc = fmaxf(s.nc, 1e-12f);
    const float cosv = s.xc / (nx * nc);
    for (u32 j = threadIdx.x; j < d; j += blockDim.x)
        out[base + j] = g[row] * (c[j] / (nx * nc) - cosv * x[base + j] / (nx * nx));
}

// g ĉ / |x| with the norms held constant.
extern "C" __global__ void cosine_const_norm_backward(float* out, const float* x, const float* c,
                                                      const float* g, u32 rows, u32 d) {
    const u32 row = group_index();
    if (row >= rows) return;
    const size_t base = (size_t)row * d;
    const Dots s = dots(x + base, c, d);
    const float scale = g[row] / (fmaxf(s.nc, 1e-12f) * fmaxf(s.nx, 1e-12f));
    for (u32 j = threadIdx.x; j < d; j += blockDim.x) out[base + j] = scale * c[j];
}
