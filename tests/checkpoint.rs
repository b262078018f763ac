//! Per-layer recomputation: a checkpointed pass gives the bits of the whole tape on the CPU,
//! for every family's step structure and every kind of rule set, and the CLI's
//! `--checkpoint` is checked before any work.

mod common;
use common::*;
use gradlens::attribution::{self, Checkpoint, Settings, TargetSpec};
use gradlens::autodiff::{Gradient, RuleSet};
use gradlens::rules::{DeepLift, Guided, Lrp};
use gradlens::Tensor;

#[test]
fn checkpointing_gives_the_same_bits_as_the_whole_tape() {
    let cases = [
        ("tiny-llama", TargetSpec::Auto),
        ("tiny-gpt2", TargetSpec::Auto),
        ("tiny-gemma2", TargetSpec::Auto),
        ("tiny-gemma3", TargetSpec::Auto),
        ("tiny-phi3-partial", TargetSpec::Auto),
        ("tiny-bert", TargetSpec::Compare("a lazy dog".into())),
        ("tiny-roberta", TargetSpec::Class(1)),
    ];
    let rule_sets: [Box<dyn RuleSet>; 4] = [
        Box::new(Gradient),
        Box::new(Lrp::attn_lrp(1e-6)),
        Box::new(Guided::backprop()),
        Box::new(DeepLift),
    ];
    for (name, spec) in &cases {
        let model = tiny(name);
        let ids = model
            .tokenize("the quick brown fox jumps over the lazy dog")
            .unwrap();
        let x = model.embed(&ids).unwrap();
        let target = attribution::Target::resolve(&model, &x, spec, Default::default()).unwrap();
        // Two rows (DeepLIFT's input and reference): the prompt and a scaled copy.
        let mut rows = x.to_vec().unwrap();
        rows.extend(x.to_vec().unwrap().iter().map(|v| 0.3 * v));
        let xs = Tensor::from_vec(rows, [2, ids.len(), model.hidden_size()], x.device()).unwrap();
        for rules in &rule_sets {
            let seed = [1.0, if rules.name() == "deeplift" { 0.0 } else { 1.0 }];
            let run = |mode: Checkpoint| {
                let (f, g) = attribution::gradients_planned(
                    &model,
                    &target,
                    &xs,
                    rules.as_ref(),
                    &seed,
                    mode,
                )
                .unwrap();
                (f, g.to_vec().unwrap())
            };
            let (whole, recomputed) = (run(Checkpoint::Never), run(Checkpoint::Always));
            assert_eq!(whole.0, recomputed.0, "{name} {}: F", rules.name());
            let same = whole
                .1
                .iter()
                .zip(&recomputed.1)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name} {}: gradients differ", rules.name());
        }
    }
}

/// A method run end to end with `--checkpoint always` gives what it gives with `never`.
#[test]
fn methods_checkpointed_give_the_same_scores() {
    let model = tiny("tiny-llama");
    for (name, options) in [
        ("saliency", &[][..]),
        ("attnlrp", &[]),
        ("integrated-gradients", &[("steps", "6")]),
        ("deeplift", &[]),
    ] {
        let m = method(name, options);
        let run = |checkpoint| {
            let s = Settings {
                checkpoint,
                ..Settings::default()
            };
            attribution::attribute(&model, "Language models predict the next", m.as_ref(), &s)
                .unwrap()
                .scores
        };
        assert_eq!(
            run(Checkpoint::Never),
            run(Checkpoint::Always),
            "{name} checkpointed"
        );
    }
}

#[test]
fn an_unknown_checkpoint_mode_is_refused_before_loading() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(["attribute", "--model", "/nonexistent", "--prompt", "hi"])
        .args(["--checkpoint", "sometimes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown checkpoint mode 'sometimes' (expected auto, never or always)"),
        "{err}"
    );
}

/// The recomputation takes the attention outputs its forward recorded, in order, instead of
/// computing them again (what makes a checkpointed pass at thousands of tokens cost one
/// attention forward, not two); a record that does not fit the query is an error, not a
/// silent recomputation.
#[test]
fn recomputed_attention_replays_the_recorded_output() {
    use gradlens::autodiff::Tape;
    use gradlens::backend::SoftmaxMask;
    use gradlens::Device;
    let (len, d) = (5, 4);
    let data = |seed: f32| {
        (0..len * d)
            .map(|i| (i as f32 * seed).sin())
            .collect::<Vec<_>>()
    };
    let t = |seed| Tensor::from_vec(data(seed), [1, len, d], Device::Cpu).unwrap();
    let mask = SoftmaxMask::Causal {
        len,
        offset: 0,
        window: None,
    };
    let attend = |tape: &mut Tape| {
        let (q, k, v) = (tape.input(t(0.7)), tape.input(t(1.3)), tape.input(t(2.1)));
        tape.attention(q, k, v, 0.5, mask)
    };
    let mut recording = Tape::recording_attention();
    let computed = attend(&mut recording).unwrap();
    let computed = recording.value(computed).to_vec().unwrap();
    let kept = recording.take_attention_outputs();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].to_vec().unwrap(), computed);
    // A stand-in of the right shape is taken as it is: the op did not compute.
    let stand_in = Tensor::zeros([1, len, d], Device::Cpu).unwrap();
    let mut replaying = Tape::replaying_attention(vec![stand_in]);
    let out = attend(&mut replaying).unwrap();
    assert!(replaying
        .value(out)
        .to_vec()
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
    // Nothing left, or the wrong shape: an error that says so.
    let err = attend(&mut Tape::replaying_attention(Vec::new())).unwrap_err();
    assert!(err.to_string().contains("no output"), "{err}");
    let wrong = Tensor::zeros([1, len, d + 1], Device::Cpu).unwrap();
    let err = attend(&mut Tape::replaying_attention(vec![wrong])).unwrap_err();
    assert!(err.to_string().contains("[1, 5, 5]"), "{err}");
}
