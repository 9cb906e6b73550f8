//! Customer DKIM private keys at rest (issue 10 §5): sealed with
//! ChaCha20-Poly1305 (RFC 8439, the RustCrypto `chacha20poly1305` crate)
//! under a key from the configuration, bound to their account and domain.
//!
//! A sealed key is stored as `herald-aead:v1:<key id>:<base64(nonce ‖
//! ciphertext ‖ tag)>`, with `account:domain` as associated data, so a row
//! copied to another account or domain does not open. Keys are named by an
//! id, so several can be configured: the current one seals, any of them
//! opens; [`reseal_all`] re-seals every stored key under the current one (the
//! rotation: add a new current key, keep the old one among the previous keys,
//! run `herald-server rotate-dkim-keys`, then drop the old key). Rows written
//! before encryption was configured hold PEM and are read as such until
//! resealed.

use crate::service::Error;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use data_encoding::BASE64;
use herald_schedule::Accounts;
use std::collections::BTreeMap;

const PREFIX: &str = "herald-aead:v1:";

fn invalid(field: &'static str, rule: impl Into<String>) -> Error {
    Error::Config(crate::config::ConfigError::Invalid {
        field,
        rule: rule.into(),
    })
}

/// The keys that seal and open stored DKIM keys. Its `Debug` shows key ids
/// only.
#[derive(Clone, Default)]
pub struct KeyVault {
    current: Option<String>,
    keys: BTreeMap<String, [u8; 32]>,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses `ID:BASE64` (an id of 1-32 of `a-z 0-9 - _`, then 32 bytes in
/// standard base64), naming `field` in the error.
fn parse_key(
    field: &'static str,
    index: Option<usize>,
    spec: &str,
) -> Result<(String, [u8; 32]), Error> {
    let bad = |rule: &str| {
        invalid(
            field,
            index.map_or(rule.to_owned(), |i| format!("[{i}]: {rule}")),
        )
    };
    let (id, b64) = spec
        .trim()
        .split_once(':')
        .ok_or_else(|| bad("must be `ID:BASE64` (e.g. `k1:` and 32 random bytes in base64)"))?;
    if id.is_empty()
        || id.len() > 32
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(bad("the id must be 1-32 of a-z, 0-9, `-` and `_`"));
    }
    let bytes = BASE64
        .decode(b64.as_bytes())
        .map_err(|_| bad("the key is not standard base64"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("the key must be exactly 32 bytes (44 base64 characters)"))?;
    Ok((id.to_owned(), key))
}

impl KeyVault {
    /// A vault with `current` (seals and opens) and `previous` (open only),
    /// each `ID:BASE64`; no current key: keys are stored as PEM.
    pub fn new(current: Option<&str>, previous: &[String]) -> Result<Self, Error> {
        let mut vault = KeyVault::default();
        for (i, spec) in previous.iter().enumerate() {
            let (id, key) = parse_key("domains.previous_key_encryption_keys", Some(i), spec)?;
            vault.keys.insert(id, key);
        }
        if let Some(spec) = current {
            let (id, key) = parse_key("domains.key_encryption_key", None, spec)?;
            if vault.keys.get(&id).is_some_and(|k| *k != key) {
                return Err(invalid(
                    "domains.key_encryption_key",
                    format!("the id `{id}` names another key among the previous keys"),
                ));
            }
            vault.keys.insert(id.clone(), key);
            vault.current = Some(id);
        }
        Ok(vault)
    }

    /// A new random key in the `ID:BASE64` form the configuration takes.
    pub fn generate(id: &str) -> Result<String, Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
        Ok(format!("{id}:{}", BASE64.encode(&key)))
    }

    /// Whether keys are sealed when stored.
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    fn cipher(&self, id: &str) -> Option<ChaCha20Poly1305> {
        self.keys
            .get(id)
            .map(|k| ChaCha20Poly1305::new(Key::from_slice(k)))
    }

    /// `pem` as it is stored for `account`'s `domain`: sealed under the
    /// current key, or as it is when none is configured.
    pub fn seal(&self, account: u64, domain: &str, pem: &str) -> Result<String, Error> {
        let Some((id, cipher)) = self
            .current
            .as_deref()
            .and_then(|id| Some((id, self.cipher(id)?)))
        else {
            return Ok(pem.to_owned());
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
        let aad = format!("{account}:{}", domain.to_ascii_lowercase());
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: pem.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Vault("sealing a DKIM key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{id}:{}", BASE64.encode(&out)))
    }

    /// The PEM of a key stored for `account`'s `domain`. A sealed key needs
    /// its key id configured and its account and domain to match.
    pub fn open(&self, account: u64, domain: &str, stored: &str) -> Result<String, Error> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, b64) = rest
            .split_once(':')
            .ok_or_else(|| Error::Vault("a stored DKIM key is malformed".into()))?;
        let cipher = self.cipher(id).ok_or_else(|| {
            Error::Vault(format!(
                "the DKIM key of {domain} is sealed with key `{id}`, which is not configured (domains.key_encryption_key or domains.previous_key_encryption_keys)"
            ))
        })?;
        let bytes = BASE64
            .decode(b64.as_bytes())
            .map_err(|_| Error::Vault("a stored DKIM key is malformed".into()))?;
        if bytes.len() < 12 + 16 {
            return Err(Error::Vault("a stored DKIM key is malformed".into()));
        }
        let (nonce, sealed) = bytes.split_at(12);
        let aad = format!("{account}:{}", domain.to_ascii_lowercase());
        let pem = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Vault(format!(
                    "the DKIM key of {domain} does not open with key `{id}` (another key, or a row moved between accounts)"
                ))
            })?;
        String::from_utf8(pem).map_err(|_| Error::Vault("a stored DKIM key is not text".into()))
    }

    /// The id of the key that sealed `stored`, if it is sealed.
    pub fn sealed_with(stored: &str) -> Option<&str> {
        stored
            .strip_prefix(PREFIX)?
            .split_once(':')
            .map(|(id, _)| id)
    }
}

/// What [`reseal_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resealed {
    /// Keys sealed under the current key now (they were PEM or under another key).
    pub resealed: u64,
    /// Keys already under the current key.
    pub unchanged: u64,
}

/// Re-seals every stored DKIM key under the vault's current key: the rotation
/// step. A key that does not open stops the run with the domain named; keys
/// done before it stay done.
pub async fn reseal_all(store: &Accounts, vault: &KeyVault) -> Result<Resealed, Error> {
    let Some(current) = vault.current.as_deref() else {
        return Err(invalid(
            "domains.key_encryption_key",
            "set a key to seal the stored DKIM keys with",
        ));
    };
    let mut out = Resealed::default();
    for (account, domain, stored) in store.stored_domain_keys().await? {
        if KeyVault::sealed_with(&stored) == Some(current) {
            out.unchanged += 1;
            continue;
        }
        let pem = vault.open(account, &domain, &stored)?;
        let sealed = vault.seal(account, &domain, &pem)?;
        if store
            .replace_domain_key(account, &domain, &stored, &sealed)
            .await?
        {
            out.resealed += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n-----END PRIVATE KEY-----\n";

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", BASE64.encode(&[byte; 32]))
    }

    #[test]
    fn sealed_keys_open_only_for_their_account_and_domain() {
        let v = KeyVault::new(Some(&key("k1", 1)), &[]).unwrap();
        let sealed = v.seal(7, "Shop.test", PEM).unwrap();
        assert!(sealed.starts_with("herald-aead:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_eq!(v.open(7, "shop.test", &sealed).unwrap(), PEM);
        assert!(v.open(8, "shop.test", &sealed).is_err(), "another account");
        assert!(v.open(7, "other.test", &sealed).is_err(), "another domain");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            v.open(7, "shop.test", &String::from_utf8(tampered).unwrap())
                .is_err()
        );
        assert_ne!(
            sealed,
            v.seal(7, "shop.test", PEM).unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn rotation_keys_open_and_only_the_current_seals() {
        let old = KeyVault::new(Some(&key("k1", 1)), &[]).unwrap();
        let sealed = old.seal(1, "a.test", PEM).unwrap();
        let new = KeyVault::new(Some(&key("k2", 2)), &[key("k1", 1)]).unwrap();
        assert_eq!(new.open(1, "a.test", &sealed).unwrap(), PEM);
        assert_eq!(
            KeyVault::sealed_with(&new.seal(1, "a.test", PEM).unwrap()),
            Some("k2")
        );
        let without = KeyVault::new(Some(&key("k2", 2)), &[]).unwrap();
        let e = without.open(1, "a.test", &sealed).unwrap_err().to_string();
        assert!(e.contains("`k1`") && e.contains("not configured"), "{e}");
    }

    #[test]
    fn without_a_key_pem_is_kept_and_read() {
        let v = KeyVault::new(None, &[]).unwrap();
        assert!(!v.seals());
        assert_eq!(v.seal(1, "a.test", PEM).unwrap(), PEM);
        assert_eq!(v.open(1, "a.test", PEM).unwrap(), PEM);
    }

    #[test]
    fn bad_keys_are_refused_naming_the_setting() {
        for (spec, words) in [
            ("nocolon", "ID:BASE64"),
            ("K1:AAAA", "the id must be"),
            ("k1:not base64!", "not standard base64"),
            ("k1:AAAA", "exactly 32 bytes"),
        ] {
            let e = KeyVault::new(Some(spec), &[]).unwrap_err().to_string();
            assert!(
                e.contains("domains.key_encryption_key") && e.contains(words),
                "{spec}: {e}"
            );
        }
        let e = KeyVault::new(Some(&key("k1", 1)), &[key("k1", 2)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("names another key"), "{e}");
        let generated = KeyVault::generate("k9").unwrap();
        assert!(KeyVault::new(Some(&generated), &[]).is_ok(), "{generated}");
    }
}
