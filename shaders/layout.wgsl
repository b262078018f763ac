// Data movement: head permutes, grouped-query repeats, KV concatenation, embedding gathers,
// position selects, and the masked-mean pooling pair. One thread per output element.

struct Params {
    n: u32,     // output length
    d0: u32,    // meaning per kernel, named at each entry point
    d1: u32,
    d2: u32,
    d3: u32,
    d4: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;

// [a, b, c, d] -> [a, c, b, d]; d0..d3 = a, b, c, d.
@compute @workgroup_size(256)
fn permute_0213(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let b = p.d1;
    let c = p.d2;
    let d = p.d3;
    let j = i % d;
    let r = i / d;
    let ib = r % b;
    let ic = (r / b) % c;
    let ia = r / (b * c);
    out[i] = x[((ia * b + ib) * c + ic) * d + j];
}

// [b, h, l, d] -> [b, h·rep, l, d]; d0 = h, d1 = l·d, d2 = rep.
@compute @workgroup_size(256)
fn repeat_heads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let h = p.d0;
    let head = p.d1;
    let rep = p.d2;
    let r = i / head;
    let ib = r / (h * rep);
    let oh = r % (h * rep);
    out[i] = x[(ib * h + oh / rep) * head + i % head];
}

// Backward of repeat_heads: each group of rep heads summed; d0 = h, d1 = l·d, d2 = rep.
@compute @workgroup_size(256)
fn sum_head_groups(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let h = p.d0;
    let head = p.d1;
    let rep = p.d2;
    let r = i / head;
    let ib = r / h;
    let kh = r % h;
    var s = 0.0;
    for (var j = 0u; j < rep; j++) {
        s += x[(ib * h * rep + kh * rep + j) * head + i % head];
    }
    out[i] = s;
}

// [.., t1, d] ++ [.., t2, d] along the sequence; d0 = t1·d, d1 = t2·d.
@compute @workgroup_size(256)
fn concat_seq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let ta = p.d0;
    let tb = p.d1;
    let head = i / (ta + tb);
    let within = i % (ta + tb);
    if within < ta {
        out[i] = x[head * ta + within];
    } else {
        out[i] = y[head * tb + within - ta];
    }
}

// Rows `ids` of a table; d0 = cols.
@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let cols = p.d0;
    out[i] = x[ids[i / cols] * cols + i % cols];
}

// [b, l, d] -> [b, d] at position pos; d0 = l, d1 = d, d2 = pos.
@compute @workgroup_size(256)
fn select_position(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let l = p.d0;
    let d = p.d1;
    out[i] = x[((i / d) * l + p.d2) * d + i % d];
}

// Backward of select_position: [b, d] into zeros [b, l, d]; d0 = l, d1 = d, d2 = pos.
@compute @workgroup_size(256)
fn scatter_position(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let l = p.d0;
    let d = p.d1;
    let r = i / d;
    out[i] = select(0.0, x[(r / l) * d + i % d], r % l == p.d2);
}

// Σ_l w_l x[b, l, :]; d0 = l, d1 = d.
@compute @workgroup_size(256)
fn weighted_seq_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let l = p.d0;
    let d = p.d1;
    let ib = i / d;
    var s = 0.0;
    for (var il = 0u; il < l; il++) {
        s += w[il] * x[(ib * l + il) * d + i % d];
    }
    out[i] = s;
}

// Backward of weighted_seq_sum: out[b, l, :] = w_l g[b, :]; d0 = l, d1 = d.
@compute @workgroup_size(256)
fn broadcast_seq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let l = p.d0;
    let d = p.d1;
    let r = i / d;
    out[i] = w[r % l] * x[(r / l) * d + i % d];
}
