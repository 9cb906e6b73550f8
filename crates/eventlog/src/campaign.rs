//! Campaign naming (R-EVT-4), as pure functions of the send and the account's
//! time zone and date format.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The campaign an individual email joins: `Emails YYYY MM` of the month it is
/// sent in, in the account's time zone.
pub fn individual_campaign_name(sent_at: DateTime<Utc>, tz: Tz) -> String {
    format!("Emails {}", sent_at.with_timezone(&tz).format("%Y %m"))
}

/// A mass email's default campaign name: its date in the account's date format
/// (a chrono format string such as `%d-%m-%Y`), a space, and its subject.
pub fn mass_campaign_name(
    sent_at: DateTime<Utc>,
    tz: Tz,
    date_format: &str,
    subject: &str,
) -> String {
    let date = sent_at.with_timezone(&tz).format(date_format);
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    format!("{date} {}", subject.trim()).trim().to_owned()
}

/// A campaign as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    /// Its number.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: herald_message::CampaignId,
    /// Its name (unique per account).
    pub name: String,
    /// The subject of its first email.
    pub first_subject: String,
    /// Emails sent in it.
    pub emails: u64,
    /// Delivered.
    pub delivered: u64,
    /// Delivered emails opened by a person at least once (Gmail's image proxy
    /// counts, as it fetches when the person opens; Apple Mail Privacy
    /// Protection's prefetches and bots do not).
    pub opened: u64,
    /// Delivered emails with at least one click by a person (not a scanner).
    pub clicked: u64,
    /// People's opens per delivered email: `opened / delivered` (0 when
    /// nothing was delivered).
    pub open_rate: f64,
    /// People's clicks per delivered email: `clicked / delivered`.
    pub click_rate: f64,
    /// Starred by the user.
    pub starred: bool,
    /// Archived by the user.
    pub archived: bool,
    /// Its texts, counted apart from its emails (`opted_out` is always 0 here).
    pub sms: crate::SmsTotals,
}

/// `part / whole`, 0 when `whole` is 0.
pub fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn individual_emails_join_the_month_of_the_account_s_zone() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 0)
            .single()
            .expect("valid");
        assert_eq!(
            individual_campaign_name(at, chrono_tz::UTC),
            "Emails 2026 11"
        );
        assert_eq!(
            individual_campaign_name(at, chrono_tz::Europe::Copenhagen),
            "Emails 2026 12"
        );
        assert_eq!(
            individual_campaign_name(at, chrono_tz::America::New_York),
            "Emails 2026 11"
        );
    }

    #[test]
    fn mass_names_are_date_and_subject() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 5, 8, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(
            mass_campaign_name(at, chrono_tz::UTC, "%d-%m-%Y", "Spring sale"),
            "05-03-2026 Spring sale"
        );
        assert_eq!(
            mass_campaign_name(at, chrono_tz::UTC, "%m/%d/%Y", " News\r\n "),
            "03/05/2026 News"
        );
        assert_eq!(rate(1, 4), 0.25);
        assert_eq!(rate(1, 0), 0.0);
    }

    proptest! {
        #[test]
        fn individual_names_have_the_fixed_shape(secs in 0i64..4_102_444_800) {
            let at = DateTime::from_timestamp(secs, 0).expect("in range");
            for tz in [chrono_tz::UTC, chrono_tz::Pacific::Kiritimati, chrono_tz::Pacific::Pago_Pago] {
                let name = individual_campaign_name(at, tz);
                prop_assert_eq!(name.len(), "Emails 2026 11".len());
                prop_assert!(name.starts_with("Emails "));
                let local = at.with_timezone(&tz);
                prop_assert_eq!(name, format!("Emails {:04} {:02}", chrono::Datelike::year(&local), chrono::Datelike::month(&local)));
            }
        }

        #[test]
        fn mass_names_never_hold_control_characters(subject in any::<String>(), secs in 0i64..4_102_444_800) {
            let at = DateTime::from_timestamp(secs, 0).expect("in range");
            let name = mass_campaign_name(at, chrono_tz::UTC, "%Y-%m-%d", &subject);
            prop_assert!(!name.chars().any(char::is_control));
            prop_assert!(name.starts_with(&at.format("%Y-%m-%d").to_string()));
        }
    }
}

/// Which campaigns a page of [`crate::EventLog::campaigns_page`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignFilter {
    /// Archived ones only (`true`) or unarchived ones only (`false`).
    pub archived: bool,
    /// Starred ones only.
    pub starred_only: bool,
    /// Only these campaigns (e.g. the ones with a send still scheduled).
    pub only: Option<Vec<herald_message::CampaignId>>,
    /// Not these campaigns.
    pub except: Vec<herald_message::CampaignId>,
    /// Only campaigns that sent at least one email.
    pub sent_only: bool,
    /// Only campaigns whose first subject or name contains this (any case).
    pub search: Option<String>,
    /// At most this many (1-500).
    pub limit: u32,
    /// After skipping this many.
    pub offset: u64,
}

/// People's opens and clicks of a campaign in one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignHour {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    /// Opens by people (not prefetches, not bots), every one counted.
    pub opens: u64,
    /// Clicks by people.
    pub clicks: u64,
}

/// Clicks on one link of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClicks {
    /// The link's number in the email.
    pub link: Option<i64>,
    /// Its label ("Related to").
    pub label: Option<String>,
    /// Clicks by people.
    pub clicks: u64,
    /// Messages with at least one click on it by a person.
    pub messages: u64,
}

/// What a campaign's logged events say, counted (within the event log's
/// retention; the campaign's totals are in [`Campaign`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignBreakdown {
    /// Events counted (the campaign's events still in the log).
    pub events: u64,
    /// Opens by people.
    pub human_opens: u64,
    /// Opens by bots or prefetching proxies.
    pub machine_opens: u64,
    /// Clicks by people.
    pub human_clicks: u64,
    /// Clicks by scanners and bots.
    pub machine_clicks: u64,
    /// Hard bounces.
    pub hard_bounces: u64,
    /// Soft bounces.
    pub soft_bounces: u64,
    /// Blocked.
    pub blocked: u64,
    /// Spam complaints.
    pub complaints: u64,
    /// Unsubscribes.
    pub unsubscribes: u64,
    /// Per link, most clicked first.
    pub links: Vec<LinkClicks>,
    /// Bounces and blocks by (kind, reason), most first.
    pub bounce_reasons: Vec<((crate::EventKind, Option<String>), u64)>,
    /// People's opens and clicks by recipient domain, most first.
    pub domains: Vec<(String, u64)>,
    /// … by device type.
    pub devices: Vec<(String, u64)>,
    /// … by browser.
    pub browsers: Vec<(String, u64)>,
    /// … by operating system.
    pub systems: Vec<(String, u64)>,
    /// … by country.
    pub countries: Vec<(String, u64)>,
}
