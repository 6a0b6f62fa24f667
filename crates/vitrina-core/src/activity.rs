//! What visitors do: activity types and the events that record them.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{time, EventId, ProductId, UserId, ValidationError};

/// Largest accepted `metadata` object, serialised.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Amounts a purchase may carry in its metadata, each with its largest accepted value:
/// revenue and unit price in the shop's currency, and the quantity.
pub const AMOUNTS: [(&str, f64); 3] = [("revenue", 1e12), ("price", 1e12), ("quantity", 1e6)];

/// `metadata[key]` as an amount: a JSON number, or a decimal string (`"19.99"`: digits, an
/// optional point and up to 6 decimals, at most as many integer digits as the bound allows).
/// `None` when absent or not such a value; validation refuses what is out of range.
pub fn amount(metadata: &Map<String, Value>, key: &str) -> Option<f64> {
    let digits = AMOUNTS.iter().find(|(k, _)| *k == key).map_or(12, |(_, max)| max.log10() as usize);
    metadata.get(key).and_then(|v| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => decimal(s, digits).then(|| s.parse().ok()).flatten(),
        _ => None,
    })
}

/// `^[0-9]{1,int}(\.[0-9]{1,6})?$`.
fn decimal(s: &str, int: usize) -> bool {
    let (i, f) = s.split_once('.').unwrap_or((s, "1"));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (1..=int).contains(&i.len()) && (1..=6).contains(&f.len()) && all_digits(i) && all_digits(f)
}

/// The kinds of visitor activity the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    View,
    Click,
    Like,
    AddToCart,
    RemoveFromCart,
    Purchase,
    Search,
    Rating,
}

impl ActivityType {
    pub const ALL: [ActivityType; 8] = [
        Self::View,
        Self::Click,
        Self::Like,
        Self::AddToCart,
        Self::RemoveFromCart,
        Self::Purchase,
        Self::Search,
        Self::Rating,
    ];

    /// The wire name, e.g. `add_to_cart`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::Like => "like",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Purchase => "purchase",
            Self::Search => "search",
            Self::Rating => "rating",
        }
    }

    /// The domain event this activity publishes, e.g. `UserAddedToCart`.
    pub fn domain_event_name(self) -> &'static str {
        match self {
            Self::View => "UserViewedProduct",
            Self::Click => "UserClickedRecommendation",
            Self::Like => "UserLikedProduct",
            Self::AddToCart => "UserAddedToCart",
            Self::RemoveFromCart => "UserRemovedFromCart",
            Self::Purchase => "UserPurchasedProduct",
            Self::Search => "UserSearchedProducts",
            Self::Rating => "UserRatedProduct",
        }
    }

    /// Whether an event of this type must name a product.
    pub fn needs_product(self) -> bool {
        !matches!(self, Self::Search)
    }
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActivityType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
            ValidationError::new(
                "activityType",
                format!("unknown activity type {s:?}; expected one of {}", names.join(", ")),
            )
        })
    }
}

/// The raw parts of an incoming event, before validation.
#[derive(Debug, Clone, Default)]
pub struct ActivityInput {
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    pub activity_type: Option<String>,
    pub product_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub timestamp: Option<Value>,
}

/// A validated event that is not stored yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    pub event_id: EventId,
    pub user_id: UserId,
    pub activity_type: ActivityType,
    pub product_id: Option<ProductId>,
    pub metadata: Map<String, Value>,
    pub timestamp: DateTime<Utc>,
}

/// An event as the log holds it: with its position and arrival time.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredActivity {
    /// Position in the event log; strictly increasing in arrival order.
    pub seq: u64,
    pub event: NewActivity,
    pub received_at: DateTime<Utc>,
}

/// A log event reduced to what models and the engine's online state read: no metadata but
/// a rating's value. What `EventLog::scan` returns, so replaying millions of events stays
/// cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub seq: u64,
    pub user_id: UserId,
    pub product_id: Option<ProductId>,
    pub activity_type: ActivityType,
    /// Event time, unix milliseconds.
    pub ts_ms: i64,
    /// `metadata.value` of a `rating`.
    pub value: Option<f32>,
}

impl From<&StoredActivity> for LogEvent {
    fn from(s: &StoredActivity) -> Self {
        let e = &s.event;
        Self {
            seq: s.seq,
            user_id: e.user_id.clone(),
            product_id: e.product_id.clone(),
            activity_type: e.activity_type,
            ts_ms: e.timestamp.timestamp_millis(),
            value: e.rating_value().map(|v| v as f32),
        }
    }
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str, ValidationError> {
    v.as_deref().ok_or_else(|| ValidationError::new(field, "is required"))
}

impl NewActivity {
    /// Validates raw input into an event. `now` bounds the timestamp and is the default time.
    pub fn validate(input: ActivityInput, now: DateTime<Utc>) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let user_id =
            required("userId", &input.user_id).and_then(UserId::parse).map_err(|e| errors.push(e)).ok();
        let activity_type = required("activityType", &input.activity_type)
            .and_then(str::parse::<ActivityType>)
            .map_err(|e| errors.push(e))
            .ok();
        let product_id = match (&input.product_id, activity_type) {
            (Some(p), _) => ProductId::parse(p).map_err(|e| errors.push(e)).ok(),
            (None, Some(t)) if t.needs_product() => {
                errors.push(ValidationError::new("productId", format!("is required for {t}")));
                None
            }
            (None, _) => None,
        };
        let event_id = match &input.event_id {
            Some(raw) => EventId::parse(raw).map_err(|e| errors.push(e)).ok(),
            None => Some(EventId::generate()),
        };
        let timestamp = match &input.timestamp {
            None | Some(Value::Null) => Some(now),
            Some(raw) => time::parse_event_time("timestamp", raw, now).map_err(|e| errors.push(e)).ok(),
        };
        let metadata = input.metadata.unwrap_or_default();
        if let Err(e) = check_metadata(activity_type, &metadata) {
            errors.push(e);
        }
        match (user_id, activity_type, event_id, timestamp) {
            (Some(user_id), Some(activity_type), Some(event_id), Some(timestamp)) if errors.is_empty() => {
                Ok(Self { event_id, user_id, activity_type, product_id, metadata, timestamp })
            }
            _ => Err(errors),
        }
    }

    /// The rating value of a `rating` event (validated to lie in 0–10).
    pub fn rating_value(&self) -> Option<f64> {
        self.metadata.get("value").and_then(Value::as_f64)
    }

    /// The recommendation this event responds to, if the client said so.
    pub fn recommendation_id(&self) -> Option<&str> {
        self.metadata.get("recommendationId").and_then(Value::as_str)
    }
}

fn check_metadata(
    activity_type: Option<ActivityType>,
    metadata: &Map<String, Value>,
) -> Result<(), ValidationError> {
    let size = serde_json::to_string(metadata).map(|s| s.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(ValidationError::new(
            "metadata",
            format!("is {size} bytes; at most {MAX_METADATA_BYTES} are allowed"),
        ));
    }
    for (key, max) in AMOUNTS {
        if metadata.contains_key(key)
            && !amount(metadata, key).is_some_and(|v| v.is_finite() && (0.0..=max).contains(&v))
        {
            return Err(ValidationError::new(
                format!("metadata.{key}"),
                format!("must be a number from 0 to {max:e} (a JSON number or a numeric string)"),
            ));
        }
    }
    match activity_type {
        Some(ActivityType::Search) => match metadata.get("query") {
            Some(Value::String(q)) if !q.trim_matches(crate::catalog::BLANK).is_empty() => Ok(()),
            _ => Err(ValidationError::new("metadata.query", "is required for search (a non-empty string)")),
        },
        Some(ActivityType::Rating) => match metadata.get("value").and_then(Value::as_f64) {
            Some(v) if (0.0..=10.0).contains(&v) => Ok(()),
            _ => {
                Err(ValidationError::new("metadata.value", "is required for rating (a number from 0 to 10)"))
            }
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(user: &str, kind: &str, product: Option<&str>) -> ActivityInput {
        ActivityInput {
            user_id: Some(user.into()),
            activity_type: Some(kind.into()),
            product_id: product.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn all_lists_every_type_in_discriminant_order() {
        for (i, t) in ActivityType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "counters index ActivityType::ALL by discriminant");
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for t in ActivityType::ALL {
            assert_eq!(t.as_str().parse::<ActivityType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(ActivityType::AddToCart.domain_event_name(), "UserAddedToCart");
    }

    #[test]
    fn a_view_needs_user_and_product() {
        let now = Utc::now();
        let ok = NewActivity::validate(input("user-1", "view", Some("product-1")), now).unwrap();
        assert_eq!(ok.timestamp, now);
        let errs = NewActivity::validate(input("user-1", "view", None), now).unwrap_err();
        assert_eq!(errs[0].field, "productId");
        let errs = NewActivity::validate(ActivityInput::default(), now).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["userId", "activityType"]);
    }

    #[test]
    fn unknown_type_lists_the_valid_ones() {
        let errs = NewActivity::validate(input("u", "teleport", Some("p")), Utc::now()).unwrap_err();
        assert!(errs[0].message.contains("add_to_cart"), "{}", errs[0].message);
    }

    #[test]
    fn search_needs_a_query_and_rating_a_value() {
        let now = Utc::now();
        let mut search = input("u", "search", None);
        assert_eq!(NewActivity::validate(search.clone(), now).unwrap_err()[0].field, "metadata.query");
        search.metadata = Some(json!({"query": "ноутбук"}).as_object().unwrap().clone());
        NewActivity::validate(search, now).unwrap();

        let mut rating = input("u", "rating", Some("p"));
        rating.metadata = Some(json!({"value": 11}).as_object().unwrap().clone());
        assert!(NewActivity::validate(rating.clone(), now).is_err());
        rating.metadata = Some(json!({"value": 4.5}).as_object().unwrap().clone());
        assert_eq!(NewActivity::validate(rating, now).unwrap().rating_value(), Some(4.5));
    }

    #[test]
    fn amounts_must_be_finite_and_bounded() {
        let now = Utc::now();
        let with = |m: Value| {
            let mut p = input("u", "purchase", Some("p"));
            p.metadata = Some(m.as_object().unwrap().clone());
            NewActivity::validate(p, now)
        };
        for bad in [
            json!({"revenue": "1e400"}),
            json!({"revenue": -1}),
            json!({"price": "NaN"}),
            json!({"quantity": 1e7}),
            json!({"price": "abc"}),
            json!({"revenue": true}),
            json!({"quantity": "inf"}),
        ] {
            let err = with(bad.clone()).unwrap_err();
            assert!(err[0].field.starts_with("metadata."), "{bad}: {err:?}");
        }
        for good in [
            json!({"revenue": "19.99"}),
            json!({"price": 0, "quantity": 3}),
            json!({"revenue": 1e12}),
            json!({}),
        ] {
            assert!(with(good.clone()).is_ok(), "{good}");
        }
        let m = json!({"revenue": "19.5", "price": 2}).as_object().unwrap().clone();
        assert_eq!(
            (amount(&m, "revenue"), amount(&m, "price"), amount(&m, "quantity")),
            (Some(19.5), Some(2.0), None)
        );
    }

    #[test]
    fn absurd_timestamps_and_huge_metadata_are_rejected() {
        let now = Utc::now();
        let mut old = input("u", "view", Some("p"));
        old.timestamp = Some(json!("1970-01-01T00:00:00Z"));
        assert_eq!(NewActivity::validate(old, now).unwrap_err()[0].field, "timestamp");
        let mut big = input("u", "view", Some("p"));
        big.metadata = Some(json!({"blob": "x".repeat(MAX_METADATA_BYTES)}).as_object().unwrap().clone());
        assert_eq!(NewActivity::validate(big, now).unwrap_err()[0].field, "metadata");
    }
}
