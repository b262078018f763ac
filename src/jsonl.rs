//! Attributing a JSONL file of records, one result per line, resumably (`gradlens attribute
//! --input texts.jsonl --output results.jsonl`).
//!
//! A record is `{"id": …, "text": …}`, optionally with `target`, `compare_text` or any other
//! option by its CLI name (`"steps": 16`), each over the command line's. A result is the CLI's
//! JSON with the `id` first; a record that fails gives `{"id": …, "error": …}` and the run goes
//! on. The output is appended to a line at a time, and a rerun skips the ids it already holds
//! (results and errors alike), so a killed run resumes with nothing lost and nothing
//! duplicated: a last line the kill cut short is dropped and its record redone.

use crate::attribution::Request;
use crate::error::{Error, Result};
use crate::models::Model;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// The most a JSONL input may hold.
const INPUT_LIMIT: u64 = 4 << 30;

/// One input line.
pub struct Record {
    /// The `id` as JSON text (`"a"` and `1` are different ids).
    pub id: String,
    pub text: String,
    /// Every other field, by name, as text.
    pub options: Vec<(String, String)>,
}

/// How a run went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records attributed in this run.
    pub done: usize,
    /// Of those, the ones written as an error line.
    pub failed: usize,
    /// Records whose id the output already held.
    pub skipped: usize,
}

/// The records of `input`, all checked before any work: every line a JSON object with a
/// unique `id` (a string or a number) and a `text`; blank lines are skipped.
pub fn read_records(input: &Path) -> Result<Vec<Record>> {
    let text = crate::files::read_text(input, INPUT_LIMIT)?;
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |why: &str| Error::InvalidInput(format!("{} line {}: {why}", input.display(), n + 1));
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
            return Err(bad("not a JSON object"));
        };
        let id = match fields.get("id") {
            Some(id @ (Value::String(_) | Value::Number(_))) => id.to_string(),
            Some(_) => return Err(bad("the id must be a string or a number")),
            None => return Err(bad("no \"id\"")),
        };
        if !seen.insert(id.clone()) {
            return Err(bad(&format!("the id {id} is there twice")));
        }
        let Some(Value::String(text)) = fields.get("text") else {
            return Err(bad("no \"text\" string"));
        };
        let mut options = Vec::new();
        for (name, value) in &fields {
            if name == "id" || name == "text" {
                continue;
            }
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(&format!(
                        "{name}: expected a string, a number or a boolean"
                    )))
                }
            };
            options.push((name.clone(), value));
        }
        records.push(Record {
            id,
            text: text.clone(),
            options,
        });
    }
    Ok(records)
}

/// The ids `output` holds already (none where it does not exist), after cutting off a last
/// line a kill left incomplete. A file that is not a results file is refused, untouched.
pub fn done_ids(output: &Path) -> Result<HashSet<String>> {
    let text = match std::fs::read(output) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(Error::io(output, e)),
    };
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut ids = HashSet::new();
    for (n, line) in text[..complete].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let id = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("id").cloned())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{} line {}: not a line of gradlens results (resuming needs the output of an earlier run, or a new file)",
                    output.display(),
                    n + 1
                ))
            })?;
        ids.insert(id.to_string());
    }
    if complete < text.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(output)
            .map_err(|e| Error::io(output, e))?;
        file.set_len(complete as u64)
            .map_err(|e| Error::io(output, e))?;
    }
    Ok(ids)
}

/// Attributes every record of `records` whose id `output` does not hold yet with `base` (the
/// command line's request) and the record's own options over it, appending each result as
/// a line; `progress(done, total)` after each.
pub fn run(
    model: &Model,
    records: &[Record],
    base: &Request,
    output: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<Summary> {
    let done = done_ids(output)?;
    let todo: Vec<&Record> = records.iter().filter(|r| !done.contains(&r.id)).collect();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(output)
        .map_err(|e| Error::io(output, e))?;
    let mut summary = Summary {
        skipped: records.len() - todo.len(),
        ..Summary::default()
    };
    for (i, record) in todo.iter().enumerate() {
        let line = match attribute_record(model, record, base) {
            Ok(json) => format!("{{\"id\":{},{}", record.id, &json[1..]),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                summary.failed += 1;
                let error = Value::String(e.to_string());
                format!("{{\"id\":{},\"error\":{error}}}", record.id)
            }
        };
        // One write per line: a kill leaves whole lines, or one cut short that the next run drops.
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| Error::io(output, e))?;
        summary.done += 1;
        progress(i + 1, todo.len());
    }
    Ok(summary)
}

/// One record's result as the CLI's JSON, on one line.
fn attribute_record(model: &Model, record: &Record, base: &Request) -> Result<String> {
    let request = base.clone().with(record.options.iter().cloned())?;
    let a = request.attribute(model, &record.text, &request.settings)?;
    serde_json::to_string(&a).map_err(|e| Error::Other(format!("json: {e}")))
}
