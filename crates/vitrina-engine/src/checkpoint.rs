//! A checkpoint of the engine's online state: what following the log up to one sequence
//! built (visitors' recent events and purchases, live popularity, live co-visitation), so a
//! restart restores it and applies only the log after that sequence.
//!
//! Item indices are private to a process (the order products were first seen), so a
//! checkpoint carries the product id of every index it uses and a restore maps them to the
//! restoring engine's indices.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `VTRNCKPT` |
//! | 2 | format version ([`FORMAT_VERSION`]) |
//! | n | payload: sequence, model version, product ids, visitors, popularity, co-visitation |
//! | 4 | CRC-32 of everything after the magic and before the checksum |
//!
//! A wrong magic, an unknown version, a checksum mismatch or an inconsistent payload is
//! rejected with [`CheckpointError`]; nothing of it is restored.

use vitrina_core::{ActivityType, ProductId, UserId};

use crate::{online::OnlineEvent, online::UserSnapshot, trending::TrendingState};

/// The first eight bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"VTRNCKPT";
/// The format version this build writes (it reads this one and the one before).
pub const FORMAT_VERSION: u16 = 2;
/// Version 1: no rated items per visitor. Its visitors are read as forgotten (counted with
/// the evicted), so that each is read back from the log, rated items and all, on return:
/// the events a checkpoint holds would give only the ratings among the latest 100.
const FORMAT_WITHOUT_RATED: u16 = 1;

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("online state checkpoint: {0}")]
pub struct CheckpointError(String);

fn corrupt(msg: impl Into<String>) -> CheckpointError {
    CheckpointError(msg.into())
}

/// The online state as of log sequence [`OnlineCheckpoint::seq`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnlineCheckpoint {
    /// Every event up to this sequence is in the state, and none after it.
    pub seq: u64,
    /// The model active when it was taken: live co-visitation counts what that model's data
    /// range does not cover, so it is restored only under the same model.
    pub model_version: String,
    /// The product id of each item index the state uses.
    pub items: Vec<ProductId>,
    /// Visitors forgotten to stay within the limit before it was taken.
    pub evicted: u64,
    pub users: Vec<(UserId, UserSnapshot)>,
    pub trending: TrendingState,
    pub covisits: Vec<(u32, Vec<(u32, f32)>)>,
}

impl OnlineCheckpoint {
    /// Visitors' events held.
    pub fn events(&self) -> usize {
        self.users.iter().map(|(_, s)| s.events.len()).sum()
    }

    /// The checkpoint as bytes.
    pub fn write(&self) -> Vec<u8> {
        self.encode(FORMAT_VERSION)
    }

    /// The checkpoint in format `version` (an earlier one only for the tests that read it).
    fn encode(&self, version: u16) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(64 + self.events() * 10 + self.users.len() * 24));
        e.u16(version);
        e.u64(self.seq);
        e.str(&self.model_version);
        e.u64(self.items.len() as u64);
        for id in &self.items {
            e.str(id.as_str());
        }
        e.u64(self.evicted);
        e.u64(self.users.len() as u64);
        for (user, s) in &self.users {
            e.str(user.as_str());
            e.u64(s.events.len() as u64);
            for ev in &s.events {
                e.u32(ev.item);
                e.u32(ev.ts);
                e.0.push(kind_code(ev.kind));
                e.0.push(ev.value10);
            }
            e.u64(s.purchases.len() as u64);
            for (item, ts) in &s.purchases {
                e.u32(*item);
                e.u32(*ts);
            }
            if version != FORMAT_WITHOUT_RATED {
                e.u64(s.rated.len() as u64);
                s.rated.iter().for_each(|i| e.u32(*i));
            }
        }
        e.0.push(u8::from(self.trending.started));
        for r in self.trending.reference {
            e.u64(r as u64);
        }
        e.u64(self.trending.scores.len() as u64);
        for s in &self.trending.scores {
            s.iter().for_each(|v| e.u32(v.to_bits()));
        }
        e.u64(self.covisits.len() as u64);
        for (a, partners) in &self.covisits {
            e.u32(*a);
            e.u64(partners.len() as u64);
            for (b, w) in partners {
                e.u32(*b);
                e.u32(w.to_bits());
            }
        }
        let crc = crc32fast::hash(&e.0);
        let mut out = Vec::with_capacity(e.0.len() + 12);
        out.extend_from_slice(MAGIC);
        out.append(&mut e.0);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a checkpoint written by [`OnlineCheckpoint::write`], verifying it whole.
    pub fn read(bytes: &[u8]) -> Result<Self, CheckpointError> {
        if bytes.len() < MAGIC.len() + 2 + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a Vitrina checkpoint (bad magic or too short)"));
        }
        let (body, crc) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch (the file is damaged)"));
        }
        let mut d = Dec(body);
        let version = d.u16()?;
        if version != FORMAT_VERSION && version != FORMAT_WITHOUT_RATED {
            return Err(corrupt(format!(
                "unsupported format version {version}, this build reads {FORMAT_WITHOUT_RATED} and {FORMAT_VERSION}"
            )));
        }
        let seq = d.u64()?;
        let model_version = d.str()?.to_string();
        let n_items = d.len(4)?;
        let items = (0..n_items)
            .map(|_| ProductId::parse(d.str()?).map_err(|e| corrupt(format!("product id: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let item = |i: u32| {
            if (i as usize) < n_items {
                Ok(i)
            } else {
                Err(corrupt(format!("item {i} out of range")))
            }
        };
        let evicted = d.u64()?;
        let mut forgotten = 0u64;
        let n_users = d.len(12)?;
        let mut users = Vec::with_capacity(n_users);
        for _ in 0..n_users {
            let user = UserId::parse(d.str()?).map_err(|e| corrupt(format!("visitor id: {e}")))?;
            let n = d.len(10)?;
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                let (i, ts, kind, value10) = (d.u32()?, d.u32()?, d.u8()?, d.u8()?);
                let kind = ActivityType::ALL
                    .get(usize::from(kind))
                    .copied()
                    .ok_or_else(|| corrupt(format!("unknown activity code {kind}")))?;
                events.push(OnlineEvent { item: item(i)?, ts, kind, value10 });
            }
            let n = d.len(8)?;
            let mut purchases = Vec::with_capacity(n);
            for _ in 0..n {
                purchases.push((item(d.u32()?)?, d.u32()?));
            }
            if version == FORMAT_WITHOUT_RATED {
                forgotten += 1;
                continue;
            }
            let n = d.len(4)?;
            let rated = (0..n).map(|_| item(d.u32()?)).collect::<Result<Vec<_>, _>>()?;
            users.push((user, UserSnapshot { events, purchases, rated }));
        }
        let started = d.u8()? != 0;
        let mut reference = [0i64; 4];
        for r in &mut reference {
            *r = d.u64()? as i64;
        }
        let n = d.len(16)?;
        let mut scores = Vec::with_capacity(n);
        for _ in 0..n {
            scores.push([d.f32()?, d.f32()?, d.f32()?, d.f32()?]);
        }
        let n = d.len(12)?;
        let mut covisits = Vec::with_capacity(n);
        for _ in 0..n {
            let a = item(d.u32()?)?;
            let m = d.len(8)?;
            let partners = (0..m).map(|_| Ok((item(d.u32()?)?, d.f32()?))).collect::<Result<Vec<_>, _>>()?;
            covisits.push((a, partners));
        }
        if !d.0.is_empty() {
            return Err(corrupt(format!("{} bytes after the payload", d.0.len())));
        }
        Ok(Self {
            seq,
            model_version,
            items,
            evicted: evicted + forgotten,
            users,
            trending: TrendingState { scores, reference, started },
            covisits,
        })
    }
}

fn kind_code(kind: ActivityType) -> u8 {
    ActivityType::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL") as u8
}

struct Enc(Vec<u8>);

impl Enc {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CheckpointError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self) -> Result<f32, CheckpointError> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A count of things at least `min_bytes` each: larger than what is left is corrupt
    /// (and is not allocated).
    fn len(&mut self, min_bytes: usize) -> Result<usize, CheckpointError> {
        let n = self.u64()?;
        if n > (self.0.len() / min_bytes.max(1)) as u64 {
            return Err(corrupt(format!("a count of {n} exceeds what is left")));
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<&'a str, CheckpointError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> OnlineCheckpoint {
        let p = |s: &str| ProductId::parse(s).unwrap();
        OnlineCheckpoint {
            seq: 42,
            model_version: "v7".into(),
            items: vec![p("a"), p("b"), p("c")],
            evicted: 3,
            users: vec![(
                UserId::parse("u1").unwrap(),
                UserSnapshot {
                    events: vec![
                        OnlineEvent { item: 0, ts: 10, kind: ActivityType::Rating, value10: 45 },
                        OnlineEvent { item: 2, ts: 11, kind: ActivityType::Purchase, value10: 0 },
                    ],
                    purchases: vec![(2, 11)],
                    rated: vec![1, 0],
                },
            )],
            trending: TrendingState {
                scores: vec![[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, f32::MIN_POSITIVE, 7.0]],
                reference: [-5, 10, 20, i64::MAX],
                started: true,
            },
            covisits: vec![(0, vec![(1, 2.5), (2, 1.0)])],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_exactly() {
        let c = sample();
        assert_eq!(OnlineCheckpoint::read(&c.write()).unwrap(), c);
        let empty = OnlineCheckpoint::default();
        assert_eq!(OnlineCheckpoint::read(&empty.write()).unwrap(), empty);
    }

    #[test]
    fn a_checkpoint_of_the_format_before_forgets_its_visitors_to_read_them_back() {
        let c = sample();
        let read = OnlineCheckpoint::read(&c.encode(FORMAT_WITHOUT_RATED)).unwrap();
        assert!(read.users.is_empty(), "their rated items are in the log, not in the checkpoint");
        assert_eq!(read.evicted, c.evicted + 1, "counted as forgotten: read back on return");
        assert_eq!((read.seq, &read.covisits, &read.trending), (c.seq, &c.covisits, &c.trending));
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused() {
        let bytes = sample().write();
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(OnlineCheckpoint::read(&flipped).unwrap_err().0.contains("checksum"));
        assert!(OnlineCheckpoint::read(&bytes[..bytes.len() - 1]).is_err());
        assert!(OnlineCheckpoint::read(b"VTRNMODL and more bytes").unwrap_err().0.contains("magic"));
        // A consistent checksum over an inconsistent payload: an item index out of range.
        let mut bad = sample();
        bad.covisits[0].1.push((9, 1.0));
        assert!(OnlineCheckpoint::read(&bad.write()).unwrap_err().0.contains("out of range"));
        let mut future = sample().write();
        future[8] = 9;
        let crc = crc32fast::hash(&future[8..future.len() - 4]).to_le_bytes();
        let n = future.len();
        future[n - 4..].copy_from_slice(&crc);
        assert!(OnlineCheckpoint::read(&future).unwrap_err().0.contains("version 9"));
    }
}
