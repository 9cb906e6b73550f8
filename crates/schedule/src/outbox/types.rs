//! What the outbox takes and gives: sends, recipients, messages, states and
//! outcomes.

use super::*;

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

    pub(crate) fn parse(s: &str) -> Result<Self> {
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
    /// The receiving site the recipient's domain belonged to when claimed
    /// (`None` until a worker has resolved the domain).
    pub site: Option<String>,
}

/// What one claim took, and when to ask again.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The claimed messages, by id.
    pub messages: Vec<Claimed>,
    /// When fewer were taken than asked because a rate (global, an account's,
    /// a site's) did not let more go: the earliest time one of those rates
    /// lets another message go. A worker sleeps until then, not holding claims.
    pub throttled_until: Option<DateTime<Utc>>,
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
    /// The campaign its messages are counted in.
    pub campaign: Option<herald_message::CampaignId>,
    /// Email or SMS (an SMS send's subject is its text as written, its
    /// recipient a number).
    pub channel: Channel,
}

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
    /// Email or SMS: a text's events are the SMS kinds.
    pub channel: Channel,
    /// A text's segments (none for email).
    pub segments: Option<u32>,
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
