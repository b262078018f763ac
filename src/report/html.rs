//! A self-contained HTML page (no scripts or network requests): tokens as a heatmap with a
//! diverging scale, scores on hover, method and target in the header.

use super::{diverging_rgb, normalised, summary};
use crate::attribution::Attribution;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render_html(a: &Attribution) -> String {
    let mut tokens = String::new();
    for ((tok, s), t) in a.tokens.iter().zip(&a.scores).zip(normalised(&a.scores)) {
        let (r, g, b) = diverging_rgb(t);
        tokens += &format!(
            "<span class=\"tok\" style=\"background:rgb({r},{g},{b})\" title=\"{:.6}\">{}</span>",
            s,
            escape(tok)
        );
    }
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
</style></head><body>
<h1>{method}</h1>
<p>{summary}</p>
<div class="legend"><span style="background:rgb(31,119,180);color:#fff">negative</span><span>0</span><span style="background:rgb(214,39,40);color:#fff">positive</span></div>
<p>{tokens}</p>
{warnings}
</body></html>
"#,
        method = escape(&a.method),
        summary = escape(&summary(a)),
    )
}
