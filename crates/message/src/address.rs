//! Email addresses and mailboxes (a display name and an address).

use crate::{Error, Result, check_header_value};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A syntactically valid email address (`local@domain`, RFC 5321 dot-atom local
/// part, a domain of two or more valid labels). An internationalized domain
/// (`bücher.example`) is stored in its ASCII form (`xn--bcher-kva.example`,
/// UTS #46), which is what goes on the wire; otherwise stored as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Checks `value`; `field` names it in the error ("to", "from", …).
    pub fn parse_field(field: &str, value: &str) -> Result<Self> {
        let fail = |rule| Error::InvalidAddress {
            field: field.to_owned(),
            value: value.to_owned(),
            rule,
        };
        if value.len() > 254 {
            return Err(fail("longer than 254 characters"));
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(|| fail("no `@`"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(fail("the local part must have 1 to 64 characters"));
        }
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        if local
            .split('.')
            .any(|atom| atom.is_empty() || !atom.chars().all(atext))
        {
            return Err(fail(
                "the local part may only hold letters, digits, !#$%&'*+-/=?^_`{|}~ and single dots between them",
            ));
        }
        let ascii = if domain.is_ascii() {
            domain.to_owned()
        } else {
            idna::domain_to_ascii_strict(domain).map_err(|_| {
                fail("the domain is not a valid internationalized domain name (UTS #46)")
            })?
        };
        if !valid_domain(&ascii) {
            return Err(fail(
                "the domain must be labels of letters, digits and inner hyphens, each 1 to 63 characters",
            ));
        }
        if !ascii.contains('.') {
            return Err(fail(
                "the domain must have two or more labels (`example.com`): a one-label domain cannot receive mail",
            ));
        }
        if ascii
            .rsplit('.')
            .next()
            .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(fail(
                "the domain's last label cannot be all digits (an IP address is not a mail domain)",
            ));
        }
        if ascii == domain {
            Ok(EmailAddress(value.to_owned()))
        } else {
            Ok(EmailAddress(format!("{local}@{ascii}")))
        }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// Whether `domain` is a dotted sequence of valid ASCII DNS labels.
pub(crate) fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl TryFrom<String> for EmailAddress {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        EmailAddress::parse_field("address", &value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name (optional) and an address, as in `"Ada Lovelace" <ada@example.org>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// The display name, any Unicode text without control characters.
    pub name: Option<String>,
    /// The address.
    pub address: EmailAddress,
}

impl Mailbox {
    /// Builds a mailbox, checking the name for control characters and the address.
    pub fn new(name: Option<&str>, address: &str) -> Result<Self> {
        Self::for_field("address", name, address)
    }

    /// As [`Mailbox::new`], naming `field` in errors.
    pub fn for_field(field: &str, name: Option<&str>, address: &str) -> Result<Self> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(name) = name {
            check_header_value(&format!("{field} (name)"), name)?;
        }
        Ok(Mailbox {
            name: name.map(str::to_owned),
            address: EmailAddress::parse_field(field, address)?,
        })
    }

    pub(crate) fn to_builder(&self) -> mail_builder::headers::address::Address<'_> {
        mail_builder::headers::address::Address::new_address(
            self.name.as_deref(),
            self.address.as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "a@b.c",
            "first.last+tag@sub.example.co.uk",
            "x_y@mail.example",
        ] {
            assert!(EmailAddress::parse_field("to", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn internationalized_domains_go_on_the_wire_in_ascii() {
        let a = EmailAddress::parse_field("to", "info@bücher.example").expect("IDN");
        assert_eq!(a.as_str(), "info@xn--bcher-kva.example");
        assert_eq!(a.domain(), "xn--bcher-kva.example");
        let a = EmailAddress::parse_field("to", "x@MÜNCHEN.example").expect("IDN");
        assert_eq!(a.as_str(), "x@xn--mnchen-3ya.example");
    }

    #[test]
    fn domains_that_cannot_exist_are_refused_naming_the_rule() {
        for (bad, rule) in [
            ("a@b", "two or more labels"),
            ("x_y@localhost", "two or more labels"),
            ("a@192.168.0.1", "all digits"),
        ] {
            let err = EmailAddress::parse_field("to", bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("to: ") && err.contains(rule),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_broken_addresses_naming_the_field() {
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@-x.com",
            "a@x..com",
            "a\r\n@x.com",
            "a@bü-.com",
            "jörg@example.com",
        ] {
            let err = EmailAddress::parse_field("to", bad).unwrap_err();
            assert!(err.to_string().starts_with("to: "), "{bad}: {err}");
        }
    }

    #[test]
    fn mailbox_names_with_line_breaks_are_refused() {
        let err =
            Mailbox::for_field("from", Some("Eve\r\nBcc: x@y.z"), "eve@example.com").unwrap_err();
        assert!(
            matches!(err, Error::HeaderInjection { ref header, .. } if header == "from (name)")
        );
    }
}
