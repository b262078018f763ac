//! A backward rule of your own, run like any built-in one: the gradient, except that attention
//! weights are held constant (nothing flows back through the softmax into queries and keys).
//!
//!     cargo run --release --example custom_rule -- [MODEL_DIR] [PROMPT] [COMPARE_TEXT]
//!
//! With no arguments it explains the tiny Llama fixture's top next token.

use gradlens::attribution::{attribute_with_rules, Settings, TargetSpec};
use gradlens::autodiff::{NodeView, RuleSet};
use gradlens::ops::Op;
use gradlens::{Device, Model, Result, Tensor};

struct ConstantAttention;

impl RuleSet for ConstantAttention {
    fn name(&self) -> &str {
        "constant-attention"
    }

    /// One gradient per input of the node (`None`: nothing flows to that input).
    fn backward(&self, node: &NodeView, g: &Tensor) -> Option<Result<Vec<Option<Tensor>>>> {
        match node.op {
            Op::Softmax { .. } => Some(Ok(vec![None])),
            // Every other op keeps its exact gradient. Returning `None` here instead would make
            // the run fail with an error naming the op: rules are never skipped silently.
            _ => Some(node.op.vjp(node, g)),
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-llama"
    );
    let model = Model::load(
        args.first().map_or(fixture, String::as_str).as_ref(),
        Device::Cpu,
    )?;
    let prompt = args
        .get(1)
        .map_or("Language models predict the next", String::as_str);
    let target = match args.get(2) {
        Some(text) => TargetSpec::Compare(text.clone()),
        None => TargetSpec::Auto,
    };
    let opts = Settings {
        target,
        ..Settings::default()
    };
    let result = attribute_with_rules(&model, prompt, &ConstantAttention, &opts)?;
    println!(
        "{} of {:?}: F(x) = {:.4}",
        result.method, result.target.token, result.target_score
    );
    for (token, score) in result.tokens.iter().zip(&result.scores) {
        println!("{token:>16} {score:+.5}");
    }
    Ok(())
}
