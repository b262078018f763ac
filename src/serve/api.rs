//! The routes of `gradlens serve` and their errors. Request fields are the CLI's long flags
//! with underscores (`prompt`, `method`, `steps`, `compare_text`, …); responses carry the
//! CLI's JSON. Every error is `{"error": kind, "detail": message}` with its status: 400 for
//! bad input, 401 without the token, 413 for too large a body, 422 for a text longer than the
//! model's context (or the server's limit), 503 with `Retry-After` when busy or past the time
//! limit.

use super::models::Models;
use super::queue::{Queue, Refused, Work};
use super::Config;
use crate::attribution::{methods, Request};
use crate::error::Error;
use crate::models::Model;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
pub struct App {
    models: Arc<Models>,
    queue: Queue,
    config: Arc<Config>,
}

impl App {
    pub fn new(models: Arc<Models>, queue: Queue, config: Config) -> App {
        App {
            models,
            queue,
            config: Arc::new(config),
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.config.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(401, "unauthorized", "wrong token")),
            None => Err(ApiError::new(
                401,
                "unauthorized",
                "this server needs `Authorization: Bearer <token>`",
            )),
        }
    }
}

pub fn router(app: App) -> Router {
    let limit = app.config.max_body;
    Router::new()
        .route("/", get(page))
        .route("/api/model", get(model_info))
        .route("/api/models", get(model_list))
        .route("/api/methods", get(method_list))
        .route("/api/attribute", post(attribute))
        .route("/api/agreement", post(agreement))
        .route("/api/evaluate", post(evaluate))
        .route("/api/progress", get(progress))
        .route("/api/report", post(report))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl ApiError {
    fn new(status: u16, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).expect("a valid status"),
            error,
            detail: detail.into(),
        }
    }

    fn bad(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::InvalidArgument(_) | Error::InvalidInput(_) | Error::Tokenizer(_) => {
                ApiError::bad(e.to_string())
            }
            Error::TooLong(detail) => ApiError::new(422, "too_long", detail),
            Error::Cancelled => ApiError::new(503, "cancelled", "the run was cancelled"),
            Error::NonFinite(_) => ApiError::new(422, "non_finite", e.to_string()),
            _ => ApiError::new(500, "internal", e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "detail": self.detail }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // Everything the page needs is in it: no other origin, no inline frames.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    ];
    (headers, PAGE).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(404, "not_found", "no such route (the API is under /api/)")
}

async fn model_info(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let Some((name, m)) = app.models.current() else {
        return Err(ApiError::new(
            503,
            "no_model",
            "no model is loaded (the last one failed to load); a request naming a model loads it",
        ));
    };
    Ok(Json(json!({
        "model": m.name,
        "name": name,
        "models": app.models.names(),
        "architecture": m.arch.name(),
        "device": m.device().to_string(),
        "weights": m.info.weights,
        "info": m.info,
        "limits": {
            "max_body": app.config.max_body,
            "max_waiting": app.config.max_waiting,
            "max_steps": app.config.max_steps,
            "max_samples": app.config.max_samples,
            "max_tokens": app.config.max_tokens.min(m.info.max_positions),
            "max_generate": app.config.max_generate,
            "timeout_s": app.config.timeout.as_secs_f64(),
        },
    })))
}

/// `{"models": [names], "loaded": name}`: what a request's `model` may name (`--models`).
async fn model_list(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let loaded = app.models.current().map(|(name, _)| name);
    Ok(Json(
        json!({ "models": app.models.names(), "loaded": loaded }),
    ))
}

/// `{"running": bool, "done": n, "total": m, "jobs": k}`: the running job's chunks or steps
/// (what the page shows while it waits), and the jobs queued or running.
async fn progress(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let (running, jobs) = app.queue.status();
    let (done, total) = running.unwrap_or((0, 0));
    Ok(Json(json!({
        "running": running.is_some(),
        "done": done,
        "total": total,
        "jobs": jobs,
    })))
}

async fn method_list(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    Ok(Json(methods::registry_json()))
}

/// `{"prompt": …, "method": …, options…}` → the CLI's JSON of that attribution; with
/// `"generate": n` (and `"stop_at_eos"`), of the n tokens generated after the prompt, each
/// explained by what precedes it, as `attribute --generate`.
async fn attribute(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let mut fields = json_object(body)?;
    let input = take_input(&app, &mut fields)?;
    let prompt = input.prompt.clone();
    let method = match fields.remove("method") {
        None => "integrated-gradients".to_string(),
        Some(Value::String(m)) => m,
        Some(_) => return Err(ApiError::bad("method: expected a method's name")),
    };
    let generate = match fields.remove("generate") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= app.config.max_generate => n as usize,
            _ => {
                return Err(ApiError::bad(format!(
                "generate: expected a number of tokens from 0 to this server's {} (--max-generate)",
                app.config.max_generate
            )))
            }
        },
    };
    let stop_at_eos = match fields.remove("stop_at_eos") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::bad("stop_at_eos: expected true or false")),
    };
    let request = Request::new(&method, options(&app.config, &fields)?)?;
    let work = job(request, move |model, request, settings| match generate {
        0 => request.attribute(model, &prompt, settings),
        n => request.generate_and_attribute(model, &prompt, settings, n, stop_at_eos),
    });
    run(&app, &input, work).await.map(Json)
}

/// `{"prompt": …, "methods": [names], options…}` → `gradlens evaluate`'s JSON: deletion and
/// insertion curves, comprehensiveness, sufficiency, AOPC and the agreement of the methods.
async fn evaluate(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let mut fields = json_object(body)?;
    let input = take_input(&app, &mut fields)?;
    let prompt = input.prompt.clone();
    let names = method_names(&mut fields, 1)?;
    let request = Request::new(&names[0], options(&app.config, &fields)?)?;
    let work = job(request, move |model, request, settings| {
        request.evaluate(model, &prompt, &names, settings)
    });
    run(&app, &input, work).await.map(Json)
}

/// The work of one request: `f` under the request's settings with the job's cancel added,
/// answered as JSON.
fn job<T: serde::Serialize>(
    request: Request,
    f: impl FnOnce(&Model, &Request, &crate::Settings) -> crate::Result<T> + Send + 'static,
) -> Work {
    Box::new(move |model, cancel, progress| {
        let settings = crate::Settings {
            cancel: Some(cancel),
            progress: Some(progress),
            ..request.settings.clone()
        };
        let out = f(model, &request, &settings)?;
        serde_json::to_value(&out).map_err(|e| Error::Other(e.to_string()))
    })
}

/// The `methods` field: at least `least` names.
fn method_names(fields: &mut Map<String, Value>, least: usize) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::bad(format!(
            "methods: expected a list of at least {least} method names"
        ))
    };
    match fields.remove("methods") {
        Some(Value::Array(list)) if list.len() >= least => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// The static HTML report of what the page shows (`{attributions, agreement?,
/// evaluation?}`, as the other routes answered them), as a file to save: rendered here so
/// that the page's export and `--format html` are one report. No model work, no queue.
async fn report(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let fields = json_object(body)?;
    let report: crate::report::Report = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad(format!("not a report: {e}")))?;
    if report.attributions.is_empty() && report.evaluation.is_none() {
        return Err(ApiError::bad(
            "a report needs \"attributions\" (a list of /api/attribute answers) or an \"evaluation\"",
        ));
    }
    for a in &report.attributions {
        if a.display != report.attributions[0].display {
            return Err(ApiError::bad(format!(
                "{}: the attributions are of different texts",
                a.method
            )));
        }
        if a.scores.len() != a.display.len() {
            return Err(ApiError::bad(format!(
                "{}: {} scores for {} tokens",
                a.method,
                a.scores.len(),
                a.display.len()
            )));
        }
    }
    let html = crate::report::render_report(&report);
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"gradlens.html\"",
        ),
    ];
    Ok((headers, html).into_response())
}

/// Either `{"scores": [{"method": …, "scores": [score per token]}, …], "top_k": k}` (or
/// `{"scores": {method: [...], …}}`), computed at once, or
/// `{"prompt": …, "methods": [names], options…, "top_k": k}`, which runs each method first
/// and returns their attributions too: Spearman, Kendall and top-k overlap of every pair.
async fn agreement(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers)?;
    let mut fields = json_object(body)?;
    let k = match fields.remove("top_k") {
        None => 5,
        Some(v) => v
            .as_u64()
            .filter(|&k| k >= 1)
            .ok_or_else(|| ApiError::bad("top_k: expected a whole number of at least 1"))?
            as usize,
    };
    if let Some(scores) = fields.remove("scores") {
        let (names, scores) = given_scores(scores)?;
        let result = crate::attribution::agreement::agreement(&names, &scores, k);
        return Ok(Json(json!({ "agreement": result })));
    }
    let input = take_input(&app, &mut fields)?;
    let prompt = input.prompt.clone();
    let names = method_names(&mut fields, 2)?;
    let options = options(&app.config, &fields)?;
    let requests = names
        .iter()
        .map(|m| Request::new(m, options.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let work: Work = Box::new(move |model, cancel, progress| {
        let mut results = Vec::new();
        for request in &requests {
            let settings = crate::Settings {
                cancel: Some(cancel.clone()),
                progress: Some(progress.clone()),
                ..request.settings.clone()
            };
            results.push(request.attribute(model, &prompt, &settings)?);
        }
        let names: Vec<String> = results.iter().map(|a| a.method.clone()).collect();
        let scores: Vec<Vec<f32>> = results.iter().map(|a| a.scores.clone()).collect();
        let result = crate::attribution::agreement::agreement(&names, &scores, k);
        Ok(json!({ "agreement": result, "attributions": results }))
    });
    run(&app, &input, work).await.map(Json)
}

/// Queues `work` on the model `input` names and waits for it, cancelling it if the client
/// goes away (this future is dropped) or the time limit passes.
async fn run(app: &App, input: &Input, work: Work) -> Result<Value, ApiError> {
    // A text not yet checked names a model that was not loaded: checked on it in the job.
    let work: Work = match input.checked {
        true => work,
        false => {
            let (prompt, max_tokens) = (input.prompt.clone(), app.config.max_tokens);
            Box::new(move |model, cancel, progress| {
                check_length(model, &prompt, max_tokens)?;
                work(model, cancel, progress)
            })
        }
    };
    let submitted = app.queue.submit(work, input.model.clone());
    let ticket = submitted.map_err(|refused| match refused {
        Refused::Busy => ApiError::new(
            503,
            "busy",
            format!(
                "{} requests are already waiting; try again shortly",
                app.config.max_waiting
            ),
        ),
        Refused::Closed => ApiError::new(503, "shutting_down", "the server is stopping"),
    })?;
    let mut cancel_on_drop = CancelOnDrop(Some(ticket.cancel.clone()));
    let answer = tokio::time::timeout(app.config.timeout, ticket.answer).await;
    cancel_on_drop.0 = None; // answered (or timed out, handled below): nothing to cancel
    match answer {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(_)) => Err(ApiError::new(500, "internal", "the worker stopped")),
        Err(_) => {
            ticket.cancel.cancel();
            Err(ApiError::new(
                503,
                "timeout",
                format!(
                    "the run took longer than this server's {} s limit (--timeout) and was cancelled",
                    app.config.timeout.as_secs()
                ),
            ))
        }
    }
}

struct CancelOnDrop(Option<crate::attribution::Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

fn json_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            413,
            "too_large",
            "the request body is larger than this server takes (--max-body)",
        ),
        _ => ApiError::bad(rejection.body_text()),
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::bad("expected a JSON object")),
        Err(e) => Err(ApiError::bad(format!("malformed JSON: {e}"))),
    }
}

/// A request's text and the model it names (`None`: the loaded one).
struct Input {
    prompt: String,
    model: Option<String>,
    /// Whether the text's length was checked against that model already.
    checked: bool,
}

/// The `prompt` and `model` fields: the model checked against the server's list, and the
/// prompt's length, where that model is loaded, against its context and the server's limit
/// (else the job checks it on the model it loads: `run`).
fn take_input(app: &App, fields: &mut Map<String, Value>) -> Result<Input, ApiError> {
    let prompt = match fields.remove("prompt") {
        Some(Value::String(p)) => p,
        Some(_) => return Err(ApiError::bad("prompt: expected a string")),
        None => return Err(ApiError::bad("no \"prompt\"")),
    };
    let model = match fields.remove("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(ApiError::bad("model: expected a model's name")),
    };
    app.models.check(model.as_deref())?;
    let mut checked = false;
    if let Some((name, loaded)) = app.models.current() {
        if model.as_deref().is_none_or(|m| m == name) {
            check_length(&loaded, &prompt, app.config.max_tokens)?;
            checked = true;
        }
    }
    Ok(Input {
        prompt,
        model,
        checked,
    })
}

/// A text longer than `model`'s context or the server's `max_tokens` is refused (422).
fn check_length(model: &Model, prompt: &str, max_tokens: usize) -> crate::Result<()> {
    let tokens = model.tokenizer.encode(prompt, true)?.len();
    let context = model.info.max_positions;
    if tokens > context {
        return Err(Error::TooLong(format!(
            "the prompt is {tokens} tokens long, more than the model's {context} positions"
        )));
    }
    if tokens > max_tokens {
        return Err(Error::TooLong(format!(
            "the prompt is {tokens} tokens long, more than this server's limit of {max_tokens} (--max-tokens)"
        )));
    }
    Ok(())
}

/// The other fields as options by name, as text, within the server's limits; none may name a
/// file.
fn options(
    config: &Config,
    fields: &Map<String, Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ApiError::bad(format!(
                    "{name}: expected a string, a number or true/false"
                )))
            }
        };
        let flag = name.replace('_', "-");
        let cap = match flag.as_str() {
            "steps" | "max-steps" => Some((config.max_steps, "--max-steps")),
            "samples" => Some((config.max_samples, "--max-samples")),
            _ => None,
        };
        if let (Some((cap, how)), Ok(n)) = (cap, text.parse::<f64>()) {
            if n > cap as f64 {
                return Err(ApiError::bad(format!(
                    "{name} = {text} is more than this server allows ({cap}, {how})"
                )));
            }
        }
        if flag == "baselines"
            && (text.contains('/') || text.contains('\\') || text.ends_with(".json"))
        {
            return Err(ApiError::bad(format!(
                "{name}: the server reads no files; give zero, pad or another built-in baseline"
            )));
        }
        out.push((name.clone(), text));
    }
    Ok(out)
}

/// `[{"method": name, "scores": [...]}, …]` in the order given, or `{name: [...], …}` (in the
/// order of the names).
fn given_scores(scores: Value) -> Result<(Vec<String>, Vec<Vec<f32>>), ApiError> {
    let bad = || {
        ApiError::bad("scores: expected [{\"method\": name, \"scores\": [number per token]}, …] or {method: [number per token], …}, for at least two methods of one length")
    };
    let pairs: Vec<(String, Value)> = match scores {
        Value::Object(map) => map.into_iter().collect(),
        Value::Array(list) => list
            .into_iter()
            .map(|entry| match (&entry["method"], &entry["scores"]) {
                (Value::String(name), list) => Ok((name.clone(), list.clone())),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let mut names = Vec::new();
    let mut all = Vec::new();
    for (name, list) in pairs {
        let Value::Array(list) = list else {
            return Err(bad());
        };
        let values: Option<Vec<f32>> = list.iter().map(|v| v.as_f64().map(|x| x as f32)).collect();
        names.push(name);
        all.push(values.ok_or_else(bad)?);
    }
    let same_length = all.windows(2).all(|w| w[0].len() == w[1].len());
    if all.len() < 2 || !same_length || all[0].is_empty() {
        return Err(bad());
    }
    Ok((names, all))
}

/// Compares without stopping at the first difference, so the time says nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
