// Local rules of the LRP and DeepLIFT rule sets. DeepLIFT batches are [inputs; references]:
// only the input half carries multipliers, the reference half gets 0.

struct Params {
    n: u32,         // stabilized_ratio: elements; rank1: rows of one half
    x_cols: u32,
    y_cols: u32,
    eps: f32,
    causal_len: u32, // rank1: 0 no mask, else the causal block length
    offset: u32,
    window: u32,     // rank1: 0 no window, else a query sees only its last `window` keys
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read> exact: array<f32>;

// g ⊙ num / (den + ε·sign den), sign 0 counted as +; num = a, den = b.
@compute @workgroup_size(256)
fn stabilized_ratio(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let d = b[i];
    let stab = select(d - p.eps, d + p.eps, d >= 0.0);
    out[i] = g[i] * a[i] / stab;
}

// Row-wise rank-one rescale of y = f(x) (x = a, y = b): Δx (Δy · g) / |Δx|² over the visible
// entries, the exact gradient where |Δx|² < 1e-12. One workgroup per row of the input half.
@compute @workgroup_size(256)
fn rank1_rescale_halves(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.n {
        return;
    }
    let hx = p.n * p.x_cols;
    let hy = p.n * p.y_cols;
    let xb = row * p.x_cols;
    let yb = row * p.y_cols;
    var lo = 0u;
    var vis = p.x_cols;
    if p.causal_len != 0u {
        let end = row % p.causal_len + p.offset + 1u;
        vis = min(end, p.x_cols);
        if p.window != 0u && end > p.window {
            lo = min(end - p.window, vis);
        }
    }
    var n2 = 0.0;
    for (var j = lo + lid; j < vis; j += WG) {
        let d = a[xb + j] - a[hx + xb + j];
        n2 += d * d;
    }
    n2 = wg_sum(n2, lid);
    var dyg = 0.0;
    for (var j = lid; j < p.y_cols; j += WG) {
        dyg += (b[yb + j] - b[hy + yb + j]) * g[yb + j];
    }
    dyg = wg_sum(dyg, lid);
    for (var j = lid; j < p.x_cols; j += WG) {
        var v = 0.0;
        if n2 < 1e-12 {
            v = exact[xb + j];
        } else if j >= lo && j < vis {
            v = (a[xb + j] - a[hx + xb + j]) * dyg / n2;
        }
        out[xb + j] = v;
        out[hx + xb + j] = 0.0;
    }
}
