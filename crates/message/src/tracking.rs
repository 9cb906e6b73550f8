//! Signed tracking tokens (R-MSG-5) and the per-message identifiers derived from
//! the same key: tracking URLs, VERP envelope senders and Message-IDs.
//!
//! A token is `version|kind`, the account and message numbers as LEB128
//! varints, the link index for clicks, then the first 12 bytes (96 bits) of
//! HMAC-SHA256 over all of that. It holds no personal data: only opaque
//! numbers that mean something to the database that issued them. URL tokens are
//! base64url without padding (a click token is about 30 characters); the VERP
//! token is lower-case base32, because some mail systems fold the case of local
//! parts.

use crate::{Error, Result};
use data_encoding::{BASE64URL_NOPAD, Encoding};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const VERSION: u8 = 1;
const MAC_LEN: usize = 12;
/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

fn base32_lower() -> Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.translate.from.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.translate.to.push_str("abcdefghijklmnopqrstuvwxyz");
    // The specification is a constant and valid; encoding() only fails for bad ones.
    spec.encoding().unwrap_or(data_encoding::BASE32_NOPAD)
}

/// Identifies one message of one account, as numbered by the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageRef {
    /// The account's number.
    pub account: u64,
    /// The message's number within the outbox.
    pub message: u64,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenKind {
    /// A tracked link; the token carries the link's index.
    Click,
    /// The open pixel.
    Open,
    /// The unsubscribe landing page and one-click POST.
    Unsubscribe,
    /// The VERP envelope sender, to map bounces back to a message.
    Bounce,
}

impl TokenKind {
    fn code(self) -> u8 {
        match self {
            TokenKind::Click => 1,
            TokenKind::Open => 2,
            TokenKind::Unsubscribe => 3,
            TokenKind::Bounce => 4,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => TokenKind::Click,
            2 => TokenKind::Open,
            3 => TokenKind::Unsubscribe,
            4 => TokenKind::Bounce,
            _ => return None,
        })
    }
}

/// A decoded, authenticated token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// What it is for.
    pub kind: TokenKind,
    /// The message it belongs to.
    pub message: MessageRef,
    /// For [`TokenKind::Click`], the index of the link in the template.
    pub link: Option<u16>,
}

/// Why a token was rejected. Callers answer all of them the same way (404); the
/// variants exist for logs and tests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not valid base64url / base32 text.
    #[error("token: not valid {0} text")]
    Encoding(&'static str),
    /// Too short to hold a payload and its signature.
    #[error("token: truncated")]
    Truncated,
    /// The signature does not match: tampered, or made with another key.
    #[error("token: bad signature")]
    BadSignature,
    /// Signed, but of a version or layout this code does not read.
    #[error("token: unknown version or layout")]
    Malformed,
    /// A valid token of another kind than the endpoint expects.
    #[error("token: expected a {expected:?} token, got {got:?}")]
    WrongKind {
        /// What the caller asked for.
        expected: TokenKind,
        /// What the token is.
        got: TokenKind,
    },
}

/// Mints and checks tracking tokens with one HMAC key, and builds the tracking
/// URLs of one installation. Cheap to share (`&Tracker`) across threads.
#[derive(Clone)]
pub struct Tracker {
    mac: Hmac<Sha256>,
    base_url: String,
    base32: Encoding,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// `secret` must be at least 32 bytes; `base_url` is the public origin of the
    /// tracking endpoints (`http://` or `https://`, no query or fragment), e.g.
    /// `https://t.example.com`.
    pub fn new(secret: &[u8], base_url: &str) -> Result<Self> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::Invalid {
                field: "tracking.secret",
                rule: format!(
                    "must be at least {MIN_SECRET_LEN} bytes, got {}",
                    secret.len()
                ),
            });
        }
        let base_url = base_url.trim_end_matches('/');
        let rest = base_url
            .strip_prefix("https://")
            .or_else(|| base_url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ', '"', '<', '>']) => {}
            _ => {
                return Err(Error::Invalid {
                    field: "tracking.base_url",
                    rule: format!(
                        "`{base_url}` must be an http:// or https:// URL without query or fragment"
                    ),
                });
            }
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Error::Invalid {
            field: "tracking.secret",
            rule: "not usable as an HMAC key".into(),
        })?;
        Ok(Tracker {
            mac,
            base_url: base_url.to_owned(),
            base32: base32_lower(),
        })
    }

    /// The public origin given to [`Tracker::new`], without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sign(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The token's bytes: payload then truncated MAC.
    pub fn token_bytes(&self, token: &Token) -> Vec<u8> {
        let mut buf = Vec::with_capacity(32);
        buf.push((VERSION << 4) | token.kind.code());
        put_varint(&mut buf, token.message.account);
        put_varint(&mut buf, token.message.message);
        if token.kind == TokenKind::Click {
            buf.extend_from_slice(&token.link.unwrap_or(0).to_be_bytes());
        }
        let mac = self.sign(&buf);
        buf.extend_from_slice(&mac);
        buf
    }

    /// Encodes a token for a URL (base64url, no padding).
    pub fn encode(&self, token: &Token) -> String {
        BASE64URL_NOPAD.encode(&self.token_bytes(token))
    }

    /// Decodes and authenticates a URL token of any kind.
    pub fn decode(&self, text: &str) -> Result<Token, TokenError> {
        let bytes = BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| TokenError::Encoding("base64url"))?;
        self.verify(&bytes)
    }

    /// Decodes a URL token and checks that it is of the `expected` kind.
    pub fn decode_kind(&self, text: &str, expected: TokenKind) -> Result<Token, TokenError> {
        let token = self.decode(text)?;
        if token.kind != expected {
            return Err(TokenError::WrongKind {
                expected,
                got: token.kind,
            });
        }
        Ok(token)
    }

    fn verify(&self, bytes: &[u8]) -> Result<Token, TokenError> {
        if bytes.len() < 3 + MAC_LEN {
            return Err(TokenError::Truncated);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;
        let (&head, mut rest) = payload.split_first().ok_or(TokenError::Truncated)?;
        if head >> 4 != VERSION {
            return Err(TokenError::Malformed);
        }
        let kind = TokenKind::from_code(head & 0x0f).ok_or(TokenError::Malformed)?;
        let account = take_varint(&mut rest).ok_or(TokenError::Malformed)?;
        let message = take_varint(&mut rest).ok_or(TokenError::Malformed)?;
        let link = if kind == TokenKind::Click {
            match rest {
                [a, b] => {
                    rest = &[];
                    Some(u16::from_be_bytes([*a, *b]))
                }
                _ => return Err(TokenError::Malformed),
            }
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(Token {
            kind,
            message: MessageRef { account, message },
            link,
        })
    }

    fn url(&self, path: &str, kind: TokenKind, message: MessageRef, link: Option<u16>) -> String {
        let token = Token {
            kind,
            message,
            link,
        };
        format!("{}/{path}/{}", self.base_url, self.encode(&token))
    }

    /// The click URL of link `link` of a message.
    pub fn click_url(&self, message: MessageRef, link: u16) -> String {
        self.url("c", TokenKind::Click, message, Some(link))
    }

    /// The open pixel URL of a message.
    pub fn open_url(&self, message: MessageRef) -> String {
        self.url("o", TokenKind::Open, message, None)
    }

    /// The unsubscribe page URL of a message (also the RFC 8058 one-click target).
    pub fn unsubscribe_url(&self, message: MessageRef) -> String {
        self.url("u", TokenKind::Unsubscribe, message, None)
    }

    /// The VERP envelope sender of a message: `b-<base32 token>@<bounce_domain>`.
    pub fn verp_address(&self, message: MessageRef, bounce_domain: &str) -> String {
        let token = Token {
            kind: TokenKind::Bounce,
            message,
            link: None,
        };
        format!(
            "b-{}@{}",
            self.base32.encode(&self.token_bytes(&token)),
            bounce_domain
        )
    }

    /// Maps a bounce's recipient address (the VERP envelope sender) back to its
    /// message. Case-insensitive, as some mail systems fold local parts.
    pub fn decode_verp(&self, address: &str) -> Result<Token, TokenError> {
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        let text = local
            .strip_prefix("b-")
            .or_else(|| local.strip_prefix("B-"))
            .ok_or(TokenError::Malformed)?;
        let bytes = self
            .base32
            .decode(text.as_bytes())
            .map_err(|_| TokenError::Encoding("base32"))?;
        let token = self.verify(&bytes)?;
        if token.kind != TokenKind::Bounce {
            return Err(TokenError::WrongKind {
                expected: TokenKind::Bounce,
                got: token.kind,
            });
        }
        Ok(token)
    }

    /// The Message-ID of a message, without angle brackets: derived from the
    /// message reference and the key, so a retry reuses it (R-SND-4), it is
    /// unique per message, and it reveals nothing.
    pub fn message_id(&self, message: MessageRef, domain: &str) -> String {
        let mut buf = Vec::with_capacity(24);
        buf.extend_from_slice(b"mid");
        put_varint(&mut buf, message.account);
        put_varint(&mut buf, message.message);
        let mut mac = self.mac.clone();
        mac.update(&buf);
        let full = mac.finalize().into_bytes();
        format!("{}@{}", self.base32.encode(&full[..16]), domain)
    }
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            // Reject non-minimal encodings so one value has one token.
            if byte == 0 && shift > 0 {
                return None;
            }
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tracker(secret: &[u8]) -> Tracker {
        Tracker::new(secret, "https://t.example.com/").expect("valid tracker")
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

    #[test]
    fn short_secrets_and_bad_base_urls_are_refused() {
        assert!(matches!(
            Tracker::new(b"short", "https://x"),
            Err(Error::Invalid {
                field: "tracking.secret",
                ..
            })
        ));
        for url in ["ftp://x", "https://", "https://x/?a=b", "x.example.com"] {
            assert!(
                matches!(
                    Tracker::new(KEY, url),
                    Err(Error::Invalid {
                        field: "tracking.base_url",
                        ..
                    })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn a_click_token_is_compact_and_has_no_personal_data() {
        let t = tracker(KEY);
        let token = Token {
            kind: TokenKind::Click,
            message: MessageRef {
                account: 12,
                message: 987_654_321,
            },
            link: Some(19),
        };
        let text = t.encode(&token);
        assert!(text.len() <= 32, "{text}");
        assert_eq!(t.decode(&text), Ok(token));
        assert_eq!(
            t.decode_kind(&text, TokenKind::Open),
            Err(TokenError::WrongKind {
                expected: TokenKind::Open,
                got: TokenKind::Click
            })
        );
    }

    #[test]
    fn a_foreign_key_is_rejected() {
        let token = Token {
            kind: TokenKind::Open,
            message: MessageRef {
                account: 1,
                message: 2,
            },
            link: None,
        };
        let text = tracker(KEY).encode(&token);
        assert_eq!(tracker(OTHER).decode(&text), Err(TokenError::BadSignature));
    }

    #[test]
    fn truncated_and_garbage_tokens_are_rejected() {
        let t = tracker(KEY);
        let token = Token {
            kind: TokenKind::Open,
            message: MessageRef {
                account: 1,
                message: 2,
            },
            link: None,
        };
        let text = t.encode(&token);
        for n in 0..text.len() {
            assert!(t.decode(&text[..n]).is_err(), "prefix {n}");
        }
        assert!(t.decode("not a token!").is_err());
        assert!(t.decode("").is_err());
    }

    #[test]
    fn verp_round_trips_case_insensitively() {
        let t = tracker(KEY);
        let m = MessageRef {
            account: 3,
            message: u64::MAX,
        };
        let addr = t.verp_address(m, "bounces.example.com");
        assert!(
            addr.split('@').next().is_some_and(|l| l.len() <= 64),
            "{addr}"
        );
        assert_eq!(t.decode_verp(&addr).map(|t| t.message), Ok(m));
        assert_eq!(
            t.decode_verp(&addr.to_uppercase()).map(|t| t.message),
            Ok(m)
        );
        assert!(tracker(OTHER).decode_verp(&addr).is_err());
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let t = tracker(KEY);
        let a = MessageRef {
            account: 1,
            message: 1,
        };
        let b = MessageRef {
            account: 1,
            message: 2,
        };
        assert_eq!(t.message_id(a, "p.example"), t.message_id(a, "p.example"));
        assert_ne!(t.message_id(a, "p.example"), t.message_id(b, "p.example"));
    }

    fn any_token() -> impl Strategy<Value = Token> {
        (0u8..4, any::<u64>(), any::<u64>(), any::<u16>()).prop_map(
            |(k, account, message, link)| {
                let kind = [
                    TokenKind::Click,
                    TokenKind::Open,
                    TokenKind::Unsubscribe,
                    TokenKind::Bounce,
                ][k as usize];
                Token {
                    kind,
                    message: MessageRef { account, message },
                    link: (kind == TokenKind::Click).then_some(link),
                }
            },
        )
    }

    proptest! {
        #[test]
        fn tokens_round_trip(token in any_token()) {
            let t = tracker(KEY);
            prop_assert_eq!(t.decode(&t.encode(&token)), Ok(token));
        }

        #[test]
        fn any_single_byte_change_is_rejected(token in any_token(), pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
            let t = tracker(KEY);
            let mut bytes = t.token_bytes(&token);
            let i = pos.index(bytes.len());
            bytes[i] = bytes[i].wrapping_add(delta);
            prop_assert!(t.decode(&BASE64URL_NOPAD.encode(&bytes)).is_err());
        }

        #[test]
        fn any_single_character_change_is_rejected(token in any_token(), pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_-]") {
            let t = tracker(KEY);
            let text = t.encode(&token);
            let i = pos.index(text.len());
            let mut changed = text.clone();
            changed.replace_range(i..=i, &c);
            prop_assume!(changed != text);
            prop_assert!(t.decode(&changed).is_err());
        }
    }
}
