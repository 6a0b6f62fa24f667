//! Ranker training at a cut in time: labels from after it, features only from before it, and
//! a ranker that learns what the blend misses.

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use vitrina_core::{
    ports::{Exposure, Exposures},
    ActivityType, LogEvent, Product,
};

use super::*;
use crate::{
    catalog::tests::product,
    tests::{pid, uid, T0},
};

const GROUPS: usize = 4;
const PER_GROUP: usize = 12;
const MINUTE: i64 = 60_000;
/// Every purchase after the history is at this time: the cut falls exactly before them.
const AFTER: i64 = T0 + 100_000 * MINUTE;

/// Four categories of twelve products, priced 10, 20, … 120 within each.
fn catalogue() -> Vec<Product> {
    (0..GROUPS * PER_GROUP)
        .map(|i| {
            product(
                &format!("p{i}"),
                &format!("g{}", i / PER_GROUP),
                &format!("{}.00", 10 * (i % PER_GROUP + 1)),
            )
        })
        .collect()
}

fn event(user: usize, kind: ActivityType, item: usize, ts_ms: i64) -> LogEvent {
    LogEvent {
        seq: 0,
        user_id: uid(&format!("u{user}")),
        product_id: Some(pid(&format!("p{item}"))),
        activity_type: kind,
        ts_ms,
        value: None,
    }
}

/// `users` visitors, each of one group: eight views of random products of it, then (all at
/// [`AFTER`]) a purchase of the cheapest product of the group they had not viewed. Which of
/// the unviewed products comes next is the price's doing, which the blend does not read.
fn visitors(users: usize) -> Vec<LogEvent> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut log = Vec::new();
    let mut after = Vec::new();
    for u in 0..users {
        let g = u % GROUPS;
        let mut items: Vec<usize> = (g * PER_GROUP..(g + 1) * PER_GROUP).collect();
        items.shuffle(&mut rng);
        let (viewed, rest) = items.split_at(8);
        for (k, &i) in viewed.iter().enumerate() {
            log.push(event(u, ActivityType::View, i, T0 + ((u * 8 + k) as i64) * MINUTE));
        }
        after.push(event(u, ActivityType::Purchase, *rest.iter().min().unwrap(), AFTER));
    }
    log.extend(after);
    log
}

fn config() -> TrainingConfig {
    TrainingConfig { validation_users: 0, ..TrainingConfig::default() }
}

fn lists(log: &[LogEvent]) -> CutLists {
    lists_over(log, &catalogue(), &config())
}

fn lists_over(log: &[LogEvent], products: &[Product], config: &TrainingConfig) -> CutLists {
    let log = TrainingLog::from_events(log);
    let drawn = draw(&log, config, 0);
    cut_lists(&log, products, config, &RankingConfig::default(), &drawn, &Served::default(), &mut |_, _| true)
        .unwrap()
}

/// A list with its features as bits (NaN compares equal to itself).
type ListBits = (u64, Vec<vitrina_core::ProductId>, Vec<u32>, Vec<f32>);

fn bits(c: &CutLists) -> Vec<ListBits> {
    c.lists
        .iter()
        .map(|l| {
            (l.key, l.products.clone(), l.features.iter().map(|f| f.to_bits()).collect(), l.labels.clone())
        })
        .collect()
}

#[test]
fn the_same_log_and_products_in_another_order_give_the_same_lists() {
    let log = visitors(160);
    let mut reversed = catalogue();
    reversed.reverse();
    let (a, b) = (lists(&log), lists_over(&log, &reversed, &config()));
    assert!(!a.lists.is_empty());
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn what_changed_in_the_catalogue_after_the_cut_changes_no_list() {
    let log = visitors(160);
    let base = lists(&log);
    // the product u0 bought after the cut is out of stock now, the one u1 bought is hidden,
    // and a product published after the cut exists now
    let bought =
        |u: usize| log.iter().find(|e| e.ts_ms == AFTER && e.user_id == uid(&format!("u{u}"))).unwrap();
    let mut now = catalogue();
    for p in &mut now {
        if Some(&p.id) == bought(0).product_id.as_ref() {
            p.in_stock = false;
        }
        if Some(&p.id) == bought(1).product_id.as_ref() {
            p.hidden = true;
        }
    }
    let mut late = product("p-late", "g0", "1.00");
    late.created_at = vitrina_core::time::from_millis(AFTER);
    now.push(late);
    assert_eq!(bits(&base), bits(&lists_over(&log, &now, &config())));
}

#[test]
fn a_catalogue_dated_after_its_history_keeps_the_products_with_events_before_the_cut() {
    let log = visitors(160);
    let base = lists(&log);
    // the whole catalogue imported after the events: dated after the cut
    let imported: Vec<Product> = catalogue()
        .into_iter()
        .map(|mut p| {
            p.created_at = vitrina_core::time::from_millis(AFTER + MINUTE);
            p
        })
        .collect();
    let dated = lists_over(&log, &imported, &config());
    assert!(!dated.lists.is_empty());
    assert_eq!(
        base.lists.iter().map(|l| &l.products).collect::<Vec<_>>(),
        dated.lists.iter().map(|l| &l.products).collect::<Vec<_>>()
    );
    // dated by their first event, not by the import: no age reads past the cut
    let age = features::NAMES.iter().position(|n| *n == "age_days").unwrap();
    for l in &dated.lists {
        for row in l.features.chunks(features::N) {
            assert!(row[age] >= 0.0, "u{}: age {}", l.key, row[age]);
        }
    }
}

#[test]
fn a_product_published_after_the_cut_with_events_only_after_it_is_no_candidate() {
    let mut log = visitors(160);
    let base = lists(&log);
    // p-late appears after the cut and u0 buys it then
    log.push(event(0, ActivityType::Purchase, 0, AFTER));
    log.last_mut().unwrap().product_id = Some(pid("p-late"));
    let mut now = catalogue();
    let mut late = product("p-late", "g0", "1.00");
    late.created_at = vitrina_core::time::from_millis(AFTER);
    now.push(late);
    let with_late = lists_over(&log, &now, &config());
    assert_eq!(with_late.cut_ms, base.cut_ms);
    assert!(with_late.lists.iter().all(|l| !l.products.contains(&pid("p-late"))));
    let features = |c: &CutLists| {
        c.lists
            .iter()
            .map(|l| (l.key, l.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    assert_eq!(features(&base), features(&with_late));
}

#[test]
fn at_most_max_visitors_get_a_list() {
    let log = visitors(160);
    let few = TrainingConfig {
        ranker: crate::config::RankerTrainingConfig { max_visitors: 130, ..Default::default() },
        ..config()
    };
    let cut = lists_over(&log, &catalogue(), &few);
    assert_eq!(cut.visitors, 160);
    assert!(cut.lists.len() <= 130 && cut.lists.len() > 100, "{} lists", cut.lists.len());
}

#[test]
fn grades_rank_what_a_visitor_did_and_a_low_rating_is_nothing() {
    let g = |k, v| grade(k, v);
    assert!(g(ActivityType::View, None) < g(ActivityType::Click, None));
    assert!(g(ActivityType::Click, None) < g(ActivityType::AddToCart, None));
    assert!(g(ActivityType::AddToCart, None) < g(ActivityType::Purchase, None));
    assert_eq!(g(ActivityType::Click, None), g(ActivityType::Like, None));
    assert_eq!(g(ActivityType::Rating, Some(1.0)), 0.0);
    assert_eq!(g(ActivityType::RemoveFromCart, None), 0.0);
    assert_eq!(g(ActivityType::Search, None), 0.0);
    assert_eq!(g(ActivityType::Rating, Some(3.0)), g(ActivityType::View, None));
    assert_eq!(g(ActivityType::Rating, Some(5.0)), g(ActivityType::Like, None));
}

#[test]
fn the_cut_falls_before_the_newest_events_and_labels_are_what_came_after() {
    let log = visitors(160);
    let cut = lists(&log);
    assert_eq!(cut.cut_ms, AFTER);
    assert_eq!(cut.visitors, 160);
    assert!(cut.lists.len() > 100, "{} lists", cut.lists.len());
    for l in &cut.lists {
        let bought =
            log.iter().find(|e| e.ts_ms == AFTER && e.user_id == uid(&format!("u{}", l.key))).unwrap();
        let at = l.products.iter().position(|p| Some(p) == bought.product_id.as_ref()).unwrap();
        for (i, &label) in l.labels.iter().enumerate() {
            assert_eq!(label, if i == at { 4.0 } else { 0.0 }, "list of u{}", l.key);
        }
        assert_eq!(l.features.len(), l.labels.len() * features::N);
    }
}

#[test]
fn an_event_after_the_cut_changes_labels_never_features() {
    let log = visitors(160);
    let base = lists(&log);
    // one purchase moves a day later, another becomes a view
    let mut later = log.clone();
    let n = later.len();
    later[n - 1].ts_ms += 86_400_000;
    later[n - 2].activity_type = ActivityType::View;
    let moved = lists(&later);
    assert_eq!(moved.cut_ms, base.cut_ms);
    let by_key = |c: &CutLists| c.lists.iter().map(|l| (l.key, l.clone())).collect::<FxHashMap<_, _>>();
    let (a, b) = (by_key(&base), by_key(&moved));
    let mut labels_changed = 0;
    for (key, l) in &a {
        let Some(m) = b.get(key) else { continue };
        assert_eq!(l.products, m.products, "u{key}'s candidates");
        assert_eq!(
            l.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            m.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            "u{key}'s features"
        );
        labels_changed += usize::from(l.labels != m.labels);
    }
    assert!(labels_changed >= 1, "the changed purchase relabels a list");
    // an event before the cut does change features (the comparison above can fail)
    let mut earlier = log.clone();
    earlier[0].product_id = Some(pid("p47"));
    let changed = by_key(&lists(&earlier));
    assert!(a
        .iter()
        .any(|(k, l)| changed.get(k).is_some_and(|c| c.features != l.features || c.products != l.products)));
}

/// The ranker trained on [`visitors`]`(users)`, labelled by what they did next.
fn ranker_of(users: usize) -> Result<Gated, String> {
    let log = TrainingLog::from_events(&visitors(users));
    let drawn = draw(&log, &config(), MIN_LISTS);
    let served = Served::default();
    train_ranker(&log, &catalogue(), &config(), &RankingConfig::default(), &drawn, &served, &mut |_, _| true)
        .unwrap()
}

#[test]
fn the_ranker_learns_what_the_blend_misses_and_passes_the_gate() {
    let gated = ranker_of(480).expect("enough lists");
    let r = &gated.report;
    assert!(r.lift.n >= MIN_GATE_VISITORS, "{r:?}");
    assert!(r.ndcg > r.blend_ndcg + 0.1, "{r:?}");
    assert!(r.serves, "{r:?}");
    assert!(gated.serving().is_some());
}

#[test]
fn the_gate_judges_every_visitor_by_a_ranker_that_did_not_train_on_them() {
    let log = TrainingLog::from_events(&visitors(480));
    let drawn = draw(&log, &config(), MIN_LISTS);
    let lists = cut_lists(
        &log,
        &catalogue(),
        &config(),
        &RankingConfig::default(),
        &drawn,
        &Served::default(),
        &mut |_, _| true,
    )
    .unwrap()
    .lists;
    let judged: std::collections::BTreeSet<u64> =
        lists.iter().filter(|l| l.labels.iter().any(|&g| g > 0.0)).map(|l| l.key).collect();
    let total = lists.len();
    let gated = fit_and_gate(lists, &config().ranker.params()).unwrap();
    let r = &gated.report;
    // every visitor with a relevant candidate counts once, not only the serving ranker's quarter
    assert_eq!(r.lift.n, judged.len(), "{r:?}");
    // the serving ranker's own split covers every list once
    assert_eq!(r.lists.iter().sum::<usize>(), total, "{r:?}");
    assert!(r.lists[0] > r.lists[1] && r.lists[0] > r.lists[2], "it fits on half: {r:?}");
}

#[test]
fn too_few_visitors_train_no_ranker_and_say_why() {
    let reason = ranker_of(60).err().expect("too few lists");
    assert!(reason.contains("60 visitors") && reason.contains("at least 120"), "{reason}");
}

#[test]
fn a_visitor_shown_lists_that_earned_outcomes_after_the_cut_is_labelled_by_them_one_list_each() {
    let log = visitors(160);
    let training = TrainingLog::from_events(&log);
    let drawn = draw(&training, &config(), 0);
    let cut = |shown: &Shown| {
        cut_lists(
            &training,
            &catalogue(),
            &config(),
            &RankingConfig::default(),
            &drawn,
            &Served { after_cut: shown.clone(), before_cut: Exposures::default() },
            &mut |_, _| true,
        )
        .unwrap()
    };
    let base = cut(&Shown::default());
    let (a, b, c) = (&base.lists[0], &base.lists[1], &base.lists[2]);
    // a was shown two lists after the cut: its 2nd, 4th and 1st candidates, then its 4th and
    // 6th and a product the log does not know; clicked the 4th in the first list and put
    // the 6th in the cart from the second. b was shown a list and did nothing with it.
    let grade_of = |l: &TrainingList, k: usize, g: f32| (l.products[k].clone(), g);
    let shown: Shown = [
        (
            a.key as u32,
            vec![
                vec![grade_of(a, 1, 0.0), grade_of(a, 3, 2.0), grade_of(a, 0, 0.0)],
                vec![grade_of(a, 3, 0.0), grade_of(a, 5, 3.0), (pid("unknown"), 4.0)],
                // everything shown was clicked: it orders nothing, and is no list
                vec![grade_of(a, 4, 2.0)],
            ],
        ),
        (b.key as u32, vec![vec![grade_of(b, 0, 0.0), grade_of(b, 2, 0.0)]]),
        // c's only outcome is on a product that is none of its candidates at the cut
        (c.key as u32, vec![vec![grade_of(c, 0, 0.0), (pid("unknown"), 2.0)]]),
    ]
    .into_iter()
    .collect();
    let labelled = cut(&shown);
    // one list per list shown: only what was shown there, in blend order, with the features
    // it had at the cut
    let got: Vec<&TrainingList> = labelled.lists.iter().filter(|l| l.key == a.key).collect();
    assert_eq!(got.len(), 2);
    let row = |l: &TrainingList, k: usize| -> Vec<u32> {
        l.features[k * features::N..(k + 1) * features::N].iter().map(|f| f.to_bits()).collect()
    };
    for (list, keep, labels) in
        [(got[0], vec![0, 1, 3], vec![0.0, 0.0, 2.0]), (got[1], vec![3, 5], vec![0.0, 3.0])]
    {
        assert_eq!(list.products, keep.iter().map(|&k| a.products[k].clone()).collect::<Vec<_>>());
        assert_eq!(list.labels, labels);
        for (i, &k) in keep.iter().enumerate() {
            assert_eq!(row(list, i), row(a, k));
        }
    }
    // b, whose lists earned nothing, c, whose lists yield no list, and everyone else keep
    // the list their next action labels
    assert_eq!(labelled.lists.len(), base.lists.len() + 1);
    let others = |l: &CutLists| -> Vec<ListBits> { bits(l).into_iter().filter(|l| l.0 != a.key).collect() };
    assert_eq!(others(&labelled), others(&base));
    assert!(others(&labelled).iter().any(|l| l.0 == b.key) && others(&labelled).iter().any(|l| l.0 == c.key));
}

#[test]
fn the_gate_averages_each_visitors_lists() {
    // keys 3, 1, 3: visitor 1 has 5.0, visitor 3 the mean of 1.0 and 3.0
    assert_eq!(per_key(&[3, 1, 3], &[1.0, 5.0, 3.0]), [5.0, 2.0]);
    assert_eq!(per_key(&[], &[]), Vec::<f64>::new());
    // keys that do not pair up with the values leave them per list
    assert_eq!(per_key(&[1], &[1.0, 2.0]), [1.0, 2.0]);
}

#[test]
fn the_cuts_model_carries_the_exposure_totals_before_it_as_offline_features() {
    let log = TrainingLog::from_events(&visitors(160));
    let drawn = draw(&log, &config(), 0);
    let cut = |products: Vec<(ProductId, Exposure)>| {
        let before_cut = Exposures { days: 10, products };
        let served = Served { after_cut: Shown::default(), before_cut };
        let ranking = RankingConfig::default();
        cut_lists(&log, &catalogue(), &config(), &ranking, &drawn, &served, &mut |_, _| true).unwrap()
    };
    let at = |name: &str| features::NAMES.iter().position(|n| *n == name).unwrap();
    let (shown, clicks, category_clicks) =
        (at("shown.impressions"), at("shown.click_rate"), at("shown.category_click_rate"));
    // Without totals the offline features are missing, and everything else is as before.
    let none = cut(Vec::new());
    assert!(none
        .lists
        .iter()
        .flat_map(|l| l.features.chunks(features::N))
        .all(|f| f[shown..].iter().all(|v| v.is_nan())));
    // p0 was shown 1000 times and clicked 300 times, p1 shown 1000 times and never clicked:
    // both in g0.
    let totals = vec![
        (pid("p0"), Exposure { impressions: 1000, clicks: 300, ..Exposure::default() }),
        (pid("p1"), Exposure { impressions: 1000, ..Exposure::default() }),
    ];
    let with = cut(totals);
    assert_eq!(with.lists.len(), none.lists.len());
    let mut seen = [false; 3];
    for (l, m) in with.lists.iter().zip(&none.lists) {
        assert_eq!((&l.products, &l.labels), (&m.products, &m.labels));
        for (k, (f, g)) in l.features.chunks(features::N).zip(m.features.chunks(features::N)).enumerate() {
            assert_eq!(
                f[..shown].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                g[..shown].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            let (rate, category) = (f[clicks], f[category_clicks]);
            match l.products[k].as_str() {
                "p0" => {
                    // 100 a day over the 10 days with totals
                    assert!((f[shown] - 101f32.ln()).abs() < 1e-5 && rate > 0.25, "{f:?}");
                    seen[0] = true;
                }
                "p1" => {
                    assert!(f[shown] > 4.0 && rate < 0.02, "{f:?}");
                    seen[1] = true;
                }
                // another of g0, never shown: its category's rate; g1–g3 were never shown
                p if p.trim_start_matches('p').parse::<usize>().unwrap() < PER_GROUP => {
                    assert!(f[shown] == 0.0 && (rate - 0.15).abs() < 0.01 && rate == category, "{f:?}");
                    seen[2] = true;
                }
                _ => assert!(f[shown] == 0.0 && (category - 0.15).abs() < 1e-6, "{f:?}"),
            }
        }
    }
    assert_eq!(seen, [true; 3], "p0, p1 and another product of g0 are candidates somewhere");
}
