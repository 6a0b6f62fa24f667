//! What a Gorse deployment's data looks like on disk, line by line, free of I/O: its REST
//! export (`GET /api/bulk/users`, `/api/bulk/items`, `/api/bulk/feedback` on the master: JSON
//! lines with Gorse's field names) and its database tables dumped as CSV with a header
//! (`users`, `items`, `feedback`: `user_id`, `item_id`, `is_hidden`, `categories`,
//! `time_stamp`, `labels`, `subscribe`, `feedback_type`, `value`, `comment`). Each line maps
//! onto Vitrina's records by the same rules as the Gorse-compatible API
//! (`vitrina_server::gorse::model`), so an imported item, user or feedback reads back through
//! that API exactly as Gorse served it.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use vitrina_core::{NewActivity, UserId};

use crate::formats::join;
use vitrina_server::gorse::model::{
    feedback_event, item_from_input, product_of, user_from_input, FeedbackInput, FeedbackTypes, GorseUser,
    GorseUserInput, Item, ItemInput, Undated,
};

/// One of a Gorse deployment's three tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GorseTable {
    Users,
    Items,
    Feedback,
}

impl GorseTable {
    /// In the order an import reads them: users and items before the feedback on them.
    pub const ALL: [GorseTable; 3] = [GorseTable::Users, GorseTable::Items, GorseTable::Feedback];

    pub fn name(self) -> &'static str {
        match self {
            GorseTable::Users => "users",
            GorseTable::Items => "items",
            GorseTable::Feedback => "feedback",
        }
    }

    /// The table a file holds, by its name: `users.jsonl`, `items.csv`, `feedback-2024.jsonl`.
    pub fn of_file(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| name.starts_with(t.name()))
    }
}

/// What one line of a Gorse file holds.
#[derive(Debug)]
pub enum GorseRecord {
    User(GorseUser),
    /// An item, checked to make a valid product (stored over the product of that id, if any).
    Item(Item),
    /// A feedback as the event it is stored as, and its item (created when missing, as
    /// Gorse's `auto_insert_item`).
    Feedback {
        event: NewActivity,
        item: String,
    },
}

/// Parses the records of one Gorse file: JSON lines, or CSV rows under a header.
pub struct GorseParser {
    table: GorseTable,
    /// The CSV header's columns, lower case; empty for JSON lines.
    columns: Vec<String>,
    types: FeedbackTypes,
    now: DateTime<Utc>,
}

impl GorseParser {
    /// `csv_header` is the header of a CSV table dump; `None` for the JSON-lines export.
    pub fn new(
        table: GorseTable,
        csv_header: Option<&csv::StringRecord>,
        types: FeedbackTypes,
        now: DateTime<Utc>,
    ) -> Self {
        let columns = csv_header
            .map(|h| h.iter().map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()).collect())
            .unwrap_or_default();
        GorseParser { table, columns, types, now }
    }

    /// One line of the JSON-lines export.
    pub fn parse_json(&self, line: &str) -> anyhow::Result<GorseRecord> {
        self.record(serde_json::from_str::<Value>(line).context("not JSON")?)
    }

    /// One row of a CSV table dump (a field may span lines: the CSV reader joins them).
    pub fn parse_row(&self, row: &csv::StringRecord) -> anyhow::Result<GorseRecord> {
        self.record(row_object(&self.columns, row)?)
    }

    fn record(&self, value: Value) -> anyhow::Result<GorseRecord> {
        if !value.is_object() {
            bail!("must be a JSON object");
        }
        Ok(match self.table {
            GorseTable::Users => {
                let input: GorseUserInput = serde_json::from_value(value).context("not a Gorse user")?;
                UserId::parse(&input.user_id).map_err(|e| anyhow::anyhow!("UserId: {e}"))?;
                GorseRecord::User(user_from_input(input))
            }
            GorseTable::Items => {
                let input: ItemInput = serde_json::from_value(value).context("not a Gorse item")?;
                let item = item_from_input(input).map_err(join)?;
                product_of(item.clone(), None, self.now).map_err(join)?;
                GorseRecord::Item(item)
            }
            GorseTable::Feedback => {
                let input: FeedbackInput = serde_json::from_value(value).context("not a Gorse feedback")?;
                let item = input.item_id.clone();
                // Undated feedback (Gorse stores it at its zero time) is dated at the import,
                // and its event id does not depend on that: importing again stores it once.
                let event = feedback_event(input, &self.types, self.now, Undated::SameRow).map_err(join)?;
                GorseRecord::Feedback { event, item }
            }
        })
    }
}

/// A CSV row of a table dump as the JSON object Gorse's API would take: columns by Gorse's
/// field names, JSON columns (`categories`, `labels`, `subscribe`) parsed, `is_hidden` as a
/// boolean however the database printed it. Unknown columns (ClickHouse's `version`) are
/// left out.
fn row_object(columns: &[String], record: &csv::StringRecord) -> anyhow::Result<Value> {
    let mut out = Map::new();
    for (column, raw) in columns.iter().zip(record.iter()) {
        let (field, value) = match column.as_str() {
            "user_id" => ("UserId", Value::String(raw.into())),
            "item_id" => ("ItemId", Value::String(raw.into())),
            "feedback_type" => ("FeedbackType", Value::String(raw.into())),
            "time_stamp" => ("Timestamp", Value::String(raw.into())),
            "comment" => ("Comment", Value::String(raw.into())),
            "is_hidden" => ("IsHidden", Value::Bool(flag(raw)?)),
            "value" if raw.trim().is_empty() => continue,
            "value" => ("Value", Value::from(raw.trim().parse::<f64>().context("value is not a number")?)),
            "categories" | "labels" | "subscribe" => {
                let field = match column.as_str() {
                    "categories" => "Categories",
                    "labels" => "Labels",
                    _ => "Subscribe",
                };
                if raw.trim().is_empty() || raw.trim() == "null" {
                    continue;
                }
                (field, serde_json::from_str(raw).with_context(|| format!("{column} is not JSON"))?)
            }
            _ => continue,
        };
        out.insert(field.into(), value);
    }
    Ok(Value::Object(out))
}

/// A boolean as databases print it: `t`/`f` (PostgreSQL), `1`/`0` (MySQL, SQLite), `true`/`false`.
fn flag(raw: &str) -> anyhow::Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "1" => Ok(true),
        "f" | "false" | "0" | "" => Ok(false),
        other => bail!("is_hidden must be a boolean, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One JSON line, or with a header one CSV row (read as the importer reads a file).
    fn parse(table: GorseTable, header: Option<&str>, line: &str) -> anyhow::Result<GorseRecord> {
        let now = Utc::now();
        match header {
            None => GorseParser::new(table, None, FeedbackTypes::default(), now).parse_json(line),
            Some(h) => {
                let text = format!("{h}\n{line}\n");
                let mut reader = csv::Reader::from_reader(text.as_bytes());
                let header = reader.headers()?.clone();
                let row = reader.records().next().context("a row")??;
                GorseParser::new(table, Some(&header), FeedbackTypes::default(), now).parse_row(&row)
            }
        }
    }

    #[test]
    fn the_rest_export_reads_as_the_api_takes_it() {
        let GorseRecord::Item(item) = parse(
            GorseTable::Items,
            None,
            r#"{"ItemId":"i1","IsHidden":true,"Categories":["books","new"],"Timestamp":"2022-08-07T00:26:46Z","Labels":["x"],"Comment":"A book"}"#,
        )
        .unwrap() else {
            panic!("an item")
        };
        assert_eq!(
            (item.is_hidden, item.categories.unwrap()),
            (true, vec!["books".to_string(), "new".into()])
        );
        assert_eq!((item.timestamp.as_str(), item.comment.as_str()), ("2022-08-07T00:26:46Z", "A book"));

        let GorseRecord::Feedback { event, item } = parse(
            GorseTable::Feedback,
            None,
            r#"{"FeedbackType":"star","UserId":"u1","ItemId":"i1","Value":4,"Timestamp":"2022-08-07T00:26:46Z","Comment":""}"#,
        )
        .unwrap() else {
            panic!("a feedback")
        };
        assert_eq!(item, "i1");
        assert_eq!((event.activity_type.as_str(), event.rating_value()), ("rating", Some(4.0)));
        assert_eq!(event.timestamp.to_rfc3339(), "2022-08-07T00:26:46+00:00");

        let GorseRecord::User(user) = parse(
            GorseTable::Users,
            None,
            r#"{"UserId":"u1","Labels":{"age":30},"Subscribe":null,"Comment":"c"}"#,
        )
        .unwrap() else {
            panic!("a user")
        };
        assert_eq!((user.user_id.as_str(), user.comment.as_str()), ("u1", "c"));
        assert_eq!(user.labels, Some(serde_json::json!({"age": 30})));
    }

    #[test]
    fn table_dumps_read_whatever_the_database_printed() {
        let header = "item_id,is_hidden,categories,time_stamp,labels,comment,version";
        let GorseRecord::Item(item) = parse(
            GorseTable::Items,
            Some(header),
            r#"i2,t,"[""a""]",2022-08-07 00:26:46+00,[],"x, y",2024-01-01"#,
        )
        .unwrap() else {
            panic!("an item")
        };
        assert!(item.is_hidden);
        assert_eq!(item.categories, Some(vec!["a".to_string()]));
        assert_eq!((item.timestamp.as_str(), item.comment.as_str()), ("2022-08-07T00:26:46Z", "x, y"));

        let header = "feedback_type,user_id,item_id,time_stamp,comment";
        let GorseRecord::Feedback { event, .. } =
            parse(GorseTable::Feedback, Some(header), "read,u1,i2,2022-08-07 00:26:46,").unwrap()
        else {
            panic!("a feedback")
        };
        assert_eq!(event.activity_type.as_str(), "click");

        let GorseRecord::User(user) =
            parse(GorseTable::Users, Some("user_id,labels,subscribe,comment"), r#"u9,"[""vip""]",[],"#)
                .unwrap()
        else {
            panic!("a user")
        };
        assert_eq!((user.labels, user.subscribe), (Some(serde_json::json!(["vip"])), Some(vec![])));
    }

    #[test]
    fn undated_feedback_is_dated_at_the_import_with_an_id_that_does_not_depend_on_it() {
        let event = |line: &str, now: DateTime<Utc>| match GorseParser::new(
            GorseTable::Feedback,
            None,
            FeedbackTypes::default(),
            now,
        )
        .parse_json(line)
        .unwrap()
        {
            GorseRecord::Feedback { event, .. } => event,
            other => panic!("a feedback, not {other:?}"),
        };
        let (monday, tuesday) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        for line in [
            r#"{"FeedbackType":"like","UserId":"u","ItemId":"i","Timestamp":"0001-01-01T00:00:00Z"}"#,
            r#"{"FeedbackType":"like","UserId":"u","ItemId":"i"}"#,
        ] {
            let (first, again) = (event(line, monday), event(line, tuesday));
            assert_eq!(first.event_id, again.event_id, "{line}");
            let ms = |t: DateTime<Utc>| t.timestamp_millis();
            assert_eq!((ms(first.timestamp), ms(again.timestamp)), (ms(monday), ms(tuesday)));
        }
        let dated = r#"{"FeedbackType":"like","UserId":"u","ItemId":"i","Timestamp":"2022-01-01T00:00:00Z"}"#;
        assert_ne!(
            event(dated, monday).event_id,
            event(r#"{"FeedbackType":"like","UserId":"u","ItemId":"i"}"#, monday).event_id
        );
    }

    #[test]
    fn a_csv_field_may_span_lines() {
        let GorseRecord::Item(item) =
            parse(GorseTable::Items, Some("\u{feff}item_id,comment"), "i1,\"A book\nin two lines\"").unwrap()
        else {
            panic!("an item")
        };
        assert_eq!((item.item_id.as_str(), item.comment.as_str()), ("i1", "A book\nin two lines"));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let bad = |table, header, line| parse(table, header, line).unwrap_err().to_string();
        assert!(bad(GorseTable::Items, None, r#"{"ItemId":"a b"}"#).contains("ItemId"));
        assert!(bad(
            GorseTable::Feedback,
            None,
            r#"{"FeedbackType":"like","UserId":"u","ItemId":"i","Timestamp":"yesterday"}"#
        )
        .contains("Timestamp"));
        assert!(bad(GorseTable::Users, None, "[1]").contains("object"));
        assert!(bad(GorseTable::Items, Some("item_id,is_hidden"), "i,maybe").contains("is_hidden"));
        assert!(bad(GorseTable::Items, Some("item_id,categories"), "i,[oops").contains("categories"));
        assert_eq!(GorseTable::of_file("Feedback-2024.jsonl"), Some(GorseTable::Feedback));
        assert_eq!(GorseTable::of_file("ratings.csv"), None);
    }
}
