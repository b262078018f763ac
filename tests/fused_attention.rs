//! The fused attention `softmax(scale · Q Kᵀ) V`, which never keeps the probabilities, against
//! the materialised path (the probabilities, then `A V`) on every backend: forward, gradient,
//! AttnLRP and CP-LRP (1e-5 of the largest value), with and without causal masks, behind
//! cached keys, under a sliding window, on lengths that cross the CPU kernel's 64-row blocks
//! and the GPU kernels' 256-key tiles, and heads wider than their 256 threads;
//! and whole models, whose passes fuse unless the probabilities are wanted.

mod common;
use common::*;
use gradlens::attribution::{self, Settings, TargetSpec};
use gradlens::autodiff::{Gradient, RuleSet, Tape};
use gradlens::backend::SoftmaxMask;
use gradlens::models::AttentionHook;
use gradlens::rules::{DeepLift, Lrp};
use gradlens::{Device, Tensor};

fn devices() -> Vec<Device> {
    let mut all = vec![Device::Cpu];
    all.extend(gpu_devices());
    all
}

/// A rule set written outside the crate that knows only the pieces of attention: the tape
/// gives it the fused op as those pieces.
struct PiecesOnly;
impl RuleSet for PiecesOnly {
    fn name(&self) -> &str {
        "pieces-only"
    }
    fn backward(
        &self,
        node: &gradlens::autodiff::NodeView,
        g: &Tensor,
    ) -> Option<gradlens::Result<Vec<Option<Tensor>>>> {
        match node.op {
            gradlens::ops::Op::Attention { .. } => None,
            _ => Some(node.op.vjp(node, g)),
        }
    }
}

fn rule_sets() -> Vec<Box<dyn RuleSet>> {
    vec![
        Box::new(Gradient),
        Box::new(Lrp::attn_lrp(1e-6)),
        Box::new(Lrp::cp_lrp(1e-6)),
        Box::new(DeepLift),
        Box::new(PiecesOnly),
    ]
}

/// Output and `[∂q, ∂k, ∂v]` under `rules`, fused or materialised.
fn run(
    device: Device,
    shapes: [[usize; 3]; 2],
    mask: SoftmaxMask,
    fused: bool,
    rules: &dyn RuleSet,
) -> Vec<Vec<f32>> {
    let [qs, ks] = shapes;
    let mut tape = Tape::new();
    let mut leaf = |dims: [usize; 3], seed: u64| {
        let data = rand(dims.iter().product(), seed, 1.5);
        tape.input(Tensor::from_vec(data, dims.to_vec(), device).unwrap())
    };
    let (q, k, v) = (leaf(qs, 1), leaf(ks, 2), leaf(ks, 3));
    let o = if fused {
        tape.attention(q, k, v, 0.6, mask).unwrap()
    } else {
        let p = tape.attention_probs(q, k, 0.6, mask).unwrap();
        tape.attention_context(p, v).unwrap()
    };
    let out = tape.value(o).to_vec().unwrap();
    let seed = rand(out.len(), 4, 1.0);
    let seed = Tensor::from_vec(seed, tape.value(o).dims().to_vec(), device).unwrap();
    let grads = tape.backward(o, seed, rules, &[q, k, v]).unwrap();
    std::iter::once(out)
        .chain(grads.iter().map(|g| g.to_vec().unwrap()))
        .collect()
}

#[test]
fn fused_attention_equals_the_materialised_path() {
    let cases = [
        // An encoder: no mask, a length below one block.
        ([[6, 13, 5], [6, 13, 5]], SoftmaxMask::None),
        // Causal, across two blocks.
        ([[4, 67, 5], [4, 67, 5]], SoftmaxMask::causal(67, 0)),
        // A KV cache: 66 new queries behind 4 cached keys, under a window of 20.
        (
            [[2, 66, 3], [2, 70, 3]],
            SoftmaxMask::Causal {
                len: 66,
                offset: 4,
                window: Some(20),
            },
        ),
        // One new token (generation) against 9 keys.
        ([[4, 1, 8], [4, 9, 8]], SoftmaxMask::causal(1, 8)),
        // Heads wider than the GPU kernels' 256 threads.
        ([[2, 3, 260], [2, 5, 260]], SoftmaxMask::None),
        // Rows that see more keys than one 256-key tile of the GPU kernels' online softmax,
        // behind a long cache.
        ([[1, 4, 4], [1, 300, 4]], SoftmaxMask::causal(4, 296)),
        // Keys that more queries see than one tile of the GPU kernels' key pass holds.
        ([[1, 258, 2], [1, 3, 2]], SoftmaxMask::None),
    ];
    for device in devices() {
        for (shapes, mask) in cases {
            for rules in rule_sets() {
                let fused = run(device, shapes, mask, true, rules.as_ref());
                let plain = run(device, shapes, mask, false, rules.as_ref());
                for (i, what) in ["output", "∂q", "∂k", "∂v"].iter().enumerate() {
                    assert_close(
                        &fused[i],
                        &plain[i],
                        1e-5,
                        &format!("{what}, {} on {device}, {shapes:?} {mask:?}", rules.name()),
                    );
                }
            }
        }
    }
}

/// Whole models: the default pass (fused) and a pass whose hook records the probabilities
/// (materialised) give the same scores under the gradient, AttnLRP, CP-LRP and DeepLIFT.
#[test]
fn models_fuse_attention_with_the_same_results() {
    let cases = [
        ("tiny-llama", TargetSpec::Auto),
        ("tiny-qwen2", TargetSpec::Auto),
        ("tiny-bert-cls", TargetSpec::Class(1)),
    ];
    for device in devices() {
        for (name, target) in &cases {
            let model = tiny_on(name, device);
            let ids = model.tokenize("the quick brown fox jumps over").unwrap();
            let x = model.embed(&ids).unwrap();
            let settings = Settings {
                target: target.clone(),
                ..Settings::default()
            };
            let t = attribution::Target::resolve(&model, &x, &settings.target, Default::default())
                .unwrap();
            let xb = x.reshape([1, ids.len(), model.hidden_size()]).unwrap();
            for rules in rule_sets() {
                if ["deeplift", "pieces-only"].contains(&rules.name()) {
                    continue; // DeepLIFT needs a batch of input and reference: the op test covers both
                }
                let grads = |materialise: bool| {
                    let mut tape = Tape::new();
                    let xv = tape.input(xb.clone());
                    let mut hook = match materialise {
                        true => AttentionHook::recording(),
                        false => AttentionHook::default(),
                    };
                    let h = model.forward_hooked(&mut tape, xv, &mut hook).unwrap();
                    let f = t.score(&model, &mut tape, h).unwrap();
                    let seed = Tensor::full(1.0, tape.value(f).shape().clone(), device).unwrap();
                    let g = tape.backward(f, seed, rules.as_ref(), &[xv]).unwrap();
                    g[0].to_vec().unwrap()
                };
                assert_close(
                    &grads(false),
                    &grads(true),
                    1e-5,
                    &format!("{name} {} on {device}", rules.name()),
                );
            }
        }
    }
}
