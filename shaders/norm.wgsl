// LayerNorm and RMSNorm: forward, exact backward, and the LRP variants that hold the normaliser
// constant. One workgroup per row.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> xhat_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read> g: array<f32>;
@group(0) @binding(8) var<storage, read> xhat: array<f32>;
@group(0) @binding(9) var<storage, read> rstd: array<f32>;

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += x[base + j];
    }
    let mean = wg_sum(s, lid) / f32(p.cols);
    var v = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let d = x[base + j] - mean;
        v += d * d;
    }
    let r = inverseSqrt(wg_sum(v, lid) / f32(p.cols) + p.eps);
    for (var j = lid; j < p.cols; j += WG) {
        let xh = (x[base + j] - mean) * r;
        xhat_out[base + j] = xh;
        out[base + j] = xh * w[j] + bias[j];
    }
    if lid == 0u {
        rstd_out[row] = r;
    }
}

@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += x[base + j] * x[base + j];
    }
    let r = inverseSqrt(wg_sum(s, lid) / f32(p.cols) + p.eps);
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = w[j] * (x[base + j] * r);
    }
    if lid == 0u {
        rstd_out[row] = r;
    }
}

// ∂x = (1/σ)(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ w.
@compute @workgroup_size(256)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let gh = g[base + j] * w[j];
        sg += gh;
        sgx += gh * xhat[base + j];
    }
    let mg = wg_sum(sg, lid) / f32(p.cols);
    let mgx = wg_sum(sgx, lid) / f32(p.cols);
    let r = rstd[row];
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = r * (g[base + j] * w[j] - mg - xhat[base + j] * mgx);
    }
}

// ∂x = r(ĝ − x r² mean(ĝ ⊙ x)), r = 1/rms.
@compute @workgroup_size(256)
fn rms_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += g[base + j] * w[j] * x[base + j];
    }
    let m = wg_sum(s, lid) / f32(p.cols);
    let r = rstd[row];
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = r * (g[base + j] * w[j] - x[base + j] * r * r * m);
    }
}

// Normaliser held constant (LRP): (1/σ)(ĝ − mean ĝ).
@compute @workgroup_size(256)
fn layer_norm_const_backward(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += g[base + j] * w[j];
    }
    let mg = wg_sum(s, lid) / f32(p.cols);
    let r = rstd[row];
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = r * (g[base + j] * w[j] - mg);
    }
}

// Normaliser held constant (LRP): (1/rms) w ⊙ g. Elementwise, but kept beside its siblings.
@compute @workgroup_size(256)
fn rms_norm_const_backward(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let r = rstd[row];
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = r * w[j] * g[base + j];
    }
}
