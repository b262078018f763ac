//! The `gradlens` command line.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use gradlens::attribution::{self, methods, Kind, Method, ScoreKind, Settings, TargetSpec, Values};
use gradlens::report::{self, Format};
use gradlens::{Device, Error, Model, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Large buffers on transparent huge pages (see gradlens::alloc).
#[global_allocator]
static ALLOCATOR: gradlens::alloc::HugePages = gradlens::alloc::HugePages;

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
    #[command(after_long_help = methods::help(), allow_negative_numbers = true)]
    Attribute(Box<AttributeArgs>),
    /// Compare methods' faithfulness on one prompt: deletion and insertion curves,
    /// comprehensiveness, sufficiency and AOPC.
    #[command(after_long_help = methods::help(), allow_negative_numbers = true)]
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
    /// Measure the device's limits (memory bandwidth, FMA throughput), then time every kernel
    /// the engine uses on a model's shapes against them, checked against f64 references, and
    /// saliency, AttnLRP and integrated gradients end to end.
    Bench(Box<BenchArgs>),
    /// Serve one model to the browser: a page that compares methods side by side, and a JSON
    /// API (/api/model, /api/methods, /api/attribute, /api/agreement).
    #[cfg(feature = "serve")]
    Serve(Box<ServeArgs>),
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
        required_unless_present_any = ["prompt_file", "input"],
        conflicts_with_all = ["prompt_file", "input"]
    )]
    prompt: Option<String>,
    /// Read the text from a file, or from standard input with `-` (for texts longer than a
    /// command line takes); one final newline is dropped.
    #[arg(long, conflicts_with = "input")]
    prompt_file: Option<PathBuf>,
    /// attribute: a JSONL file of records, `{"id": …, "text": …}` plus any option by name,
    /// each attributed into a line of --output (resumable: a rerun skips the ids it holds).
    #[arg(long)]
    input: Option<PathBuf>,
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
    /// Recompute each layer in the backward pass instead of keeping its activations: auto
    /// (where a pass would not fit in the memory a batch may use), never or always.
    #[arg(long, default_value = "auto")]
    checkpoint: String,
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
    /// Include the full [tokens, hidden] attribution map in JSON as `map`.
    #[arg(long)]
    include_map: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar (it shows on a terminal for runs over a second, never in a pipe).
    #[arg(long, short)]
    quiet: bool,
    /// The method-specific options typed on the command line (filled in by `main` from the
    /// flags the registry adds).
    #[arg(skip)]
    values: Values,
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

#[cfg(feature = "serve")]
#[derive(Args)]
struct ServeArgs {
    /// A model folder or .gguf file, loaded once; requests cannot name another.
    #[arg(long, required_unless_present = "models", conflicts_with = "models")]
    model: Option<PathBuf>,
    /// A folder of models (model folders and .gguf files): requests choose one by its name
    /// (`"model": "smollm2.gguf"`), loaded on demand, one at a time. Nothing outside it.
    #[arg(long)]
    models: Option<PathBuf>,
    /// The address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// A bearer token every API call must carry (the page takes it as `#token=…`).
    #[arg(long)]
    token: Option<String>,
    /// cpu, cuda, wgpu or auto, as for `attribute`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// stored or f32, as for `attribute`.
    #[arg(long, default_value = "stored")]
    weights: String,
    /// The largest request body in bytes (413 past it).
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Requests that may wait while one runs (503 with Retry-After past it).
    #[arg(long, default_value_t = 8)]
    max_waiting: usize,
    /// The most path steps (`steps`, `max_steps`) a request may ask for.
    #[arg(long, default_value_t = 512)]
    max_steps: usize,
    /// The most samples a request may ask for.
    #[arg(long, default_value_t = 1024)]
    max_samples: usize,
    /// The longest prompt in tokens (422 past it, as past the model's context).
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    /// The most tokens a request may generate and explain.
    #[arg(long, default_value_t = 64)]
    max_generate: usize,
    /// Seconds one request may run before it is cancelled (503).
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct BenchArgs {
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The model whose shapes the kernels take and which the end-to-end rows run (default:
    /// the tiny Llama of the repository's test fixtures).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Only the kernels whose name, variant or format contains one of these (comma-separated,
    /// e.g. `x·wᵀ,attention` or `q4_1`).
    #[arg(long)]
    kernels: Option<String>,
    /// text or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write the JSON record here (whatever --format says).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seconds the kernels may take together; the limits and the end-to-end rows take about
    /// three quarters as long again.
    #[arg(long, default_value_t = 20.0)]
    budget: f64,
    /// Tokens of the prompt whose shapes the kernels take.
    #[arg(long, default_value_t = 10)]
    tokens: usize,
    /// Skip saliency, AttnLRP and IG end to end.
    #[arg(long)]
    kernels_only: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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
    let parsed = cli_command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            if let Some((_, sub)) = matches.subcommand() {
                match &mut cli.command {
                    Command::Attribute(a) => a.common.values = method_values(sub),
                    Command::Evaluate(a) => a.common.values = method_values(sub),
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

/// The command line: the derived arguments, and a flag for every method option in the
/// registry (so no option is copied here by hand).
fn cli_command() -> clap::Command {
    let flags: Vec<clap::Arg> = methods::all_options()
        .into_iter()
        .map(|(spec, users)| {
            let defaults: Vec<String> = users
                .iter()
                .map(|(m, d)| match d {
                    Some(d) => format!("{m} {d}"),
                    None => m.to_string(),
                })
                .collect();
            let arg = clap::Arg::new(spec.name)
                .long(spec.name)
                .value_name(spec.name.to_uppercase().replace('-', "_"))
                .help(format!("{} [{}]", spec.help, defaults.join(", ")));
            match spec.kind {
                Kind::Count => arg.value_parser(clap::value_parser!(u64)),
                Kind::Number => arg.value_parser(clap::value_parser!(f64)),
                Kind::Text => arg,
                Kind::Flag => arg.action(clap::ArgAction::SetTrue),
            }
        })
        .collect();
    Cli::command()
        .mut_subcommand("attribute", |c| c.args(flags.clone()))
        .mut_subcommand("evaluate", |c| c.args(flags))
}

/// The method options typed on the command line, as opposed to defaults.
fn method_values(sub: &clap::ArgMatches) -> Values {
    let mut values = Values::new();
    for (spec, _) in methods::all_options() {
        if sub.value_source(spec.name) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        match spec.kind {
            Kind::Flag => values.set(spec.name, sub.get_flag(spec.name)),
            _ => {
                if let Some(raw) = sub.get_raw(spec.name).and_then(|mut r| r.next()) {
                    values.set(spec.name, raw.to_string_lossy());
                }
            }
        }
    }
    values
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
        Command::Bench(args) => bench(*args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve(*args),
        Command::Evaluate(args) => evaluate(*args),
        Command::Convert {
            input,
            output,
            dtype,
        } => {
            gradlens::convert::convert(&input, &output, dtype.parse()?)?;
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
    settings: Settings,
    /// The methods, configured from the method options given.
    methods: Vec<Box<dyn Method>>,
    format: Format,
}

impl Setup {
    /// `names` are the methods to build from the method options in `values`.
    fn new(c: &CommonArgs, names: &[&str], values: &Values) -> Result<Setup> {
        let methods = names
            .iter()
            .map(|n| methods::build(n, values))
            .collect::<Result<Vec<_>>>()?;
        let score: ScoreKind = c.target_kind.parse()?;
        let format: Format = c.format.parse()?;
        let device: Device = c.device.parse()?;
        let batch_size = attribution::request::parse_batch_size(&c.batch_size)?;
        let checkpoint: gradlens::attribution::Checkpoint = c.checkpoint.parse()?;
        if let Some(out) = &c.output {
            gradlens::files::check_output(out)?;
            gradlens::files::refuse_overwriting_input(out, &c.model)?;
            if let Some(b) = values.raw("baselines").filter(|b| b.ends_with(".json")) {
                gradlens::files::refuse_overwriting_input(out, Path::new(b))?;
            }
        }
        set_threads(c.threads)?;
        let target = match (&c.target, c.target_id, c.target_class, &c.compare_text) {
            (Some(t), ..) => TargetSpec::Token(t.clone()),
            (_, Some(id), ..) => TargetSpec::TokenId(id),
            (_, _, Some(class), _) => TargetSpec::Class(class),
            (_, _, _, Some(text)) => TargetSpec::Compare(text.clone()),
            _ => TargetSpec::Auto,
        };
        let prompt = prompt_text(c)?;
        let model = Model::load_with(&c.model, device, c.weights.parse()?)?;
        let show_progress = std::io::stderr().is_terminal() && !c.quiet;
        let settings = Settings {
            target,
            score,
            batch_size,
            include_map: c.include_map,
            progress: show_progress.then(progress_bar),
            checkpoint,
            cancel: None,
        };
        Ok(Setup {
            prompt,
            model,
            settings,
            methods,
            format,
        })
    }
}

/// Sets the worker threads for `--threads`.
#[cfg(feature = "serve")]
fn serve(args: ServeArgs) -> Result<()> {
    set_threads(args.threads)?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "--timeout {}: expected a number of seconds above 0",
            args.timeout
        )));
    }
    let config = gradlens::serve::Config {
        host: args.host,
        port: args.port,
        token: args.token,
        max_body: args.max_body,
        max_waiting: args.max_waiting,
        max_steps: args.max_steps,
        max_samples: args.max_samples,
        max_tokens: args.max_tokens,
        max_generate: args.max_generate,
        timeout: std::time::Duration::from_secs_f64(args.timeout),
    };
    if !config.host.is_loopback() && config.token.is_some() {
        eprintln!(
            "warning: listening on {}: other machines can reach this server (with the token)",
            config.host
        );
    }
    let device: Device = args.device.parse()?;
    let weights = args.weights.parse()?;
    let models = match (&args.model, &args.models) {
        (Some(path), _) => gradlens::serve::Models::fixed(path, device, weights)?,
        (None, Some(dir)) => gradlens::serve::Models::in_folder(dir, device, weights)?,
        (None, None) => unreachable!("clap requires --model or --models"),
    };
    let fragment = match &config.token {
        Some(_) => "#token=<your token>",
        None => "",
    };
    let names = models.names().join(", ");
    gradlens::serve::serve(models, config, |address| {
        eprintln!("serving {names} on http://{address}/{fragment} (Ctrl-C stops)");
    })
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else {
        return Ok(());
    };
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
        .map_err(|e| Error::Other(format!("--threads: {e}")))
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

/// A progress bar on stderr (indicatif) for the chunks of passes or steps of a run. It appears
/// only once the run has taken a second, so short runs print nothing, and is cleared at the end.
fn progress_bar() -> attribution::Progress {
    let start = std::time::Instant::now();
    let bar: std::sync::Mutex<Option<indicatif::ProgressBar>> = Default::default();
    std::sync::Arc::new(move |done, total| {
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        if bar.is_none() && (total <= 1 || done >= total || start.elapsed().as_secs_f64() < 1.0) {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len}, {elapsed} ({eta} left)",
                )
                .expect("a valid template"),
            );
            b
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
        }
    })
}

fn attribute(a: AttributeArgs) -> Result<()> {
    if let Some(input) = &a.common.input {
        return attribute_jsonl(&a, input);
    }
    if a.repeat == 0 {
        return Err(Error::InvalidArgument("--repeat must be at least 1".into()));
    }
    if a.generate == Some(0) {
        return Err(Error::InvalidArgument(
            "--generate must be at least 1".into(),
        ));
    }
    let values = &a.common.values;
    let setup = Setup::new(&a.common, &[a.method.as_str()], values)?;
    let (model, method, settings) = (&setup.model, setup.methods[0].as_ref(), &setup.settings);
    let run = || match a.generate {
        Some(n) => gradlens::generation::attribute_generation(
            model,
            &setup.prompt,
            method,
            settings,
            n,
            a.stop_at_eos,
        ),
        None => attribution::attribute(model, &setup.prompt, method, settings),
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
        .extend(attribution::request::ignored_options(
            values,
            &setup.methods,
            false,
        ));
    let format = setup.format;
    if format != Format::Text {
        for w in &result.warnings {
            eprintln!("warning: {w}");
        }
    }
    let rendered = report::render(&result, format, use_color(format, &a.common))?;
    emit(a.common.output.as_deref(), &rendered)
}

/// `attribute --input records.jsonl --output results.jsonl`: each record into a line.
fn attribute_jsonl(a: &AttributeArgs, input: &Path) -> Result<()> {
    let c = &a.common;
    let output = c.output.as_deref().ok_or_else(|| {
        Error::InvalidArgument("--input writes its results to --output FILE.jsonl: give one".into())
    })?;
    if a.generate.is_some() || a.repeat != 1 || !matches!(c.format.as_str(), "text" | "json") {
        return Err(Error::InvalidArgument(
            "--input writes one JSON line per record: drop --generate, --repeat and --format"
                .into(),
        ));
    }
    gradlens::files::refuse_overwriting_input(output, input)?;
    // Every record is checked before the model loads.
    let records = gradlens::jsonl::read_records(input)?;
    let setup = Setup::new(c, &[a.method.as_str()], &c.values)?;
    let base = attribution::Request {
        method: setup.methods[0].name().to_string(),
        values: c.values.clone(),
        settings: attribution::Settings {
            progress: None,
            ..setup.settings.clone()
        },
    };
    let bar = (std::io::stderr().is_terminal() && !c.quiet).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} records, {eta} left")
                .expect("a valid template"),
        );
        bar
    });
    let progress = |done: usize, total: usize| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    let summary = gradlens::jsonl::run(&setup.model, &records, &base, output, &progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "{}: {} records attributed ({} of them failed, as error lines), {} already there",
        output.display(),
        summary.done,
        summary.failed,
        summary.skipped
    );
    Ok(())
}

fn evaluate(a: EvaluateArgs) -> Result<()> {
    if a.common.input.is_some() {
        return Err(Error::InvalidArgument(
            "--input is for attribute; evaluate takes one --prompt".into(),
        ));
    }
    let names: Vec<&str> = a.methods.split(',').map(str::trim).collect();
    let mut values = a.common.values.clone();
    let baseline = attribution::faithfulness::shared_baseline(&mut values)?;
    let setup = Setup::new(&a.common, &names, &values)?;
    for w in attribution::request::ignored_options(&values, &setup.methods, true) {
        eprintln!("warning: {w}");
    }
    let model = &setup.model;
    let ids = model.tokenize(&setup.prompt)?;
    let methods: Vec<&dyn Method> = setup.methods.iter().map(|m| m.as_ref()).collect();
    let e =
        attribution::faithfulness::faithfulness(model, &ids, &methods, &baseline, &setup.settings)?;
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

fn bench(a: BenchArgs) -> Result<()> {
    let json = match a.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown format '{other}' for bench (expected text or json)"
            )))
        }
    };
    if !(a.budget.is_finite() && a.budget > 0.0 && a.budget <= 86400.0) {
        return Err(Error::InvalidArgument(format!(
            "--budget {}: give seconds between 0 and 86400",
            a.budget
        )));
    }
    for out in a.output.iter().chain(&a.json) {
        gradlens::files::check_output(out)?;
    }
    set_threads(a.threads)?;
    let model = a.model.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-llama")
    });
    if !model.exists() {
        return Err(Error::InvalidArgument(format!(
            "no model at {}: give one with --model PATH",
            model.display()
        )));
    }
    let opts = gradlens::bench::Options {
        device: a.device.parse()?,
        model,
        patterns: a
            .kernels
            .iter()
            .flat_map(|k| k.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        budget: std::time::Duration::from_secs_f64(a.budget),
        tokens: a.tokens,
        end_to_end: !a.kernels_only,
    };
    let report = gradlens::bench::run(&opts)?;
    let record =
        serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))? + "\n";
    if let Some(path) = &a.json {
        gradlens::files::write_output(path, record.as_bytes())?;
    }
    let rendered = if json {
        record
    } else {
        gradlens::bench::render_text(&report)
    };
    emit(a.output.as_deref(), &rendered)?;
    match report.failures().len() {
        0 => Ok(()),
        n => Err(Error::Other(format!(
            "{n} kernel rows failed their check against the f64 reference (see the report)"
        ))),
    }
}
