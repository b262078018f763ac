//! Guided backpropagation (Springenberg et al. 2015): only positive gradient passes back
//! through the activations, and only where the activation's input was positive.

use crate::attribution::engine::single_pass::SinglePass;
use crate::attribution::{Family, MethodInfo, TokenScore};
use crate::autodiff::RuleSet;
use crate::rules::Guided;

#[derive(Clone, Copy, Debug, Default)]
pub struct GuidedBackprop;

pub static INFO: MethodInfo = MethodInfo {
    name: "guided-backprop",
    aliases: &[],
    summary: "positive gradient through activations",
    cost: "1 forward + 1 backward",
    family: Family::Rule,
    options: &[],
    build: |_| Ok(Box::new(GuidedBackprop)),
};

impl SinglePass for GuidedBackprop {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn rules(&self) -> Box<dyn RuleSet> {
        Box::new(Guided::backprop())
    }

    fn times_input(&self) -> bool {
        false
    }

    fn token_score(&self) -> TokenScore {
        TokenScore::Norm
    }
}
