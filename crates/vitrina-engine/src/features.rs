//! What the learned ranker knows of one (visitor, candidate) pair: the candidate's score and
//! rank in every source that proposed it (missing when a source did not), the blend's
//! score, the product's live and trained popularity, age and price against the visitor's usual price,
//! the visitor's affinity to its category, their activity, the time since their last event
//! and the candidate's co-visitation with their latest items, read at request time from the
//! online state, so training and serving compute them the same way; and the offline
//! features the bundle carries: how often the product was shown and what came of it, and
//! its category's rates ([`crate::engagement`]; missing when the bundle has none).

use rustc_hash::FxHashMap;
use vitrina_core::recommend::Source;

use crate::{
    catalog::Entry,
    covisit::{self, CoVisits},
    model::ActiveModel,
    rank::{self, Cand, Profile},
    trending::TrendingLists,
};

const N_SOURCES: usize = Source::ALL.len();
/// Latest items whose co-visitation partners count.
const COVISIT_RECENT: usize = 3;

/// The features' names, in vector order.
pub const NAMES: [&str; N] = [
    "score.collaborative_filtering",
    "score.matrix_factorization",
    "score.next_item",
    "score.linear_item_model",
    "score.whole_history",
    "score.trending",
    "score.popular_in_category",
    "score.new_item",
    "rank.collaborative_filtering",
    "rank.matrix_factorization",
    "rank.next_item",
    "rank.linear_item_model",
    "rank.whole_history",
    "rank.trending",
    "rank.popular_in_category",
    "rank.new_item",
    "blend",
    "sources",
    "popularity.hour",
    "popularity.day",
    "popularity.week",
    "popularity.month",
    "popularity.trained",
    "age_days",
    "log_price_vs_visitor",
    "category_affinity",
    "visitor_events",
    "visitor_items",
    "hours_since_last_event",
    "covisit_recent",
    "shown.impressions",
    "shown.click_rate",
    "shown.cart_rate",
    "shown.purchase_rate",
    "shown.category_click_rate",
    "shown.category_purchase_rate",
];
/// Number of features.
pub const N: usize = 36;

/// A candidate's feature vector.
pub type Features = [f32; N];

/// What every candidate of a request reads, and what is computed once for all of them.
pub(crate) struct RequestContext<'a> {
    model: &'a ActiveModel,
    lists: &'a TrendingLists,
    covisit_recent: FxHashMap<u32, f32>,
    now_ms: i64,
}

impl<'a> RequestContext<'a> {
    pub fn new(
        profile: &Profile,
        model: &'a ActiveModel,
        lists: &'a TrendingLists,
        covisits: &CoVisits,
        now_ms: i64,
    ) -> Self {
        let mut covisit_recent: FxHashMap<u32, f32> = FxHashMap::default();
        for &item in profile.recent_items().iter().take(COVISIT_RECENT) {
            for (j, c) in covisits.partners(item) {
                *covisit_recent.entry(j).or_default() += covisit::similarity(c, rank::COVISIT_SHRINK);
            }
        }
        Self { model, lists, covisit_recent, now_ms }
    }
}

/// The features of candidate `item` (with its `blend` score).
pub(crate) fn of(
    item: u32,
    cand: &Cand,
    blend: f32,
    entry: &Entry,
    profile: &Profile,
    ctx: &RequestContext,
) -> Features {
    let mut f = [f32::NAN; N];
    let mut sources = 0.0;
    for s in 0..N_SOURCES {
        if cand.norm[s] > 0.0 {
            f[s] = cand.norm[s];
            f[N_SOURCES + s] = f32::from(cand.rank[s]);
            sources += 1.0;
        }
    }
    let mut at = 2 * N_SOURCES;
    let mut put = |v: f32| {
        f[at] = v;
        at += 1;
    };
    put(blend);
    put(sources);
    for p in ctx.lists.popularity(item) {
        put(p);
    }
    put(ctx.model.trained_popularity(item));
    put(if entry.created_ms > 0 { (ctx.now_ms - entry.created_ms) as f32 / 86_400_000.0 } else { f32::NAN });
    put(match profile.mean_log_price() {
        Some(m) if entry.price > 0.0 => entry.price.ln() as f32 - m,
        _ => f32::NAN,
    });
    put(profile.category_share(entry.category));
    put(profile.n_events() as f32);
    put(profile.n_items() as f32);
    put(profile.last_event_ms().map_or(f32::NAN, |t| (ctx.now_ms - t) as f32 / 3_600_000.0));
    put(ctx.covisit_recent.get(&item).copied().unwrap_or(0.0));
    for v in ctx.model.engagement(item, entry.category) {
        put(v);
    }
    debug_assert_eq!(at, N);
    f
}
