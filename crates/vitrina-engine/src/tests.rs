//! Engine behaviour end to end: train a bundle from events, activate it, observe live
//! events, rank.

use std::{collections::HashSet, sync::Arc};

use proptest::prelude::*;
use vitrina_core::{recommend::Source, ActivityType, LogEvent, Product, ProductId, UserId};

use crate::{
    bundle::ModelBundle,
    catalog::tests::product,
    config::{RankingConfig, TrainingConfig},
    model::PreparedModel,
    train::{train_bundle, TrainingLog},
    Engine, Filters, ListRequest, SessionEvent, Window,
};

pub(crate) const T0: i64 = 1_700_000_000_000;

pub(crate) fn pid(s: &str) -> ProductId {
    ProductId::parse(s).unwrap()
}

pub(crate) fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

pub(crate) fn ev(seq: u64, user: &str, kind: ActivityType, product: &str) -> LogEvent {
    LogEvent {
        seq,
        user_id: uid(user),
        product_id: Some(pid(product)),
        activity_type: kind,
        ts_ms: T0 + seq as i64 * 60_000,
        value: None,
    }
}

/// Ten products in three categories; two taste groups of users: p0–p4 viewed together in
/// order, and p5–p9 viewed together in order.
pub(crate) fn shop() -> (Vec<Product>, Vec<LogEvent>) {
    let products: Vec<Product> = (0..10)
        .map(|i| {
            let mut p = product(
                &format!("p{i}"),
                ["phones", "laptops", "audio"][i % 3],
                &format!("{}.00", 100 * (i + 1)),
            );
            p.created_at = vitrina_core::time::from_millis(T0 - 60 * 86_400_000);
            p
        })
        .collect();
    let mut log = Vec::new();
    let mut seq = 0;
    for u in 0..40 {
        let base = if u % 2 == 0 { 0 } else { 5 };
        for k in 0..5 {
            seq += 1;
            log.push(ev(seq, &format!("u{u}"), ActivityType::View, &format!("p{}", base + k)));
        }
    }
    (products, log)
}

pub(crate) fn trained(products: Vec<Product>, log: &[LogEvent], config: RankingConfig) -> Engine {
    let engine = Engine::new(products, config);
    let training = TrainingConfig { validation_users: 0, ..TrainingConfig::default() };
    let last = log.last().map_or(0, |e| e.seq);
    let bundle =
        train_bundle(&TrainingLog::from_events(log), &training, (1, last), &mut |_, _| true).unwrap();
    engine.activate(PreparedModel::new("v1", Arc::new(bundle)));
    for e in log {
        engine.observe(e);
    }
    engine.refresh();
    engine
}

pub(crate) fn req(limit: usize, filters: &Filters) -> ListRequest<'_> {
    ListRequest { limit, filters, now_ms: T0 + 1_000 * 60_000 }
}

fn ids(list: &[vitrina_core::recommend::Recommended]) -> Vec<String> {
    list.iter().map(|r| r.product.id.to_string()).collect()
}

#[test]
fn one_view_personalises_and_the_reason_names_the_source_and_event() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    let f = Filters::default();
    let newcomer = uid("newcomer");
    let cold = engine.recommend(&newcomer, &req(4, &f));
    assert_eq!(cold.len(), 4);
    assert!(cold.iter().all(|r| !r.source.is_personal() && r.because.is_none()), "{cold:?}");

    engine.observe(&LogEvent { seq: 10_000, ..ev(10_000, "newcomer", ActivityType::View, "p7") });
    let warm = engine.recommend(&newcomer, &req(4, &f));
    let warm_ids = ids(&warm);
    assert!(!warm_ids.contains(&"p7".to_string()), "seen items are left out");
    assert!(warm_ids.iter().all(|p| ["p5", "p6", "p8", "p9"].contains(&p.as_str())), "{warm_ids:?}");
    assert!(warm[0].source.is_personal());
    assert_eq!(warm[0].because, Some((pid("p7"), ActivityType::View)));
    assert_ne!(ids(&cold), warm_ids, "the list changed without training");
}

#[test]
fn a_live_pairing_after_training_reaches_lists_through_co_visitation() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    // After the model's data: many visitors pair p0 with p9 (different taste groups).
    for u in 0..30u64 {
        let user = format!("live{u}");
        engine.observe(&ev(20_000 + 2 * u, &user, ActivityType::View, "p0"));
        engine.observe(&ev(20_001 + 2 * u, &user, ActivityType::View, "p9"));
    }
    engine.observe(&ev(30_000, "probe", ActivityType::View, "p0"));
    let list = engine.recommend(&uid("probe"), &req(10, &Filters::default()));
    let p9 = list.iter().find(|r| r.product.id.as_str() == "p9").expect("p9 is recommended");
    assert!(p9.source.is_personal(), "{p9:?}");
}

#[test]
fn hidden_products_vanish_everywhere_at_once_and_purchases_are_excluded() {
    let (products, log) = shop();
    let engine = trained(products.clone(), &log, RankingConfig { exclude_seen: false, ..Default::default() });
    let f = Filters::default();
    engine.observe(&ev(10_000, "buyer", ActivityType::Purchase, "p1"));
    engine.observe(&ev(10_001, "buyer", ActivityType::View, "p2"));
    let list = engine.recommend(&uid("buyer"), &req(10, &f));
    assert!(!ids(&list).contains(&"p1".to_string()), "purchased: {:?}", ids(&list));
    assert!(ids(&list).contains(&"p2".to_string()), "viewed items may come back when exclude_seen is off");

    let mut hidden = products[3].clone();
    hidden.hidden = true;
    engine.upsert_products([hidden]);
    let model = engine.model();
    let ranking = engine.ranking();
    let everything = [
        engine.recommend(&uid("u0"), &req(10, &f)),
        engine.recommend(&uid("buyer"), &req(10, &f)),
        engine.similar(&model, &ranking, &pid("p2"), &req(10, &f)).unwrap(),
        engine.popular(Window::Day, &req(10, &f)),
        engine.recommend_session(
            &model,
            &ranking,
            &[SessionEvent { product_id: pid("p2"), kind: ActivityType::View, ts_ms: T0 }],
            &req(10, &f),
        ),
    ];
    for list in everything {
        assert!(!ids(&list).contains(&"p3".to_string()), "{:?}", ids(&list));
    }
}

#[test]
fn new_products_are_served_before_any_retraining() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    let mut fresh = product("brand-new", "phones", "10.00");
    fresh.created_at = vitrina_core::time::from_millis(T0 + 999 * 60_000);
    engine.upsert_products([fresh]);
    engine.refresh();
    let list = engine.recommend(&uid("nobody"), &req(10, &Filters::default()));
    let item =
        list.iter().find(|r| r.product.id.as_str() == "brand-new").expect("the new product is explored");
    assert_eq!(item.source, Source::NewItem);
    let in_category = engine.recommend(
        &uid("nobody"),
        &req(10, &Filters { category: Some("phones".into()), ..Default::default() }),
    );
    assert!(in_category.iter().all(|r| r.product.category == "phones"));
    assert!(ids(&in_category).contains(&"brand-new".to_string()));
}

#[test]
fn latest_lists_the_newest_available_products_without_waiting_for_a_refresh() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    let at = |minutes: i64| vitrina_core::time::from_millis(T0 + minutes * 60_000);
    let mut newest = product("newest", "audio", "10.00");
    newest.created_at = at(30);
    let mut older = product("older", "phones", "10.00");
    older.created_at = at(20);
    let mut hidden = product("hidden", "phones", "10.00");
    hidden.created_at = at(40);
    hidden.hidden = true;
    engine.upsert_products([newest, older, hidden]);
    let all = engine.latest(&req(3, &Filters::default()));
    assert_eq!(ids(&all)[..2], ["newest", "older"], "newest first, the hidden one left out");
    assert_eq!(all.len(), 3, "then the shop's older products");
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let phones = engine.latest(&req(10, &Filters { category: Some("phones".into()), ..Default::default() }));
    assert_eq!(ids(&phones)[0], "older");
    assert!(phones.iter().all(|r| r.product.category == "phones"));
    let unknown = Filters { category: Some("no-such".into()), ..Default::default() };
    assert!(engine.latest(&req(10, &unknown)).is_empty());
}

#[test]
fn similar_items_come_from_the_item_s_neighbours() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    let (model, ranking) = (engine.model(), engine.ranking());
    let list = engine.similar(&model, &ranking, &pid("p1"), &req(4, &Filters::default())).unwrap();
    assert!(ids(&list).iter().all(|p| ["p0", "p2", "p3", "p4"].contains(&p.as_str())), "{:?}", ids(&list));
    assert!(engine.similar(&model, &ranking, &pid("unknown"), &req(4, &Filters::default())).is_none());
}

#[test]
fn bundles_round_trip_bit_exact_and_corruption_is_refused() {
    let (_, log) = shop();
    let bundle =
        train_bundle(&TrainingLog::from_events(&log), &TrainingConfig::default(), (1, 200), &mut |_, _| true)
            .unwrap();
    assert_eq!(bundle.algorithms(), ["als", "item-knn", "ease", "ease-history", "transitions", "popularity"]);
    let mut bytes = Vec::new();
    bundle.write(&mut bytes).unwrap();
    assert_eq!(ModelBundle::read(&bytes[..]).unwrap(), bundle);
    for at in [3, 20, bytes.len() / 2, bytes.len() - 2] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(ModelBundle::read(&bad[..]).is_err(), "flipping byte {at} must be caught");
    }
    assert!(ModelBundle::read(&bytes[..bytes.len() - 9]).is_err());
}

/// EASE's weight from `from` to `to` in a bundle trained with `ease` settings only.
fn ease_weight(log: &[LogEvent], ease: crate::config::EaseConfig, from: &str, to: &str) -> f32 {
    let training = TrainingConfig {
        algorithms: vec!["ease".into()],
        time_decay: 1.0,
        validation_users: 0,
        ease,
        ..TrainingConfig::default()
    };
    let bundle = train_bundle(&TrainingLog::from_events(log), &training, (1, 1), &mut |_, _| true).unwrap();
    let index = |p: &str| bundle.items.iter().position(|i| i.as_str() == p).unwrap() as u32;
    let (items, weights) = bundle.ease.as_ref().expect("ease trained").neighbours(index(from));
    items.iter().position(|&i| i == index(to)).map_or(0.0, |k| weights[k])
}

#[test]
fn session_weighted_ease_ties_items_of_one_visit_more_strongly() {
    // Every visitor views `near` a minute after `a`, and viewed `far` 60 days before: plain
    // EASE sees two identical co-occurrences; session weighting tells them apart.
    let day = 86_400_000;
    let mut log = Vec::new();
    for u in 0..30 {
        let user = format!("u{u}");
        let t = T0 + u * 3_600_000;
        for (k, (product, at)) in
            [("far", t - 60 * day), ("a", t), ("near", t + 60_000)].into_iter().enumerate()
        {
            let mut e = ev(0, &user, ActivityType::View, product);
            (e.seq, e.ts_ms) = ((3 * u) as u64 + k as u64 + 1, at);
            log.push(e);
        }
        // Other products so the three are not the whole catalogue.
        log.push(ev((100 + u) as u64, &user, ActivityType::View, &format!("x{}", u % 5)));
    }
    log.sort_by_key(|e| e.ts_ms);
    let plain = crate::config::EaseConfig { lambda: 5.0, session_seconds: 0.0, ..Default::default() };
    let (near, far) =
        (ease_weight(&log, plain.clone(), "a", "near"), ease_weight(&log, plain.clone(), "a", "far"));
    assert!((near - far).abs() < 1e-6 && near > 0.0, "plain EASE: near {near}, far {far}");
    let session = crate::config::EaseConfig { session_seconds: 600.0, session_floor: 0.1, ..plain };
    let (near, far) =
        (ease_weight(&log, session.clone(), "a", "near"), ease_weight(&log, session, "a", "far"));
    assert!(near > 2.0 * far && far > 0.0, "session EASE: near {near}, far {far}");
}

#[test]
fn training_can_be_cancelled() {
    let (_, log) = shop();
    let mut calls = 0;
    let result =
        train_bundle(&TrainingLog::from_events(&log), &TrainingConfig::default(), (1, 200), &mut |_, _| {
            calls += 1;
            calls < 3
        });
    assert!(matches!(result, Err(crate::train::TrainError::Cancelled)));
    // between the two EASE inversions: the second report of the "ease" phase
    let mut ease_reports = 0;
    let result = train_bundle(
        &TrainingLog::from_events(&log),
        &TrainingConfig::default(),
        (1, 200),
        &mut |phase, _| {
            ease_reports += usize::from(phase == "ease");
            ease_reports < 2
        },
    );
    assert!(matches!(result, Err(crate::train::TrainError::Cancelled)));
    assert_eq!(ease_reports, 2, "the job stops at the report before the history model");
}

/// (in stock, hidden, category) per product; views (user, product); limit; cap; category filter
type Case = (Vec<(bool, bool, u8)>, Vec<(u8, u8)>, Vec<(u8, u8)>, usize, usize, Option<u8>);

fn arb_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((prop::bool::weighted(0.85), prop::bool::weighted(0.1), 0u8..4), 12),
        prop::collection::vec((0u8..8, 0u8..12), 0..80),
        prop::collection::vec((0u8..12, 0u8..6), 0..6),
        1usize..15,
        0usize..4,
        prop::option::of(0u8..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn lists_respect_every_rule((catalogue, views, mine, limit, cap, category) in arb_case()) {
        let products: Vec<Product> = catalogue.iter().enumerate().map(|(i, (stock, hidden, c))| {
            let mut p = product(&format!("p{i}"), &format!("c{c}"), &format!("{}.00", i + 1));
            p.in_stock = *stock;
            p.hidden = *hidden;
            p
        }).collect();
        let log: Vec<LogEvent> = views.iter().enumerate()
            .map(|(k, (u, p))| ev(k as u64 + 1, &format!("u{u}"), ActivityType::View, &format!("p{p}")))
            .collect();
        const KINDS: [ActivityType; 6] = [ActivityType::View, ActivityType::Click, ActivityType::Like,
            ActivityType::AddToCart, ActivityType::Purchase, ActivityType::RemoveFromCart];
        let config = RankingConfig { max_per_category: cap, ..Default::default() };
        let engine = trained(products.clone(), &log, config);
        for (k, (p, kind)) in mine.iter().enumerate() {
            engine.observe(&ev(5_000 + k as u64, "me", KINDS[*kind as usize], &format!("p{p}")));
        }
        let filters = Filters {
            category: category.map(|c| format!("c{c}")),
            exclude: HashSet::from([pid("p0")]),
            min_price: Some(2.0),
            max_price: Some(11.0),
        };
        let list = engine.recommend(&uid("me"), &req(limit, &filters));
        prop_assert!(list.len() <= limit);
        let mut unique = HashSet::new();
        let mut per_category = std::collections::HashMap::<String, usize>::new();
        let interacted: HashSet<String> = mine.iter().map(|(p, _)| format!("p{p}")).collect();
        for (i, r) in list.iter().enumerate() {
            prop_assert!(r.score.is_finite() && r.score >= 0.0);
            prop_assert!((0.0..=1.0).contains(&r.confidence));
            prop_assert!(r.product.is_available(), "unavailable {}", r.product.id);
            prop_assert!(unique.insert(r.product.id.clone()), "duplicate {}", r.product.id);
            prop_assert!(!interacted.contains(r.product.id.as_str()), "seen or purchased {}", r.product.id);
            prop_assert!(r.product.id.as_str() != "p0", "excluded by the filter");
            let price = r.product.price.to_f64();
            prop_assert!((2.0..=11.0).contains(&price));
            if let Some(c) = &filters.category { prop_assert_eq!(&r.product.category, c); }
            let n = per_category.entry(r.product.category.clone()).or_default();
            *n += 1;
            prop_assert!(cap == 0 || *n <= cap, "category cap {} broken", cap);
            if i > 0 { prop_assert!(list[i - 1].score >= r.score, "not sorted at {}", i); }
            prop_assert!(r.because.is_none() || r.source.is_personal(), "an explanation only for personal sources");
        }
        // Full when enough eligible products exist.
        let eligible = products.iter().filter(|p| {
            p.is_available() && p.id.as_str() != "p0" && !interacted.contains(p.id.as_str())
                && (2.0..=11.0).contains(&p.price.to_f64())
                && filters.category.as_ref().is_none_or(|c| &p.category == c)
        }).count();
        if cap == 0 {
            prop_assert_eq!(list.len(), limit.min(eligible));
        }
    }
}

#[test]
fn hydration_gives_up_when_an_erasure_ran_meanwhile() {
    let engine = Engine::new(Vec::new(), RankingConfig::default());
    let u = UserId::parse("u").unwrap();
    let event = |seq: u64| LogEvent {
        seq,
        user_id: u.clone(),
        product_id: Some(ProductId::parse(&format!("p{seq}")).unwrap()),
        activity_type: ActivityType::View,
        ts_ms: 1_700_000_000_000 + seq as i64,
        value: None,
    };
    let before = engine.erasures();
    engine.forget_user(&UserId::parse("someone-else").unwrap());
    engine.hydrate(&u, &[event(1), event(2)], before);
    assert!(!engine.knows(&u), "a log read from before an erasure may hold erased events");
    engine.hydrate(&u, &[event(1), event(2)], engine.erasures());
    assert!(engine.knows(&u));
    // Observed with an erasure in between: the visitor is dropped and read back later.
    let seen = engine.erasures();
    engine.observe(&event(3));
    engine.forget_user(&UserId::parse("another").unwrap());
    engine.settle(seen, [&u]);
    assert!(!engine.knows(&u) && engine.may_need_hydration());
}

/// What a restored engine must serve exactly as the one checkpointed: lists of several
/// visitors, similar items (live co-visitation) and popularity, by product id.
fn served(engine: &Engine) -> Vec<Vec<(String, u32, Source)>> {
    let f = Filters::default();
    let by_id = |l: Vec<vitrina_core::recommend::Recommended>| -> Vec<(String, u32, Source)> {
        l.into_iter().map(|r| (r.product.id.as_str().to_string(), r.score.to_bits(), r.source)).collect()
    };
    let mut out: Vec<_> = ["u0", "u1", "u7", "live", "nobody"]
        .iter()
        .map(|u| by_id(engine.recommend(&uid(u), &req(10, &f))))
        .collect();
    let (model, ranking) = (engine.model(), engine.ranking());
    for p in ["p0", "p6", "p9"] {
        out.push(by_id(engine.similar(&model, &ranking, &pid(p), &req(10, &f)).unwrap()));
    }
    for w in Window::ALL {
        out.push(by_id(engine.popular(w, &req(10, &f))));
    }
    out
}

#[test]
fn a_restored_checkpoint_serves_what_the_checkpointed_engine_served() {
    let (products, log) = shop();
    let engine = trained(products.clone(), &log, RankingConfig::default());
    // After the model's data range: live co-visitation, a purchase, a product the catalogue
    // does not know (interned by the event), a rating.
    let mut seq = log.len() as u64;
    let mut live = |user: &str, kind, product: &str| {
        seq += 1;
        engine.observe(&ev(seq, user, kind, product));
    };
    live("live", ActivityType::View, "p0");
    live("live", ActivityType::View, "p9");
    live("live", ActivityType::Purchase, "p9");
    live("u7", ActivityType::View, "unlisted");
    live("u1", ActivityType::View, "p0");
    engine.observe(&LogEvent { value: Some(4.5), ..ev(seq + 1, "u0", ActivityType::Rating, "p3") });
    engine.refresh();
    let checkpoint = engine.checkpoint(seq + 1);
    assert_eq!(checkpoint.users.len(), 41);

    // Another process: the catalogue in another order, so item indices differ.
    let reversed: Vec<Product> = products.iter().rev().cloned().collect();
    let restored = Engine::new(reversed.clone(), RankingConfig::default());
    restored.activate(PreparedModel::new("v1", engine.model().bundle.clone()));
    let bytes = checkpoint.write();
    assert!(
        restored.restore(crate::OnlineCheckpoint::read(&bytes).unwrap()),
        "same model: co-visitation kept"
    );
    restored.refresh();
    assert_eq!(served(&restored), served(&engine));
    assert_eq!(restored.stats().visitors, engine.stats().visitors);
    // A restored visitor's latest event is taken to be as recent as the checkpoint.
    assert_eq!(restored.last_seq(&uid("live")), seq + 1);
    assert_eq!(restored.last_seq(&uid("nobody")), 0, "no visitor was forgotten before the checkpoint");
    // The digest names items by product id, so other item numbers do not change it.
    assert_eq!(restored.digest(), engine.digest());
    assert_eq!(engine.digest().visitors, 41);
    restored.observe(&ev(seq + 2, "u1", ActivityType::Click, "p0"));
    assert_ne!(restored.digest(), engine.digest(), "one more event changes the digest");
    engine.observe(&ev(seq + 2, "u1", ActivityType::Click, "p0"));
    assert_eq!(restored.digest(), engine.digest());

    // Under another model, live co-visitation is not restored (it counted what that model
    // may cover); the visitors are.
    let other = Engine::new(reversed, RankingConfig::default());
    other.activate(PreparedModel::new("v2", engine.model().bundle.clone()));
    assert!(!other.restore(checkpoint));
    assert_eq!(other.online_events(&uid("live")), 3);
    let partners = |e: &Engine| e.checkpoint(0).covisits.len();
    assert!(partners(&engine) > 0);
    assert_eq!(partners(&other), 0);
}

#[test]
fn syncing_the_catalogue_replaces_what_changed_and_removes_what_is_gone() {
    let engine =
        Engine::new([product("a", "c1", "1.00"), product("b", "c1", "2.00")], RankingConfig::default());
    let same = vec![product("a", "c1", "1.00"), product("b", "c1", "2.00")];
    assert!(!engine.sync_products(same), "nothing changed");
    let mut hidden = product("a", "c1", "1.00");
    hidden.hidden = true;
    assert!(engine.sync_products(vec![hidden, product("c", "c2", "3.00")]));
    assert!(engine.product(&pid("a")).unwrap().hidden);
    assert!(engine.product(&pid("b")).is_none(), "b is no longer in the store");
    assert_eq!(engine.product(&pid("c")).unwrap().category, "c2");
    assert_eq!(engine.products().len(), 2);
}

#[test]
fn a_visitors_latest_sequence_follows_observed_and_hydrated_events() {
    let engine =
        Engine::new([product("p0", "c1", "1.00"), product("p1", "c1", "2.00")], RankingConfig::default());
    engine.observe(&ev(5, "a", ActivityType::View, "p0"));
    engine.observe(&ev(3, "a", ActivityType::View, "p1"));
    assert_eq!(engine.last_seq(&uid("a")), 5, "the highest, whatever the order");
    let history = [
        ev(7, "b", ActivityType::View, "p0"),
        ev(9, "b", ActivityType::Click, "p1"),
        ev(11, "c", ActivityType::View, "p0"),
    ];
    engine.hydrate(&uid("b"), &history, engine.erasures());
    assert_eq!(engine.last_seq(&uid("b")), 9, "only the visitor's own events count");
    assert_eq!(engine.last_seq(&uid("stranger")), 0);
    // A visitor without state may be one forgotten with events: as recent as any forgotten.
    engine.forget_user(&uid("a"));
    assert_eq!(engine.last_seq(&uid("a")), 5);
    assert_eq!(engine.last_seq(&uid("stranger")), 5);
}

#[test]
fn a_visitor_whose_events_were_retracted_is_read_back_from_the_log() {
    let engine =
        Engine::new([product("p0", "c1", "1.00"), product("p1", "c1", "2.00")], RankingConfig::default());
    engine.observe(&ev(1, "a", ActivityType::View, "p0"));
    engine.observe(&ev(2, "a", ActivityType::Purchase, "p1"));
    assert!(!engine.may_need_hydration());
    let before = engine.erasures();
    // The purchase (seq 2) was deleted from the log.
    engine.reload_user(&uid("a"));
    assert!(!engine.knows(&uid("a")));
    assert!(engine.may_need_hydration(), "the visitor's next list reads them back");
    // A read of the log that began before the deletion is refused.
    engine.hydrate(
        &uid("a"),
        &[ev(1, "a", ActivityType::View, "p0"), ev(2, "a", ActivityType::Purchase, "p1")],
        before,
    );
    assert!(!engine.knows(&uid("a")));
    // What the log holds now comes back, without the purchase.
    engine.hydrate(&uid("a"), &[ev(1, "a", ActivityType::View, "p0")], engine.erasures());
    assert!(engine.knows(&uid("a")));
    assert_eq!(engine.last_seq(&uid("a")), 1);
}

#[test]
fn unknown_products_are_those_the_catalogue_lacks_each_once() {
    let (products, _) = shop();
    let engine = Engine::new(products, RankingConfig::default());
    // Heard of in an event, but not a product.
    engine.observe(&ev(1, "u", ActivityType::View, "x1"));
    let ids = [pid("p9"), pid("x2"), pid("p0"), pid("x1"), pid("x2")];
    assert_eq!(engine.unknown_products(&ids), [&pid("x1"), &pid("x2")]);
    assert!(engine.unknown_products(&ids[..1]).is_empty());
    // A deleted product is unknown again.
    engine.remove_product(&pid("p9"));
    assert_eq!(engine.unknown_products(&ids[..1]), [&pid("p9")]);
}

fn rating(seq: u64, user: &str, product: &str, value: f32) -> LogEvent {
    LogEvent { value: Some(value), ..ev(seq, user, ActivityType::Rating, product) }
}

#[test]
fn rated_items_stay_out_of_lists_past_the_history_window() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig { history_events: 3, ..Default::default() });
    for (k, p) in ["p0", "p1", "p2"].into_iter().enumerate() {
        engine.observe(&rating(10_000 + k as u64, "critic", p, 5.0));
    }
    // Three views push the ratings out of the three-event window ranking reads.
    for (k, p) in ["p5", "p6", "p7"].into_iter().enumerate() {
        engine.observe(&ev(10_010 + k as u64, "critic", ActivityType::View, p));
    }
    let list = ids(&engine.recommend(&uid("critic"), &req(10, &Filters::default())));
    assert!(!list.is_empty());
    for gone in ["p0", "p1", "p2", "p5", "p6", "p7"] {
        assert!(!list.contains(&gone.to_string()), "{gone} was rated or viewed: {list:?}");
    }
}

#[test]
fn a_rating_below_the_visitors_mean_neither_leads_to_items_nor_explains_them() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    engine.observe(&rating(10_000, "picky", "p0", 5.0));
    engine.observe(&rating(10_001, "picky", "p1", 4.0));
    engine.observe(&rating(10_002, "picky", "p5", 1.0));
    let list = engine.recommend(&uid("picky"), &req(10, &Filters::default()));
    assert!(list.iter().any(|r| r.because.is_some()), "{list:?}");
    assert!(list.iter().all(|r| r.because.as_ref().is_none_or(|b| b.0 != pid("p5"))), "{list:?}");
    assert!(!ids(&list).contains(&"p5".to_string()), "rated, so seen: {list:?}");
    // p5's taste group is reachable through p5's neighbours and successors only.
    let through_p5 = list.iter().filter(|r| {
        ["p6", "p7", "p8", "p9"].contains(&r.product.id.as_str())
            && matches!(r.source, Source::CollaborativeFiltering | Source::NextItem)
    });
    assert_eq!(through_p5.count(), 0, "{list:?}");
    // Rated again, higher: the latest rating decides.
    engine.observe(&rating(10_003, "picky", "p5", 5.0));
    let list = engine.recommend(&uid("picky"), &req(10, &Filters::default()));
    assert!(list.iter().any(|r| r.because.as_ref().is_some_and(|b| b.0 == pid("p5"))), "{list:?}");
}

/// Weights that turn on one source alone.
fn only(source: Source) -> RankingConfig {
    let mut weights = crate::config::SourceWeights::default();
    for s in Source::ALL {
        weights.0.insert(s.as_str().to_string(), if s == source { 1.0 } else { 0.0 });
    }
    // the decay the whole-history test tells apart from no decay
    RankingConfig { weights, recency: 0.9, ..Default::default() }
}

#[test]
fn whole_history_reads_items_the_recent_profile_has_let_go() {
    // The shop's two taste groups, and a third group q0–q13 viewed together by others.
    let (mut products, mut log) = shop();
    products.extend((0..14).map(|i| product(&format!("q{i}"), "books", "10.00")));
    let mut seq = log.len() as u64;
    for u in 0..20 {
        for k in 0..14 {
            seq += 1;
            log.push(ev(seq, &format!("r{u}"), ActivityType::View, &format!("q{k}")));
        }
    }
    let visit = |engine: &Engine| {
        // p0 first; then fourteen q items push it out of the strongest recent items.
        engine.observe(&ev(20_000, "loyal", ActivityType::View, "p0"));
        for k in 0..14 {
            engine.observe(&ev(20_001 + k, "loyal", ActivityType::View, &format!("q{k}")));
        }
        engine.recommend(&uid("loyal"), &req(10, &Filters::default()))
    };
    let taste = ["p1", "p2", "p3", "p4"];
    let through_p0 = |list: &[vitrina_core::recommend::Recommended], source: Source| {
        list.iter()
            .filter(|r| r.source == source && taste.contains(&r.product.id.as_str()))
            .map(|r| (r.product.id.to_string(), r.because.as_ref().map(|b| b.0.to_string())))
            .collect::<Vec<_>>()
    };
    let linear = trained(products.clone(), &log, only(Source::LinearItemModel));
    let recent = visit(&linear);
    assert!(through_p0(&recent, Source::LinearItemModel).is_empty(), "{recent:?}");
    // p0 among the latest items: the linear item model reads it.
    linear.observe(&ev(20_100, "loyal", ActivityType::View, "p0"));
    let again = linear.recommend(&uid("loyal"), &req(10, &Filters::default()));
    assert_eq!(through_p0(&again, Source::LinearItemModel).len(), 4, "{again:?}");

    let engine = trained(products, &log, only(Source::WholeHistory));
    let whole = visit(&engine);
    let found = through_p0(&whole, Source::WholeHistory);
    assert_eq!(found.len(), 4, "p0's group, through p0: {whole:?}");
    assert!(found.iter().all(|(_, because)| because.as_deref() == Some("p0")), "{found:?}");

    // Undecayed: p0 viewed three times long ago outweighs p5 viewed once lately, so p0's
    // group leads although p5's is the more recent.
    for k in 0..3 {
        engine.observe(&ev(30_000 + k, "fan", ActivityType::View, "p0"));
    }
    for k in 0..14 {
        engine.observe(&ev(30_010 + k, "fan", ActivityType::View, &format!("q{k}")));
    }
    engine.observe(&ev(30_100, "fan", ActivityType::View, "p5"));
    let fan = engine.recommend(&uid("fan"), &req(10, &Filters::default()));
    let through = |group: [&str; 4], because: &str| -> Vec<usize> {
        fan.iter()
            .enumerate()
            .filter(|(_, r)| {
                group.contains(&r.product.id.as_str())
                    && r.source == Source::WholeHistory
                    && r.because.as_ref().is_some_and(|b| b.0.as_str() == because)
            })
            .map(|(at, _)| at)
            .collect()
    };
    let (p0_group, p5_group) =
        (through(["p1", "p2", "p3", "p4"], "p0"), through(["p6", "p7", "p8", "p9"], "p5"));
    assert_eq!((p0_group.len(), p5_group.len()), (4, 4), "both groups proposed by the source: {fan:?}");
    assert!(p0_group.iter().max() < p5_group.iter().min(), "{fan:?}");
}

#[test]
fn whole_history_has_its_own_model_unless_history_k_is_zero() {
    let (_, log) = shop();
    let train = |ease: crate::config::EaseConfig| {
        let config = TrainingConfig { ease, ..TrainingConfig::default() };
        train_bundle(&TrainingLog::from_events(&log), &config, (1, 200), &mut |_, _| true).unwrap()
    };
    let own = train(crate::config::EaseConfig::default());
    assert!(own.ease_history.is_some() && own.ease.is_some());
    let shared = train(crate::config::EaseConfig { history_k: 0, ..Default::default() });
    assert!(shared.ease_history.is_none() && shared.ease.is_some());
    assert_eq!(shared.algorithms(), ["als", "item-knn", "ease", "transitions", "popularity"]);
}

#[test]
fn a_heavy_visitors_own_items_do_not_crowd_out_what_a_source_proposes() {
    // c0–c3 are viewed together by forty visitors; `z` with each of them by a few others.
    let mut products: Vec<Product> = (0..4).map(|i| product(&format!("c{i}"), "books", "10.00")).collect();
    products.push(product("z", "books", "10.00"));
    products.extend((0..6).map(|i| product(&format!("o{i}"), "toys", "5.00")));
    let mut log = Vec::new();
    let mut seq = 0;
    let mut view = |log: &mut Vec<LogEvent>, user: String, item: String| {
        seq += 1;
        log.push(ev(seq, &user, ActivityType::View, &item));
    };
    for u in 0..40 {
        for c in 0..4 {
            view(&mut log, format!("core{u}"), format!("c{c}"));
        }
        // other products, viewed in pairs by others
        view(&mut log, format!("other{u}"), format!("o{}", u % 6));
        view(&mut log, format!("other{u}"), format!("o{}", (u + 1) % 6));
    }
    for u in 0..8 {
        view(&mut log, format!("side{u}"), format!("c{}", u % 4));
        view(&mut log, format!("side{u}"), "z".into());
    }
    // Each source proposes 3 candidates; the visitor has seen all four c items, which are
    // each other's strongest neighbours.
    for source in [Source::LinearItemModel, Source::WholeHistory] {
        let config = RankingConfig { candidates_per_source: 3, exploration: 0.0, ..only(source) };
        let engine = trained(products.clone(), &log, config);
        for (k, c) in (0..4).enumerate() {
            engine.observe(&ev(10_000 + k as u64, "heavy", ActivityType::View, &format!("c{c}")));
        }
        let list = engine.recommend(&uid("heavy"), &req(5, &Filters::default()));
        assert!(
            list.iter().any(|r| r.product.id.as_str() == "z" && r.source == source),
            "{source:?}: {list:?}"
        );
    }
}
