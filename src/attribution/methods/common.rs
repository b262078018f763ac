//! Options several methods share, by name and meaning: each method picks its own default.

use crate::attribution::options::{Kind, OptionSpec};

pub const fn steps(default: &'static str) -> OptionSpec {
    OptionSpec::new(
        "steps",
        Kind::Count,
        Some(default),
        "integration steps of path methods",
    )
}

pub const QUADRATURE: OptionSpec = OptionSpec::new(
    "quadrature",
    Kind::Text,
    Some("gauss-legendre"),
    "gauss-legendre, riemann-left, riemann-right, riemann-middle, riemann-trapezoid",
);

pub const fn baseline(default: &'static str) -> OptionSpec {
    OptionSpec::new(
        "baseline",
        Kind::Text,
        Some(default),
        "zero, or pad (the pad token's embedding at every position)",
    )
}

pub const BASELINES: OptionSpec = OptionSpec::new(
    "baselines",
    Kind::Text,
    Some("zero"),
    "a baseline set: a comma list of zero and pad, or a JSON file holding a list of [tokens][hidden] matrices",
);

pub const fn samples(default: &'static str) -> OptionSpec {
    OptionSpec::new(
        "samples",
        Kind::Count,
        Some(default),
        "random samples (noisy copies, baseline draws, coalitions)",
    )
}

pub const SEED: OptionSpec = OptionSpec::new(
    "seed",
    Kind::Count,
    Some("0"),
    "seed of the random draws: the same seed gives the same output",
);

pub const EPSILON: OptionSpec = OptionSpec::new(
    "epsilon",
    Kind::Number,
    Some("1e-6"),
    "LRP's stabiliser epsilon",
)
.within(
    |e| e > 0.0 && e.is_finite(),
    "a finite number > 0 (LRP's stabiliser)",
);

pub const NOISE_STD: OptionSpec = OptionSpec::new(
    "noise-std",
    Kind::Number,
    None,
    "noise std (default: 0 for gradient-shap, 0.1 x RMS of the input embeddings for smoothgrad and vargrad)",
)
.within(|s| s >= 0.0 && s.is_finite(), "a finite number >= 0");
