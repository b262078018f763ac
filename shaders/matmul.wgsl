// The f32 operand B of the matrix products in `matmul_kernels.wgsl` (compiled together):
// activations, or weights decoded to f32. `stored_weight.wgsl` is the other operand.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,   // A stored [k, m]
    trans_b: u32,   // B stored [n, k]
    stride_a: u32,  // elements between batch entries of A (0: shared by every entry)
    stride_b: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k {
        return 0.0;
    }
    if p.trans_b == 1u {
        return b[base + col * p.k + kk];
    }
    return b[base + kk * p.n + col];
}
