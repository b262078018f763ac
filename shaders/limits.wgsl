// What `gradlens bench` measures a GPU's limits with: a streaming read, a copy, and chains of
// FMAs that touch no memory until one last write. None of these is used by an attribution.

struct Params {
    n: u32,           // floats to read or copy
    iterations: u32,  // fma_peak: rounds of its 8 chains
    x: f32,           // fma_peak: the chains' start
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;

// Grid-stride sum: each thread writes its partial sum, so the traffic is the read.
@compute @workgroup_size(256)
fn read_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    let threads = nwg.x * nwg.y * WG;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var j = i;
    while j + 3u * threads < p.n {
        s0 = s0 + a[j];
        s1 = s1 + a[j + threads];
        s2 = s2 + a[j + 2u * threads];
        s3 = s3 + a[j + 3u * threads];
        j = j + 4u * threads;
    }
    while j < p.n {
        s0 = s0 + a[j];
        j = j + threads;
    }
    out[i] = (s0 + s1) + (s2 + s3);
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i < p.n {
        out[i] = a[i];
    }
}

// `iterations` rounds of 8 independent FMA chains (16 flops a round per thread), bounded
// (x ← 0.999·x + 0.001 converges to 1).
@compute @workgroup_size(256)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    var v0 = p.x;
    var v1 = p.x + 0.125;
    var v2 = p.x + 0.25;
    var v3 = p.x + 0.375;
    var v4 = p.x + 0.5;
    var v5 = p.x + 0.625;
    var v6 = p.x + 0.75;
    var v7 = p.x + 0.875;
    for (var t = 0u; t < p.iterations; t = t + 1u) {
        v0 = fma(v0, 0.999, 0.001);
        v1 = fma(v1, 0.999, 0.001);
        v2 = fma(v2, 0.999, 0.001);
        v3 = fma(v3, 0.999, 0.001);
        v4 = fma(v4, 0.999, 0.001);
        v5 = fma(v5, 0.999, 0.001);
        v6 = fma(v6, 0.999, 0.001);
        v7 = fma(v7, 0.999, 0.001);
    }
    out[flat_index(wid, nwg, lid)] = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));
}
