//! Every op's exact backward against a finite difference, on shapes that are not powers of two.
//!
//! The forward runs in f32; the probe loss `Σ r ⊙ y` is accumulated in f64 and differentiated with
//! a fourth-order central stencil, which keeps the truncation error (~h⁴) and f32 rounding
//! (~1e-7/h) both far below the 2e-3 tolerance.

mod common;
use common::rand;
use gradlens::autodiff::{Gradient, Tape, Var};
use gradlens::backend::{Activation, PickKind, SoftmaxMask};
use gradlens::{Device, Tensor};

fn t(data: Vec<f32>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(data, dims.to_vec(), Device::Cpu).unwrap()
}

/// Checks `build`'s backward for every input against the stencil.
fn check(name: &str, shapes: &[&[usize]], build: impl Fn(&mut Tape, &[Var]) -> Var) {
    check_with_step(name, shapes, 1e-2, build)
}

/// As `check`, with the stencil's step `h` (small for kinks such as ReLU's).
fn check_with_step(
    name: &str,
    shapes: &[&[usize]],
    h: f32,
    build: impl Fn(&mut Tape, &[Var]) -> Var,
) {
    let inputs: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand(s.iter().product(), 17 + i as u64, 1.0))
        .collect();
    let eval = |vals: &[Vec<f32>]| -> (Tape, Vec<Var>, Var) {
        let mut tape = Tape::new();
        let vars: Vec<Var> = vals
            .iter()
            .zip(shapes)
            .map(|(v, s)| tape.input(t(v.clone(), s)))
            .collect();
        let y = build(&mut tape, &vars);
        (tape, vars, y)
    };
    let (tape, vars, y) = eval(&inputs);
    let ylen = tape.value(y).numel();
    let r = rand(ylen, 99, 1.0);
    let loss = |vals: &[Vec<f32>]| -> f64 {
        let (tape, _, y) = eval(vals);
        tape.value(y)
            .to_vec()
            .unwrap()
            .iter()
            .zip(&r)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let seed = t(r.clone(), tape.value(y).dims());
    let grads = tape.backward(y, seed, &Gradient, &vars).unwrap();
    for (i, g) in grads.iter().enumerate() {
        let g = g.to_vec().unwrap();
        let mut max_err = 0f64;
        let mut max_g = 0f64;
        for j in 0..inputs[i].len() {
            let at = |delta: f32| {
                let mut v = inputs.clone();
                v[i][j] += delta;
                loss(&v)
            };
            let fd = (8.0 * (at(h) - at(-h)) - (at(2.0 * h) - at(-2.0 * h))) / (12.0 * h as f64);
            max_err = max_err.max((fd - g[j] as f64).abs());
            max_g = max_g.max(fd.abs());
        }
        assert!(
            max_err <= 2e-3 * max_g.max(1.0),
            "{name}: input {i}: error {max_err:.2e} (max |grad| {max_g:.2e})"
        );
    }
}

#[test]
fn linear() {
    let w = t(rand(5 * 7, 3, 0.5), &[5, 7]);
    let b = t(rand(5, 4, 0.5), &[5]);
    check("linear", &[&[2, 3, 7]], |tp, v| {
        tp.linear(v[0], &w, Some(&b)).unwrap()
    });
}

#[test]
fn matmul_every_transpose() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a: &[usize] = if ta { &[3, 5, 4] } else { &[3, 4, 5] };
        let b: &[usize] = if tb { &[3, 6, 5] } else { &[3, 5, 6] };
        check(&format!("matmul {ta} {tb}"), &[a, b], |tp, v| {
            tp.matmul(v[0], v[1], ta, tb).unwrap()
        });
    }
}

#[test]
fn elementwise() {
    check("add", &[&[3, 5], &[3, 5]], |tp, v| {
        tp.add(v[0], v[1]).unwrap()
    });
    check("mul", &[&[3, 5], &[3, 5]], |tp, v| {
        tp.mul(v[0], v[1]).unwrap()
    });
    check("scale", &[&[7]], |tp, v| tp.scale(v[0], -1.7).unwrap());
    let c = t(rand(10, 5, 1.0), &[2, 5]);
    check("add_const", &[&[3, 2, 5]], |tp, v| {
        tp.add_const(v[0], &c).unwrap()
    });
    check("reshape", &[&[3, 4]], |tp, v| {
        tp.reshape(v[0], vec![2, 6]).unwrap()
    });
}

#[test]
fn activations() {
    for f in [
        Activation::GeluErf,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Tanh,
        Activation::Relu,
    ] {
        let h = if f == Activation::Relu { 1e-3 } else { 1e-2 };
        check_with_step(&format!("{f:?}"), &[&[4, 9]], h, |tp, v| {
            let x = tp.scale(v[0], 2.5).unwrap();
            tp.activation(x, f).unwrap()
        });
    }
}

#[test]
fn softmax_plain_and_causal() {
    check("softmax", &[&[3, 7]], |tp, v| {
        tp.softmax(v[0], SoftmaxMask::None).unwrap()
    });
    check("causal softmax", &[&[2, 5, 5]], |tp, v| {
        tp.softmax(v[0], SoftmaxMask::causal(5, 0)).unwrap()
    });
    check("sliding-window softmax", &[&[2, 5, 7]], |tp, v| {
        tp.softmax(
            v[0],
            SoftmaxMask::Causal {
                len: 5,
                offset: 2,
                window: Some(3),
            },
        )
        .unwrap()
    });
}

#[test]
fn norms() {
    let w = t(rand(11, 8, 1.0), &[11]);
    let b = t(rand(11, 9, 1.0), &[11]);
    check("layer_norm", &[&[3, 11]], |tp, v| {
        tp.layer_norm(v[0], &w, &b, 1e-5).unwrap()
    });
    check("rms_norm", &[&[3, 11]], |tp, v| {
        tp.rms_norm(v[0], &w, 1e-6).unwrap()
    });
}

#[test]
fn rope() {
    let (len, hd) = (5, 6);
    let cos = t(
        (0..len * hd / 2).map(|i| (i as f32 * 0.3).cos()).collect(),
        &[len, hd / 2],
    );
    let sin = t(
        (0..len * hd / 2).map(|i| (i as f32 * 0.3).sin()).collect(),
        &[len, hd / 2],
    );
    check("rope", &[&[2, 3, len, hd]], |tp, v| {
        tp.rope(v[0], &cos, &sin).unwrap()
    });
    // Partial: the first 4 of 6 dimensions rotate.
    let rot = |f: fn(f32) -> f32| t((0..len * 2).map(|i| f(i as f32 * 0.3)).collect(), &[len, 2]);
    let (cos, sin) = (rot(f32::cos), rot(f32::sin));
    check("partial rope", &[&[2, 3, len, hd]], |tp, v| {
        tp.rope(v[0], &cos, &sin).unwrap()
    });
}

#[test]
fn layout() {
    check("split_heads", &[&[2, 5, 12]], |tp, v| {
        tp.split_heads(v[0], 3).unwrap()
    });
    check("merge_heads", &[&[2, 3, 5, 4]], |tp, v| {
        tp.merge_heads(v[0]).unwrap()
    });
    check("repeat_heads", &[&[2, 3, 5, 4]], |tp, v| {
        tp.repeat_heads(v[0], 3).unwrap()
    });
    check("select_position", &[&[3, 5, 7]], |tp, v| {
        tp.select_position(v[0], 2).unwrap()
    });
}

#[test]
fn reductions_and_targets() {
    check("weighted_seq_sum", &[&[2, 5, 7]], |tp, v| {
        tp.weighted_seq_sum(v[0], &[0.1, 0.5, -0.2, 0.3, 1.0])
            .unwrap()
    });
    let c = t(rand(7, 2, 1.0), &[7]);
    check("cosine", &[&[3, 7]], |tp, v| {
        tp.cosine_to_const(v[0], &c).unwrap()
    });
    for kind in [PickKind::Prob, PickKind::LogProb] {
        check(&format!("pick {kind:?}"), &[&[3, 9]], |tp, v| {
            tp.pick_softmax(v[0], 4, kind).unwrap()
        });
    }
}

#[test]
fn composed_attention_block() {
    // Softmax(Q Kᵀ/√d) V with shared inputs: gradients accumulate across several paths.
    check("attention", &[&[1, 4, 6]], |tp, v| {
        let q = tp.split_heads(v[0], 2).unwrap();
        let s = tp.matmul(q, q, false, true).unwrap();
        let s = tp.scale(s, 0.5).unwrap();
        let p = tp.softmax(s, SoftmaxMask::causal(4, 0)).unwrap();
        let o = tp.matmul(p, q, false, false).unwrap();
        tp.merge_heads(o).unwrap()
    });
    // Gemma 2's soft-capped scores, c·tanh(s/c) with a cap they reach, under a sliding window:
    // the composition `models::layers::Attention` runs for a capped model.
    check("soft-capped windowed attention", &[&[1, 5, 6]], |tp, v| {
        let q = tp.split_heads(v[0], 2).unwrap();
        let s = tp.matmul(q, q, false, true).unwrap();
        let s = tp.scale(s, 0.8 / 0.5).unwrap();
        let s = tp.activation(s, Activation::Tanh).unwrap();
        let s = tp.scale(s, 0.5).unwrap();
        let mask = SoftmaxMask::Causal {
            len: 5,
            offset: 0,
            window: Some(2),
        };
        let p = tp.softmax(s, mask).unwrap();
        let o = tp.matmul(p, q, false, false).unwrap();
        tp.merge_heads(o).unwrap()
    });
}

#[test]
fn fused_attention() {
    // The whole `softmax(s · Q Kᵀ) V`, across the CPU kernel's 64-row blocks, behind 2 cached
    // keys under a window; and with Q = K = V shared and no mask.
    let mask = SoftmaxMask::Causal {
        len: 67,
        offset: 2,
        window: Some(40),
    };
    check(
        "attention",
        &[&[1, 67, 3], &[1, 69, 3], &[1, 69, 3]],
        |tp, v| tp.attention(v[0], v[1], v[2], 0.7, mask).unwrap(),
    );
    check("attention q = k = v", &[&[2, 5, 3]], |tp, v| {
        tp.attention(v[0], v[0], v[0], 0.5, SoftmaxMask::None)
            .unwrap()
    });
}

#[test]
fn fused_attention_probabilities() {
    // Awkward sizes, a causal block behind 2 cached keys, and Q = K shared (both paths add up).
    check("attention_probs", &[&[2, 3, 5], &[2, 5, 5]], |tp, v| {
        tp.attention_probs(v[0], v[1], 0.7, SoftmaxMask::causal(3, 2))
            .unwrap()
    });
    check(
        "attention_probs, sliding window",
        &[&[2, 4, 5], &[2, 6, 5]],
        |tp, v| {
            tp.attention_probs(
                v[0],
                v[1],
                0.7,
                SoftmaxMask::Causal {
                    len: 4,
                    offset: 2,
                    window: Some(3),
                },
            )
            .unwrap()
        },
    );
    check("attention_probs q = k", &[&[1, 2, 4, 3]], |tp, v| {
        let p = tp
            .attention_probs(v[0], v[0], 0.5, SoftmaxMask::None)
            .unwrap();
        tp.matmul(p, v[0], false, false).unwrap()
    });
}
