// Fused attention probabilities softmax(scale · Q Kᵀ) under a causal (and sliding-window) mask:
// one workgroup per query row computes the row's scores straight into the output, then
// normalises it in place, so the raw scores never make a round trip through a separate buffer.

struct Params {
    rows: u32,        // batch · q_len
    q_len: u32,
    k_len: u32,
    head_dim: u32,
    causal_len: u32,  // 0: no mask; else query i sees keys j <= i % causal_len + offset
    offset: u32,
    scale: f32,
    window: u32,      // 0: none; else a query sees only its last `window` keys
    share_q: f32,     // the backward's share of each input gradient (0: not computed)
    share_k: f32,
    share_v: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> out2: array<f32>;

// The keys [x, y) that query `row` sees.
fn visible_keys(row: u32) -> vec2<u32> {
    var lo = 0u;
    var hi = p.k_len;
    if p.causal_len != 0u {
        let end = row % p.causal_len + p.offset + 1u;
        hi = min(end, p.k_len);
        if p.window != 0u && end > p.window {
            lo = min(end - p.window, hi);
        }
    }
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(256)
fn attention_probs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let keys = visible_keys(row);
    let lo = keys.x;
    let vis = keys.y;
    let base = row * p.k_len;
    let qb = row * p.head_dim;
    let kb = (row / p.q_len) * p.k_len * p.head_dim;
    // One key per thread: its scaled score, and the running maximum.
    var m = NEG_INF;
    for (var j = lo + lid; j < vis; j += WG) {
        let kr = kb + j * p.head_dim;
        var s = 0.0;
        for (var t = 0u; t < p.head_dim; t++) {
            s += q[qb + t] * k[kr + t];
        }
        s *= p.scale;
        out[base + j] = s;
        m = max(m, s);
    }
    m = wg_max(m, lid);
    // Each thread reads back only the entries it wrote, so no barrier is needed in between.
    var sum = 0.0;
    for (var j = lo + lid; j < vis; j += WG) {
        let e = exp(out[base + j] - m);
        out[base + j] = e;
        sum += e;
    }
    sum = wg_sum(sum, lid);
    let inv = 1.0 / sum;
    for (var j = lid; j < p.k_len; j += WG) {
        out[base + j] = select(0.0, out[base + j] * inv, j >= lo && j < vis);
    }
}

// Fused attention softmax(scale · Q Kᵀ) V that never writes the probabilities (FlashAttention's
// online softmax, one query row per workgroup): keys come in tiles of 256, one per thread, and
// the row's running maximum m, running sum l and context Σ_j e^{s_j − m} v_j are rescaled as the
// maximum grows. Each thread holds the context for the head-dimension entries d = lid + 256 r.
// The backward recomputes the same tiles: `attention_backward_query` gives ∂Q and each row's
// (m, 1/l, Σ_j p_j g·v_j), from which `attention_backward_key`, one key row per workgroup, gives
// ∂K and ∂V without atomics. Memory is linear in the length.

const MAX_HEAD_DIM: u32 = 1024u;
const PER_THREAD: u32 = 4u;  // MAX_HEAD_DIM / WG

var<workgroup> row_a: array<f32, 1024>;  // the staged query (or key) row
var<workgroup> row_b: array<f32, 1024>;  // the staged gradient (or value) row
var<workgroup> tile_a: array<f32, 256>;  // a tile's probabilities
var<workgroup> tile_b: array<f32, 256>;  // a tile's score gradients

struct OnlineSoftmax {
    m: f32,
    l: f32,
}

// row_a · k[at..at + head_dim]
fn dot_key(at: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        s += row_a[d] * k[at + d];
    }
    return s;
}

// The online softmax over keys lo..hi (of the batch whose keys start at `kb`) of the query
// staged in row_a: returns (m, l) and, `with_values`, leaves Σ_j e^{s_j − m} v_j in `acc`.
fn online_softmax(acc: ptr<function, array<f32, 4>>, kb: u32, lo: u32, hi: u32, lid: u32,
                  with_values: bool) -> OnlineSoftmax {
    var m = NEG_INF;
    var l = 0.0;
    for (var j0 = lo; j0 < hi; j0 += WG) {
        let n = min(WG, hi - j0);
        var s = NEG_INF;
        if lid < n {
            s = dot_key(kb + (j0 + lid) * p.head_dim) * p.scale;
        }
        let m_new = max(m, wg_max(s, lid));
        let rescale = exp(m - m_new);
        var e = 0.0;
        if lid < n {
            e = exp(s - m_new);
        }
        tile_a[lid] = e;
        l = l * rescale + wg_sum(e, lid);  // its barriers publish tile_a
        m = m_new;
        for (var r = 0u; with_values && r < PER_THREAD; r++) {
            let d = lid + r * WG;
            if d < p.head_dim {
                var a = (*acc)[r] * rescale;
                for (var t = 0u; t < n; t++) {
                    a += tile_a[t] * v[kb + (j0 + t) * p.head_dim + d];
                }
                (*acc)[r] = a;
            }
        }
        workgroupBarrier();  // the next tile overwrites tile_a
    }
    return OnlineSoftmax(m, l);
}

@compute @workgroup_size(256)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let keys = visible_keys(row);
    let kb = (row / p.q_len) * p.k_len * p.head_dim;
    for (var d = lid; d < p.head_dim; d += WG) {
        row_a[d] = q[row * p.head_dim + d];
    }
    workgroupBarrier();
    var acc: array<f32, 4>;
    let s = online_softmax(&acc, kb, keys.x, keys.y, lid, true);
    let inv = select(0.0, 1.0 / s.l, s.l > 0.0);
    for (var r = 0u; r < PER_THREAD; r++) {
        let d = lid + r * WG;
        if d < p.head_dim {
            out[row * p.head_dim + d] = acc[r] * inv;
        }
    }
}

// ∂Q = share_q · scale · Σ_j p_j (dP_j − D) k_j for one query row (into `out`), with
// dP_j = g·v_j and D = Σ_j p_j dP_j, and the row's statistics (m, 1/l, D) in `stats` for the
// key pass. D is summed from the very p_j and dP_j the gradients use (not as g·o), so the
// shares cancel as the softmax's Jacobian does and a small gradient is not swamped by D's
// rounding; ∂Q is accumulated as Σ p_j dP_j k_j − D Σ p_j k_j, reading the keys once.
@compute @workgroup_size(256)
fn attention_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let keys = visible_keys(row);
    let kb = (row / p.q_len) * p.k_len * p.head_dim;
    for (var d = lid; d < p.head_dim; d += WG) {
        row_a[d] = q[row * p.head_dim + d];
        row_b[d] = g[row * p.head_dim + d];
    }
    workgroupBarrier();
    var unused: array<f32, 4>;
    let s = online_softmax(&unused, kb, keys.x, keys.y, lid, false);
    let inv = select(0.0, 1.0 / s.l, s.l > 0.0);
    var pdp: array<f32, 4>;  // Σ p_j dP_j k_j
    var pk: array<f32, 4>;   // Σ p_j k_j
    var d_part = 0.0;
    for (var j0 = keys.x; j0 < keys.y; j0 += WG) {
        let n = min(WG, keys.y - j0);
        if lid < n {
            let at = kb + (j0 + lid) * p.head_dim;
            var dot_v = 0.0;
            for (var d = 0u; d < p.head_dim; d++) {
                dot_v += row_b[d] * v[at + d];
            }
            let prob = exp(dot_key(at) * p.scale - s.m) * inv;
            tile_a[lid] = prob;
            tile_b[lid] = prob * dot_v;
            d_part += prob * dot_v;
        }
        workgroupBarrier();
        if p.share_q != 0.0 {
            for (var r = 0u; r < PER_THREAD; r++) {
                let d = lid + r * WG;
                if d < p.head_dim {
                    for (var t = 0u; t < n; t++) {
                        let kd = k[kb + (j0 + t) * p.head_dim + d];
                        pdp[r] += tile_b[t] * kd;
                        pk[r] += tile_a[t] * kd;
                    }
                }
            }
        }
        workgroupBarrier();
    }
    let dsum = wg_sum(d_part, lid);
    if lid == 0u {
        stats[row * 3u] = s.m;
        stats[row * 3u + 1u] = inv;
        stats[row * 3u + 2u] = dsum;
    }
    if p.share_q == 0.0 {
        return;
    }
    for (var r = 0u; r < PER_THREAD; r++) {
        let d = lid + r * WG;
        if d < p.head_dim {
            out[row * p.head_dim + d] = p.scale * (pdp[r] - dsum * pk[r]) * p.share_q;
        }
    }
}

// ∂K (into `out`) and ∂V (into `out2`) for one key row (p.rows counts key rows here) from the
// queries that see it: ∂V = share_v · Σ_i p_i g_i, ∂K = share_k · scale · Σ_i p_i (g_i·v −
// D_i) q_i, with p_i recomputed from the query pass's statistics (its dot products in the same
// order, so the same bits).
@compute @workgroup_size(256)
fn attention_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let key_row = group_index(wid, nwg);
    if key_row >= p.rows {
        return;
    }
    let batch = key_row / p.k_len;
    let j = key_row % p.k_len;
    for (var d = lid; d < p.head_dim; d += WG) {
        row_a[d] = k[key_row * p.head_dim + d];
        row_b[d] = v[key_row * p.head_dim + d];
    }
    workgroupBarrier();
    // The queries that can see key j: all of them, narrowed when the mask's blocks are the
    // queries themselves (each query is still checked below).
    var i_lo = 0u;
    var i_hi = p.q_len;
    if p.causal_len == p.q_len {
        i_lo = min(select(0u, j - p.offset, j > p.offset), p.q_len);
        if p.window != 0u {
            i_hi = select(0u, min(p.q_len, j + p.window - p.offset), j + p.window > p.offset);
        }
    }
    var grad_k: array<f32, 4>;
    var grad_v: array<f32, 4>;
    for (var i0 = i_lo; i0 < i_hi; i0 += WG) {
        let n = min(WG, i_hi - i0);
        if lid < n {
            let row = batch * p.q_len + i0 + lid;
            let keys = visible_keys(row);
            var prob = 0.0;
            var score_grad = 0.0;
            if j >= keys.x && j < keys.y {
                var dot_k = 0.0;
                var dot_v = 0.0;
                for (var d = 0u; d < p.head_dim; d++) {
                    dot_k += q[row * p.head_dim + d] * row_a[d];
                    dot_v += g[row * p.head_dim + d] * row_b[d];
                }
                prob = exp(dot_k * p.scale - stats[row * 3u]) * stats[row * 3u + 1u];
                score_grad = p.scale * prob * (dot_v - stats[row * 3u + 2u]);
            }
            tile_a[lid] = prob;
            tile_b[lid] = score_grad;
        }
        workgroupBarrier();
        for (var r = 0u; r < PER_THREAD; r++) {
            let d = lid + r * WG;
            if d < p.head_dim {
                for (var t = 0u; t < n; t++) {
                    let at = (batch * p.q_len + i0 + t) * p.head_dim + d;
                    grad_v[r] += tile_a[t] * g[at];
                    grad_k[r] += tile_b[t] * q[at];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < PER_THREAD; r++) {
        let d = lid + r * WG;
        if d < p.head_dim {
            out[key_row * p.head_dim + d] = grad_k[r] * p.share_k;
            out2[key_row * p.head_dim + d] = grad_v[r] * p.share_v;
        }
    }
}
