//! Rendering a faithfulness comparison: a table (text), the numbers (JSON), and the deletion and
//! insertion curves as inline SVG (HTML).

use super::{escape, Format};
use crate::attribution::faithfulness::Evaluation;
use crate::error::{Error, Result};

pub fn render_evaluation(e: &Evaluation, format: Format) -> Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(e)
            .map_err(|err| Error::Other(format!("json: {err}")))
            .map(|s| s + "\n"),
        Format::Text => Ok(text(e)),
        Format::Html => Ok(html(e)),
    }
}

pub(super) fn header(e: &Evaluation) -> String {
    let target = match (&e.target.token, e.target.id) {
        (Some(t), Some(id)) => format!("{} of {t:?} (id {id})", e.target.kind),
        (Some(t), None) => format!("{} with {t:?}", e.target.kind),
        (None, Some(id)) => format!("{} {id}", e.target.kind),
        (None, None) => e.target.kind.clone(),
    };
    format!(
        "{} · target {target} · F(x) = {:.4} · F(all tokens at the {} baseline) = {:.4} · {} tokens",
        e.model,
        e.target_score,
        e.baseline,
        e.baseline_score,
        e.tokens.len()
    )
}

fn text(e: &Evaluation) -> String {
    let mut out = header(e) + "\n\n";
    out += &format!(
        "{:<22} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10}\n",
        "method", "deletion↓", "insertion↑", "compreh.↑", "suffic.↓", "AOPC↑", "time ms"
    );
    for m in &e.methods {
        out += &format!(
            "{:<22} {:>11.4} {:>11.4} {:>10.4} {:>10.4} {:>10.4} {:>10.1}\n",
            m.method,
            m.deletion_auc,
            m.insertion_auc,
            m.comprehensiveness,
            m.sufficiency,
            m.aopc,
            m.elapsed_ms
        );
    }
    out += "\ndeletion and insertion: areas under F as the top-ranked tokens are removed / kept \
            (0% to 100% in steps of 10%)\n";
    if let Some(g) = &e.agreement {
        out += "\nagreement between the methods (tokens ranked by |score|)\n";
        out += &matrix_text("Spearman", &g.methods, &g.spearman);
        out += &matrix_text("Kendall τ-b", &g.methods, &g.kendall);
        let overlap: Vec<Vec<Option<f64>>> = g
            .top_k
            .iter()
            .map(|r| r.iter().map(|&v| Some(v)).collect())
            .collect();
        out += &matrix_text(&format!("top-{} overlap", g.k), &g.methods, &overlap);
    }
    for m in &e.methods {
        for w in &m.warnings {
            out += &format!("warning ({}): {w}\n", m.method);
        }
    }
    out
}

/// One agreement matrix as a table of text ("–" where a correlation is undefined).
fn matrix_text(title: &str, names: &[String], m: &[Vec<Option<f64>>]) -> String {
    let mut out = format!("{title}\n{:<22}", "");
    for n in names {
        out += &format!(" {:>10.10}", n);
    }
    out += "\n";
    for (name, row) in names.iter().zip(m) {
        out += &format!("{name:<22}");
        for v in row {
            out += &match v {
                Some(v) => format!(" {v:>10.2}"),
                None => format!(" {:>10}", "–"),
            };
        }
        out += "\n";
    }
    out
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One curve chart: F against the fraction of tokens, a polyline per method.
fn chart(e: &Evaluation, title: &str, curve: impl Fn(usize) -> Vec<f32>) -> String {
    let (w, h, pad) = (420.0f32, 260.0f32, 40.0f32);
    let all: Vec<f32> = (0..e.methods.len()).flat_map(&curve).collect();
    let lo = all.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let px = |f: f32| pad + f * (w - 2.0 * pad);
    let py = |v: f32| h - pad - (v - lo) / span * (h - 2.0 * pad);
    let mut svg = format!(
        "<figure><figcaption>{title}</figcaption><svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <rect x=\"{pad}\" y=\"{pad}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>\
         <text x=\"{pad}\" y=\"{}\" font-size=\"11\">0%</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">100% of tokens</text>\
         <text x=\"2\" y=\"{}\" font-size=\"11\">{hi:.2}</text><text x=\"2\" y=\"{}\" font-size=\"11\">{lo:.2}</text>",
        w - 2.0 * pad,
        h - 2.0 * pad,
        h - pad + 14.0,
        w - pad,
        h - pad + 14.0,
        pad + 4.0,
        h - pad,
    );
    for (m, method) in e.methods.iter().enumerate() {
        let points: Vec<String> = e
            .fractions
            .iter()
            .zip(curve(m))
            .map(|(&f, v)| format!("{:.1},{:.1}", px(f), py(v)))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            COLORS[m % COLORS.len()],
            points.join(" "),
            escape(&method.method)
        );
    }
    svg + "</svg></figure>"
}

/// An evaluation as the static report: its methods' heatmaps side by side, then
/// `faithfulness_html` and the agreement.
fn html(e: &Evaluation) -> String {
    super::html::render_report(&super::html::Report {
        evaluation: Some(e.clone()),
        ..Default::default()
    })
}

/// The faithfulness table and the deletion and insertion curves, for the report.
pub(super) fn faithfulness_html(e: &Evaluation) -> String {
    let mut rows = String::new();
    for (m, r) in e.methods.iter().enumerate() {
        rows += &format!(
            "<tr><td><span class=\"key\" style=\"background:{}\"></span>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.1}</td></tr>\n",
            COLORS[m % COLORS.len()],
            escape(&r.method),
            r.deletion_auc,
            r.insertion_auc,
            r.comprehensiveness,
            r.sufficiency,
            r.aopc,
            r.elapsed_ms
        );
    }
    let deletion = chart(
        e,
        "Deletion: F with the top-ranked tokens removed (lower is better)",
        |m| e.methods[m].deletion.clone(),
    );
    let insertion = chart(
        e,
        "Insertion: F with only the top-ranked tokens kept (higher is better)",
        |m| e.methods[m].insertion.clone(),
    );
    format!(
        "<h2>Faithfulness</h2><p>Removed tokens become the {} baseline.</p>\
         <table><tr><th>method</th><th>deletion AUC ↓</th><th>insertion AUC ↑</th><th>comprehensiveness ↑</th><th>sufficiency ↓</th><th>AOPC ↑</th><th>time ms</th></tr>\n\
         {rows}</table>\n{deletion}{insertion}",
        escape(&e.baseline)
    )
}
