// Cosine similarity of each row with a constant vector (embedding targets), its exact backward,
// and the LRP variant with 1/|x| held constant. One workgroup per row.

struct Params {
    rows: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;

struct Dots {
    xc: f32,
    nx: f32,
    nc: f32,
}

fn dots(base: u32, lid: u32) -> Dots {
    var xc = 0.0;
    var xx = 0.0;
    var cc = 0.0;
    for (var j = lid; j < p.d; j += WG) {
        let a = x[base + j];
        let b = c[j];
        xc += a * b;
        xx += a * a;
        cc += b * b;
    }
    return Dots(wg_sum(xc, lid), sqrt(wg_sum(xx, lid)), sqrt(wg_sum(cc, lid)));
}

@compute @workgroup_size(256)
fn cosine_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let s = dots(row * p.d, lid);
    if lid == 0u {
        out[row] = s.xc / max(s.nx * s.nc, 1e-12);
    }
}

// ∂cos/∂x = c/(|x||c|) − cos · x/|x|².
@compute @workgroup_size(256)
fn cosine_rows_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.d;
    let s = dots(base, lid);
    let nx = max(s.nx, 1e-12);
    let nc = max(s.nc, 1e-12);
    let cosv = s.xc / (nx * nc);
    for (var j = lid; j < p.d; j += WG) {
        out[base + j] = g[row] * (c[j] / (nx * nc) - cosv * x[base + j] / (nx * nx));
    }
}

// g ĉ / |x| with the norms held constant.
@compute @workgroup_size(256)
fn cosine_const_norm_backward(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.d;
    let s = dots(base, lid);
    let scale = g[row] / (max(s.nc, 1e-12) * max(s.nx, 1e-12));
    for (var j = lid; j < p.d; j += WG) {
        out[base + j] = scale * c[j];
    }
}
