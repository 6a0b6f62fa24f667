//! The versioned binary artefact every model is saved in.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `VTRNMODL` |
//! | 2 | format version ([`FORMAT_VERSION`]) |
//! | 1 | model kind ([`ModelKind::code`]) |
//! | 1 | reserved, 0 |
//! | 8 | payload length |
//! | n | payload: the parameters as JSON, then the model's arrays |
//! | 4 | CRC-32 of everything after the magic and before the checksum |
//!
//! Floats are stored as their bits, so a model loads back bit-exact. A wrong magic, an
//! unknown version or kind, a truncated file, a checksum mismatch or an inconsistent payload
//! is rejected with [`AlgoError::Artefact`].

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{AlgoError, Result};
use crate::matrix::CsrMatrix;
use crate::models::{
    Als, Blend, BlendComponent, Bridge, Ease, ItemKnn, Model, ModelKind, Normalization, Popularity, Rp3Beta,
    TimePopularity, Transitions,
};

/// The first eight bytes of every artefact.
pub const MAGIC: &[u8; 8] = b"VTRNMODL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const MAX_DEPTH: usize = 4;

fn bad(msg: impl Into<String>) -> AlgoError {
    AlgoError::Artefact(msg.into())
}

/// Writes `model` as an artefact.
pub fn write_model(model: &Model, mut w: impl Write) -> Result<()> {
    let mut payload = Enc::default();
    encode(model, &mut payload)?;
    let mut head = Vec::with_capacity(12);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    head.push(model.kind().code());
    head.push(0);
    head.extend_from_slice(&(payload.0.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&payload.0);
    w.write_all(MAGIC)?;
    w.write_all(&head)?;
    w.write_all(&payload.0)?;
    w.write_all(&crc.finalize().to_le_bytes())?;
    w.flush()?;
    Ok(())
}

/// Reads an artefact written by [`write_model`].
pub fn read_model(mut r: impl Read) -> Result<Model> {
    let mut magic = [0u8; 8];
    read_exact(&mut r, &mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a vitrina model artefact (bad magic bytes)"));
    }
    let mut head = [0u8; 12];
    read_exact(&mut r, &mut head)?;
    let version = u16::from_le_bytes([head[0], head[1]]);
    if version != FORMAT_VERSION {
        return Err(bad(format!("unsupported format version {version}, this build reads {FORMAT_VERSION}")));
    }
    let kind = ModelKind::from_code(head[2]).ok_or_else(|| bad(format!("unknown model kind {}", head[2])))?;
    if head[3] != 0 {
        return Err(bad(format!("reserved header byte is {}, not 0", head[3])));
    }
    let len = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
    let mut payload = Vec::new();
    r.by_ref().take(len).read_to_end(&mut payload)?;
    if payload.len() as u64 != len {
        return Err(bad(format!("truncated: payload has {} of {len} bytes", payload.len())));
    }
    let mut sum = [0u8; 4];
    read_exact(&mut r, &mut sum)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&payload);
    if crc.finalize() != u32::from_le_bytes(sum) {
        return Err(bad("checksum mismatch: the artefact is corrupted"));
    }
    let mut dec = Dec { buf: &payload, pos: 0 };
    let model = decode(kind, &mut dec, 0)?;
    if dec.pos != payload.len() {
        return Err(bad("trailing bytes in payload"));
    }
    Ok(model)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad("truncated: unexpected end of artefact"),
        _ => AlgoError::Io(e),
    })
}

fn encode(model: &Model, e: &mut Enc) -> Result<()> {
    match model {
        Model::Popularity(m) => {
            e.json(&m.params)?;
            e.f32s(&m.scores);
        }
        Model::ItemKnn(m) => {
            e.json(&m.params)?;
            e.csr(&m.neighbours);
        }
        Model::Als(m) => {
            e.json(&m.params)?;
            e.u64(m.n_users as u64);
            e.u64(m.n_items as u64);
            e.f32s(&m.user_factors);
            e.f32s(&m.item_factors);
            e.f32s(&m.yty);
        }
        Model::Ease(m) => {
            e.json(&m.params)?;
            e.u64(m.n_items as u64);
            e.f32s(&m.weights);
        }
        Model::Rp3Beta(m) => {
            e.json(&m.params)?;
            e.csr(&m.weights);
        }
        Model::Transitions(m) => {
            e.json(&m.params)?;
            e.csr(&m.weights);
        }
        Model::Bridge(m) => {
            e.json(&m.params)?;
            e.csr(&m.forward);
        }
        Model::TimePopularity(m) => {
            e.json(&m.params)?;
            e.u64(m.origin as u64);
            e.csr(&m.shares);
        }
        Model::Blend(m) => {
            e.0.push(m.normalization.code());
            e.u64(m.components.len() as u64);
            for c in &m.components {
                e.bytes(c.name.as_bytes());
                e.f32s(&[c.weight, c.recency]);
                e.0.push(c.model.kind().code());
                let mut inner = Enc::default();
                encode(&c.model, &mut inner)?;
                e.bytes(&inner.0);
            }
        }
    }
    Ok(())
}

fn decode(kind: ModelKind, d: &mut Dec<'_>, depth: usize) -> Result<Model> {
    Ok(match kind {
        ModelKind::Popularity => Model::Popularity(Popularity { params: d.json()?, scores: d.f32s()? }),
        ModelKind::ItemKnn => Model::ItemKnn(ItemKnn { params: d.json()?, neighbours: d.square_csr()? }),
        ModelKind::Als => {
            let params: crate::models::AlsParams = d.json()?;
            params.validate().map_err(|e| bad(e.to_string()))?;
            let (n_users, n_items) = (d.usize()?, d.usize()?);
            let (user_factors, item_factors, yty) = (d.f32s()?, d.f32s()?, d.f32s()?);
            let f = params.factors;
            let ok = Some(user_factors.len()) == n_users.checked_mul(f)
                && Some(item_factors.len()) == n_items.checked_mul(f)
                && yty.len() == f * f;
            if !ok {
                return Err(bad("als arrays do not match the declared shape"));
            }
            Model::Als(Als { params, n_users, n_items, user_factors, item_factors, yty })
        }
        ModelKind::Ease => {
            let params = d.json()?;
            let n_items = d.usize()?;
            let weights = d.f32s()?;
            if Some(weights.len()) != n_items.checked_mul(n_items) {
                return Err(bad("ease weights do not match the declared shape"));
            }
            Model::Ease(Ease { params, n_items, weights })
        }
        ModelKind::Rp3Beta => Model::Rp3Beta(Rp3Beta { params: d.json()?, weights: d.square_csr()? }),
        ModelKind::Transitions => {
            Model::Transitions(Transitions { params: d.json()?, weights: d.square_csr()? })
        }
        ModelKind::Bridge => {
            let params = d.json()?;
            let forward = d.square_csr()?;
            let backward = forward.transpose();
            Model::Bridge(Bridge { params, forward, backward })
        }
        ModelKind::TimePopularity => Model::TimePopularity(TimePopularity {
            params: d.json()?,
            origin: d.u64()? as i64,
            shares: d.csr()?,
        }),
        ModelKind::Blend => {
            if depth >= MAX_DEPTH {
                return Err(bad("blend nested too deeply"));
            }
            let norm = Normalization::from_code(d.u8()?).ok_or_else(|| bad("unknown blend normalisation"))?;
            let n = d.usize()?;
            let mut components = Vec::new();
            for _ in 0..n {
                let name =
                    String::from_utf8(d.bytes()?.to_vec()).map_err(|_| bad("component name is not utf-8"))?;
                let wr = d.f32s()?;
                let [weight, recency] = wr[..] else {
                    return Err(bad("blend component weights"));
                };
                let kind = ModelKind::from_code(d.u8()?).ok_or_else(|| bad("unknown component kind"))?;
                let inner = d.bytes()?;
                let mut sub = Dec { buf: inner, pos: 0 };
                let model = decode(kind, &mut sub, depth + 1)?;
                if sub.pos != inner.len() {
                    return Err(bad("trailing bytes in blend component"));
                }
                components.push(BlendComponent { name, weight, recency, model });
            }
            Model::Blend(Blend::new(components, norm).map_err(|e| bad(e.to_string()))?)
        }
    })
}

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn json<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let s = serde_json::to_vec(v).map_err(|e| bad(format!("params: {e}")))?;
        self.bytes(&s);
        Ok(())
    }

    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        for x in v {
            self.0.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }

    fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn csr(&mut self, m: &CsrMatrix) {
        self.u64(m.n_rows() as u64);
        self.u64(m.n_cols() as u64);
        self.u64(m.indptr().len() as u64);
        for &p in m.indptr() {
            self.u64(p as u64);
        }
        self.u32s(m.indices());
        self.f32s(m.values());
    }
}

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad("truncated payload"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn usize(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).map_err(|_| bad("length overflows usize"))
    }

    /// A length-prefixed element count whose `elem`-byte elements fit in what is left.
    fn len(&mut self, elem: usize) -> Result<usize> {
        let n = self.usize()?;
        if n.checked_mul(elem).is_none_or(|b| b > self.buf.len() - self.pos) {
            return Err(bad("array longer than the payload"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }

    fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        serde_json::from_slice(self.bytes()?).map_err(|e| bad(format!("params: {e}")))
    }

    fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.len(4)?;
        let raw = self.take(n * 4)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_bits(u32::from_le_bytes(c.try_into().expect("4"))))
            .collect())
    }

    fn u32s(&mut self) -> Result<Vec<u32>> {
        let n = self.len(4)?;
        let raw = self.take(n * 4)?;
        Ok(raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4"))).collect())
    }

    /// An item×item matrix: as many rows as columns.
    fn square_csr(&mut self) -> Result<CsrMatrix> {
        let m = self.csr()?;
        if m.n_rows() != m.n_cols() {
            return Err(bad("item×item matrix is not square"));
        }
        Ok(m)
    }

    fn csr(&mut self) -> Result<CsrMatrix> {
        let (rows, cols) = (self.usize()?, self.usize()?);
        let n = self.len(8)?;
        let indptr = (0..n).map(|_| self.usize()).collect::<Result<Vec<_>>>()?;
        let (indices, values) = (self.u32s()?, self.f32s()?);
        CsrMatrix::from_parts(rows, cols, indptr, indices, values).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{user_sequences, Interaction, MatrixOptions};
    use crate::models::*;

    fn fixture() -> (Vec<Interaction>, CsrMatrix) {
        let data: Vec<Interaction> = (0..30u32)
            .flat_map(|u| {
                (0..4u32).map(move |k| Interaction {
                    user: u,
                    item: (u * 3 + k * 5) % 17,
                    weight: 1.0,
                    ts: i64::from(k),
                })
            })
            .collect();
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        (data, m)
    }

    fn all_models() -> Vec<Model> {
        let (data, m) = fixture();
        let seqs = user_sequences(&data, m.n_rows());
        let als =
            Als::train(&m, &AlsParams { factors: 3, iterations: 2, ..Default::default() }, &mut |_, _| {})
                .unwrap();
        let parts = vec![
            Model::Popularity(Popularity::train(&m, &PopularityParams::default())),
            Model::ItemKnn(ItemKnn::train(&m, &ItemKnnParams::default()).unwrap()),
            Model::Als(als),
            Model::Ease(Ease::train(&m, &EaseParams::default()).unwrap()),
            Model::Rp3Beta(Rp3Beta::train(&m, &Rp3BetaParams::default()).unwrap()),
            Model::Transitions(Transitions::train(&seqs, m.n_cols(), &TransitionParams::default()).unwrap()),
            Model::Bridge(Bridge::train(&seqs, m.n_cols(), &BridgeParams::default()).unwrap()),
            Model::TimePopularity(
                TimePopularity::train(&data, m.n_cols(), &TimePopularityParams::default()).unwrap(),
            ),
        ];
        let comps = parts
            .iter()
            .map(|p| BlendComponent {
                name: p.kind().name().into(),
                weight: 0.5,
                recency: 0.9,
                model: p.clone(),
            })
            .collect();
        let mut all = parts;
        all.push(Model::Blend(Blend::new(comps, Normalization::ZScore).unwrap()));
        all
    }

    #[test]
    fn every_model_round_trips_bit_exact() {
        for model in all_models() {
            let mut buf = Vec::new();
            write_model(&model, &mut buf).unwrap();
            let back = read_model(&buf[..]).unwrap();
            let mut again = Vec::new();
            write_model(&back, &mut again).unwrap();
            assert_eq!(buf, again, "{:?} bytes differ", model.kind());
            assert_eq!(back, model);
        }
    }

    /// An artefact with a valid header and checksum around arbitrary payload bytes.
    fn forged(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut head = FORMAT_VERSION.to_le_bytes().to_vec();
        head.extend_from_slice(&[kind, 0]);
        head.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(payload);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&head);
        out.extend_from_slice(payload);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out
    }

    proptest::proptest! {
        #[test]
        fn garbage_payloads_with_valid_checksums_are_errors_not_panics(
            kind in 0u8..12,
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let _ = read_model(&forged(kind, &payload)[..]);
        }

        #[test]
        fn mutated_real_payloads_never_panic(model in 0usize..8, at in 0usize..10_000, byte in proptest::prelude::any::<u8>()) {
            let models = all_models();
            let m = &models[model % models.len()];
            let mut buf = Vec::new();
            write_model(m, &mut buf).unwrap();
            let payload_len = buf.len() - 24;
            let mut payload = buf[20..20 + payload_len].to_vec();
            let i = at % payload.len().max(1);
            if let Some(b) = payload.get_mut(i) {
                *b = byte;
            }
            // decoding never trusts a length it cannot back with payload bytes
            let _ = read_model(&forged(m.kind().code(), &payload)[..]);
        }
    }

    #[test]
    fn rejects_corrupted_truncated_and_foreign_artefacts() {
        let model = all_models().swap_remove(2);
        let mut buf = Vec::new();
        write_model(&model, &mut buf).unwrap();
        let mut flipped = buf.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x10;
        assert!(read_model(&flipped[..]).unwrap_err().to_string().contains("checksum"));
        for cut in [0, 5, 15, buf.len() / 2, buf.len() - 1] {
            let err = read_model(&buf[..cut]).unwrap_err().to_string();
            assert!(err.contains("truncated") || err.contains("magic"), "cut {cut}: {err}");
        }
        let mut version = buf.clone();
        version[8] = 9;
        assert!(read_model(&version[..]).unwrap_err().to_string().contains("version"));
        assert!(read_model(&b"PK\x03\x04 not a model"[..]).unwrap_err().to_string().contains("magic"));
    }
}
