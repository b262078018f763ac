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

// Fused attention softmax(scale · Q Kᵀ) V that never writes the probabilities (FlashAttention's
// online softmax, one query row per block): keys come in tiles of 256, each warp scores its
// keys (lanes stride the head dimension), and the row's running maximum m, running sum l and
// context Σ_j e^{s_j − m} v_j are rescaled as the maximum grows. Each thread holds the context
// for the head-dimension entries d = tid + 256 r. The backward recomputes the same tiles:
// `attention_backward_query` gives ∂Q and each row's (m, 1/l, Σ_j p_j g·v_j), from which
// `attention_backward_key`, one key row per block, gives ∂K and ∂V without atomics, so the
// results do not depend on scheduling. Memory is linear in the length.

#define ATT_TILE 256u
#define ATT_PER_THREAD (ATTENTION_MAX_HEAD_DIM / WG)

struct OnlineSoftmax {
    float m, l;
};

// Scaled scores of the staged query `qs` against keys j0..j0+n into `sc`, a warp per key.
__device__ void score_tile(float* sc, const float* qs, const float* keys, u32 j0, u32 n, u32 head_dim,
                           float scale) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (u32 t = warp; t < n; t += warps) {
        const float* kr = keys + (size_t)(j0 + t) * head_dim;
        float s = 0.0f;
        for (u32 d = lane; d < head_dim; d += 32u) s += qs[d] * kr[d];
        s = warp_sum(s);
        if (lane == 0) sc[t] = s * scale;
    }
}

// The online softmax over the keys `vis` of the staged query: returns (m, l) and, unless
// `values` is null (statistics only), leaves Σ_j e^{s_j − m} v_j in `acc`.
__device__ OnlineSoftmax online_softmax(float* acc, float* sc, const float* qs, const float* keys,
                                        const float* values, VisibleKeys vis, u32 head_dim,
                                        float scale) {
    float m = -3.402823e38f, l = 0.0f;
    if (values)
        for (u32 r = 0; r < ATT_PER_THREAD; r++) acc[r] = 0.0f;
    for (u32 j0 = vis.lo; j0 < vis.hi; j0 += ATT_TILE) {
        const u32 n = min(ATT_TILE, vis.hi - j0);
        score_tile(sc, qs, keys, j0, n, head_dim, scale);
        __syncthreads();
        float tile_max = -3.402823e38f;
        for (u32 t = threadIdx.x; t < n; t += blockDim.x) tile_max = fmaxf(tile_max, sc[t]);
        const float m_new = fmaxf(m, block_max(tile_max));
        const float rescale = __expf(m - m_new);
        float tile_sum = 0.0f;
        for (u32 t = threadIdx.x; t < n; t += blockDim.x) {
            const float e = __expf(sc[t] - m_new);
            sc[t] = e;
            tile_sum += e;
        }
        l = l * rescale + block_sum(tile_sum);  // its barrier publishes sc
        m = m_new;
        for (u32 r = 0; values && r < ATT_PER_THREAD; r++) {
            const u32 d = threadIdx.x + r * WG;
            if (d >= head_dim) break;
            float a = acc[r] * rescale;
            for (u32 t = 0; t < n; t++) a += sc[t] * values[(size_t)(j0 + t) * head_dim + d];
            acc[r] = a;
        }
        __syncthreads();  // the next tile overwrites sc
    }
    return {m, l};
}

extern "C" __global__ void attention_forward(float* out, const float* q, const float* k, const float* v,
                                             u32 rows, u32 q_len, u32 k_len, u32 head_dim,
                                             u32 causal_len, u32 offset, u32 window, float scale) {
    __shared__ float qs[ATTENTION_MAX_HEAD_DIM];
    __shared__ float sc[ATT_TILE];
    const u32 row = group_index();
    if (row >= rows) return;
    const VisibleKeys vis = visible_keys(row, k_len, causal_len, offset, window);
    const size_t kv = (size_t)(row / q_len) * k_len * head_dim;
    for (u32 d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = q[(size_t)row * head_dim + d];
    __syncthreads();
    float acc[ATT_PER_THREAD];
    const OnlineSoftmax s = online_softmax(acc, sc, qs, k + kv, v + kv, vis, head_dim, scale);
    const float inv = s.l > 0.0f ? 1.0f / s.l : 0.0f;
    for (u32 r = 0; r < ATT_PER_THREAD; r++) {
        const u32 d = threadIdx.x + r * WG;
        if (d < head_dim) out[(size_t)row * head_dim + d] = acc[r] * inv;
    }
}

// ∂Q = share_q · scale · Σ_j p_j (dP_j − D) k_j for one query row, with dP_j = g·v_j and
// D = Σ_j p_j dP_j, and the row's statistics (m, 1/l, D) in `stats` for the key pass. D is
// summed from the very p_j and dP_j the gradients use (not as g·o): the shares then cancel as
// the softmax's Jacobian does, and a small gradient is not swamped by D's rounding. ∂Q is
// accumulated as Σ p_j dP_j k_j − D Σ p_j k_j, so the keys are read once.
extern "C" __global__ void attention_backward_query(float* dq, float* stats, const float* q,
                                                    const float* k, const float* v, const float* g,
                                                    u32 rows, u32 q_len, u32 k_len, u32 head_dim,
                                                    u32 causal_len, u32 offset, u32 window,
                                                    float scale, float share_q) {
    __shared__ float qs[ATTENTION_MAX_HEAD_DIM];
    __shared__ float gs[ATTENTION_MAX_HEAD_DIM];
    __shared__ float probs[ATT_TILE];
    __shared__ float weighted[ATT_TILE];  // p_j dP_j
    const u32 row = group_index();
    if (row >= rows) return;
    const VisibleKeys vis = visible_keys(row, k_len, causal_len, offset, window);
    const size_t kv = (size_t)(row / q_len) * k_len * head_dim;
    for (u32 d = threadIdx.x; d < head_dim; d += blockDim.x) {
        qs[d] = q[(size_t)row * head_dim + d];
        gs[d] = g[(size_t)row * head_dim + d];
    }
    __syncthreads();
    const float* keys = k + kv;
    const float* values = v + kv;
    const OnlineSoftmax s = online_softmax(nullptr, probs, qs, keys, nullptr, vis, head_dim, scale);
    const float inv = s.l > 0.0f ? 1.0f / s.l : 0.0f;
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    float pdp[ATT_PER_THREAD] = {0.0f};  // Σ p_j dP_j k_j
    float pk[ATT_PER_THREAD] = {0.0f};   // Σ p_j k_j
    float d_part = 0.0f;
    for (u32 j0 = vis.lo; j0 < vis.hi; j0 += ATT_TILE) {
        const u32 n = min(ATT_TILE, vis.hi - j0);
        for (u32 t = warp; t < n; t += warps) {
            const float* kr = keys + (size_t)(j0 + t) * head_dim;
            const float* vr = values + (size_t)(j0 + t) * head_dim;
            float dot_k = 0.0f, dot_v = 0.0f;
            for (u32 d = lane; d < head_dim; d += 32u) {
                dot_k += qs[d] * kr[d];
                dot_v += gs[d] * vr[d];
            }
            dot_k = warp_sum(dot_k);
            dot_v = warp_sum(dot_v);
            if (lane == 0) {
                const float p = __expf(dot_k * scale - s.m) * inv;
                probs[t] = p;
                weighted[t] = p * dot_v;
            }
        }
        __syncthreads();
        if (threadIdx.x < n) d_part += weighted[threadIdx.x];
        if (share_q != 0.0f) {
            for (u32 r = 0; r < ATT_PER_THREAD; r++) {
                const u32 d = threadIdx.x + r * WG;
                if (d >= head_dim) break;
                for (u32 t = 0; t < n; t++) {
                    const float kd = keys[(size_t)(j0 + t) * head_dim + d];
                    pdp[r] += weighted[t] * kd;
                    pk[r] += probs[t] * kd;
                }
            }
        }
        __syncthreads();
    }
    const float dsum = block_sum(d_part);
    if (threadIdx.x == 0) {
        stats[(size_t)row * 3] = s.m;
        stats[(size_t)row * 3 + 1] = inv;
        stats[(size_t)row * 3 + 2] = dsum;
    }
    if (share_q == 0.0f) return;
    for (u32 r = 0; r < ATT_PER_THREAD; r++) {
        const u32 d = threadIdx.x + r * WG;
        if (d < head_dim) dq[(size_t)row * head_dim + d] = scale * (pdp[r] - dsum * pk[r]) * share_q;
    }
}

// ∂K and ∂V for one key row from the queries that see it: ∂V = share_v · Σ_i p_i g_i and
// ∂K = share_k · scale · Σ_i p_i (g_i·v − D_i) q_i, with p_i recomputed from the query pass's
// statistics (its dot products in the same order, so the same bits).
extern "C" __global__ void attention_backward_key(float* dk, float* dv, const float* stats,
                                                  const float* q, const float* k, const float* v,
                                                  const float* g, u32 key_rows, u32 q_len, u32 k_len,
                                                  u32 head_dim, u32 causal_len, u32 offset, u32 window,
                                                  float scale, float share_k, float share_v) {
    __shared__ float ks[ATTENTION_MAX_HEAD_DIM];
    __shared__ float vs[ATTENTION_MAX_HEAD_DIM];
    __shared__ float probs[ATT_TILE];
    __shared__ float score_grads[ATT_TILE];
    const u32 key_row = group_index();
    if (key_row >= key_rows) return;
    const u32 batch = key_row / k_len, j = key_row % k_len;
    for (u32 d = threadIdx.x; d < head_dim; d += blockDim.x) {
        ks[d] = k[(size_t)key_row * head_dim + d];
        vs[d] = v[(size_t)key_row * head_dim + d];
    }
    __syncthreads();
    // The queries that can see key j: all of them, narrowed when the mask's blocks are the
    // queries themselves (each query is still checked below).
    u32 i_lo = 0, i_hi = q_len;
    if (causal_len == q_len) {
        i_lo = min(j > offset ? j - offset : 0u, q_len);
        if (window != 0u) i_hi = j + window > offset ? min(q_len, j + window - offset) : 0u;
    }
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    float grad_k[ATT_PER_THREAD] = {0.0f};
    float grad_v[ATT_PER_THREAD] = {0.0f};
    for (u32 i0 = i_lo; i0 < i_hi; i0 += ATT_TILE) {
        const u32 n = min(ATT_TILE, i_hi - i0);
        for (u32 t = warp; t < n; t += warps) {
            const u32 row = batch * q_len + i0 + t;
            const float* qr = q + (size_t)row * head_dim;
            const float* gr = g + (size_t)row * head_dim;
            float dot_k = 0.0f, dot_v = 0.0f;
            for (u32 d = lane; d < head_dim; d += 32u) {
                dot_k += qr[d] * ks[d];
                dot_v += gr[d] * vs[d];
            }
            dot_k = warp_sum(dot_k);
            dot_v = warp_sum(dot_v);
            if (lane == 0) {
                const VisibleKeys vis = visible_keys(row, k_len, causal_len, offset, window);
                const float* st = stats + (size_t)row * 3;
                const float p = j >= vis.lo && j < vis.hi ? __expf(dot_k * scale - st[0]) * st[1] : 0.0f;
                probs[t] = p;
                score_grads[t] = scale * p * (dot_v - st[2]);
            }
        }
        __syncthreads();
        for (u32 r = 0; r < ATT_PER_THREAD; r++) {
            const u32 d = threadIdx.x + r * WG;
            if (d >= head_dim) break;
            for (u32 t = 0; t < n; t++) {
                const size_t at = (size_t)(batch * q_len + i0 + t) * head_dim + d;
                grad_v[r] += probs[t] * g[at];
                grad_k[r] += score_grads[t] * q[at];
            }
        }
        __syncthreads();
    }
    for (u32 r = 0; r < ATT_PER_THREAD; r++) {
        const u32 d = threadIdx.x + r * WG;
        if (d >= head_dim) break;
        dk[(size_t)key_row * head_dim + d] = grad_k[r] * share_k;
        dv[(size_t)key_row * head_dim + d] = grad_v[r] * share_v;
    }
}
