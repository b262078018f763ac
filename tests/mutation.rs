//! A deterministic mutation test of everything a model file claims: the tiny Llama's
//! safetensors header, its config.json and its GGUF form, with every header field and size
//! claim flipped, grown and shrunk. Each case must either succeed with finite scores, or fail
//! with one `error:` line, exit 1, no panic or abort, no output file, and stay under 1 GB of
//! resident memory.

mod common;
use common::gguf_writer::tiny_llama_gguf;
use common::root;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One mutated model: the files of its folder (or one `.gguf`), and what was changed.
struct Case {
    what: String,
    files: Vec<(&'static str, Vec<u8>)>,
}

fn tiny_file(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/models/tiny-llama").join(name)).unwrap()
}

/// The values an integer claim is replaced with: the edges, a step either way, doubled,
/// halved, and past every size a file could hold.
fn integer_variants(v: u64) -> Vec<u64> {
    let mut out = vec![
        0,
        1,
        v.wrapping_add(1),
        v.wrapping_sub(1),
        v.wrapping_mul(2),
        v / 2,
        u32::MAX as u64,
        u64::MAX,
        1 << 40,
        v ^ (1 << 63),
    ];
    out.retain(|&x| x != v);
    out.dedup();
    out
}

/// config.json with each key removed, retyped, or set to an edge value.
fn config_cases() -> Vec<Case> {
    let base: Value = serde_json::from_slice(&tiny_file("config.json")).unwrap();
    let keys: Vec<String> = base.as_object().unwrap().keys().cloned().collect();
    let mut cases = Vec::new();
    let values = [
        json!(null),
        json!(0),
        json!(1),
        json!(-1),
        json!(2.5),
        json!(1e9),
        json!(4294967295u64),
        json!(18446744073709551615u64),
        json!(1e300),
        json!(-1e-30),
        json!("12"),
        json!(true),
        json!([]),
        json!({}),
    ];
    for key in &keys {
        let mut removed = base.clone();
        removed.as_object_mut().unwrap().remove(key);
        cases.push((format!("config: no {key}"), removed));
        for v in &values {
            let mut c = base.clone();
            c[key] = v.clone();
            cases.push((format!("config: {key} = {v}"), c));
        }
    }
    cases
        .into_iter()
        .map(|(what, c)| Case {
            what,
            files: vec![
                ("config.json", c.to_string().into_bytes()),
                ("model.safetensors", tiny_file("model.safetensors")),
                ("tokenizer.json", tiny_file("tokenizer.json")),
            ],
        })
        .collect()
}

/// The safetensors file with one header claim changed (dtype, each dimension, each data
/// offset, the header length), or cut short.
fn safetensors_cases() -> Vec<Case> {
    let bytes = tiny_file("model.safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let with_header = |h: &Value| {
        let text = h.to_string();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text.as_bytes());
        out.extend(data);
        out
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, entry) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        for dtype in ["F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "X"] {
            let mut h = header.clone();
            h[name]["dtype"] = json!(dtype);
            files.push((format!("{name} dtype {dtype}"), with_header(&h)));
        }
        let shape = entry["shape"].as_array().unwrap();
        for d in 0..shape.len() {
            for v in integer_variants(shape[d].as_u64().unwrap()) {
                let mut h = header.clone();
                h[name]["shape"][d] = json!(v);
                files.push((format!("{name} shape[{d}] = {v}"), with_header(&h)));
            }
        }
        let mut h = header.clone();
        h[name]["shape"].as_array_mut().unwrap().push(json!(1));
        files.push((format!("{name} one more dimension"), with_header(&h)));
        let mut h = header.clone();
        h[name]["shape"].as_array_mut().unwrap().pop();
        files.push((format!("{name} one dimension less"), with_header(&h)));
        for i in 0..2 {
            for v in integer_variants(entry["data_offsets"][i].as_u64().unwrap()) {
                let mut h = header.clone();
                h[name]["data_offsets"][i] = json!(v);
                files.push((format!("{name} data_offsets[{i}] = {v}"), with_header(&h)));
            }
        }
    }
    for v in integer_variants(n as u64) {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&v.to_le_bytes());
        files.push((format!("header length {v}"), b));
    }
    for cut in [
        0,
        4,
        8,
        9,
        n / 2,
        n + 7,
        n + 8,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        files.push((format!("cut at {cut}"), bytes[..cut].to_vec()));
    }
    files
        .into_iter()
        .map(|(what, st)| Case {
            what: format!("safetensors: {what}"),
            files: vec![
                ("config.json", tiny_file("config.json")),
                ("model.safetensors", st),
                ("tokenizer.json", tiny_file("tokenizer.json")),
            ],
        })
        .collect()
}

/// Where a GGUF's header fields are: (byte position, width, name).
fn gguf_fields(b: &[u8]) -> Vec<(usize, usize, String)> {
    let u32_at = |p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize;
    let u64_at = |p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap()) as usize;
    let mut fields = vec![
        (4, 4, "version".to_string()),
        (8, 8, "n_tensors".into()),
        (16, 8, "n_kv".into()),
    ];
    let (n_tensors, n_kv) = (u64_at(8), u64_at(16));
    let mut p = 24;
    let string = |p: &mut usize| -> String {
        let n = u64_at(*p);
        let s = String::from_utf8_lossy(&b[*p + 8..*p + 8 + n]).into_owned();
        *p += 8 + n;
        s
    };
    fn scalar_width(ty: usize) -> Option<usize> {
        match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }
    for _ in 0..n_kv {
        let key_at = p;
        let key = string(&mut p);
        fields.push((key_at, 8, format!("{key}: key length")));
        let ty = u32_at(p);
        fields.push((p, 4, format!("{key}: type")));
        p += 4;
        match ty {
            8 => {
                fields.push((p, 8, format!("{key}: string length")));
                string(&mut p);
            }
            9 => {
                let elem = u32_at(p);
                fields.push((p, 4, format!("{key}: element type")));
                fields.push((p + 4, 8, format!("{key}: element count")));
                let n = u64_at(p + 4);
                p += 12;
                if elem == 8 {
                    fields.push((p, 8, format!("{key}: first element's length")));
                    for _ in 0..n {
                        string(&mut p);
                    }
                } else {
                    p += n * scalar_width(elem).unwrap();
                }
            }
            t => {
                let w = scalar_width(t).unwrap();
                if w >= 4 {
                    fields.push((p, w, format!("{key}: value")));
                }
                p += w;
            }
        }
    }
    for _ in 0..n_tensors {
        let name_at = p;
        let name = string(&mut p);
        fields.push((name_at, 8, format!("tensor {name}: name length")));
        let n_dims = u32_at(p);
        fields.push((p, 4, format!("tensor {name}: n_dims")));
        p += 4;
        for d in 0..n_dims {
            fields.push((p, 8, format!("tensor {name}: dim {d}")));
            p += 8;
        }
        fields.push((p, 4, format!("tensor {name}: type")));
        fields.push((p + 4, 8, format!("tensor {name}: offset")));
        p += 12;
    }
    fields
}

/// The GGUF with each header field flipped, grown or shrunk, and float constants made
/// non-finite.
fn gguf_cases() -> Vec<Case> {
    let path = tiny_llama_gguf("mutation-base", |_, _| {});
    let bytes = std::fs::read(&path).unwrap();
    let mut cases = Vec::new();
    for (pos, width, name) in gguf_fields(&bytes) {
        let value = match width {
            4 => u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as u64,
            _ => u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()),
        };
        let mut variants = integer_variants(value);
        if width == 4 {
            // A float field too: the non-finite and negative values.
            variants.extend(
                [f32::NAN, f32::INFINITY, -1.0, 0.0]
                    .iter()
                    .map(|f| f.to_bits() as u64),
            );
        }
        for v in variants {
            let mut b = bytes.clone();
            match width {
                4 => b[pos..pos + 4].copy_from_slice(&(v as u32).to_le_bytes()),
                _ => b[pos..pos + 8].copy_from_slice(&v.to_le_bytes()),
            }
            cases.push(Case {
                what: format!("gguf: {name} = {v:#x}"),
                files: vec![("model.gguf", b)],
            });
        }
    }
    for cut in [0, 4, 12, 24, 100, bytes.len() / 2, bytes.len() - 1] {
        cases.push(Case {
            what: format!("gguf: cut at {cut}"),
            files: vec![("model.gguf", bytes[..cut].to_vec())],
        });
    }
    cases
}

/// The largest resident set of any child waited for so far, in kB (`getrusage`).
fn children_max_rss_kb() -> i64 {
    #[repr(C)]
    struct Rusage {
        utime: [i64; 2],
        stime: [i64; 2],
        maxrss: i64,
        rest: [i64; 13],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_CHILDREN: i32 = -1;
    let mut r = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: getrusage writes one struct rusage, whose x86_64/aarch64 Linux layout this is.
    unsafe { getrusage(RUSAGE_CHILDREN, &mut r) };
    r.maxrss
}

/// Runs one case; `Err` says what was wrong with how it ended.
fn check(case: &Case, dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("model")).unwrap();
    for (name, bytes) in &case.files {
        std::fs::write(dir.join("model").join(name), bytes).unwrap();
    }
    let model = match case.files.as_slice() {
        [(name, _)] => dir.join("model").join(name),
        _ => dir.join("model"),
    };
    let out = dir.join("out.json");
    let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradlens"));
    cmd.args(["attribute", "--model"])
        .arg(&model)
        .args(["--prompt", "Hello there", "--method", "saliency"])
        .args(["--format", "json", "--output"])
        .arg(&out)
        .env_remove("GRADLENS_CUDA_EMULATOR")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    // A case that runs away with memory fails to allocate rather than taking the machine.
    limit_address_space(&mut cmd, 4 << 30);
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("still running after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    if err.contains("panicked") {
        return Err(format!("panic: {err}"));
    }
    match status.code() {
        Some(0) => {
            let text = std::fs::read_to_string(&out).map_err(|e| format!("no output: {e}"))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
            let finite = v["scores"]
                .as_array()
                .is_some_and(|s| s.iter().all(Value::is_number))
                && v["target_score"].is_number();
            if !finite {
                return Err(format!("success with non-finite scores: {text}"));
            }
            Ok(())
        }
        Some(1) => {
            if err.trim().lines().count() != 1 || !err.starts_with("error: ") {
                return Err(format!("not one error line: {err:?}"));
            }
            if out.exists() {
                return Err("an output file after a failure".into());
            }
            Ok(())
        }
        _ => Err(format!("ended with {status}: {err}")),
    }
}

fn limit_address_space(cmd: &mut Command, bytes: u64) {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn setrlimit(resource: i32, limit: *const Rlimit) -> i32;
    }
    const RLIMIT_AS: i32 = 9;
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(move || {
            let l = Rlimit {
                cur: bytes,
                max: bytes,
            };
            setrlimit(RLIMIT_AS, &l);
            Ok(())
        });
    }
}

#[test]
fn every_mutated_claim_succeeds_finitely_or_fails_cleanly() {
    let mut cases = config_cases();
    cases.extend(safetensors_cases());
    cases.extend(gguf_cases());
    assert!(cases.len() >= 2000, "only {} cases", cases.len());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let base: PathBuf =
        std::env::temp_dir().join(format!("gradlens-mutation-{}", std::process::id()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let peak = std::sync::Mutex::new((0i64,));
    std::thread::scope(|s| {
        for w in 0..workers {
            let (cases, next, failures, peak) = (&cases, &next, &failures, &peak);
            let dir = base.join(w.to_string());
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                if let Err(why) = check(case, &dir) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {why}", case.what));
                }
                // The peak over all children so far: the case that first pushes it over
                // 1 GB is named (or the one running beside it).
                let mut peak = peak.lock().unwrap();
                let rss_kb = children_max_rss_kb();
                if rss_kb > 1 << 20 && peak.0 <= 1 << 20 {
                    failures.lock().unwrap().push(format!(
                        "{}: resident memory reached {rss_kb} kB",
                        case.what
                    ));
                }
                peak.0 = peak.0.max(rss_kb);
            });
        }
    });
    let _ = std::fs::remove_dir_all(&base);
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{} cases, peak resident memory of a case {} kB",
        cases.len(),
        peak.into_inner().unwrap().0
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
