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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;

@compute @workgroup_size(256)
fn attention_probs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    var lo = 0u;
    var vis = p.k_len;
    if p.causal_len != 0u {
        let end = row % p.causal_len + p.offset + 1u;
        vis = min(end, p.k_len);
        if p.window != 0u && end > p.window {
            lo = min(end - p.window, vis);
        }
    }
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
