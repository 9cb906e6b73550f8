//! Attachment-size routing (R-MSG-7): a pure function of the attachment sizes
//! and the account's transports.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which transport a message goes out through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Route {
    /// The platform's own sending infrastructure.
    Platform,
    /// The account's fallback relay (its own SMTP server).
    Fallback,
}

/// The attachment limit of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentPolicy {
    /// Largest total size of a message's attachments, in bytes (before
    /// transfer encoding), that the platform sends itself. Default 7 MiB.
    pub platform_limit: u64,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        AttachmentPolicy {
            platform_limit: 7 * 1024 * 1024,
        }
    }
}

impl AttachmentPolicy {
    /// Routes a message whose attachments have these sizes (bytes). Up to the
    /// limit: [`Route::Platform`]; above it: [`Route::Fallback`] if the account
    /// has one, else [`Error::AttachmentsTooLarge`].
    pub fn route(&self, sizes: impl IntoIterator<Item = u64>, has_fallback: bool) -> Result<Route> {
        let total = sizes.into_iter().fold(0u64, u64::saturating_add);
        if total <= self.platform_limit {
            Ok(Route::Platform)
        } else if has_fallback {
            Ok(Route::Fallback)
        } else {
            Err(Error::AttachmentsTooLarge {
                total,
                limit: self.platform_limit,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_limit_is_seven_mebibytes() {
        let p = AttachmentPolicy::default();
        assert_eq!(p.route([7 * 1024 * 1024], false), Ok(Route::Platform));
        assert_eq!(p.route([7 * 1024 * 1024, 1], true), Ok(Route::Fallback));
        assert_eq!(
            p.route([4 << 20, 4 << 20], false),
            Err(Error::AttachmentsTooLarge {
                total: 8 << 20,
                limit: 7 << 20
            })
        );
        assert_eq!(p.route([], false), Ok(Route::Platform));
        assert_eq!(p.route([u64::MAX, u64::MAX], true), Ok(Route::Fallback));
    }

    proptest! {
        #[test]
        fn more_bytes_never_move_mail_back_to_the_platform(
            limit in 0u64..(16 << 20),
            sizes in prop::collection::vec(0u64..(8 << 20), 0..6),
            extra in 0u64..(8 << 20),
            fallback: bool,
        ) {
            let p = AttachmentPolicy { platform_limit: limit };
            let before = p.route(sizes.iter().copied(), fallback);
            let mut more = sizes.clone();
            more.push(extra);
            let after = p.route(more.iter().copied(), fallback);
            if before != Ok(Route::Platform) {
                prop_assert_ne!(after, Ok(Route::Platform));
            }
            let total: u64 = sizes.iter().sum();
            prop_assert_eq!(before.is_err(), total > limit && !fallback);
        }
    }
}
