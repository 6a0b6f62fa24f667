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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use vitrina_core::{
        ports::{AttributedOutcome, Exposure, Impression, ImpressionItem},
        ActivityType, LogEvent, UserId,
    };
    use vitrina_engine::{learn::draw, TrainingConfig};

    use super::*;

    const CUT: i64 = 100_000_000;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn pid(s: &str) -> ProductId {
        ProductId::parse(s).unwrap()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        vitrina_core::time::from_millis(ms)
    }

    /// Two visitors with nine views each well before [`CUT`] and a click at it: the cut
    /// falls there and both are drawn.
    fn log() -> TrainingLog {
        let mut events = Vec::new();
        for u in ["u0", "u1"] {
            for k in 0..10 {
                let (kind, ts_ms) =
                    if k < 9 { (ActivityType::View, 1_000 * k) } else { (ActivityType::Click, CUT) };
                events.push(LogEvent {
                    seq: 0,
                    user_id: uid(u),
                    product_id: Some(pid(&format!("p{k}"))),
                    activity_type: kind,
                    ts_ms,
                    value: None,
                });
            }
        }
        TrainingLog::from_events(&events)
    }

    #[derive(Default)]
    struct Log {
        lists: Vec<Impression>,
        outcomes: Vec<AttributedOutcome>,
        point_reads: Mutex<usize>,
    }

    impl Log {
        /// A list served to u0 at `served` (ms) of `items`.
        fn serve(&mut self, id: &str, served: i64, items: &[&str]) {
            self.lists.push(Impression {
                recommendation_id: id.into(),
                user_id: uid("u0"),
                model_version: "v1".into(),
                variant: "default".into(),
                created_at: at(served),
                items: items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ImpressionItem {
                        product_id: pid(p),
                        source: "trending".into(),
                        position: i as u32,
                    })
                    .collect(),
            });
        }

        /// u0's `kind` of `product` from list `id` at `when` (ms).
        fn outcome(&mut self, id: &str, product: &str, kind: ActivityType, when: i64) {
            self.outcomes.push(AttributedOutcome {
                event_id: format!("e{}", self.outcomes.len()),
                recommendation_id: id.into(),
                user_id: uid("u0"),
                variant: "default".into(),
                product_id: pid(product),
                source: "trending".into(),
                position: 0,
                kind,
                value: 0.0,
                created_at: at(when),
            });
        }
    }

    #[async_trait]
    impl ImpressionStore for Log {
        fn record_impression(&self, _: Impression) {}
        async fn impressions_for_user(
            &self,
            user: &UserId,
            since: DateTime<Utc>,
        ) -> StoreResult<Vec<Impression>> {
            Ok(self.lists.iter().filter(|l| &l.user_id == user && l.created_at >= since).cloned().collect())
        }
        async fn impression(&self, user: &UserId, id: &str) -> StoreResult<Option<Impression>> {
            *self.point_reads.lock().unwrap() += 1;
            Ok(self.lists.iter().find(|l| &l.user_id == user && l.recommendation_id == id).cloned())
        }
        async fn outcomes_for_user(&self, user: &UserId) -> StoreResult<Vec<AttributedOutcome>> {
            Ok(self.outcomes.iter().filter(|o| &o.user_id == user).cloned().collect())
        }
        fn record_outcome(&self, _: AttributedOutcome) {}
        async fn exposure(&self, _: &ProductId, _: DateTime<Utc>) -> StoreResult<Exposure> {
            Ok(Exposure::default())
        }
        async fn exposures(&self, _: (i64, i64)) -> StoreResult<vitrina_core::ports::Exposures> {
            Ok(Default::default())
        }
        async fn experiment_log(&self, _: &str) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)> {
            Ok((Vec::new(), Vec::new()))
        }
    }

    async fn read(store: &Log, cancel: bool) -> Option<Shown> {
        let log = log();
        let drawn = draw(&log, &TrainingConfig::default(), 0);
        assert_eq!((drawn.cut_ms(), drawn.listed().len()), (CUT, 2));
        let flag = AtomicBool::new(cancel);
        after_cut(store, &log, &drawn, &flag, &mut |_| {}).await.unwrap()
    }

    #[tokio::test]
    async fn only_lists_served_after_the_cut_that_earned_an_outcome_after_it_label() {
        let mut store = Log::default();
        store.serve("shown", CUT + 1_000, &["p1", "p2", "p3"]);
        store.outcome("shown", "p1", ActivityType::Click, CUT + 2_000);
        store.outcome("shown", "p1", ActivityType::AddToCart, CUT + 3_000);
        store.outcome("shown", "p3", ActivityType::Click, CUT + 4_000);
        // served before the cut, clicked after it
        store.serve("early", CUT - 1_000, &["p4"]);
        store.outcome("early", "p4", ActivityType::Click, CUT + 1_000);
        // earned its outcome before the cut
        store.serve("before", CUT - 5_000, &["p5"]);
        store.outcome("before", "p5", ActivityType::Purchase, CUT - 4_000);
        // served after the cut, ignored
        store.serve("ignored", CUT + 1_000, &["p6"]);
        let shown = read(&store, false).await.unwrap();
        // u0 is log user 0; u1 earned nothing and is left to its next actions
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[&0], vec![vec![(pid("p1"), 3.0), (pid("p2"), 0.0), (pid("p3"), 2.0)]]);
        // the ignored list is not even read
        assert_eq!(*store.point_reads.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_visitor_brings_the_lists_with_the_latest_outcomes_at_most() {
        let mut store = Log::default();
        for k in 0..(MAX_LISTS_PER_VISITOR as i64 + 5) {
            let id = format!("l{k}");
            store.serve(&id, CUT + 1_000, &["p1", "p2"]);
            store.outcome(
                &id,
                if k % 2 == 0 { "p1" } else { "p2" },
                ActivityType::Click,
                CUT + 10_000 * (k + 1),
            );
        }
        let shown = read(&store, false).await.unwrap();
        let lists = &shown[&0];
        assert_eq!(lists.len(), MAX_LISTS_PER_VISITOR);
        // newest outcome first: l24 (p1 clicked) … l5
        assert_eq!(lists[0], vec![(pid("p1"), 2.0), (pid("p2"), 0.0)]);
        assert_eq!(lists[1], vec![(pid("p1"), 0.0), (pid("p2"), 2.0)]);
    }

    #[tokio::test]
    async fn a_cancelled_job_reads_nothing() {
        let mut store = Log::default();
        store.serve("shown", CUT + 1_000, &["p1"]);
        store.outcome("shown", "p1", ActivityType::Click, CUT + 2_000);
        assert!(read(&store, true).await.is_none());
        assert_eq!(*store.point_reads.lock().unwrap(), 0);
    }
}
