//! Terminal view: the tokens coloured by score, then a score table.

use super::{diverging_rgb, normalised, summary};
use crate::attribution::Attribution;

pub fn render_text(a: &Attribution, color: bool) -> String {
    let mut out = summary(a) + "\n";
    let norm = normalised(&a.scores);
    if color {
        for (tok, t) in a.tokens.iter().zip(&norm) {
            let (r, g, b) = diverging_rgb(*t);
            out += &format!(
                "\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{}\x1b[0m",
                visible(tok)
            );
        }
        out += "\n";
    }
    let width = a
        .tokens
        .iter()
        .map(|t| visible(t).chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    for (i, ((tok, s), t)) in a.tokens.iter().zip(&a.scores).zip(&norm).enumerate() {
        let bar_len = (t.abs() * 20.0).round() as usize;
        let bar: String = std::iter::repeat_n(if *t >= 0.0 { '+' } else { '-' }, bar_len).collect();
        out += &format!("{i:>4}  {:<width$}  {s:>12.6}  {bar}\n", visible(tok));
    }
    for w in &a.warnings {
        out += &format!("warning: {w}\n");
    }
    out
}

/// Makes whitespace-only tokens visible in a table.
fn visible(tok: &str) -> String {
    tok.replace('\n', "\\n").replace('\t', "\\t")
}
