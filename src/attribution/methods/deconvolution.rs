//! Deconvolution (Zeiler & Fergus 2014): the gradient rectified at each activation,
//! whatever the activation's input.

use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore};
use crate::autodiff::RuleSet;
use crate::rules::Guided;

#[derive(Clone, Copy, Debug, Default)]
pub struct Deconvolution;

pub static INFO: MethodInfo = MethodInfo {
    name: "deconvolution",
    aliases: &[],
    summary: "relu(gradient) through activations",
    cost: "1 forward + 1 backward",
    family: Family::Rule,
    options: &[],
    build: |_| Ok(Box::new(Deconvolution)),
};

impl SinglePass for Deconvolution {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Guided::deconvolution())
    }

    fn times_input(&self) -> bool {
        false
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Norm
    }
}
