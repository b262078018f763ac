// Row softmax with causal and sliding-window masks, its backward, and the softmax-pick of
// probability targets.
// One workgroup per row; statistics reduced in workgroup memory.

struct Params {
    rows: u32,
    cols: u32,
    causal_len: u32,  // 0: no mask; else rows are [.., q, k] blocks of this many queries
    offset: u32,      // cached keys before the block
    col: u32,         // picked column
    log_prob: u32,    // pick: 1 log-probability, 0 probability
    factor: f32,      // backward: multiplies the result
    window: u32,      // 0: none; else a query sees only its last `window` keys
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;

// The keys lo..hi that `row` sees.
fn visible(row: u32) -> vec2<u32> {
    if p.causal_len == 0u {
        return vec2<u32>(0u, p.cols);
    }
    let end = row % p.causal_len + p.offset + 1u;
    let hi = min(end, p.cols);
    var lo = 0u;
    if p.window != 0u && end > p.window {
        lo = min(end - p.window, hi);
    }
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let vis = visible(row);
    var m = NEG_INF;
    for (var j = vis.x + lid; j < vis.y; j += WG) {
        m = max(m, x[base + j]);
    }
    m = wg_max(m, lid);
    var s = 0.0;
    for (var j = vis.x + lid; j < vis.y; j += WG) {
        s += exp(x[base + j] - m);
    }
    s = wg_sum(s, lid);
    let inv = 1.0 / s;
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = select(0.0, exp(x[base + j] - m) * inv, j >= vis.x && j < vis.y);
    }
}

// factor · y ⊙ (g − Σ y g), with the probabilities y bound as x.
@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var d = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        d += x[base + j] * g[base + j];
    }
    d = wg_sum(d, lid);
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = p.factor * x[base + j] * (g[base + j] - d);
    }
}

// log Σ exp of a row.
fn log_sum_exp(base: u32, lid: u32) -> f32 {
    var m = NEG_INF;
    for (var j = lid; j < p.cols; j += WG) {
        m = max(m, x[base + j]);
    }
    m = wg_max(m, lid);
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += exp(x[base + j] - m);
    }
    s = wg_sum(s, lid);
    return m + log(s);
}

@compute @workgroup_size(256)
fn pick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let lp = x[base + p.col] - log_sum_exp(base, lid);
    if lid == 0u {
        out[row] = select(exp(lp), lp, p.log_prob == 1u);
    }
}

// d log p_t / d x_j = 1[j = t] − p_j; d p_t = p_t · d log p_t.
@compute @workgroup_size(256)
fn pick_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let lse = log_sum_exp(base, lid);
    var scale = g[row];
    if p.log_prob == 0u {
        scale = scale * exp(x[base + p.col] - lse);
    }
    for (var j = lid; j < p.cols; j += WG) {
        let onehot = select(0.0, 1.0, j == p.col);
        out[base + j] = scale * (onehot - exp(x[base + j] - lse));
    }
}
