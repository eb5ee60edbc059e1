//! The one way frona reads and writes YAML: policy files, test cases, the credential registry,
//! config files — among them a project's `.frona/config.yaml`, which an agent may have
//! written. `serde-saphyr` is pure Rust, never panics on input, and bounds what a document may
//! cost (nesting, aliases, scalar sizes); errors carry the line and column.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A document that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

/// Parses one document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        let text = e.to_string();
        // The position is ours to show (file:line:column), not part of the message.
        let message = match text.rsplit_once(" at line ") {
            Some((message, at)) if at.split(", column ").all(|n| n.parse::<u64>().is_ok()) => {
                message.to_owned()
            }
            _ => text,
        };
        YamlError {
            line: line.max(1),
            column: column.max(1),
            message,
        }
    })
}

/// Writes `value` as a YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError {
        line: 1,
        column: 1,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Doc = BTreeMap<String, serde_json::Value>;

    #[test]
    fn errors_carry_the_position_and_a_message_without_it() {
        let err = from_str::<BTreeMap<String, u32>>("a: 1\nb: [x\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(!err.message.contains(" at line "), "{err:?}");
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            #[allow(dead_code)]
            known: u32,
        }
        let err = from_str::<Strict>("known: 1\nunknown: 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1), "{err:?}");
        assert!(err.message.contains("unknown field `unknown`"), "{err:?}");
    }

    /// A hostile document (an agent can write a project's `.frona/config.yaml`) is refused
    /// quickly, not expanded: aliases of aliases, and nesting deeper than any config needs.
    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i", "j"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = from_str::<Doc>(&bomb).unwrap_err();
        assert!(err.message.contains("budget"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let deep = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        let err = from_str::<Doc>(&deep).unwrap_err();
        assert!(err.message.contains("recursion limit"), "{err}");
        assert!(from_str::<Doc>("a: [1, {b: c}]\n").is_ok());
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut doc = Doc::new();
        doc.insert("name".into(), "x: y # not a comment".into());
        doc.insert("list".into(), serde_json::json!(["yes", "no", "1.0", "~"]));
        let text = to_string(&doc).unwrap();
        assert_eq!(from_str::<Doc>(&text).unwrap(), doc, "{text}");
    }
}
