//! Campaigns (R-EVT-4): named per account, created for a send, starred and
//! archived; their counts move with the events ([`super::ingest`]).

use super::*;

const CAMPAIGN_COLUMNS: &str =
    "id, name, first_subject, emails, delivered, opened, clicked, starred, archived";

fn campaign_row(r: &AnyRow) -> Result<Campaign> {
    let n = |c: &str| -> Result<u64> { stored_u64(r.try_get::<i64, _>(c)?) };
    let (delivered, opened, clicked) = (n("delivered")?, n("opened")?, n("clicked")?);
    Ok(Campaign {
        id: CampaignId(r.try_get("id")?),
        name: r.try_get("name")?,
        first_subject: r.try_get("first_subject")?,
        emails: n("emails")?,
        delivered,
        opened,
        clicked,
        open_rate: rate(opened, delivered),
        click_rate: rate(clicked, delivered),
        starred: r.try_get::<i64, _>("starred")? != 0,
        archived: r.try_get::<i64, _>("archived")? != 0,
    })
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
}
