//! The report model (R-EVT-6): fields, filters, values, the query and its
//! bounds.

use super::*;

/// An event field a report can filter or sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventField {
    /// The event kind.
    Kind,
    /// The time (filter with [`Filter::Between`]).
    At,
    /// The outbox message number.
    Message,
    /// The campaign number.
    Campaign,
    /// The recipient's address.
    Recipient,
    /// The CRM's person id.
    Person,
    /// The link's index.
    Link,
    /// The link's label.
    Label,
    /// The client IP.
    Ip,
    /// The User-Agent.
    UserAgent,
    /// The SMTP reply or diagnostic.
    Reply,
    /// The client's browser.
    Browser,
    /// The client's operating system.
    Os,
    /// The client's device class.
    Device,
    /// The IP's country (ISO code).
    Country,
    /// The IP's city.
    City,
}

impl EventField {
    pub(crate) fn column(self) -> &'static str {
        match self {
            EventField::Kind => "e.kind",
            EventField::At => "e.at",
            EventField::Message => "e.message",
            EventField::Campaign => "e.campaign",
            EventField::Recipient => "e.recipient",
            EventField::Person => "e.person",
            EventField::Link => "e.link",
            EventField::Label => "e.label",
            EventField::Ip => "e.ip",
            EventField::UserAgent => "e.user_agent",
            EventField::Reply => "e.reply",
            EventField::Browser => "e.browser",
            EventField::Os => "e.os",
            EventField::Device => "e.device",
            EventField::Country => "e.country",
            EventField::City => "e.city",
        }
    }

    pub(crate) fn numeric(self) -> bool {
        matches!(
            self,
            EventField::At | EventField::Message | EventField::Campaign | EventField::Link
        )
    }
}

/// Which set of contact fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Namespace {
    /// Person fields.
    Person,
    /// The person's organisation's fields.
    Organisation,
    /// Custom fields.
    Custom,
}

impl Namespace {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Namespace::Person => "person",
            Namespace::Organisation => "organisation",
            Namespace::Custom => "custom",
        }
    }

    /// The namespace stored as `s` (the inverse of [`Namespace::as_str`]);
    /// anything else is a corrupt row.
    pub(crate) fn from_stored(s: &str) -> Result<Self> {
        match s {
            "person" => Ok(Namespace::Person),
            "organisation" => Ok(Namespace::Organisation),
            "custom" => Ok(Namespace::Custom),
            other => Err(Error::Corrupt(format!("unknown field namespace `{other}`"))),
        }
    }
}

/// A value to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Value {
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// One condition; a report's conditions all hold (AND).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Filter {
    /// `field = value`.
    Equals {
        /// The field.
        field: EventField,
        /// The value.
        value: Value,
    },
    /// The field's text contains `value`, ignoring ASCII case.
    Contains {
        /// The field.
        field: EventField,
        /// The text (at most 1,000 characters by default).
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
    /// `field` is one of `values`.
    OneOf {
        /// The field.
        field: EventField,
        /// The values (at most 1,000 by default).
        #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
        values: Vec<Value>,
    },
    /// The event happened in `[from, to)`.
    Between {
        /// Start, inclusive.
        from: DateTime<Utc>,
        /// End, exclusive.
        to: DateTime<Utc>,
    },
    /// The event is one of these kinds.
    Kinds {
        /// The kinds (at most 1,000 by default).
        #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
        kinds: Vec<EventKind>,
    },
    /// A contact field of the event's person equals `value`.
    PersonEquals {
        /// Person, organisation or custom.
        namespace: Namespace,
        /// The field's name.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        field: String,
        /// The value.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
    /// A contact field of the event's person contains `value`, ignoring ASCII case.
    PersonContains {
        /// Person, organisation or custom.
        namespace: Namespace,
        /// The field's name.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        field: String,
        /// The text.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        value: String,
    },
}

/// A report: filters, order and page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportQuery {
    /// Conditions, all of which hold (at most [`ReportLimits::max_filters`],
    /// 20 by default).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub filters: Vec<Filter>,
    /// Sort field (default: time of recording).
    #[serde(default)]
    pub sort: Option<EventField>,
    /// Newest / largest first (default true).
    #[serde(default = "yes")]
    pub descending: bool,
    /// Page size (at most 10,000; default 100).
    #[serde(default = "hundred")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub limit: i64,
    /// Rows to skip.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub offset: i64,
}

fn yes() -> bool {
    true
}

fn hundred() -> i64 {
    100
}

impl Default for ReportQuery {
    fn default() -> Self {
        ReportQuery {
            filters: Vec::new(),
            sort: None,
            descending: true,
            limit: 100,
            offset: 0,
        }
    }
}

/// The bounds one report may not exceed, so that no account's report keeps
/// the database busy for long (issue 10 §2). A report over one is refused
/// with [`Error::Limit`] naming the bound; one that still runs longer than
/// `timeout_ms` is stopped with [`Error::TimedOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportLimits {
    /// Filters per report. Default 20.
    pub max_filters: usize,
    /// Characters in one text value (`equals`, `contains`, a `one_of`
    /// value, a person field's value or name). Default 1,000.
    pub max_value_chars: usize,
    /// Values in one `one_of` or `kinds` list. Default 1,000.
    pub max_values: usize,
    /// Longest time one report query may run, in milliseconds. Default 5,000.
    pub timeout_ms: u64,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_filters: 20,
            max_value_chars: 1_000,
            max_values: 1_000,
            timeout_ms: 5_000,
        }
    }
}

impl ReportQuery {
    /// Checks the query against `limits` and its page (`limit` 1-10,000,
    /// `offset` not negative); the error names the part and the bound
    /// (`filters[3].value: at most 1000 characters`).
    pub fn check(&self, limits: &ReportLimits) -> Result<()> {
        let over = |field: String, rule: String| Err(Error::Limit { field, rule });
        if !(1..=10_000).contains(&self.limit) {
            return over("limit".into(), "must be 1-10000".into());
        }
        if self.offset < 0 {
            return over("offset".into(), "must not be negative".into());
        }
        if self.filters.len() > limits.max_filters {
            return over(
                "filters".into(),
                format!(
                    "at most {} filters in one report ({} given)",
                    limits.max_filters,
                    self.filters.len()
                ),
            );
        }
        let long = |s: &str| s.chars().count() > limits.max_value_chars;
        let chars = format!("at most {} characters", limits.max_value_chars);
        for (i, f) in self.filters.iter().enumerate() {
            match f {
                Filter::Equals {
                    value: Value::Text(v),
                    ..
                }
                | Filter::Contains { value: v, .. }
                    if long(v) =>
                {
                    return over(format!("filters[{i}].value"), chars);
                }
                Filter::OneOf { values, .. } => {
                    if values.len() > limits.max_values {
                        return over(
                            format!("filters[{i}].values"),
                            format!(
                                "at most {} values ({} given)",
                                limits.max_values,
                                values.len()
                            ),
                        );
                    }
                    if let Some(j) = values
                        .iter()
                        .position(|v| matches!(v, Value::Text(t) if long(t)))
                    {
                        return over(format!("filters[{i}].values[{j}]"), chars);
                    }
                }
                Filter::Kinds { kinds } if kinds.len() > limits.max_values => {
                    return over(
                        format!("filters[{i}].kinds"),
                        format!(
                            "at most {} kinds ({} given)",
                            limits.max_values,
                            kinds.len()
                        ),
                    );
                }
                Filter::PersonEquals { field, value, .. }
                | Filter::PersonContains { field, value, .. } => {
                    if long(field) {
                        return over(format!("filters[{i}].field"), chars);
                    }
                    if long(value) {
                        return over(format!("filters[{i}].value"), chars);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
