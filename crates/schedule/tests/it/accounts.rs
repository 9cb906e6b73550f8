//! The account store: rules acceptance, key digests, domains, deletion.

use crate::both;
use crate::db::TestDb;
use chrono::{TimeZone, Utc};
use herald_schedule::{DomainKey, Error, NewAccount, SendingRules};

both!(accounts_keys_and_domains, |db: TestDb| async move {
    let outbox = db.outbox(SendingRules::default()).await;
    let store = outbox.accounts();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
        .single()
        .unwrap();
    let new = |name: &str, tz: &str| NewAccount {
        name: name.into(),
        timezone: tz.into(),
        date_format: String::new(),
        plan: String::new(),
    };
    let a = store
        .create(&new("Shop", "Europe/Copenhagen"), now)
        .await
        .unwrap();
    assert!(!a.enabled);
    assert_eq!(a.date_format, "%Y-%m-%d");
    assert_eq!((a.plan.as_str(), a.language.as_str()), ("free", "en"));
    for (bad, field) in [
        (new("", "UTC"), "name"),
        (new("Shop\r\nX", "UTC"), "name"),
        (new("Shop", "Mars/Olympus"), "timezone"),
    ] {
        match store.create(&bad, now).await {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    let later = now + chrono::Duration::minutes(5);
    assert!(matches!(
        store
            .accept_rules(a.id, "Ulla", Some("French"), later)
            .await,
        Err(Error::Invalid {
            field: "language",
            ..
        })
    ));
    let a = store
        .accept_rules(a.id, "Ulla", Some("fr"), later)
        .await
        .unwrap();
    assert!(a.enabled);
    // The account speaks the language of the user who enabled it.
    assert_eq!(a.language, "fr");
    assert_eq!(a.rules_accepted_at, Some(later));
    // Accepting again keeps the first acceptance.
    let again = store
        .accept_rules(
            a.id,
            "Someone else",
            Some("de"),
            now + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(again.rules_accepted_by.as_deref(), Some("Ulla"));
    assert_eq!(again.language, "fr");
    // Plans: set by the operator, checked.
    assert_eq!(store.set_plan(a.id, "plus").await.unwrap().plan, "plus");
    assert!(matches!(
        store.set_plan(a.id, "Plus Ultra").await,
        Err(Error::Invalid { field: "plan", .. })
    ));
    assert!(matches!(
        store.set_plan(999, "plus").await,
        Err(Error::NotFound {
            what: "account",
            ..
        })
    ));
    // Keys by digest; an unknown digest opens nothing.
    store
        .add_key(a.id, "digest-1", "hk_abcdef", now)
        .await
        .unwrap();
    assert_eq!(store.account_for_key("digest-1").await.unwrap(), Some(a.id));
    assert_eq!(store.account_for_key("digest-2").await.unwrap(), None);
    assert!(matches!(
        store.add_key(999, "digest-3", "hk_x", now).await,
        Err(Error::NotFound {
            what: "account",
            ..
        })
    ));
    // Domains: checked, lower-cased, the first key kept, verified on request.
    let key = |s: &str| DomainKey {
        selector: s.into(),
        private_key_pem: format!("PEM {s}"),
        dns_name: format!("{s}._domainkey.shop.test"),
        txt_record: "v=DKIM1; k=rsa; p=AAAA".into(),
    };
    let d = store
        .add_domain(a.id, "Shop.TEST", &key("one"))
        .await
        .unwrap();
    assert_eq!((d.domain.as_str(), d.verified), ("shop.test", false));
    store
        .add_domain(a.id, "shop.test", &key("two"))
        .await
        .unwrap();
    assert_eq!(
        store.domain_key(a.id, "shop.test", false).await.unwrap(),
        Some(("one".into(), "PEM one".into()))
    );
    assert_eq!(
        store.domain_key(a.id, "shop.test", true).await.unwrap(),
        None
    );
    store
        .set_verified(a.id, "shop.test", true, later)
        .await
        .unwrap();
    assert!(
        store
            .domain_key(a.id, "shop.test", true)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .add_domain(a.id, "not a domain", &key("x"))
            .await
            .is_err()
    );
    let b = store.create(&new("Other", ""), now).await.unwrap();
    assert_eq!(
        store.domain(b.id, "shop.test").await.unwrap(),
        None,
        "another account's"
    );
    // Deleting the account removes its keys and domains only.
    store.add_key(b.id, "digest-b", "hk_b", now).await.unwrap();
    store.delete(a.id).await.unwrap();
    assert_eq!(store.account_for_key("digest-1").await.unwrap(), None);
    assert!(store.domains(a.id).await.unwrap().is_empty());
    assert_eq!(store.account_for_key("digest-b").await.unwrap(), Some(b.id));
    assert!(store.delete(a.id).await.is_err());
    assert_eq!(store.list().await.unwrap().len(), 1);
});
