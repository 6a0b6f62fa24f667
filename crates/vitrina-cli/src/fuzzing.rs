//! The bodies of the fuzz targets in `fuzz/`: each takes arbitrary bytes and must return
//! without panicking, whatever they hold. Kept here so that the regular test suite runs the
//! committed seed corpus through exactly the code the fuzzers exercise.

use chrono::{TimeZone, Utc};
use vitrina_core::NewActivity;
use vitrina_server::{dto::TrackRequest, extract::parse_json, routes::activity::BatchRequest};

use crate::formats::{parse_all, read_titles, Format};

/// A fixed "now": the same input must take the same path on every run.
fn now() -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000).single().expect("valid instant")
}

/// A track or batch request body as the API receives it: JSON parsing into the request types
/// (with the whole-number and field-path handling of the server) and event validation.
/// Returns how many events validated.
pub fn event_json(data: &[u8]) -> usize {
    // The batch shape first: it refuses unknown fields, a single event's does not.
    if let Ok(batch) = parse_json::<BatchRequest>(data) {
        return batch
            .events
            .into_iter()
            .filter(|e| NewActivity::validate(e.clone().into(), now()).is_ok())
            .count();
    }
    match parse_json::<TrackRequest>(data) {
        Ok(one) => usize::from(NewActivity::validate(one.into(), now()).is_ok()),
        Err(_) => 0,
    }
}

const FORMATS: [Format; 6] = [
    Format::EventsJsonl,
    Format::EventsCsv,
    Format::ProductsJsonl,
    Format::ProductsCsv,
    Format::Movielens,
    Format::MovielensCsv,
];

/// An import file: the first byte picks the format (its low seven bits) and, for MovieLens,
/// the kind of titles file (its high bit: `movies.csv` or `u.item`) that the rest starts with
/// when it holds a NUL byte (the titles end there); the rest is the file. Returns how many
/// lines parsed.
pub fn import(data: &[u8]) -> usize {
    let Some((&selector, rest)) = data.split_first() else { return 0 };
    let format = FORMATS[usize::from(selector & 0x7f) % FORMATS.len()];
    let (titles, file) = match rest.iter().position(|&b| b == 0) {
        Some(nul) if matches!(format, Format::Movielens | Format::MovielensCsv) => {
            let titles = read_titles(&rest[..nul], selector & 0x80 != 0).unwrap_or_default();
            (titles, &rest[nul + 1..])
        }
        _ => (Default::default(), rest),
    };
    // The importer reads lines as UTF-8 and stops at the first that is not.
    match std::str::from_utf8(file) {
        Ok(text) => parse_all(format, text, titles, now()),
        Err(_) => 0,
    }
}

/// Puts a valid CRC-32 (little-endian) after `body`, so that mutated inputs reach the decoders
/// instead of stopping at the checksum.
fn with_crc(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}

/// A model artefact (`vitrina_algo::artefact`): the first byte chooses between the bytes as
/// they are (odd) and the bytes after the magic with a checksum recomputed (even). A model
/// that reads writes an artefact that reads back to the same model (byte for byte once
/// written: the reader tolerates what the writer never produces, such as unknown parameter
/// names).
pub fn artefact(data: &[u8]) -> bool {
    use vitrina_algo::artefact::{read_model, write_model, MAGIC};
    let Some((&mode, rest)) = data.split_first() else { return false };
    let bytes = if mode % 2 == 1 { rest.to_vec() } else { with_crc(MAGIC, rest) };
    let Ok(model) = read_model(&bytes[..]) else { return false };
    let mut written = Vec::new();
    write_model(&model, &mut written).expect("a model that was read can be written");
    let again = read_model(&written[..]).expect("a written model reads back");
    let mut rewritten = Vec::new();
    write_model(&again, &mut rewritten).expect("a model that was read can be written");
    assert!(written == rewritten, "a model read back from its artefact writes different bytes");
    true
}

/// A model bundle (`vitrina_engine::bundle`), the file the registry stores per version; the
/// first byte as for [`artefact`].
pub fn bundle(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let bytes = if mode % 2 == 1 { rest.to_vec() } else { with_crc(vitrina_engine::bundle::MAGIC, rest) };
    vitrina_engine::ModelBundle::read(&bytes[..]).is_ok()
}
