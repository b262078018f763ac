//! The WGSL kernel files, embedded in the binary. Each is compiled once per device with the
//! shared prelude (`shaders/common.wgsl`) in front.

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
    ("matmul.wgsl", include_str!("../../../shaders/matmul.wgsl")),
    ("norm.wgsl", include_str!("../../../shaders/norm.wgsl")),
    ("path.wgsl", include_str!("../../../shaders/path.wgsl")),
    ("rope.wgsl", include_str!("../../../shaders/rope.wgsl")),
    ("rules.wgsl", include_str!("../../../shaders/rules.wgsl")),
    (
        "softmax.wgsl",
        include_str!("../../../shaders/softmax.wgsl"),
    ),
];

pub fn source(file: &str) -> Option<&'static str> {
    FILES.iter().find(|(f, _)| *f == file).map(|(_, s)| *s)
}

pub const fn k(file: &'static str, entry: &'static str) -> Kernel {
    Kernel { file, entry }
}
