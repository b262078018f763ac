//! Every GPU kernel (wgpu and CUDA, whichever this build has) against the CPU backend, on
//! shapes that are not multiples of the workgroup (256) or the matmul tile (64). Run with
//! `--features wgpu` and/or `--features cuda`. With `CI=true` a missing wgpu adapter fails
//! instead of skipping; so does a missing CUDA device with `GRADLENS_REQUIRE_CUDA=1`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]
#![allow(clippy::cloned_ref_to_slice_refs)] // inputs are listed as owned vectors on purpose

mod common;
use common::rand;
use gradlens::backend::{
    backend_for, Activation, AttentionDims, Backend, MatmulSpec, PickKind, SoftmaxMask,
};
use gradlens::tensor::{Storage, Tensor};
use gradlens::Device;

/// The GPU backends to test, as `backend_for` hands them out (behind the shape checks): each
/// one this build has and this machine can open.
fn gpus() -> Vec<&'static dyn Backend> {
    let mut all: Vec<&'static dyn Backend> = Vec::new();
    #[cfg(feature = "wgpu")]
    if common::wgpu_backend().is_some() {
        all.push(backend_for(Device::Wgpu).unwrap());
    }
    #[cfg(feature = "cuda")]
    if common::cuda_backend().is_some() {
        all.push(backend_for(Device::Cuda).unwrap());
    }
    all
}

fn cpu() -> &'static dyn Backend {
    backend_for(Device::Cpu).unwrap()
}

/// Both matmul kernels of a GPU backend (tiled and one thread per output), whichever the
/// backend would pick for this shape.
fn both_matmul_kernels(
    be: &dyn Backend,
    x: &[Storage],
    spec: &MatmulSpec,
) -> gradlens::Result<Vec<Storage>> {
    match be.device() {
        #[cfg(feature = "wgpu")]
        gradlens::Device::Wgpu => {
            let g = gradlens::backend::wgpu::backend()?;
            Ok(vec![
                g.matmul_with(&x[0], &x[1], spec, true)?,
                g.matmul_with(&x[0], &x[1], spec, false)?,
            ])
        }
        #[cfg(feature = "cuda")]
        gradlens::Device::Cuda => {
            let g = gradlens::backend::cuda::backend()?;
            Ok(vec![
                g.matmul_with(&x[0], &x[1], spec, true)?,
                g.matmul_with(&x[0], &x[1], spec, false)?,
            ])
        }
        _ => {
            let c = || be.matmul(&x[0], &x[1], spec);
            Ok(vec![c()?, c()?])
        }
    }
}

type Op = dyn Fn(&dyn Backend, &[Storage]) -> gradlens::Result<Vec<Storage>>;

/// Runs `op` on both backends over the same inputs and compares every output.
fn check(name: &str, inputs: &[Vec<f32>], op: &Op) {
    for gpu in gpus() {
        check_on(gpu, name, inputs, op);
    }
}

fn check_on(gpu: &dyn Backend, name: &str, inputs: &[Vec<f32>], op: &Op) {
    let cpu = cpu();
    let run = |b: &dyn Backend| -> Vec<Vec<f32>> {
        let ins: Vec<Storage> = inputs
            .iter()
            .map(|v| b.upload(v.clone()).unwrap())
            .collect();
        op(b, &ins)
            .unwrap_or_else(|e| panic!("{name} on {}: {e}", b.device()))
            .iter()
            .map(|s| b.download(s).unwrap())
            .collect()
    };
    let (want, got) = (run(cpu), run(gpu));
    assert_eq!(want.len(), got.len(), "{name}: output count");
    for (o, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.len(), g.len(), "{name} output {o}: length");
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (a, b)) in w.iter().zip(g).enumerate() {
            assert!(
                (a - b).abs() <= 2e-5 * scale + 1e-4 * a.abs(),
                "{name} output {o}[{i}]: cpu {a}, {} {b} (scale {scale})",
                gpu.device()
            );
        }
    }
}

const ACTS: [Activation; 5] = [
    Activation::GeluErf,
    Activation::GeluTanh,
    Activation::Silu,
    Activation::Tanh,
    Activation::Relu,
];

#[test]
fn matmul_every_transpose_and_broadcast() {
    for &(batch, m, n, k) in &[
        (1, 1, 1, 1),
        (3, 67, 45, 19),
        (2, 5, 130, 70),
        (1, 129, 3, 257),
    ] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                for (a_batched, b_batched) in [(true, true), (true, false), (false, true)] {
                    let spec = MatmulSpec {
                        batch,
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                        a_batched,
                        b_batched,
                    };
                    let a = rand(if a_batched { batch } else { 1 } * m * k, 1, 1.0);
                    let b = rand(if b_batched { batch } else { 1 } * k * n, 2, 1.0);
                    // Both kernels, whichever this adapter would pick.
                    check(&format!("matmul {spec:?}"), &[a, b], &move |be, x| {
                        both_matmul_kernels(be, x, &spec)
                    });
                }
            }
        }
    }
}

#[test]
fn elementwise() {
    let n = 1000;
    let (a, b) = (rand(n, 3, 2.0), rand(n, 4, 2.0));
    check("add", &[a.clone(), b.clone()], &move |be, x| {
        Ok(vec![be.add(&x[0], &x[1])?])
    });
    check("mul", &[a.clone(), b.clone()], &move |be, x| {
        Ok(vec![be.mul(&x[0], &x[1])?])
    });
    check("scale", &[a.clone()], &move |be, x| {
        Ok(vec![be.scale(&x[0], -0.37)?])
    });
    check("add_broadcast", &[a, rand(40, 5, 1.0)], &move |be, x| {
        Ok(vec![be.add_broadcast(&x[0], &x[1])?])
    });
}

#[test]
fn activations_forward_backward_guided_rescale() {
    let n = 777;
    let x = rand(n, 6, 6.0);
    let g = rand(n, 7, 1.0);
    for f in ACTS {
        check(&format!("activation {f:?}"), &[x.clone()], &move |be, v| {
            Ok(vec![be.activation(&v[0], f)?])
        });
        check(
            &format!("activation_backward {f:?}"),
            &[x.clone(), g.clone()],
            &move |be, v| Ok(vec![be.activation_backward(&v[0], &v[1], f)?]),
        );
        check(
            &format!("guided_backward {f:?}"),
            &[x.clone(), g.clone()],
            &move |be, v| Ok(vec![be.guided_backward(&v[0], &v[1], f)?]),
        );
        // Pairs with tiny |Δx| take the midpoint-slope branch.
        let mut xs = rand(2 * 301, 8, 3.0);
        xs[301] = xs[0] + 1e-8;
        check(
            &format!("rescale_halves {f:?}"),
            &[xs, rand(602, 9, 1.0)],
            &move |be, v| {
                let y = be.activation(&v[0], f)?;
                Ok(vec![be.rescale_halves(&v[0], &y, &v[1], f)?])
            },
        );
    }
}

#[test]
fn softmax_masks_and_picks() {
    let (rows, cols) = (3 * 7, 7);
    let x = rand(rows * cols, 10, 4.0);
    let g = rand(rows * cols, 11, 1.0);
    let windowed = SoftmaxMask::Causal {
        len: 7,
        offset: 0,
        window: Some(3),
    };
    for mask in [SoftmaxMask::None, SoftmaxMask::causal(7, 0), windowed] {
        check(&format!("softmax {mask:?}"), &[x.clone()], &move |be, v| {
            Ok(vec![be.softmax(&v[0], cols, mask)?])
        });
    }
    let xk = rand(2 * 3 * 9, 12, 4.0);
    check("softmax causal with cache", &[xk], &move |be, v| {
        Ok(vec![be.softmax(&v[0], 9, SoftmaxMask::causal(3, 6))?])
    });
    check("softmax_backward", &[x.clone(), g], &move |be, v| {
        let y = be.softmax(&v[0], cols, SoftmaxMask::None)?;
        Ok(vec![be.softmax_backward(&y, &v[1], cols, 0.37)?])
    });
    // A long row, as over a vocabulary.
    let (r, c) = (3, 1031);
    let logits = rand(r * c, 13, 8.0);
    for kind in [PickKind::Prob, PickKind::LogProb] {
        check(
            &format!("pick {kind:?}"),
            &[logits.clone()],
            &move |be, v| Ok(vec![be.pick_softmax(&v[0], c, 517, kind)?]),
        );
        check(
            &format!("pick_backward {kind:?}"),
            &[logits.clone(), rand(r, 14, 1.0)],
            &move |be, v| Ok(vec![be.pick_softmax_backward(&v[0], &v[1], c, 517, kind)?]),
        );
    }
}

#[test]
fn fused_attention_probabilities() {
    // Head size 67 and 300 keys (more than one workgroup's worth), with and without a causal
    // mask, and with 290 cached keys in front of a block of 10 queries.
    let cases = [
        (6, 13, 13, 67, SoftmaxMask::None),
        (6, 13, 13, 67, SoftmaxMask::causal(13, 0)),
        (2, 300, 300, 5, SoftmaxMask::causal(300, 0)),
        (3, 10, 300, 9, SoftmaxMask::causal(10, 290)),
        // A sliding window of 257 keys (wider than a workgroup), behind cached keys and not.
        (
            2,
            300,
            300,
            7,
            SoftmaxMask::Causal {
                len: 300,
                offset: 0,
                window: Some(257),
            },
        ),
        (
            3,
            10,
            300,
            9,
            SoftmaxMask::Causal {
                len: 10,
                offset: 290,
                window: Some(257),
            },
        ),
    ];
    for (i, (batch, q_len, k_len, head_dim, mask)) in cases.into_iter().enumerate() {
        let dims = AttentionDims {
            batch,
            q_len,
            k_len,
            head_dim,
        };
        let q = rand(batch * q_len * head_dim, 40 + i as u64, 1.0);
        let k = rand(batch * k_len * head_dim, 50 + i as u64, 1.0);
        check(
            &format!("attention_probs {dims:?} {mask:?}"),
            &[q, k],
            &move |be, v| Ok(vec![be.attention_probs(&v[0], &v[1], dims, 0.3, mask)?]),
        );
    }
}

#[test]
fn norms_and_their_rules() {
    let (rows, cols) = (5, 300);
    let x = rand(rows * cols, 15, 3.0);
    let w = rand(cols, 16, 1.0);
    let b = rand(cols, 17, 1.0);
    let g = rand(rows * cols, 18, 1.0);
    check("layer_norm", &[x.clone(), w.clone(), b], &move |be, v| {
        let (y, xh, r) = be.layer_norm(&v[0], &v[1], &v[2], cols, 1e-5)?;
        Ok(vec![y, xh, r])
    });
    check(
        "layer_norm_backward",
        &[x.clone(), w.clone(), g.clone()],
        &move |be, v| {
            let (_, xh, r) = be.layer_norm(&v[0], &v[1], &v[1], cols, 1e-5)?;
            Ok(vec![
                be.layer_norm_backward(&v[2], &xh, &r, &v[1], cols)?,
                be.layer_norm_const_backward(&v[2], &r, &v[1], cols)?,
            ])
        },
    );
    check("rms_norm", &[x.clone(), w.clone(), g], &move |be, v| {
        let (y, r) = be.rms_norm(&v[0], &v[1], cols, 1e-6)?;
        let back = be.rms_norm_backward(&v[2], &v[0], &r, &v[1], cols)?;
        let cst = be.rms_norm_const_backward(&v[2], &r, &v[1], cols)?;
        Ok(vec![y, r, back, cst])
    });
}

#[test]
fn rope_forward_and_inverse() {
    let (rows, len, hd) = (6, 3, 10);
    let x = rand(rows * len * hd, 19, 1.0);
    let cos = rand(len * hd / 2, 20, 1.0);
    let sin = rand(len * hd / 2, 21, 1.0);
    for inverse in [false, true] {
        check(
            &format!("rope inverse={inverse}"),
            &[x.clone(), cos.clone(), sin.clone()],
            &move |be, v| Ok(vec![be.rope(&v[0], &v[1], &v[2], len, hd, inverse)?]),
        );
    }
    // A partial rotary factor: tables for the first 6 of 10 dimensions, the other 4 pass.
    let (cos, sin) = (rand(len * 3, 22, 1.0), rand(len * 3, 23, 1.0));
    for inverse in [false, true] {
        check(
            &format!("partial rope inverse={inverse}"),
            &[x.clone(), cos.clone(), sin.clone()],
            &move |be, v| Ok(vec![be.rope(&v[0], &v[1], &v[2], len, hd, inverse)?]),
        );
    }
}

#[test]
fn layout_kernels() {
    let dims = [2, 3, 5, 7];
    let x = rand(210, 22, 1.0);
    check("permute_0213", &[x.clone()], &move |be, v| {
        Ok(vec![be.permute_0213(&v[0], dims)?])
    });
    check("repeat_heads", &[x.clone()], &move |be, v| {
        Ok(vec![be.repeat_heads(&v[0], dims, 3)?])
    });
    check("sum_head_groups", &[rand(630, 23, 1.0)], &move |be, v| {
        Ok(vec![be.sum_head_groups(&v[0], dims, 3)?])
    });
    check(
        "concat_seq",
        &[x, rand(2 * 3 * 2 * 7, 24, 1.0)],
        &move |be, v| Ok(vec![be.concat_seq(&v[0], &v[1], dims, 2)?]),
    );
    check("gather_rows", &[rand(11 * 13, 25, 1.0)], &move |be, v| {
        Ok(vec![be.gather_rows(&v[0], &[3, 0, 10, 3, 7], 13)?])
    });
    let d3 = [3, 5, 9];
    check(
        "select/scatter_position",
        &[rand(135, 26, 1.0)],
        &move |be, v| {
            let s = be.select_position(&v[0], d3, 4)?;
            let back = be.scatter_position(&s, d3, 2)?;
            Ok(vec![s, back])
        },
    );
    let w = [0.1, 0.0, 0.3, 0.2, 0.4];
    check(
        "weighted_seq_sum/broadcast_seq",
        &[rand(135, 27, 1.0)],
        &move |be, v| {
            let s = be.weighted_seq_sum(&v[0], &w, d3)?;
            let back = be.broadcast_seq(&s, &w, d3)?;
            Ok(vec![s, back])
        },
    );
}

#[test]
fn cosine_and_its_rule() {
    let d = 263;
    let x = rand(4 * d, 28, 1.0);
    let c = rand(d, 29, 1.0);
    let g = rand(4, 30, 1.0);
    check("cosine", &[x, c, g], &move |be, v| {
        Ok(vec![
            be.cosine_rows(&v[0], &v[1], d)?,
            be.cosine_rows_backward(&v[0], &v[1], &v[2], d)?,
            be.cosine_const_norm_backward(&v[0], &v[1], &v[2], d)?,
        ])
    });
}

#[test]
fn lrp_and_deeplift_rules() {
    let n = 513;
    let num = rand(n, 31, 1.0);
    let mut den = rand(n, 32, 1.0);
    den[0] = 0.0;
    check(
        "stabilized_ratio",
        &[num, den, rand(n, 33, 1.0)],
        &move |be, v| Ok(vec![be.stabilized_ratio(&v[0], &v[1], &v[2], 1e-3)?]),
    );
    // Rows of a [inputs; references] softmax batch: the second row has Δx = 0 (exact branch).
    let (rows, cols) = (2 * 6, 6);
    let mut x = rand(rows * cols, 35, 2.0);
    let h = rows * cols / 2;
    for j in 0..cols {
        x[h + cols + j] = x[cols + j];
    }
    for mask in [
        SoftmaxMask::None,
        SoftmaxMask::causal(3, 0),
        SoftmaxMask::Causal {
            len: 3,
            offset: 0,
            window: Some(2),
        },
    ] {
        check(
            &format!("rank1_rescale_halves {mask:?}"),
            &[x.clone(), rand(rows * cols, 36, 1.0)],
            &move |be, v| {
                let y = be.softmax(&v[0], cols, mask)?;
                let exact = be.softmax_backward(&y, &v[1], cols, 1.0)?;
                Ok(vec![be.rank1_rescale_halves(
                    &v[0], &y, &v[1], &exact, cols, cols, mask,
                )?])
            },
        );
    }
}

/// Path points are a composition (a matmul with `k = 1`, then a broadcast add), with the same
/// values on every backend.
#[test]
fn path_points() {
    let (x, baseline) = (rand(301, 37, 1.0), rand(301, 38, 1.0));
    let alphas = [0.0, 0.013, 0.5, 0.77, 1.0];
    let points = |device| {
        let t = |v: &Vec<f32>| Tensor::from_vec(v.clone(), [301], device).unwrap();
        gradlens::ops::interpolate(&t(&x), &t(&baseline), &alphas)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let want = points(Device::Cpu);
    for gpu in gpus() {
        let got = points(gpu.device());
        let worst = want
            .iter()
            .zip(&got)
            .map(|(w, g)| (w - g).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-6,
            "{}: path points differ by {worst}",
            gpu.device()
        );
    }
}

/// Operands that do not fit are refused with the same error on every backend, before any
/// kernel runs (one checked layer in front of all of them).
#[test]
fn bad_shapes_give_the_same_error_on_every_backend() {
    type Call = fn(&dyn Backend, &[Storage]) -> gradlens::Result<Storage>;
    let calls: [(&str, Vec<usize>, Call); 5] = [
        ("add", vec![3, 4], |b, v| b.add(&v[0], &v[1])),
        ("softmax", vec![7], |b, v| {
            b.softmax(&v[0], 3, SoftmaxMask::None)
        }),
        ("rms_norm_backward", vec![6, 6, 3, 3], |b, v| {
            b.rms_norm_backward(&v[0], &v[1], &v[2], &v[3], 3)
        }),
        ("token id 2", vec![6], |b, v| b.gather_rows(&v[0], &[2], 3)),
        ("matmul", vec![6, 5], |b, v| {
            let spec = MatmulSpec {
                batch: 1,
                m: 2,
                n: 2,
                k: 3,
                trans_a: false,
                trans_b: false,
                a_batched: false,
                b_batched: false,
            };
            b.matmul(&v[0], &v[1], &spec)
        }),
    ];
    let error = |be: &dyn Backend, lens: &[usize], call: Call| -> String {
        let v: Vec<Storage> = lens
            .iter()
            .map(|&n| be.upload(vec![1.0; n]).unwrap())
            .collect();
        match call(be, &v) {
            Ok(_) => panic!("{} accepted a bad shape", be.device()),
            Err(e) => e.to_string(),
        }
    };
    // Each call's error names the primitive (or, for a look-up, the id out of range).
    for (name, lens, call) in calls {
        let want = error(cpu(), &lens, call);
        assert!(want.contains(name), "{name}: {want}");
        for gpu in gpus() {
            assert_eq!(error(gpu, &lens, call), want, "{name} on {}", gpu.device());
        }
    }
}

#[test]
fn zeros_upload_download_round_trip() {
    for gpu in gpus() {
        let v = rand(1234, 40, 1.0);
        assert_eq!(gpu.download(&gpu.upload(v.clone()).unwrap()).unwrap(), v);
        assert!(gpu
            .download(&gpu.zeros(517).unwrap())
            .unwrap()
            .iter()
            .all(|&x| x == 0.0));
        assert!(gpu
            .download(&gpu.upload(Vec::new()).unwrap())
            .unwrap()
            .is_empty());
    }
}

#[test]
fn shape_errors_are_reported_not_launched() {
    for gpu in gpus() {
        let a = gpu.upload(vec![1.0; 6]).unwrap();
        let b = gpu.upload(vec![1.0; 5]).unwrap();
        assert!(gpu.add(&a, &b).unwrap_err().to_string().contains("add"));
        let e = gpu.gather_rows(&a, &[9], 3).unwrap_err().to_string();
        assert!(e.contains("token id 9"), "{e}");
        // Two rows of 3 with five gradients, then a column outside the rows.
        for (g, col) in [(&b, 1), (&gpu.upload(vec![1.0; 2]).unwrap(), 3)] {
            let e = gpu
                .pick_softmax_backward(&a, g, 3, col, PickKind::Prob)
                .unwrap_err()
                .to_string();
            assert!(e.contains("pick_softmax_backward"), "{e}");
        }
    }
}

/// The CUDA backend's own NVRTC path compiles every kernel file for the GPU machines'
/// architectures (A100 and H100). Needs libnvrtc only; CI provides it, elsewhere a missing
/// NVRTC skips.
#[cfg(feature = "cuda")]
#[test]
fn cuda_kernels_compile_through_the_backend() {
    for arch in ["sm_80", "sm_90"] {
        match gradlens::backend::cuda::compile_kernels(arch) {
            Ok(files) => {
                assert!(files.len() >= 11, "{files:?}");
                for (file, bytes) in files {
                    assert!(bytes > 0, "{file} for {arch}: empty CUBIN");
                }
            }
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and the CUDA kernels did not compile for {arch}: {e}")
            }
            Err(e) => eprintln!("SKIP: {e}"),
        }
    }
}
