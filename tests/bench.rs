//! `gradlens bench` on the tiny Llama with a short budget, on the CPU and on each GPU backend
//! this machine has (lavapipe in CI): every kernel row passes its check against the f64
//! reference, and the JSON record has every field `scripts/bench-compare.py` and a reader need.

mod common;

use serde_json::Value;
use std::process::Command;

/// One run's JSON record on `device` (its `--json` file, with the table on stdout).
fn bench(device: &str) -> Value {
    let dir = std::env::temp_dir().join(format!("gradlens-bench-{device}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("record.json");
    let model = common::root().join("tests/fixtures/models/tiny-llama");
    let out = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(["bench", "--device", device, "--budget", "2", "--model"])
        .arg(&model)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench on {device} failed: {}\n{table}",
        String::from_utf8_lossy(&out.stderr)
    );
    for heading in [
        "Limits",
        "Kernels",
        "End to end",
        "x·Wᵀ (forward)",
        "attention backward",
    ] {
        assert!(
            table.contains(heading),
            "{device}: no {heading:?} in the table:\n{table}"
        );
    }
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    record
}

fn check_record(r: &Value, device: &str) {
    for field in ["gradlens", "revision", "tolerance"] {
        assert!(!r[field].is_null(), "{device}: no {field}");
    }
    let machine = &r["machine"];
    for field in ["cpu", "cpu_flags", "threads", "device", "os"] {
        assert!(!machine[field].is_null(), "{device}: no machine.{field}");
    }
    assert!(machine["device"].as_str().unwrap().starts_with(device));
    let limits = &r["limits"];
    for field in ["read_gb_s", "copy_gb_s", "fma_gflop_s"] {
        let v = limits[field].as_f64().unwrap_or(0.0);
        assert!(v.is_finite() && v > 0.0, "{device}: limits.{field} is {v}");
    }
    for field in ["read_method", "copy_method", "fma_method"] {
        assert!(limits[field].as_str().is_some_and(|s| !s.is_empty()));
    }
    let kernels = r["kernels"].as_array().unwrap();
    // Every family, and on the CPU every variant of the model's format side by side.
    let families: std::collections::BTreeSet<&str> = kernels
        .iter()
        .map(|k| k["family"].as_str().unwrap())
        .collect();
    for f in [
        "x·Wᵀ (forward)",
        "g·W (input gradient)",
        "attention forward",
        "attention backward",
        "rms norm forward",
        "rms norm backward",
        "silu forward",
        "silu backward",
        "rope",
        "softmax (causal)",
        "path points",
        "quadrature sum",
    ] {
        assert!(families.contains(f), "{device}: no {f} row");
    }
    let formats: std::collections::BTreeSet<&str> = kernels
        .iter()
        .map(|k| k["format"].as_str().unwrap())
        .collect();
    for f in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"] {
        assert!(formats.contains(f), "{device}: no {f} weight product");
    }
    for k in kernels {
        let what = format!("{device} {} {} {}", k["family"], k["variant"], k["format"]);
        assert_eq!(
            k["passed"], true,
            "{what}: failed its check ({})",
            k["max_rel_error"]
        );
        for field in [
            "shape",
            "median_s",
            "spread",
            "runs",
            "bytes",
            "flops",
            "gb_s",
            "gb_fraction",
            "gflop_s",
            "gflop_fraction",
            "bound",
            "max_rel_error",
        ] {
            assert!(!k[field].is_null(), "{what}: no {field}");
        }
        assert!(k["median_s"].as_f64().unwrap() > 0.0, "{what}");
    }
    if device == "cpu" {
        let variants: std::collections::BTreeSet<&str> = kernels
            .iter()
            .map(|k| k["variant"].as_str().unwrap())
            .collect();
        for v in ["portable", "sgemm (f32)"] {
            assert!(variants.contains(v), "no {v} variant");
        }
    }
    let e2e = r["end_to_end"].as_array().unwrap();
    assert_eq!(e2e.len(), 3, "{device}: saliency, AttnLRP and IG");
    for e in e2e {
        for field in [
            "method",
            "tokens",
            "median_s",
            "gflop",
            "gb",
            "gflop_fraction",
            "gb_fraction",
            "bound",
        ] {
            assert!(!e[field].is_null(), "{device}: end to end without {field}");
        }
    }
}

#[test]
fn bench_on_the_cpu_checks_every_kernel_and_writes_the_whole_record() {
    let r = bench("cpu");
    check_record(&r, "cpu");
    // The comparison script reads the record: a record against itself has no regression.
    let path =
        std::env::temp_dir().join(format!("gradlens-bench-self-{}.json", std::process::id()));
    std::fs::write(&path, r.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(common::root().join("scripts/bench-compare.py"))
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "bench-compare.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("x·Wᵀ (forward)"));
}

#[cfg(feature = "wgpu")]
#[test]
fn bench_on_wgpu_checks_every_kernel_and_writes_the_whole_record() {
    if common::wgpu_backend().is_none() {
        return;
    }
    check_record(&bench("wgpu"), "wgpu");
}

#[test]
fn bench_refuses_bad_options_with_one_line() {
    for (args, needle) in [
        (vec!["--budget", "0"], "--budget"),
        (vec!["--format", "html"], "unknown format"),
        (vec!["--kernels", "no-such-kernel"], "no kernel matches"),
        (vec!["--device", "tpu"], "unknown device"),
        (vec!["--model", "/nonexistent/model"], "/nonexistent/model"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gradlens"))
            .arg("bench")
            .args(&args)
            .args(["--kernels-only"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
