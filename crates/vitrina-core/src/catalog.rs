//! The shop's catalogue and users as the domain sees them.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::{ProductId, UserId, ValidationError};

/// Longest accepted product name or category.
pub const MAX_TEXT_LEN: usize = 512;
/// Largest accepted `attributes` object, serialised.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// A non-negative price kept as a decimal string with two or more fraction digits
/// (`"2499.00"`), so that no float ever rounds money.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Price(String);

impl Price {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The price as a float, for ranges and revenue sums (never for storage).
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(0.0)
    }
}

impl FromStr for Price {
    type Err = ValidationError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad =
            || ValidationError::new("price", format!("{raw:?} is not a decimal amount like \"2499.00\""));
        let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 15 || frac.len() > 4 || !digits(int) || !digits(frac) {
            return Err(bad());
        }
        if raw.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        Ok(Self(format!("{int}.{frac:0<2}")))
    }
}

impl TryFrom<&Value> for Price {
    type Error = ValidationError;
    /// Accepts `"2499.00"` or the JSON number `2499` / `2499.5`.
    fn try_from(v: &Value) -> Result<Self, Self::Error> {
        match v {
            Value::String(s) => s.parse(),
            Value::Number(n) if n.is_u64() => n.to_string().parse(),
            // 2143.0 is a whole number too (JSON does not tell integers from floats).
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && (0.0..1e15).contains(&f)) => {
                format!("{}", n.as_f64().unwrap_or(0.0) as u64).parse()
            }
            Value::Number(_) => Err(ValidationError::new(
                "price",
                "a number must be whole; write fractions as a string like \"24.99\"",
            )),
            _ => Err(ValidationError::new("price", "must be a decimal string like \"2499.00\"")),
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A catalogue item.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub category: String,
    pub price: Price,
    pub attributes: Map<String, Value>,
    pub in_stock: bool,
    pub hidden: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The attribute by which a shop dates a product's publication (RFC 3339).
pub const PUBLISHED_AT: &str = "publishedAt";

impl Product {
    /// When the product was published: its `attributes.publishedAt` when the shop dates it
    /// (an RFC 3339 time), else when it entered the catalogue. New items and the latest
    /// list go by it.
    pub fn published_at(&self) -> DateTime<Utc> {
        self.attributes
            .get(PUBLISHED_AT)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(self.created_at, |t| t.with_timezone(&Utc))
    }

    /// Whether the product may be shown to visitors at all.
    pub fn is_available(&self) -> bool {
        self.in_stock && !self.hidden
    }
}

/// A search of the catalogue: a text that a product's id, name or category contains,
/// compared in lower case (Unicode, not only ASCII). The one rule for every catalogue search
/// (`GET /api/v1/catalog/products?q=` and the Gorse item search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch(String);

impl TextSearch {
    /// The search for `raw` (trimmed of [`BLANK`]s); `None` when it is blank, which searches
    /// nothing. Refused when longer than [`MAX_TEXT_LEN`] characters or holding NUL.
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, ValidationError> {
        if raw.trim_matches(BLANK).is_empty() {
            return Ok(None);
        }
        check_text(field, raw).map(|t| Some(Self(t.to_lowercase())))
    }

    /// Whether `text` contains the searched text, ignoring case.
    pub fn finds(&self, text: &str) -> bool {
        text.to_lowercase().contains(&self.0)
    }

    /// Whether the product's id, name or category contains the searched text.
    pub fn finds_product(&self, product: &Product) -> bool {
        self.finds(product.id.as_str()) || self.finds(&product.name) || self.finds(&product.category)
    }
}

/// A known visitor or customer.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub name: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// Checks a required, bounded text field such as a name or category.
pub fn check_text(field: &str, raw: &str) -> Result<String, ValidationError> {
    if raw.chars().count() > MAX_TEXT_LEN {
        return Err(ValidationError::new(field, format!("must be at most {MAX_TEXT_LEN} characters")));
    }
    if raw.contains('\0') {
        // No store keeps it alike (PostgreSQL's TEXT refuses it, C strings end at it).
        return Err(ValidationError::new(field, "must not contain the NUL character (U+0000)"));
    }
    let trimmed = raw.trim_matches(BLANK);
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty or blank"));
    }
    Ok(trimmed.to_string())
}

/// The characters a text field is trimmed of (and may not consist of only): ASCII blanks.
/// Published within [`NON_BLANK_PATTERN`] and [`TEXT_PATTERN`], which every regex dialect reads alike.
pub const BLANK: [char; 6] = [' ', '\t', '\n', '\r', '\x0b', '\x0c'];

/// Matches a text that holds something besides [`BLANK`]s.
pub const NON_BLANK_PATTERN: &str = "[^ \\t\\n\\r\\v\\f]";

/// Matches what [`check_text`] accepts (length aside): something besides [`BLANK`]s, and no
/// NUL character anywhere.
pub const TEXT_PATTERN: &str = "^[^\\x00]*[^\\x00 \\t\\n\\r\\v\\f][^\\x00]*$";

/// Checks the size of a free-form attributes object.
pub fn check_attributes(field: &str, attrs: &Map<String, Value>) -> Result<(), ValidationError> {
    let size = serde_json::to_string(attrs).map(|s| s.len()).unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(ValidationError::new(
            field,
            format!("is {size} bytes; at most {MAX_ATTRIBUTES_BYTES} are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prices_are_normalised_decimal_strings() {
        assert_eq!("2499.00".parse::<Price>().unwrap().as_str(), "2499.00");
        assert_eq!("2499".parse::<Price>().unwrap().as_str(), "2499.00");
        assert_eq!("0012.5".parse::<Price>().unwrap().as_str(), "12.50");
        // A number must be whole (a float would round money); fractions come as strings.
        assert!(Price::try_from(&json!(19.99)).is_err());
        assert_eq!(Price::try_from(&json!(2143.0)).unwrap().as_str(), "2143.00");
        assert_eq!(Price::try_from(&json!(2499)).unwrap().as_str(), "2499.00");
        assert!(Price::try_from(&json!(-5)).is_err() && Price::try_from(&json!(1e15)).is_err());
        for bad in ["", "-1", "1e5", "12.", ".5", "1.23456", "abc", "1,00"] {
            assert!(bad.parse::<Price>().is_err(), "{bad:?} should be rejected");
        }
        assert!(Price::try_from(&json!(true)).is_err());
        assert!((Price::try_from(&json!("2499.5")).unwrap().to_f64() - 2499.5).abs() < 1e-9);
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(check_text("name", "  Рюкзак  ").unwrap(), "Рюкзак");
        assert!(check_text("name", "   ").is_err());
        assert!(check_text("name", " \t\n\r\u{b}\u{c}").is_err(), "only blanks");
        assert_eq!(check_text("name", "\u{85}").unwrap(), "\u{85}", "only ASCII blanks are trimmed");
        // The length counts what was sent: the schema's maxLength says the same.
        assert!(check_text("name", &format!(" {} ", "a".repeat(MAX_TEXT_LEN - 1))).is_err());
        assert!(check_text("name", &"я".repeat(MAX_TEXT_LEN + 1)).is_err());
    }

    #[test]
    fn a_search_finds_id_name_or_category_in_any_case() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let product = Product {
            id: crate::ProductId::parse("sku-42").unwrap(),
            name: "Рюкзак Городской".into(),
            category: "Bags".into(),
            price: "10".parse().unwrap(),
            attributes: Map::new(),
            in_stock: true,
            hidden: false,
            created_at: at,
            updated_at: at,
        };
        let search = |raw: &str| TextSearch::parse("q", raw).unwrap().unwrap();
        assert!(search("РЮКЗАК").finds_product(&product), "Cyrillic folds too");
        assert!(search(" городск ").finds_product(&product), "trimmed");
        assert!(search("SKU-4").finds_product(&product), "the id");
        assert!(search("bags").finds_product(&product), "the category");
        assert!(!search("shoes").finds_product(&product));
        assert_eq!(TextSearch::parse("q", " \t").unwrap(), None, "blank searches nothing");
        let long = TextSearch::parse("q", &"a".repeat(MAX_TEXT_LEN + 1)).unwrap_err();
        assert_eq!(long.field, "q");
        assert!(TextSearch::parse("q", "a\0").is_err());
    }

    #[test]
    fn text_with_a_nul_character_is_refused() {
        let err = check_text("category", "shoes\0").unwrap_err();
        assert_eq!(err.field, "category");
        assert!(err.message.contains("U+0000"), "{}", err.message);
        assert!(check_text("name", "\0").is_err());
    }
}
