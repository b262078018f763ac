//! Timing a piece of work: a warm-up run, then runs until a time budget is spent (at least a
//! few, at most many), reported as the median with the spread around it.

use crate::error::Result;
use std::time::{Duration, Instant};

/// How long one piece of work took.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Timing {
    /// Median seconds per run.
    pub median_s: f64,
    /// The fastest run's seconds: what a limit is measured by, since on a shared machine a
    /// slower run means interference, not a lower peak.
    pub best_s: f64,
    /// `(p90 − p10) / median` over the runs (`(max − min) / median` for fewer than 10).
    pub spread: f64,
    pub runs: usize,
}

/// The fewest and the most timed runs of one piece of work.
const MIN_RUNS: usize = 3;
const MAX_RUNS: usize = 2000;

/// Times `run` after one untimed warm-up: runs until `budget` has passed and at least
/// `MIN_RUNS` have, or `MAX_RUNS` have. `run` reports the seconds of one run (so a device can
/// time a queue of launches and divide).
pub fn measure(budget: Duration, mut run: impl FnMut() -> Result<f64>) -> Result<Timing> {
    run()?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < MAX_RUNS && (times.len() < MIN_RUNS || start.elapsed() < budget) {
        times.push(run()?);
    }
    Ok(summarize(&mut times))
}

/// Seconds that `f` takes, once.
pub fn seconds(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

fn summarize(times: &mut [f64]) -> Timing {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let at = |q: f64| times[((n - 1) as f64 * q).round() as usize];
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    };
    let (lo, hi) = if n >= 10 {
        (at(0.1), at(0.9))
    } else {
        (times[0], times[n - 1])
    };
    Timing {
        median_s: median,
        best_s: times[0],
        spread: if median > 0.0 {
            (hi - lo) / median
        } else {
            0.0
        },
        runs: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_of_known_times() {
        let t = summarize(&mut [3.0, 1.0, 2.0]);
        assert_eq!((t.median_s, t.best_s, t.spread, t.runs), (2.0, 1.0, 1.0, 3));
        let mut many: Vec<f64> = (1..=11).map(f64::from).collect();
        let t = summarize(&mut many);
        assert_eq!(t.median_s, 6.0);
        assert!((t.spread - (10.0 - 2.0) / 6.0).abs() < 1e-12);
    }

    #[test]
    fn a_tiny_budget_still_gives_the_minimum_runs() {
        let mut calls = 0;
        let t = measure(Duration::ZERO, || {
            calls += 1;
            Ok(1e-6)
        })
        .unwrap();
        assert_eq!(t.runs, MIN_RUNS);
        assert_eq!(calls, MIN_RUNS + 1, "one warm-up");
    }
}
