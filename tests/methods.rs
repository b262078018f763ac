//! Properties of the methods (METHODS.md) and of the engine around them.

mod common;
use common::*;
use gradlens::attribution::methods::{InputXGradient, IntegratedGradients, Occlusion, Saliency};
use gradlens::attribution::{self, Baseline, Prepared, Quadrature, Settings, TargetSpec};
use gradlens::autodiff::{NodeView, RuleSet, Tape};
use gradlens::ops::Op;
use gradlens::{Device, Error, Model, Tensor};

const PROMPT: &str = "Language models predict the next";

fn ig(model: &Model, method: IntegratedGradients, settings: Settings) -> attribution::Attribution {
    attribution::attribute(
        model,
        PROMPT,
        &method,
        &Settings {
            include_map: true,
            ..settings
        },
    )
    .unwrap()
}

fn steps(steps: usize) -> IntegratedGradients {
    IntegratedGradients {
        steps,
        ..Default::default()
    }
}

#[test]
fn ig_does_not_depend_on_chunking() {
    let model = tiny("tiny-llama");
    let batch = |b| Settings {
        batch_size: Some(b),
        ..Default::default()
    };
    let reference = ig(&model, steps(13), batch(13));
    for chunk in [1, 4, 6] {
        let r = ig(&model, steps(13), batch(chunk));
        assert_close(
            r.map.as_ref().unwrap(),
            reference.map.as_ref().unwrap(),
            1e-6,
            &format!("chunk {chunk}"),
        );
    }
}

#[test]
fn ig_with_baseline_equal_to_input_is_zero() {
    let model = tiny("tiny-gpt2");
    let x = model.embed(&model.tokenize(PROMPT).unwrap()).unwrap();
    let r = ig(
        &model,
        IntegratedGradients {
            baseline: Baseline::Custom(x),
            ..steps(8)
        },
        Settings::default(),
    );
    assert!(r.map.unwrap().iter().all(|&v| v == 0.0));
    assert_eq!(r.convergence_delta, Some(0.0));
}

#[test]
fn ig_delta_shrinks_with_steps_on_a_smooth_model() {
    let model = tiny("tiny-bert");
    let target = TargetSpec::Compare("a small model".into());
    let on_target = Settings {
        target,
        ..Default::default()
    };
    let delta = |n| {
        ig(&model, steps(n), on_target.clone())
            .convergence_delta
            .unwrap()
            .abs()
    };
    let (d2, d32) = (delta(2), delta(32));
    assert!(
        d32 < d2 / 10.0 && d32 < 1e-4,
        "delta 2 steps {d2:e}, 32 steps {d32:e}"
    );
}

#[test]
fn every_quadrature_converges_to_the_same_integral() {
    let model = tiny("tiny-bert");
    let target = TargetSpec::Compare("a small model".into());
    let on_target = Settings {
        target,
        ..Default::default()
    };
    let reference = ig(&model, steps(64), on_target.clone());
    for q in Quadrature::ALL {
        let r = ig(
            &model,
            IntegratedGradients {
                quadrature: q,
                ..steps(400)
            },
            on_target.clone(),
        );
        assert_close(&r.scores, &reference.scores, 2e-2, q.name());
        assert_eq!(r.extra::<String>("quadrature").as_deref(), Some(q.name()));
    }
}

#[test]
fn saliency_and_input_x_gradient_follow_the_gradient() {
    let fx = fixture("tiny-llama");
    let model = tiny("tiny-llama");
    let grad = floats(&fx["grad_logit"]);
    let opts = with_map();
    let s = attribution::attribute(&model, PROMPT, &Saliency, &opts).unwrap();
    let norms: Vec<f32> = grad
        .chunks(32)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    assert_close(
        &s.scores,
        &norms,
        1e-4,
        "saliency = row norms of the gradient",
    );
    assert!(s.baseline_score.is_none() && s.convergence_delta.is_none());

    let ixg = attribution::attribute(&model, PROMPT, &InputXGradient, &opts).unwrap();
    let x = model.embed(&ixg.token_ids).unwrap().to_vec().unwrap();
    let want: Vec<f32> = x.iter().zip(&grad).map(|(a, b)| a * b).collect();
    assert_close(ixg.map.as_ref().unwrap(), &want, 1e-4, "input x gradient");
    let sums: Vec<f32> = want.chunks(32).map(|r| r.iter().sum()).collect();
    assert_close(&ixg.scores, &sums, 1e-4, "per-token sums");
}

#[test]
fn pad_baseline_is_the_pad_embedding() {
    let model = tiny("tiny-llama");
    let p = Prepared::new(&model, PROMPT, &Settings::default()).unwrap();
    let b = p.baseline(&Baseline::Pad).unwrap().to_vec().unwrap();
    let pad = model
        .embed(&[model.info.pad_token_id.unwrap()])
        .unwrap()
        .to_vec()
        .unwrap();
    for row in b.chunks(32) {
        assert_eq!(row, &pad[..]);
    }
}

#[test]
fn identical_runs_agree_bit_for_bit() {
    let model = tiny("tiny-gpt2");
    let a = ig(&model, steps(7), Settings::default());
    let b = ig(&model, steps(7), Settings::default());
    assert_eq!(a.map, b.map, "two identical runs must agree bit for bit");
}

/// A rule set that only knows linear layers: the pass must fail naming the first op it lacks.
struct LinearOnly;
impl RuleSet for LinearOnly {
    fn name(&self) -> &str {
        "linear-only"
    }
    fn backward(
        &self,
        node: &NodeView,
        g: &Tensor,
    ) -> Option<gradlens::Result<Vec<Option<Tensor>>>> {
        matches!(node.op, Op::Linear { .. }).then(|| node.op.vjp(node, g))
    }
}

#[test]
fn a_rule_set_without_a_rule_names_the_op() {
    let model = tiny("tiny-llama");
    let p = Prepared::new(&model, PROMPT, &Settings::default()).unwrap();
    let err = attribution::gradients_with(&model, &p.target, &p.x_batch().unwrap(), &LinearOnly)
        .unwrap_err();
    assert!(matches!(err, Error::NoRule { op: "reshape", .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "rule set 'linear-only' has no backward rule for op 'reshape'"
    );
}

#[test]
fn weights_in_f16_bf16_and_shards_load() {
    use safetensors::Dtype;
    let src = root().join("tests/fixtures/models/tiny-llama");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let reference = {
        let x = Model::load(&src, Device::Cpu).unwrap();
        let e = x.embed(&x.tokenize(PROMPT).unwrap()).unwrap();
        attribution::next_token_logits(&x, &e).unwrap()
    };
    let logits_of = |dir: &std::path::Path| {
        let m = Model::load(dir, Device::Cpu).unwrap();
        let e = m.embed(&m.tokenize(PROMPT).unwrap()).unwrap();
        attribution::next_token_logits(&m, &e).unwrap()
    };
    let prepare = |name: &str| {
        let dir =
            std::env::temp_dir().join(format!("gradlens-weights-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        dir
    };
    // Half-precision copies, written with a leading odd-sized tensor so data is unaligned.
    for (dtype, tol) in [(Dtype::F16, 1e-2), (Dtype::BF16, 5e-2)] {
        let dir = prepare(&format!("{dtype:?}"));
        let mut owned: Vec<(String, Vec<u8>, Vec<usize>)> =
            vec![("pad.odd".into(), vec![0u8; 3], vec![3])];
        for (name, view) in st.tensors() {
            let f: Vec<f32> = view
                .data()
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let data: Vec<u8> = match dtype {
                Dtype::F16 => f
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                _ => f
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            owned.push((name, data, view.shape().to_vec()));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = owned
            .iter()
            .map(|(n, d, s)| {
                let dt = if n == "pad.odd" { Dtype::U8 } else { dtype };
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(dt, s.clone(), d).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        assert_close(
            &logits_of(&dir),
            &reference,
            tol,
            &format!("{dtype:?} logits"),
        );
        // Computed as stored (from unaligned data), it is its own f32 decode.
        assert_stored_matches_f32(
            &dir,
            PROMPT,
            &format!("{dtype:?}").to_lowercase(),
            gradlens::Device::Cpu,
            &STORED_CHECK_METHODS,
        );
    }
    // Two shards and an index.
    let dir = prepare("sharded");
    let tensors = st.tensors();
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let mut map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        safetensors::serialize_to_file(part.to_vec(), None, &dir.join(shard)).unwrap();
        for (n, _) in part {
            map.insert(n.clone(), shard.into());
        }
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({ "weight_map": map }).to_string(),
    )
    .unwrap();
    assert_eq!(
        logits_of(&dir),
        reference,
        "sharded weights must give identical logits"
    );
}

#[test]
fn tape_records_only_what_needs_gradients() {
    let model = tiny("tiny-gpt2");
    let ids = model.tokenize(PROMPT).unwrap();
    let x = model
        .embed(&ids)
        .unwrap()
        .reshape([1, ids.len(), 32])
        .unwrap();
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    model.forward(&mut tape, xv).unwrap();
    assert_eq!(tape.node_count(), 0, "an inference pass records nothing");
    let mut tape = Tape::new();
    let xv = tape.input(x);
    model.forward(&mut tape, xv).unwrap();
    assert!(tape.node_count() > 20);
}

#[test]
fn occlusion_is_the_drop_in_f_when_tokens_are_replaced_by_the_baseline() {
    let model = tiny("tiny-llama");
    let ids = model.tokenize(PROMPT).unwrap();
    let (len, d) = (ids.len(), model.hidden_size());
    let x = model.embed(&ids).unwrap().to_vec().unwrap();
    let pad = model
        .embed(&[model.info.pad_token_id.unwrap()])
        .unwrap()
        .to_vec()
        .unwrap();
    let occlusion = |window| Occlusion {
        baseline: Baseline::Pad,
        window,
    };
    let opts = Settings::default();
    let p = Prepared::new(&model, PROMPT, &opts).unwrap();
    let f = |v: Vec<f32>| {
        attribution::scores(
            &model,
            &p.target,
            &Tensor::from_vec(v, [1, len, d], Device::Cpu).unwrap(),
        )
        .unwrap()[0]
    };
    let f_x = f(x.clone());
    let occluded = |from: usize, to: usize| {
        let mut v = x.clone();
        for i in from..to {
            v[i * d..(i + 1) * d].copy_from_slice(&pad);
        }
        f_x - f(v)
    };
    let w1 = attribution::attribute(&model, PROMPT, &occlusion(1), &opts).unwrap();
    let want: Vec<f32> = (0..len).map(|i| occluded(i, i + 1)).collect();
    assert_close(&w1.scores, &want, 1e-5, "window 1");
    let w2 = attribution::attribute(&model, PROMPT, &occlusion(2), &opts).unwrap();
    let drops: Vec<f32> = (0..len - 1).map(|s| occluded(s, s + 2)).collect();
    let want: Vec<f32> = (0..len)
        .map(|i| {
            let cover: Vec<f32> = (i.saturating_sub(1)..=i.min(len - 2))
                .map(|s| drops[s])
                .collect();
            cover.iter().sum::<f32>() / cover.len() as f32
        })
        .collect();
    assert_close(&w2.scores, &want, 1e-5, "window 2");
    let e = attribution::attribute(&model, PROMPT, &occlusion(len + 1), &opts).unwrap_err();
    assert!(e.to_string().contains("--window"), "{e}");
}

/// The registry is what the CLI's flags and help are generated from: every entry builds with
/// its defaults, names are unique, and an option shared by name has one kind.
#[test]
fn every_registered_method_builds_from_its_defaults() {
    use gradlens::attribution::{methods, Values};
    let mut names = std::collections::BTreeSet::new();
    for info in methods::REGISTRY {
        for name in std::iter::once(&info.name).chain(info.aliases) {
            assert!(names.insert(*name), "{name} is registered twice");
        }
        let m = (info.build)(&Values::new()).unwrap_or_else(|e| panic!("{}: {e}", info.name));
        assert_eq!(
            m.name(),
            info.name,
            "{}: build gives another method",
            info.name
        );
        for spec in info.options {
            if let Some(d) = spec.default {
                spec.check(d)
                    .unwrap_or_else(|e| panic!("{}: default of --{}: {e}", info.name, spec.name));
            }
        }
        assert!(!info.summary.is_empty() && !info.cost.is_empty());
    }
    for (spec, users) in methods::all_options() {
        for info in methods::REGISTRY {
            for other in info.options.iter().filter(|o| o.name == spec.name) {
                assert_eq!(
                    other.kind, spec.kind,
                    "--{} in {} and {:?}",
                    spec.name, info.name, users
                );
            }
        }
    }
    assert!(methods::find("ig").is_ok() && methods::find("telepathy").is_err());
}

/// An option a method does not read stays unread, so the CLI reports it as ignored; one it
/// reads only with another option (IG's --max-steps without --tolerance) too.
#[test]
fn options_a_method_does_not_read_stay_unread() {
    use gradlens::attribution::{methods, Values};
    let v = Values::new()
        .with("steps", 8)
        .with("layer", 1)
        .with("max-steps", 50);
    methods::build("integrated-gradients", &v).unwrap();
    assert_eq!(
        v.unread(),
        vec!["layer".to_string(), "max-steps".to_string()]
    );
    let v = Values::new().with("tolerance", 0.01).with("steps", 8);
    methods::build("integrated-gradients", &v).unwrap();
    assert_eq!(v.unread(), vec!["steps".to_string()]);
    // SmoothGrad's base reads its own options from the same values.
    let v = Values::new()
        .with("base", "integrated-gradients")
        .with("steps", 4);
    methods::build("smoothgrad", &v).unwrap();
    assert!(v.unread().is_empty(), "{:?}", v.unread());
    // Out of range, whichever method runs.
    let bad = Values::new().with("epsilon", f32::NAN);
    assert!(methods::check_values(&bad).is_err());
    assert!(methods::build("attnlrp", &bad).is_err());
    assert!(methods::build("smoothgrad", &Values::new().with("base", "deeplift")).is_err());
}

/// Feature ablation with tokens as features is occlusion with a window of one; with words,
/// each word's tokens share `F(x) − F(x with the word at the baseline)`.
#[test]
fn feature_ablation_by_token_is_occlusion_and_by_word_ablates_whole_words() {
    use gradlens::attribution::methods::{feature_ablation::Group, FeatureAblation};
    let model = tiny("tiny-bert-cls");
    let prompt = "the quick brown fox, jumps";
    let opts = Settings {
        target: TargetSpec::Class(1),
        ..Settings::default()
    };
    let run = |m: &dyn gradlens::attribution::Method| {
        attribution::attribute(&model, prompt, m, &opts).unwrap()
    };
    let by_token = run(&FeatureAblation::default());
    let occluded = run(&Occlusion::default());
    assert_close(
        &by_token.scores,
        &occluded.scores,
        1e-5,
        "token = occlusion",
    );
    let by_word = run(&FeatureAblation {
        group: Group::Word,
        ..Default::default()
    });
    // [CLS] the qu ##ic ##k br ##ow ##n fo ##x , ju ##mp ##s [SEP]
    let features: Vec<usize> = by_word.extra("features").unwrap();
    assert_eq!(features, [0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 6, 6, 7]);
    let p = Prepared::new(&model, prompt, &opts).unwrap();
    let (len, d) = (p.ids.len(), model.hidden_size());
    let mut x = p.x.to_vec().unwrap();
    x[2 * d..5 * d].fill(0.0); // "quick" at the zero baseline
    let f = attribution::scores(
        &model,
        &p.target,
        &Tensor::from_vec(x, [1, len, d], Device::Cpu).unwrap(),
    )
    .unwrap()[0];
    for t in 2..5 {
        assert!((by_word.scores[t] - (by_word.target_score - f)).abs() < 1e-5);
    }
}

/// A single-pass method with an automatic target backpropagates through the forward pass
/// that found the target (no second forward): the same bits as a fresh pass with that target
/// named.
#[test]
fn single_pass_methods_reuse_the_target_pass_exactly() {
    for (name, prompt) in [
        ("tiny-llama", PROMPT),
        ("tiny-bert-cls", "the quick brown fox"),
    ] {
        let model = tiny(name);
        for method in [
            "saliency",
            "input-x-gradient",
            "attnlrp",
            "lrp-gamma",
            "guided-backprop",
        ] {
            let m = common::method(method, &[]);
            let auto = attribution::attribute(&model, prompt, m.as_ref(), &with_map()).unwrap();
            let named = Settings {
                target: match name {
                    "tiny-bert-cls" => TargetSpec::Class(auto.target.id.unwrap() as usize),
                    _ => TargetSpec::TokenId(auto.target.id.unwrap()),
                },
                ..with_map()
            };
            let fresh = attribution::attribute(&model, prompt, m.as_ref(), &named).unwrap();
            assert_eq!(auto.map, fresh.map, "{name} {method}");
            assert_eq!(auto.target_score, fresh.target_score, "{name} {method}");
        }
    }
}
