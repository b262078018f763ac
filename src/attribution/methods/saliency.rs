//! Saliency (Simonyan et al. 2014): the gradient of `F` with respect to the input embeddings;
//! a token's score is the L2 norm of its row.

use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore};
use crate::autodiff::Gradient;
use crate::autodiff::RuleSet;

/// The plain gradient.
#[derive(Clone, Copy, Debug, Default)]
pub struct Saliency;

pub static INFO: MethodInfo = MethodInfo {
    name: "saliency",
    aliases: &[],
    summary: "the gradient; token score = its L2 norm",
    cost: "1 forward + 1 backward",
    family: Family::Gradient,
    options: &[],
    build: |_| Ok(Box::new(Saliency)),
};

impl SinglePass for Saliency {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Gradient)
    }

    fn times_input(&self) -> bool {
        false
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Norm
    }
}
