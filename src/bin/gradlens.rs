//! The `gradlens` command line.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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
    #[command(after_long_help = Method::help(), allow_negative_numbers = true)]
    Attribute(Box<AttributeArgs>),
    /// Compare methods' faithfulness on one prompt: deletion and insertion curves,
    /// comprehensiveness, sufficiency and AOPC.
    #[command(after_long_help = Method::help(), allow_negative_numbers = true)]
    Evaluate(Box<EvaluateArgs>),
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
        #[arg(long, required_unless_present = "devices")]
        model: Option<PathBuf>,
        /// List the devices this build can use (wgpu adapters, CPU threads).
        #[arg(long)]
        devices: bool,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// The text to explain.
    #[arg(
        long,
        required_unless_present = "prompt_file",
        conflicts_with = "prompt_file"
    )]
    prompt: Option<String>,
    /// Read the text from a file, or from standard input with `-` (for texts longer than a
    /// command line takes); one final newline is dropped.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    /// Integration steps of path methods (default: 50; rpi and discretized-ig 30; pgd 20).
    #[arg(long)]
    steps: Option<usize>,
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
    /// zero or pad (the pad token's embedding at every position). Default: pad for
    /// sequential-ig and discretized-ig, zero for the rest.
    #[arg(long)]
    baseline: Option<String>,
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
    /// Path points (or samples) per forward/backward pass: a number, or auto: as many as fit in
    /// the device's free memory (on the CPU at most 32, as larger batches gain nothing there).
    #[arg(long, default_value = "auto")]
    batch_size: String,
    /// text, json or html.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write here instead of standard output (atomically: no partial file on failure).
    #[arg(long)]
    output: Option<PathBuf>,
    /// cpu, cuda (a build with --features cuda), wgpu (--features wgpu) or auto (CUDA, else a
    /// hardware wgpu adapter, else the CPU). `gradlens info --devices` lists what it finds.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// stored: weight matrices stay in the file's format (f16, bf16, GGUF blocks) and are
    /// decoded as they are used, on every device; f32: decoded once at load (the reference
    /// path).
    #[arg(long, default_value = "stored")]
    weights: String,
    /// LRP stabiliser epsilon (lrp-epsilon, lrp-gamma, attnlrp, cp-lrp).
    #[arg(long, default_value_t = 1e-6)]
    epsilon: f32,
    /// LRP-gamma's gamma.
    #[arg(long, default_value_t = 0.25)]
    gamma: f32,
    /// Samples of gradient-shap, smoothgrad and vargrad (default 20), noise draws of rpi (4).
    #[arg(long)]
    samples: Option<usize>,
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
    /// guided-ig: the fraction of features moved per inner step.
    #[arg(long, default_value_t = 0.25)]
    fraction: f32,
    /// guided-ig: how far (in alpha) a feature may stray from the straight line's progress.
    #[arg(long, default_value_t = 0.02)]
    max_dist: f32,
    /// greedy-pig: tokens selected per round (default: a quarter of the prompt).
    #[arg(long)]
    per_round: Option<usize>,
    /// greedy-pig: tokens selected in all (default: every token).
    #[arg(long)]
    budget: Option<usize>,
    /// pgd: each token's L2 ball, relative to its embedding's norm.
    #[arg(long, default_value_t = 0.1)]
    radius: f32,
    /// discretized-ig: vocabulary neighbours considered for each anchor.
    #[arg(long, default_value_t = 50)]
    neighbors: usize,
    /// attention, rpi: the layer (default: the last).
    #[arg(long)]
    layer: Option<usize>,
    /// attention: one head (default: the mean over heads).
    #[arg(long)]
    head: Option<usize>,
    /// Include the full [tokens, hidden] attribution map in JSON as `map`.
    #[arg(long)]
    include_map: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The method-specific options typed on the command line (filled in by `main`).
    #[arg(skip)]
    given: Vec<&'static str>,
}

#[derive(Args)]
struct AttributeArgs {
    /// The method (see the list below).
    #[arg(long, default_value = "integrated-gradients")]
    method: String,
    #[command(flatten)]
    common: CommonArgs,
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

#[derive(Args)]
struct EvaluateArgs {
    /// Comma-separated methods to compare.
    #[arg(
        long,
        default_value = "saliency,input-x-gradient,integrated-gradients,attnlrp,occlusion,attention-rollout"
    )]
    methods: String,
    #[command(flatten)]
    common: CommonArgs,
}

/// Keeps freed buffers in the process instead of returning them to the OS after every op:
/// each pass allocates the same large activations again, and fresh pages cost page faults
/// (about a tenth of an IG run on MiniLM). One arena: path chunks run on worker threads, and
/// the per-thread arenas glibc would give them hand their memory back when a chunk ends (on
/// SmolLM2 at 348 tokens that was 2.4× the page faults and a fifth of the time).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    // SAFETY: mallopt only adjusts glibc allocator tunables; called before any threads start.
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit (a larger one is ignored).
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
        mallopt(M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    private_runtime_dir();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            if let Some((_, sub)) = matches.subcommand() {
                let given = given_method_options(sub);
                match &mut cli.command {
                    Command::Attribute(a) => a.common.given = given,
                    Command::Evaluate(a) => a.common.given = given,
                    _ => {}
                }
            }
            cli
        }
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, as for every other error: clap's first paragraph (the problem and the
            // arguments it names), without the usage that follows.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{}", first.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The method-specific options (`Method::OPTIONS`) the user typed, as opposed to defaults.
fn given_method_options(sub: &clap::ArgMatches) -> Vec<&'static str> {
    Method::OPTIONS
        .into_iter()
        .filter(|name| {
            let id = name.replace('-', "_");
            sub.try_contains_id(&id).unwrap_or(false)
                && sub.value_source(&id) == Some(clap::parser::ValueSource::CommandLine)
        })
        .collect()
}

/// A warning for each option the user gave that none of `methods` reads.
fn ignored_options(c: &CommonArgs, methods: &[Method], evaluate: bool) -> Vec<String> {
    let base: Method = c.base.parse().unwrap_or(Method::Saliency);
    let adaptive = c.tolerance.is_some();
    c.given
        .iter()
        // evaluate removes tokens to the baseline, whatever the methods.
        .filter(|o| !(evaluate && **o == "baseline"))
        .filter(|o| !methods.iter().any(|m| m.reads(o, base, adaptive)))
        .map(|o| {
            let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
            let why = if *o == "max-steps" && !adaptive {
                " (it is the budget of --tolerance)"
            } else {
                ""
            };
            format!(
                "--{o} was ignored: {} does not use it{why}",
                names.join(", ")
            )
        })
        .collect()
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid" on a successful run when
/// the variable is unset or names a folder others can enter (`/tmp`): then a private folder
/// of ours stands in, so "error:" appears only on failure. Called first, before any thread.
fn private_runtime_dir() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        extern "C" {
            fn getuid() -> u32;
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { getuid() };
        // Ours alone: a folder another user made (in /tmp, say) is not.
        let private = |d: &Path| {
            std::fs::symlink_metadata(d)
                .is_ok_and(|m| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o077 == 0)
        };
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| private(Path::new(&d))) {
            return;
        }
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let dir = std::env::temp_dir().join(format!("gradlens-runtime-{user}"));
        let _ = std::fs::create_dir(&dir);
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if private(&dir) {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { model, devices } => {
            if devices {
                list_devices();
            }
            match model {
                Some(model) => info(&model),
                None => Ok(()),
            }
        }
        Command::Attribute(args) => attribute(*args),
        Command::Evaluate(args) => evaluate(*args),
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

fn list_devices() {
    println!(
        "cpu:  {} threads (always available)",
        rayon::current_num_threads()
    );
    #[cfg(feature = "wgpu")]
    {
        let adapters = gradlens::backend::wgpu::adapter_descriptions();
        if adapters.is_empty() {
            println!("wgpu: no adapter with compute shaders found");
        }
        for (i, (name, hardware)) in adapters.iter().enumerate() {
            let kind = if *hardware { "hardware" } else { "software" };
            let used = if i == 0 {
                ", used by --device wgpu"
            } else {
                ""
            };
            println!("wgpu: {name} [{kind}{used}]");
        }
    }
    #[cfg(not(feature = "wgpu"))]
    println!("wgpu: not in this build (rebuild with --features wgpu)");
    #[cfg(feature = "cuda")]
    match gradlens::backend::cuda::backend() {
        Ok(b) => {
            let free = b
                .memory()
                .map(|(free, total)| format!(", {:.1} of {:.1} GiB free", gib(free), gib(total)));
            println!("cuda: {}{}", b.device_name(), free.unwrap_or_default());
        }
        Err(e) => println!("{e}"),
    }
    #[cfg(not(feature = "cuda"))]
    println!("cuda: not in this build (rebuild with --features cuda)");
    println!("auto: {}", gradlens::backend::auto_device());
}

#[cfg(feature = "cuda")]
fn gib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
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
    println!(
        "weights:           {:.1} MB in memory as loaded for the CPU (--weights stored)",
        i.weight_bytes() as f64 / 1e6
    );
    let width = i.weights.iter().map(|g| g.name.len()).max().unwrap_or(0);
    for g in &i.weights {
        println!(
            "  {:width$}  {:>6} ×{:<3} {:>9.2} MB",
            g.name,
            g.format,
            g.tensors,
            g.bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// What every attributing command shares, validated before the (slow) model load.
struct Setup {
    prompt: String,
    model: Model,
    opts: Options,
    steps: Option<usize>,
    samples: Option<usize>,
    baseline: Option<Baseline>,
    format: Format,
}

impl Setup {
    fn new(c: &CommonArgs) -> Result<Setup> {
        let quadrature: Quadrature = c.quadrature.parse()?;
        let baseline: Option<Baseline> = c.baseline.as_deref().map(str::parse).transpose()?;
        let score: ScoreKind = c.target_kind.parse()?;
        let format: Format = c.format.parse()?;
        let device: Device = c.device.parse()?;
        let base: Method = c.base.parse()?;
        let positive = |name: &str, v: Option<usize>| match v {
            Some(0) => Err(Error::InvalidArgument(format!("{name} must be at least 1"))),
            _ => Ok(()),
        };
        positive("--samples", c.samples)?;
        positive("--steps", c.steps)?;
        let batch_size = match c.batch_size.as_str() {
            "auto" => None,
            n => Some(n.parse::<usize>().map_err(|_| {
                Error::InvalidArgument(format!("--batch-size must be a number or auto, not {n:?}"))
            })?),
        };
        positive("--batch-size", batch_size)?;
        if c.noise_std.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
            return Err(Error::InvalidArgument(
                "--noise-std must be a finite number >= 0".into(),
            ));
        }
        if c.tolerance.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
            return Err(Error::InvalidArgument(
                "--tolerance must be a positive number".into(),
            ));
        }
        if let Some(out) = &c.output {
            gradlens::files::check_output(out)?;
            gradlens::files::refuse_overwriting_input(out, &c.model)?;
            if c.baselines.ends_with(".json") {
                gradlens::files::refuse_overwriting_input(out, Path::new(&c.baselines))?;
            }
        }
        if !(c.epsilon > 0.0 && c.epsilon.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--epsilon must be a finite number > 0 (LRP's stabiliser), not {}",
                c.epsilon
            )));
        }
        if !(0.0..=1000.0).contains(&c.gamma) {
            return Err(Error::InvalidArgument(format!(
                "--gamma must be a number from 0 to 1000 (LRP-γ's extra weight on positive contributions), not {}",
                c.gamma
            )));
        }
        if let Some(n) = c.threads {
            // Far more threads than cores gains nothing, and thousands exhaust the process.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if n == 0 || n > 8 * cores {
                return Err(Error::InvalidArgument(format!(
                    "--threads {n}: this machine has {cores} cores; use 1 to {}",
                    8 * cores
                )));
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .map_err(|e| Error::Other(format!("--threads: {e}")))?;
        }
        let target = match (&c.target, c.target_id, c.target_class, &c.compare_text) {
            (Some(t), ..) => TargetSpec::Token(t.clone()),
            (_, Some(id), ..) => TargetSpec::TokenId(id),
            (_, _, Some(class), _) => TargetSpec::Class(class),
            (_, _, _, Some(text)) => TargetSpec::Compare(text.clone()),
            _ => TargetSpec::Auto,
        };
        let prompt = prompt_text(c)?;
        let model = Model::load_with(&c.model, device, c.weights.parse()?)?;
        let baselines = parse_baselines(&c.baselines, &model)?;
        let show_progress = std::io::stderr().is_terminal();
        let opts = Options {
            target,
            score,
            tolerance: c.tolerance,
            max_steps: c.max_steps,
            quadrature,
            batch_size,
            baselines,
            epsilon: c.epsilon,
            gamma: c.gamma,
            noise_std: c.noise_std,
            seed: c.seed,
            base,
            window: c.window,
            fraction: c.fraction,
            max_dist: c.max_dist,
            per_round: c.per_round,
            budget: c.budget,
            radius: c.radius,
            neighbors: c.neighbors,
            layer: c.layer,
            head: c.head,
            include_map: c.include_map,
            progress: show_progress.then(progress_bar),
            ..Options::default()
        };
        Ok(Setup {
            prompt,
            model,
            opts,
            steps: c.steps,
            samples: c.samples,
            baseline,
            format,
        })
    }

    /// The options for `method`: its own defaults where the user named none (a pad baseline
    /// becomes zero on a model without a pad token).
    fn options(&self, method: Method) -> Options {
        let baseline = match (&self.baseline, method.default_baseline()) {
            (Some(b), _) => b.clone(),
            (None, Baseline::Pad) if self.model.pad_token_id().is_none() => Baseline::Zero,
            (None, b) => b,
        };
        Options {
            steps: self.steps.unwrap_or(method.default_steps()),
            samples: self.samples.unwrap_or(method.default_samples()),
            baseline,
            ..self.opts.clone()
        }
    }
}

/// The text of `--prompt`, or of `--prompt-file` (a file, or `-` for standard input), read
/// with a size cap; one final newline (an editor's) is dropped.
fn prompt_text(c: &CommonArgs) -> Result<String> {
    const LIMIT: u64 = 64 << 20;
    let Some(path) = &c.prompt_file else {
        return Ok(c.prompt.clone().unwrap_or_default());
    };
    let mut text = if path.as_os_str() == "-" {
        gradlens::files::read_capped(std::io::stdin(), LIMIT, "--prompt-file -: standard input")?
    } else {
        gradlens::files::read_text(path, LIMIT)?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn progress_bar() -> attribution::Progress {
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
}

fn attribute(a: AttributeArgs) -> Result<()> {
    let method: Method = a.method.parse()?;
    if a.repeat == 0 {
        return Err(Error::InvalidArgument("--repeat must be at least 1".into()));
    }
    if a.generate == Some(0) {
        return Err(Error::InvalidArgument(
            "--generate must be at least 1".into(),
        ));
    }
    let setup = Setup::new(&a.common)?;
    let (model, opts) = (&setup.model, setup.options(method));
    let run = || match a.generate {
        Some(n) => gradlens::generation::attribute_generation(
            model,
            &setup.prompt,
            method,
            &opts,
            n,
            a.stop_at_eos,
        ),
        None => attribution::attribute(model, &setup.prompt, method, &opts),
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
    result
        .warnings
        .extend(ignored_options(&a.common, &[method], false));
    let format = setup.format;
    if format != Format::Text {
        for w in &result.warnings {
            eprintln!("warning: {w}");
        }
    }
    let rendered = report::render(&result, format, use_color(format, &a.common))?;
    emit(a.common.output.as_deref(), &rendered)
}

fn evaluate(a: EvaluateArgs) -> Result<()> {
    let methods: Vec<Method> = a
        .methods
        .split(',')
        .map(|m| m.trim().parse())
        .collect::<Result<_>>()?;
    let setup = Setup::new(&a.common)?;
    let model = &setup.model;
    // One baseline for every method and for removed tokens: the pad token where the model
    // has one, else zero.
    let baseline = match &setup.baseline {
        Some(b) => b.clone(),
        None if model.pad_token_id().is_some() => Baseline::Pad,
        None => Baseline::Zero,
    };
    let runs: Vec<(Method, Options)> = methods
        .iter()
        .map(|&m| {
            let o = Options {
                baseline: baseline.clone(),
                ..setup.options(m)
            };
            (m, o)
        })
        .collect();
    for w in ignored_options(&a.common, &methods, true) {
        eprintln!("warning: {w}");
    }
    let ids = model.tokenize(&setup.prompt)?;
    let e = attribution::faithfulness::faithfulness(model, &ids, &runs, &baseline, &setup.opts)?;
    if setup.format != Format::Text {
        for m in &e.methods {
            for w in &m.warnings {
                eprintln!("warning ({}): {w}", m.method);
            }
        }
    }
    emit(
        a.common.output.as_deref(),
        &report::render_evaluation(&e, setup.format)?,
    )
}

fn use_color(format: Format, c: &CommonArgs) -> bool {
    format == Format::Text
        && c.output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
}

fn emit(output: Option<&Path>, rendered: &str) -> Result<()> {
    match output {
        Some(path) => gradlens::files::write_output(path, rendered.as_bytes()),
        None => std::io::stdout()
            .write_all(rendered.as_bytes())
            .map_err(|e| Error::Other(format!("stdout: {e}"))),
    }
}

/// `zero,pad,…`, or a JSON file with a list of `[tokens][hidden]` matrices.
fn parse_baselines(spec: &str, model: &Model) -> Result<Vec<Baseline>> {
    if spec.ends_with(".json") {
        let path = Path::new(spec);
        let text = gradlens::files::read_text(path, gradlens::files::BASELINES_LIMIT)?;
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
