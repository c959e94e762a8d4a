//! The one splitter of manifest text into documents, used for manifests
//! (`world`) and the isolation policy alike: YAML (multi-document) or JSON
//! (one value, a stream of values, or an array). Syntax errors name the
//! origin and the line.

use anyhow::{Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// One parsed document and where it came from.
#[derive(Debug)]
pub struct Doc {
    /// The document as JSON.
    pub value: Value,
    /// ` (document N, line L)`, for messages.
    pub where_: String,
}

/// Splits YAML (multi-document) or JSON text into documents. Syntax errors
/// name `origin` and the line.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Doc>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut out = Vec::new();
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, v) in stream.enumerate() {
            match v {
                Ok(Value::Array(items)) => {
                    for (j, item) in items.into_iter().enumerate() {
                        out.push(Doc {
                            value: item,
                            where_: format!(" (document {}, item {j})", i + 1),
                        });
                    }
                }
                Ok(v) => out.push(Doc {
                    value: v,
                    where_: format!(" (document {})", i + 1),
                }),
                Err(e) => bail!(
                    "{origin}: line {}, column {}: invalid JSON: {e}",
                    e.line(),
                    e.column()
                ),
            }
        }
        return Ok(out);
    }
    let starts = document_start_lines(text);
    let mut out = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let line = starts.get(i).copied().unwrap_or(1);
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(v) => out.push(Doc {
                value: v,
                where_: format!(" (document {}, line {line})", i + 1),
            }),
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("line {}, column {}", l.line(), l.column()))
                    .unwrap_or_else(|| format!("document {} (from line {line})", i + 1));
                bail!("{origin}: {at}: invalid YAML: {e}");
            }
        }
    }
    Ok(out)
}

/// The first line of each YAML document (1-based), for messages.
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    let mut first_content_seen = false;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep {
            if first_content_seen {
                starts.push(i + 2);
            } else if let Some(s) = starts.last_mut() {
                *s = i + 2;
            }
            first_content_seen = true;
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            first_content_seen = true;
        }
    }
    starts
}
