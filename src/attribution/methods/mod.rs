//! One file per method, each a `Method` impl with its options and registry entry (`INFO`).
//! Adding a method is a new file here and one line in `REGISTRY`; the CLI's flags and help
//! are generated from the registry.

mod common;

pub mod attention;
pub mod attention_rollout;
pub mod attn_lrp;
pub mod cp_lrp;
pub mod deconvolution;
pub mod deeplift;
pub mod deeplift_shap;
pub mod discretized_ig;
pub mod feature_ablation;
pub mod gradient_shap;
pub mod greedy_pig;
pub mod guided_backprop;
pub mod guided_ig;
pub mod input_x_gradient;
pub mod integrated_gradients;
pub mod kernel_shap;
pub mod lime;
pub mod lrp_epsilon;
pub mod lrp_gamma;
pub mod occlusion;
pub mod pgd;
pub mod rpi;
pub mod saliency;
pub mod sequential_ig;
pub mod shapley_sampling;
pub mod smoothgrad;
pub mod vargrad;

pub use attention::Attention;
pub use attention_rollout::AttentionRollout;
pub use attn_lrp::AttnLrp;
pub use cp_lrp::CpLrp;
pub use deconvolution::Deconvolution;
pub use deeplift::DeepLift;
pub use deeplift_shap::DeepLiftShap;
pub use discretized_ig::DiscretizedIg;
pub use feature_ablation::FeatureAblation;
pub use gradient_shap::GradientShap;
pub use greedy_pig::GreedyPig;
pub use guided_backprop::GuidedBackprop;
pub use guided_ig::GuidedIg;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::IntegratedGradients;
pub use kernel_shap::KernelShap;
pub use lime::Lime;
pub use lrp_epsilon::LrpEpsilon;
pub use lrp_gamma::LrpGamma;
pub use occlusion::Occlusion;
pub use pgd::Pgd;
pub use rpi::Rpi;
pub use saliency::Saliency;
pub use sequential_ig::SequentialIg;
pub use shapley_sampling::ShapleySampling;
pub use smoothgrad::SmoothGrad;
pub use vargrad::VarGrad;

use super::{Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};

/// Every method, in the order `--help` lists them.
pub static REGISTRY: &[&MethodInfo] = &[
    &saliency::INFO,
    &input_x_gradient::INFO,
    &integrated_gradients::INFO,
    &guided_backprop::INFO,
    &deconvolution::INFO,
    &lrp_epsilon::INFO,
    &lrp_gamma::INFO,
    &attn_lrp::INFO,
    &cp_lrp::INFO,
    &deeplift::INFO,
    &deeplift_shap::INFO,
    &gradient_shap::INFO,
    &smoothgrad::INFO,
    &vargrad::INFO,
    &occlusion::INFO,
    &feature_ablation::INFO,
    &shapley_sampling::INFO,
    &kernel_shap::INFO,
    &lime::INFO,
    &guided_ig::INFO,
    &sequential_ig::INFO,
    &greedy_pig::INFO,
    &discretized_ig::INFO,
    &pgd::INFO,
    &rpi::INFO,
    &attention::INFO,
    &attention_rollout::INFO,
];

/// The method called `name` (or one of its aliases).
pub fn find(name: &str) -> Result<&'static MethodInfo> {
    REGISTRY
        .iter()
        .copied()
        .find(|m| m.name == name || m.aliases.contains(&name))
        .ok_or_else(|| {
            let names: Vec<_> = REGISTRY.iter().map(|m| m.name).collect();
            Error::InvalidArgument(format!(
                "unknown method '{name}' (available: {})",
                names.join(", ")
            ))
        })
}

/// The method called `name`, configured from `values`. Every given value is checked against
/// its option's range first, also one this method does not read (`check_values`), so every
/// surface refuses the same values.
pub fn build(name: &str, values: &Values) -> Result<Box<dyn Method>> {
    let info = find(name)?;
    check_values(values)?;
    (info.build)(values)
}

/// A method that reads an option, and its default there.
pub type OptionUser = (&'static str, Option<&'static str>);

/// Every option of every method, once per name (the first declaration's help), with the
/// methods that read it and their defaults: the CLI's flags.
pub fn all_options() -> Vec<(OptionSpec, Vec<OptionUser>)> {
    let mut out: Vec<(OptionSpec, Vec<OptionUser>)> = Vec::new();
    for m in REGISTRY {
        for o in m.options {
            match out.iter_mut().find(|(s, _)| s.name == o.name) {
                Some((_, users)) => users.push((m.name, o.default)),
                None => out.push((*o, vec![(m.name, o.default)])),
            }
        }
    }
    out
}

/// Checks every given value against each declaration of its option, whichever methods run:
/// a value out of range is an error even where the chosen method would not read it.
pub fn check_values(values: &Values) -> Result<()> {
    for name in values.names() {
        let text = values.raw(name).unwrap_or_default();
        for m in REGISTRY {
            for spec in m.options.iter().filter(|s| s.name == name) {
                spec.check(text)?;
            }
        }
    }
    Ok(())
}

/// Every method with its options and their defaults, and the settings all methods share,
/// as JSON (option names with `_`, as Python's keywords and the server's fields spell them):
/// `gradlens.methods()` and `GET /api/methods`.
pub fn registry_json() -> serde_json::Value {
    use super::request::SETTINGS;
    use super::Kind;
    let kind = |k: Kind| match k {
        Kind::Count => "count",
        Kind::Number => "number",
        Kind::Text => "text",
        Kind::Flag => "flag",
    };
    let methods: Vec<serde_json::Value> = REGISTRY
        .iter()
        .map(|m| {
            let options: Vec<serde_json::Value> = m
                .options
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "name": o.name.replace('-', "_"),
                        "kind": kind(o.kind),
                        "default": o.default,
                        "help": o.help,
                    })
                })
                .collect();
            serde_json::json!({
                "name": m.name,
                "aliases": m.aliases,
                "summary": m.summary,
                "cost": m.cost,
                "family": m.family.name(),
                "options": options,
            })
        })
        .collect();
    let settings: Vec<String> = SETTINGS.iter().map(|s| s.replace('-', "_")).collect();
    serde_json::json!({ "methods": methods, "settings": settings })
}

/// Every method with its summary and cost, for `--help`.
pub fn help() -> String {
    let mut s =
        String::from("Methods (what each computes; its cost in forward/backward passes):\n");
    for m in REGISTRY {
        s += &format!(
            "  {:<22}{}\n  {:<22}{} [{}]\n",
            m.name,
            m.summary,
            "",
            m.cost,
            m.family.name()
        );
    }
    s
}
