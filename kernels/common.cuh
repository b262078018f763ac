// Prepended to every kernel file before NVRTC compiles it: launch geometry, block reductions
// and clamped transcendental functions. Kernels launch 256-thread blocks; 1-D launches spread
// over a 2-D grid (65535 blocks per y/z dimension), as the WGSL kernels do.

#define WG 256u
typedef unsigned int u32;

__device__ __forceinline__ u32 flat_index() {
    return (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ u32 group_index() {
    return blockIdx.y * gridDim.x + blockIdx.x;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread must call it (it synchronises) and gets the result.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const u32 warps = (blockDim.x + 31u) >> 5;
    float r = lane < warps ? part[lane] : 0.0f;
    return warp_sum(r);
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const u32 warps = (blockDim.x + 31u) >> 5;
    float r = lane < warps ? part[lane] : -3.402823e38f;
    return warp_max(r);
}

// Clamped so that no intermediate overflows to inf (inf/inf would give NaN).
__device__ __forceinline__ float exp_c(float x) {
    return __expf(fminf(fmaxf(x, -87.0f), 88.0f));
}

// The keys [lo, hi) that query `row` sees: all `cols` with no mask (causal_len 0); else rows are
// [.., q, k] blocks of causal_len queries after `offset` cached keys, each seeing the keys up to
// its own position, and with a sliding window (window != 0) only the last `window` of them.
struct VisibleKeys {
    u32 lo, hi;
};
__device__ __forceinline__ VisibleKeys visible_keys(u32 row, u32 cols, u32 causal_len, u32 offset, u32 window) {
    if (causal_len == 0) return {0u, cols};
    const u32 end = row % causal_len + offset + 1u;
    const u32 hi = min(end, cols);
    const u32 lo = (window != 0u && end > window) ? min(end - window, hi) : 0u;
    return {lo, hi};
}
