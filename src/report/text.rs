//! Terminal view: the tokens coloured by score, then a score table.

use super::{diverging_rgb, normalised, summary, visible};
use crate::attribution::Attribution;

pub fn render_text(a: &Attribution, color: bool) -> String {
    let mut out = summary(a) + "\n";
    let norm = normalised(&a.scores);
    if color {
        for (tok, t) in a.display.iter().zip(&norm) {
            let (r, g, b) = diverging_rgb(*t);
            out += &format!(
                "\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{}\x1b[0m",
                visible(tok)
            );
        }
        out += "\n";
    }
    let width = a
        .display
        .iter()
        .map(|t| visible(t).chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    for (i, ((tok, s), t)) in a.display.iter().zip(&a.scores).zip(&norm).enumerate() {
        let bar_len = (t.abs() * 20.0).round() as usize;
        let bar: String = std::iter::repeat_n(if *t >= 0.0 { '+' } else { '-' }, bar_len).collect();
        out += &format!("{i:>4}  {:<width$}  {s:>12.6}  {bar}\n", visible(tok));
    }
    out += &generation_table(a, color);
    for w in &a.warnings {
        out += &format!("warning: {w}\n");
    }
    out
}

/// Generated tokens as columns, source tokens as rows; future positions blank.
fn generation_table(a: &Attribution, color: bool) -> String {
    let (Some(steps), Some(generated)) = (&a.generation, &a.generated_tokens) else {
        return String::new();
    };
    let sources: Vec<String> = a
        .display
        .iter()
        .chain(generated.iter())
        .map(|t| visible(t))
        .collect();
    let width = sources
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 16);
    let mut out = format!(
        "\ngenerated:{}\n{:>width$} ",
        generated.concat().replace('\n', "\\n"),
        ""
    );
    for g in generated {
        out += &format!(" {:>9.9}", visible(g));
    }
    out += "\n";
    let norms: Vec<Vec<f32>> = steps.iter().map(|s| normalised(&s.scores)).collect();
    for (row, src) in sources[..sources.len() - 1].iter().enumerate() {
        out += &format!("{src:>width$.width$} ");
        for (step, norm) in steps.iter().zip(&norms) {
            match step.scores.get(row) {
                None => out += &format!(" {:>9}", ""),
                Some(v) if color => {
                    let (r, g, b) = diverging_rgb(norm[row]);
                    out += &format!(" \x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{v:>9.4}\x1b[0m");
                }
                Some(v) => out += &format!(" {v:>9.4}"),
            }
        }
        out += "\n";
    }
    out
}
