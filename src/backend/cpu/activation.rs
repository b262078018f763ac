//! Pointwise activations and their exact derivatives.

use crate::backend::Activation;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

pub fn forward(f: Activation, x: f32) -> f32 {
    let x = x as f64;
    (match f {
        Activation::GeluErf => 0.5 * x * (1.0 + erf(x * INV_SQRT_2)),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
    }) as f32
}

pub fn derivative(f: Activation, x: f32) -> f32 {
    let x = x as f64;
    (match f {
        Activation::GeluErf => {
            0.5 * (1.0 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
        }
        Activation::GeluTanh => {
            let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            let t = u.tanh();
            0.5 * (1.0 + t)
                + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
    }) as f32
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Error function, |error| < 1.2e-7 (Chebyshev fit of erfc, Numerical Recipes `erfcc`).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }
}
