//! The suppression hook consulted when a send is accepted (R-SND-2).

use super::*;

/// The suppression hook consulted when a send is accepted (R-SND-2). The event
/// log fills it; [`NoSuppression`] suppresses nothing.
pub trait Suppression: Sync {
    /// For each address of `emails` that must not get mail of `kind` from
    /// `account` in `campaign`, why. Addresses are compared case-insensitively.
    fn suppressed(
        &self,
        account: u64,
        kind: SendKind,
        campaign: Option<herald_message::CampaignId>,
        emails: &[&str],
    ) -> impl std::future::Future<Output = Result<HashMap<String, SkipReason>>> + Send;
}

/// Suppresses nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSuppression;

impl Suppression for NoSuppression {
    async fn suppressed(
        &self,
        _: u64,
        _: SendKind,
        _: Option<herald_message::CampaignId>,
        _: &[&str],
    ) -> Result<HashMap<String, SkipReason>> {
        Ok(HashMap::new())
    }
}

/// A fixed list, lower-case addresses to reasons: for tests and embedders that
/// keep suppression elsewhere. Unsubscribes and mass-email blocks apply to mass
/// mail only; the blocklist to all mail.
#[derive(Debug, Clone, Default)]
pub struct StaticSuppression(pub HashMap<String, SkipReason>);

impl Suppression for StaticSuppression {
    async fn suppressed(
        &self,
        _: u64,
        kind: SendKind,
        _: Option<herald_message::CampaignId>,
        emails: &[&str],
    ) -> Result<HashMap<String, SkipReason>> {
        Ok(emails
            .iter()
            .filter_map(|e| {
                let key = e.to_ascii_lowercase();
                let reason = *self.0.get(&key)?;
                (reason == SkipReason::Blocklisted || kind == SendKind::Mass)
                    .then_some((key, reason))
            })
            .collect())
    }
}
