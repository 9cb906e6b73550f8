//! Email authentication for Herald: DKIM signing and key management
//! (R-AUTH-1, R-AUTH-2) and the SPF, DKIM and DMARC checks of a customer's
//! domain (R-AUTH-3 … R-AUTH-5).
//!
//! This is the only Herald crate that does DNS. Every DNS query goes through a
//! [`Dns`] built from a [`DnsConfig`], whose name server is configurable, so
//! tests and operators choose the server. Signing does no I/O.
//!
//! ```
//! use herald_auth::{DkimKey, DkimSigner, KeyAlgorithm, generate_key};
//!
//! // Make a key for a customer's domain and show the record to publish.
//! let generated = generate_key("customer.example", "herald1", KeyAlgorithm::Ed25519)?;
//! assert_eq!(generated.dns_name, "herald1._domainkey.customer.example");
//! assert!(generated.txt_record.starts_with("v=DKIM1; k=ed25519; p="));
//!
//! // Sign with it.
//! let key = DkimKey::from_pem(&generated.private_key_pem)?;
//! let signer = DkimSigner::new("customer.example", "herald1", key)?;
//! let message = b"From: a@customer.example\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
//! let header = signer.sign(message)?;
//! assert!(header.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"));
//! # Ok::<(), herald_auth::Error>(())
//! ```

mod check;
pub mod check_host;
mod dkim;
mod dmarc;
mod dns;
mod spf;

pub use check::{
    DkimReport, DmarcReport, DomainChecker, DomainReport, PlatformAuth, SpfReport, Verdict,
};
pub use check_host::{SpfDns, SpfOutcome, SpfRequest, SpfResult, check_host};
pub use dkim::{
    DkimKey, DkimPublicKey, DkimSigner, GeneratedKey, KeyAlgorithm, SIGNED_HEADERS, generate_key,
};
pub use dmarc::{Alignment, DmarcPolicy, DmarcRecord};
pub use dns::{Dns, DnsConfig, Lookup};
pub use spf::SpfRecord;

/// Errors of this crate. DNS outcomes are not errors: checks return a
/// [`Verdict`], and a DNS failure is [`Verdict::TempError`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Input that is not a usable private key.
    #[error("DKIM key: {0}")]
    Key(String),
    /// A parameter that breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// The rule.
        rule: String,
    },
    /// Signing failed (the message has no headers to sign, or the crypto
    /// library refused).
    #[error("DKIM signing failed: {0}")]
    Sign(String),
    /// The resolver could not be built from its configuration.
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `domain` is a dotted sequence of valid DNS labels (letters, digits,
/// inner hyphens and, for selectors and `_domainkey` names, underscores).
pub(crate) fn valid_dns_name(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
