//! Inbound bounces and complaints (R-API-3, R-EVT-5): a raw message, as an MTA
//! hands it over, turned into events on the message it is about.

use crate::service::{Error, Herald};
use herald_eventlog::inbound::{self, InboundKind};
use herald_eventlog::{EventKind, NewEvent};
use serde::Serialize;

/// What an inbound message led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundOutcome {
    /// What the message is (`herald-worker classify`'s `kind` and `recipients`).
    #[serde(flatten)]
    pub kind: InboundKind,
    /// The message it was mapped to (account, outbox number), if any.
    pub message: Option<(u64, i64)>,
    /// The events recorded.
    pub events: Vec<EventKind>,
}

/// Parses `raw`, maps it to its message through the signed VERP token, and
/// records the bounce or complaint events (which also update suppression). A
/// report that maps to no message, or to one no longer in the outbox, records
/// nothing.
pub async fn ingest(herald: &Herald, raw: &[u8]) -> Result<InboundOutcome, Error> {
    let parsed = inbound::parse(raw, &herald.tracker);
    let now = herald.clock.now();
    let mut events = Vec::new();
    let mut mapped = None;
    if let Some(r) = parsed.message
        && let Ok(id) = i64::try_from(r.message)
        && let Some(message) = herald.outbox.message(id).await?
        && message.account == r.account
    {
        let herald_schedule::StoredMessage {
            account,
            recipient,
            send_id,
            person,
        } = message;
        mapped = Some((account, id));
        let campaign = herald
            .outbox
            .send(send_id)
            .await
            .ok()
            .and_then(|s| s.campaign);
        let event = |kind: EventKind, reply: Option<String>| {
            let mut e = NewEvent::new(kind, now, account, &recipient);
            e.message = Some(id);
            e.campaign = campaign;
            e.person = person.clone();
            e.reply = reply;
            e
        };
        match &parsed.kind {
            InboundKind::Dsn { recipients } => {
                // One message has one recipient: the entry about that address,
                // else the first failed one (a forwarded address reports as
                // its final recipient).
                // Delays are warnings (the reporter keeps trying): no event.
                let failed = || {
                    recipients
                        .iter()
                        .filter(|d| d.class.is_some() && d.action == "failed")
                };
                let about = failed()
                    .find(|d| d.recipient.eq_ignore_ascii_case(&recipient))
                    .or_else(|| failed().next());
                if let Some(d) = about
                    && let Some(class) = d.class
                {
                    let mut e = event(
                        EventKind::of_bounce(class),
                        d.diagnostic.clone().or_else(|| d.status.clone()),
                    );
                    e.reason = d.reason;
                    events.push(e);
                }
            }
            InboundKind::Complaint { feedback_type } => events.push(event(
                EventKind::SpamComplaint,
                Some(format!("feedback-type: {feedback_type}")),
            )),
            InboundKind::AutoReply | InboundKind::Other => {}
        }
    }
    herald.events.ingest(&events).await?;
    Ok(InboundOutcome {
        kind: parsed.kind,
        message: mapped,
        events: events.iter().map(|e| e.kind).collect(),
    })
}
