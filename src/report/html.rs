//! A self-contained HTML page (no scripts or network requests): tokens as a heatmap with a
//! diverging scale, scores on hover, method and target in the header.

use super::{diverging_rgb, escape, normalised, summary, visible};
use crate::attribution::Attribution;

pub fn render_html(a: &Attribution) -> String {
    let mut tokens = String::new();
    for ((tok, s), t) in a.display.iter().zip(&a.scores).zip(normalised(&a.scores)) {
        let (r, g, b) = diverging_rgb(t);
        tokens += &format!(
            "<span class=\"tok\" style=\"background:rgb({r},{g},{b})\" title=\"{:.6}\">{}</span>",
            s,
            escape(tok)
        );
    }
    let generation = generation_table(a);
    let warnings: String = a
        .warnings
        .iter()
        .map(|w| format!("<p class=\"warn\">{}</p>", escape(w)))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gradlens · {method}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.tok {{ white-space: pre; padding: 2px 1px; margin: 1px; border-radius: 3px; font-family: ui-monospace, monospace; line-height: 2em; }}
.warn {{ color: #a40; }}
.legend span {{ padding: 2px 8px; }}
table.steps {{ border-collapse: collapse; font-family: ui-monospace, monospace; }}
table.steps th, table.steps td {{ border: 1px solid #ddd; padding: 3px 6px; white-space: pre; text-align: center; }}
table.steps th.src {{ font-weight: normal; color: #555; }}
</style></head><body>
<h1>{method}</h1>
<p>{summary}</p>
<div class="legend"><span style="background:rgb(31,119,180);color:#fff">negative</span><span>0</span><span style="background:rgb(214,39,40);color:#fff">positive</span></div>
<p>{tokens}</p>
{generation}
{warnings}
</body></html>
"#,
        method = escape(&a.method),
        summary = escape(&summary(a)),
    )
}

/// One row per generated step, one column per source token (prompt, then generated); each row
/// coloured on its own scale, future positions empty.
fn generation_table(a: &Attribution) -> String {
    let (Some(steps), Some(generated)) = (&a.generation, &a.generated_tokens) else {
        return String::new();
    };
    let sources: Vec<&String> = a.display.iter().chain(generated.iter()).collect();
    let mut html =
        String::from("<h2>Generated tokens</h2>\n<table class=\"steps\"><tr><th>generated</th>");
    for s in &sources[..sources.len() - 1] {
        html += &format!("<th class=\"src\">{}</th>", escape(&visible(s)));
    }
    html += "</tr>\n";
    for (step, tok) in steps.iter().zip(generated) {
        html += &format!(
            "<tr><th title=\"{} {:.6}\">{}</th>",
            escape(&step.target.kind),
            step.target_score,
            escape(&visible(tok))
        );
        for (s, t) in step.scores.iter().zip(normalised(&step.scores)) {
            let (r, g, b) = diverging_rgb(t);
            html +=
                &format!("<td style=\"background:rgb({r},{g},{b})\" title=\"{s:.6}\">{s:.3}</td>");
        }
        for _ in step.scores.len()..sources.len() - 1 {
            html += "<td></td>";
        }
        html += "</tr>\n";
    }
    html + "</table>"
}
