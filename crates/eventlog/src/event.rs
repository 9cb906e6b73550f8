//! Events (R-EVT-1).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// Accepted for sending.
    Processed,
    /// Accepted by the receiving server.
    Delivered,
    /// The open pixel was fetched.
    Open,
    /// A tracked link was followed.
    Click,
    /// Temporary failures past the give-up age, or a DSN with a 4.x.x status.
    SoftBounce,
    /// The address does not work.
    HardBounce,
    /// Refused as spam or by policy.
    Blocked,
    /// The recipient reported the email as spam (ARF).
    SpamComplaint,
    /// The recipient unsubscribed.
    Unsubscribe,
    /// Herald could not build, sign or route the message (an attachment over
    /// the platform limit with no fallback relay, a merge that cannot be
    /// rendered, …): nothing was sent; `reply` says why.
    Failed,
    /// An SMS was accepted for sending (its first attempt at the gateway).
    SmsProcessed,
    /// The SMS gateway accepted the text.
    SmsSent,
    /// The gateway reported the text delivered to the handset.
    SmsDelivered,
    /// The gateway refused the text, or reported it undelivered, or Herald
    /// gave up retrying it: `reply` says why.
    SmsFailed,
    /// The recipient opted out of SMS (a STOP reply the gateway reported, or
    /// the CRM): the account sends no more texts to the number.
    SmsOptOut,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 15] = [
        EventKind::Processed,
        EventKind::Delivered,
        EventKind::Open,
        EventKind::Click,
        EventKind::SoftBounce,
        EventKind::HardBounce,
        EventKind::Blocked,
        EventKind::SpamComplaint,
        EventKind::Unsubscribe,
        EventKind::Failed,
        EventKind::SmsProcessed,
        EventKind::SmsSent,
        EventKind::SmsDelivered,
        EventKind::SmsFailed,
        EventKind::SmsOptOut,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Processed => "processed",
            EventKind::Delivered => "delivered",
            EventKind::Open => "open",
            EventKind::Click => "click",
            EventKind::SoftBounce => "soft_bounce",
            EventKind::HardBounce => "hard_bounce",
            EventKind::Blocked => "blocked",
            EventKind::SpamComplaint => "spam_complaint",
            EventKind::Unsubscribe => "unsubscribe",
            EventKind::Failed => "failed",
            EventKind::SmsProcessed => "sms_processed",
            EventKind::SmsSent => "sms_sent",
            EventKind::SmsDelivered => "sms_delivered",
            EventKind::SmsFailed => "sms_failed",
            EventKind::SmsOptOut => "sms_opt_out",
        }
    }

    /// Whether it is an SMS event (`recipient` is then an E.164 number).
    pub fn is_sms(self) -> bool {
        matches!(
            self,
            EventKind::SmsProcessed
                | EventKind::SmsSent
                | EventKind::SmsDelivered
                | EventKind::SmsFailed
                | EventKind::SmsOptOut
        )
    }

    /// The event of a bounce of this class.
    pub fn of_bounce(class: herald_schedule::BounceClass) -> Self {
        match class {
            herald_schedule::BounceClass::Hard => EventKind::HardBounce,
            herald_schedule::BounceClass::Soft => EventKind::SoftBounce,
            herald_schedule::BounceClass::Blocked => EventKind::Blocked,
        }
    }

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// The account.
    pub account: u64,
    /// The outbox message number, when known.
    pub message: Option<i64>,
    /// The campaign, when known.
    pub campaign: Option<herald_message::CampaignId>,
    /// The recipient's address.
    pub recipient: String,
    /// The CRM's person id, when known.
    pub person: Option<String>,
    /// For clicks: the link's index in the template.
    pub link: Option<u16>,
    /// For clicks: the link's label ("Related to"). For unsubscribes: the
    /// scope, [`crate::UNSUBSCRIBE_CAMPAIGN`] for this campaign only; none
    /// for all mass mail of the account.
    pub label: Option<String>,
    /// For opens and clicks: the client's IP.
    pub ip: Option<String>,
    /// For opens and clicks: the client's User-Agent.
    pub user_agent: Option<String>,
    /// For bounces and blocks: the SMTP reply or the DSN's diagnostic.
    pub reply: Option<String>,
    /// For bounces and blocks: why ([`herald_schedule::BounceRules::judge`]).
    pub reason: Option<herald_schedule::BounceReason>,
    /// Seconds from delivery to this event, when known (for bot rules).
    pub since_delivery_secs: Option<i64>,
    /// For SMS events: the segments the text was sent as.
    pub segments: Option<u32>,
    /// For SMS events: what the gateway said the text cost, as it wrote it
    /// (a decimal such as `0.0450`), when it reported one.
    pub cost: Option<String>,
    /// The currency of `cost` (ISO 4217, such as `EUR`).
    pub currency: Option<String>,
}

impl NewEvent {
    /// An event with only the required fields set.
    pub fn new(kind: EventKind, at: DateTime<Utc>, account: u64, recipient: &str) -> Self {
        NewEvent {
            kind,
            at,
            account,
            message: None,
            campaign: None,
            recipient: recipient.to_owned(),
            person: None,
            link: None,
            label: None,
            ip: None,
            user_agent: None,
            reply: None,
            reason: None,
            since_delivery_secs: None,
            segments: None,
            cost: None,
            currency: None,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Its number, increasing with time of recording.
    pub id: i64,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// The outbox message number.
    pub message: Option<i64>,
    /// The campaign.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub campaign: Option<herald_message::CampaignId>,
    /// The recipient.
    pub recipient: String,
    /// The CRM's person id.
    pub person: Option<String>,
    /// The link's index.
    pub link: Option<i64>,
    /// The link's label.
    pub label: Option<String>,
    /// The client's IP.
    pub ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The SMTP reply or diagnostic.
    pub reply: Option<String>,
    /// For bounces and blocks: why (`user_unknown`, `mailbox_full`, …).
    pub reason: Option<herald_schedule::BounceReason>,
    /// Whether it is machine-made (a bot or a privacy prefetch): not counted
    /// as a person's open or click.
    pub bot: bool,
    /// Who made it: `person`, `prefetch` (Apple Mail Privacy Protection) or `bot`.
    pub origin: crate::bots::Origin,
    /// The client's browser, from the User-Agent.
    pub browser: Option<String>,
    /// The client's operating system.
    pub os: Option<String>,
    /// The client's device class (`pc`, `smartphone`, …).
    pub device: Option<String>,
    /// The IP's ISO country code, when a GeoIP database is configured.
    pub country: Option<String>,
    /// The IP's city.
    pub city: Option<String>,
    /// For SMS events: the segments the text was sent as.
    pub segments: Option<i64>,
    /// For SMS events: the cost the gateway reported, as it wrote it.
    pub cost: Option<String>,
    /// The currency of `cost`.
    pub currency: Option<String>,
}
