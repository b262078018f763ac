//! Criterion benches of the wgpu kernels, as throughput (FLOP/s for matmul, bytes/s for the
//! memory-bound kernels), and end to end (SmolLM2 saliency and AttnLRP when fetched). Each
//! iteration reads the result back, so it times the kernel and not just its submission.
//! Run: cargo bench --features wgpu --bench wgpu_kernels
//! Lavapipe timings are not performance; run this on a real GPU.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gradlens::attribution::methods::{AttnLrp, Saliency};
use gradlens::attribution::{self, Method, Settings};
use gradlens::backend::{Backend, MatmulSpec, SoftmaxMask};
use gradlens::{Device, Model};
use std::path::Path;

fn benches(c: &mut Criterion) {
    let gpu = match gradlens::backend::wgpu::backend() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("no wgpu adapter: {e}");
            return;
        }
    };
    eprintln!("adapter: {}", gpu.adapter_name());

    // A 32-step chunk of a 5-token prompt through SmolLM2's MLP up-projection, and its LM head.
    let mut g = c.benchmark_group("wgpu/matmul");
    g.sample_size(10);
    for (m, n, k) in [(160, 1536, 576), (32, 49152, 576)] {
        let a = gpu.upload(vec![0.5; m * k]).unwrap();
        let b = gpu.upload(vec![0.25; n * k]).unwrap();
        let spec = MatmulSpec {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: true,
            a_batched: true,
            b_batched: false,
        };
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for tiled in [true, false] {
            let name = if tiled { "tiled" } else { "rows" };
            g.bench_with_input(
                BenchmarkId::new(name, format!("{m}x{n}x{k}")),
                &spec,
                |bch, spec| {
                    bch.iter(|| {
                        let c = gpu.matmul_with(&a, &b, spec, tiled).unwrap();
                        gpu.download(&c).unwrap()
                    })
                },
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("wgpu/memory-bound");
    g.sample_size(10);
    let (rows, cols) = (32 * 9 * 5, 4096);
    let x = gpu.upload(vec![0.1; rows * cols]).unwrap();
    g.throughput(Throughput::Bytes((2 * 4 * rows * cols) as u64));
    g.bench_function("softmax", |bch| {
        bch.iter(|| {
            gpu.download(&gpu.softmax(&x, cols, SoftmaxMask::None).unwrap())
                .unwrap()
        })
    });
    g.bench_function("activation gelu", |bch| {
        bch.iter(|| {
            let y = gpu
                .activation(&x, gradlens::backend::Activation::GeluTanh)
                .unwrap();
            gpu.download(&y).unwrap()
        })
    });
    g.finish();

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/smollm2.gguf");
    if path.exists() {
        let model = Model::load(&path, Device::Wgpu).unwrap();
        let mut g = c.benchmark_group("wgpu/smollm2");
        g.sample_size(10);
        let attn_lrp = AttnLrp::default();
        let methods: [&dyn Method; 2] = [&Saliency, &attn_lrp];
        for method in methods {
            g.bench_function(method.name(), |bch| {
                bch.iter(|| {
                    attribution::attribute(
                        &model,
                        "The capital of France is",
                        method,
                        &Settings::default(),
                    )
                    .unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(wgpu_benches, benches);
criterion_main!(wgpu_benches);
