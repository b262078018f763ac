//! The `gradlens` command line.

use clap::{Args, Parser, Subcommand};
use gradlens::attribution::{self, Baseline, Method, Options, Quadrature, ScoreKind, TargetSpec};
use gradlens::report::{self, Format};
use gradlens::{Device, Error, Model, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gradlens",
    version,
    about = "Attribution for transformers: which input tokens made the model say that"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attribute a target score to the prompt's tokens.
    #[command(after_long_help = METHODS_HELP)]
    Attribute(Box<AttributeArgs>),
    /// Convert a GGUF file into a Hugging Face folder (config.json, model.safetensors,
    /// tokenizer.json, tokenizer_config.json).
    Convert {
        /// The .gguf file.
        input: PathBuf,
        /// The folder to create.
        output: PathBuf,
        /// f32, f16 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// Print a model's architecture, sizes, dtype and parameter count.
    Info {
        #[arg(long)]
        model: PathBuf,
    },
}

const METHODS_HELP: &str = "Methods (cost in forward/backward passes):
  saliency              gradient; token score = L2 norm           1 fwd + 1 bwd
  input-x-gradient      x * gradient                              1 fwd + 1 bwd
  integrated-gradients  path integral from --baseline             --steps fwd+bwd (batched) + 1 fwd
  guided-backprop       positive gradient through activations     1 fwd + 1 bwd
  deconvolution         relu(gradient) through activations        1 fwd + 1 bwd
  lrp-epsilon           LRP, epsilon rule on linear layers        1 fwd + 1 bwd
  lrp-gamma             LRP, gamma rule on linear layers          1 fwd + 1 bwd (+2 products per linear)
  attnlrp               AttnLRP (Achtibat et al. 2024)            1 fwd + 1 bwd
  cp-lrp                AttnLRP without relevance through Q, K and gates   1 fwd + 1 bwd
  deeplift              rescale rule against --baseline           1 fwd + 1 bwd of a batch of 2
  deeplift-shap         DeepLIFT averaged over --baselines        1 fwd + 1 bwd of 2 x baselines rows
  gradient-shap         expected gradients over --baselines       --samples fwd+bwd (batched)
  smoothgrad            mean of --base over noisy inputs          --samples x base (batched)
  vargrad               variance of --base over noisy inputs      --samples x base (batched)
  occlusion             F(x) - F(window at --baseline), averaged  1 fwd of tokens - window + 1 copies";

#[derive(Args)]
struct AttributeArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    /// saliency (1 fwd+bwd), input-x-gradient (1), integrated-gradients (N steps, batched).
    #[arg(long, default_value = "integrated-gradients")]
    method: String,
    /// Integration steps for path methods.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// integrated-gradients: refine adaptively until |delta| <= T * |F(x) - F(x')| (instead of
    /// fixed --steps).
    #[arg(long)]
    tolerance: Option<f32>,
    /// The evaluation budget of --tolerance.
    #[arg(long, default_value_t = 600)]
    max_steps: usize,
    /// gauss-legendre, riemann-left, riemann-right, riemann-middle, riemann-trapezoid.
    #[arg(long, default_value = "gauss-legendre")]
    quadrature: String,
    /// zero or pad (the pad token's embedding at every position).
    #[arg(long, default_value = "zero")]
    baseline: String,
    /// Causal LMs: the next token to explain (exactly one token). Default: the model's top token.
    #[arg(long, conflicts_with_all = ["target_id", "target_class", "compare_text"])]
    target: Option<String>,
    #[arg(long, conflicts_with_all = ["target_class", "compare_text"])]
    target_id: Option<u32>,
    /// Sequence classifiers: the class whose score to explain.
    #[arg(long, conflicts_with = "compare_text")]
    target_class: Option<usize>,
    /// logit, prob or log-prob.
    #[arg(long, default_value = "logit")]
    target_kind: String,
    /// Encoders: explain the cosine similarity of mean-pooled embeddings with this text.
    #[arg(long)]
    compare_text: Option<String>,
    /// Path points per forward/backward pass (default: from a memory budget).
    #[arg(long)]
    batch_size: Option<usize>,
    /// text, json or html.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write here instead of standard output (atomically: no partial file on failure).
    #[arg(long)]
    output: Option<PathBuf>,
    /// cpu (cuda and wgpu are not in this build yet).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// LRP stabiliser epsilon (lrp-epsilon, lrp-gamma, attnlrp, cp-lrp).
    #[arg(long, default_value_t = 1e-6)]
    epsilon: f32,
    /// LRP-gamma's gamma.
    #[arg(long, default_value_t = 0.25)]
    gamma: f32,
    /// Samples of gradient-shap, smoothgrad and vargrad.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Noise std of the sampling methods (default: 0 for gradient-shap, 0.1 x RMS of the
    /// input embeddings for smoothgrad and vargrad).
    #[arg(long)]
    noise_std: Option<f32>,
    /// Seed of the sampling methods: the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The method smoothgrad and vargrad wrap (a single-pass method or integrated-gradients).
    #[arg(long, default_value = "saliency")]
    base: String,
    /// Baseline set of gradient-shap and deeplift-shap: a comma list of zero and pad, or a
    /// JSON file holding a list of [tokens][hidden] matrices.
    #[arg(long, default_value = "zero")]
    baselines: String,
    /// Occlusion: how many consecutive tokens are replaced at once.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Include the full [tokens, hidden] attribution map in JSON as `map`.
    #[arg(long)]
    include_map: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Causal LMs: greedily generate N tokens and attribute each one to the prompt and the
    /// tokens generated before it.
    #[arg(long)]
    generate: Option<usize>,
    /// With --generate: stop after the end-of-sequence token.
    #[arg(long, requires = "generate")]
    stop_at_eos: bool,
    /// Run the attribution N times and report the median time (for benchmarking).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

/// Keeps freed buffers in the process instead of returning them to the OS after every op:
/// each pass allocates the same large activations again, and fresh pages cost page faults
/// (about a tenth of an IG run on MiniLM).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only adjusts glibc allocator tunables; called before any threads start.
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit (a larger one is ignored).
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { model } => info(&model),
        Command::Attribute(args) => attribute(*args),
        Command::Convert {
            input,
            output,
            dtype,
        } => {
            gradlens::gguf::convert::convert(&input, &output, dtype.parse()?)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
    }
}

fn info(path: &Path) -> Result<()> {
    let model = Model::load(path, Device::Cpu)?;
    let i = &model.info;
    println!("model:             {}", model.name);
    println!("architecture:      {}", i.architecture);
    println!("hidden size:       {}", i.hidden_size);
    println!("layers:            {}", i.layers);
    println!(
        "attention heads:   {} ({} key/value)",
        i.attention_heads, i.key_value_heads
    );
    println!("intermediate size: {}", i.intermediate_size);
    println!("vocabulary:        {}", i.vocab_size);
    println!("max positions:     {}", i.max_positions);
    println!("dtype:             {}", i.dtype);
    println!("parameters:        {}", i.parameters);
    if let Some(n) = i.classifier_labels {
        println!("classifier labels: {n}");
    }
    Ok(())
}

fn attribute(a: AttributeArgs) -> Result<()> {
    // Validate every argument before the (slow) model load.
    let method: Method = a.method.parse()?;
    let quadrature: Quadrature = a.quadrature.parse()?;
    let baseline: Baseline = a.baseline.parse()?;
    let score: ScoreKind = a.target_kind.parse()?;
    let format: Format = a.format.parse()?;
    let device: Device = a.device.parse()?;
    let base: Method = a.base.parse()?;
    if a.samples == 0 {
        return Err(Error::InvalidArgument(
            "--samples must be at least 1".into(),
        ));
    }
    if a.noise_std.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
        return Err(Error::InvalidArgument(
            "--noise-std must be a finite number >= 0".into(),
        ));
    }
    if a.steps == 0 {
        return Err(Error::InvalidArgument("--steps must be at least 1".into()));
    }
    if a.tolerance.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        return Err(Error::InvalidArgument(
            "--tolerance must be a positive number".into(),
        ));
    }
    if a.repeat == 0 {
        return Err(Error::InvalidArgument("--repeat must be at least 1".into()));
    }
    if a.generate == Some(0) {
        return Err(Error::InvalidArgument(
            "--generate must be at least 1".into(),
        ));
    }
    if a.batch_size == Some(0) {
        return Err(Error::InvalidArgument(
            "--batch-size must be at least 1".into(),
        ));
    }
    if let Some(out) = &a.output {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "--output: folder {} does not exist",
                dir.display()
            )));
        }
    }
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| Error::Other(format!("--threads: {e}")))?;
    }
    let target = match (a.target, a.target_id, a.target_class, a.compare_text) {
        (Some(t), ..) => TargetSpec::Token(t),
        (_, Some(id), ..) => TargetSpec::TokenId(id),
        (_, _, Some(c), _) => TargetSpec::Class(c),
        (_, _, _, Some(text)) => TargetSpec::Compare(text),
        _ => TargetSpec::Auto,
    };
    let model = Model::load(&a.model, device)?;
    let baselines = parse_baselines(&a.baselines, &model)?;
    let show_progress = std::io::stderr().is_terminal();
    let opts = Options {
        target,
        score,
        steps: a.steps,
        tolerance: a.tolerance,
        max_steps: a.max_steps,
        quadrature,
        baseline,
        batch_size: a.batch_size,
        baselines,
        epsilon: a.epsilon,
        gamma: a.gamma,
        samples: a.samples,
        noise_std: a.noise_std,
        seed: a.seed,
        base,
        window: a.window,
        include_map: a.include_map,
        progress: show_progress.then(|| -> attribution::Progress {
            std::sync::Arc::new(|done, total| {
                if total > 1 {
                    let filled = 30 * done / total;
                    eprint!(
                        "\r[{}{}] {done}/{total}",
                        "#".repeat(filled),
                        "-".repeat(30 - filled)
                    );
                    if done == total {
                        eprintln!();
                    }
                }
            })
        }),
    };
    let run = || match a.generate {
        Some(n) => gradlens::generation::attribute_generation(
            &model,
            &a.prompt,
            method,
            &opts,
            n,
            a.stop_at_eos,
        ),
        None => attribution::attribute(&model, &a.prompt, method, &opts),
    };
    let mut result = run()?;
    if a.repeat > 1 {
        let mut times = vec![result.elapsed_ms];
        for _ in 1..a.repeat {
            result = run()?;
            times.push(result.elapsed_ms);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        result.elapsed_ms = sorted[sorted.len() / 2];
        result.repeat_ms = times;
    }
    let color = format == Format::Text
        && a.output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    if format != Format::Text {
        for w in &result.warnings {
            eprintln!("warning: {w}");
        }
    }
    let rendered = report::render(&result, format, color)?;
    match a.output {
        Some(path) => write_atomically(&path, rendered.as_bytes()),
        None => std::io::stdout()
            .write_all(rendered.as_bytes())
            .map_err(|e| Error::Other(format!("stdout: {e}"))),
    }
}

/// `zero,pad,…`, or a JSON file with a list of `[tokens][hidden]` matrices.
fn parse_baselines(spec: &str, model: &Model) -> Result<Vec<Baseline>> {
    if spec.ends_with(".json") {
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Other(format!("--baselines {spec}: {e}")))?;
        let bad = |why: String| Error::InvalidArgument(format!("--baselines {spec}: {why}"));
        let list: Vec<Vec<Vec<f32>>> = serde_json::from_str(&text)
            .map_err(|e| bad(format!("expected a list of [tokens][hidden] matrices: {e}")))?;
        let d = model.hidden_size();
        return list
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                if m.is_empty() || m.iter().any(|row| row.len() != d) {
                    return Err(bad(format!("baseline {i} is not a [tokens][{d}] matrix")));
                }
                let rows = m.len();
                Ok(Baseline::Custom(gradlens::Tensor::from_vec(
                    m.concat(),
                    [rows, d],
                    model.device(),
                )?))
            })
            .collect();
    }
    spec.split(',').map(|s| s.trim().parse()).collect()
}

/// Writes a sibling temporary file and renames it over `path`, so `path` is either the whole
/// output or untouched.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let io = |e| Error::Other(format!("{}: {e}", path.display()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
