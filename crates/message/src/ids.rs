//! Ids that cross Herald's crates, as types, so one crate's number cannot be
//! passed where another's is meant and every crate agrees on the width.

use serde::{Deserialize, Serialize};

/// A campaign's number (R-EVT-4): assigned by the event log, carried by a
/// send in the outbox, written into `Feedback-ID` and into every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub i64);

impl std::fmt::Display for CampaignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for CampaignId {
    fn from(id: i64) -> Self {
        CampaignId(id)
    }
}
