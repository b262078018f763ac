// A weight matrix [rows, cols] in its file's format (f16, bf16, GGUF Q8_0, Q4_0, Q4_1, Q5_0,
// Q5_1, Q4_K, Q5_K, Q6_K), as the file's bytes in u32 words: the operand B of the matrix products in
// `matmul_kernels.wgsl` (compiled after this file), and the source of the embedding look-up
// and of the whole-matrix decode below. Each value is decoded where it is read, in registers,
// with the CPU decoder's operations (`src/gguf/dequant.rs`), so it is the f32 decode's value
// up to a fused multiply-add the compiler may form.
//
// Matrix row r is stored row order[r] when `ordered` (llama.cpp's interleaved Q/K rows); every
// stored row is `row_bytes` bytes of whole blocks. No shader-f16: halves come from u32 words.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,   // A stored [k, m]
    trans_b: u32,   // 1: B = Wᵀ (x·Wᵀ, W is [n, k]); 0: B = W (g·W, W is [k, n])
    stride_a: u32,  // elements between batch entries of A (0: shared by every entry)
    stride_b: u32,  // always 0: one weight for every batch entry
    format: u32,    // the GGML type id
    row_bytes: u32,
    ordered: u32,
    cols: u32,      // the weight's columns (gather and decode)
    count: u32,     // values to write (gather and decode)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;

fn byte_at(i: u32) -> u32 {
    return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn half_at(i: u32) -> f32 {
    return unpack2x16float(byte_at(i) | (byte_at(i + 1u) << 8u)).x;
}

// A byte as a signed 8-bit integer.
fn signed(b: u32) -> f32 {
    return f32(bitcast<i32>(b << 24u) >> 24u);
}

// The 6-bit scale (x) and min (y) of sub-block j (0..8) of a Q4_K/Q5_K block, whose 12 packed
// bytes start at q.
fn scale_min_k4(j: u32, q: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(byte_at(q + j) & 63u, byte_at(q + j + 4u) & 63u);
    }
    return vec2<u32>(
        (byte_at(q + j + 4u) & 0xfu) | ((byte_at(q + j - 4u) >> 6u) << 4u),
        (byte_at(q + j + 4u) >> 4u) | ((byte_at(q + j) >> 6u) << 4u),
    );
}

// W[r, col], decoded.
fn weight(r: u32, col: u32) -> f32 {
    var row = r;
    if p.ordered == 1u {
        row = order[r];
    }
    let base = row * p.row_bytes;
    switch p.format {
        case 1u: { // F16
            return half_at(base + 2u * col);
        }
        case 30u: { // BF16
            let at = base + 2u * col;
            return bitcast<f32>((byte_at(at) | (byte_at(at + 1u) << 8u)) << 16u);
        }
        case 8u: { // Q8_0: d, then 32 signed bytes
            let b = base + (col / 32u) * 34u;
            return half_at(b) * signed(byte_at(b + 2u + col % 32u));
        }
        case 2u: { // Q4_0: d, then 16 bytes of two nibbles (low: values 0..16)
            let b = base + (col / 32u) * 18u;
            let j = col % 32u;
            let q = byte_at(b + 2u + j % 16u);
            let nib = select(q >> 4u, q & 0xfu, j < 16u);
            return half_at(b) * f32(i32(nib) - 8);
        }
        case 3u: { // Q4_1: d, m, then 16 bytes of nibbles
            let b = base + (col / 32u) * 20u;
            let j = col % 32u;
            let q = byte_at(b + 4u + j % 16u);
            let nib = select(q >> 4u, q & 0xfu, j < 16u);
            return half_at(b) * f32(nib) + half_at(b + 2u);
        }
        case 6u, 7u: { // Q5_0 (d, 32 fifth bits, 16 bytes of nibbles; d·(q − 16)), Q5_1 (d, m, …; d·q + m)
            let one = p.format == 7u;
            let size = select(22u, 24u, one);
            let b = base + (col / 32u) * size;
            let j = col % 32u;
            let q = byte_at(b + size - 16u + j % 16u);
            let hi = ((byte_at(b + size - 20u + j / 8u) >> (j % 8u)) & 1u) << 4u;
            let v = select(q >> 4u, q & 0xfu, j < 16u) | hi;
            if one {
                return half_at(b) * f32(v) + half_at(b + 2u);
            }
            return half_at(b) * f32(i32(v) - 16);
        }
        case 12u: { // Q4_K: d, dmin, 12 scale bytes, 128 bytes of nibbles per 256 values
            let b = base + (col / 256u) * 144u;
            let j = col % 256u;
            let chunk = j / 64u;
            let l = j % 64u;
            let sm = scale_min_k4(2u * chunk + l / 32u, b + 4u);
            let q = byte_at(b + 16u + 32u * chunk + l % 32u);
            let nib = select(q >> 4u, q & 0xfu, l < 32u);
            return half_at(b) * f32(sm.x) * f32(nib) - half_at(b + 2u) * f32(sm.y);
        }
        case 13u: { // Q5_K: as Q4_K, with a fifth bit per value in 32 bytes of qh
            let b = base + (col / 256u) * 176u;
            let j = col % 256u;
            let chunk = j / 64u;
            let l = j % 64u;
            let sm = scale_min_k4(2u * chunk + l / 32u, b + 4u);
            let q = byte_at(b + 48u + 32u * chunk + l % 32u);
            let bit = select(2u, 1u, l < 32u) << (2u * chunk);
            let hi = select(0u, 16u, (byte_at(b + 16u + l % 32u) & bit) != 0u);
            let nib = select(q >> 4u, q & 0xfu, l < 32u) + hi;
            return half_at(b) * f32(sm.x) * f32(nib) - half_at(b + 2u) * f32(sm.y);
        }
        case 14u: { // Q6_K: 128 bytes ql, 64 bytes qh, 16 signed scales, d; two halves of 128
            let b = base + (col / 256u) * 210u;
            let j = col % 256u;
            let hf = j / 128u;
            let quarter = (j % 128u) / 32u;
            let l = j % 32u;
            let ql = b + 64u * hf;
            let qh = byte_at(b + 128u + 32u * hf + l);
            let low = byte_at(ql + l + 32u * (quarter % 2u));
            let nib = select(low & 0xfu, low >> 4u, quarter >= 2u);
            let q = i32(nib | (((qh >> (2u * quarter)) & 3u) << 4u)) - 32;
            let sc = signed(byte_at(b + 192u + 8u * hf + l / 16u + 2u * quarter));
            return half_at(b + 208u) * sc * f32(q);
        }
        default: {
            return 0.0;
        }
    }
}

// Eight consecutive values W[r, 8g..8g + 8] (the weight's columns a multiple of 8, so they lie
// in one block): each block's scales are read once for the eight, and the quants eight bytes
// at a time.
struct Eight {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// Bytes at..at + 8 as two little-endian words (any alignment; the upload pads the last word).
fn bytes8(at: u32) -> vec2<u32> {
    let i = at >> 2u;
    let sh = (at & 3u) * 8u;
    if sh == 0u {
        return vec2<u32>(w[i], w[i + 1u]);
    }
    return vec2<u32>((w[i] >> sh) | (w[i + 1u] << (32u - sh)),
                     (w[i + 1u] >> sh) | (w[i + 2u] << (32u - sh)));
}

fn split(v: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

fn signed4(b: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(b << vec4<u32>(24u)) >> vec4<u32>(24u));
}

fn nibbles(b: vec4<u32>, low: bool) -> vec4<u32> {
    return select(b >> vec4<u32>(4u), b & vec4<u32>(0xfu), low);
}

fn halves4(w0: u32, w1: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w0), unpack2x16float(w1));
}

fn bf16x4(w0: u32, w1: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(w0 << 16u, w0 & 0xffff0000u, w1 << 16u, w1 & 0xffff0000u));
}

fn decode8(r: u32, g: u32) -> Eight {
    var row = r;
    if p.ordered == 1u {
        row = order[r];
    }
    let base = row * p.row_bytes;
    let col = 8u * g;
    switch p.format {
        case 1u, 30u: { // F16, BF16: 16-byte aligned, as rows are whole groups of 8
            let i = (base + 2u * col) >> 2u;
            if p.format == 1u {
                return Eight(halves4(w[i], w[i + 1u]), halves4(w[i + 2u], w[i + 3u]));
            }
            return Eight(bf16x4(w[i], w[i + 1u]), bf16x4(w[i + 2u], w[i + 3u]));
        }
        case 8u: { // Q8_0
            let b = base + (col / 32u) * 34u;
            let d = half_at(b);
            let q = bytes8(b + 2u + col % 32u);
            return Eight(d * signed4(split(q.x)), d * signed4(split(q.y)));
        }
        case 2u, 3u: { // Q4_0, Q4_1
            let size = select(18u, 20u, p.format == 3u);
            let b = base + (col / 32u) * size;
            let j = col % 32u;
            let q = bytes8(b + size - 16u + j % 16u);
            let d = half_at(b);
            let lo = vec4<f32>(nibbles(split(q.x), j < 16u));
            let hi = vec4<f32>(nibbles(split(q.y), j < 16u));
            if p.format == 2u {
                return Eight(d * (lo - 8.0), d * (hi - 8.0));
            }
            let m = half_at(b + 2u);
            return Eight(d * lo + m, d * hi + m);
        }
        case 6u, 7u: { // Q5_0, Q5_1: the eight values' fifth bits are one byte of qh
            let one = p.format == 7u;
            let size = select(22u, 24u, one);
            let b = base + (col / 32u) * size;
            let j = col % 32u;
            let q = bytes8(b + size - 16u + j % 16u);
            let qh = vec4<u32>(byte_at(b + size - 20u + j / 8u));
            let lo = nibbles(split(q.x), j < 16u) | (((qh >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u));
            let hi = nibbles(split(q.y), j < 16u) | (((qh >> vec4<u32>(4u, 5u, 6u, 7u)) & vec4<u32>(1u)) << vec4<u32>(4u));
            let d = half_at(b);
            if one {
                let m = half_at(b + 2u);
                return Eight(d * vec4<f32>(lo) + m, d * vec4<f32>(hi) + m);
            }
            return Eight(d * (vec4<f32>(lo) - 16.0), d * (vec4<f32>(hi) - 16.0));
        }
        case 12u, 13u: { // Q4_K, Q5_K
            let five = p.format == 13u;
            let b = base + (col / 256u) * select(144u, 176u, five);
            let j = col % 256u;
            let chunk = j / 64u;
            let l = j % 64u;
            let sm = scale_min_k4(2u * chunk + l / 32u, b + 4u);
            let q = bytes8(b + select(16u, 48u, five) + 32u * chunk + l % 32u);
            var lo = nibbles(split(q.x), l < 32u);
            var hi = nibbles(split(q.y), l < 32u);
            if five {
                let qh = bytes8(b + 16u + l % 32u);
                let bit = vec4<u32>(select(2u, 1u, l < 32u) << (2u * chunk));
                lo += select(vec4<u32>(0u), vec4<u32>(16u), (split(qh.x) & bit) != vec4<u32>(0u));
                hi += select(vec4<u32>(0u), vec4<u32>(16u), (split(qh.y) & bit) != vec4<u32>(0u));
            }
            let ds = half_at(b) * f32(sm.x);
            let dm = half_at(b + 2u) * f32(sm.y);
            return Eight(ds * vec4<f32>(lo) - dm, ds * vec4<f32>(hi) - dm);
        }
        case 14u: { // Q6_K
            let b = base + (col / 256u) * 210u;
            let j = col % 256u;
            let hf = j / 128u;
            let quarter = (j % 128u) / 32u;
            let l = j % 32u;
            let ql = bytes8(b + 64u * hf + l + 32u * (quarter % 2u));
            let qh = bytes8(b + 128u + 32u * hf + l);
            let shift = vec4<u32>(2u * quarter);
            let sc = signed(byte_at(b + 192u + 8u * hf + l / 16u + 2u * quarter));
            let ds = half_at(b + 208u) * sc;
            let qlo = nibbles(split(ql.x), quarter < 2u) | (((split(qh.x) >> shift) & vec4<u32>(3u)) << vec4<u32>(4u));
            let qhi = nibbles(split(ql.y), quarter < 2u) | (((split(qh.y) >> shift) & vec4<u32>(3u)) << vec4<u32>(4u));
            return Eight(ds * (vec4<f32>(qlo) - 32.0), ds * (vec4<f32>(qhi) - 32.0));
        }
        default: {
            return Eight(vec4<f32>(0.0), vec4<f32>(0.0));
        }
    }
}

// x·Wᵀ, one thread per output, 64 columns of one row per workgroup: C[row, n] is
// Σ_g A[row, 8g..8g + 8] · W[n, 8g..8g + 8] (W's columns a multiple of 8).
@compute @workgroup_size(64)
fn stored_x_wt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = wid.x * 64u + lid;
    let row = wid.y;
    let batch = wid.z;
    if col >= p.n {
        return;
    }
    let at = batch * p.stride_a + row * p.k;
    var s = 0.0;
    for (var g = 0u; g < p.k / 8u; g++) {
        let e = decode8(col, g);
        let x = at + 8u * g;
        s += dot(vec4<f32>(a[x], a[x + 1u], a[x + 2u], a[x + 3u]), e.lo)
           + dot(vec4<f32>(a[x + 4u], a[x + 5u], a[x + 6u], a[x + 7u]), e.hi);
    }
    c[batch * p.m * p.n + row * p.n + col] = s;
}

// g·W, one thread per eight outputs of a row: C[row, 8g..8g + 8] is Σ_kk A[row, kk] W[kk, 8g..].
@compute @workgroup_size(64)
fn stored_g_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x * 64u + lid;
    let row = wid.y;
    let batch = wid.z;
    if 8u * g >= p.n {
        return;
    }
    let at = batch * p.stride_a + row * p.k;
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let e = decode8(kk, g);
        let x = vec4<f32>(a[at + kk]);
        lo = fma(x, e.lo, lo);
        hi = fma(x, e.hi, hi);
    }
    let o = batch * p.m * p.n + row * p.n + 8u * g;
    c[o] = lo.x;
    c[o + 1u] = lo.y;
    c[o + 2u] = lo.z;
    c[o + 3u] = lo.w;
    c[o + 4u] = hi.x;
    c[o + 5u] = hi.y;
    c[o + 6u] = hi.z;
    c[o + 7u] = hi.w;
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k {
        return 0.0;
    }
    if p.trans_b == 1u {
        return weight(col, kk);
    }
    return weight(kk, col);
}

// out[i, :] = W[ids[i], :]: the embedding look-up, `count` = ids · cols values.
@compute @workgroup_size(256)
fn stored_gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.count {
        return;
    }
    c[i] = weight(ids[i / p.cols], i % p.cols);
}

// The whole matrix in f32, for the few ops without a stored-format kernel (LRP-γ's W⁺).
@compute @workgroup_size(256)
fn stored_decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.count {
        return;
    }
    c[i] = weight(i / p.cols, i % p.cols);
}
