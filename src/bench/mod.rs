//! `gradlens bench`: a harness in the style of llm.c's `dev/cuda`. It measures the device's
//! limits first (memory bandwidth, FMA throughput), then times every kernel the engine uses on
//! a model's own shapes, each checked against an f64 reference and given as a fraction of those
//! limits (a kernel's variants listed together on the CPU), then saliency, AttnLRP and
//! integrated gradients end to end. The JSON record names the machine and the revision, so
//! two runs compare (`scripts/bench-compare.py`).

mod end_to_end;
mod kernels;
mod limits;
mod machine;
mod reference;
mod timing;

pub use end_to_end::EndToEndRow;
pub use limits::Limits;
pub use machine::Machine;

use crate::error::{Error, Result};
use crate::gguf::GgmlType;
use crate::models::{Model, WeightMode};
use crate::tensor::Device;
use std::path::PathBuf;
use std::time::Duration;

/// How far a kernel may be from its f64 reference, relative to the reference's largest value.
pub const TOLERANCE: f64 = 1e-4;

pub struct Options {
    pub device: Device,
    pub model: PathBuf,
    /// Run only the kernels whose family, variant or format contains one of these
    /// (case-insensitive); all when empty.
    pub patterns: Vec<String>,
    /// About how long the kernels may take, all together (the limits and the end-to-end runs
    /// take a share of it on top).
    pub budget: Duration,
    /// Tokens of the prompt whose shapes the kernels take (and of the end-to-end prompt).
    pub tokens: usize,
    pub end_to_end: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub name: String,
    pub architecture: String,
    pub weights: String,
    pub tokens: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelRow {
    pub family: String,
    pub variant: String,
    pub format: String,
    pub shape: String,
    #[serde(flatten)]
    pub timing: timing::Timing,
    /// Counted bytes and FLOPs per run.
    pub bytes: f64,
    pub flops: f64,
    /// Rates and their fractions of the limits; `None` where the check failed (a wrong
    /// kernel is never reported as fast).
    pub gb_s: Option<f64>,
    pub gb_fraction: Option<f64>,
    pub gflop_s: Option<f64>,
    pub gflop_fraction: Option<f64>,
    /// "memory" or "compute": the limit it comes closer to.
    pub bound: Option<&'static str>,
    /// Largest difference from the f64 reference, relative to its largest value.
    pub max_rel_error: f64,
    /// Seconds the f64 reference took, once (the harness's baseline).
    pub reference_s: f64,
    pub passed: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub gradlens: &'static str,
    pub revision: &'static str,
    pub machine: Machine,
    pub model: ModelSummary,
    pub limits: Limits,
    pub tolerance: f64,
    pub kernels: Vec<KernelRow>,
    pub end_to_end: Vec<EndToEndRow>,
}

impl Report {
    /// The rows that failed their check.
    pub fn failures(&self) -> Vec<&KernelRow> {
        self.kernels.iter().filter(|r| !r.passed).collect()
    }
}

/// The format most of the model's weight bytes are in.
fn main_format(model: &Model) -> GgmlType {
    kernels::FORMATS
        .into_iter()
        .max_by_key(|&t| {
            let name = kernels::format_name(t);
            let groups = model.info.weights.iter().filter(|g| g.format == name);
            groups.map(|g| g.bytes).sum::<usize>()
        })
        .unwrap_or(GgmlType::F32)
}

pub fn run(opts: &Options) -> Result<Report> {
    if opts.tokens == 0 {
        return Err(Error::InvalidArgument("--tokens must be at least 1".into()));
    }
    let model = Model::load_with(&opts.model, opts.device, WeightMode::Stored)?;
    let machine = machine::describe(opts.device)?;
    let info = &model.info;
    let shapes = kernels::Shapes {
        hidden: info.hidden_size,
        intermediate: info.intermediate_size,
        heads: info.attention_heads,
        head_dim: info.head_dim,
        tokens: opts.tokens,
        batch_rows: opts.tokens * 32,
        long: opts
            .tokens
            .max(512)
            .min(info.max_positions.max(opts.tokens)),
        format: main_format(&model),
    };
    let cases: Vec<_> = kernels::cases(opts.device, shapes)?
        .into_iter()
        .filter(|c| {
            let label = c.label();
            opts.patterns.is_empty()
                || opts
                    .patterns
                    .iter()
                    .any(|p| label.contains(&p.to_lowercase()))
        })
        .collect();
    if cases.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "--kernels {}: no kernel matches",
            opts.patterns.join(",")
        )));
    }
    let limits = limits::measure_limits(opts.device, opts.budget / 4)?;
    let share = opts.budget / cases.len() as u32;
    let be = crate::backend::backend_for(opts.device)?;
    let mut rows = Vec::new();
    for case in cases {
        let last = std::cell::RefCell::new(None);
        let timing = timing::measure(share, || {
            timing::seconds(|| {
                let out = (case.run)()?;
                be.synchronize()?;
                *last.borrow_mut() = Some(out);
                Ok(())
            })
        })?;
        let got = last
            .into_inner()
            .map(|t| t.to_vec())
            .transpose()?
            .unwrap_or_default();
        let error = reference::relative_error(&got, &case.reference.values);
        let passed = error <= TOLERANCE;
        let gb_s = case.bytes / timing.median_s / 1e9;
        let gflop_s = case.flops / timing.median_s / 1e9;
        let (gb_fraction, gflop_fraction) = (gb_s / limits.read_gb_s, gflop_s / limits.fma_gflop_s);
        let ok = |v: f64| passed.then_some(v);
        rows.push(KernelRow {
            family: case.family.into(),
            variant: case.variant,
            format: case.format,
            shape: case.shape,
            timing,
            bytes: case.bytes,
            flops: case.flops,
            gb_s: ok(gb_s),
            gb_fraction: ok(gb_fraction),
            gflop_s: ok(gflop_s),
            gflop_fraction: ok(gflop_fraction),
            bound: passed.then_some(if gflop_fraction >= gb_fraction {
                "compute"
            } else {
                "memory"
            }),
            max_rel_error: error,
            reference_s: case.reference.seconds,
            passed,
        });
    }
    let prompt = end_to_end::prompt(&model, opts.tokens)?;
    let end_to_end = if opts.end_to_end {
        end_to_end::rows(&model, &prompt, &limits, opts.budget / 2)?
    } else {
        Vec::new()
    };
    Ok(Report {
        gradlens: env!("CARGO_PKG_VERSION"),
        revision: machine::revision(),
        machine,
        model: ModelSummary {
            path: opts.model.display().to_string(),
            name: model.name.clone(),
            architecture: info.architecture.into(),
            weights: info.weight_formats(),
            tokens: opts.tokens,
        },
        limits,
        tolerance: TOLERANCE,
        kernels: rows,
        end_to_end,
    })
}

/// The report as a table: limits, then each kernel family with its variants together, then the
/// end-to-end rows.
pub fn render_text(r: &Report) -> String {
    let m = &r.machine;
    let mut s = format!(
        "gradlens bench {} (revision {})\n{} on {}, {} threads ({})\nmodel {} ({}, {}), {} tokens\n\n",
        r.gradlens,
        r.revision,
        m.device,
        m.cpu,
        m.threads,
        m.cpu_flags.join(" "),
        r.model.name,
        r.model.architecture,
        r.model.weights,
        r.model.tokens
    );
    if let Some(d) = &m.driver {
        s += &format!("driver {d}\n\n");
    }
    let l = &r.limits;
    s += "Limits\n";
    s += &format!(
        "  memory read    {:>9.1} GB/s      {}\n",
        l.read_gb_s, l.read_method
    );
    s += &format!(
        "  memory copy    {:>9.1} GB/s      {}\n",
        l.copy_gb_s, l.copy_method
    );
    if let Some(core) = l.fma_gflop_s_core {
        s += &format!("  FMA, one core  {core:>9.1} GFLOP/s   {}\n", l.fma_method);
        s += &format!("  FMA, all cores {:>9.1} GFLOP/s\n", l.fma_gflop_s);
    } else {
        s += &format!(
            "  FMA            {:>9.1} GFLOP/s   {}\n",
            l.fma_gflop_s, l.fma_method
        );
    }
    s += &format!(
        "\nKernels (median of the runs; spread (p90-p10)/median; checked against f64 to {:.0e} of the largest value)\n",
        r.tolerance
    );
    s += &format!(
        "  {:<24} {:<6} {:<24} {:<20} {:>10} {:>6} {:>15} {:>17} {:>8} {:>8}\n",
        "kernel",
        "format",
        "shape",
        "variant",
        "median",
        "spread",
        "GB/s (limit)",
        "GFLOP/s (limit)",
        "bound",
        "error"
    );
    let mut last_group = String::new();
    for k in &r.kernels {
        let group = format!("{}|{}|{}", k.family, k.format, k.shape);
        if group != last_group {
            s += &format!(
                "  {:<24} {:<6} {:<24} {:<20} {:>10}\n",
                k.family,
                k.format,
                k.shape,
                "reference (f64)",
                format_time(k.reference_s)
            );
        }
        last_group = group;
        let rate = |v: Option<f64>, f: Option<f64>| match (v, f) {
            (Some(v), Some(f)) => format!("{v:.1} ({:.0}%)", 100.0 * f),
            _ => "—".into(),
        };
        // The variants under their group's reference line.
        s += &format!(
            "  {:<56} {:<20} {:>10} {:>5.0}% {:>15} {:>17} {:>8} {:>8}\n",
            "",
            k.variant,
            format_time(k.timing.median_s),
            100.0 * k.timing.spread,
            rate(k.gb_s, k.gb_fraction),
            rate(k.gflop_s, k.gflop_fraction),
            k.bound.unwrap_or("FAILED"),
            format!("{:.0e}", k.max_rel_error),
        );
    }
    if !r.end_to_end.is_empty() {
        s += "\nEnd to end (work counted from the model's shapes: each weight read once per sweep)\n";
        s += &format!(
            "  {:<32} {:>6} {:>10} {:>6} {:>9} {:>8} {:>15} {:>17} {:>8}\n",
            "method",
            "tokens",
            "median",
            "spread",
            "GFLOP",
            "GB",
            "GB/s (limit)",
            "GFLOP/s (limit)",
            "bound"
        );
        for e in &r.end_to_end {
            s += &format!(
                "  {:<32} {:>6} {:>10} {:>5.0}% {:>9.2} {:>8.2} {:>15} {:>17} {:>8}\n",
                e.method,
                e.tokens,
                format_time(e.timing.median_s),
                100.0 * e.timing.spread,
                e.gflop,
                e.gb,
                format!("{:.1} ({:.0}%)", e.gb_s, 100.0 * e.gb_fraction),
                format!("{:.1} ({:.0}%)", e.gflop_s, 100.0 * e.gflop_fraction),
                e.bound
            );
        }
    }
    let failed = r.failures();
    if !failed.is_empty() {
        s += &format!("\n{} kernel rows FAILED their check\n", failed.len());
    }
    s
}

fn format_time(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}
