// Batched C[b] = op(A[b]) · op(B[b]), f32 with f32 accumulation.
//
// `matmul_tiled`: 64×64 output tiles staged through shared memory, each of the 256 threads
// accumulating a 4×4 block in registers; `matmul_rows`: one thread per output, for a few rows
// (a GEMV such as the LM head). Out-of-range loads read 0 and out-of-range stores are skipped.
// A is [m, k] (stored [k, m] when trans_a), B is [k, n] (stored [n, k] when trans_b); a stride
// of 0 shares one operand (a weight) across the batch. Batch entries run along grid z.

#define TM 64u
#define TN 64u
#define TK 16u

struct MatmulArgs {
    u32 m, n, k, trans_a, trans_b, stride_a, stride_b;
};

__device__ __forceinline__ float load_a(const float* a, const MatmulArgs& p, u32 row, u32 kk) {
    if (row >= p.m || kk >= p.k) return 0.0f;
    return p.trans_a ? a[kk * p.m + row] : a[row * p.k + kk];
}

__device__ __forceinline__ float load_b(const float* b, const MatmulArgs& p, u32 kk, u32 col) {
    if (col >= p.n || kk >= p.k) return 0.0f;
    return p.trans_b ? b[col * p.k + kk] : b[kk * p.n + col];
}

extern "C" __global__ void __launch_bounds__(256)
matmul_tiled(float* c, const float* a, const float* b, MatmulArgs p) {
    __shared__ float a_tile[TK * TM];
    __shared__ float b_tile[TK * TN];
    const u32 batch = blockIdx.z;
    const u32 row0 = blockIdx.y * TM, col0 = blockIdx.x * TN;
    const u32 tx = threadIdx.x % 16u * 4u, ty = threadIdx.x / 16u * 4u;
    a += (size_t)batch * p.stride_a;
    b += (size_t)batch * p.stride_b;
    float acc[4][4] = {};
    for (u32 k0 = 0; k0 < p.k; k0 += TK) {
#pragma unroll
        for (u32 r = 0; r < 4; r++) {
            const u32 e = threadIdx.x + r * 256u;
            const u32 kk = e / TM, mm = e % TM;
            a_tile[e] = load_a(a, p, row0 + mm, k0 + kk);
            b_tile[e] = load_b(b, p, k0 + kk, col0 + mm);
        }
        __syncthreads();
#pragma unroll
        for (u32 kk = 0; kk < TK; kk++) {
            float av[4], bv[4];
#pragma unroll
            for (u32 i = 0; i < 4; i++) {
                av[i] = a_tile[kk * TM + ty + i];
                bv[i] = b_tile[kk * TN + tx + i];
            }
#pragma unroll
            for (u32 i = 0; i < 4; i++)
#pragma unroll
                for (u32 j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
    float* out = c + (size_t)batch * p.m * p.n;
#pragma unroll
    for (u32 i = 0; i < 4; i++) {
        const u32 row = row0 + ty + i;
        if (row >= p.m) continue;
#pragma unroll
        for (u32 j = 0; j < 4; j++) {
            const u32 col = col0 + tx + j;
            if (col < p.n) out[row * p.n + col] = acc[i][j];
        }
    }
}

// Grid: x over columns in blocks of 256, y over rows, z over batch entries.
extern "C" __global__ void matmul_rows(float* c, const float* a, const float* b, MatmulArgs p) {
    const u32 col = blockIdx.x * blockDim.x + threadIdx.x;
    const u32 row = blockIdx.y, batch = blockIdx.z;
    if (col >= p.n) return;
    a += (size_t)batch * p.stride_a;
    b += (size_t)batch * p.stride_b;
    float s = 0.0f;
    for (u32 kk = 0; kk < p.k; kk++) s = fmaf(load_a(a, p, row, kk), load_b(b, p, kk, col), s);
    c[(size_t)batch * p.m * p.n + row * p.n + col] = s;
}
