//! Quadrature rules on [0, 1] for path integrals. Every rule's weights sum to exactly 1 (up to
//! f64 rounding), so a constant gradient integrates exactly; Captum's trapezoid, whose weights
//! sum to (n−1)/n, is a bug this avoids.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quadrature {
    GaussLegendre,
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
}

impl Quadrature {
    pub const ALL: [Quadrature; 5] = [
        Quadrature::GaussLegendre,
        Quadrature::RiemannLeft,
        Quadrature::RiemannRight,
        Quadrature::RiemannMiddle,
        Quadrature::RiemannTrapezoid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quadrature::GaussLegendre => "gauss-legendre",
            Quadrature::RiemannLeft => "riemann-left",
            Quadrature::RiemannRight => "riemann-right",
            Quadrature::RiemannMiddle => "riemann-middle",
            Quadrature::RiemannTrapezoid => "riemann-trapezoid",
        }
    }

    /// Points `α_k` and weights `w_k` with `Σ w_k = 1`.
    pub fn nodes(self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let min = if self == Quadrature::RiemannTrapezoid {
            2
        } else {
            1
        };
        if n < min {
            return Err(Error::InvalidArgument(format!(
                "{} needs at least {min} steps",
                self.name()
            )));
        }
        // Its nodes cost time quadratic in their number (a minute at 100,000, which nothing
        // interrupts), and no integral here needs so many.
        if self == Quadrature::GaussLegendre && n > MAX_GAUSS_LEGENDRE {
            return Err(Error::InvalidArgument(format!(
                "{n} Gauss-Legendre steps: at most {MAX_GAUSS_LEGENDRE} (for more, a Riemann rule, or --tolerance for adaptive integration)"
            )));
        }
        let nf = n as f64;
        let uniform = vec![1.0 / nf; n];
        Ok(match self {
            Quadrature::GaussLegendre => gauss_legendre(n),
            Quadrature::RiemannLeft => ((0..n).map(|i| i as f64 / nf).collect(), uniform),
            Quadrature::RiemannRight => ((1..=n).map(|i| i as f64 / nf).collect(), uniform),
            Quadrature::RiemannMiddle => ((0..n).map(|i| (i as f64 + 0.5) / nf).collect(), uniform),
            Quadrature::RiemannTrapezoid => {
                let h = 1.0 / (nf - 1.0);
                let alphas = (0..n).map(|i| i as f64 * h).collect();
                let weights = (0..n)
                    .map(|i| if i == 0 || i == n - 1 { h / 2.0 } else { h })
                    .collect();
                (alphas, weights)
            }
        })
    }
}

impl std::str::FromStr for Quadrature {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Quadrature::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Quadrature::ALL.iter().map(|q| q.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown quadrature '{s}' (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// The most Gauss–Legendre nodes computed.
const MAX_GAUSS_LEGENDRE: usize = 10_000;

/// Gauss–Legendre nodes by Newton's method on `P_n`, mapped from [−1, 1] to [0, 1].
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut alphas = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            // Recurrence for P_n(x) and its derivative.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 1 { x } else { p1 };
            let pm1 = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (x * pn - pm1) / (x * x - 1.0);
            let dx = pn / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        // Node x (descending) and its mirror −x; on [0, 1]: α = (1 ± x)/2, weight w/2.
        alphas[i] = 0.5 * (1.0 - x);
        alphas[n - 1 - i] = 0.5 * (1.0 + x);
        weights[i] = 0.5 * w;
        weights[n - 1 - i] = 0.5 * w;
    }
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    (alphas, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_nodes_in_unit_interval() {
        for q in Quadrature::ALL {
            for n in [2, 3, 7, 16, 50, 128] {
                let (a, w) = q.nodes(n).unwrap();
                assert_eq!(a.len(), n);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14, "{q:?} {n}");
                assert!(a.iter().all(|&x| (0.0..=1.0).contains(&x)));
            }
        }
    }

    #[test]
    fn gauss_legendre_is_exact_for_polynomials_of_degree_2n_minus_1() {
        for n in [1, 2, 3, 5, 10, 50] {
            let (a, w) = Quadrature::GaussLegendre.nodes(n).unwrap();
            for deg in 0..(2 * n).min(12) {
                let integral: f64 = a.iter().zip(&w).map(|(x, w)| w * x.powi(deg as i32)).sum();
                assert!(
                    (integral - 1.0 / (deg as f64 + 1.0)).abs() < 1e-12,
                    "n={n} deg={deg}"
                );
            }
        }
    }

    #[test]
    fn gauss_legendre_matches_known_two_point_rule() {
        let (a, w) = Quadrature::GaussLegendre.nodes(2).unwrap();
        let d = 0.5 / 3f64.sqrt();
        assert!((a[0] - (0.5 - d)).abs() < 1e-15 && (a[1] - (0.5 + d)).abs() < 1e-15);
        assert!((w[0] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn trapezoid_needs_two_steps() {
        assert!(Quadrature::RiemannTrapezoid.nodes(1).is_err());
        assert!("simpson".parse::<Quadrature>().is_err());
    }
}
