// Rotary position embedding, rotate-half layout; `sign = -1` rotates back (the exact backward).
// One thread per rotated pair.

struct Params {
    pairs: u32,     // rows · head_dim/2
    len: u32,       // positions
    half: u32,      // head_dim / 2
    sign: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = flat_index(wid, nwg, lid);
    if t >= p.pairs {
        return;
    }
    let row = t / p.half;
    let i = t % p.half;
    let pos = row % p.len;
    let base = row * 2u * p.half;
    let c = cos_t[pos * p.half + i];
    let s = p.sign * sin_t[pos * p.half + i];
    let lo = x[base + i];
    let hi = x[base + i + p.half];
    out[base + i] = lo * c - hi * s;
    out[base + i + p.half] = hi * c + lo * s;
}
