//! Input × gradient (Shrikumar et al. 2016): each embedding entry times its gradient; a
//! token's score is the sum of its row.

use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore};
use crate::autodiff::Gradient;
use crate::autodiff::RuleSet;

/// `x ⊙ ∇F(x)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct InputXGradient;

pub static INFO: MethodInfo = MethodInfo {
    name: "input-x-gradient",
    aliases: &["ixg"],
    summary: "x * gradient",
    cost: "1 forward + 1 backward",
    family: Family::Gradient,
    options: &[],
    build: |_| Ok(Box::new(InputXGradient)),
};

impl SinglePass for InputXGradient {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Gradient)
    }

    fn times_input(&self) -> bool {
        true
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Sum
    }
}
