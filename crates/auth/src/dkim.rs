//! DKIM keys and signing (R-AUTH-1, R-AUTH-2), on mail-auth.

use crate::{Error, Result, valid_dns_name};
use data_encoding::BASE64;
use mail_auth::common::crypto::{DkimKey as MaDkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, Done};
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

/// The headers signed, in the order of R-AUTH-1. `From` is listed twice so it
/// is over-signed: a second `From` added in transit breaks the signature. The
/// headers a message does not have are signed as absent, so none can be added.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Sender",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The key types Herald signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA-SHA256 with a 2048-bit key (generated keys); loaded keys may be larger.
    Rsa2048,
    /// Ed25519-SHA256 (RFC 8463).
    Ed25519,
}

/// A public DKIM key, as published in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimPublicKey {
    /// RSA or Ed25519.
    pub algorithm: KeyAlgorithm,
    /// RSA: the PKCS#1 `RSAPublicKey` DER; Ed25519: the 32 raw bytes.
    pub bytes: Vec<u8>,
}

const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

impl DkimPublicKey {
    /// The bytes of the `p=` tag: for RSA the `SubjectPublicKeyInfo` DER (what
    /// OpenDKIM publishes and every verifier reads), for Ed25519 the raw key.
    pub fn p_bytes(&self) -> Vec<u8> {
        match self.algorithm {
            KeyAlgorithm::Ed25519 => self.bytes.clone(),
            KeyAlgorithm::Rsa2048 => {
                let mut bit_string = vec![0x03];
                der_len(self.bytes.len() + 1, &mut bit_string);
                bit_string.push(0);
                bit_string.extend_from_slice(&self.bytes);
                let mut out = vec![0x30];
                der_len(RSA_ALGORITHM_ID.len() + bit_string.len(), &mut out);
                out.extend_from_slice(RSA_ALGORITHM_ID);
                out.extend_from_slice(&bit_string);
                out
            }
        }
    }

    /// The TXT record to publish, e.g. `v=DKIM1; k=rsa; p=MIIB…`.
    pub fn txt_record(&self) -> String {
        let k = match self.algorithm {
            KeyAlgorithm::Rsa2048 => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        };
        format!("v=DKIM1; k={k}; p={}", BASE64.encode(&self.p_bytes()))
    }

    /// Whether a published `p=` value (base64, whitespace allowed) is this key,
    /// in either RSA form (`SubjectPublicKeyInfo` or bare `RSAPublicKey`).
    pub fn matches_published(&self, p: &str) -> bool {
        let compact: String = p.chars().filter(|c| !c.is_whitespace()).collect();
        match BASE64.decode(compact.as_bytes()) {
            Ok(bytes) => bytes == self.p_bytes() || bytes == self.bytes,
            Err(_) => false,
        }
    }
}

/// A private DKIM signing key.
pub struct DkimKey {
    inner: MaDkimKey,
    public: DkimPublicKey,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("algorithm", &self.public.algorithm)
            .finish_non_exhaustive()
    }
}

/// Reads the first PEM block: its label and its DER bytes.
fn pem_decode(pem: &str) -> Result<(String, Vec<u8>)> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or_else(|| Error::Key("not PEM: no `-----BEGIN` line".into()))?;
    let rest = &pem[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| Error::Key("not PEM: the BEGIN line is not closed".into()))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| Error::Key(format!("not PEM: no `{end_marker}` line")))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = BASE64
        .decode(b64.as_bytes())
        .map_err(|e| Error::Key(format!("PEM body is not base64: {e}")))?;
    Ok((label, der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl DkimKey {
    /// Loads a private key from PEM: PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`, RSA or Ed25519).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "RSA PRIVATE KEY" => Self::rsa(RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(
                der.into(),
            ))),
            "PRIVATE KEY" => {
                if let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(&der) {
                    let public = DkimPublicKey {
                        algorithm: KeyAlgorithm::Ed25519,
                        bytes: key.public_key(),
                    };
                    return Ok(DkimKey {
                        inner: MaDkimKey::Ed25519(key),
                        public,
                    });
                }
                Self::rsa(RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    der.into(),
                )))
            }
            other => Err(Error::Key(format!(
                "PEM block `{other}` is not a private key; expected `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8)"
            ))),
        }
    }

    fn rsa(key: mail_auth::Result<RsaKey<Sha256>>) -> Result<Self> {
        let key =
            key.map_err(|e| Error::Key(format!("not a valid RSA or Ed25519 private key: {e}")))?;
        let public = DkimPublicKey {
            algorithm: KeyAlgorithm::Rsa2048,
            bytes: key.public_key(),
        };
        Ok(DkimKey {
            inner: MaDkimKey::Rsa(key),
            public,
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm
    }

    /// The public half, as published in DNS.
    pub fn public_key(&self) -> &DkimPublicKey {
        &self.public
    }
}

/// A freshly generated key pair and what to publish for it (R-AUTH-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// The private key, PEM (PKCS#1 for RSA, PKCS#8 for Ed25519). Keep it secret.
    pub private_key_pem: String,
    /// The public key.
    pub public_key: DkimPublicKey,
    /// Where to publish: `<selector>._domainkey.<domain>`.
    pub dns_name: String,
    /// The TXT record's text, exactly as to publish.
    pub txt_record: String,
}

/// Generates a key pair for `domain` and `selector`.
pub fn generate_key(domain: &str, selector: &str, algorithm: KeyAlgorithm) -> Result<GeneratedKey> {
    check_name("domain", domain)?;
    check_name("selector", selector)?;
    use mail_auth::dkim::generate::DkimKeyPair;
    let (label, pair) = match algorithm {
        KeyAlgorithm::Rsa2048 => ("RSA PRIVATE KEY", DkimKeyPair::generate_rsa(2048)),
        KeyAlgorithm::Ed25519 => ("PRIVATE KEY", DkimKeyPair::generate_ed25519()),
    };
    let pair = pair.map_err(|e| Error::Key(format!("key generation failed: {e}")))?;
    let der = match algorithm {
        KeyAlgorithm::Ed25519 => ed25519_pkcs8_v1(pair.private_key())?,
        KeyAlgorithm::Rsa2048 => pair.private_key().to_vec(),
    };
    let private_key_pem = pem_encode(label, &der);
    let public_key = DkimKey::from_pem(&private_key_pem)?.public;
    Ok(GeneratedKey {
        private_key_pem,
        dns_name: format!("{selector}._domainkey.{domain}"),
        txt_record: public_key.txt_record(),
        public_key,
    })
}

/// An Ed25519 key as PKCS#8 version 1 (RFC 8410 §7: the private key only),
/// which every common tool reads (OpenSSL 3.0 refuses the version 2 form with
/// the public key that the generator writes).
fn ed25519_pkcs8_v1(v2: &[u8]) -> Result<Vec<u8>> {
    // The private key is an OCTET STRING inside an OCTET STRING: 04 22 04 20 <32 bytes>.
    const MARK: [u8; 4] = [0x04, 0x22, 0x04, 0x20];
    let at = v2
        .windows(4)
        .position(|w| w == MARK)
        .filter(|i| i + 4 + 32 <= v2.len())
        .ok_or_else(|| Error::Key("the generated Ed25519 key has an unexpected form".into()))?;
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&v2[at + 4..at + 4 + 32]);
    Ok(v1)
}

fn check_name(field: &'static str, value: &str) -> Result<()> {
    if valid_dns_name(value) {
        Ok(())
    } else {
        Err(Error::Invalid {
            field,
            rule: format!("`{value}` is not a valid DNS name"),
        })
    }
}

/// Signs messages for one domain and selector with one key: RSA-SHA256 or
/// Ed25519-SHA256, relaxed/relaxed, over [`SIGNED_HEADERS`]. Build it once and
/// share it; signing takes `&self`.
pub struct DkimSigner {
    signer: mail_auth::dkim::DkimSigner<MaDkimKey, Done>,
    domain: String,
    selector: String,
    public: DkimPublicKey,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// A signer for `d=domain`, `s=selector`.
    pub fn new(domain: &str, selector: &str, key: DkimKey) -> Result<Self> {
        check_name("dkim.domain", domain)?;
        check_name("dkim.selector", selector)?;
        let public = key.public.clone();
        let signer = mail_auth::dkim::DkimSigner::from_key(key.inner)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(DkimSigner {
            signer,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            public,
        })
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The public key that verifiers will look up.
    pub fn public_key(&self) -> &DkimPublicKey {
        &self.public
    }

    /// Signs `message` and returns the `DKIM-Signature:` header, folded and
    /// ending in CRLF, to put in front of it. The `t=` tag is the system time
    /// (mail-auth reads it; nothing else here does).
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let signature = self
            .signer
            .sign(message)
            .map_err(|e| Error::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }

    /// The signed message: the `DKIM-Signature` header, then `message`.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>> {
        let header = self.sign(message)?;
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_spki_wraps_pkcs1() {
        let key = DkimPublicKey {
            algorithm: KeyAlgorithm::Rsa2048,
            bytes: vec![0x30, 0x03, 0x02, 0x01, 0x05],
        };
        let spki = key.p_bytes();
        assert_eq!(&spki[..2], &[0x30, 0x17]);
        assert!(spki.ends_with(&[0x03, 0x06, 0x00, 0x30, 0x03, 0x02, 0x01, 0x05]));
    }

    #[test]
    fn garbage_keys_get_clear_errors() {
        for (pem, needle) in [
            ("hello", "no `-----BEGIN`"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a private key",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                "not base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "not a valid",
            ),
            ("-----BEGIN RSA PRIVATE KEY-----\nMAA=\n", "no `-----END"),
        ] {
            let err = DkimKey::from_pem(pem).unwrap_err();
            assert!(err.to_string().contains(needle), "{pem}: {err}");
        }
    }

    #[test]
    fn bad_domains_and_selectors_are_refused() {
        assert!(matches!(
            generate_key("bad domain", "s", KeyAlgorithm::Ed25519),
            Err(Error::Invalid {
                field: "domain",
                ..
            })
        ));
        assert!(matches!(
            generate_key("ok.example", "s;x", KeyAlgorithm::Ed25519),
            Err(Error::Invalid {
                field: "selector",
                ..
            })
        ));
    }

    #[test]
    fn ed25519_keys_round_trip_through_pem() {
        let g = generate_key("d.example", "s1", KeyAlgorithm::Ed25519).expect("generates");
        let key = DkimKey::from_pem(&g.private_key_pem).expect("loads");
        assert_eq!(key.public_key(), &g.public_key);
        assert_eq!(g.public_key.bytes.len(), 32);
        let p = g.txt_record.split("p=").nth(1).expect("has p=");
        assert!(g.public_key.matches_published(p));
    }
}
