//! The import file formats, line by line, free of I/O: what `vitrina import` reads and what
//! the fuzz targets (`fuzz/`) feed with arbitrary bytes.

use std::collections::HashMap;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde_json::json;
use vitrina_core::{ActivityInput, NewActivity, Price, Product, ProductId};
use vitrina_server::{dto::TrackRequest, routes::catalog::ProductInput};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One event per line, the JSON of `POST /api/v1/activity/track`.
    EventsJsonl,
    /// CSV with header `userId,activityType,productId,timestamp,eventId,metadata` (any
    /// order; all but the first two optional; `metadata` a JSON object, quoted as CSV
    /// quotes fields: `"{""value"": 4}"`).
    EventsCsv,
    /// One product per line, the JSON of `POST /api/v1/catalog/products`.
    ProductsJsonl,
    /// Header `id,name,category,price,inStock,hidden` (last two optional).
    ProductsCsv,
    /// MovieLens 100k `u.data`: user, item, rating, unix time; tab-separated.
    Movielens,
    /// MovieLens `ratings.csv`: `userId,movieId,rating,timestamp` with a header.
    MovielensCsv,
    /// A Gorse deployment's users, items and feedback: a directory holding `users`, `items`
    /// and `feedback` files, or one of them, each its REST export (`.jsonl`) or its database
    /// table dumped as CSV with a header (`.csv`); see [`crate::gorse_files`].
    Gorse,
}

impl Format {
    /// Whether the first line is a header naming the columns.
    pub fn has_header(self) -> bool {
        matches!(self, Format::EventsCsv | Format::ProductsCsv | Format::MovielensCsv)
    }
}

/// What one line of an import file holds.
#[derive(Debug)]
pub enum Line {
    Event(NewActivity),
    Product(Product),
    /// A MovieLens rating: the event and the rated item (its product from
    /// [`LineParser::product_for`], made only the first time an item is seen).
    Rating {
        event: NewActivity,
        item: ProductId,
    },
}

/// MovieLens titles and first genre by item id.
pub type Titles = HashMap<String, (String, String)>;

/// Parses the lines of one file in one format.
pub struct LineParser {
    format: Format,
    header: Vec<String>,
    titles: Titles,
    now: DateTime<Utc>,
}

impl LineParser {
    /// `header` is the file's first line for formats that have one (ignored otherwise).
    pub fn new(format: Format, header: Option<&str>, titles: Titles, now: DateTime<Utc>) -> Self {
        let header = match header {
            Some(h) if format.has_header() => h.split(',').map(|h| h.trim().to_string()).collect(),
            _ => Vec::new(),
        };
        LineParser { format, header, titles, now }
    }

    pub fn parse(&self, line: &str) -> anyhow::Result<Line> {
        Ok(match self.format {
            Format::EventsJsonl => Line::Event(self.event_from_json(line)?),
            Format::EventsCsv => Line::Event(self.event_from_csv(line)?),
            Format::ProductsJsonl => Line::Product(product_from_json(line)?),
            Format::ProductsCsv => Line::Product(self.product_from_csv(line)?),
            Format::Movielens => self.rating(line, '\t')?,
            Format::MovielensCsv => self.rating(line, ',')?,
            Format::Gorse => bail!("Gorse files are read by gorse_files::GorseParser"),
        })
    }

    fn rating(&self, line: &str, sep: char) -> anyhow::Result<Line> {
        let f: Vec<&str> = line.split(sep).map(str::trim).collect();
        let [user, item, rating, ts] = f[..] else { bail!("expected 4 fields: user, item, rating, time") };
        let value: f64 = rating.parse().context("rating is not a number")?;
        let secs: i64 = ts.parse().context("time is not unix seconds")?;
        let millis = secs.checked_mul(1000).context("time is out of range")?;
        let input = ActivityInput {
            event_id: Some(format!("ml-{user}-{item}")),
            user_id: Some(user.into()),
            activity_type: Some("rating".into()),
            product_id: Some(item.into()),
            metadata: json!({"value": value}).as_object().cloned(),
            timestamp: Some(json!(millis)),
        };
        let event = NewActivity::validate(input, self.now).map_err(join)?;
        Ok(Line::Rating { event, item: ProductId::parse(item)? })
    }

    /// The product of a rated item: named from the titles file, or else a placeholder
    /// (`false`) that must not overwrite a real product.
    pub fn product_for(&self, item: &ProductId) -> (Product, bool) {
        let titled = self.titles.get(item.as_str());
        let (name, category) =
            titled.cloned().unwrap_or_else(|| (format!("Item {item}"), "uncategorized".into()));
        let product = Product {
            id: item.clone(),
            name,
            category: if category.is_empty() { "uncategorized".into() } else { category },
            price: "0.00".parse::<Price>().expect("a valid price"),
            attributes: Default::default(),
            in_stock: true,
            hidden: false,
            created_at: self.now,
            updated_at: self.now,
        };
        (product, titled.is_some())
    }

    fn event_from_json(&self, line: &str) -> anyhow::Result<NewActivity> {
        let req: TrackRequest = serde_json::from_str(line).context("not an event object")?;
        NewActivity::validate(req.into(), self.now).map_err(join)
    }

    fn field<'a>(&self, values: &'a [&'a str], name: &str) -> Option<&'a str> {
        self.header
            .iter()
            .position(|h| h == name)
            .and_then(|i| values.get(i).copied())
            .filter(|v| !v.is_empty())
    }

    fn event_from_csv(&self, line: &str) -> anyhow::Result<NewActivity> {
        let record = csv_record(line, csv::Trim::All)?;
        let values: Vec<&str> = record.iter().collect();
        let metadata = match self.field(&values, "metadata") {
            Some(raw) => {
                match serde_json::from_str::<serde_json::Value>(raw).context("metadata is not JSON")? {
                    serde_json::Value::Object(m) => Some(m),
                    _ => bail!("metadata must be a JSON object"),
                }
            }
            None => None,
        };
        let timestamp = self.field(&values, "timestamp").map(|t| match t.parse::<i64>() {
            Ok(ms) => json!(ms),
            Err(_) => json!(t),
        });
        let input = ActivityInput {
            event_id: self.field(&values, "eventId").map(Into::into),
            user_id: self.field(&values, "userId").map(Into::into),
            activity_type: self.field(&values, "activityType").map(Into::into),
            product_id: self.field(&values, "productId").map(Into::into),
            metadata,
            timestamp,
        };
        NewActivity::validate(input, self.now).map_err(join)
    }

    fn product_from_csv(&self, line: &str) -> anyhow::Result<Product> {
        let record = csv_record(line, csv::Trim::None)?;
        let values: Vec<&str> = record.iter().collect();
        let flag =
            |name: &str, default: bool| self.field(&values, name).map_or(Ok(default), |v| v.parse::<bool>());
        let input = ProductInput {
            id: self.field(&values, "id").map(Into::into),
            name: self.field(&values, "name").unwrap_or_default().into(),
            category: self.field(&values, "category").unwrap_or_default().into(),
            price: json!(self.field(&values, "price").unwrap_or_default()),
            attributes: None,
            in_stock: Some(flag("inStock", true).context("inStock must be true or false")?),
            hidden: Some(flag("hidden", false).context("hidden must be true or false")?),
        };
        input.into_product(None).map_err(join)
    }
}

fn csv_record(line: &str, trim: csv::Trim) -> anyhow::Result<csv::StringRecord> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).trim(trim).from_reader(line.as_bytes());
    Ok(reader.records().next().context("empty line")??)
}

fn product_from_json(line: &str) -> anyhow::Result<Product> {
    let input: ProductInput = serde_json::from_str(line).context("not a product object")?;
    input.into_product(None).map_err(join)
}

/// Validation errors as one error, each named.
pub fn join(errors: Vec<vitrina_core::ValidationError>) -> anyhow::Error {
    anyhow::anyhow!(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// MovieLens titles and first genre by item id, from `movies.csv` (`movieId,title,genres`)
/// when `csv`, otherwise from `u.item` (`|`-separated, Latin-1).
pub fn read_titles(bytes: &[u8], csv: bool) -> anyhow::Result<Titles> {
    let mut out = Titles::new();
    if csv {
        let mut reader = csv::Reader::from_reader(bytes);
        for record in reader.records() {
            let r = record?;
            let genre = r.get(2).unwrap_or("").split('|').next().unwrap_or("").to_string();
            out.insert(r.get(0).unwrap_or("").to_string(), (r.get(1).unwrap_or("").to_string(), genre));
        }
    } else {
        const GENRES: [&str; 19] = [
            "unknown",
            "Action",
            "Adventure",
            "Animation",
            "Children's",
            "Comedy",
            "Crime",
            "Documentary",
            "Drama",
            "Fantasy",
            "Film-Noir",
            "Horror",
            "Musical",
            "Mystery",
            "Romance",
            "Sci-Fi",
            "Thriller",
            "War",
            "Western",
        ];
        let text: String = bytes.iter().map(|&b| b as char).collect();
        for line in text.lines() {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() < 5 {
                continue;
            }
            let genre =
                f[5..].iter().position(|g| *g == "1").and_then(|i| GENRES.get(i)).unwrap_or(&"unknown");
            out.insert(f[0].to_string(), (f[1].to_string(), genre.to_string()));
        }
    }
    Ok(out)
}

/// Every line of `text` through a parser, as the import reads a file (blank lines skipped,
/// the header taken from the first line where the format has one); the fuzz target for the
/// importers. Returns how many lines parsed.
pub fn parse_all(format: Format, text: &str, titles: Titles, now: DateTime<Utc>) -> usize {
    let mut lines = text.lines();
    let header = if format.has_header() { lines.next() } else { None };
    let parser = LineParser::new(format, header, titles, now);
    lines
        .filter(|l| !l.trim().is_empty())
        .filter(|l| match parser.parse(l) {
            Ok(Line::Rating { item, .. }) => parser.product_for(&item).0.id == item,
            Ok(_) => true,
            Err(_) => false,
        })
        .count()
}
