//! Accounts, API keys and sending domains (R-ACC-1, R-ACC-2, R-AUTH-*), on the
//! outbox's database (migration versions 3000-3999).
//!
//! An account is created disabled and enabled once the sending rules are
//! accepted, with who accepted them and when. API keys are random 160-bit
//! secrets shown once; only their SHA-256 is stored, and a key resolves to
//! exactly one account, so every query the API makes is scoped by it.

use chrono::{DateTime, TimeZone, Utc};
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use herald_auth::{DkimKey, DkimSigner, KeyAlgorithm};
use herald_schedule::Backend;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

/// Errors of the account store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Input that breaks a rule; names the field and the rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        rule: String,
    },
    /// The account, key or domain does not exist (or is another account's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// From herald-auth (key generation, a stored key).
    #[error(transparent)]
    Auth(#[from] herald_auth::Error),
    /// The system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

type Result<T> = std::result::Result<T, AccountError>;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Account {
    /// Its number.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// IANA time zone (campaign names, R-EVT-4).
    pub timezone: String,
    /// chrono date format of mass campaign names, e.g. `%d-%m-%Y`.
    pub date_format: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who accepted the sending rules.
    pub rules_accepted_by: Option<String>,
    /// When.
    pub rules_accepted_at: Option<DateTime<Utc>>,
    /// Enabled: the rules are accepted.
    pub enabled: bool,
}

/// An account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Its name (1-200 characters, no control characters).
    pub name: String,
    /// IANA time zone; `UTC` if empty.
    pub timezone: String,
    /// chrono date format; `%Y-%m-%d` if empty.
    pub date_format: String,
}

/// A freshly created API key: the only time the key itself is available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    /// The key (`hk_` and 32 base32 characters). Shown once; store it.
    pub key: String,
    /// Its first characters, to recognise it later.
    pub prefix: String,
    /// The account it opens.
    pub account: u64,
}

/// A sending domain of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Domain {
    /// The domain.
    pub domain: String,
    /// The DKIM selector.
    pub selector: String,
    /// Where the DKIM record goes.
    pub dns_name: String,
    /// The DKIM TXT record to publish.
    pub txt_record: String,
    /// SPF, DKIM and DMARC passed at the last check.
    pub verified: bool,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn id_i64(id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| AccountError::NotFound("account"))
}

/// The SHA-256 of an API key, as stored.
pub fn key_hash(key: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(key.as_bytes()))
}

fn clean(field: &'static str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AccountError::Invalid {
            field,
            rule: "must not be empty".into(),
        });
    }
    if v.chars().count() > max {
        return Err(AccountError::Invalid {
            field,
            rule: format!("at most {max} characters"),
        });
    }
    if v.chars().any(char::is_control) {
        return Err(AccountError::Invalid {
            field,
            rule: "must not contain control characters (CR, LF, …)".into(),
        });
    }
    Ok(v.to_owned())
}

/// Accounts, keys and domains on one database.
#[derive(Debug, Clone)]
pub struct Accounts {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

const ACCOUNT_COLUMNS: &str =
    "id, name, timezone, date_format, created_at, rules_accepted_by, rules_accepted_at";

fn account_row(row: &sqlx::any::AnyRow) -> Result<Account> {
    let at: Option<i64> = row.try_get(6)?;
    Ok(Account {
        id: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
        name: row.try_get(1)?,
        timezone: row.try_get(2)?,
        date_format: row.try_get(3)?,
        created_at: from_millis(row.try_get(4)?),
        rules_accepted_by: row.try_get(5)?,
        rules_accepted_at: at.map(from_millis),
        enabled: at.is_some(),
    })
}

fn domain_row(row: &sqlx::any::AnyRow) -> Result<Domain> {
    let checked: Option<i64> = row.try_get(5)?;
    Ok(Domain {
        domain: row.try_get(0)?,
        selector: row.try_get(1)?,
        dns_name: row.try_get(2)?,
        txt_record: row.try_get(3)?,
        verified: row.try_get::<i64, _>(4)? != 0,
        checked_at: checked.map(from_millis),
    })
}

impl Accounts {
    /// The store on `pool` (reads) and `writer` (writes; on SQLite the
    /// outbox's one-connection writer).
    pub fn new(pool: AnyPool, writer: AnyPool, backend: Backend) -> Self {
        Accounts {
            pool,
            writer,
            backend,
        }
    }

    /// Runs this crate's migrations (versions 3000-3999).
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Creates an account, disabled until [`Accounts::accept_rules`].
    pub async fn create(&self, new: &NewAccount, now: DateTime<Utc>) -> Result<Account> {
        let name = clean("name", &new.name, 200)?;
        let timezone = if new.timezone.trim().is_empty() {
            "UTC".to_owned()
        } else {
            new.timezone.trim().to_owned()
        };
        if timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(AccountError::Invalid {
                field: "timezone",
                rule: format!("`{timezone}` is not an IANA time zone (e.g. Europe/Copenhagen)"),
            });
        }
        let date_format = if new.date_format.trim().is_empty() {
            "%Y-%m-%d".to_owned()
        } else {
            clean("date_format", &new.date_format, 40)?
        };
        let items: Vec<_> = chrono::format::StrftimeItems::new(&date_format).collect();
        if items.contains(&chrono::format::Item::Error) {
            return Err(AccountError::Invalid {
                field: "date_format",
                rule: format!("`{date_format}` is not a chrono date format (e.g. %d-%m-%Y)"),
            });
        }
        let row = sqlx::query(&format!(
            "INSERT INTO herald_accounts (name, timezone, date_format, created_at) VALUES ($1, $2, $3, $4) RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(name)
        .bind(timezone)
        .bind(date_format)
        .bind(millis(now))
        .fetch_one(&self.writer)
        .await?;
        account_row(&row)
    }

    /// The account `id`.
    pub async fn get(&self, id: u64) -> Result<Account> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM herald_accounts WHERE id = $1"
        ))
        .bind(id_i64(id)?)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(AccountError::NotFound("account"))?;
        account_row(&row)
    }

    /// All accounts, by number.
    pub async fn list(&self) -> Result<Vec<Account>> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM herald_accounts ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(account_row)
        .collect()
    }

    /// Records that `by` accepted the sending rules at `now`, which enables
    /// the account (R-ACC-1). Accepting again keeps the first acceptance.
    pub async fn accept_rules(&self, id: u64, by: &str, now: DateTime<Utc>) -> Result<Account> {
        let by = clean("accepted_by", by, 200)?;
        sqlx::query("UPDATE herald_accounts SET rules_accepted_by = $1, rules_accepted_at = $2 WHERE id = $3 AND rules_accepted_at IS NULL")
            .bind(by)
            .bind(millis(now))
            .bind(id_i64(id)?)
            .execute(&self.writer)
            .await?;
        self.get(id).await
    }

    /// Creates an API key for account `id`; the key is in the answer only.
    pub async fn create_key(&self, id: u64, now: DateTime<Utc>) -> Result<NewApiKey> {
        self.get(id).await?;
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes).map_err(|e| AccountError::Random(e.to_string()))?;
        let key = format!("hk_{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
        let prefix: String = key.chars().take(9).collect();
        sqlx::query(
            "INSERT INTO herald_api_keys (account, hash, prefix, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_i64(id)?)
        .bind(key_hash(&key))
        .bind(prefix.as_str())
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(NewApiKey {
            key,
            prefix,
            account: id,
        })
    }

    /// The account an API key opens, if any.
    pub async fn authenticate(&self, key: &str) -> Result<Option<u64>> {
        if !key.starts_with("hk_") || key.len() > 100 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT account FROM herald_api_keys WHERE hash = $1")
            .bind(key_hash(key))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .and_then(|a| u64::try_from(a).ok()))
    }

    /// Deletes the account's own rows: the account, its keys and domains.
    /// [`crate::Herald::delete_account`] also deletes its mail and events.
    pub async fn delete(&self, id: u64) -> Result<()> {
        let id = id_i64(id)?;
        let mut tx = self.writer.begin().await?;
        for sql in [
            "DELETE FROM herald_api_keys WHERE account = $1",
            "DELETE FROM herald_domains WHERE account = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM herald_accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            tx.rollback().await?;
            return Err(AccountError::NotFound("account"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds `domain` to account `id` with a new DKIM key (RSA-2048) under
    /// `selector`; adding it again returns the existing one unchanged.
    pub async fn add_domain(&self, id: u64, domain: &str, selector: &str) -> Result<Domain> {
        let domain = clean("domain", domain, 253)?.to_ascii_lowercase();
        if !domain.contains('.')
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(AccountError::Invalid {
                field: "domain",
                rule: format!("`{domain}` is not a domain name (e.g. shop.example)"),
            });
        }
        if let Some(d) = self.domain(id, &domain).await? {
            return Ok(d);
        }
        let key = herald_auth::generate_key(&domain, selector, KeyAlgorithm::Rsa2048)?;
        sqlx::query("INSERT INTO herald_domains (account, domain, selector, private_key, dns_name, txt_record, verified) VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT DO NOTHING")
            .bind(id_i64(id)?)
            .bind(domain.as_str())
            .bind(selector)
            .bind(key.private_key_pem)
            .bind(key.dns_name)
            .bind(key.txt_record)
            .execute(&self.writer)
            .await?;
        self.domain(id, &domain)
            .await?
            .ok_or(AccountError::NotFound("domain"))
    }

    /// Account `id`'s domain `domain`, if it was added.
    pub async fn domain(&self, id: u64, domain: &str) -> Result<Option<Domain>> {
        sqlx::query("SELECT domain, selector, dns_name, txt_record, verified, checked_at FROM herald_domains WHERE account = $1 AND domain = $2")
            .bind(id_i64(id)?)
            .bind(domain.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(domain_row)
            .transpose()
    }

    /// Account `id`'s domains.
    pub async fn domains(&self, id: u64) -> Result<Vec<Domain>> {
        sqlx::query("SELECT domain, selector, dns_name, txt_record, verified, checked_at FROM herald_domains WHERE account = $1 ORDER BY domain")
            .bind(id_i64(id)?)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(domain_row)
            .collect()
    }

    /// Records the outcome of a domain check.
    pub async fn set_verified(
        &self,
        id: u64,
        domain: &str,
        verified: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE herald_domains SET verified = $1, checked_at = $2 WHERE account = $3 AND domain = $4")
            .bind(i64::from(verified))
            .bind(millis(now))
            .bind(id_i64(id)?)
            .bind(domain.to_ascii_lowercase())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Herald's private key for account `id`'s domain (to compare with DNS).
    pub async fn domain_key(&self, id: u64, domain: &str) -> Result<Option<DkimKey>> {
        let row = sqlx::query(
            "SELECT private_key FROM herald_domains WHERE account = $1 AND domain = $2",
        )
        .bind(id_i64(id)?)
        .bind(domain.to_ascii_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(DkimKey::from_pem(&r.try_get::<String, _>(0)?)?))
            .transpose()
    }

    /// The signer of account `id`'s verified domain `domain`, if it is verified.
    pub async fn domain_signer(&self, id: u64, domain: &str) -> Result<Option<DkimSigner>> {
        let row = sqlx::query("SELECT selector, private_key FROM herald_domains WHERE account = $1 AND domain = $2 AND verified = 1")
            .bind(id_i64(id)?)
            .bind(domain.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let selector: String = row.try_get(0)?;
        let key = DkimKey::from_pem(&row.try_get::<String, _>(1)?)?;
        Ok(Some(DkimSigner::new(domain, &selector, key)?))
    }
}
