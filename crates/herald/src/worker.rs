//! The delivery loop (R-SND-4, R-SND-6): claim due messages, render them from
//! the stored template and merged values, DKIM-sign, deliver, record the
//! outcome. Each lane (individual, mass) has its own slots, so individual mail
//! never waits behind a newsletter's throttle.

use crate::service::{Error, Herald};
use crate::transport::Delivery;
use herald_eventlog::{EventKind, NewEvent};
use herald_message::{BuildParams, MessageRef, Route};
use herald_schedule::{Claimed, Lane, Outcome, StoredSend, outcome};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What a worker did, counted.
#[derive(Debug, Default)]
pub struct Stats {
    /// Delivered (2xx).
    pub delivered: AtomicU64,
    /// Deferred for a retry.
    pub deferred: AtomicU64,
    /// Bounced (hard, soft or blocked).
    pub bounced: AtomicU64,
    /// Failed to build or sign.
    pub failed: AtomicU64,
    /// Outcomes not recorded because the claim was lost.
    pub lost_claims: AtomicU64,
    /// Claims given back unattempted at shutdown (claimed, not yet started).
    pub released: AtomicU64,
    /// Attempts the receiving side refused before RCPT TO (the greeting, EHLO,
    /// STARTTLS, AUTH or MAIL FROM): a problem on the sending side, logged as
    /// a warning each time, never a bounce.
    pub refused_sessions: AtomicU64,
    /// Texts the SMS gateway accepted.
    pub sms_sent: AtomicU64,
    /// Texts the gateway did not take this time (408, 429, 5xx, no answer): retried.
    pub sms_deferred: AtomicU64,
    /// Texts the gateway refused, or given up on.
    pub sms_failed: AtomicU64,
    /// Whether the loop's last round reached the database (false from a
    /// storage error until a round succeeds again): the worker's readiness.
    pub ready: std::sync::atomic::AtomicBool,
}

impl Stats {
    /// Whether the worker is ready (its last round reached the database).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The counters and readiness in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP herald_worker_ready Whether the worker's last round reached the database.\n# TYPE herald_worker_ready gauge\n");
        out.push_str(&format!(
            "herald_worker_ready {}\n",
            u8::from(self.is_ready())
        ));
        out.push_str("# HELP herald_worker_messages_total Messages by what happened to them.\n# TYPE herald_worker_messages_total counter\n");
        for (what, v) in [
            ("delivered", &self.delivered),
            ("deferred", &self.deferred),
            ("bounced", &self.bounced),
            ("failed", &self.failed),
            ("lost_claim", &self.lost_claims),
            ("released", &self.released),
            ("refused_session", &self.refused_sessions),
        ] {
            out.push_str(&format!(
                "herald_worker_messages_total{{outcome=\"{what}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP herald_worker_texts_total SMS texts by what the gateway did with them.\n# TYPE herald_worker_texts_total counter\n");
        for (what, v) in [
            ("sent", &self.sms_sent),
            ("deferred", &self.sms_deferred),
            ("failed", &self.sms_failed),
        ] {
            out.push_str(&format!(
                "herald_worker_texts_total{{outcome=\"{what}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }

    /// Messages with a recorded outcome.
    pub fn done(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
            + self.deferred.load(Ordering::Relaxed)
            + self.bounced.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

/// Renders, signs and sends one claimed message; returns its outcome and, for
/// direct-to-MX delivery, the attempt and where it went.
async fn attempt(
    herald: &Herald,
    send: &StoredSend,
    m: &Claimed,
    stats: &Stats,
) -> (Outcome, Option<Delivery>) {
    macro_rules! give {
        ($e:expr) => {
            return ($e, None)
        };
    }
    let now = herald.clock.now();
    let Ok(id) = u64::try_from(m.id) else {
        give!(Outcome::Failed {
            reason: format!("corrupt outbox row: message id {}", m.id),
        });
    };
    let message = MessageRef {
        account: m.account,
        message: id,
    };
    let params = BuildParams {
        platform: &herald.platform,
        sender: &send.sender,
        to: &m.to,
        reply_to: None,
        kind: send.kind,
        message,
        campaign: send.campaign,
        date: now,
        attachments: &send.attachments,
    };
    let sizes = send.attachments.iter().map(|a| a.data.len() as u64);
    let transport = match (
        herald
            .config
            .attachments
            .route(sizes, herald.fallback.is_some()),
        &herald.fallback,
    ) {
        (Ok(Route::Fallback), Some(fallback)) => fallback,
        (Ok(_), _) => &herald.transport,
        (Err(e), _) => {
            give!(Outcome::Failed {
                reason: e.to_string(),
            });
        }
    };
    let email = match send.template.build(&m.values, &params, &herald.tracker) {
        Ok(e) => e,
        Err(e) => {
            give!(Outcome::Failed {
                reason: format!("building the message: {e}"),
            });
        }
    };
    let signer = match herald
        .signer_for(
            m.account,
            send.sender.user.address.domain(),
            send.sender.domain_verified,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            give!(Outcome::Deferred {
                retry_at: now + chrono::Duration::seconds(60),
                reply: format!("loading the domain's DKIM key: {e}"),
            });
        }
    };
    let signed = match signer.sign_message(&email.message) {
        Ok(s) => s,
        Err(e) => {
            give!(Outcome::Failed {
                reason: format!("signing: {e}"),
            });
        }
    };
    let source = herald.config.delivery.egress.source_for(m.account, m.id);
    let delivery = transport
        .deliver_from(source, &email.envelope, &email.message_id, &signed)
        .await;
    let result = &delivery.attempt;
    if let herald_schedule::Attempt::Reply { code, text, stage } = result
        && *code >= 400
        && !stage.speaks_of_recipient()
    {
        stats.refused_sessions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            message = m.id,
            code,
            reply = %text,
            stage = ?stage,
            "the receiving server refused the session or the sender: check the relay, its credentials and the sender's domain; the message is retried, nobody is bounced"
        );
    }
    let outcome = outcome(
        result,
        m.attempts,
        m.first_attempt_at,
        herald.clock.now(),
        &herald.retry,
    );
    (outcome, Some(delivery))
}

/// What one MX attempt teaches the other workers: a domain resolved just now
/// is recorded with its site (so claims can pass over the site when it is
/// suspended, and draw on its rate), and the reply goes through the back-off
/// rules. A storage error here is logged; the message's outcome does not
/// depend on it.
async fn learn(herald: &Herald, delivery: &Delivery) {
    let Some((destination, fresh)) = &delivery.destination else {
        return;
    };
    let sites = herald.outbox.sites();
    let now = herald.clock.now();
    let site = &destination.site;
    if *fresh {
        let ttl = destination
            .expires
            .saturating_duration_since(std::time::Instant::now());
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        if let Err(e) = sites
            .record(
                &destination.domain,
                &herald_schedule::NewSite {
                    name: &site.name,
                    provider: site.provider.as_deref(),
                    hosts: &site.hosts,
                    limits: &site.stored_limits(),
                },
                expires,
                now,
            )
            .await
        {
            tracing::warn!(error = %e, site = %site.name, "recording the site failed");
        }
    }
    if let Err(e) = herald
        .observer
        .observe(&sites, site, &delivery.attempt, now)
        .await
    {
        tracing::warn!(error = %e, site = %site.name, "recording the site's back-off failed");
    }
}

/// How long the delivery loop and a message's recording wait after a storage
/// error before they try again: doubling from 100 ms up to 5 s.
struct Backoff(std::time::Duration);

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(100);
    const MOST: std::time::Duration = std::time::Duration::from_secs(5);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    /// The wait before the next try (and doubles the one after).
    fn next(&mut self) -> std::time::Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MOST);
        wait
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// Records a message's outcome, riding out a storage outage: the mail has
/// been handed to SMTP, so giving up here would send it again after the
/// lease. Tries for about a minute, then returns the error.
pub(crate) async fn record_with_retries(
    herald: &Herald,
    worker: &str,
    id: i64,
    result: &Outcome,
) -> Result<bool, Error> {
    let mut backoff = Backoff::new();
    let mut tries = 0;
    loop {
        match herald
            .outbox
            .record(worker, id, result, herald.clock.now())
            .await
        {
            Ok(recorded) => return Ok(recorded),
            Err(e) if tries < 15 => {
                tries += 1;
                tracing::warn!(error = %e, message = id, "recording an outcome failed; trying again");
                tokio::time::sleep(backoff.next()).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn process(
    herald: Arc<Herald>,
    send: Arc<StoredSend>,
    m: Claimed,
    stats: Arc<Stats>,
    events: mpsc::UnboundedSender<Vec<NewEvent>>,
) -> Result<(), Error> {
    let worker = &herald.config.worker.id;
    // The claim took only what the shared throttle lets go now: no waiting
    // here while the lease runs.
    let (result, delivery) = attempt(&herald, &send, &m, &stats).await;
    if let Some(d) = &delivery {
        learn(&herald, d).await;
    }
    let counter = match &result {
        Outcome::Delivered { .. } => &stats.delivered,
        Outcome::Deferred { .. } => &stats.deferred,
        Outcome::Bounced { .. } => &stats.bounced,
        Outcome::Failed { .. } => &stats.failed,
    };
    if record_with_retries(&herald, worker, m.id, &result).await? {
        counter.fetch_add(1, Ordering::Relaxed);
        let now = herald.clock.now();
        let event = |kind: EventKind, reply: Option<&str>| {
            let mut e = NewEvent::new(kind, now, m.account, m.to.address.as_str());
            e.message = Some(m.id);
            e.campaign = send.campaign;
            e.person = m.person.clone();
            e.reply = reply.map(str::to_owned);
            e
        };
        // A message's events travel together, so one batch clears its debt whole.
        let mut owed = Vec::with_capacity(2);
        if m.attempts == 0 && !matches!(result, Outcome::Failed { .. }) {
            owed.push(event(EventKind::Processed, None));
        }
        let kind = match &result {
            Outcome::Delivered { .. } => Some((EventKind::Delivered, None, None)),
            Outcome::Bounced {
                class,
                reason,
                reply,
            } => Some((
                EventKind::of_bounce(*class),
                Some(reply.as_str()),
                Some(*reason),
            )),
            // Nothing was sent; the event says why, so the failure is not silent.
            Outcome::Failed { reason } => Some((EventKind::Failed, Some(reason.as_str()), None)),
            Outcome::Deferred { .. } => None,
        };
        if let Some((kind, reply, reason)) = kind {
            let mut e = event(kind, reply);
            e.reason = reason;
            owed.push(e);
        }
        if !owed.is_empty() {
            let _ = events.send(owed);
        }
        tracing::debug!(message = m.id, send = m.send_id, outcome = ?result, "recorded");
    } else {
        stats.lost_claims.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(message = m.id, "claim lost before the outcome was recorded");
    }
    Ok(())
}

/// Records `events` and clears the outbox's debt for their messages in one
/// transaction: either both happen or neither.
pub(crate) async fn record_events(herald: &Herald, events: &[NewEvent]) -> Result<(), Error> {
    let mut ids: Vec<i64> = events.iter().filter_map(|e| e.message).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = herald
        .outbox
        .writer()
        .begin()
        .await
        .map_err(herald_schedule::Error::from)?;
    herald.events.ingest_in(&mut tx, events).await?;
    herald_schedule::Outbox::clear_pending_events(&mut tx, &ids).await?;
    tx.commit().await.map_err(herald_schedule::Error::from)?;
    Ok(())
}

/// Records the events of outcomes that were recorded in the outbox but whose
/// events were not (the worker died before its batch was written), for
/// outcomes older than `worker.event_recovery_secs`, so no live worker's batch
/// is taken twice.
pub async fn recover_events(herald: &Herald) -> Result<u64, Error> {
    let mut recovered = 0;
    let mut campaigns: HashMap<i64, Option<herald_message::CampaignId>> = HashMap::new();
    loop {
        let before = herald.clock.now()
            - chrono::Duration::seconds(herald.config.worker.event_recovery_secs.max(1));
        // Taken inside the transaction that records and clears them: two
        // workers recovering at once never record the same events twice.
        let mut tx = herald
            .outbox
            .writer()
            .begin()
            .await
            .map_err(herald_schedule::Error::from)?;
        let pending = herald_schedule::Outbox::take_pending_events(&mut tx, before, 1_000).await?;
        if pending.is_empty() {
            break;
        }
        let mut events = Vec::new();
        let mut ids = Vec::new();
        for p in &pending {
            ids.push(p.id);
            let campaign = match campaigns.get(&p.send_id) {
                Some(c) => *c,
                None => {
                    let c = herald.outbox.send_campaign(p.send_id).await?;
                    campaigns.insert(p.send_id, c);
                    c
                }
            };
            let event = |kind: EventKind| {
                let mut e = NewEvent::new(kind, p.at, p.account, &p.recipient);
                e.message = Some(p.id);
                e.campaign = campaign;
                e.person = p.person.clone();
                e
            };
            let sms = p.channel == herald_schedule::Channel::Sms;
            let event = |kind: EventKind| {
                let mut e = event(kind);
                e.segments = p.segments;
                e
            };
            if p.processed {
                events.push(event(if sms {
                    EventKind::SmsProcessed
                } else {
                    EventKind::Processed
                }));
            }
            let outcome = match (p.state, p.bounce_class, sms) {
                (herald_schedule::State::Delivered, _, true) => Some(EventKind::SmsSent),
                (herald_schedule::State::Failed, _, true) => Some(EventKind::SmsFailed),
                (_, _, true) => None,
                (herald_schedule::State::Delivered, _, false) => Some(EventKind::Delivered),
                (herald_schedule::State::Bounced, Some(class), false) => {
                    Some(EventKind::of_bounce(class))
                }
                (herald_schedule::State::Failed, _, false) => Some(EventKind::Failed),
                _ => None,
            };
            if let (true, Some(kind)) = (p.outcome, outcome) {
                let mut e = event(kind);
                e.reply = p.reply.clone();
                e.reason = p.bounce_reason;
                events.push(e);
            }
        }
        herald.events.ingest_in(&mut tx, &events).await?;
        herald_schedule::Outbox::clear_pending_events(&mut tx, &ids).await?;
        tx.commit().await.map_err(herald_schedule::Error::from)?;
        recovered += events.len() as u64;
    }
    if recovered > 0 {
        tracing::info!(
            events = recovered,
            "recorded the events a stopped worker owed"
        );
    }
    Ok(recovered)
}

/// A finished message task: a panic is a bug and ends the loop; an error (its
/// outcome could not be recorded even after retries) is logged, and the
/// message is claimed again once its lease runs out.
fn task_done(done: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a message's outcome could not be recorded; it is sent again after its lease");
            Ok(())
        }
        Err(e) => Err(Error::Task(e.to_string())),
    }
}

/// Runs the delivery loop until `shutdown` completes; then finishes what is in
/// flight and returns. A storage error (the database restarting, a connection
/// reset) pauses the loop with back-off (100 ms doubling to 5 s) and never ends
/// it; only a panicking message task does.
pub async fn run(
    herald: Arc<Herald>,
    shutdown: impl Future<Output = ()>,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    let options = herald.config.worker.clone();
    let slots = options.concurrency.max(1);
    // Claim in batches: wait until a quarter of a lane's slots are free (or the
    // lane is idle), so claims do not become one query per finished message.
    let refill = (slots / 4).max(1);
    let lease = chrono::Duration::seconds(options.lease_secs.max(1));
    let poll = std::time::Duration::from_millis(options.poll_ms.max(1));
    let mut individual: JoinSet<Result<(), Error>> = JoinSet::new();
    let mut mass: JoinSet<Result<(), Error>> = JoinSet::new();
    let mut sends: HashMap<i64, Arc<StoredSend>> = HashMap::new();
    // Outcomes become events in batches: one transaction per batch, not per message.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Vec<NewEvent>>();
    // First the events a crashed worker owed (recorded outcomes not yet in the log);
    // the loop below tries again if the database does not answer now.
    if let Err(e) = recover_events(&herald).await {
        tracing::warn!(error = %e, "recovering owed events failed; the loop tries again");
    }
    // Webhooks: the deliveries recorded events owe, sent by every worker
    // (claims skip each other's rows).
    let (hooks_stop, hooks_stopped) = tokio::sync::watch::channel(false);
    let hooks = tokio::spawn(crate::webhooks::run(
        Arc::clone(&herald),
        hooks_stopped.clone(),
    ));
    // SMS: texts claimed under the SMS rate and posted to the gateway.
    let texts = herald.sms.is_some().then(|| {
        tokio::spawn(crate::sms::run(
            Arc::clone(&herald),
            Arc::clone(&stats),
            hooks_stopped,
        ))
    });
    let flusher_herald = Arc::clone(&herald);
    let flusher = tokio::spawn(async move {
        while let Some(first) = events_rx.recv().await {
            // Gather for up to 200 ms (or 1,000 events): few, larger transactions,
            // which matters on SQLite, where they queue behind the outbox's writes.
            let mut batch = first;
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
            while batch.len() < 1_000 {
                match tokio::time::timeout_at(until, events_rx.recv()).await {
                    Ok(Some(more)) => batch.extend(more),
                    Ok(None) | Err(_) => break,
                }
            }
            if let Err(e) = record_events(&flusher_herald, &batch).await {
                // The outbox still owes these events; the next start records them.
                tracing::error!(error = %e, events = batch.len(), "recording events failed; they are recorded at the next start");
            }
        }
    });
    tokio::pin!(shutdown);
    tracing::info!(worker = %options.id, concurrency = slots, "delivery loop started");
    // A storage error (the database restarting, a connection reset) pauses the
    // loop with back-off; it never ends it.
    let mut backoff = Backoff::new();
    let recovery_every = std::time::Duration::from_secs(
        u64::try_from(options.event_recovery_secs.max(1)).unwrap_or(60),
    );
    let mut last_recovery = std::time::Instant::now();
    let mut failed: Option<Error> = None;
    // Claimed messages not started because their send could not be read: they
    // start once the database answers again (not after their lease).
    let mut unstarted: Vec<Claimed> = Vec::new();
    // Per lane: the time the shared throttle said it lets the next message go.
    let mut held_until: [Option<chrono::DateTime<chrono::Utc>>; 2] = [None, None];
    let lane_index = |lane: Lane| usize::from(lane == Lane::Mass);
    loop {
        if let Some(e) = failed.take() {
            let wait = backoff.next();
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "storage error; the delivery loop waits and tries again");
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if last_recovery.elapsed() >= recovery_every {
            if let Err(e) = recover_events(&herald).await {
                failed = Some(e);
                continue;
            }
            // Claims of sends deleted in flight whose worker stopped: cancelled.
            match herald.outbox.sweep_cancelled(herald.clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    messages = n,
                    "cancelled the expired claims of deleted sends"
                ),
                Err(e) => {
                    failed = Some(e.into());
                    continue;
                }
            }
            last_recovery = std::time::Instant::now();
        }
        'lanes: for (lane, set) in [(Lane::Individual, &mut individual), (Lane::Mass, &mut mass)] {
            while let Some(done) = set.try_join_next() {
                task_done(done)?;
            }
            let (mut claimed, waiting): (Vec<Claimed>, Vec<Claimed>) =
                std::mem::take(&mut unstarted)
                    .into_iter()
                    .partition(|m| m.lane == lane);
            unstarted = waiting;
            let free = slots.saturating_sub(set.len() + claimed.len());
            if claimed.is_empty() && free < refill && !set.is_empty() {
                continue;
            }
            // A lane a rate holds back is not asked again before the rate lets
            // one go: a claim then would take nothing and cost a transaction.
            let held = held_until[lane_index(lane)].is_some_and(|at| at > herald.clock.now());
            if !held && free > 0 {
                match herald
                    .outbox
                    .claim_batch(&options.id, lane, free, lease, herald.clock.now())
                    .await
                {
                    Ok(c) => {
                        claimed.extend(c.messages);
                        // A rate held some back: claim again when it lets one go.
                        held_until[lane_index(lane)] = c.throttled_until;
                    }
                    Err(e) => {
                        unstarted.extend(claimed);
                        failed = Some(e.into());
                        break 'lanes;
                    }
                }
            }
            let mut claimed = claimed.into_iter();
            while let Some(m) = claimed.next() {
                let send = match sends.get(&m.send_id) {
                    Some(s) => Arc::clone(s),
                    None => match herald.outbox.send(m.send_id).await {
                        Ok(s) => {
                            let s = Arc::new(s);
                            sends.insert(m.send_id, Arc::clone(&s));
                            s
                        }
                        // Claimed but not started: kept, and started once the
                        // database answers again.
                        Err(e) => {
                            unstarted.push(m);
                            unstarted.extend(claimed);
                            failed = Some(e.into());
                            break 'lanes;
                        }
                    },
                };
                set.spawn(process(
                    Arc::clone(&herald),
                    send,
                    m,
                    Arc::clone(&stats),
                    events_tx.clone(),
                ));
            }
        }
        if failed.is_some() {
            stats.ready.store(false, Ordering::Relaxed);
            continue;
        }
        stats.ready.store(true, Ordering::Relaxed);
        backoff.reset();
        if sends.len() > 10_000 {
            sends.clear();
        }
        // Wait for shutdown, a finished message (a slot to refill), the time
        // a rate lets the next message go, or the poll.
        let idle = individual.is_empty() && mass.is_empty();
        let now = herald.clock.now();
        let nap = held_until
            .iter()
            .flatten()
            .filter(|at| **at > now)
            .min()
            .and_then(|at| (*at - now).to_std().ok())
            .map_or(poll, |w| w.min(poll));
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = individual.join_next(), if !idle => task_done(done)?,
            Some(done) = mass.join_next(), if !idle => task_done(done)?,
            () = tokio::time::sleep(nap) => {}
        }
    }
    tracing::info!("shutting down: finishing messages in flight, releasing unstarted claims");
    if !unstarted.is_empty() {
        let ids: Vec<i64> = unstarted.iter().map(|m| m.id).collect();
        match herald
            .outbox
            .release(&options.id, &ids, herald.clock.now())
            .await
        {
            Ok(n) => {
                stats.released.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = ids.len(), "releasing unstarted messages failed; their lease frees them");
            }
        }
    }
    for set in [&mut individual, &mut mass] {
        while let Some(done) = set.join_next().await {
            task_done(done)?;
        }
    }
    drop(events_tx);
    flusher.await.map_err(|e| Error::Task(e.to_string()))?;
    let _ = hooks_stop.send(true);
    hooks.await.map_err(|e| Error::Task(e.to_string()))?;
    if let Some(texts) = texts {
        texts.await.map_err(|e| Error::Task(e.to_string()))?;
    }
    tracing::info!(done = stats.done(), "delivery loop stopped");
    Ok(())
}

/// The worker's health endpoint, on the paths the server uses: `GET /healthz`
/// (the process answers), `GET /readyz` (200 `ready`, or 503 while the
/// database does not answer) and `GET /metrics` (the worker's counters).
pub fn health_routes(stats: Arc<Stats>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = Arc::clone(&stats);
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let stats = Arc::clone(&ready);
                async move {
                    if stats.is_ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: the database does not answer; the worker retries\n",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let stats = Arc::clone(&stats);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        stats.render(),
                    )
                }
            }),
        )
}
