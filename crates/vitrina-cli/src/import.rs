//! `vitrina import`: events and products from files into the store (a data directory or a
//! PostgreSQL database), in batches, with a progress bar.
//!
//! Each batch is stored atomically. On a bad line the import stops and names the line;
//! batches before it stay stored. Events with an `eventId` (every MovieLens rating gets
//! `ml-{user}-{item}`) are idempotent, so the same file can be imported again after a fix.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use anyhow::Context;
use chrono::Utc;
use futures_util::{StreamExt, TryStreamExt};
use indicatif::ProgressBarIter;
use indicatif::{ProgressBar, ProgressStyle};
use vitrina_cli::formats::{read_titles, Format, Line, LineParser, Titles};
use vitrina_core::{ports::AppendOutcome, NewActivity, Product, User};
use vitrina_server::gorse::Gorse;
use vitrina_store::{Opened, Store};

use crate::config::Config;

mod gorse;

const BATCH: usize = 10_000;
/// User writes in flight at once (under the PostgreSQL pool's size).
const USERS_IN_FLIGHT: usize = 8;

#[derive(clap::Args)]
pub struct Args {
    /// The file to import.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// Data directory of the embedded store.
    #[arg(long, env = "VITRINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a data directory or a PostgreSQL URL (wins over `--data-dir`).
    #[arg(long, env = "VITRINA_STORE")]
    store: Option<String>,
    /// For MovieLens: the titles file (`u.item` or `movies.csv`) to create named products;
    /// without it, rated items become products named "Item {id}".
    #[arg(long)]
    items: Option<PathBuf>,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let mut storage = config.storage.clone();
    storage.override_with(args.store.as_deref(), args.data_dir.as_deref());
    let location = storage.location();
    let opened = Opened::open(&location, storage.open_options())
        .await
        .with_context(|| format!("opening the store at {}", location.describe()))?;
    let store = opened.store();
    let mut import = Importer {
        store: store.as_ref(),
        events: Vec::new(),
        products: Vec::new(),
        placeholders: Vec::new(),
        users: Vec::new(),
        stored: 0,
        duplicates: 0,
        upserted: 0,
        users_upserted: 0,
        seen_items: HashSet::new(),
        rated_items: BTreeMap::new(),
    };
    let result = match args.format {
        Format::Gorse => {
            let gorse =
                Gorse::new(&config.gorse).map_err(|e| anyhow::anyhow!("[gorse] feedback_types: {e}"))?;
            import.gorse(&args.file, &gorse).await
        }
        format => import.file(&args.file, format, args.items.as_deref()).await,
    };
    import.finish().await?;
    let (stored, duplicates, upserted, users) =
        (import.stored, import.duplicates, import.upserted, import.users_upserted);
    drop(import);
    drop(store);
    opened.close().await;
    let users = if users > 0 { format!(", {users} users") } else { String::new() };
    println!(
        "imported {stored} events ({duplicates} duplicates skipped) and {upserted} products{users} into {}",
        location.describe()
    );
    result
}

/// A file opened for reading line by line, with a progress bar over its bytes.
fn open_with_progress(path: &Path) -> anyhow::Result<(BufReader<ProgressBarIter<File>>, ProgressBar)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bar = ProgressBar::new(file.metadata()?.len());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}")
            .expect("static template"),
    );
    Ok((BufReader::new(bar.wrap_read(file)), bar))
}

struct Importer<'a> {
    store: &'a dyn Store,
    events: Vec<NewActivity>,
    products: Vec<Product>,
    /// Products named only by their id: created when missing, never overwriting a real one.
    placeholders: Vec<Product>,
    stored: u64,
    duplicates: u64,
    upserted: u64,
    /// Users to store (Gorse's users table).
    users: Vec<User>,
    users_upserted: u64,
    /// Gorse items already given a product.
    seen_items: HashSet<String>,
    /// The products of MovieLens's rated items, whether each is titled: held until the end,
    /// so that each is dated by its earliest rating (the data's rows come in any order), not
    /// by the day of the import (which made every item look new).
    rated_items: BTreeMap<String, (Product, bool)>,
}

impl Importer<'_> {
    /// One file in one of Vitrina's formats or MovieLens.
    async fn file(&mut self, path: &Path, format: Format, items: Option<&Path>) -> anyhow::Result<()> {
        let (reader, bar) = open_with_progress(path)?;
        let result = self.lines(reader, format, items, &bar).await;
        bar.finish_and_clear();
        result
    }

    async fn lines(
        &mut self,
        reader: impl BufRead,
        format: Format,
        items: Option<&Path>,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let titles = match (format, items) {
            (Format::Movielens | Format::MovielensCsv, Some(path)) => titles_file(path)?,
            _ => Titles::new(),
        };
        let mut lines = reader.lines().enumerate();
        let mut header = None;
        if format.has_header() {
            let (_, line) = lines.next().context("the file is empty")?;
            header = Some(line?);
        }
        let parser = LineParser::new(format, header.as_deref(), titles, Utc::now());
        for (i, line) in lines {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parser.parse(&line).with_context(|| format!("line {}", i + 1))?;
            self.push(parsed, &parser);
            if self.events.len() >= BATCH || self.products.len() >= BATCH {
                self.flush().await?;
                bar.set_message(format!("{} events, {} products", self.stored, self.upserted));
            }
        }
        Ok(())
    }

    fn push(&mut self, line: Line, parser: &LineParser) {
        match line {
            Line::Event(event) => self.events.push(event),
            Line::Product(product) => self.products.push(product),
            Line::Rating { event, item } => {
                let at = event.timestamp;
                match self.rated_items.get_mut(item.as_str()) {
                    Some((product, _)) => product.created_at = product.created_at.min(at),
                    None => {
                        let (mut product, titled) = parser.product_for(&item);
                        product.created_at = at;
                        self.rated_items.insert(item.as_str().to_string(), (product, titled));
                    }
                }
                self.events.push(event);
            }
        }
    }

    /// Stores what is left, the rated items' products among it.
    async fn finish(&mut self) -> anyhow::Result<()> {
        for (_, (product, titled)) in std::mem::take(&mut self.rated_items) {
            if titled {
                self.products.push(product);
            } else {
                self.placeholders.push(product);
            }
            if self.products.len() + self.placeholders.len() >= BATCH {
                self.flush().await?;
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.users.is_empty() {
            // Several in flight, so that SQLite's writer commits what is queued together and
            // PostgreSQL uses its pool; a few, so that none waits past the pool's timeout.
            let users = std::mem::take(&mut self.users);
            let count = users.len() as u64;
            futures_util::stream::iter(users.into_iter().map(|u| self.store.upsert_user(u)))
                .buffered(USERS_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await?;
            self.users_upserted += count;
        }
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

fn titles_file(path: &Path) -> anyhow::Result<Titles> {
    let bytes = std::fs::read(path).with_context(|| format!("opening {}", path.display()))?;
    read_titles(&bytes, path.extension().is_some_and(|e| e == "csv"))
}
