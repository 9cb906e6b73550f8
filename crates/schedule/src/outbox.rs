//! The durable outbox (R-SND-4, R-SND-5, R-SND-7) on sqlx, one code path for
//! SQLite (the embedded default, in WAL mode) and PostgreSQL.
//!
//! A send is stored once (its compiled template and sender) and each recipient
//! as one row holding only the merged values. Rows move through
//! `queued → claimed → delivered | deferred | bounced | failed`, or end
//! `cancelled` or `skipped`. Workers claim due rows with a lease; a claim whose
//! lease runs out (a crashed worker) is claimable again, and an outcome is only
//! recorded by the worker that still holds the claim.

use crate::rules::{SendingRules, When};
use crate::sql::{Bind, Sql};
use crate::throttle::Lane;
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use herald_message::{
    Attachment, CampaignId, CompiledTemplate, Mailbox, MergeValues, SendKind, SenderIdentity,
};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, HashSet};

/// Which SQL database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL, the scale-out backend.
    Postgres,
}

/// A message's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its time.
    Queued,
    /// Held by a worker until its lease ends.
    Claimed,
    /// Accepted by the receiving server (2xx).
    Delivered,
    /// Temporarily refused (4xx, connection or DNS failure); retried at `due_at`.
    Deferred,
    /// Permanently refused, or given up on.
    Bounced,
    /// Could not be built or sent at all (bad stored data, no transport).
    Failed,
    /// The send was deleted before this message went.
    Cancelled,
    /// Not sent: the recipient is suppressed.
    Skipped,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Claimed => "claimed",
            State::Delivered => "delivered",
            State::Deferred => "deferred",
            State::Bounced => "bounced",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => State::Queued,
            "claimed" => State::Claimed,
            "delivered" => State::Delivered,
            "deferred" => State::Deferred,
            "bounced" => State::Bounced,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            "skipped" => State::Skipped,
            other => return Err(Error::Corrupt(format!("unknown message state `{other}`"))),
        })
    }
}

/// How a bounce is classed (R-SND-6, R-EVT-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceClass {
    /// Permanent: the address does not work.
    Hard,
    /// Temporary failures that lasted past the give-up age.
    Soft,
    /// Refused as spam or by policy.
    Blocked,
}

impl BounceClass {
    /// Its name: `hard`, `soft` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
            BounceClass::Blocked => "blocked",
        }
    }
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// 2xx.
    Delivered {
        /// The server's reply.
        reply: String,
    },
    /// Try again at `retry_at`.
    Deferred {
        /// When.
        retry_at: DateTime<Utc>,
        /// Why (reply or connection error).
        reply: String,
    },
    /// Bounced; not retried.
    Bounced {
        /// Hard, soft or blocked.
        class: BounceClass,
        /// Why ([`crate::BounceRules::judge`]).
        reason: crate::BounceReason,
        /// The reply.
        reply: String,
    },
    /// Could not be attempted.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a recipient is not sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// On the account's blocklist (hard bounce, R-EVT-5).
    Blocklisted,
    /// Unsubscribed or complained (mass mail only).
    Unsubscribed,
    /// Flagged "block mass emails" (mass mail only).
    BlocksMassEmail,
}

impl SkipReason {
    /// The reason as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Blocklisted => "blocklisted",
            SkipReason::Unsubscribed => "unsubscribed",
            SkipReason::BlocksMassEmail => "blocks mass email",
        }
    }
}

/// The suppression hook consulted when a send is accepted (R-SND-2). The event
/// log fills it; [`NoSuppression`] suppresses nothing.
pub trait Suppression: Sync {
    /// For each address of `emails` that must not get mail of `kind` from
    /// `account`, why. Addresses are compared case-insensitively.
    fn suppressed(
        &self,
        account: u64,
        kind: SendKind,
        emails: &[&str],
    ) -> impl std::future::Future<Output = Result<HashMap<String, SkipReason>>> + Send;
}

/// Suppresses nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSuppression;

impl Suppression for NoSuppression {
    async fn suppressed(
        &self,
        _: u64,
        _: SendKind,
        _: &[&str],
    ) -> Result<HashMap<String, SkipReason>> {
        Ok(HashMap::new())
    }
}

/// A fixed list, lower-case addresses to reasons: for tests and embedders that
/// keep suppression elsewhere. Unsubscribes and mass-email blocks apply to mass
/// mail only; the blocklist to all mail.
#[derive(Debug, Clone, Default)]
pub struct StaticSuppression(pub HashMap<String, SkipReason>);

impl Suppression for StaticSuppression {
    async fn suppressed(
        &self,
        _: u64,
        kind: SendKind,
        emails: &[&str],
    ) -> Result<HashMap<String, SkipReason>> {
        Ok(emails
            .iter()
            .filter_map(|e| {
                let key = e.to_ascii_lowercase();
                let reason = *self.0.get(&key)?;
                (reason == SkipReason::Blocklisted || kind == SendKind::Mass)
                    .then_some((key, reason))
            })
            .collect())
    }
}

/// A send to store: everything but its recipients.
#[derive(Debug, Clone)]
pub struct NewSend {
    /// The account.
    pub account: u64,
    /// Individual or mass.
    pub kind: SendKind,
    /// The compiled template, stored once.
    pub template: CompiledTemplate,
    /// The CRM user and whether their domain is verified.
    pub sender: SenderIdentity,
    /// Campaign number (the event log's campaign id), if any.
    pub campaign: Option<CampaignId>,
    /// Now, or when.
    pub when: When,
    /// The template's subject as written (for the scheduled list).
    pub subject: String,
    /// Files sent with every message of the send, stored once.
    pub attachments: Vec<Attachment>,
}

/// One recipient: the mailbox and the merged values.
#[derive(Debug, Clone)]
pub struct NewRecipient {
    /// Who.
    pub to: Mailbox,
    /// Their merged values (resolved when the send is created).
    pub values: MergeValues,
    /// The CRM's person id, carried into the events of this message.
    pub person: Option<String>,
}

/// What [`Outbox::enqueue`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The send's number.
    pub send_id: i64,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Messages queued.
    pub queued: usize,
    /// Recipients skipped, by reason.
    pub skipped: HashMap<SkipReason, usize>,
    /// Batches the queued messages were split into.
    pub batches: usize,
}

/// A message a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The outbox row's id, also the message number of tokens and Message-ID.
    pub id: i64,
    /// The send.
    pub send_id: i64,
    /// The account.
    pub account: u64,
    /// Individual or mass.
    pub lane: Lane,
    /// The recipient.
    pub to: Mailbox,
    /// The merged values.
    pub values: MergeValues,
    /// Attempts before this one.
    pub attempts: u32,
    /// When the first attempt was made, if one was.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The CRM's person id.
    pub person: Option<String>,
}

/// What a send is, as stored.
#[derive(Debug, Clone)]
pub struct StoredSend {
    /// The send's number.
    pub id: i64,
    /// The account.
    pub account: u64,
    /// Individual or mass.
    pub kind: SendKind,
    /// The compiled template.
    pub template: CompiledTemplate,
    /// The CRM user.
    pub sender: SenderIdentity,
    /// Campaign number (the event log's campaign id), if any.
    pub campaign: Option<CampaignId>,
    /// Files sent with every message.
    pub attachments: Vec<Attachment>,
}

/// One line of the scheduled list (R-SND-5), as data: a UI words it (the
/// seed's "* Broadcast *" and "In progress n/m" are the API's wording).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledSend {
    /// The send's number.
    pub id: i64,
    /// When it is (or was) due.
    pub deferred_until: DateTime<Utc>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Recipients (queued, not skipped).
    pub count: usize,
    /// The CRM user's name, else address.
    pub user: String,
    /// The subject as written.
    pub subject: String,
    /// Individual or mass.
    pub kind: SendKind,
    /// The recipient of an individual send (none for mass sends).
    pub recipient: Option<String>,
    /// Messages done (delivered, bounced or failed): sending has started when above 0.
    pub done: usize,
}

const EVENTS_PROCESSED: i64 = 1;
const EVENTS_OUTCOME: i64 = 2;

/// A message whose outcome events the event log has not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvents {
    /// The message.
    pub id: i64,
    /// Its account.
    pub account: u64,
    /// Its recipient.
    pub recipient: String,
    /// Its send.
    pub send_id: i64,
    /// Its state.
    pub state: State,
    /// Its bounce class, if bounced.
    pub bounce_class: Option<BounceClass>,
    /// Why, for a bounced message (none for rows bounced before reasons were kept).
    pub bounce_reason: Option<crate::BounceReason>,
    /// The last reply.
    pub reply: Option<String>,
    /// A `processed` event is owed.
    pub processed: bool,
    /// A `delivered` or bounce event is owed.
    pub outcome: bool,
    /// When the outcome was recorded.
    pub at: DateTime<Utc>,
    /// The CRM's person id.
    pub person: Option<String>,
}

/// A message as the tracking endpoints and inbound mail map it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its account.
    pub account: u64,
    /// Its recipient's address.
    pub recipient: String,
    /// Its send.
    pub send_id: i64,
    /// The CRM's person id, if the send named one.
    pub person: Option<String>,
}

/// A message with the merge values it was sent with (its links need them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageValues {
    /// The message.
    pub message: StoredMessage,
    /// Its merged values.
    pub values: MergeValues,
}

/// Counts of a send's messages by state.
pub type StateCounts = HashMap<State, usize>;

/// The outbox on one database.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: AnyPool,
    /// Where writes go: on SQLite a one-connection pool, so writers queue in
    /// Tokio and wake as soon as the lock is free, instead of sleeping in
    /// SQLite's busy handler; on PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    rules: SendingRules,
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn kind_str(kind: SendKind) -> &'static str {
    match kind {
        SendKind::Individual => "individual",
        SendKind::Mass => "mass",
    }
}

/// A stored account number; a negative one is a corrupt row, never account 0.
pub(crate) fn account_u64(account: i64) -> Result<u64> {
    u64::try_from(account).map_err(|_| Error::Corrupt(format!("account number {account}")))
}

/// A stored count; a negative one is a corrupt row.
fn count_of(n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Corrupt(format!("count {n}")))
}

/// A stored send kind (`individual`, `mass`); anything else is a corrupt row.
fn kind_of(kind: &str) -> Result<SendKind> {
    match kind {
        "individual" => Ok(SendKind::Individual),
        "mass" => Ok(SendKind::Mass),
        other => Err(Error::Corrupt(format!("unknown send kind `{other}`"))),
    }
}

fn account_i64(account: u64) -> Result<i64> {
    i64::try_from(account).map_err(|_| Error::Invalid {
        field: "account",
        rule: "must be below 2^63".into(),
    })
}

impl Outbox {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `sqlite::memory:`,
    /// `postgres://…`), with up to `max_connections`. SQLite is put in WAL mode
    /// with a 5 s busy timeout. Does not migrate: call [`Outbox::migrate`].
    pub async fn connect(url: &str, max_connections: u32, rules: SendingRules) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Invalid {
                field: "database_url",
                rule: format!("`{url}` must start with sqlite: or postgres:"),
            });
        };
        let options = |max: u32| {
            let mut options = AnyPoolOptions::new().max_connections(max.max(1));
            if backend == Backend::Sqlite {
                options = options.after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;").await?;
                        Ok(())
                    })
                });
            }
            options
        };
        let pool = options(max_connections).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => options(1).connect(url).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Outbox {
            pool,
            writer,
            backend,
            rules,
        })
    }

    /// The account store on this outbox's database.
    pub fn accounts(&self) -> crate::Accounts {
        crate::Accounts::new(self.pool.clone(), self.writer.clone())
    }

    /// The pool that writes go through (see [`Outbox::pool`] for reads): share
    /// it with other crates writing the same database, such as the event log.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The database behind this outbox.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The sending rules this outbox enforces.
    pub fn rules(&self) -> &SendingRules {
        &self.rules
    }

    /// The pool, for the crates that share the database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs this crate's migrations (versions 1000-1999), tolerating other
    /// crates' rows in `_sqlx_migrations`.
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Accepts a send (R-SND-1, R-SND-2): checks the sending rules at `now`,
    /// consults `suppression`, stores the template once and one row per
    /// recipient, in batches of at most `rules.batch_size`, in one transaction.
    pub async fn enqueue(
        &self,
        send: NewSend,
        recipients: Vec<NewRecipient>,
        suppression: &impl Suppression,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let mut tx = self.writer.begin().await?;
        let accepted = self
            .enqueue_in(&mut tx, send, recipients, suppression, now)
            .await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// [`Outbox::enqueue`] inside the caller's transaction `tx` (opened on
    /// [`Outbox::writer`]), so other writes commit or roll back with the send.
    pub async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        send: NewSend,
        recipients: Vec<NewRecipient>,
        suppression: &impl Suppression,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let due = self.rules.check(now, recipients.len(), send.when)?;
        if send.kind == SendKind::Mass && !send.template.has_unsubscribe_link() {
            return Err(Error::Invalid {
                field: "template",
                rule: "a mass send needs an unsubscribe link (R-MSG-6)".into(),
            });
        }
        let account = account_i64(send.account)?;
        let emails: Vec<&str> = recipients.iter().map(|r| r.to.address.as_str()).collect();
        let suppressed = suppression
            .suppressed(send.account, send.kind, &emails)
            .await?;
        let mut skipped: HashMap<SkipReason, usize> = HashMap::new();
        let mut queued = Vec::with_capacity(recipients.len());
        let mut skipped_rows = Vec::new();
        let mut seen = HashSet::new();
        for r in &recipients {
            let key = r.to.address.as_str().to_ascii_lowercase();
            if !seen.insert(key.clone()) {
                continue; // listed twice: one email
            }
            if let Some(reason) = suppressed.get(&key) {
                *skipped.entry(*reason).or_default() += 1;
                skipped_rows.push((r, Some(*reason)));
            } else {
                queued.push((r, None));
            }
        }
        let queued_count = queued.len();
        let rows: Vec<(&NewRecipient, Option<SkipReason>)> =
            queued.into_iter().chain(skipped_rows).collect();
        let template = serde_json::to_string(&send.template)?;
        let sender = serde_json::to_string(&send.sender)?;
        let attachments = serde_json::to_string(&send.attachments)?;
        let campaign = send.campaign.map(|c| c.0);
        let row = sqlx::query(
            "INSERT INTO herald_sends (account, kind, user_name, user_email, subject, template, sender, campaign, created_at, scheduled_at, total, skipped, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(account)
        .bind(kind_str(send.kind))
        .bind(send.sender.user.name.clone())
        .bind(send.sender.user.address.as_str().to_owned())
        .bind(send.subject.clone())
        .bind(template)
        .bind(sender)
        .bind(campaign)
        .bind(millis(now))
        .bind(millis(due))
        .bind(queued_count as i64)
        .bind(skipped.values().sum::<usize>() as i64)
        .bind(attachments)
        .fetch_one(&mut **tx)
        .await?;
        let send_id: i64 = row.try_get(0)?;
        let batch_size = self.rules.batch_size.max(1);
        let lane = kind_str(send.kind);
        // A few hundred parameters a statement (see crate::sql).
        const ROWS_PER_STATEMENT: usize = 64;
        for (chunk_no, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut sql = Sql::new(self.backend);
            sql.push(
                "INSERT INTO herald_outbox (send_id, account, lane, batch, recipient_email, recipient_name, merge_values, due_at, updated_at, state, reply, person) VALUES ",
            );
            for (i, (r, skip)) in chunk.iter().enumerate() {
                let index = chunk_no * ROWS_PER_STATEMENT + i;
                // Skipped recipients are kept as rows (state `skipped`, the reason as
                // reply) in no batch, so the send's log shows them.
                let batch = if skip.is_some() {
                    -1
                } else {
                    (index / batch_size) as i64
                };
                let state = if skip.is_some() {
                    State::Skipped
                } else {
                    State::Queued
                };
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([
                    Bind::from(send_id),
                    account.into(),
                    lane.into(),
                    batch.into(),
                    r.to.address.as_str().into(),
                    r.to.name.clone().into(),
                    serde_json::to_string(&r.values)?.into(),
                    millis(due).into(),
                    millis(now).into(),
                    state.as_str().into(),
                    skip.map(SkipReason::as_str).into(),
                    r.person.clone().into(),
                ]);
            }
            let q = sql.query();
            q.execute(&mut **tx).await?;
        }
        Ok(Accepted {
            send_id,
            due_at: due,
            queued: queued_count,
            skipped,
            batches: self.rules.batches(queued_count),
        })
    }

    /// Claims up to `limit` due messages of `lane` for `worker` until
    /// `now + lease`: queued or deferred rows whose time has come, and claimed
    /// rows whose lease ran out. On PostgreSQL concurrent workers skip each
    /// other's rows (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    pub async fn claim(
        &self,
        worker: &str,
        lane: Lane,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE herald_outbox SET state = 'claimed', worker = $1, lease_until = $2, updated_at = $3
             WHERE id IN (
                SELECT id FROM herald_outbox
                WHERE lane = $4 AND ((state IN ('queued', 'deferred') AND due_at <= $3) OR (state = 'claimed' AND lease_until <= $3))
                ORDER BY due_at, id LIMIT $5{lock})
             RETURNING id, send_id, account, lane, recipient_email, recipient_name, merge_values, attempts, first_attempt_at, person"
        );
        let lane_name = match lane {
            Lane::Individual => "individual",
            Lane::Mass => "mass",
        };
        let rows = sqlx::query(&sql)
            .bind(worker.to_owned())
            .bind(millis(now + lease))
            .bind(millis(now))
            .bind(lane_name)
            .bind(limit as i64)
            .fetch_all(&self.writer)
            .await?;
        let mut out = rows
            .iter()
            .map(claimed_from_row)
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Records the outcome of an attempt on message `id`, if `worker` still
    /// holds its claim. Returns whether it did (false: the lease was lost and
    /// another worker may hold the message now).
    pub async fn record(
        &self,
        worker: &str,
        id: i64,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (state, due, class, why, reply) = match outcome {
            Outcome::Delivered { reply } => (State::Delivered, None, None, None, reply.clone()),
            Outcome::Deferred { retry_at, reply } => (
                State::Deferred,
                Some(millis(*retry_at)),
                None,
                None,
                reply.clone(),
            ),
            Outcome::Bounced {
                class,
                reason,
                reply,
            } => (
                State::Bounced,
                None,
                Some(class.as_str()),
                Some(reason.as_str()),
                reply.clone(),
            ),
            Outcome::Failed { reason } => (State::Failed, None, None, None, reason.clone()),
        };
        // The events this outcome owes the event log (see `pending_events`).
        let processed = i64::from(state != State::Failed) * EVENTS_PROCESSED;
        let terminal = i64::from(matches!(
            state,
            State::Delivered | State::Bounced | State::Failed
        )) * EVENTS_OUTCOME;
        let result = sqlx::query(
            "UPDATE herald_outbox SET state = $1, due_at = COALESCE($2, due_at), bounce_class = $3, bounce_reason = $4, reply = $5,
                events_pending = events_pending | (CASE WHEN attempts = 0 THEN $6 ELSE 0 END) | $7,
                attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $8),
                lease_until = NULL, worker = NULL, updated_at = $8
             WHERE id = $9 AND state = 'claimed' AND worker = $10",
        )
        .bind(state.as_str())
        .bind(due)
        .bind(class)
        .bind(why)
        .bind(reply)
        .bind(processed)
        .bind(terminal)
        .bind(millis(now))
        .bind(id)
        .bind(worker.to_owned())
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Messages whose outcome events are not recorded yet and were last
    /// touched before `older_than` (so a live worker's batch in flight is not
    /// taken twice): what the event log must record after a crash.
    pub async fn pending_events(
        &self,
        older_than: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingEvents>> {
        let rows = sqlx::query(
            "SELECT id, account, recipient_email, send_id, state, bounce_class, bounce_reason, reply, events_pending, updated_at, person FROM herald_outbox
             WHERE events_pending <> 0 AND updated_at < $1 ORDER BY id LIMIT $2",
        )
        .bind(millis(older_than))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let account: i64 = r.try_get("account")?;
                let class: Option<String> = r.try_get("bounce_class")?;
                let why: Option<String> = r.try_get("bounce_reason")?;
                let state: String = r.try_get("state")?;
                Ok(PendingEvents {
                    id: r.try_get("id")?,
                    account: account_u64(account)?,
                    recipient: r.try_get("recipient_email")?,
                    send_id: r.try_get("send_id")?,
                    state: State::parse(&state)?,
                    bounce_class: match class.as_deref() {
                        Some("hard") => Some(BounceClass::Hard),
                        Some("soft") => Some(BounceClass::Soft),
                        Some("blocked") => Some(BounceClass::Blocked),
                        _ => None,
                    },
                    bounce_reason: why.as_deref().and_then(crate::BounceReason::parse),
                    reply: r.try_get("reply")?,
                    processed: r.try_get::<i64, _>("events_pending")? & EVENTS_PROCESSED != 0,
                    outcome: r.try_get::<i64, _>("events_pending")? & EVENTS_OUTCOME != 0,
                    at: from_millis(r.try_get("updated_at")?),
                    person: r.try_get("person")?,
                })
            })
            .collect()
    }

    /// Marks the events of messages `ids` recorded, inside the transaction that
    /// records them (`tx`, on this outbox's database).
    pub async fn clear_pending_events(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: &[i64],
    ) -> Result<()> {
        for chunk in ids.chunks(300) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE herald_outbox SET events_pending = 0 WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Gives back the claims `worker` holds on `ids` without an attempt (on
    /// shutdown), so other workers can take them at once.
    pub async fn release(&self, worker: &str, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let mut released = 0;
        for id in ids {
            let r = sqlx::query(
                "UPDATE herald_outbox SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
                    lease_until = NULL, worker = NULL, updated_at = $1
                 WHERE id = $2 AND state = 'claimed' AND worker = $3",
            )
            .bind(millis(now))
            .bind(*id)
            .bind(worker.to_owned())
            .execute(&self.writer)
            .await?;
            released += r.rows_affected();
        }
        Ok(released)
    }

    /// Message `id`: its account, recipient, send and CRM person.
    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(
            "SELECT account, recipient_email, send_id, person FROM herald_outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| stored_message(&r)).transpose()
    }

    /// What a tracking link of message `id` needs: the message and its merged values.
    pub async fn message_values(&self, id: i64) -> Result<Option<MessageValues>> {
        let row = sqlx::query("SELECT account, recipient_email, send_id, person, merge_values FROM herald_outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let values: String = r.try_get("merge_values")?;
            Ok(MessageValues {
                message: stored_message(&r)?,
                values: serde_json::from_str(&values)?,
            })
        })
        .transpose()
    }

    /// The stored send `send_id` (its template and sender), whatever its account.
    pub async fn send(&self, send_id: i64) -> Result<StoredSend> {
        let row = sqlx::query(
            "SELECT id, account, kind, template, sender, campaign, attachments FROM herald_sends WHERE id = $1",
        )
        .bind(send_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound {
            what: "send",
            id: send_id,
        })?;
        stored_send(&row)
    }

    /// The send `send_id` of `account`, to view its content (R-SND-5). Another
    /// account's send is not found.
    pub async fn view(&self, account: u64, send_id: i64) -> Result<StoredSend> {
        let send = self.send(send_id).await?;
        if send.account != account {
            return Err(Error::NotFound {
                what: "send",
                id: send_id,
            });
        }
        Ok(send)
    }

    /// Whether the database answers (a readiness probe: one trivial query).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Messages not yet finished, all sends and accounts: queued, claimed or deferred.
    pub async fn pending(&self) -> Result<u64> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM herald_outbox WHERE state IN ('queued', 'claimed', 'deferred')",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(count_of(n)? as u64)
    }

    /// Counts of the messages of `send_id` by state.
    pub async fn counts(&self, send_id: i64) -> Result<StateCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM herald_outbox WHERE send_id = $1 GROUP BY state",
        )
        .bind(send_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::new();
        for row in rows {
            let state: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            out.insert(State::parse(&state)?, count_of(n)?);
        }
        Ok(out)
    }

    /// The scheduled list of `account` (R-SND-5): sends with messages still to
    /// go, soonest first.
    pub async fn scheduled(&self, account: u64) -> Result<Vec<ScheduledSend>> {
        let rows = sqlx::query(
            "SELECT s.id, s.scheduled_at, s.created_at, s.total, s.user_name, s.user_email, s.subject, s.kind,
                    COUNT(CASE WHEN o.state IN ('delivered', 'bounced', 'failed') THEN 1 END) AS done,
                    COUNT(CASE WHEN o.state IN ('queued', 'claimed', 'deferred') THEN 1 END) AS pending,
                    MIN(o.recipient_email) AS one_recipient
             FROM herald_sends s JOIN herald_outbox o ON o.send_id = s.id
             WHERE s.account = $1 AND s.cancelled_at IS NULL
             GROUP BY s.id, s.scheduled_at, s.created_at, s.total, s.user_name, s.user_email, s.subject, s.kind
             ORDER BY s.scheduled_at, s.id",
        )
        .bind(account_i64(account)?)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let pending: i64 = row.try_get("pending")?;
            if pending == 0 {
                continue;
            }
            let kind = kind_of(&row.try_get::<String, _>("kind")?)?;
            let name: Option<String> = row.try_get("user_name")?;
            let email: String = row.try_get("user_email")?;
            out.push(ScheduledSend {
                id: row.try_get("id")?,
                deferred_until: from_millis(row.try_get("scheduled_at")?),
                created: from_millis(row.try_get("created_at")?),
                count: count_of(row.try_get("total")?)?,
                done: count_of(row.try_get("done")?)?,
                user: name.unwrap_or(email),
                subject: row.try_get("subject")?,
                kind,
                recipient: match kind {
                    SendKind::Mass => None,
                    SendKind::Individual => row.try_get("one_recipient")?,
                },
            });
        }
        Ok(out)
    }

    /// Deletes every send and message of `account` (R-ACC-1: an account's
    /// deletion). Messages a worker holds at that moment are deleted too; its
    /// later `record` finds no row and records nothing. Returns the number of
    /// messages removed.
    pub async fn delete_account(&self, account: u64) -> Result<u64> {
        let account = account_i64(account)?;
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM herald_outbox WHERE account = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM herald_sends WHERE account = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Deletes send `send_id` of `account` (R-SND-5): what is not yet sent is
    /// cancelled, and the send's logged emails (the outbox rows) are deleted.
    /// Returns how many unsent messages were cancelled; an error when nothing is
    /// left to cancel.
    pub async fn delete(&self, account: u64, send_id: i64, now: DateTime<Utc>) -> Result<u64> {
        let send = self.view(account, send_id).await?;
        let mut tx = self.writer.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE herald_outbox SET state = 'cancelled', updated_at = $1
             WHERE send_id = $2 AND (state IN ('queued', 'deferred') OR (state = 'claimed' AND lease_until <= $1))",
        )
        .bind(millis(now))
        .bind(send.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let in_flight: i64 = sqlx::query(
            "SELECT COUNT(*) FROM herald_outbox WHERE send_id = $1 AND state = 'claimed'",
        )
        .bind(send.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if cancelled == 0 && in_flight == 0 {
            tx.rollback().await?;
            return Err(Error::NothingToCancel { send_id });
        }
        if in_flight == 0 {
            sqlx::query("DELETE FROM herald_outbox WHERE send_id = $1")
                .bind(send.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM herald_sends WHERE id = $1")
                .bind(send.id)
                .execute(&mut *tx)
                .await?;
        } else {
            // Messages in flight finish (or their lease runs out); the send stays,
            // marked cancelled, so their outcome can still be recorded.
            sqlx::query("UPDATE herald_sends SET cancelled_at = $1 WHERE id = $2")
                .bind(millis(now))
                .bind(send.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(cancelled)
    }
}

fn claimed_from_row(row: &AnyRow) -> Result<Claimed> {
    let lane: String = row.try_get("lane")?;
    let name: Option<String> = row.try_get("recipient_name")?;
    let email: String = row.try_get("recipient_email")?;
    let values: String = row.try_get("merge_values")?;
    let account: i64 = row.try_get("account")?;
    let attempts: i64 = row.try_get("attempts")?;
    let first: Option<i64> = row.try_get("first_attempt_at")?;
    Ok(Claimed {
        id: row.try_get("id")?,
        send_id: row.try_get("send_id")?,
        account: account_u64(account)?,
        lane: match kind_of(&lane)? {
            SendKind::Mass => Lane::Mass,
            SendKind::Individual => Lane::Individual,
        },
        to: Mailbox::for_field("recipient", name.as_deref(), &email)
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        values: serde_json::from_str(&values)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        first_attempt_at: first.map(from_millis),
        person: row.try_get("person")?,
    })
}

fn stored_message(r: &AnyRow) -> Result<StoredMessage> {
    Ok(StoredMessage {
        account: account_u64(r.try_get("account")?)?,
        recipient: r.try_get("recipient_email")?,
        send_id: r.try_get("send_id")?,
        person: r.try_get("person")?,
    })
}

fn stored_send(row: &AnyRow) -> Result<StoredSend> {
    let kind: String = row.try_get("kind")?;
    let template: String = row.try_get("template")?;
    let sender: String = row.try_get("sender")?;
    let account: i64 = row.try_get("account")?;
    let campaign: Option<i64> = row.try_get("campaign")?;
    let campaign = campaign.map(CampaignId);
    let attachments: String = row.try_get("attachments")?;
    Ok(StoredSend {
        id: row.try_get("id")?,
        account: account_u64(account)?,
        kind: kind_of(&kind)?,
        template: serde_json::from_str(&template)?,
        sender: serde_json::from_str(&sender)?,
        campaign,
        attachments: serde_json::from_str(&attachments)?,
    })
}
