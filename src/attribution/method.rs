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
    GuidedIg,
    SequentialIg,
    GreedyPig,
    DiscretizedIg,
    Pgd,
    Rpi,
    Attention,
    AttentionRollout,
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
    pub const ALL: [Method; 23] = [
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
        Method::GuidedIg,
        Method::SequentialIg,
        Method::GreedyPig,
        Method::DiscretizedIg,
        Method::Pgd,
        Method::Rpi,
        Method::Attention,
        Method::AttentionRollout,
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
            Method::GuidedIg => "guided-ig",
            Method::SequentialIg => "sequential-ig",
            Method::GreedyPig => "greedy-pig",
            Method::DiscretizedIg => "discretized-ig",
            Method::Pgd => "pgd",
            Method::Rpi => "rpi",
            Method::Attention => "attention",
            Method::AttentionRollout => "attention-rollout",
        }
    }

    /// What the method computes, in a line, for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Method::Saliency => "the gradient; token score = its L2 norm",
            Method::InputXGradient => "x * gradient",
            Method::IntegratedGradients => {
                "path integral of the gradient from --baseline (--steps, or --tolerance)"
            }
            Method::GuidedBackprop => "positive gradient through activations",
            Method::Deconvolution => "relu(gradient) through activations",
            Method::LrpEpsilon => "LRP, epsilon rule on linear layers",
            Method::LrpGamma => "LRP, gamma rule on linear layers",
            Method::AttnLrp => "AttnLRP (Achtibat et al. 2024)",
            Method::CpLrp => "AttnLRP without relevance through Q, K and gates",
            Method::DeepLift => "rescale rule against --baseline",
            Method::DeepLiftShap => "DeepLIFT averaged over --baselines",
            Method::GradientShap => "expected gradients over --baselines",
            Method::SmoothGrad => "mean of --base over noisy inputs",
            Method::VarGrad => "variance of --base over noisy inputs",
            Method::Occlusion => "F(x) - F(a --window of tokens at --baseline), averaged",
            Method::GuidedIg => "IG along a gradient-guided path (--fraction, --max-dist)",
            Method::SequentialIg => "IG per token, the other tokens kept real",
            Method::GreedyPig => "rounds of IG fixing the top --per-round tokens, up to --budget",
            Method::DiscretizedIg => "IG along vocabulary embeddings (--neighbors)",
            Method::Pgd => "path integral along an attack within --radius; reports the drop",
            Method::Rpi => "IG over --layer's attention from noise (--samples draws)",
            Method::Attention => "--layer's attention weights (--head, or the mean over heads)",
            Method::AttentionRollout => "attention rollout over all layers",
        }
    }

    /// Every method with its summary and cost, for `--help`.
    pub fn help() -> String {
        let mut s =
            String::from("Methods (what each computes; its cost in forward/backward passes):\n");
        for m in Method::ALL {
            s += &format!(
                "  {:<22}{}\n  {:<22}{}\n",
                m.name(),
                m.summary(),
                "",
                m.cost()
            );
        }
        s
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
            Method::GuidedIg => "steps forward+backward, one at a time (each step needs the last)",
            Method::SequentialIg => {
                "tokens x steps forward+backward, batched, + tokens + 1 forwards"
            }
            Method::GreedyPig => "rounds x steps forward+backward; each round batched",
            Method::DiscretizedIg => {
                "4 x steps forward+backward, batched, + steps nearest-neighbour searches"
            }
            Method::Pgd => "steps + 1 forward+backward, one at a time (an attack trajectory)",
            Method::Rpi => "samples x steps forward+backward, batched, + 1 forward",
            Method::Attention | Method::AttentionRollout => "1 forward",
        }
    }

    /// The steps a method takes when the user names none.
    pub fn default_steps(self) -> usize {
        match self {
            Method::Rpi => 30,
            Method::DiscretizedIg => 30,
            Method::Pgd => 20,
            _ => 50,
        }
    }

    /// The baseline a method starts from when the user names none: sequential and
    /// discretized IG follow their papers (the pad or mask embedding); the rest start at zero.
    pub fn default_baseline(self) -> super::Baseline {
        match self {
            Method::SequentialIg | Method::DiscretizedIg => super::Baseline::Pad,
            _ => super::Baseline::Zero,
        }
    }

    /// The samples a method draws when the user names none.
    pub fn default_samples(self) -> usize {
        match self {
            Method::Rpi => 4,
            _ => 20,
        }
    }

    /// The method-specific options, by their CLI names; `reads` says which a method uses.
    pub const OPTIONS: [&'static str; 21] = [
        "steps",
        "tolerance",
        "max-steps",
        "quadrature",
        "baseline",
        "epsilon",
        "gamma",
        "samples",
        "noise-std",
        "seed",
        "base",
        "baselines",
        "window",
        "fraction",
        "max-dist",
        "per-round",
        "budget",
        "radius",
        "neighbors",
        "layer",
        "head",
    ];

    /// Whether the method reads `option` (one of `OPTIONS`): one it does not read is ignored,
    /// and the CLI says so rather than let the user believe it had an effect. `base` is what
    /// smoothgrad and vargrad wrap; `adaptive` is whether --tolerance was given.
    pub fn reads(self, option: &str, base: Method, adaptive: bool) -> bool {
        use Method::*;
        if matches!(self, SmoothGrad | VarGrad) {
            let own = matches!(option, "samples" | "noise-std" | "seed" | "base");
            return own || (option != "tolerance" && base.reads(option, base, false));
        }
        match option {
            "steps" => {
                matches!(
                    self,
                    GuidedIg | SequentialIg | GreedyPig | DiscretizedIg | Pgd | Rpi
                ) || (self == IntegratedGradients && !adaptive)
            }
            "tolerance" => self == IntegratedGradients,
            "max-steps" => self == IntegratedGradients && adaptive,
            "quadrature" => {
                matches!(self, SequentialIg | GreedyPig | Rpi)
                    || (self == IntegratedGradients && !adaptive)
            }
            "baseline" => matches!(
                self,
                IntegratedGradients
                    | DeepLift
                    | Occlusion
                    | GuidedIg
                    | SequentialIg
                    | GreedyPig
                    | DiscretizedIg
            ),
            "epsilon" => matches!(self, LrpEpsilon | LrpGamma | AttnLrp | CpLrp),
            "gamma" => self == LrpGamma,
            "samples" | "seed" => matches!(self, GradientShap | Rpi),
            "noise-std" => self == GradientShap,
            "baselines" => matches!(self, GradientShap | DeepLiftShap),
            "window" => self == Occlusion,
            "fraction" | "max-dist" => self == GuidedIg,
            "per-round" | "budget" => self == GreedyPig,
            "radius" => self == Pgd,
            "neighbors" => self == DiscretizedIg,
            "layer" => matches!(self, Attention | Rpi),
            "head" => self == Attention,
            _ => false,
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
