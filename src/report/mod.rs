//! Rendering attributions: JSON, a coloured terminal view, and a self-contained HTML page.

mod faithfulness;
mod html;
mod text;

use crate::attribution::Attribution;
use crate::error::{Error, Result};

pub use faithfulness::render_evaluation;
pub use html::{render_html, render_report, Report};
pub use text::render_text;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Html,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            _ => Err(Error::InvalidArgument(format!(
                "unknown format '{s}' (expected text, json or html)"
            ))),
        }
    }
}

pub fn render_json(a: &Attribution) -> Result<String> {
    serde_json::to_string_pretty(a)
        .map_err(|e| Error::Other(format!("json: {e}")))
        .map(|s| s + "\n")
}

/// Renders `a`; `color` applies to the text format only.
pub fn render(a: &Attribution, format: Format, color: bool) -> Result<String> {
    match format {
        Format::Json => render_json(a),
        Format::Text => Ok(render_text(a, color)),
        Format::Html => Ok(render_html(a)),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Makes newlines and tabs in tokens visible in tables.
fn visible(tok: &str) -> String {
    tok.replace('\n', "\\n").replace('\t', "\\t")
}

/// Scores scaled to [−1, 1] by the largest magnitude.
fn normalised(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().fold(0f32, |m, v| m.max(v.abs()));
    scores
        .iter()
        .map(|v| if max > 0.0 { v / max } else { 0.0 })
        .collect()
}

/// Diverging colour for `t ∈ [−1, 1]`: blue (negative), white, red (positive).
fn diverging_rgb(t: f32) -> (u8, u8, u8) {
    let t = t.clamp(-1.0, 1.0);
    let fade = |c: f32| (255.0 - (255.0 - c) * t.abs()) as u8;
    if t >= 0.0 {
        (fade(214.0), fade(39.0), fade(40.0))
    } else {
        (fade(31.0), fade(119.0), fade(180.0))
    }
}

/// One-line summary of the target and, for path methods, the integral's accuracy.
fn summary(a: &Attribution) -> String {
    let target = match (&a.target.token, a.target.id) {
        (Some(t), Some(id)) => format!("{} of {t:?} (id {id})", a.target.kind),
        (Some(t), None) => format!("{} with {t:?}", a.target.kind),
        (None, Some(id)) => format!("{} {id}", a.target.kind),
        (None, None) => a.target.kind.clone(),
    };
    let mut s = format!(
        "{} · {} · target {target} · F(x) = {:.5}",
        a.method, a.model, a.target_score
    );
    if let (Some(b), Some(d)) = (a.baseline_score, a.convergence_delta) {
        s += &format!(" · F(x') = {b:.5} · delta = {d:.3e}");
    }
    if let Some(d) = a.extra::<f32>("adversarial_drop") {
        s += &format!(" · adversarial drop = {d:.4}");
    }
    if let Some(l) = a.extra::<usize>("layer") {
        s += &format!(" · layer {l}");
    }
    if let Some(h) = a.extra::<usize>("head") {
        s += &format!(" head {h}");
    }
    if let Some(r) = a.extra::<usize>("rounds") {
        s += &format!(" · {r} rounds");
    }
    if let (Some(n), Some(q)) = (a.extra::<usize>("steps"), a.extra::<String>("quadrature")) {
        s += &format!(" · {n} steps {q}");
    }
    s + &format!(" · {:.1} ms", a.elapsed_ms)
}
