//! Exports the exact split `eval` uses, for scoring an external peer on it:
//! `cargo run -p vitrina-algo --release --example export_split -- --data PATH --format F
//!  --protocol P --seed N --out DIR` writes `DIR/train.txt` (`user item time`) and
//!  `DIR/test.txt` (`user item`),
//! and `DIR/val_train.txt`, `DIR/val_test.txt`: the validation split carved from the training
//! data that `--tune` uses, so peers can be tuned on exactly the same data.

mod common;

use std::fs::File;
use std::io::BufWriter;

fn main() {
    let args = common::Args::parse();
    let (ds, split) = args.dataset_and_split();
    let out = std::path::Path::new(args.req("out"));
    std::fs::create_dir_all(out).expect("create --out");
    split
        .export_files(&ds, args.protocol(), args.seed(), |name| {
            File::create(out.join(name)).map(BufWriter::new)
        })
        .expect("export");
    eprintln!(
        "exported {} train interactions and {} test users to {}",
        split.n_train(),
        split.test_users().count(),
        out.display()
    );
}
