// Batched C[b] = op(A[b]) · op(B[b]), compiled after the file that defines B: the f32 operand
// (`matmul.wgsl`) or a weight in its stored format (`stored_weight.wgsl`). That file declares
// `p` (m, n, k, trans_a, trans_b, stride_a, stride_b), `c`, `a` and `load_b(base, kk, col)`.
//
// `matmul`: 64×64 output tiles staged through workgroup memory, each of
// the 256 threads accumulating a 4×4 block in registers. Shapes need not be multiples of the
// tile: out-of-range loads read 0 and out-of-range stores are skipped.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k {
        return 0.0;
    }
    if p.trans_a == 1u {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    let at = base + row * p.n + col;
    if col < p.n {
        c[at] = v.x;
    }
    if col + 1u < p.n {
        c[at + 1u] = v.y;
    }
    if col + 2u < p.n {
        c[at + 2u] = v.z;
    }
    if col + 3u < p.n {
        c[at + 3u] = v.w;
    }
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let batch = wid.z;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let base_a = batch * p.stride_a;
    let base_b = batch * p.stride_b;
    // Four rows of four columns each, in vectors: no dynamically indexed private arrays, which
    // some drivers (lavapipe among them) spill to memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let ty = lid3.y * 4u;
    let tx = lid3.x * 4u;
    let tiles = (p.k + TK - 1u) / TK;
    for (var t = 0u; t < tiles; t++) {
        let k0 = t * TK;
        // 1024 values of each tile, 4 per thread.
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            let kk = e / TM;
            let mm = e % TM;
            a_tile[e] = load_a(base_a, row0 + mm, k0 + kk);
            b_tile[e] = load_b(base_b, k0 + kk, col0 + mm);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ab = kk * TM + ty;
            let bb = kk * TN + tx;
            let av = vec4<f32>(a_tile[ab], a_tile[ab + 1u], a_tile[ab + 2u], a_tile[ab + 3u]);
            let bv = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let base_c = batch * p.m * p.n;
    store_row(base_c, row0 + ty, col0 + tx, acc0);
    store_row(base_c, row0 + ty + 1u, col0 + tx, acc1);
    store_row(base_c, row0 + ty + 2u, col0 + tx, acc2);
    store_row(base_c, row0 + ty + 3u, col0 + tx, acc3);
}

// One thread per output, 64 columns of one row per workgroup: for a few rows (a GEMV such as
// the LM head) and for software adapters.
@compute @workgroup_size(64)
fn matmul_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = wid.x * 64u + lid;
    let row = wid.y;
    let batch = wid.z;
    if col >= p.n {
        return;
    }
    let base_a = batch * p.stride_a;
    let base_b = batch * p.stride_b;
    var s = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        s = fma(load_a(base_a, row, kk), load_b(base_b, kk, col), s);
    }
    c[batch * p.m * p.n + row * p.n + col] = s;
}
