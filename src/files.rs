//! The files gradlens reads and writes, bounded and safe.
//!
//! Reading: the small files of a model folder (configs, tokenizers, shard indexes, baseline
//! lists) with a size cap: a file that is a link to `/dev/zero` or a FIFO, or that claims to be
//! gigabytes of JSON, is refused before it is read, instead of being read until memory runs out.
//!
//! Writing: an output is checked before any work starts, then written whole or not at all. A
//! regular file is replaced by an atomic rename, keeping its mode; a link is followed and its
//! target replaced; a device or FIFO is written through.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The most a config, shard index or baseline file may hold.
pub const CONFIG_LIMIT: u64 = 64 << 20;
/// The most a `tokenizer.json` may hold (the largest vocabularies, Gemma's 262k tokens, are
/// about 35 MB).
pub const TOKENIZER_LIMIT: u64 = 512 << 20;
/// The most a `--baselines` JSON file of embedding matrices may hold.
pub const BASELINES_LIMIT: u64 = 1 << 30;

/// The text of the regular file `path` (links followed), refused when it is a device, a FIFO,
/// a folder, or longer than `limit` bytes. The read itself stops at `limit` + 1 bytes, so a
/// file that grows while read cannot exceed it either.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    let what = path.display().to_string();
    if meta.len() > limit {
        return Err(too_large(&what, limit)); // said before reading a byte
    }
    read_capped(file, limit, &what)
}

fn too_large(what: &str, limit: u64) -> Error {
    Error::InvalidInput(format!(
        "{what}: larger than the {} MiB this kind of input may hold",
        limit >> 20
    ))
}

/// At most `limit` bytes of UTF-8 text from `source` (a file, standard input), named `what`
/// in errors: more is refused, and never read past `limit` + 1.
pub fn read_capped(source: impl Read, limit: u64, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    source
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Other(format!("{what}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(what, limit));
    }
    String::from_utf8(bytes).map_err(|_| Error::InvalidInput(format!("{what}: not UTF-8 text")))
}

/// Refuses a weight file that is not a regular file (a link to a device, say), before it is
/// mapped.
pub fn check_regular(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(not_regular(path))
    }
}

fn not_regular(path: &Path) -> Error {
    Error::InvalidInput(format!(
        "{}: not a regular file (a device, FIFO or folder cannot be a model file)",
        path.display()
    ))
}

/// What an output path leads to, once links are followed.
enum OutputTarget {
    /// A regular file, existing (with its mode) or not: replaced by an atomic rename.
    File { path: PathBuf, mode: Option<u32> },
    /// A device, FIFO or socket: written through, never replaced.
    Special(PathBuf),
}

fn resolve_output(path: &Path) -> Result<OutputTarget> {
    let bad = |why: String| Error::InvalidArgument(format!("--output {}: {why}", path.display()));
    match std::fs::metadata(path) {
        Ok(meta) => {
            let real = path.canonicalize().map_err(|e| bad(e.to_string()))?;
            if meta.is_dir() {
                Err(bad("is a folder".into()))
            } else if meta.is_file() {
                Ok(OutputTarget::File {
                    path: real,
                    mode: Some(file_mode(&meta)),
                })
            } else {
                Ok(OutputTarget::Special(real))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new file, or a dangling link: the link's target is created.
            let target = match std::fs::read_link(path) {
                Ok(link) => parent_of(path).join(link),
                Err(_) => path.to_path_buf(),
            };
            let dir = parent_of(&target);
            if !dir.is_dir() {
                return Err(bad(format!("folder {} does not exist", dir.display())));
            }
            Ok(OutputTarget::File {
                path: target,
                mode: None,
            })
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> u32 {
    0
}

/// The sibling temporary file an output is written to before the rename.
fn temporary_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Checks, before any work, that `path` can take the output: its folder exists and takes new
/// files (a `/proc` file cannot be replaced), and it is not a folder.
pub fn check_output(path: &Path) -> Result<()> {
    let OutputTarget::File { path: real, .. } = resolve_output(path)? else {
        return Ok(()); // a device or FIFO: opening a FIFO here would block until read
    };
    let probe = temporary_for(&real);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => {
            let dir = parent_of(&real).display();
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!("folder {dir} does not take new files (a virtual file system?)")
            } else {
                format!("cannot write in folder {dir}: {e}")
            };
            Err(Error::InvalidArgument(format!(
                "--output {}: {why}",
                path.display()
            )))
        }
    }
}

/// Refuses an `--output` that is `input` itself, or an existing file inside the folder `input`
/// (a model's own `config.json`, say), links followed.
pub fn refuse_overwriting_input(output: &Path, input: &Path) -> Result<()> {
    let (Ok(input), Some(name)) = (input.canonicalize(), output.file_name()) else {
        return Ok(());
    };
    let target = output
        .canonicalize()
        .or_else(|_| parent_of(output).canonicalize().map(|p| p.join(name)));
    let Ok(target) = target else { return Ok(()) };
    let inside = input.is_dir() && target.starts_with(&input) && target.exists();
    if target == input || inside {
        return Err(Error::InvalidArgument(format!(
            "--output {} would overwrite the input {}",
            output.display(),
            target.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (for regular files; see the module docs).
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    match resolve_output(path)? {
        OutputTarget::Special(real) => std::fs::OpenOptions::new()
            .write(true)
            .open(&real)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| Error::io(path, e)),
        OutputTarget::File { path: real, mode } => {
            let tmp = temporary_for(&real);
            let result = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                #[cfg(unix)]
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
                }
                #[cfg(not(unix))]
                let _ = mode;
                f.sync_all()?;
                std::fs::rename(&tmp, &real)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.map_err(|e| Error::io(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_oversized_files_are_refused() {
        let err = read_text(Path::new("/dev/zero"), CONFIG_LIMIT).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = std::env::temp_dir().join(format!("gradlens-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; 2048]).unwrap();
        let err = read_text(&big, 1024).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert_eq!(read_text(&big, 4096).unwrap().len(), 2048);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
