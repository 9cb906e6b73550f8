//! The lease queue: claiming due messages, recording attempts, releasing
//! claims (R-SND-4, R-SND-7).

use super::*;

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
        site: None,
    })
}

/// `due_at` of the claimed messages of a send deleted while they were in
/// flight: such a row is never claimed again, and its worker's outcome or
/// release ends it.
pub(crate) const CANCELLED_IN_FLIGHT: i64 = i64::MAX;

/// What one lane's claim took: the rows, the site of each, and when a rate
/// lets the next one go.
pub(super) struct TakenRows {
    pub(super) rows: Vec<AnyRow>,
    pub(super) site_of: HashMap<i64, Option<String>>,
    pub(super) throttled_until: Option<DateTime<Utc>>,
}

/// One candidate row of a claim, before the throttle has had its say.
struct Candidate {
    id: i64,
    /// The throttle keys it needs, by index into the claim's keys.
    keys: Vec<usize>,
}

/// A throttle key of one claim: its row name, the GCRA that applies, its TAT.
struct Key {
    name: String,
    account: Option<i64>,
    site: Option<String>,
    gcra: crate::throttle::Gcra,
    tat: i64,
    changed: bool,
}

impl Outbox {
    /// Claims up to `limit` due messages of `lane` for `worker` until
    /// `now + lease` (see [`Outbox::claim_batch`]); the messages only.
    pub async fn claim(
        &self,
        worker: &str,
        lane: Lane,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>> {
        Ok(self
            .claim_batch(worker, lane, limit, lease, now)
            .await?
            .messages)
    }

    /// Claims up to `limit` due messages of `lane` for `worker` until
    /// `now + lease`: queued or deferred rows whose time has come, and claimed
    /// rows whose lease ran out, passing over recipients whose site is
    /// suspended.
    ///
    /// The shared throttle is applied here, in the claim's transaction, so
    /// every worker on the database draws on the same budget and none holds
    /// a claim while waiting for a rate: the global rate (all mail), the
    /// account's mass rate (mass lane) and the recipient site's rate are
    /// GCRA rows (`herald_throttle`) locked and moved on for each message
    /// taken. On PostgreSQL concurrent workers skip each other's rows
    /// (`FOR UPDATE SKIP LOCKED`) and queue on the throttle rows they share;
    /// SQLite has one writer at a time.
    pub async fn claim_batch(
        &self,
        worker: &str,
        lane: Lane,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claims> {
        let lane_name = match lane {
            Lane::Individual => "individual",
            Lane::Mass => "mass",
        };
        let per_account = match lane {
            Lane::Mass => self.throttle.per_account.map(|r| r.gcra()),
            Lane::Individual => None,
        };
        let global = self.throttle.global.map(|r| r.gcra());
        let taken = self
            .claim_lane(worker, lane_name, per_account, global, limit, lease, now)
            .await?;
        let mut messages = Vec::with_capacity(taken.rows.len());
        for row in &taken.rows {
            let mut m = claimed_from_row(row)?;
            m.site = taken.site_of.get(&m.id).cloned().flatten();
            messages.push(m);
        }
        messages.sort_by_key(|c| c.id);
        Ok(Claims {
            messages,
            throttled_until: taken.throttled_until,
        })
    }

    /// The claim of one lane (see [`Outbox::claim_batch`]): `per_account`
    /// is the GCRA of each account's rate in this lane, `global` that of the
    /// lane's installation-wide rate (the row `global` for mail, `sms` for texts).
    /// Returns the claimed rows (every outbox column a claim reads).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn claim_lane(
        &self,
        worker: &str,
        lane_name: &str,
        per_account: Option<crate::throttle::Gcra>,
        global: Option<crate::throttle::Gcra>,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<TakenRows> {
        let global_name = if lane_name == "sms" { "sms" } else { "global" };
        let now_us = now.timestamp_micros();
        let (lock, lock_throttle) = match self.backend {
            Backend::Postgres => (" FOR UPDATE OF o SKIP LOCKED", " FOR UPDATE"),
            Backend::Sqlite => ("", ""),
        };
        let account_filter = if per_account.is_some() {
            " OR t.account = o.account"
        } else {
            ""
        };
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "SELECT o.id, o.account, d.site, s.rate_interval, s.rate_burst, s.slowed_until, s.slow_factor
             FROM herald_outbox o
             LEFT JOIN herald_site_domains d ON d.domain = o.recipient_domain
             LEFT JOIN herald_sites s ON s.name = d.site
             WHERE o.lane = $1 AND o.state IN ('queued', 'deferred', 'claimed') AND o.due_at <= $2
               AND (o.state <> 'claimed' OR o.lease_until <= $2)
               AND (s.suspended_until IS NULL OR s.suspended_until <= $2)
               AND NOT EXISTS (SELECT 1 FROM herald_throttle t WHERE t.ready_at > $3 AND (t.site = d.site{account_filter}))
             ORDER BY o.due_at, o.id LIMIT $4{lock}"
        );
        let rows = sqlx::query(&sql)
            .bind(lane_name)
            .bind(millis(now))
            .bind(now_us)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
        // The keys the candidates need, each once.
        let mut keys: Vec<Key> = Vec::new();
        let mut key_of = |name: String,
                          account: Option<i64>,
                          site: Option<String>,
                          gcra: crate::throttle::Gcra|
         -> usize {
            match keys.iter().position(|k| k.name == name) {
                Some(i) => i,
                None => {
                    keys.push(Key {
                        name,
                        account,
                        site,
                        gcra,
                        tat: 0,
                        changed: false,
                    });
                    keys.len() - 1
                }
            }
        };
        let mut candidates = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let account: i64 = row.try_get("account")?;
            let site: Option<String> = row.try_get("site")?;
            let interval: Option<i64> = row.try_get("rate_interval")?;
            let mut need = Vec::new();
            if let Some(g) = global {
                need.push(key_of(global_name.into(), None, None, g));
            }
            if let Some(g) = per_account {
                need.push(key_of(format!("account:{account}"), Some(account), None, g));
            }
            if let (Some(site), Some(interval)) = (site, interval) {
                let burst: i64 = row.try_get("rate_burst")?;
                let slowed_until: Option<i64> = row.try_get("slowed_until")?;
                let factor: i64 = row.try_get("slow_factor")?;
                let mut g = crate::throttle::Gcra::new(interval, burst);
                if slowed_until.is_some_and(|t| t > millis(now)) {
                    g = g.slowed(factor);
                }
                need.push(key_of(format!("site:{site}"), None, Some(site), g));
            }
            candidates.push(Candidate { id, keys: need });
        }
        let mut taken: Vec<i64> = Vec::with_capacity(candidates.len());
        let mut throttled_until: Option<i64> = None;
        if keys.is_empty() {
            taken.extend(candidates.iter().map(|c| c.id));
        } else {
            // Lock the keys' rows in name order (creating those missing), so two
            // claims sharing keys never wait on each other in a cycle.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by(|a, b| keys[*a].name.cmp(&keys[*b].name));
            let mut upsert = Sql::new(self.backend);
            upsert.push("INSERT INTO herald_throttle (name, account, site, tat, ready_at) VALUES ");
            for (n, i) in order.iter().enumerate() {
                if n > 0 {
                    upsert.push(", ");
                }
                let k = &keys[*i];
                upsert.bind_list([
                    Bind::from(k.name.as_str()),
                    Bind::from(k.account),
                    Bind::from(k.site.clone()),
                    Bind::from(0i64),
                    Bind::from(0i64),
                ]);
            }
            upsert.push(" ON CONFLICT (name) DO NOTHING");
            upsert.query().execute(&mut *tx).await?;
            let mut select = Sql::new(self.backend);
            select.push("SELECT name, tat FROM herald_throttle WHERE name IN ");
            select.bind_list(order.iter().map(|i| keys[*i].name.as_str()));
            select.push(" ORDER BY name");
            select.push(lock_throttle);
            for row in select.query().fetch_all(&mut *tx).await? {
                let name: String = row.try_get("name")?;
                let tat: i64 = row.try_get("tat")?;
                if let Some(k) = keys.iter_mut().find(|k| k.name == name) {
                    k.tat = tat;
                }
            }
            for c in &candidates {
                // A message goes when every rate it is under lets it go now.
                let refused = c
                    .keys
                    .iter()
                    .filter(|i| keys[**i].gcra.conform(keys[**i].tat, now_us).is_none())
                    .map(|i| keys[*i].gcra.ready_at(keys[*i].tat))
                    .max();
                match refused {
                    Some(at) => {
                        throttled_until = Some(throttled_until.map_or(at, |t| t.min(at)));
                    }
                    None => {
                        for i in &c.keys {
                            let k = &mut keys[*i];
                            if let Some(tat) = k.gcra.conform(k.tat, now_us) {
                                k.tat = tat;
                                k.changed = true;
                            }
                        }
                        taken.push(c.id);
                    }
                }
            }
            for k in keys.iter().filter(|k| k.changed) {
                sqlx::query("UPDATE herald_throttle SET tat = $1, ready_at = $2 WHERE name = $3")
                    .bind(k.tat)
                    .bind(k.gcra.ready_at(k.tat))
                    .bind(k.name.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Rows the filter passed over because a key holds them: say when the
        // first such key lets one go, so a worker asks again then, not at its
        // next poll.
        if rows.len() < limit {
            let held: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT MIN(ready_at) FROM herald_throttle WHERE ready_at > $1 AND (site IS NOT NULL{})",
                if per_account.is_some() {
                    " OR account IS NOT NULL"
                } else {
                    ""
                }
            ))
            .bind(now_us)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(at) = held {
                throttled_until = Some(throttled_until.map_or(at, |t| t.min(at)));
            }
        }
        let mut claimed_rows = Vec::new();
        if !taken.is_empty() {
            let mut update = Sql::new(self.backend);
            update.push("UPDATE herald_outbox SET state = 'claimed', worker = ");
            update.bind(worker);
            update.push(", lease_until = ");
            update.bind(millis(now + lease));
            update.push(", updated_at = ");
            update.bind(millis(now));
            update.push(" WHERE id IN ");
            update.bind_list(taken.iter().copied());
            update.push(
                " RETURNING id, send_id, account, lane, recipient_email, recipient_name, merge_values, attempts, first_attempt_at, person, recipient_domain",
            );
            claimed_rows = update.query().fetch_all(&mut *tx).await?;
        }
        tx.commit().await?;
        // The site each message's domain belonged to, from the candidates' read.
        let site_of: HashMap<i64, Option<String>> = rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.try_get::<i64, _>("id").ok()?,
                    r.try_get::<Option<String>, _>("site").ok()?,
                ))
            })
            .collect();
        Ok(TakenRows {
            rows: claimed_rows,
            site_of,
            throttled_until: throttled_until.and_then(DateTime::from_timestamp_micros),
        })
    }

    /// Records the outcome of an attempt on message `id`, if `worker` still
    /// holds its claim. Returns whether it did (false: the lease was lost and
    /// another worker may hold the message now). A deferral of a message whose
    /// send was deleted while it was in flight cancels it instead.
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
        // The events this outcome owes the event log (see `pending_events`): a
        // text the gateway refused was still processed (an email that could
        // not be built was not).
        let processed = i64::from(state != State::Failed) * EVENTS_PROCESSED;
        let terminal = i64::from(matches!(
            state,
            State::Delivered | State::Bounced | State::Failed
        )) * EVENTS_OUTCOME;
        let result = sqlx::query(
            "UPDATE herald_outbox SET state = CASE WHEN due_at = $11 AND $1 = 'deferred' THEN 'cancelled' ELSE $1 END,
                due_at = COALESCE($2, due_at), bounce_class = $3, bounce_reason = $4, reply = $5,
                events_pending = events_pending | (CASE WHEN attempts = 0 AND ($6 <> 0 OR lane = 'sms') THEN $12 ELSE 0 END) | $7,
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
        .bind(CANCELLED_IN_FLIGHT)
        .bind(EVENTS_PROCESSED)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives back the claims `worker` holds on `ids` without an attempt (on
    /// shutdown), so other workers can take them at once; a message of a
    /// send deleted meanwhile is cancelled instead, never queued again.
    pub async fn release(&self, worker: &str, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let mut released = 0;
        for id in ids {
            let r = sqlx::query(
                "UPDATE herald_outbox SET state = CASE
                        WHEN EXISTS (SELECT 1 FROM herald_sends s WHERE s.id = herald_outbox.send_id AND s.cancelled_at IS NOT NULL) THEN 'cancelled'
                        WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
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
}

impl Outbox {
    /// Cancels the claims of deleted sends whose lease ran out (their worker
    /// stopped before it recorded an outcome): such a message is never sent
    /// again. Returns how many were cancelled; workers call it now and then.
    pub async fn sweep_cancelled(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE herald_outbox SET state = 'cancelled', lease_until = NULL, worker = NULL, updated_at = $1
             WHERE state = 'claimed' AND lease_until <= $1 AND due_at = $2",
        )
        .bind(millis(now))
        .bind(CANCELLED_IN_FLIGHT)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }
}
