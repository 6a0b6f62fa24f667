//! `vitrina import`: events and products from files into the embedded store, in batches,
//! with a progress bar.
//!
//! Each batch is stored atomically. On a bad line the import stops and names the line;
//! batches before it stay stored. Events with an `eventId` (every MovieLens rating gets
//! `ml-{user}-{item}`) are idempotent, so the same file can be imported again after a fix.

use std::{
    collections::HashSet,
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vitrina_core::{
    ports::{AppendOutcome, CatalogStore, EventLog},
    ActivityInput, NewActivity, Price, Product, ProductId,
};
use vitrina_server::{dto::TrackRequest, routes::catalog::ProductInput};
use vitrina_store::SqliteStore;

use crate::config::Config;

const BATCH: usize = 10_000;

#[derive(Clone, Copy, Debug, ValueEnum)]
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
}

#[derive(clap::Args)]
pub struct Args {
    /// The file to import.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// Data directory of the embedded store.
    #[arg(long, env = "VITRINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// For MovieLens: the titles file (`u.item` or `movies.csv`) to create named products;
    /// without it, rated items become products named "Item {id}".
    #[arg(long)]
    items: Option<PathBuf>,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or(config.storage.data_dir);
    let store = SqliteStore::open(&data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    let file = File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let bar = ProgressBar::new(file.metadata()?.len());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}")
            .expect("static template"),
    );
    let reader = BufReader::new(bar.wrap_read(file));
    let mut import = Importer {
        store: &store,
        events: Vec::new(),
        products: Vec::new(),
        placeholders: Vec::new(),
        stored: 0,
        duplicates: 0,
        upserted: 0,
        seen_items: HashSet::new(),
    };
    let result = import.run(reader, args.format, args.items.as_deref(), &bar).await;
    import.flush().await?;
    bar.finish_and_clear();
    store.flush().await?;
    println!(
        "imported {} events ({} duplicates skipped) and {} products into {}",
        import.stored,
        import.duplicates,
        import.upserted,
        data_dir.display()
    );
    result
}

struct Importer<'a> {
    store: &'a SqliteStore,
    events: Vec<NewActivity>,
    products: Vec<Product>,
    /// Products named only by their id: created when missing, never overwriting a real one.
    placeholders: Vec<Product>,
    stored: u64,
    duplicates: u64,
    upserted: u64,
    /// MovieLens items already given a product.
    seen_items: HashSet<String>,
}

impl Importer<'_> {
    async fn run(
        &mut self,
        reader: impl BufRead,
        format: Format,
        items: Option<&Path>,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let titles = match (format, items) {
            (Format::Movielens | Format::MovielensCsv, Some(path)) => read_titles(path)?,
            _ => Default::default(),
        };
        let mut lines = reader.lines().enumerate();
        let mut header: Vec<String> = Vec::new();
        if matches!(format, Format::EventsCsv | Format::ProductsCsv | Format::MovielensCsv) {
            let (_, line) = lines.next().context("the file is empty")?;
            header = line?.split(',').map(|h| h.trim().to_string()).collect();
        }
        for (i, line) in lines {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let n = i + 1;
            let parsed = match format {
                Format::EventsJsonl => self.push_event(event_from_json(&line, now)),
                Format::EventsCsv => self.push_event(event_from_csv(&header, &line, now)),
                Format::ProductsJsonl => product_from_json(&line).map(|p| self.products.push(p)),
                Format::ProductsCsv => product_from_csv(&header, &line).map(|p| self.products.push(p)),
                Format::Movielens | Format::MovielensCsv => {
                    let sep = if matches!(format, Format::Movielens) { '\t' } else { ',' };
                    self.push_rating(&line, sep, &titles, now)
                }
            };
            parsed.with_context(|| format!("line {n}"))?;
            if self.events.len() >= BATCH || self.products.len() >= BATCH {
                self.flush().await?;
                bar.set_message(format!("{} events, {} products", self.stored, self.upserted));
            }
        }
        Ok(())
    }

    fn push_event(&mut self, event: anyhow::Result<NewActivity>) -> anyhow::Result<()> {
        self.events.push(event?);
        Ok(())
    }

    fn push_rating(
        &mut self,
        line: &str,
        sep: char,
        titles: &std::collections::HashMap<String, (String, String)>,
        now: chrono::DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let f: Vec<&str> = line.split(sep).map(str::trim).collect();
        let [user, item, rating, ts] = f[..] else { bail!("expected 4 fields: user, item, rating, time") };
        let value: f64 = rating.parse().context("rating is not a number")?;
        let secs: i64 = ts.parse().context("time is not unix seconds")?;
        let input = ActivityInput {
            event_id: Some(format!("ml-{user}-{item}")),
            user_id: Some(user.into()),
            activity_type: Some("rating".into()),
            product_id: Some(item.into()),
            metadata: json!({"value": value}).as_object().cloned(),
            timestamp: Some(json!(secs * 1000)),
        };
        let event = NewActivity::validate(input, now).map_err(join)?;
        if self.seen_items.insert(item.to_string()) {
            let titled = titles.get(item);
            let (name, category) =
                titled.cloned().unwrap_or_else(|| (format!("Item {item}"), "uncategorized".into()));
            let product = Product {
                id: ProductId::parse(item)?,
                name,
                category: if category.is_empty() { "uncategorized".into() } else { category },
                price: "0.00".parse::<Price>()?,
                attributes: Default::default(),
                in_stock: true,
                hidden: false,
                created_at: now,
                updated_at: now,
            };
            if titled.is_some() {
                self.products.push(product);
            } else {
                self.placeholders.push(product);
            }
        }
        self.events.push(event);
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        for p in std::mem::take(&mut self.placeholders) {
            if self.store.product(&p.id).await?.is_none() {
                self.products.push(p);
            }
        }
        if !self.products.is_empty() {
            let products = std::mem::take(&mut self.products);
            self.upserted += products.len() as u64;
            self.store.upsert_products(products).await?;
        }
        if !self.events.is_empty() {
            for outcome in self.store.append(std::mem::take(&mut self.events)).await? {
                match outcome {
                    AppendOutcome::Stored(_) => self.stored += 1,
                    AppendOutcome::Duplicate { .. } => self.duplicates += 1,
                }
            }
        }
        Ok(())
    }
}

fn join(errors: Vec<vitrina_core::ValidationError>) -> anyhow::Error {
    anyhow::anyhow!(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

fn event_from_json(line: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<NewActivity> {
    let req: TrackRequest = serde_json::from_str(line).context("not an event object")?;
    NewActivity::validate(req.into(), now).map_err(join)
}

fn field<'a>(header: &[String], values: &'a [&'a str], name: &str) -> Option<&'a str> {
    header.iter().position(|h| h == name).and_then(|i| values.get(i).copied()).filter(|v| !v.is_empty())
}

fn event_from_csv(header: &[String], line: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<NewActivity> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(line.as_bytes());
    let record = reader.records().next().context("empty line")??;
    let values: Vec<&str> = record.iter().collect();
    let metadata = match field(header, &values, "metadata") {
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw).context("metadata is not JSON")? {
            serde_json::Value::Object(m) => Some(m),
            _ => bail!("metadata must be a JSON object"),
        },
        None => None,
    };
    let timestamp = field(header, &values, "timestamp").map(|t| match t.parse::<i64>() {
        Ok(ms) => json!(ms),
        Err(_) => json!(t),
    });
    let input = ActivityInput {
        event_id: field(header, &values, "eventId").map(Into::into),
        user_id: field(header, &values, "userId").map(Into::into),
        activity_type: field(header, &values, "activityType").map(Into::into),
        product_id: field(header, &values, "productId").map(Into::into),
        metadata,
        timestamp,
    };
    NewActivity::validate(input, now).map_err(join)
}

fn product_from_json(line: &str) -> anyhow::Result<Product> {
    let input: ProductInput = serde_json::from_str(line).context("not a product object")?;
    input.into_product(None).map_err(join)
}

fn product_from_csv(header: &[String], line: &str) -> anyhow::Result<Product> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    let record = reader.records().next().context("empty line")??;
    let values: Vec<&str> = record.iter().collect();
    let flag =
        |name: &str, default: bool| field(header, &values, name).map_or(Ok(default), |v| v.parse::<bool>());
    let input = ProductInput {
        id: field(header, &values, "id").map(Into::into),
        name: field(header, &values, "name").unwrap_or_default().into(),
        category: field(header, &values, "category").unwrap_or_default().into(),
        price: json!(field(header, &values, "price").unwrap_or_default()),
        attributes: None,
        in_stock: Some(flag("inStock", true).context("inStock must be true or false")?),
        hidden: Some(flag("hidden", false).context("hidden must be true or false")?),
    };
    input.into_product(None).map_err(join)
}

/// MovieLens titles and first genre by item id, from `u.item` (`|`-separated, Latin-1) or
/// `movies.csv` (`movieId,title,genres`).
fn read_titles(path: &Path) -> anyhow::Result<std::collections::HashMap<String, (String, String)>> {
    let mut bytes = Vec::new();
    File::open(path).with_context(|| format!("opening {}", path.display()))?.read_to_end(&mut bytes)?;
    let mut out = std::collections::HashMap::new();
    if path.extension().is_some_and(|e| e == "csv") {
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
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
