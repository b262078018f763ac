//! The WGSL kernel files, embedded in the binary. Each is compiled once per device with the
//! shared prelude (`shaders/common.wgsl`) in front; the matrix products are one kernel file
//! (`matmul_kernels.wgsl`) compiled behind either operand file, so the f32 and the
//! stored-format weight products share their tiling code.

/// One kernel: an entry point of a shader file.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub file: &'static str,
    pub entry: &'static str,
}

pub const PRELUDE: &str = include_str!("../../../shaders/common.wgsl");

/// `(file name, source)` of every kernel file.
pub const FILES: &[(&str, &str)] = &[
    (
        "activation.wgsl",
        include_str!("../../../shaders/activation.wgsl"),
    ),
    (
        "attention.wgsl",
        include_str!("../../../shaders/attention.wgsl"),
    ),
    ("cosine.wgsl", include_str!("../../../shaders/cosine.wgsl")),
    (
        "elementwise.wgsl",
        include_str!("../../../shaders/elementwise.wgsl"),
    ),
    ("layout.wgsl", include_str!("../../../shaders/layout.wgsl")),
    ("limits.wgsl", include_str!("../../../shaders/limits.wgsl")),
    ("matmul.wgsl", include_str!("../../../shaders/matmul.wgsl")),
    (
        "stored_weight.wgsl",
        include_str!("../../../shaders/stored_weight.wgsl"),
    ),
    ("norm.wgsl", include_str!("../../../shaders/norm.wgsl")),
    ("rope.wgsl", include_str!("../../../shaders/rope.wgsl")),
    ("rules.wgsl", include_str!("../../../shaders/rules.wgsl")),
    (
        "softmax.wgsl",
        include_str!("../../../shaders/softmax.wgsl"),
    ),
];

const MATMUL_KERNELS: &str = include_str!("../../../shaders/matmul_kernels.wgsl");

/// The source compiled for `file`: the prelude, the file, and for an operand file of the
/// matrix products the kernels that use it.
pub fn source(file: &str) -> Option<String> {
    let body = FILES.iter().find(|(f, _)| *f == file).map(|(_, s)| *s)?;
    let kernels = match file {
        "matmul.wgsl" | "stored_weight.wgsl" => MATMUL_KERNELS,
        _ => "",
    };
    Some(format!("{PRELUDE}\n{body}\n{kernels}"))
}

pub const fn k(file: &'static str, entry: &'static str) -> Kernel {
    Kernel { file, entry }
}
