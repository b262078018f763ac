//! Criterion benches: forward, saliency and integrated gradients on the tiny Llama fixture (always
//! present) and on MiniLM when scripts/fetch-models.sh has fetched it.
//! Run: cargo bench --bench attribution

use criterion::{criterion_group, criterion_main, Criterion};
use gradlens::attribution::methods::{IntegratedGradients, Saliency};
use gradlens::attribution::{self, Method, Settings, TargetSpec};
use gradlens::autodiff::Tape;
use gradlens::{Device, Model};
use std::path::Path;

fn bench_model(c: &mut Criterion, name: &str, model: &Model, prompt: &str, target: TargetSpec) {
    let ids = model.tokenize(prompt).unwrap();
    let x = model
        .embed(&ids)
        .unwrap()
        .reshape([1, ids.len(), model.hidden_size()])
        .unwrap();
    c.bench_function(&format!("{name}/forward"), |b| {
        b.iter(|| {
            let mut tape = Tape::new();
            let xv = tape.constant(x.clone());
            model.forward(&mut tape, xv).unwrap()
        })
    });
    let ig = IntegratedGradients {
        steps: 50,
        ..Default::default()
    };
    let methods: [&dyn Method; 2] = [&Saliency, &ig];
    for method in methods {
        let opts = Settings {
            target: target.clone(),
            ..Settings::default()
        };
        c.bench_function(&format!("{name}/{}", method.name()), |b| {
            b.iter(|| attribution::attribute(model, prompt, method, &opts).unwrap())
        });
    }
}

fn benches(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let llama = Model::load(&root.join("tests/fixtures/models/tiny-llama"), Device::Cpu).unwrap();
    bench_model(
        c,
        "tiny-llama",
        &llama,
        "Language models predict the next",
        TargetSpec::Auto,
    );
    let minilm = root.join("models/minilm");
    if minilm.join("model.safetensors").exists() {
        let m = Model::load(&minilm, Device::Cpu).unwrap();
        let target = TargetSpec::Compare("A fast auburn fox leaps above a sleepy hound.".into());
        bench_model(
            c,
            "minilm",
            &m,
            "The quick brown fox jumps over the lazy dog.",
            target,
        );
    }
}

criterion_group! {
    name = attribution_benches;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(attribution_benches);
