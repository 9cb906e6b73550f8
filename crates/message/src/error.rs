//! The crate's one error type.

use std::fmt;

/// A part of a template, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Part {
    /// The subject line.
    Subject,
    /// The HTML body.
    Html,
    /// The plain-text body.
    Text,
    /// An SMS text.
    Sms,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Html => "HTML body",
            Part::Text => "text body",
            Part::Sms => "SMS text",
        })
    }
}

/// Everything that can go wrong while building a message. Each variant names the
/// field or part at fault and the rule it broke.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A merge field that the schema does not know.
    #[error("{part}: unknown merge field `{field}` at line {line}, column {column}")]
    UnknownField {
        /// Where it was found.
        part: Part,
        /// The field as written.
        field: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// The merge syntax itself is broken (an unclosed `{{`, a bad default, …).
    #[error("{part}: {problem} at line {line}, column {column}")]
    TemplateSyntax {
        /// Where it was found.
        part: Part,
        /// What is wrong.
        problem: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A merged value holds a control character where a header line is built
    /// from it (the subject): it could start a new header line.
    #[error(
        "merge field `{field}`: its value contains a control character (CR, LF or other), which is not allowed in the {part}"
    )]
    UnsafeValue {
        /// The field whose value is at fault.
        field: String,
        /// The part it would be merged into.
        part: Part,
    },
    /// A header value with CR, LF or another control character.
    #[error(
        "header {header}: contains a control character (CR, LF or other) at byte {position}; a header value must be one line of text"
    )]
    HeaderInjection {
        /// The header's name.
        header: String,
        /// Byte offset of the first control character.
        position: usize,
    },
    /// An email address that is not one.
    #[error("{field}: `{value}` is not a valid email address: {rule}")]
    InvalidAddress {
        /// Which address (from, to, reply-to, …).
        field: String,
        /// The rejected input.
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A configuration value that breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// The template has neither an HTML nor a text body.
    #[error("template: the HTML body and the text body are both empty; at least one is required")]
    EmptyBody,
    /// The attachments are over the platform limit and the account has no
    /// fallback transport (R-MSG-7).
    #[error(
        "attachments: {total} bytes in total, above the platform limit of {limit} bytes, and the account has no fallback transport configured"
    )]
    AttachmentsTooLarge {
        /// Sum of the attachment sizes in bytes.
        total: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The HTML rewriter gave up on the HTML body.
    #[error("HTML body: the link rewriter failed: {0}")]
    Html(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
