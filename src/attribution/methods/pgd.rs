//! Robustness-based attribution (in the spirit of Yin et al. 2022): projected gradient descent
//! on the input embeddings lowers `F`, each token kept within an L2 ball of `radius × |x_i|`
//! around its real embedding; the attribution is the path integral of `∇F` along the attack's
//! trajectory (trapezoidal per segment, from the gradients the attack computes anyway), so
//! `Σ attr ≈ F(x) − F(x_adv)`. Sequential: each step needs the last one's gradient.

use super::common;
use crate::attribution::engine::Prepared;
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Pgd {
    pub steps: usize,
    /// Each token's L2 ball, relative to its embedding's norm.
    pub radius: f32,
}

const STEPS: OptionSpec = common::steps("20");
const RADIUS: OptionSpec = OptionSpec::new(
    "radius",
    Kind::Number,
    Some("0.1"),
    "each token's L2 ball, relative to its embedding's norm",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "pgd",
    aliases: &[],
    summary: "path integral along an attack within --radius; reports the drop",
    cost: "steps + 1 forward+backward, one at a time (an attack trajectory)",
    family: Family::Path,
    options: &[STEPS, RADIUS],
    build: |v| Ok(Box::new(Pgd::from_values(v)?)),
};

impl Pgd {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(Pgd {
            steps: v.positive(&STEPS)?,
            radius: v.get(&RADIUS)?,
        })
    }
}

impl Default for Pgd {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for Pgd {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let r = pgd(p, self)?;
        let mut a = p.referenced(INFO.name, r.map, r.f_x, r.f_adversarial);
        a.set_extra("steps", self.steps);
        a.set_extra("adversarial_drop", r.f_x - r.f_adversarial);
        Ok(a)
    }
}

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// `F` at the end of the attack.
    pub f_adversarial: f32,
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|a| a * a).sum::<f32>().sqrt()
}

pub fn pgd(p: &Prepared, opts: &Pgd) -> Result<Out> {
    if !(opts.radius > 0.0 && opts.radius.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "pgd: --radius {} must be a positive number",
            opts.radius
        )));
    }
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let steps = opts.steps;
    let x0 = p.x.to_vec()?;
    let radius: Vec<f32> = x0.chunks(d).map(|r| opts.radius * norm(r)).collect();
    // The usual PGD step: 2.5 radii over the whole attack, so the boundary is reachable from
    // any start and the projection does the rest.
    let step: Vec<f32> = radius.iter().map(|r| 2.5 * r / steps as f32).collect();
    let grad_at = |v: &[f32]| -> Result<(f32, Vec<f32>)> {
        let t = Tensor::from_vec(v.to_vec(), [1, len, d], p.x.device())?;
        let (f, g) = p.gradients(&t)?;
        Ok((f[0], g.to_vec()?))
    };
    let (f_x, mut g) = grad_at(&x0)?;
    let (mut cur, mut f_cur) = (x0.clone(), f_x);
    let mut map = vec![0.0f64; len * d];
    for s in 0..steps {
        let mut next = cur.clone();
        for i in 0..len {
            let r = i * d..(i + 1) * d;
            let gn = norm(&g[r.clone()]);
            if gn > 0.0 {
                for j in r.clone() {
                    next[j] -= step[i] * g[j] / gn;
                }
            }
            let off: Vec<f32> = r.clone().map(|j| next[j] - x0[j]).collect();
            let dist = norm(&off);
            if dist > radius[i] {
                for (k, j) in r.enumerate() {
                    next[j] = x0[j] + off[k] * radius[i] / dist;
                }
            }
        }
        let (f_next, g_next) = grad_at(&next)?;
        for j in 0..len * d {
            map[j] += (cur[j] - next[j]) as f64 * 0.5 * (g[j] + g_next[j]) as f64;
        }
        (cur, g, f_cur) = (next, g_next, f_next);
        p.report_progress(s + 1, steps)?;
    }
    Ok(Out {
        map: map.into_iter().map(|v| v as f32).collect(),
        f_x,
        f_adversarial: f_cur,
    })
}
