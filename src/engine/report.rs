//! What infrasql tells a user: an error or a notice with PostgreSQL's
//! fields (severity, SQLSTATE, message, detail, hint).
//!
//! The engine produces these (a refused COMMIT, a bad setting); the wire
//! encodes them as ErrorResponse/NoticeResponse (`wire::protocol`) and
//! decodes the backend's own into the same shape. Keeping the type here lets
//! data flow one way: the engine never needs the wire to say what went wrong.

use super::errors;

/// Fields of an error or notice, in PostgreSQL's field-code form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub severity: &'static str,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Report {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Report {
            severity: "ERROR",
            code: code.to_owned(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        Report {
            severity: "FATAL",
            ..Report::error(code, message)
        }
    }
    pub fn notice(message: impl Into<String>) -> Self {
        Report {
            severity: "NOTICE",
            ..Report::error(errors::NOTICE, message)
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}
