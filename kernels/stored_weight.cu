// A weight matrix [rows, cols] in its file's format (f16, bf16, GGUF Q8_0, Q4_0, Q4_1, Q5_0,
// Q5_1, Q4_K, Q5_K, Q6_K), as the file's bytes in u32 words, decoded in registers where it is read with the
// CPU decoder's operations (`src/gguf/dequant.rs`). Matrix row r is stored row order[r] when
// `ordered` (llama.cpp's interleaved Q/K rows); every stored row is `row_bytes` bytes of whole
// blocks. The same decoder as `shaders/stored_weight.wgsl`.
//
// Kernels: `stored_x_wt` (C = A·Wᵀ, one thread per output) and `stored_g_w` (C = A·W, one thread
// per eight outputs of a row), both reading eight values at a time so that a block's scales are
// read once (the weight's columns a multiple of 8); `stored_gather` (rows by id: the embedding
// look-up); `stored_decode` (the whole matrix in f32: many-row products and the few ops without
// a stored-format kernel).

struct StoredW {
    const u32* w;
    const u32* order;
    u32 format, row_bytes, ordered;
};

__device__ __forceinline__ u32 byte_at(const StoredW& s, u32 i) {
    return (s.w[i >> 2] >> ((i & 3u) * 8u)) & 0xffu;
}

// An IEEE half, exactly (subnormals scaled by 2^-24, which is exact in f32).
__device__ __forceinline__ float half_bits(u32 h) {
    const u32 sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0u) {
        const float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    const u32 bits = exp == 0x1fu ? sign | 0x7f800000u | (man << 13)
                                  : sign | ((exp + 112u) << 23) | (man << 13);
    return __uint_as_float(bits);
}

__device__ __forceinline__ float half_at(const StoredW& s, u32 i) {
    return half_bits(byte_at(s, i) | (byte_at(s, i + 1u) << 8));
}

__device__ __forceinline__ float signed_byte(u32 b) { return (float)(int)(signed char)b; }

// The 6-bit scale and min of sub-block j (0..8) of a Q4_K/Q5_K block whose scales start at q.
__device__ __forceinline__ void scale_min_k4(const StoredW& s, u32 j, u32 q, u32& sc, u32& m) {
    if (j < 4u) {
        sc = byte_at(s, q + j) & 63u;
        m = byte_at(s, q + j + 4u) & 63u;
    } else {
        sc = (byte_at(s, q + j + 4u) & 0xfu) | ((byte_at(s, q + j - 4u) >> 6) << 4);
        m = (byte_at(s, q + j + 4u) >> 4) | ((byte_at(s, q + j) >> 6) << 4);
    }
}

// W[r, 8g .. 8g + 8] into v (the eight lie in one block).
__device__ void decode8(const StoredW& s, u32 r, u32 g, float v[8]) {
    const u32 row = s.ordered ? s.order[r] : r;
    const u32 base = row * s.row_bytes, col = 8u * g;
    switch (s.format) {
        case 1u:  // F16
#pragma unroll
            for (u32 i = 0; i < 8u; i++) v[i] = half_at(s, base + 2u * (col + i));
            return;
        case 30u:  // BF16
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const u32 at = base + 2u * (col + i);
                v[i] = __uint_as_float((byte_at(s, at) | (byte_at(s, at + 1u) << 8)) << 16);
            }
            return;
        case 8u: {  // Q8_0: d, then 32 signed bytes
            const u32 b = base + col / 32u * 34u;
            const float d = half_at(s, b);
#pragma unroll
            for (u32 i = 0; i < 8u; i++) v[i] = d * signed_byte(byte_at(s, b + 2u + col % 32u + i));
            return;
        }
        case 2u:
        case 3u: {  // Q4_0 (d; value d·(q − 8)), Q4_1 (d, m; value d·q + m)
            const u32 size = s.format == 2u ? 18u : 20u;
            const u32 b = base + col / 32u * size, j = col % 32u;
            const float d = half_at(s, b);
            const float m = s.format == 3u ? half_at(s, b + 2u) : 0.0f;
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const u32 q = byte_at(s, b + size - 16u + j % 16u + i);
                const u32 nib = j < 16u ? q & 0xfu : q >> 4;
                v[i] = s.format == 2u ? d * (float)((int)nib - 8) : d * (float)nib + m;
            }
            return;
        }
        case 6u:
        case 7u: {  // Q5_0 (d, 32 fifth bits, nibbles; d·(q − 16)), Q5_1 (d, m, …; d·q + m)
            const bool one = s.format == 7u;
            const u32 size = one ? 24u : 22u;
            const u32 b = base + col / 32u * size, j = col % 32u;
            const float d = half_at(s, b);
            const float m = one ? half_at(s, b + 2u) : 0.0f;
            const u32 qh = byte_at(s, b + size - 20u + j / 8u);  // the eight values' fifth bits
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const u32 q = byte_at(s, b + size - 16u + j % 16u + i);
                const u32 q5 = (j < 16u ? q & 0xfu : q >> 4) | (((qh >> i) & 1u) << 4);
                v[i] = one ? d * (float)q5 + m : d * (float)((int)q5 - 16);
            }
            return;
        }
        case 12u:
        case 13u: {  // Q4_K; Q5_K adds a fifth bit per value
            const bool five = s.format == 13u;
            const u32 b = base + col / 256u * (five ? 176u : 144u), j = col % 256u;
            const u32 chunk = j / 64u, l = j % 64u;
            u32 sc, mn;
            scale_min_k4(s, 2u * chunk + l / 32u, b + 4u, sc, mn);
            const float d = half_at(s, b), dmin = half_at(s, b + 2u);
            const u32 bit = (l < 32u ? 1u : 2u) << (2u * chunk);
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const u32 q = byte_at(s, b + (five ? 48u : 16u) + 32u * chunk + l % 32u + i);
                u32 nib = l < 32u ? q & 0xfu : q >> 4;
                if (five && (byte_at(s, b + 16u + l % 32u + i) & bit)) nib += 16u;
                v[i] = d * (float)sc * (float)nib - dmin * (float)mn;
            }
            return;
        }
        case 14u: {  // Q6_K: ql, qh, 16 signed scales, d; two halves of 128 values
            const u32 b = base + col / 256u * 210u, j = col % 256u;
            const u32 hf = j / 128u, quarter = j % 128u / 32u, l = j % 32u;
            const float d = half_at(s, b + 208u);
            const float sc = signed_byte(byte_at(s, b + 192u + 8u * hf + l / 16u + 2u * quarter));
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const u32 low = byte_at(s, b + 64u * hf + l + i + 32u * (quarter % 2u));
                const u32 qh = byte_at(s, b + 128u + 32u * hf + l + i);
                const u32 nib = quarter >= 2u ? low >> 4 : low & 0xfu;
                const int q = (int)(nib | (((qh >> (2u * quarter)) & 3u) << 4)) - 32;
                v[i] = d * sc * (float)q;
            }
            return;
        }
        default:
#pragma unroll
            for (u32 i = 0; i < 8u; i++) v[i] = 0.0f;
    }
}

// W[r, c] alone (odd column counts, look-ups).
__device__ __forceinline__ float weight_at(const StoredW& s, u32 r, u32 c) {
    float v[8];
    if (s.format == 1u || s.format == 30u) {  // no block: read the one value
        const u32 row = s.ordered ? s.order[r] : r;
        const u32 at = row * s.row_bytes + 2u * c;
        const u32 h = byte_at(s, at) | (byte_at(s, at + 1u) << 8);
        return s.format == 1u ? half_bits(h) : __uint_as_float(h << 16);
    }
    decode8(s, r, c / 8u, v);
    return v[c % 8u];
}

// C[b] = A[b]·Wᵀ with W [n, k]: x over columns in blocks of 256, y over rows, z over batch.
extern "C" __global__ void stored_x_wt(float* c, const float* a, const u32* w, const u32* order,
                                       u32 m, u32 n, u32 k, u32 stride_a, u32 format,
                                       u32 row_bytes, u32 ordered) {
    const StoredW s = {w, order, format, row_bytes, ordered};
    const u32 col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y, batch = blockIdx.z;
    if (col >= n) return;
    const float* x = a + (size_t)batch * stride_a + (size_t)row * k;
    float acc = 0.0f, v[8];
    for (u32 g = 0; g < k / 8u; g++) {
        decode8(s, col, g, v);
#pragma unroll
        for (u32 i = 0; i < 8u; i++) acc = fmaf(x[8u * g + i], v[i], acc);
    }
    c[(size_t)batch * m * n + (size_t)row * n + col] = acc;
}

// C[b] = A[b]·W with W [k, n]: x over groups of eight columns in blocks of 256, y over rows.
extern "C" __global__ void stored_g_w(float* c, const float* a, const u32* w, const u32* order,
                                      u32 m, u32 n, u32 k, u32 stride_a, u32 format,
                                      u32 row_bytes, u32 ordered) {
    const StoredW s = {w, order, format, row_bytes, ordered};
    const u32 g = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y, batch = blockIdx.z;
    if (8u * g >= n) return;
    const float* x = a + (size_t)batch * stride_a + (size_t)row * k;
    float acc[8] = {}, v[8];
    for (u32 kk = 0; kk < k; kk++) {
        decode8(s, kk, g, v);
#pragma unroll
        for (u32 i = 0; i < 8u; i++) acc[i] = fmaf(x[kk], v[i], acc[i]);
    }
    float* out = c + (size_t)batch * m * n + (size_t)row * n + 8u * g;
#pragma unroll
    for (u32 i = 0; i < 8u; i++) out[i] = acc[i];
}

// out[i, :] = W[ids[i], :], `count` = ids · cols values.
extern "C" __global__ void stored_gather(float* out, const u32* w, const u32* order,
                                         const u32* ids, u32 count, u32 cols, u32 format,
                                         u32 row_bytes, u32 ordered) {
    const StoredW s = {w, order, format, row_bytes, ordered};
    const u32 i = flat_index();
    if (i >= count) return;
    out[i] = weight_at(s, ids[i / cols], i % cols);
}

// The whole matrix in f32, `count` = rows · cols values.
extern "C" __global__ void stored_decode(float* out, const u32* w, const u32* order, u32 count,
                                         u32 cols, u32 format, u32 row_bytes, u32 ordered) {
    const StoredW s = {w, order, format, row_bytes, ordered};
    const u32 i = flat_index();
    if (i >= count) return;
    out[i] = weight_at(s, i / cols, i % cols);
}
