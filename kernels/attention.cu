// Fused attention probabilities softmax(scale · Q Kᵀ) under a causal mask (`visible_keys`,
// sliding windows included). One 256-thread block
// per query row: the row's query is staged in shared memory, each warp takes one key at a time
// (lanes stride the head dimension, so key reads are coalesced), scores go straight into the
// output row, which is then normalised in place. The raw scores never have a buffer of their own.

#define ATTENTION_MAX_HEAD_DIM 1024u

extern "C" __global__ void attention_probs(float* out, const float* q, const float* k, u32 rows,
                                           u32 q_len, u32 k_len, u32 head_dim, u32 causal_len,
                                           u32 offset, u32 window, float scale) {
    __shared__ float qs[ATTENTION_MAX_HEAD_DIM];
    const u32 row = group_index();
    if (row >= rows) return;
    const VisibleKeys vis = visible_keys(row, k_len, causal_len, offset, window);
    float* dst = out + (size_t)row * k_len;
    const float* keys = k + (size_t)(row / q_len) * k_len * head_dim;
    for (u32 t = threadIdx.x; t < head_dim; t += blockDim.x) qs[t] = q[(size_t)row * head_dim + t];
    __syncthreads();
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (u32 j = vis.lo + warp; j < vis.hi; j += warps) {
        const float* kr = keys + (size_t)j * head_dim;
        float s = 0.0f;
        for (u32 t = lane; t < head_dim; t += 32u) s += qs[t] * kr[t];
        s = warp_sum(s);
        if (lane == 0) dst[j] = s * scale;
    }
    __syncthreads();  // the scores were written by other warps
    float m = -3.402823e38f;
    for (u32 j = vis.lo + threadIdx.x; j < vis.hi; j += blockDim.x) m = fmaxf(m, dst[j]);
    m = block_max(m);
    float sum = 0.0f;
    for (u32 j = vis.lo + threadIdx.x; j < vis.hi; j += blockDim.x) {
        const float e = __expf(dst[j] - m);
        dst[j] = e;
        sum += e;
    }
    const float inv = 1.0f / block_sum(sum);
    for (u32 j = threadIdx.x; j < k_len; j += blockDim.x)
        dst[j] = j >= vis.lo && j < vis.hi ? dst[j] * inv : 0.0f;
}
