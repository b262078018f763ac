//! The checks every result passes before it is returned: finite numbers only, and a warning
//! when a reference method's scores miss `F(x) − F(x′)`.

use crate::attribution::Attribution;
use crate::error::{Error, Result};
use crate::models::Model;

/// A result with a NaN or infinite score, target score or delta is an error, never a success:
/// it names the method and the first bad value, and what to try (`hint`, the method's own,
/// where the weights are finite).
pub fn check_finite(model: &Model, out: &Attribution, hint: Option<&str>) -> Result<()> {
    let bad = |what: String, v: f32| {
        let why = model.non_finite_weight().unwrap_or_else(|| match hint {
            Some(h) => h.to_string(),
            None => {
                "the model's weights or constants, or the method's options, overflow in f32".into()
            }
        });
        Err(Error::NonFinite(format!(
            "{}: {what} is {v}, not a finite number ({why})",
            out.method
        )))
    };
    for (name, v) in [
        ("F(x), the target score", Some(out.target_score)),
        ("F(x'), the baseline score", out.baseline_score),
        ("the convergence delta", out.convergence_delta),
    ] {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return bad(name.to_string(), v);
        }
    }
    if let Some((i, &v)) = out.scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let token = out
            .tokens
            .get(i)
            .map_or(String::new(), |t| format!(" {t:?}"));
        return bad(format!("the score of token {i}{token}"), v);
    }
    if let Some(map) = &out.map {
        if let Some((i, &v)) = map.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return bad(format!("entry {i} of the attribution map"), v);
        }
    }
    Ok(())
}

/// Warns when a reference method's attributions miss `F(x) − F(x′)` by more than 5%; `hint`
/// says what to try.
pub fn check_delta(out: &mut Attribution, hint: &str) {
    let (Some(delta), Some(b)) = (out.convergence_delta, out.baseline_score) else {
        return;
    };
    let gap = (out.target_score - b).abs();
    if delta.abs() <= 0.05 * gap.max(1e-6) {
        return;
    }
    out.warnings.push(format!(
        "convergence delta {delta:.4} is {:.0}% of F(x) - F(x') = {:.4}{hint}",
        100.0 * delta.abs() / gap.max(1e-6),
        out.target_score - b,
    ));
}
