// Integration-path kernels: every path point x′ + α_k (x − x′) built in one launch (the
// quadrature-weighted sum of the steps' gradients is a matmul, `ops::weighted_batch_sum`).

struct Params {
    n: u32,     // output length
    len: u32,   // length of one point (one row)
    _steps: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> baseline: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;

// out[k, j] = x′_j + α_k (x_j − x′_j), alphas bound as w.
@compute @workgroup_size(256)
fn interpolate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let j = i % p.len;
    let b = baseline[j];
    out[i] = b + w[i / p.len] * (x[j] - b);
}
