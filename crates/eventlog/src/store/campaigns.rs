//! Campaigns (R-EVT-4): named per account, created for a send, starred and
//! archived; their counts move with the events ([`super::ingest`]).

use super::*;

const CAMPAIGN_COLUMNS: &str = "id, name, first_subject, emails, delivered, opened, clicked, starred, archived, sms_processed, sms_sent, sms_delivered, sms_failed, sms_segments";

/// A row of [`CAMPAIGN_COLUMNS`], read by position (a list reads 1,000 of
/// them; looking each column up by name cost more than the reading).
fn campaign_row(r: &AnyRow) -> Result<Campaign> {
    let n = |i: usize| -> Result<u64> { stored_u64(r.try_get::<i64, _>(i)?) };
    let (delivered, opened, clicked) = (n(4)?, n(5)?, n(6)?);
    Ok(Campaign {
        id: CampaignId(r.try_get(0)?),
        name: r.try_get(1)?,
        first_subject: r.try_get(2)?,
        emails: n(3)?,
        delivered,
        opened,
        clicked,
        open_rate: rate(opened, delivered),
        click_rate: rate(clicked, delivered),
        starred: r.try_get::<i64, _>(7)? != 0,
        archived: r.try_get::<i64, _>(8)? != 0,
        sms: crate::SmsTotals {
            processed: n(9)?,
            sent: n(10)?,
            delivered: n(11)?,
            failed: n(12)?,
            segments: n(13)?,
            opted_out: 0,
        },
    })
}

/// Clicks and clicked messages per (link, label).
type LinkTally = BTreeMap<(Option<i64>, Option<String>), (u64, std::collections::BTreeSet<i64>)>;

/// `filter`'s WHERE clause for `account`'s campaigns, onto `sql`.
fn campaign_filter(cond: &mut Sql, account: i64, filter: &CampaignFilter) {
    cond.push(" WHERE account = ")
        .bind(account)
        .push(" AND archived = ")
        .bind(i64::from(filter.archived));
    if filter.starred_only {
        cond.push(" AND starred = 1");
    }
    if filter.sent_only {
        cond.push(" AND (emails > 0 OR sms_processed > 0)");
    }
    if let Some(only) = &filter.only {
        cond.push(" AND id IN ").bind_list(only.iter().map(|c| c.0));
    }
    if !filter.except.is_empty() {
        cond.push(" AND id NOT IN ")
            .bind_list(filter.except.iter().map(|c| c.0));
    }
    if let Some(q) = filter.search.as_deref().filter(|q| !q.is_empty()) {
        let pattern = format!(
            "%{}%",
            q.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        cond.push(" AND (LOWER(first_subject) LIKE ")
            .bind(pattern.clone())
            .push(" ESCAPE '\\' OR LOWER(name) LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

impl EventLog {
    /// The campaign of `account` named `name`, created with `first_subject` if
    /// it does not exist yet (a name given again adds to that campaign).
    pub async fn campaign_for(
        &self,
        account: u64,
        name: &str,
        first_subject: &str,
        now: DateTime<Utc>,
    ) -> Result<CampaignId> {
        let mut tx = self.writer.begin().await?;
        let id = self
            .campaign_for_in(&mut tx, account, name, first_subject, now)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`EventLog::campaign_for`] inside the caller's transaction `tx`, so the
    /// campaign is created only if what it is created for commits too.
    pub async fn campaign_for_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        account: u64,
        name: &str,
        first_subject: &str,
        now: DateTime<Utc>,
    ) -> Result<CampaignId> {
        let account = account_i64(account)?;
        sqlx::query("INSERT INTO herald_campaigns (account, name, first_subject, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(name.to_owned())
            .bind(first_subject.to_owned())
            .bind(millis(now))
            .execute(&mut **tx)
            .await?;
        let id: i64 =
            sqlx::query("SELECT id FROM herald_campaigns WHERE account = $1 AND name = $2")
                .bind(account)
                .bind(name.to_owned())
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        Ok(CampaignId(id))
    }

    /// The campaigns of `account`, newest first (archived ones only if asked).
    pub async fn campaigns(&self, account: u64, include_archived: bool) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM herald_campaigns
             WHERE account = $1 AND (archived = 0 OR $2 = 1) ORDER BY created_at DESC, id DESC"
        ))
        .bind(account_i64(account)?)
        .bind(i64::from(include_archived))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_row).collect()
    }

    /// Campaign `id` of `account` (archived or not); `None` if `account` has
    /// no such campaign.
    pub async fn campaign(&self, account: u64, id: CampaignId) -> Result<Option<Campaign>> {
        sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM herald_campaigns WHERE account = $1 AND id = $2"
        ))
        .bind(account_i64(account)?)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(campaign_row)
        .transpose()
    }

    /// Stars or unstars, archives or unarchives a campaign of `account`.
    /// Returns whether the campaign exists.
    pub async fn mark_campaign(
        &self,
        account: u64,
        id: CampaignId,
        starred: Option<bool>,
        archived: Option<bool>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE herald_campaigns SET starred = COALESCE($1, starred), archived = COALESCE($2, archived) WHERE account = $3 AND id = $4",
        )
        .bind(starred.map(i64::from))
        .bind(archived.map(i64::from))
        .bind(account_i64(account)?)
        .bind(id.0)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A page of `account`'s campaigns, newest first, and how many match `filter`.
    pub async fn campaigns_page(
        &self,
        account: u64,
        filter: &CampaignFilter,
    ) -> Result<(Vec<Campaign>, u64)> {
        let account = account_i64(account)?;
        if filter.only.as_ref().is_some_and(Vec::is_empty) {
            return Ok((Vec::new(), 0));
        }
        let mut count = Sql::new(self.backend);
        count.push("SELECT COUNT(*) FROM herald_campaigns");
        campaign_filter(&mut count, account, filter);
        let total: i64 = count.query().fetch_one(&self.pool).await?.try_get(0)?;
        let mut page = Sql::new(self.backend);
        page.push(&format!("SELECT {CAMPAIGN_COLUMNS} FROM herald_campaigns"));
        campaign_filter(&mut page, account, filter);
        page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(i64::from(filter.limit.clamp(1, 500)))
            .push(" OFFSET ")
            .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX));
        let rows = page.query().fetch_all(&self.pool).await?;
        Ok((
            rows.iter().map(campaign_row).collect::<Result<_>>()?,
            stored_u64(total)?,
        ))
    }

    /// People's opens and clicks of campaign `id` per hour, oldest first
    /// (counted at ingestion; never a scan of the event log).
    pub async fn campaign_hours(&self, account: u64, id: CampaignId) -> Result<Vec<CampaignHour>> {
        let rows = sqlx::query(
            "SELECT hour, opens, clicks FROM herald_campaign_hours WHERE account = $1 AND campaign = $2 ORDER BY hour",
        )
        .bind(account_i64(account)?)
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CampaignHour {
                    hour: from_millis(r.try_get(0)?)?,
                    opens: stored_u64(r.try_get(1)?)?,
                    clicks: stored_u64(r.try_get(2)?)?,
                })
            })
            .collect()
    }

    /// What campaign `id`'s logged events say: people's and machines' opens
    /// and clicks, links, bounce reasons, and people's opens and clicks by
    /// recipient domain, device, browser, system and country. Reads the
    /// campaign's events still in the log (at most the retention).
    pub async fn campaign_breakdown(
        &self,
        account: u64,
        id: CampaignId,
    ) -> Result<CampaignBreakdown> {
        let rows = sqlx::query(
            "SELECT kind, bot, link, label, reason, device, browser, os, country, recipient, message
             FROM herald_events WHERE account = $1 AND campaign = $2",
        )
        .bind(account_i64(account)?)
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut b = CampaignBreakdown::default();
        let mut links: LinkTally = BTreeMap::new();
        let mut reasons: BTreeMap<(EventKind, Option<String>), u64> = BTreeMap::new();
        let mut dims: [BTreeMap<String, u64>; 5] = Default::default();
        for r in &rows {
            b.events += 1;
            let kind_name: String = r.try_get(0)?;
            let Some(kind) = EventKind::parse(&kind_name) else {
                return Err(Error::Corrupt(format!("unknown event kind `{kind_name}`")));
            };
            let machine = r.try_get::<i64, _>(1)? != 0;
            match kind {
                EventKind::Open | EventKind::Click => {
                    match (kind, machine) {
                        (EventKind::Open, false) => b.human_opens += 1,
                        (EventKind::Open, true) => b.machine_opens += 1,
                        (_, false) => b.human_clicks += 1,
                        (_, true) => b.machine_clicks += 1,
                    }
                    if machine {
                        continue;
                    }
                    if kind == EventKind::Click {
                        let l = links.entry((r.try_get(2)?, r.try_get(3)?)).or_default();
                        l.0 += 1;
                        if let Some(m) = r.try_get::<Option<i64>, _>(10)? {
                            l.1.insert(m);
                        }
                    }
                    let recipient: String = r.try_get(9)?;
                    let domain = recipient
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                        .unwrap_or_default();
                    let values: [Option<String>; 5] = [
                        Some(domain),
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                    ];
                    for (dim, v) in dims.iter_mut().zip(values) {
                        *dim.entry(v.unwrap_or_default()).or_default() += 1;
                    }
                }
                EventKind::HardBounce | EventKind::SoftBounce | EventKind::Blocked => {
                    match kind {
                        EventKind::HardBounce => b.hard_bounces += 1,
                        EventKind::SoftBounce => b.soft_bounces += 1,
                        _ => b.blocked += 1,
                    }
                    *reasons.entry((kind, r.try_get(4)?)).or_default() += 1;
                }
                EventKind::SpamComplaint => b.complaints += 1,
                EventKind::Unsubscribe => b.unsubscribes += 1,
                _ => {}
            }
        }
        let most_first = |m: BTreeMap<String, u64>| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v
        };
        let [domains, devices, browsers, systems, countries] = dims;
        b.domains = most_first(domains);
        b.devices = most_first(devices);
        b.browsers = most_first(browsers);
        b.systems = most_first(systems);
        b.countries = most_first(countries);
        b.links = links
            .into_iter()
            .map(|((link, label), (clicks, messages))| LinkClicks {
                link,
                label,
                clicks,
                messages: messages.len() as u64,
            })
            .collect();
        b.links
            .sort_by(|a, b| b.clicks.cmp(&a.clicks).then_with(|| a.link.cmp(&b.link)));
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        b.bounce_reasons = reasons;
        Ok(b)
    }
}
