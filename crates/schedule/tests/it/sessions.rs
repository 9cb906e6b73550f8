//! Dashboard sign-in links and sessions: single use, expiry, idle end, sign-out.

use crate::both;
use crate::db::TestDb;
use chrono::{Duration, TimeZone, Utc};
use herald_schedule::{DashboardUser, NewAccount, SendingRules};

both!(
    links_are_single_use_and_sessions_end_when_idle,
    |db: TestDb| async move {
        let outbox = db.outbox(SendingRules::default()).await;
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .unwrap();
        let account = outbox
            .accounts()
            .create(
                &NewAccount {
                    name: "Shop".into(),
                    ..Default::default()
                },
                now,
            )
            .await
            .unwrap();
        let store = outbox.sessions();
        let user = DashboardUser {
            account: account.id,
            user: "Ulla".into(),
            language: "de".into(),
        };
        store
            .add_link("link-1", &user, now + Duration::minutes(5))
            .await
            .unwrap();
        store
            .add_link("link-2", &user, now + Duration::minutes(5))
            .await
            .unwrap();
        // Once: the second redemption of the same link gets nothing.
        let t = now + Duration::minutes(1);
        assert_eq!(
            store.redeem_link("link-1", t).await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(store.redeem_link("link-1", t).await.unwrap(), None);
        assert_eq!(store.redeem_link("no-such-link", t).await.unwrap(), None);
        // Expired: link-2 is dead at its expiry.
        assert_eq!(
            store
                .redeem_link("link-2", now + Duration::minutes(5))
                .await
                .unwrap(),
            None
        );

        let idle = Duration::minutes(30);
        store.start("session-1", &user, "csrf-1", t).await.unwrap();
        let s = store
            .session("session-1", t + Duration::minutes(20), idle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((s.user.clone(), s.csrf.as_str()), (user.clone(), "csrf-1"));
        // Used at +20 min, so still alive at +45 min (25 min idle), then gone
        // after 31 idle minutes.
        let alive = store
            .session("session-1", t + Duration::minutes(45), idle)
            .await
            .unwrap();
        assert!(alive.is_some());
        store.set_language("session-1", "fr").await.unwrap();
        let s = store
            .session("session-1", t + Duration::minutes(46), idle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.user.language, "fr");
        assert!(
            store
                .session("session-1", t + Duration::minutes(46 + 31), idle)
                .await
                .unwrap()
                .is_none()
        );

        // Sign-out and the account-wide end.
        store.start("session-2", &user, "csrf-2", t).await.unwrap();
        store.start("session-3", &user, "csrf-3", t).await.unwrap();
        assert!(store.end("session-2").await.unwrap());
        assert!(!store.end("session-2").await.unwrap());
        assert_eq!(store.end_all(account.id).await.unwrap(), 1);
        assert!(store.session("session-3", t, idle).await.unwrap().is_none());
        // Pruning removes used and expired links.
        assert_eq!(
            store.prune(now + Duration::hours(1), idle).await.unwrap(),
            2
        );
    }
);
