//! Errors that name the field (and, where the parser knows it, the line) at fault.

use core::fmt;

/// One problem with one field of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path to the field, e.g. `links[1].endpoints[0].node`; empty for the
    /// whole document.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
    /// 1-based line in the source text, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column in the source text, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl FieldError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into(), line: None, column: None }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
            f.write_str(": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// Where the document came from (a file name), if known.
    pub file: Option<String>,
    /// The problems, in document order where possible.
    pub errors: Vec<FieldError>,
}

impl SpecError {
    /// A single error.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError { file: None, errors: vec![FieldError::new(field, message)] }
    }

    /// Names the file the document came from.
    pub fn in_file(mut self, source: impl Into<String>) -> SpecError {
        self.file = Some(source.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(src) = &self.file {
                write!(f, "{src}: ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects field errors while validating.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub(crate) fn finish(self) -> Result<(), SpecError> {
        if self.0.is_empty() { Ok(()) } else { Err(SpecError { file: None, errors: self.0 }) }
    }
}

/// Checks a name used in namespace, interface and file names (see
/// [`crate::names::lowercase`]).
pub(crate) fn check_name(errs: &mut Errors, field: &str, name: &str, max: usize) {
    if let Err(e) = crate::names::lowercase(name, max) {
        errs.push(field, e.0);
    }
}
