//! SMS through the configured gateway: `/v1/sms`.

use super::*;

// ---------------------------------------------------------------- SMS

/// One SMS recipient given by number.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// Phone number with country code (`+4512345678`).
    pub phone: String,
    /// The CRM's person id, if any.
    #[serde(default)]
    pub person_id: Option<String>,
    /// Person fields for the merge.
    #[serde(default)]
    pub person: BTreeMap<String, String>,
    /// Organisation fields.
    #[serde(default)]
    pub organisation: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// Who gets an SMS: stored persons (their `mobile`, else `phone`), the
/// persons of a report, or numbers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsRecipients {
    /// Person ids.
    Persons(Vec<String>),
    /// The persons of the events a report matches.
    Report(ReportQuery),
    /// Numbers.
    Numbers(Vec<NumberInput>),
}

/// `POST /v1/sms`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInput {
    /// Sender id (1-11 letters and digits, or a number); default `sms.default_sender`.
    #[serde(default)]
    pub from: Option<String>,
    /// The text, with merge fields.
    pub text: String,
    /// Who.
    pub recipients: SmsRecipients,
}

/// What happened to one text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsOutcome {
    /// The number.
    pub to: String,
    /// The CRM person.
    pub person: Option<String>,
    /// Segments the text was sent as.
    pub segments: usize,
    /// `sent` (the gateway accepted it) or `failed`.
    pub status: String,
    /// The gateway's HTTP status, if it answered.
    pub gateway_status: Option<u16>,
    /// The gateway's answer or the error.
    pub detail: String,
}

/// What `POST /v1/sms` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsSent {
    /// Texts the gateway accepted.
    pub sent: usize,
    /// Texts it refused or did not answer.
    pub failed: usize,
    /// Segments of the accepted texts.
    pub segments: usize,
    /// Recipients skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Each text.
    pub results: Vec<SmsOutcome>,
}

#[utoipa::path(post, path = "/v1/sms", tag = "api", summary = "Send an SMS through the gateway", request_body = SmsInput, responses((status = 200, description = "Each text, sent or failed", body = SmsSent), (status = 403, description = "The account is not enabled", body = Problem, content_type = "application/problem+json"), (status = 503, description = "No SMS gateway is configured", body = Problem, content_type = "application/problem+json"), Errors), security(("api_key" = [])))]
pub(crate) async fn send_sms(
    State(h): State<Arc<Herald>>,
    Tenant(a): Tenant,
    Json(input): Json<SmsInput>,
) -> ApiResult<Json<SmsSent>> {
    let account = enabled(&h, a).await?;
    let Some(gateway) = h.sms.clone() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SMS is not configured on this server (sms.gateway_url)",
        ));
    };
    let from = input
        .from
        .clone()
        .unwrap_or_else(|| gateway.config.default_sender.clone());
    crate::sms::check_sender("from", &from).map_err(|rule| Problem::invalid("from", rule))?;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    // (number, person, merge data)
    let mut targets: Vec<(String, Option<String>, MergeData)> = Vec::new();
    let ids = match &input.recipients {
        SmsRecipients::Numbers(list) => {
            for (i, n) in list.iter().enumerate() {
                let number = crate::sms::normalize_number(&n.phone).ok_or_else(|| {
                    Problem::invalid(
                        &format!("recipients[{i}].phone"),
                        format!(
                            "`{}` is not a number with country code (+4512345678)",
                            n.phone
                        ),
                    )
                })?;
                targets.push((
                    number,
                    n.person_id.clone(),
                    merge_data(&n.person, &n.organisation, &n.custom),
                ));
            }
            Vec::new()
        }
        SmsRecipients::Persons(ids) => ids.clone(),
        SmsRecipients::Report(q) => h.events.report_persons(account.id, q).await?,
    };
    if !ids.is_empty() {
        let mut records = h.events.persons(account.id, &ids).await?;
        for id in ids {
            let Some(record) = records.remove(&id) else {
                *skipped.entry("unknown person".into()).or_default() += 1;
                continue;
            };
            let v = view_of(record);
            let number = ["mobile", "phone"]
                .iter()
                .filter_map(|f| v.person.get(*f))
                .find_map(|n| crate::sms::normalize_number(n));
            let Some(number) = number else {
                *skipped.entry("no mobile number".into()).or_default() += 1;
                continue;
            };
            targets.push((
                number,
                Some(id),
                merge_data(&v.person, &v.organisation, &v.custom),
            ));
        }
    }
    let max = gateway.config.max_recipients;
    if targets.len() > max {
        return Err(Problem::invalid(
            "recipients",
            format!("at most {max} recipients per SMS send"),
        ));
    }
    let schema = schema_for(
        &h.events.field_names(account.id).await?,
        targets.iter().map(|(_, _, data)| data),
    );
    let template = herald_message::sms::SmsTemplate::compile(&input.text, &schema)
        .map_err(|e| Problem::invalid("text", e))?;
    let limit = Arc::new(tokio::sync::Semaphore::new(
        gateway.config.concurrency.max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (number, person, data)) in targets.into_iter().enumerate() {
        let (text, length) = template.render(&template.resolve(&data));
        let gateway = gateway.clone();
        let limit = Arc::clone(&limit);
        let from = from.clone();
        let reference = format!("{}-{i}", account.id);
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            let reply = gateway
                .send(&crate::sms::Sms {
                    to: &number,
                    from: &from,
                    text: &text,
                    segments: length.segments,
                    encoding: length.encoding,
                    reference: &reference,
                })
                .await;
            (i, number, person, length.segments, reply)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.map_err(Problem::internal)?);
    }
    results.sort_by_key(|r| r.0);
    let mut out = SmsSent {
        sent: 0,
        failed: 0,
        segments: 0,
        skipped,
        results: Vec::with_capacity(results.len()),
    };
    for (_, to, person, segments, reply) in results {
        if reply.accepted {
            out.sent += 1;
            out.segments += segments;
            h.metrics.sms_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            out.failed += 1;
            h.metrics.sms_failed.fetch_add(1, Ordering::Relaxed);
        }
        out.results.push(SmsOutcome {
            to,
            person,
            segments,
            status: if reply.accepted { "sent" } else { "failed" }.into(),
            gateway_status: reply.status,
            detail: reply.detail,
        });
    }
    Ok(Json(out))
}
