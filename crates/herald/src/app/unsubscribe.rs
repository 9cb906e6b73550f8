//! What a recipient's unsubscribe link leads to (R-MSG-6): Herald's page, in
//! the person's language (their `language` field, else the account's), naming
//! the sender and the address, with the seed's two choices (this kind of
//! newsletter, or all mass email from the sender); or the account's own
//! landing page, which gets the signed token and hands it back through
//! [`record_choice`].

use super::{Error, Result};
use crate::accounts::Account;
use crate::i18n::Language;
use crate::service::Herald;
use herald_eventlog::report::Namespace;
use herald_eventlog::{EventKind, NewEvent};
use herald_message::{CampaignId, TokenKind};
use herald_schedule::{StoredMessage, StoredSend};

/// What an unsubscribe stops.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Mass email of this campaign (the seed: this kind of newsletter).
    Campaign,
    /// All mass email from the account (what RFC 8058's one-click does).
    All,
}

/// Herald's unsubscribe page, as data.
#[derive(Debug, Clone)]
pub struct Landing {
    /// The page's language.
    pub language: Language,
    /// The sender as the email's `From:` named it (`Shop <news@shop.example>`).
    pub sender: String,
    /// The address the email went to.
    pub address: String,
    /// The campaign the email was in, with its name.
    pub campaign: Option<(CampaignId, String)>,
}

/// Where an unsubscribe link leads.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Herald's page.
    Page(Landing),
    /// The account's landing page, with the token appended as `herald_token`.
    Elsewhere(String),
}

fn sender_of(send: &StoredSend) -> String {
    let user = &send.sender.user;
    match &user.name {
        Some(name) if !name.trim().is_empty() => format!("{name} <{}>", user.address.as_str()),
        _ => user.address.as_str().to_owned(),
    }
}

/// The language for the person of `message`: their `language` field if
/// Herald is written in it, else the account's.
async fn language_for(h: &Herald, account: &Account, message: &StoredMessage) -> Result<Language> {
    if let Some(person) = &message.person
        && let Some(tag) = h
            .events
            .person_field(account.id, person, Namespace::Person, "language")
            .await?
        && let Some(l) = Language::parse(&tag)
    {
        return Ok(l);
    }
    Ok(super::dashboard::language_of(&account.language))
}

/// `url` with `herald_token=<token>` added to its query.
fn with_token(url: &str, token: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}herald_token={token}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Where the unsubscribe link `token` of `message` (sent in `send`) leads.
pub async fn destination(
    h: &Herald,
    message: &StoredMessage,
    send: &StoredSend,
    token: &str,
) -> Result<Destination> {
    // An unsubscribe never fails for want of account settings: without the
    // account's row (an outbox used without the account store), Herald's page
    // in English.
    let account = match h.accounts.get(message.account).await {
        Ok(a) => Some(a),
        Err(herald_schedule::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(url) = account.as_ref().and_then(|a| a.landing_page.as_ref()) {
        return Ok(Destination::Elsewhere(with_token(url, token)));
    }
    let campaign = match send.campaign {
        Some(id) => h
            .events
            .campaign(message.account, id)
            .await?
            .map(|c| (id, c.name)),
        None => None,
    };
    Ok(Destination::Page(Landing {
        language: match &account {
            Some(a) => language_for(h, a, message).await?,
            None => Language::En,
        },
        sender: sender_of(send),
        address: message.recipient.clone(),
        campaign,
    }))
}

/// The unsubscribe event for `message` with `scope` (a campaign scope
/// without a campaign is all mass email).
pub fn event(
    h: &Herald,
    message_id: i64,
    message: &StoredMessage,
    send: &StoredSend,
    scope: Scope,
) -> NewEvent {
    let mut e = NewEvent::new(
        EventKind::Unsubscribe,
        h.clock.now(),
        message.account,
        &message.recipient,
    );
    e.message = Some(message_id);
    e.campaign = send.campaign;
    e.person = message.person.clone();
    if scope == Scope::Campaign && send.campaign.is_some() {
        e.label = Some(herald_eventlog::UNSUBSCRIBE_CAMPAIGN.to_owned());
    }
    e
}

/// Records the choice a person made on `account`'s own landing page: the
/// CRM hands back the token Herald gave its page. Another account's token,
/// or one that is not an unsubscribe token, is `NotFound`.
pub async fn record_choice(h: &Herald, account: u64, token: &str, scope: Scope) -> Result<()> {
    let not_found = Error::NotFound {
        what: "unsubscribe token",
    };
    if token.len() > 500 {
        return Err(not_found);
    }
    let t = h
        .tracker
        .decode_kind(token, TokenKind::Unsubscribe)
        .map_err(|_| Error::NotFound {
            what: "unsubscribe token",
        })?;
    let id = i64::try_from(t.message.message).map_err(|_| Error::NotFound {
        what: "unsubscribe token",
    })?;
    let Some(m) = h.outbox.message(id).await? else {
        return Err(not_found);
    };
    if m.account != account || t.message.account != account {
        return Err(not_found);
    }
    let send = h.outbox.view(account, m.send_id).await?;
    h.events.ingest(&[event(h, id, &m, &send, scope)]).await?;
    Ok(())
}

/// Sets (or removes) `account`'s own unsubscribe landing page: an absolute
/// https URL (http only for localhost), at most 2,000 characters.
pub async fn set_landing_page(h: &Herald, account: u64, url: Option<&str>) -> Result<Account> {
    if let Some(u) = url {
        let rule = "an absolute https URL (http only for localhost), at most 2,000 characters, no spaces or control characters";
        let local = u.starts_with("http://localhost") || u.starts_with("http://127.0.0.1");
        let host_ok = u
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
            .is_some_and(|host| !host.is_empty() && !host.contains('@'));
        if u.len() > 2000
            || !(u.starts_with("https://") || local)
            || !host_ok
            || u.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Error::invalid("landing_page", rule));
        }
    }
    Ok(h.accounts.set_landing_page(account, url).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_joins_the_landing_pages_query() {
        for (url, want) in [
            ("https://crm.test/u", "https://crm.test/u?herald_token=T"),
            (
                "https://crm.test/u?a=1",
                "https://crm.test/u?a=1&herald_token=T",
            ),
            (
                "https://crm.test/u#top",
                "https://crm.test/u?herald_token=T#top",
            ),
        ] {
            assert_eq!(with_token(url, "T"), want);
        }
    }
}
