//! Rule sets: parity with LXT (AttnLRP, CP-LRP) and the properties METHODS.md lists.

mod common;
use common::*;
use gradlens::attribution::{self, Options, Prepared, TargetSpec};
use gradlens::autodiff::RuleSet;
use gradlens::rules::Lrp;

fn relevance(
    model: &gradlens::Model,
    ids: &[u32],
    target: TargetSpec,
    rules: &dyn RuleSet,
) -> Vec<f32> {
    let prompt_ids = ids.to_vec();
    let x = model.embed(&prompt_ids).unwrap();
    let t = attribution::Target::resolve(model, &x, &target, Default::default()).unwrap();
    let xb = x.reshape([1, ids.len(), model.hidden_size()]).unwrap();
    let (_, g) = attribution::gradients_with(model, &t, &xb, rules).unwrap();
    g.to_vec()
        .unwrap()
        .iter()
        .zip(x.to_vec().unwrap())
        .map(|(g, x)| g * x)
        .collect()
}

#[test]
fn attnlrp_and_cp_lrp_match_lxt() {
    let cases = [
        ("tiny-llama", "attnlrp"),
        ("tiny-llama", "cp-lrp"),
        ("tiny-gpt2", "attnlrp"),
        ("tiny-gpt2", "cp-lrp"),
        ("tiny-bert-cls", "attnlrp"),
    ];
    for (name, variant) in cases {
        let fx = fixture(&format!("lxt-{name}-{variant}"));
        let model = tiny(name);
        let target = if name == "tiny-bert-cls" {
            TargetSpec::Class(1)
        } else {
            TargetSpec::TokenId(fx["target"].as_u64().unwrap() as u32)
        };
        let rules = if variant == "attnlrp" {
            Lrp::attn_lrp(1e-6)
        } else {
            Lrp::cp_lrp(1e-6)
        };
        let r = relevance(&model, &ids(&fx["token_ids"]), target, &rules);
        assert_close(
            &r,
            &floats(&fx["relevance"]),
            1e-3,
            &format!("{name} {variant} relevance"),
        );
    }
}
