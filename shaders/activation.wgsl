// Pointwise activations: forward, exact backward, guided backprop, and DeepLIFT's rescale rule.
// Codes: 0 GELU (erf), 1 GELU (tanh), 2 SiLU, 3 tanh, 4 ReLU.

struct Params {
    n: u32,     // elements (rescale_halves: elements of one half)
    code: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> y: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978846;
const INV_SQRT_2: f32 = 0.70710678;
const INV_SQRT_2PI: f32 = 0.3989423;

fn tanh_c(v: f32) -> f32 {
    let c = clamp(v, -15.0, 15.0);
    return 1.0 - 2.0 / (exp(2.0 * c) + 1.0);
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp_c(-v));
}

// |error| < 3e-7 (Chebyshev fit of erfc), the same fit as the CPU backend.
fn erf_c(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.2655122 + t * (1.0000237 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.135204 + t * (1.4885159
        + t * (-0.8221522 + t * 0.17087277))))))));
    let r = 1.0 - t * exp_c(poly);
    return select(r, -r, v < 0.0);
}

fn act(code: u32, v: f32) -> f32 {
    switch code {
        case 0u: { return 0.5 * v * (1.0 + erf_c(v * INV_SQRT_2)); }
        case 1u: { return 0.5 * v * (1.0 + tanh_c(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))); }
        case 2u: { return v * sigmoid(v); }
        case 3u: { return tanh_c(v); }
        default: { return max(v, 0.0); }
    }
}

fn act_derivative(code: u32, v: f32) -> f32 {
    switch code {
        case 0u: {
            return 0.5 * (1.0 + erf_c(v * INV_SQRT_2)) + v * INV_SQRT_2PI * exp_c(-0.5 * v * v);
        }
        case 1u: {
            let t = tanh_c(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
            return 0.5 * (1.0 + t)
                + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
        }
        case 2u: {
            let s = sigmoid(v);
            return s * (1.0 + v * (1.0 - s));
        }
        case 3u: {
            let t = tanh_c(v);
            return 1.0 - t * t;
        }
        default: { return select(0.0, 1.0, v > 0.0); }
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    out[i] = act(p.code, x[i]);
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    out[i] = g[i] * act_derivative(p.code, x[i]);
}

// Guided backprop: only positive gradients pass, through only positive slopes.
@compute @workgroup_size(256)
fn guided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    out[i] = max(g[i], 0.0) * max(act_derivative(p.code, x[i]), 0.0);
}

// DeepLIFT rescale over a [inputs; references] batch: g ⊙ Δy/Δx on the input half (the slope
// at the midpoint where |Δx| < 1e-6), 0 on the reference half.
@compute @workgroup_size(256)
fn rescale_halves(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let h = p.n;
    let dx = x[i] - x[i + h];
    var m: f32;
    if abs(dx) >= 1e-6 {
        m = (y[i] - y[i + h]) / dx;
    } else {
        m = act_derivative(p.code, 0.5 * (x[i] + x[i + h]));
    }
    out[i] = g[i] * m;
    out[i + h] = 0.0;
}
