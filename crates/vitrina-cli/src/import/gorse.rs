//! `vitrina import --format gorse`: a Gorse deployment's users, items and feedback, from a
//! directory holding its `users`, `items` and `feedback` files or from one such file (the
//! lines themselves are read by [`vitrina_cli::gorse_files`]). Users and items go first, so
//! the feedback on them finds them; an item only named by feedback is created bare, as
//! Gorse's `auto_insert_item` does. Dated feedback keeps the event ids the Gorse API gives
//! it, and undated feedback gets ids that do not depend on the import's time, so importing
//! the same files again stores nothing twice.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use chrono::Utc;
use vitrina_cli::{
    formats::join,
    gorse_files::{GorseParser, GorseRecord, GorseTable},
};
use vitrina_core::{ProductId, UserId};
use vitrina_server::gorse::{
    model::{product_of, user_record, Item},
    Gorse,
};

use super::{open_with_progress, Importer, BATCH};

/// The files to read, in order, with the table each holds.
fn files(path: &Path) -> anyhow::Result<Vec<(GorseTable, PathBuf)>> {
    if !path.is_dir() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let table = GorseTable::of_file(&name).with_context(|| {
            format!(
                "{}: name the file after its table (users…, items… or feedback…) or give the directory",
                path.display()
            )
        })?;
        return Ok(vec![(table, path.to_path_buf())]);
    }
    let mut found = Vec::new();
    for table in GorseTable::ALL {
        for ext in ["jsonl", "json", "csv"] {
            let file = path.join(format!("{}.{ext}", table.name()));
            if file.is_file() {
                found.push((table, file));
            }
        }
    }
    if found.is_empty() {
        bail!(
            "{} holds none of users.jsonl, items.jsonl, feedback.jsonl (Gorse's export) or users.csv, items.csv, feedback.csv (its tables)",
            path.display()
        );
    }
    Ok(found)
}

impl Importer<'_> {
    pub(super) async fn gorse(&mut self, path: &Path, gorse: &Gorse) -> anyhow::Result<()> {
        for (table, file) in files(path)? {
            let (reader, bar) = open_with_progress(&file)?;
            bar.set_message(table.name());
            let csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let result = self.gorse_lines(reader, table, csv, gorse, &bar).await;
            bar.finish_and_clear();
            result.with_context(|| file.display().to_string())?;
            self.flush().await?;
        }
        Ok(())
    }

    async fn gorse_lines(
        &mut self,
        reader: impl BufRead,
        table: GorseTable,
        csv: bool,
        gorse: &Gorse,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        if csv {
            // One CSV reader over the file: a quoted field may hold line breaks.
            let mut rows = ::csv::ReaderBuilder::new().from_reader(reader);
            let header = rows.headers().context("reading the header")?.clone();
            if header.iter().all(|c| c.trim().is_empty()) {
                bail!("the file is empty: a table dump starts with its header");
            }
            let parser = GorseParser::new(table, Some(&header), gorse.types.clone(), now);
            for row in rows.records() {
                // A row of uneven length is an error naming it (a cut-off dump), not a row
                // read with its last columns missing.
                let row = row?;
                // The row's number under the header, and its first line (which the CSV
                // reader counts one short in files with CRLF line ends).
                let at = row
                    .position()
                    .map_or_else(String::new, |p| format!("row {} (line {})", p.record(), p.line()));
                let record = parser.parse_row(&row).with_context(|| at.clone())?;
                self.push_gorse(record, gorse.auto_insert_item).await.with_context(|| at.clone())?;
                self.flush_when_full(table, bar).await?;
            }
            return Ok(());
        }
        let parser = GorseParser::new(table, None, gorse.types.clone(), now);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let record = parser.parse_json(&line).with_context(|| format!("line {}", i + 1))?;
            self.push_gorse(record, gorse.auto_insert_item)
                .await
                .with_context(|| format!("line {}", i + 1))?;
            self.flush_when_full(table, bar).await?;
        }
        Ok(())
    }

    async fn flush_when_full(
        &mut self,
        table: GorseTable,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        if self.events.len() >= BATCH || self.products.len() >= BATCH || self.users.len() >= BATCH {
            self.flush().await?;
            bar.set_message(format!("{}: {} events, {} products", table.name(), self.stored, self.upserted));
        }
        Ok(())
    }

    /// An item or user is stored over the record of that id, keeping what Gorse does not
    /// know of (a product's price and stock, a user's name).
    async fn push_gorse(&mut self, record: GorseRecord, auto_insert: bool) -> anyhow::Result<()> {
        let now = Utc::now();
        match record {
            GorseRecord::User(user) => {
                let existing = self.store.user(&UserId::parse(&user.user_id)?).await?;
                let record = user_record(user, existing.as_ref(), now).map_err(join)?;
                self.users.push(record);
            }
            GorseRecord::Item(item) => {
                self.seen_items.insert(item.item_id.clone());
                let existing = self.store.product(&ProductId::parse(&item.item_id)?).await?;
                self.products.push(product_of(item, existing.as_ref(), now).map_err(join)?);
            }
            GorseRecord::Feedback { event, item } => {
                if auto_insert && self.seen_items.insert(item.clone()) {
                    self.placeholders.push(product_of(Item::bare(item), None, now).map_err(join)?);
                }
                self.events.push(event);
            }
        }
        Ok(())
    }
}
