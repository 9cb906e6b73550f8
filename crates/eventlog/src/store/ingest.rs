//! Recording events: the rows, the first human open and click of each message,
//! the totals and campaign deltas, suppression and retention, in the caller's
//! transaction ([`EventLog::ingest_in`]).

use super::*;

type Tx<'t> = sqlx::Transaction<'t, sqlx::Any>;

/// Every human open and click of a batch, by (account, message, `open` or
/// `click`), with the message's campaign.
type Marks = BTreeMap<(i64, i64, &'static str), Option<i64>>;

/// Step 4a: Counts the first opens and clicks into the totals and campaigns: an
/// open rate counts messages opened, not opens.
fn count_firsts(
    marks: &Marks,
    firsts: &[(i64, i64, String)],
    totals: &mut BTreeMap<i64, Totals>,
    campaigns: &mut BTreeMap<i64, CampaignDelta>,
) {
    for (account, message, mark) in firsts {
        let is_open = mark == "open";
        let t = totals.entry(*account).or_default();
        if is_open {
            t.opened += 1
        } else {
            t.clicked += 1
        }
        let key = (*account, *message, if is_open { "open" } else { "click" });
        if let Some(Some(c)) = marks.get(&key) {
            let d = campaigns.entry(*c).or_default();
            if is_open {
                d.opened += 1
            } else {
                d.clicked += 1
            }
        }
    }
}

/// People's opens and clicks of a batch by (account, campaign, hour).
type Hours = BTreeMap<(i64, i64, i64), (i64, i64)>;

/// Step 4c: Buckets people's opens and clicks (not prefetches, not bots) by
/// campaign and UTC hour, for the dashboard's charts.
fn campaign_hours(events: &[NewEvent], origin: &[bots::Origin]) -> Result<Hours> {
    const HOUR_MS: i64 = 3_600_000;
    let mut hours = Hours::new();
    for (e, o) in events.iter().zip(origin) {
        let (Some(c), bots::Origin::Person) = (e.campaign, o) else {
            continue;
        };
        let (open, click) = match e.kind {
            EventKind::Open => (1, 0),
            EventKind::Click => (0, 1),
            _ => continue,
        };
        let hour = e.at.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
        let n = hours
            .entry((account_i64(e.account)?, c.0, hour))
            .or_default();
        n.0 += open;
        n.1 += click;
    }
    Ok(hours)
}

#[derive(Default)]
struct CampaignDelta {
    emails: i64,
    delivered: i64,
    opened: i64,
    clicked: i64,
    sms_processed: i64,
    sms_sent: i64,
    sms_delivered: i64,
    sms_failed: i64,
    sms_segments: i64,
}

impl EventLog {
    /// Records `events` in one transaction (R-EVT-1, R-EVT-3): flags bot
    /// traffic, updates totals, unique opens and clicks and campaign statistics,
    /// applies suppression (hard bounce → blocklist; complaint or unsubscribe →
    /// no mass mail), and prunes each touched account to its last `retention`
    /// events. Nothing is recorded if any part fails.
    pub async fn ingest(&self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        self.ingest_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`EventLog::ingest`] inside the caller's transaction `tx` (on this log's
    /// database), so the caller can commit other work with it atomically.
    pub async fn ingest_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[NewEvent],
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if events.is_empty() {
            return Ok(());
        }
        let (mut next_seq, last_seq) = self.reserve_sequences(tx, events).await?;
        // Each event's number in its account, as insert_events gives them.
        let seqs = {
            let mut n = next_seq.clone();
            events
                .iter()
                .map(|e| {
                    let s = n.entry(account_i64(e.account)?).or_default();
                    *s += 1;
                    Ok(*s - 1)
                })
                .collect::<Result<Vec<i64>>>()?
        };
        let origin = bots::origins(events, &self.prefetch);
        self.insert_events(tx, events, &origin, &mut next_seq)
            .await?;
        let (marks, firsts) = self.first_marks(tx, events, &origin).await?;
        let mut totals: BTreeMap<i64, Totals> = BTreeMap::new();
        let mut campaigns: BTreeMap<i64, CampaignDelta> = BTreeMap::new();
        count_firsts(&marks, &firsts, &mut totals, &mut campaigns);
        self.count_events(tx, events, &origin, &mut totals, &mut campaigns)
            .await?;
        self.add_totals(tx, &totals).await?;
        self.add_campaign_deltas(tx, &campaigns).await?;
        self.add_campaign_hours(tx, &campaign_hours(events, &origin)?)
            .await?;
        self.owe_webhooks(tx, events, &seqs).await?;
        self.prune(tx, &last_seq).await
    }

    /// Step 1: Reserves each account's sequence numbers for `events` (making its
    /// totals row): the first and the last number, by account.
    async fn reserve_sequences(
        &self,
        tx: &mut Tx<'_>,
        events: &[NewEvent],
    ) -> Result<(BTreeMap<i64, i64>, BTreeMap<i64, i64>)> {
        let mut per_account: BTreeMap<i64, i64> = BTreeMap::new();
        for e in events {
            *per_account.entry(account_i64(e.account)?).or_default() += 1;
        }

        let mut next_seq: BTreeMap<i64, i64> = BTreeMap::new();
        let mut last_seq: BTreeMap<i64, i64> = BTreeMap::new();
        for (account, n) in &per_account {
            sqlx::query("INSERT INTO herald_totals (account) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(*account)
                .execute(&mut **tx)
                .await?;
            // fetch_all, not fetch_one: SQLite finishes an UPDATE … RETURNING only
            // when the statement is stepped to its end.
            let rows = sqlx::query("UPDATE herald_totals SET events_seen = events_seen + $1 WHERE account = $2 RETURNING events_seen")
                .bind(*n)
                .bind(*account)
                .fetch_all(&mut **tx)
                .await?;
            let end: i64 = rows
                .first()
                .ok_or_else(|| Error::Corrupt(format!("no totals row for account {account}")))?
                .try_get(0)?;
            next_seq.insert(*account, end - n + 1);
            last_seq.insert(*account, end);
        }
        Ok((next_seq, last_seq))
    }

    /// Step 2: Inserts the events, each with its origin (person, prefetch, bot) and
    /// the next sequence number of its account.
    async fn insert_events(
        &self,
        tx: &mut Tx<'_>,
        events: &[NewEvent],
        origin: &[bots::Origin],
        next_seq: &mut BTreeMap<i64, i64>,
    ) -> Result<()> {
        const ROWS: usize = 200;
        for (chunk_no, chunk) in events.chunks(ROWS).enumerate() {
            // The SMS columns only in chunks that hold SMS facts: mail's
            // statement stays as it was.
            let sms = chunk
                .iter()
                .any(|e| e.segments.is_some() || e.cost.is_some() || e.currency.is_some());
            let mut sql = Sql::new(self.backend);
            sql.push(
                "INSERT INTO herald_events (account, kind, at, message, campaign, recipient, person, link, label, ip, user_agent, reply, reason, bot, seq, browser, os, device, country, city",
            );
            sql.push(if sms {
                ", segments, cost, currency) VALUES "
            } else {
                ") VALUES "
            });
            for (i, e) in chunk.iter().enumerate() {
                let account = account_i64(e.account)?;
                let seq = next_seq.entry(account).or_default();
                let ua = e
                    .user_agent
                    .as_deref()
                    .map(crate::client::parse_user_agent)
                    .unwrap_or_default();
                let (country, city) = match (&self.geo, e.ip.as_deref()) {
                    (Some(geo), Some(ip)) => geo.locate(ip),
                    _ => (None, None),
                };
                if i > 0 {
                    sql.push(",");
                }
                let row = [
                    Bind::from(account),
                    e.kind.as_str().into(),
                    millis(e.at).into(),
                    e.message.into(),
                    e.campaign.map(|c| c.0).into(),
                    e.recipient.to_ascii_lowercase().into(),
                    e.person.clone().into(),
                    e.link.map(i64::from).into(),
                    e.label.clone().into(),
                    e.ip.clone().into(),
                    e.user_agent.clone().into(),
                    e.reply.clone().into(),
                    e.reason.map(|r| r.as_str()).into(),
                    origin[chunk_no * ROWS + i].stored().into(),
                    (*seq).into(),
                    ua.browser.into(),
                    ua.os.into(),
                    ua.device.into(),
                    country.into(),
                    city.into(),
                ];
                if sms {
                    sql.bind_list(row.into_iter().chain([
                        e.segments.map(i64::from).into(),
                        e.cost.clone().into(),
                        e.currency.clone().into(),
                    ]));
                } else {
                    sql.bind_list(row);
                }
                *seq += 1;
            }
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 3: The first human open and click of each message: one insert, the new
    /// rows back. Returns every human open and click with its campaign, and
    /// those that were the message's first.
    async fn first_marks(
        &self,
        tx: &mut Tx<'_>,
        events: &[NewEvent],
        origin: &[bots::Origin],
    ) -> Result<(Marks, Vec<(i64, i64, String)>)> {
        let bot = |i: usize| origin[i] != bots::Origin::Person;
        let mut marks = Marks::new();
        for (i, e) in events.iter().enumerate() {
            if matches!(e.kind, EventKind::Open | EventKind::Click)
                && !bot(i)
                && let Some(m) = e.message
            {
                let mark = if e.kind == EventKind::Open {
                    "open"
                } else {
                    "click"
                };
                marks
                    .entry((account_i64(e.account)?, m, mark))
                    .or_insert(e.campaign.map(|c| c.0));
            }
        }
        let mut firsts: Vec<(i64, i64, String)> = Vec::new();
        let keys: Vec<_> = marks.keys().copied().collect();
        for chunk in keys.chunks(300) {
            let mut sql = Sql::new(self.backend);
            sql.push("INSERT INTO herald_message_marks (account, message, mark) VALUES ");
            for (i, (a, m, k)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(",");
                }
                sql.bind_list([Bind::from(*a), (*m).into(), (*k).into()]);
            }
            sql.push(" ON CONFLICT DO NOTHING RETURNING account, message, mark");
            let q = sql.query();
            for row in q.fetch_all(&mut **tx).await? {
                firsts.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        Ok((marks, firsts))
    }

    /// Step 4b: Counts each event into its account's totals and its campaign, and
    /// applies what it means for the address (blocklist, complaint,
    /// unsubscribe) and the person (email bouncing).
    async fn count_events(
        &self,
        tx: &mut Tx<'_>,
        events: &[NewEvent],
        origin: &[bots::Origin],
        totals: &mut BTreeMap<i64, Totals>,
        campaigns: &mut BTreeMap<i64, CampaignDelta>,
    ) -> Result<()> {
        let bot = |i: usize| origin[i] != bots::Origin::Person;
        for (i, e) in events.iter().enumerate() {
            let account = account_i64(e.account)?;
            let t = totals.entry(account).or_default();
            match e.kind {
                EventKind::Processed => {
                    t.processed += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().emails += 1;
                    }
                }
                EventKind::Delivered => {
                    t.delivered += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().delivered += 1;
                    }
                }
                EventKind::Open if origin[i] == bots::Origin::Prefetch => t.prefetch_opens += 1,
                EventKind::Open if bot(i) => t.bot_opens += 1,
                EventKind::Click if bot(i) => t.bot_clicks += 1,
                EventKind::Open | EventKind::Click => {}
                EventKind::SoftBounce => t.bounced += 1,
                EventKind::HardBounce => {
                    t.bounced += 1;
                    // R-EVT-5: the person's email is flagged as bouncing.
                    if let Some(person) = &e.person {
                        sqlx::query(
                            "INSERT INTO herald_person_fields (account, person, namespace, field, value) VALUES ($1, $2, 'person', 'email_bouncing', 'true')
                             ON CONFLICT (account, person, namespace, field) DO UPDATE SET value = excluded.value",
                        )
                        .bind(account)
                        .bind(person.as_str())
                        .execute(&mut **tx)
                        .await?;
                    }
                    self.suppress_in(
                        tx,
                        account,
                        &e.recipient,
                        Suppressed::Blocklist,
                        e.at,
                        e.reply.as_deref(),
                    )
                    .await?;
                }
                EventKind::Blocked => t.blocked += 1,
                EventKind::SpamComplaint => {
                    t.complaints += 1;
                    self.suppress_in(
                        tx,
                        account,
                        &e.recipient,
                        Suppressed::Complained,
                        e.at,
                        None,
                    )
                    .await?;
                }
                // Nothing was sent: no total moves; the event is the record.
                EventKind::Failed => {}
                EventKind::SmsProcessed => {
                    let segments = e.segments.unwrap_or(0);
                    t.sms.processed += 1;
                    t.sms.segments += u64::from(segments);
                    if let Some(c) = e.campaign {
                        let d = campaigns.entry(c.0).or_default();
                        d.sms_processed += 1;
                        d.sms_segments += i64::from(segments);
                    }
                }
                EventKind::SmsSent => {
                    t.sms.sent += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().sms_sent += 1;
                    }
                }
                EventKind::SmsDelivered => {
                    t.sms.delivered += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().sms_delivered += 1;
                    }
                }
                EventKind::SmsFailed => {
                    t.sms.failed += 1;
                    if let Some(c) = e.campaign {
                        campaigns.entry(c.0).or_default().sms_failed += 1;
                    }
                }
                EventKind::SmsOptOut => {
                    // Counted once per number: a repeated STOP adds nothing.
                    let new = self
                        .suppress_in(
                            tx,
                            account,
                            &e.recipient,
                            Suppressed::SmsOptOut,
                            e.at,
                            e.reply.as_deref(),
                        )
                        .await?;
                    t.sms.opted_out += u64::from(new);
                }
                EventKind::Unsubscribe
                    if e.label.as_deref() == Some(crate::UNSUBSCRIBE_CAMPAIGN) =>
                {
                    // From one campaign only: counted once per address and campaign.
                    let Some(c) = e.campaign else { continue };
                    let new = sqlx::query(
                        "INSERT INTO herald_campaign_unsubscribes (account, email, campaign, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(account)
                    .bind(e.recipient.to_ascii_lowercase())
                    .bind(c.0)
                    .bind(millis(e.at))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    t.unsubscribed += new;
                }
                EventKind::Unsubscribe => {
                    // Counted once per address: a repeated unsubscribe adds nothing.
                    let new = self
                        .suppress_in(
                            tx,
                            account,
                            &e.recipient,
                            Suppressed::Unsubscribed,
                            e.at,
                            None,
                        )
                        .await?;
                    t.unsubscribed += u64::from(new);
                }
            }
        }
        Ok(())
    }

    /// Step 5: Adds each account's counts to its totals row.
    async fn add_totals(&self, tx: &mut Tx<'_>, totals: &BTreeMap<i64, Totals>) -> Result<()> {
        let sets: Vec<String> = TOTAL_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = {c} + ${}", i + 1))
            .collect();
        let totals_sql = format!(
            "UPDATE herald_totals SET {} WHERE account = ${}",
            sets.join(", "),
            TOTAL_COLUMNS.len() + 1
        );
        for (account, t) in totals {
            let mut q = sqlx::query(&totals_sql);
            for v in t.values() {
                q = q.bind(i64::try_from(v).unwrap_or(i64::MAX));
            }
            q.bind(*account).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 6: Adds the campaigns' deltas.
    async fn add_campaign_deltas(
        &self,
        tx: &mut Tx<'_>,
        campaigns: &BTreeMap<i64, CampaignDelta>,
    ) -> Result<()> {
        // All campaigns' deltas in one statement per 200 campaigns; the SMS
        // columns only in batches that move them, so mail's statement stays
        // as small as it was.
        type Deltas<'a> = Vec<(&'a i64, &'a CampaignDelta)>;
        let (email, sms): (Deltas<'_>, Deltas<'_>) = campaigns.iter().partition(|(_, c)| {
            c.sms_processed == 0
                && c.sms_sent == 0
                && c.sms_delivered == 0
                && c.sms_failed == 0
                && c.sms_segments == 0
        });
        for chunk in email.chunks(200) {
            let mut sql = Sql::new(self.backend);
            sql.push("WITH d(id, emails, delivered, opened, clicked) AS (VALUES ");
            for (i, (id, c)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_list([**id, c.emails, c.delivered, c.opened, c.clicked]);
            }
            sql.push(
                ")
                 UPDATE herald_campaigns SET emails = herald_campaigns.emails + d.emails, delivered = herald_campaigns.delivered + d.delivered,
                    opened = herald_campaigns.opened + d.opened, clicked = herald_campaigns.clicked + d.clicked
                 FROM d WHERE herald_campaigns.id = d.id",
            );
            sql.query().execute(&mut **tx).await?;
        }
        for chunk in sms.chunks(100) {
            let mut sql = Sql::new(self.backend);
            sql.push("WITH d(id, emails, delivered, opened, clicked, sms_processed, sms_sent, sms_delivered, sms_failed, sms_segments) AS (VALUES ");
            for (i, (id, c)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_list([
                    **id,
                    c.emails,
                    c.delivered,
                    c.opened,
                    c.clicked,
                    c.sms_processed,
                    c.sms_sent,
                    c.sms_delivered,
                    c.sms_failed,
                    c.sms_segments,
                ]);
            }
            sql.push(
                ")
                 UPDATE herald_campaigns SET emails = herald_campaigns.emails + d.emails, delivered = herald_campaigns.delivered + d.delivered,
                    opened = herald_campaigns.opened + d.opened, clicked = herald_campaigns.clicked + d.clicked,
                    sms_processed = herald_campaigns.sms_processed + d.sms_processed, sms_sent = herald_campaigns.sms_sent + d.sms_sent,
                    sms_delivered = herald_campaigns.sms_delivered + d.sms_delivered, sms_failed = herald_campaigns.sms_failed + d.sms_failed,
                    sms_segments = herald_campaigns.sms_segments + d.sms_segments
                 FROM d WHERE herald_campaigns.id = d.id",
            );
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 6b: Adds the hourly opens and clicks of each campaign.
    async fn add_campaign_hours(&self, tx: &mut Tx<'_>, hours: &Hours) -> Result<()> {
        let rows: Vec<_> = hours.iter().collect();
        for chunk in rows.chunks(200) {
            let mut sql = Sql::new(self.backend);
            sql.push("INSERT INTO herald_campaign_hours (account, campaign, hour, opens, clicks) VALUES ");
            for (i, ((account, campaign, hour), (opens, clicks))) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_list([*account, *campaign, *hour, *opens, *clicks]);
            }
            sql.push(
                " ON CONFLICT (account, campaign, hour) DO UPDATE SET opens = herald_campaign_hours.opens + excluded.opens, clicks = herald_campaign_hours.clicks + excluded.clicks",
            );
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 7: Retention: each account keeps its last `retention` events, by sequence.
    async fn prune(&self, tx: &mut Tx<'_>, last_seq: &BTreeMap<i64, i64>) -> Result<()> {
        for (account, end) in last_seq {
            if *end > self.retention {
                sqlx::query("DELETE FROM herald_events WHERE account = $1 AND seq <= $2")
                    .bind(*account)
                    .bind(end - self.retention)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    async fn suppress_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        account: i64,
        email: &str,
        reason: Suppressed,
        at: DateTime<Utc>,
        detail: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query("INSERT INTO herald_suppressions (account, email, reason, at, detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(email.to_ascii_lowercase())
            .bind(reason.as_str())
            .bind(millis(at))
            .bind(detail.map(str::to_owned))
            .execute(&mut **tx)
            .await?;
        // Whether the address was newly suppressed for this reason.
        Ok(done.rows_affected() == 1)
    }
}
