//! Validation errors that name the field they are about.

use std::fmt;

/// A field path such as `spec.ingress[0].ports[1].endPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

// === impl FieldPath ===

impl FieldPath {
    /// A root path (`spec`, `metadata`).
    pub fn root(name: &str) -> Self {
        Self(name.to_string())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// `self[i]`.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// `self[key]`, for map entries.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One invalid field and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where.
    pub path: FieldPath,
    /// What is wrong, in the API server's words where it has some.
    pub message: String,
}

impl FieldError {
    /// A new error at `path`.
    pub fn new(path: &FieldPath, message: impl Into<String>) -> Self {
        Self {
            path: path.clone(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects errors while walking an object, the way the API server reports
/// every invalid field at once.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records one error.
    pub fn push(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Records each message of a syntax check at `path`, quoting the value.
    pub fn extend_msgs(&mut self, path: &FieldPath, value: &str, msgs: Vec<String>) {
        for m in msgs {
            self.push(path, format!("Invalid value: {value:?}: {m}"));
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
