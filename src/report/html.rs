//! The static HTML report: one file with no scripts and no network requests, which opens
//! anywhere. Each method is a panel of its tokens as a heatmap (a diverging scale, each panel
//! on its own), the panels side by side; hovering a token shows its score and its rank under
//! every method; generated tokens fold out one by one; and what else was measured follows:
//! the agreement matrices, the faithfulness table and curves. `gradlens attribute` writes it
//! for one method, `gradlens evaluate` for several, and the server's page exports what it
//! shows as one (`POST /api/report`).

use super::{diverging_rgb, escape, normalised, summary};
use crate::attribution::agreement::Agreement;
use crate::attribution::faithfulness::Evaluation;
use crate::attribution::Attribution;
use serde::Deserialize;

/// What a report shows: attributions of one prompt (each a panel) and, where measured, the
/// methods' agreement and faithfulness. The page's export sends it as JSON.
#[derive(Debug, Default, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub attributions: Vec<Attribution>,
    #[serde(default)]
    pub agreement: Option<Agreement>,
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
}

/// One panel: a method's scores over the tokens, and its generated tokens' steps.
struct Panel<'a> {
    method: &'a str,
    meta: String,
    scores: &'a [f32],
    warnings: &'a [String],
    /// The generated tokens and each one's scores over the tokens before it.
    generation: Option<(&'a [String], &'a [crate::attribution::GenerationStep])>,
}

/// One attribution as a report (`--format html`).
pub fn render_html(a: &Attribution) -> String {
    render_report(&Report {
        attributions: vec![a.clone()],
        ..Report::default()
    })
}

/// The whole report.
pub fn render_report(r: &Report) -> String {
    let first = r.attributions.first();
    // An evaluation alone (`gradlens evaluate`): its methods' scores are the panels.
    let (tokens, panels, header): (Vec<String>, Vec<Panel>, String) = match (first, &r.evaluation) {
        (Some(a), _) => (
            a.display.clone(),
            r.attributions.iter().map(attribution_panel).collect(),
            if r.attributions.len() == 1 {
                summary(a)
            } else {
                format!("{} · {} tokens", a.model, a.display.len())
            },
        ),
        (None, Some(e)) => (
            e.tokens.clone(),
            e.methods
                .iter()
                .map(|m| Panel {
                    method: &m.method,
                    meta: format!("{:.1} ms", m.elapsed_ms),
                    scores: &m.scores,
                    warnings: &m.warnings,
                    generation: None,
                })
                .collect(),
            super::faithfulness::header(e),
        ),
        (None, None) => (Vec::new(), Vec::new(), "nothing to show".into()),
    };
    let title = match panels.as_slice() {
        [one] => one.method.to_string(),
        _ if r.evaluation.is_some() && first.is_none() => "Methods compared".to_string(),
        _ => "Methods side by side".to_string(),
    };
    let ranks: Vec<Vec<usize>> = panels.iter().map(|p| ranks(p.scores)).collect();
    let panels_html: String = (0..panels.len())
        .map(|me| panel_html(me, &tokens, &panels, &ranks))
        .collect();
    let rank_table = if panels.len() > 1 {
        rank_table(&tokens, &panels, &ranks)
    } else {
        String::new()
    };
    let agreement = r
        .agreement
        .as_ref()
        .or(r.evaluation.as_ref().and_then(|e| e.agreement.as_ref()))
        .map(matrices_html)
        .unwrap_or_default();
    let faithfulness = r
        .evaluation
        .as_ref()
        .map(super::faithfulness::faithfulness_html)
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gradlens · {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.panels {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }}
.panel {{ border: 1px solid #ddd; border-radius: 6px; padding: 10px; }}
.panel h2 {{ font-size: 15px; margin: 0 0 4px; }}
.meta {{ color: #666; font-size: 12px; margin-bottom: 6px; }}
.tok {{ position: relative; display: inline-block; white-space: pre; padding: 1px 2px; margin: 1px; border-radius: 3px; font-family: ui-monospace, monospace; }}
.tok:hover {{ outline: 2px solid #222; }}
.tok:hover::after {{ content: attr(data-tip); position: absolute; left: 0; top: 1.9em; z-index: 2; white-space: pre; background: #222; color: #fff; padding: 4px 6px; border-radius: 4px; font-size: 12px; pointer-events: none; }}
details {{ margin-top: 4px; font-size: 13px; }}
summary {{ cursor: pointer; }}
.warn {{ color: #a40; font-size: 12px; }}
.legend span {{ padding: 2px 8px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 6px; text-align: right; }}
th {{ background: #f4f5f7; }}
td.tokcell, th.tokcell {{ text-align: left; font-family: ui-monospace, monospace; white-space: pre; }}
figure {{ display: inline-block; margin: 1em 1em 0 0; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px; }}
</style></head><body>
<h1>{title}</h1>
<p>{header}</p>
<div class="legend"><span style="background:rgb(31,119,180);color:#fff">negative</span><span>0</span><span style="background:rgb(214,39,40);color:#fff">positive</span> each panel scaled to its largest |score|; hover a token for its score and its rank under every method</div>
<div class="panels">{panels_html}</div>
{rank_table}
{agreement}
{faithfulness}
</body></html>
"#,
        title = escape(&title),
        header = escape(&header),
    )
}

fn attribution_panel(a: &Attribution) -> Panel<'_> {
    let target = a.target.token.as_deref().unwrap_or(&a.target.kind);
    Panel {
        method: &a.method,
        meta: format!(
            "target {target:?} · F(x) = {:.5} · {:.1} ms",
            a.target_score, a.elapsed_ms
        ),
        scores: &a.scores,
        warnings: &a.warnings,
        generation: match (&a.generated_tokens, &a.generation) {
            (Some(t), Some(s)) => Some((t, s)),
            _ => None,
        },
    }
}

/// Each token's rank by |score| (1 = the largest; ties: the earlier token first), as the
/// agreement and the page rank them.
fn ranks(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].abs().total_cmp(&scores[a].abs()).then(a.cmp(&b)));
    let mut rank = vec![0; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r + 1;
    }
    rank
}

/// A heatmap token: its colour on `t ∈ [−1, 1]` and its tooltip.
fn token_span(tok: &str, t: f32, tip: &str) -> String {
    let (r, g, b) = diverging_rgb(t);
    format!(
        "<span class=\"tok\" style=\"background:rgb({r},{g},{b})\" data-tip=\"{}\">{}</span>",
        escape(tip).replace('\n', "&#10;"),
        escape(tok)
    )
}

fn panel_html(me: usize, tokens: &[String], all: &[Panel], ranks: &[Vec<usize>]) -> String {
    let p = &all[me];
    let n = p.scores.len();
    let mut html = format!(
        "<div class=\"panel\"><h2>{}</h2><div class=\"meta\">{}</div><div>",
        escape(p.method),
        escape(&p.meta)
    );
    for (i, (tok, t)) in tokens.iter().zip(normalised(p.scores)).enumerate() {
        let mut tip = format!(
            "{tok:?} · {}: {:.6} (rank {} of {n})",
            p.method, p.scores[i], ranks[me][i]
        );
        for (other, (q, r)) in all.iter().zip(ranks).enumerate() {
            if other != me && i < q.scores.len() {
                tip += &format!("\n{}: {:.6} (rank {})", q.method, q.scores[i], r[i]);
            }
        }
        html += &token_span(tok, t, &tip);
    }
    html += "</div>";
    if let Some((generated, steps)) = p.generation {
        html += &generation_folds(p.method, tokens, generated, steps);
    }
    for w in p.warnings {
        html += &format!("<p class=\"warn\">{}</p>", escape(w));
    }
    html + "</div>"
}

/// One fold per generated token: its heatmap over the prompt and the tokens generated before
/// it, on its own scale.
fn generation_folds(
    method: &str,
    prompt: &[String],
    generated: &[String],
    steps: &[crate::attribution::GenerationStep],
) -> String {
    let mut html = String::new();
    for (k, (step, tok)) in steps.iter().zip(generated).enumerate() {
        html += &format!(
            "<details><summary>→ {} (F = {:.5})</summary>",
            escape(&format!("{tok:?}")),
            step.target_score
        );
        let sources = prompt.iter().chain(&generated[..k]);
        let ranks = ranks(&step.scores);
        let n = step.scores.len();
        for (i, (src, t)) in sources.zip(normalised(&step.scores)).enumerate() {
            let tip = format!(
                "{src:?} · {method}, step {}: {:.6} (rank {} of {n})",
                k + 1,
                step.scores[i],
                ranks[i]
            );
            html += &token_span(src, t, &tip);
        }
        html += "</details>";
    }
    html
}

/// Every token's score and rank under every method, folded.
fn rank_table(tokens: &[String], panels: &[Panel], ranks: &[Vec<usize>]) -> String {
    let head: String = panels
        .iter()
        .map(|p| format!("<th colspan=\"2\">{}</th>", escape(p.method)))
        .collect();
    let mut rows = String::new();
    for (i, tok) in tokens.iter().enumerate() {
        rows += &format!("<tr><td>{i}</td><td class=\"tokcell\">{}</td>", escape(tok));
        for (p, r) in panels.iter().zip(ranks) {
            match (p.scores.get(i), r.get(i)) {
                (Some(s), Some(r)) => rows += &format!("<td>{s:.4}</td><td>{r}</td>"),
                _ => rows += "<td></td><td></td>",
            }
        }
        rows += "</tr>";
    }
    format!(
        "<details><summary>Every token's score and rank (by |score|) under every method</summary>\
         <table><tr><th>#</th><th class=\"tokcell\">token</th>{head}</tr>{rows}</table></details>"
    )
}

/// The agreement matrices as tables.
pub(super) fn matrices_html(g: &Agreement) -> String {
    let table = |title: &str, m: Vec<Vec<Option<f64>>>| {
        let head: String = g
            .methods
            .iter()
            .map(|n| format!("<th>{}</th>", escape(n)))
            .collect();
        let rows: String = g
            .methods
            .iter()
            .zip(&m)
            .map(|(n, row)| {
                let cells: String = row
                    .iter()
                    .map(|v| match v {
                        Some(v) => format!("<td>{v:.2}</td>"),
                        None => "<td>–</td>".into(),
                    })
                    .collect();
                format!("<tr><th>{}</th>{cells}</tr>", escape(n))
            })
            .collect();
        format!("<figure><figcaption>{title}</figcaption><table><tr><th></th>{head}</tr>{rows}</table></figure>")
    };
    let overlap = g
        .top_k
        .iter()
        .map(|r| r.iter().map(|&v| Some(v)).collect())
        .collect();
    format!(
        "<h2>Agreement between the methods</h2><p>Tokens ranked by |score|.</p>{}{}{}",
        table("Spearman", g.spearman.clone()),
        table("Kendall τ-b", g.kendall.clone()),
        table(&format!("Top-{} overlap", g.k), overlap),
    )
}
