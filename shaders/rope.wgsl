// Rotary position embedding, rotate-half layout; `sign = -1` rotates back (the exact backward).
// The first 2·rot dimensions of each head rotate (rot = the tables' width: head/2, or fewer for
// a partial rotary factor), the rest pass through. One thread per pair of a head's values.

struct Params {
    pairs: u32,     // rows · head_dim/2
    len: u32,       // positions
    half: u32,      // head_dim / 2
    sign: f32,
    rot: u32,       // the rotated part's half
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
    if i >= p.rot { // two values of the part that does not rotate
        let at = base + 2u * p.rot + 2u * (i - p.rot);
        out[at] = x[at];
        out[at + 1u] = x[at + 1u];
        return;
    }
    let c = cos_t[pos * p.rot + i];
    let s = p.sign * sin_t[pos * p.rot + i];
    let lo = x[base + i];
    let hi = x[base + i + p.rot];
    out[base + i] = lo * c - hi * s;
    out[base + i + p.rot] = hi * c + lo * s;
}
