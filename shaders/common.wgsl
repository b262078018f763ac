// Prepended to every kernel file by the wgpu backend: launch geometry, workgroup reductions and
// the clamped transcendental functions shared by several op families.

const WG: u32 = 256u;

// A 1-D launch is spread over a 2-D grid because one dimension holds at most 65535 groups.
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Row kernels run one workgroup per row.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

var<workgroup> red: array<f32, 256>;

// Sum of `v` over the workgroup; every thread must call it (it synchronises).
fn wg_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

const NEG_INF: f32 = -3.402823e38;

// Clamped so that no intermediate overflows to inf (inf/inf would give NaN).
fn exp_c(x: f32) -> f32 {
    return exp(clamp(x, -87.0, 88.0));
}
