//! `gradlens serve` as a user meets it: the binary on a free loopback port, spoken to over
//! plain HTTP/1.1. The API's answers and errors (400, 401, 404, 413, 422), a load of 8
//! clients and 200 requests mixing valid and bad ones, and a graceful stop on SIGTERM.
#![cfg(feature = "serve")]

mod common;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let model = common::root().join("tests/fixtures/models/tiny-llama");
        Server::start_with(&["--model", model.to_str().unwrap()], extra)
    }

    fn start_with(models: &[&str], extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gradlens"))
            .args(["serve", "--port", "0"])
            .args(models)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("the server said where it listens")
                .unwrap();
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, address }
    }

    fn call(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(&self.address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for h in headers {
            head += &format!("{h}\r\n");
        }
        head += "\r\n";
        // A server that refuses a body may close before reading it all: not the client's error.
        let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).to_string();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = self.call("POST", path, &[], body.as_bytes());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        self.child.wait().unwrap()
    }
}

/// A test that fails midway still stops its server (which would otherwise outlive the test
/// and hold its output pipe open).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error kind in {v}"))
}

#[test]
fn the_api_answers_and_names_each_problem() {
    let server = Server::start(&["--max-body", "4096", "--max-steps", "64"]);
    let (status, page) = server.call("GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(page.contains("<title>gradlens</title>"));
    let (status, model) = server.call("GET", "/api/model", &[], b"");
    let model: Value = serde_json::from_str(&model).unwrap();
    assert_eq!(
        (status, model["architecture"].as_str()),
        (200, Some("llama"))
    );
    let (status, methods) = server.call("GET", "/api/methods", &[], b"");
    let methods: Value = serde_json::from_str(&methods).unwrap();
    assert_eq!(status, 200);
    assert!(methods["methods"].as_array().unwrap().len() >= 23);

    let (status, a) = server.post(
        "/api/attribute",
        r#"{"prompt": "the quick brown fox", "method": "integrated-gradients", "steps": 8}"#,
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["method"], "integrated-gradients");
    assert_eq!(
        a["scores"].as_array().unwrap().len(),
        a["tokens"].as_array().unwrap().len()
    );
    assert_eq!(a["extras"]["steps"], 8);

    let body = r#"{"prompt": "the quick", "method": "saliency", "generate": 3}"#;
    let (status, g) = server.post("/api/attribute", body);
    assert_eq!(status, 200, "{g}");
    let steps = g["generation"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let first = steps[0]["scores"].as_array().unwrap().len();
    assert_eq!(steps[2]["scores"].as_array().unwrap().len(), first + 2);
    let bad = [
        (r#"{"prompt": "the fox""#, 400, "malformed JSON"),
        (r#"["the fox"]"#, 400, "a JSON object"),
        (r#"{"method": "saliency"}"#, 400, "prompt"),
        (r#"{"prompt": 3}"#, 400, "prompt"),
        (r#"{"prompt": "the fox", "method": "bogus"}"#, 400, "bogus"),
        (r#"{"prompt": "the fox", "stepz": 3}"#, 400, "stepz"),
        (r#"{"prompt": "the fox", "steps": "many"}"#, 400, "steps"),
        (
            r#"{"prompt": "the fox", "steps": 100000}"#,
            400,
            "--max-steps",
        ),
        (r#"{"prompt": "the fox", "steps": [1]}"#, 400, "steps"),
        (
            r#"{"prompt": "the fox", "generate": 1000}"#,
            400,
            "--max-generate",
        ),
        (
            r#"{"prompt": "the fox", "generate": 2, "stop_at_eos": "no"}"#,
            400,
            "stop_at_eos",
        ),
        (
            r#"{"prompt": "the fox", "method": "deeplift-shap", "baselines": "/etc/passwd"}"#,
            400,
            "no files",
        ),
        (
            r#"{"prompt": "the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the the"}"#,
            422,
            "positions",
        ),
    ];
    for (body, want, says) in bad {
        let (status, e) = server.post("/api/attribute", body);
        assert_eq!(status, want, "{body} → {e}");
        assert!(e["detail"].as_str().unwrap().contains(says), "{body} → {e}");
    }
    let (status, e) = server.post(
        "/api/attribute",
        &format!(r#"{{"prompt": "{}"}}"#, "a".repeat(5000)),
    );
    assert_eq!((status, error_of(&e)), (413, "too_large"));
    let (status, e) = server.post("/api/nothing", "{}");
    assert_eq!((status, error_of(&e)), (404, "not_found"));

    let (status, g) = server.post(
        "/api/agreement",
        r#"{"prompt": "the quick brown fox", "methods": ["saliency", "attnlrp"], "top_k": 3}"#,
    );
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["agreement"]["spearman"][0][0], 1.0);
    assert_eq!(g["attributions"].as_array().unwrap().len(), 2);
    let (status, e) = server.post(
        "/api/evaluate",
        r#"{"prompt": "the quick brown fox", "methods": ["saliency", "occlusion"]}"#,
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["methods"][1]["deletion"].as_array().unwrap().len(), 11);
    assert_eq!(
        e["agreement"]["methods"],
        serde_json::json!(["saliency", "occlusion"])
    );
    let (status, e) = server.post("/api/evaluate", r#"{"prompt": "the fox", "methods": []}"#);
    assert_eq!((status, error_of(&e)), (400, "bad_request"));
    let (status, g) = server.post(
        "/api/agreement",
        r#"{"scores": {"a": [1, 2, 3], "b": [3, 2, 1]}}"#,
    );
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["agreement"]["kendall"][0][1], -1.0);
    let given = r#"{"scores": [{"method": "z", "scores": [1, 2, 3]}, {"method": "a", "scores": [1, 2, 4]}]}"#;
    let (status, g) = server.post("/api/agreement", given);
    let order = &g["agreement"]["methods"];
    assert_eq!((status, order), (200, &serde_json::json!(["z", "a"])));
    let (status, e) = server.post("/api/agreement", r#"{"scores": {"a": [1, 2], "b": [1]}}"#);
    assert_eq!((status, error_of(&e)), (400, "bad_request"));
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");
}

/// The page's "Export HTML": what it shows, rendered as the static report (the file
/// `--format html` writes): every method a panel with hover values and ranks, the agreement.
#[test]
fn the_api_renders_what_the_page_shows_as_a_static_report() {
    let server = Server::start(&[]);
    let (status, g) = server.post(
        "/api/agreement",
        r#"{"prompt": "the quick brown fox", "methods": ["saliency", "attnlrp"], "top_k": 3}"#,
    );
    assert_eq!(status, 200, "{g}");
    let body = serde_json::json!({"attributions": g["attributions"], "agreement": g["agreement"]});
    let (status, html) = server.call("POST", "/api/report", &[], body.to_string().as_bytes());
    assert_eq!(status, 200, "{html}");
    assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
    assert_eq!(html.matches("class=\"panel\"").count(), 2);
    assert!(html.contains("Kendall τ-b") && html.contains("(rank "));
    let mut other = g["attributions"].clone();
    other[1]["display"][0] = "elsewhere".into();
    let bad = [
        serde_json::json!({}),
        serde_json::json!({"attributions": "none"}),
        serde_json::json!({"attributions": other}),
    ];
    for body in bad {
        let (status, e) = server.post("/api/report", &body.to_string());
        assert_eq!((status, error_of(&e)), (400, "bad_request"), "{body} → {e}");
    }
}

/// `--models DIR`: requests choose a model of the folder by name, loaded on demand; no
/// other name (a path least of all) is taken.
#[test]
fn a_folder_of_models_is_an_allow_list_by_name() {
    let dir = std::env::temp_dir().join(format!("gradlens-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["tiny-llama", "tiny-gpt2"] {
        let target = common::root().join("tests/fixtures/models").join(name);
        let _ = std::os::unix::fs::symlink(target, dir.join(name));
    }
    std::fs::write(dir.join("notes.txt"), "not a model").unwrap();
    let server = Server::start_with(&["--models", dir.to_str().unwrap()], &[]);
    let (status, list) = server.call("GET", "/api/models", &[], b"");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        list["models"],
        serde_json::json!(["tiny-gpt2", "tiny-llama"])
    );
    assert_eq!(
        list["loaded"], "tiny-gpt2",
        "the first by name is loaded at start"
    );
    let ask = |model: &str| {
        let body = format!(
            r#"{{"prompt": "the quick brown fox", "method": "saliency", "model": "{model}"}}"#
        );
        server.post("/api/attribute", &body)
    };
    let (status, a) = ask("tiny-llama");
    assert_eq!(
        (status, a["architecture"].as_str()),
        (200, Some("llama")),
        "{a}"
    );
    let (_, info) = server.call("GET", "/api/model", &[], b"");
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["name"], "tiny-llama");
    let (status, a) = ask("tiny-gpt2");
    assert_eq!(
        (status, a["architecture"].as_str()),
        (200, Some("gpt2")),
        "{a}"
    );
    for bad in ["../tiny-llama", "notes.txt", "/etc", ""] {
        let (status, e) = ask(bad);
        assert_eq!((status, error_of(&e)), (400, "bad_request"), "{bad}: {e}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("tiny-gpt2, tiny-llama"),
            "{e}"
        );
    }
    // A text too long for the model it names, while another is loaded, is still a 422.
    let long = "the ".repeat(100);
    let body = format!(r#"{{"prompt": "{long}", "method": "saliency", "model": "tiny-llama"}}"#);
    let (status, e) = server.post("/api/attribute", &body);
    assert_eq!((status, error_of(&e)), (422, "too_long"), "{e}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_server_refuses_calls_without_it() {
    let server = Server::start(&["--token", "s3cret"]);
    for headers in [&[][..], &["Authorization: Bearer wrong"][..]] {
        let (status, e) = server.call("GET", "/api/model", headers, b"");
        assert_eq!(status, 401, "{e}");
    }
    let (status, _) = server.call("GET", "/api/model", &["Authorization: Bearer s3cret"], b"");
    assert_eq!(status, 200);
    assert!(server.stop().success());
}

#[test]
fn binding_beyond_loopback_needs_a_token() {
    let model = common::root().join("tests/fixtures/models/tiny-llama");
    let out = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

/// 8 clients send 200 requests between them, a quarter each valid, malformed, oversized and
/// overlong: each is answered with 200, a 4xx or 503; the server stays within 600 MB; and a
/// valid request afterwards gets the same scores as before the load.
#[test]
fn the_server_holds_up_under_mixed_load() {
    let server = Server::start(&["--max-body", "4096", "--max-waiting", "4"]);
    let valid = r#"{"prompt": "the quick brown fox", "method": "attnlrp"}"#;
    let (status, before) = server.post("/api/attribute", valid);
    assert_eq!(status, 200);
    let oversized = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(6000));
    let overlong = format!(r#"{{"prompt": "{}"}}"#, "the ".repeat(60));
    let bodies = [
        valid.to_string(),
        "{\"prompt\": ".to_string(),
        oversized,
        overlong,
    ];
    let counts = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|c| {
                let (server, bodies) = (&server, &bodies);
                scope.spawn(move || {
                    (0..25)
                        .map(|i| server.post("/api/attribute", &bodies[(c + i) % 4]).0)
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect::<Vec<u16>>()
    });
    assert_eq!(counts.len(), 200);
    for status in &counts {
        assert!(
            [200, 400, 413, 422, 503].contains(status),
            "status {status}"
        );
    }
    assert!(counts.contains(&200));
    let peak_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    assert!(peak_kb < 600_000, "peak RSS {peak_kb} kB");
    let (status, after) = server.post("/api/attribute", valid);
    assert_eq!(status, 200);
    assert_eq!(before["scores"], after["scores"]);
    assert!(server.stop().success());
}

/// `GET /api/progress` follows a long run chunk by chunk (what the page shows while it waits).
#[test]
fn progress_follows_a_long_run() {
    let server = Server::start(&[]);
    let progress = || {
        let (status, text) = server.call("GET", "/api/progress", &[], b"");
        assert_eq!(status, 200);
        serde_json::from_str::<Value>(&text).unwrap()
    };
    assert_eq!(progress()["running"], false);
    let long = r#"{"prompt": "the quick brown fox", "steps": 512, "batch_size": 1}"#;
    std::thread::scope(|scope| {
        let run = scope.spawn(|| server.post("/api/attribute", long));
        let mut seen = None;
        for _ in 0..5000 {
            let p = progress();
            let (done, total) = (p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap());
            if p["running"] == true && total > 1 && done < total {
                seen = Some((done, total));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(seen.is_some(), "no progress seen");
        assert_eq!(run.join().unwrap().0, 200);
    });
    assert_eq!(progress()["jobs"], 0);
    assert!(server.stop().success());
}
