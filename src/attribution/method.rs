//! The methods, their names and their costs.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Saliency,
    InputXGradient,
    IntegratedGradients,
    GuidedBackprop,
    Deconvolution,
    LrpEpsilon,
    LrpGamma,
    AttnLrp,
    CpLrp,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    SmoothGrad,
    VarGrad,
    Occlusion,
}

/// How a method's `[tokens, hidden]` map becomes one score per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScore {
    /// Gradient-like maps (saliency, guided backprop, deconvolution): the L2 norm.
    Norm,
    /// Contribution maps: the sum, which keeps completeness and conservation.
    Sum,
}

impl Method {
    pub const ALL: [Method; 15] = [
        Method::Saliency,
        Method::InputXGradient,
        Method::IntegratedGradients,
        Method::GuidedBackprop,
        Method::Deconvolution,
        Method::LrpEpsilon,
        Method::LrpGamma,
        Method::AttnLrp,
        Method::CpLrp,
        Method::DeepLift,
        Method::DeepLiftShap,
        Method::GradientShap,
        Method::SmoothGrad,
        Method::VarGrad,
        Method::Occlusion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Saliency => "saliency",
            Method::InputXGradient => "input-x-gradient",
            Method::IntegratedGradients => "integrated-gradients",
            Method::GuidedBackprop => "guided-backprop",
            Method::Deconvolution => "deconvolution",
            Method::LrpEpsilon => "lrp-epsilon",
            Method::LrpGamma => "lrp-gamma",
            Method::AttnLrp => "attnlrp",
            Method::CpLrp => "cp-lrp",
            Method::DeepLift => "deeplift",
            Method::DeepLiftShap => "deeplift-shap",
            Method::GradientShap => "gradient-shap",
            Method::SmoothGrad => "smoothgrad",
            Method::VarGrad => "vargrad",
            Method::Occlusion => "occlusion",
        }
    }

    /// Forward/backward passes, for `--help` and the README.
    pub fn cost(self) -> &'static str {
        match self {
            Method::Saliency
            | Method::InputXGradient
            | Method::GuidedBackprop
            | Method::Deconvolution
            | Method::LrpEpsilon
            | Method::AttnLrp
            | Method::CpLrp => "1 forward + 1 backward",
            Method::LrpGamma => "1 forward + 1 backward (2 extra products per linear layer)",
            Method::IntegratedGradients => {
                "steps forward+backward, batched, + 1 forward of x and x'"
            }
            Method::DeepLift => "1 forward + 1 backward of a batch of 2 (input, reference)",
            Method::DeepLiftShap => "1 forward + 1 backward of a batch of 2 x baselines",
            Method::GradientShap => {
                "samples forward+backward, batched, + 1 forward of the baselines"
            }
            Method::SmoothGrad | Method::VarGrad => "samples x the base method's cost, batched",
            Method::Occlusion => "1 forward of tokens - window + 1 occluded copies, batched",
        }
    }

    pub fn token_score(self) -> TokenScore {
        match self {
            Method::Saliency | Method::GuidedBackprop | Method::Deconvolution => TokenScore::Norm,
            _ => TokenScore::Sum,
        }
    }

    /// Methods computed by one forward and one backward pass (usable as a SmoothGrad base).
    pub fn is_single_pass(self) -> bool {
        matches!(
            self,
            Method::Saliency
                | Method::InputXGradient
                | Method::GuidedBackprop
                | Method::Deconvolution
                | Method::LrpEpsilon
                | Method::LrpGamma
                | Method::AttnLrp
                | Method::CpLrp
        )
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let alias = match s {
            "ig" => "integrated-gradients",
            "ixg" => "input-x-gradient",
            s => s,
        };
        Method::ALL
            .into_iter()
            .find(|m| m.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown method '{s}' (available: {})",
                    names.join(", ")
                ))
            })
    }
}
