//! SmoothGrad (Smilkov et al. 2017): the base method's map averaged over noisy copies `x + ε`,
//! `ε ~ N(0, σ²)`. `NoiseTunnel`, its options, is VarGrad's too.

use super::common;
use crate::attribution::engine::{noise, Prepared};
use crate::attribution::{
    Attribution, Family, Kind, Method, MethodInfo, OptionSpec, TokenScore, Values,
};
use crate::error::{Error, Result};

/// Noisy copies of the input through a base method (SmoothGrad's and VarGrad's options).
pub struct NoiseTunnel {
    /// A single-pass method or integrated gradients.
    pub base: Box<dyn Method>,
    pub samples: usize,
    /// `None`: 0.1 × the RMS of the input embeddings.
    pub noise_std: Option<f32>,
    pub seed: u64,
}

pub struct SmoothGrad(pub NoiseTunnel);

pub(crate) const OPTIONS: [OptionSpec; 4] = [
    OptionSpec::new(
        "base",
        Kind::Text,
        Some("saliency"),
        "the method smoothgrad and vargrad wrap (a single-pass method or integrated-gradients)",
    ),
    common::samples("20"),
    common::NOISE_STD,
    common::SEED,
];

pub static INFO: MethodInfo = MethodInfo {
    name: "smoothgrad",
    aliases: &[],
    summary: "mean of --base over noisy inputs",
    cost: "samples x the base method's cost, batched",
    family: Family::Sampling,
    options: &OPTIONS,
    build: |v| Ok(Box::new(SmoothGrad(NoiseTunnel::from_values(v)?))),
};

impl NoiseTunnel {
    /// The base method reads its own options from `v` too.
    pub fn from_values(v: &Values) -> Result<Self> {
        let [base, samples, noise_std, seed] = &OPTIONS;
        let name: String = v.get(base)?;
        let base = (super::find(&name)?.build)(v)?;
        if base.as_map().is_none() {
            return Err(Error::InvalidArgument(format!(
                "--base {} cannot be smoothed: use a single-pass method or integrated-gradients",
                base.name()
            )));
        }
        Ok(NoiseTunnel {
            base,
            samples: v.positive(samples)?,
            noise_std: v.get_opt(noise_std)?,
            seed: v.get(seed)?,
        })
    }

    /// `F(x)`, the mean and variance of the base method's maps over the copies, the noise σ
    /// and how the base scores a token; the result's extras are recorded by `describe`.
    pub fn run(&self, p: &Prepared) -> Result<(f32, noise::NoiseOut, f32, TokenScore)> {
        let base = self.base.as_map().ok_or_else(|| {
            Error::InvalidArgument(format!("{} cannot be smoothed", self.base.name()))
        })?;
        let sigma = match self.noise_std {
            Some(s) => s,
            None => noise::default_sigma(&p.x)?,
        };
        let r = noise::noise_tunnel(p, base, self.samples, self.seed, sigma)?;
        Ok((p.score_x()?, r, sigma, base.token_score()))
    }

    pub fn describe(&self, a: &mut Attribution, sigma: f32) {
        a.set_extra("samples", self.samples);
        a.set_extra("noise_std", sigma);
        a.set_extra("seed", self.seed);
        a.set_extra("base_method", self.base.name());
    }
}

impl Default for SmoothGrad {
    fn default() -> Self {
        SmoothGrad(NoiseTunnel::from_values(&Values::new()).expect("the defaults are valid"))
    }
}

impl Method for SmoothGrad {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let (f, r, sigma, token_score) = self.0.run(p)?;
        let mut a = p.result(INFO.name, token_score, r.mean, f);
        self.0.describe(&mut a, sigma);
        Ok(a)
    }
}
