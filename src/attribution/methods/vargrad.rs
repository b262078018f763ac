//! VarGrad (Adebayo et al. 2018): the variance of the base method's map over noisy copies
//! `x + ε`, `ε ~ N(0, σ²)`; SmoothGrad's options (`NoiseTunnel`).

use super::smoothgrad::{NoiseTunnel, OPTIONS};
use crate::attribution::engine::Prepared;
use crate::attribution::{Attribution, Family, Method, MethodInfo, TokenScore, Values};
use crate::error::Result;

pub struct VarGrad(pub NoiseTunnel);

pub static INFO: MethodInfo = MethodInfo {
    name: "vargrad",
    aliases: &[],
    summary: "variance of --base over noisy inputs",
    cost: "samples x the base method's cost, batched",
    family: Family::Sampling,
    options: &OPTIONS,
    build: |v| Ok(Box::new(VarGrad(NoiseTunnel::from_values(v)?))),
};

impl Default for VarGrad {
    fn default() -> Self {
        VarGrad(NoiseTunnel::from_values(&Values::new()).expect("the defaults are valid"))
    }
}

impl Method for VarGrad {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let (f, r, sigma, _) = self.0.run(p)?;
        let mut a = p.result(INFO.name, TokenScore::Sum, r.variance, f);
        self.0.describe(&mut a, sigma);
        Ok(a)
    }
}
