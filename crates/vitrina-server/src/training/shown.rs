//! What the learned ranker's drawn visitors were shown after the cut, read from the
//! impression log: the lists that earned an attributed outcome after the cut (the
//! [`MAX_LISTS_PER_VISITOR`] with the latest outcomes), each product in them with the best grade of the
//! outcomes attributed to it there. Attribution decided which list an outcome answers; this
//! only reads what it recorded. Lists of every kind served to the visitor count (personal,
//! similar items, popular, session): the log does not say which endpoint served one.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, Utc};
use vitrina_core::{
    ports::{ImpressionStore, StoreResult},
    ProductId,
};
use vitrina_engine::{
    learn::{grade, Draw, Shown},
    train::TrainingLog,
};

/// Lists read per visitor, at most: those with the latest outcomes (a shared or robotic
/// visitor id must not fill the job's memory).
pub const MAX_LISTS_PER_VISITOR: usize = 20;
/// A list that earned outcomes: when it last did, and each product's best grade in it.
type Earned = (DateTime<Utc>, HashMap<ProductId, f32>);

/// Visitors read between two progress reports.
const CHUNK: usize = 1_000;

/// The lists served to `draw`'s visitors from its cut on that earned an outcome (`None`
/// when the job was cancelled meanwhile). `read` hears how many visitors are read, every
/// [`CHUNK`].
pub async fn after_cut(
    impressions: &dyn ImpressionStore,
    log: &TrainingLog,
    draw: &Draw,
    cancel: &AtomicBool,
    read: &mut (dyn FnMut(usize) + Send),
) -> StoreResult<Option<Shown>> {
    let since = vitrina_core::time::from_millis(draw.cut_ms());
    let mut shown = Shown::default();
    if draw.listed().is_empty() {
        return Ok(Some(shown));
    }
    impressions.flush_impressions().await;
    for (k, &u) in draw.listed().iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(None);
        }
        if k % CHUNK == 0 {
            read(k);
        }
        let user = &log.users[u as usize];
        // per list: when it last earned an outcome, and each product's best grade in it
        let mut earned: HashMap<String, Earned> = HashMap::new();
        for o in impressions.outcomes_for_user(user).await?.into_iter().filter(|o| o.created_at >= since) {
            let list = earned.entry(o.recommendation_id).or_insert_with(|| (o.created_at, HashMap::new()));
            list.0 = list.0.max(o.created_at);
            let g = list.1.entry(o.product_id).or_default();
            *g = g.max(grade(o.kind, None));
        }
        let mut newest: Vec<(String, Earned)> = earned.into_iter().collect();
        newest.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        newest.truncate(MAX_LISTS_PER_VISITOR);
        let mut lists = Vec::new();
        for (rec, (_, grades)) in newest {
            let Some(list) = impressions.impression(user, &rec).await? else { continue };
            if list.created_at < since {
                continue;
            }
            let graded = list
                .items
                .into_iter()
                .map(|item| {
                    let g = grades.get(&item.product_id).copied().unwrap_or(0.0);
                    (item.product_id, g)
                })
                .collect();
            lists.push(graded);
        }
        if !lists.is_empty() {
            shown.insert(u, lists);
        }
    }
    Ok(Some(shown))
}
