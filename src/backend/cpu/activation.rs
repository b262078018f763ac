//! Pointwise activations and their exact derivatives, in f32 with a branch-free `exp` so that
//! loops over them vectorise (libm's scalar `exp` was a third of a GELU model's run time),
//! compiled for AVX-512, AVX2+FMA and the baseline and chosen at run time.

use crate::backend::Activation;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
pub fn forward(f: Activation, x: f32) -> f32 {
    match f {
        Activation::GeluErf => 0.5 * x * (1.0 + erf(x * INV_SQRT_2)),
        Activation::GeluTanh => 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => tanh(x),
        Activation::Relu => x.max(0.0),
    }
}

#[inline(always)]
pub fn derivative(f: Activation, x: f32) -> f32 {
    match f {
        Activation::GeluErf => {
            0.5 * (1.0 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x)
        }
        Activation::GeluTanh => {
            let t = tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
            0.5 * (1.0 + t)
                + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Tanh => {
            let t = tanh(x);
            1.0 - t * t
        }
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
    }
}

/// `e^x`, relative error < 2e-7: `x = n ln 2 + r` (Cody–Waite split of ln 2), `e^r` by its
/// degree-7 Taylor polynomial on |r| ≤ ln2/2, and `2^n` built in the exponent bits.
///
/// The polynomial is evaluated with fused multiply-adds: Rust never contracts `a * b + c` on
/// its own, and separate multiplies and adds made it 16 dependent steps per vector instead of 8
/// (the softmax took 15% longer). `mul_add` is exactly rounded on every path, so every SIMD
/// width still gives the same bits; but outside a loop compiled with FMA enabled (the
/// `widths!` wrappers below) it becomes a libm call, so every caller must be dispatched.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5·2²³ (vectorises; `round` is a libm call).
    const SHIFT: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = (1.0f32 / 5040.0)
        .mul_add(r, 1.0 / 720.0)
        .mul_add(r, 1.0 / 120.0)
        .mul_add(r, 1.0 / 24.0)
        .mul_add(r, 1.0 / 6.0)
        .mul_add(r, 0.5)
        .mul_add(r, 1.0)
        .mul_add(r, 1.0);
    // `n` as an integer from the bits of `n + 1.5·2²³`, whose last mantissa bit is 1: the same
    // value as `n as i32`, whose saturating conversion LLVM compiles to sixteen scalar ones.
    let n_int = shifted.to_bits().wrapping_sub(SHIFT.to_bits());
    p * f32::from_bits(n_int.wrapping_add(127) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    // 1 − 2/(e^{2x} + 1), exact in the limits; small |x| keeps absolute error ~1e-7.
    let x = x.clamp(-15.0, 15.0);
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Error function, |error| < 3e-7 (Chebyshev fit of erfc, Numerical Recipes `erfcc`).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    (1.0 - t * exp(poly)).copysign(x)
}

/// `out = f(x)` over a slice.
pub fn forward_slice(f: Activation, x: &[f32], out: &mut [f32]) {
    dispatch!(forward_loop(f, x, out))
}

/// `out = g ⊙ f′(x)` over slices; guided backprop's `max(g, 0) ⊙ max(f′(x), 0)` when `guided`.
pub fn backward_slice(f: Activation, guided: bool, x: &[f32], g: &[f32], out: &mut [f32]) {
    dispatch!(backward_loop(f, guided, x, g, out))
}

/// DeepLIFT's rescale multiplier, `g ⊙ Δy/Δx` over the two halves `[input; reference]`, with
/// `f′` at the midpoint where `|Δx| < 1e-6`; `out` is the first half's length.
pub fn rescale_halves_slice(f: Activation, x: &[f32], y: &[f32], g: &[f32], out: &mut [f32]) {
    dispatch!(rescale_halves_loop(f, x, y, g, out))
}

/// Runs an `inline(always)` loop compiled for AVX-512, for AVX2+FMA or for the baseline, as
/// `Kernel::best()` says. Each element takes the same operations whatever the width (Rust never
/// fuses a multiply and an add on its own), so every choice gives the same bits. The loop must
/// be inlined *into* the feature-enabled function (a closure defined outside it is compiled
/// for the baseline and not inlined), hence one wrapper per width.
macro_rules! dispatch {
    ($loop:ident($($arg:expr),*)) => {{
        match super::simd::Kernel::best() {
            // SAFETY: `Kernel::best` chose an instruction set this CPU has.
            #[cfg(target_arch = "x86_64")]
            super::simd::Kernel::Avx512 => unsafe { $loop::avx512($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            super::simd::Kernel::Avx2 => unsafe { $loop::avx2($($arg),*) },
            _ => $loop::portable($($arg),*),
        }
    }};
}
pub(super) use dispatch;

/// The three compilations of a loop: `name::avx512`, `name::avx2` and `name::portable`.
macro_rules! widths {
    ($name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[inline(always)]
            pub fn portable($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,fma")]
            pub unsafe fn avx512($($arg: $ty),*) {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn avx2($($arg: $ty),*) {
                portable($($arg),*)
            }
        }
    };
}
pub(super) use widths;

widths!(forward_loop(f: Activation, x: &[f32], out: &mut [f32]) {
    // One arm per activation, so that each loop has `f` a constant.
    #[inline(always)]
    fn run(c: Activation, x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = forward(c, v);
        }
    }
    match f {
        Activation::GeluErf => run(Activation::GeluErf, x, out),
        Activation::GeluTanh => run(Activation::GeluTanh, x, out),
        Activation::Silu => run(Activation::Silu, x, out),
        Activation::Tanh => run(Activation::Tanh, x, out),
        Activation::Relu => run(Activation::Relu, x, out),
    }
});

widths!(backward_loop(f: Activation, guided: bool, x: &[f32], g: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn run<const GUIDED: bool>(c: Activation, x: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
            *o = if GUIDED {
                g.max(0.0) * derivative(c, v).max(0.0)
            } else {
                g * derivative(c, v)
            };
        }
    }
    #[inline(always)]
    fn each<const GUIDED: bool>(f: Activation, x: &[f32], g: &[f32], out: &mut [f32]) {
        match f {
            Activation::GeluErf => run::<GUIDED>(Activation::GeluErf, x, g, out),
            Activation::GeluTanh => run::<GUIDED>(Activation::GeluTanh, x, g, out),
            Activation::Silu => run::<GUIDED>(Activation::Silu, x, g, out),
            Activation::Tanh => run::<GUIDED>(Activation::Tanh, x, g, out),
            Activation::Relu => run::<GUIDED>(Activation::Relu, x, g, out),
        }
    }
    if guided {
        each::<true>(f, x, g, out)
    } else {
        each::<false>(f, x, g, out)
    }
});

widths!(rescale_halves_loop(f: Activation, x: &[f32], y: &[f32], g: &[f32], out: &mut [f32]) {
    let h = out.len();
    let (x, x_ref, y, y_ref) = (&x[..h], &x[h..2 * h], &y[..h], &y[h..2 * h]);
    for i in 0..h {
        let dx = x[i] - x_ref[i];
        // Both sides computed and one selected, so that the loop vectorises.
        let at_midpoint = derivative(f, 0.5 * (x[i] + x_ref[i]));
        let m = if dx.abs() >= 1e-6 { (y[i] - y_ref[i]) / dx } else { at_midpoint };
        out[i] = g[i] * m;
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
            (4.0, 0.999_999_984_6),
        ] {
            assert!((erf(x) as f64 - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn exp_is_accurate_over_the_range() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}): {got} vs {want}"
            );
            x += 0.37;
        }
    }

    #[test]
    fn tanh_and_sigmoid_match_std() {
        for i in -200..200 {
            let x = i as f32 * 0.05;
            assert!((tanh(x) - x.tanh()).abs() < 3e-7, "tanh({x})");
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 3e-7,
                "sigmoid({x})"
            );
        }
    }
}
