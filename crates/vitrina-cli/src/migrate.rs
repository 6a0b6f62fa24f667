//! `vitrina migrate`: copies a store to another backend (a data directory to PostgreSQL, or
//! back) with a progress bar per table, then prints each table's rows and checksum on both
//! sides. Stop the servers of both stores first. Interrupted, it resumes where it stopped.

use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vitrina_store::{
    migrate::{self, TableCheck, Watch},
    Location,
};

#[derive(clap::Args)]
pub struct Args {
    /// The store to copy: a data directory or a PostgreSQL URL.
    #[arg(long)]
    from: String,
    /// The store to copy into (created when new; a partly copied one is continued).
    #[arg(long)]
    to: String,
}

/// Exit 0 when every table matches on both sides, 1 otherwise.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (from, to) = (Location::parse(&args.from), Location::parse(&args.to));
    eprintln!("copying {} into {}", from.describe(), to.describe());
    let mut bars = Bars { bar: None };
    let checks = migrate::migrate(&from, &to, &mut bars)
        .await
        .with_context(|| format!("migrating {} into {}", from.describe(), to.describe()))?;
    bars.done();
    println!("{}", report(&checks));
    if checks.iter().all(TableCheck::matches) {
        eprintln!("every table matches: {} holds what {} holds", to.describe(), from.describe());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("some tables differ (marked above): was the source written to during the copy?");
        Ok(ExitCode::FAILURE)
    }
}

struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Watch for Bars {
    fn table(&mut self, name: &str, rows: u64, present: u64) {
        self.done();
        let bar = ProgressBar::new(rows);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{elapsed_precise}] {bar:40} {human_pos}/{human_len} {per_sec}",
            )
            .expect("static template"),
        );
        bar.set_prefix(name.to_string());
        bar.set_position(present.min(rows));
        self.bar = Some(bar);
    }

    fn copied(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn verifying(&mut self, name: &str) {
        self.done();
        eprintln!("{name:>12}: counting and checksumming both sides");
    }
}

/// The table the command prints: one line per table.
fn report(checks: &[TableCheck]) -> String {
    let mut out = format!(
        "{:<12} {:>12} {:>12} {:>12} {:>18} {:>18}  {}",
        "table", "copied", "source", "target", "source checksum", "target checksum", "match"
    );
    for c in checks {
        out.push_str(&format!(
            "\n{:<12} {:>12} {:>12} {:>12} {:>18x} {:>18x}  {}",
            c.name,
            c.copied,
            c.source_rows,
            c.target_rows,
            c.source_checksum,
            c.target_checksum,
            if c.matches() { "yes" } else { "NO" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_marks_a_table_that_differs() {
        let check = |name: &str, target_rows| TableCheck {
            name: name.into(),
            copied: 2,
            source_rows: 2,
            target_rows,
            source_checksum: 0xab,
            target_checksum: 0xab,
        };
        let text = report(&[check("events", 2), check("users", 1)]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("events") && lines[1].ends_with("yes"), "{text}");
        assert!(lines[2].starts_with("users") && lines[2].ends_with("NO"), "{text}");
    }
}
