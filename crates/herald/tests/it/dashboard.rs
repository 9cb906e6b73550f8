//! The dashboard through the router (no socket): sign-in links, sessions,
//! plans, languages, and each security property the issue lists (escaping,
//! CSP, CSRF, tenant isolation, single-use links). The real-browser tests are
//! in `browser.rs`.

use crate::api::{ADMIN, Api, Reply, newsletter, persons};
use crate::db::Kind;
use crate::delivery::run_until;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

/// A CRM's view of Herald: an account on `plan` with its key.
pub async fn account_on(api: &Api, name: &str, plan: &str) -> (u64, String) {
    let (id, key) = api.account(name).await;
    let r = api
        .json(
            "PATCH",
            &format!("/v1/accounts/{id}"),
            Some(ADMIN),
            json!({"plan": plan}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["plan"], plan);
    (id, key)
}

/// A sign-in link's path (`/dashboard/signin/…`) for `user`.
pub async fn link(api: &Api, key: &str, user: &str, language: Option<&str>) -> String {
    let r = api
        .json(
            "POST",
            "/v1/dashboard/links",
            Some(key),
            json!({"user": user, "language": language}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let url = r.json()["url"].as_str().unwrap().to_owned();
    url.find("/dashboard/")
        .map(|i| url[i..].to_owned())
        .unwrap()
}

/// A request with the session cookie (and a form body for POST).
pub async fn page(api: &Api, method: &str, uri: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("herald_session={c}"));
    }
    if method == "POST" {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    api.send(req.body(Body::from(form.to_owned())).unwrap())
        .await
}

/// Signs in through `path`: the session cookie's value.
pub async fn sign_in(api: &Api, path: &str) -> String {
    let r = page(api, "GET", path, None, "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.headers[header::LOCATION], "/dashboard");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/dashboard"] {
        assert!(set.contains(attribute), "{set}");
    }
    // Secure exactly when the base URL is https (over http a browser would drop it).
    let https = api
        .rig
        .herald
        .config
        .tracking
        .base_url
        .starts_with("https://");
    assert_eq!(set.contains("; Secure"), https, "{set}");
    set.split(';')
        .next()
        .and_then(|c| c.strip_prefix("herald_session="))
        .unwrap()
        .to_owned()
}

/// The page's CSRF token (from its sign-out form).
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn links_sign_in_once_and_sessions_end(kind: Kind) {
    let api = Api::start(kind, "dash-signin").await;
    let (_, key) = account_on(&api, "Shop", "plus").await;
    let path = link(&api, &key, "Ulla", None).await;
    let cookie = sign_in(&api, &path).await;
    let r = page(&api, "GET", "/dashboard", Some(&cookie), "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Signed in as Ulla"), "{}", r.text());
    // Single use: the same link again is refused.
    let again = page(&api, "GET", &path, None, "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    // Expired: a link older than dashboard.link_secs (300) does not work.
    let late = link(&api, &key, "Ulla", None).await;
    api.rig
        .clock
        .set(api.rig.now + chrono::Duration::seconds(301));
    assert_eq!(
        page(&api, "GET", &late, None, "").await.status,
        StatusCode::NOT_FOUND
    );
    // Idle: 30 minutes without a request ends the session.
    api.rig
        .clock
        .set(api.rig.now + chrono::Duration::minutes(45));
    assert_eq!(
        page(&api, "GET", "/dashboard", Some(&cookie), "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Sign-out ends a session at once (with its CSRF token).
    let cookie = sign_in(&api, &link(&api, &key, "Ulla", None).await).await;
    let html = page(&api, "GET", "/dashboard", Some(&cookie), "")
        .await
        .text();
    let out = page(
        &api,
        "POST",
        "/dashboard/signout",
        Some(&cookie),
        &format!("csrf={}", csrf_of(&html)),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&api, "GET", "/dashboard", Some(&cookie), "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // No cookie, or a made-up one: the signed-out page.
    for c in [None, Some("forged")] {
        let r = page(&api, "GET", "/dashboard/campaigns", c, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text().contains("Please sign in"));
    }
}
on_both!(links_sign_in_once_and_sessions_end);

async fn plans_decide_who_gets_the_dashboard(kind: Kind) {
    let api = Api::start(kind, "dash-plans").await;
    let (id, key) = api.account("Shop").await;
    // A new account is on `free`: no link, and the problem says why.
    let r = api
        .json(
            "POST",
            "/v1/dashboard/links",
            Some(&key),
            json!({"user": "Ulla"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("`free`") && detail.contains("plus, enterprise"),
        "{detail}"
    );
    // Plans are checked; only the operator sets them.
    let bad = api
        .json(
            "PATCH",
            &format!("/v1/accounts/{id}"),
            Some(ADMIN),
            json!({"plan": "Gold Plus"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("plan"), "{}", bad.text());
    let by_key = api
        .json(
            "PATCH",
            &format!("/v1/accounts/{id}"),
            Some(&key),
            json!({"plan": "plus"}),
        )
        .await;
    assert_eq!(by_key.status, StatusCode::UNAUTHORIZED);
    account_on(&api, "Other", "enterprise").await;
    let r = api
        .json(
            "PATCH",
            &format!("/v1/accounts/{id}"),
            Some(ADMIN),
            json!({"plan": "enterprise"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = sign_in(&api, &link(&api, &key, "Ulla", None).await).await;
    assert_eq!(
        page(&api, "GET", "/dashboard", Some(&cookie), "")
            .await
            .status,
        StatusCode::OK
    );
    // A downgrade ends the session on its next request.
    api.json(
        "PATCH",
        &format!("/v1/accounts/{id}"),
        Some(ADMIN),
        json!({"plan": "free"}),
    )
    .await;
    assert_eq!(
        page(&api, "GET", "/dashboard", Some(&cookie), "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Bad input to the link names the field.
    let (_, plus_key) = account_on(&api, "Third", "plus").await;
    let r = api
        .json(
            "POST",
            "/v1/dashboard/links",
            Some(&plus_key),
            json!({"user": "Ulla\r\nX"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("user"), "{}", r.text());
}
on_both!(plans_decide_who_gets_the_dashboard);

#[tokio::test]
async fn the_language_is_the_accepting_users_then_the_links_then_english() {
    let api = Api::start(Kind::Sqlite, "dash-lang").await;
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            Some(ADMIN),
            json!({"name": "Boutique", "plan": "plus"}),
        )
        .await;
    let key = r.json()["api_key"]["key"].as_str().unwrap().to_owned();
    let r = api
        .json(
            "POST",
            "/v1/account/rules",
            Some(&key),
            json!({"accepted_by": "Amélie", "language": "fr-CA"}),
        )
        .await;
    assert_eq!(r.json()["language"], "fr");
    for (asked, lang, word) in [
        (None, "fr", "Campagnes"),
        (Some("de"), "de", "Kampagnen"),
        (Some("es-MX"), "es", "Campañas"),
        (Some("tlh"), "en", "Campaigns"),
    ] {
        let cookie = sign_in(&api, &link(&api, &key, "Amélie", asked).await).await;
        let html = page(&api, "GET", "/dashboard/campaigns", Some(&cookie), "")
            .await
            .text();
        assert!(
            html.contains(&format!("<html lang=\"{lang}\">")),
            "{asked:?}"
        );
        assert!(html.contains(word), "{asked:?}: {word}");
    }
    // Switching language in the session.
    let cookie = sign_in(&api, &link(&api, &key, "Amélie", None).await).await;
    let html = page(&api, "GET", "/dashboard", Some(&cookie), "")
        .await
        .text();
    let r = page(
        &api,
        "POST",
        "/dashboard/language",
        Some(&cookie),
        &format!(
            "csrf={}&language=de&back=%2Fdashboard%2Fscheduled",
            csrf_of(&html)
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/dashboard/scheduled");
    let html = page(&api, "GET", "/dashboard/scheduled", Some(&cookie), "")
        .await
        .text();
    assert!(html.contains("Geplante E-Mails"), "{html}");
}

#[tokio::test]
async fn every_page_is_escaped_csp_bound_and_csrf_checked() {
    let api = Api::start(Kind::Sqlite, "dash-security").await;
    let (_, key) = account_on(&api, "Shop", "plus").await;
    let hostile = "<script>alert(1)</script>";
    let r = api
        .json(
            "PUT",
            "/v1/persons",
            Some(&key),
            json!([{"id": "p1", "person": {"first_name": hostile, "email": "p1@example.test"}, "custom": {"tier": hostile}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut send = newsletter(&["p1".to_owned()]);
    send["campaign"] = json!(hostile);
    send["subject"] = json!(format!("{hostile} news"));
    let r = api.json("POST", "/v1/sends", Some(&key), send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let campaign = r.json()["campaign_id"].as_i64().unwrap();
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 1).await;
    let cookie = sign_in(&api, &link(&api, &key, hostile, None).await).await;
    for uri in [
        "/dashboard".to_owned(),
        "/dashboard/campaigns".to_owned(),
        format!("/dashboard/campaigns/{campaign}"),
        format!("/dashboard/compare?id={campaign}"),
        "/dashboard/scheduled".to_owned(),
        "/dashboard/events".to_owned(),
        "/dashboard/persons/p1".to_owned(),
        format!("/dashboard/campaigns?q={}", "%3Cscript%3E"),
    ] {
        let r = page(&api, "GET", &uri, Some(&cookie), "").await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        let html = r.text();
        // Scripts only from the dashboard's own files, never inline (and never the hostile one).
        for script in html.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(
                tag.contains("src=\"/dashboard/assets/"),
                "{uri} has an inline script: {html}"
            );
        }
        assert!(!html.contains("<script>alert"), "{uri}");
        assert!(!html.contains(" style="), "{uri} has an inline style");
    }
    let html = page(&api, "GET", "/dashboard/campaigns", Some(&cookie), "")
        .await
        .text();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    // CSRF: a star without the session's token is refused; with it, done.
    let mark = format!("/dashboard/campaigns/{campaign}/mark");
    for form in ["starred=true", "csrf=wrong&starred=true"] {
        let r = page(&api, "POST", &mark, Some(&cookie), form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form}");
    }
    let starred = || async {
        api.json(
            "GET",
            &format!("/v1/campaigns/{campaign}"),
            Some(&key),
            json!(null),
        )
        .await
        .json()["starred"]
            .as_bool()
            .unwrap()
    };
    assert!(!starred().await);
    let r = page(
        &api,
        "POST",
        &mark,
        Some(&cookie),
        &format!(
            "csrf={}&starred=true&back=https%3A%2F%2Fevil.test%2F",
            csrf_of(&html)
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // No open redirect: `back` elsewhere goes to the dashboard.
    assert_eq!(r.headers[header::LOCATION], "/dashboard");
    assert!(starred().await);
    // A CSV export of who opened is a file, not a page.
    let r = page(
        &api,
        "GET",
        &format!("/dashboard/campaigns/{campaign}/recipients.csv?list=bounced"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
}

#[tokio::test]
async fn one_accounts_session_gets_404_for_anothers_things() {
    let api = Api::start(Kind::Sqlite, "dash-tenants").await;
    let (_, key_a) = account_on(&api, "A", "plus").await;
    let (_, key_b) = account_on(&api, "B", "plus").await;
    api.json("PUT", "/v1/persons", Some(&key_b), persons("b", 2))
        .await;
    let ids: Vec<String> = (0..2).map(|i| format!("b-{i}")).collect();
    let mut send = newsletter(&ids);
    send["scheduled_at"] = json!((api.rig.now + chrono::Duration::days(1)).to_rfc3339());
    let r = api.json("POST", "/v1/sends", Some(&key_b), send).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    let (send_id, campaign) = (
        v["send_id"].as_i64().unwrap(),
        v["campaign_id"].as_i64().unwrap(),
    );
    let a = sign_in(&api, &link(&api, &key_a, "Anna", None).await).await;
    let b = sign_in(&api, &link(&api, &key_b, "Bo", None).await).await;
    for uri in [
        format!("/dashboard/campaigns/{campaign}"),
        format!("/dashboard/campaigns/{campaign}/recipients.csv"),
        format!("/dashboard/scheduled/{send_id}"),
        "/dashboard/persons/b-0".to_owned(),
    ] {
        assert_eq!(
            page(&api, "GET", &uri, Some(&a), "").await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
        assert_eq!(
            page(&api, "GET", &uri, Some(&b), "").await.status,
            StatusCode::OK,
            "{uri}"
        );
    }
    // A's session cannot delete or star B's things, even with its own CSRF token.
    let html = page(&api, "GET", "/dashboard", Some(&a), "").await.text();
    let csrf = csrf_of(&html);
    let r = page(
        &api,
        "POST",
        &format!("/dashboard/scheduled/{send_id}/delete"),
        Some(&a),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = page(
        &api,
        "POST",
        &format!("/dashboard/campaigns/{campaign}/mark"),
        Some(&a),
        &format!("csrf={csrf}&starred=true"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // B's own scheduled list shows the send; B deletes it after the confirmation.
    let list = page(&api, "GET", "/dashboard/scheduled", Some(&b), "")
        .await
        .text();
    assert!(
        list.contains("* Broadcast *") && list.contains(&format!("data-send=\"{send_id}\"")),
        "{list}"
    );
    let confirm = page(
        &api,
        "GET",
        &format!("/dashboard/scheduled/{send_id}?confirm=true"),
        Some(&b),
        "",
    )
    .await
    .text();
    assert!(confirm.contains("Delete this send?"));
    let r = page(
        &api,
        "POST",
        &format!("/dashboard/scheduled/{send_id}/delete"),
        Some(&b),
        &format!("csrf={}", csrf_of(&confirm)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Emails cancelled: 2."), "{}", r.text());
    let list = page(&api, "GET", "/dashboard/scheduled", Some(&b), "")
        .await
        .text();
    assert!(
        !list.contains(&format!("data-send=\"{send_id}\"")),
        "{list}"
    );
}

/// A request to a tracking path with `Accept-Language`.
async fn tracking(api: &Api, method: &str, uri: &str, language: &str, form: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT_LANGUAGE, language)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    api.send(req).await
}

#[tokio::test]
async fn the_unsubscribe_page_speaks_the_persons_language_and_stops_one_campaign_or_all() {
    let api = Api::start(Kind::Sqlite, "dash-unsubscribe").await;
    let (_, key) = api.account("Shop").await;
    let r = api
        .json(
            "PUT",
            "/v1/persons",
            Some(&key),
            json!([{"id": "p-0", "person": {"first_name": "Jonas", "email": "p0@example.test", "language": "de"}, "custom": {"tier": "gold"}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let send = |campaign: &str| {
        let mut s = newsletter(&["p-0".to_owned()]);
        s["campaign"] = json!(campaign);
        s
    };
    let queued = |campaign: &'static str| {
        let api = &api;
        let key = key.clone();
        async move {
            let r = api
                .json("POST", "/v1/sends", Some(&key), send(campaign))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            r.json()["queued"].as_u64().unwrap()
        }
    };
    assert_eq!(queued("Monthly news").await, 1);
    run_until(&api.rig.herald, &api.rig.stats, |s| s.done() >= 1).await;
    let (_, unsubscribe) = crate::tracking::last_mail(&api.rig);
    let unsubscribe = unsubscribe.unwrap();
    // In the person's language (German), naming the sender, the address and the campaign.
    let r = tracking(&api, "GET", &unsubscribe, "fr", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    for text in [
        "Shop &lt;news@shop.test&gt;",
        "p0@example.test",
        "Monthly news",
        "data-scope=\"campaign\"",
        "data-scope=\"all\"",
    ] {
        assert!(html.contains(text), "{text}: {html}");
    }
    assert!(
        r.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!html.contains(" style="), "no inline style under the CSP");
    // This kind of newsletter only: the campaign stops, other mass mail goes on.
    let r = tracking(&api, "POST", &unsubscribe, "fr", "scope=campaign").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Monthly news"), "{}", r.text());
    assert_eq!(queued("Monthly news").await, 0);
    assert_eq!(queued("Other news").await, 1);
    // A link that is not valid: in the browser's language.
    let r = tracking(&api, "GET", "/u/not-a-token", "fr-FR,fr;q=0.9", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("Lien introuvable"), "{}", r.text());

    // The account's own landing page: checked, then the link leads there with the token.
    for bad in [
        "javascript:alert(1)",
        "http://crm.test/u",
        "https://",
        "https://a b.test/",
    ] {
        let r = api
            .json(
                "PATCH",
                "/v1/account",
                Some(&key),
                json!({"landing_page": bad}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert!(r.text().contains("landing_page"));
    }
    let r = api
        .json(
            "PATCH",
            "/v1/account",
            Some(&key),
            json!({"landing_page": "https://crm.test/unsub?list=1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = tracking(&api, "GET", &unsubscribe, "en", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let location = r.headers[header::LOCATION].to_str().unwrap().to_owned();
    let token = location
        .strip_prefix("https://crm.test/unsub?list=1&herald_token=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    // The CRM hands the token back with the person's choice; another account cannot.
    let (_, other) = api.account("Other").await;
    let r = api
        .json(
            "POST",
            "/v1/unsubscribes",
            Some(&other),
            json!({"token": token, "scope": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .json(
            "POST",
            "/v1/unsubscribes",
            Some(&key),
            json!({"token": token, "scope": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(queued("Other news").await, 0);
    let r = api
        .json(
            "POST",
            "/v1/unsubscribes",
            Some(&key),
            json!({"token": "forged", "scope": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_persons_page_shows_the_blocklist_and_email_bouncing_flags() {
    let api = Api::start(Kind::Sqlite, "dash-flags").await;
    let (account, key) = account_on(&api, "Shop", "plus").await;
    api.json("PUT", "/v1/persons", Some(&key), persons("f", 1))
        .await;
    let cookie = sign_in(&api, &link(&api, &key, "Ulla", None).await).await;
    let flag = |html: &str, name: &str| {
        let row = html
            .split(&format!("data-flag=\"{name}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} row"));
        row.split("</tr>").next().unwrap().contains("<td>Yes</td>")
    };
    let html = page(&api, "GET", "/dashboard/persons/f-0", Some(&cookie), "")
        .await
        .text();
    assert!(
        !flag(&html, "blocklisted") && !flag(&html, "email_bouncing"),
        "{html}"
    );
    // A hard bounce: blocklisted and flagged as bouncing.
    let mut bounce = herald_eventlog::NewEvent::new(
        herald_eventlog::EventKind::HardBounce,
        api.rig.now,
        account,
        "f0@example.test",
    );
    bounce.person = Some("f-0".into());
    api.rig.herald.events.ingest(&[bounce]).await.unwrap();
    let html = page(&api, "GET", "/dashboard/persons/f-0", Some(&cookie), "")
        .await
        .text();
    assert!(
        flag(&html, "blocklisted") && flag(&html, "email_bouncing"),
        "{html}"
    );
    // An unblock lifts the blocklist.
    let r = api
        .json(
            "POST",
            "/v1/blocklist/unblock",
            Some(&key),
            json!({"email": "f0@example.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = page(&api, "GET", "/dashboard/persons/f-0", Some(&cookie), "")
        .await
        .text();
    assert!(!flag(&html, "blocklisted"), "{html}");
}

/// The status page shows texts apart from email once the account has any.
#[tokio::test]
async fn the_status_page_counts_texts_apart_from_email() {
    use herald::eventlog::{EventKind, NewEvent};
    let api = Api::start(Kind::Sqlite, "dash-sms").await;
    let (account, key) = account_on(&api, "Shop", "plus").await;
    let cookie = sign_in(&api, &link(&api, &key, "Ulla", None).await).await;
    let html = page(&api, "GET", "/dashboard", Some(&cookie), "")
        .await
        .text();
    assert!(!html.contains("data-live=\"sms\""), "no SMS section yet");
    let mut events = Vec::new();
    for (i, kind) in [
        EventKind::SmsProcessed,
        EventKind::SmsProcessed,
        EventKind::SmsProcessed,
        EventKind::SmsSent,
        EventKind::SmsSent,
        EventKind::SmsDelivered,
        EventKind::SmsOptOut,
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = NewEvent::new(kind, api.rig.now, account, &format!("+45200000{i:02}"));
        e.message = Some(i as i64 + 1);
        e.segments = Some(2);
        events.push(e);
    }
    api.rig.herald.events.ingest(&events).await.unwrap();
    let html = page(&api, "GET", "/dashboard", Some(&cookie), "")
        .await
        .text();
    for (metric, value) in [
        ("sms_processed", 3),
        ("sms_sent", 2),
        ("sms_delivered", 1),
        ("sms_segments", 6),
        ("sms_opted_out", 1),
    ] {
        let row = format!("data-metric=\"{metric}\"");
        let at = html
            .find(&row)
            .unwrap_or_else(|| panic!("{metric}: {html}"));
        let end = html[at..].find("</tr>").unwrap() + at;
        assert!(
            html[at..end].contains(&format!("data-value=\"{value}\"")),
            "{metric} = {value}: {}",
            &html[at..end]
        );
    }
    // Email's cards are untouched by texts.
    let at = html.find("data-metric=\"processed\"").unwrap();
    let end = html[at..].find("</li>").unwrap() + at;
    assert!(
        html[at..end].contains("data-value=\"0\""),
        "{}",
        &html[at..end]
    );
}
