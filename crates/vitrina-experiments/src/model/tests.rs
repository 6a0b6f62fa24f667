use super::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn spec(value: serde_json::Value) -> ExperimentSpec {
    serde_json::from_value(value).unwrap()
}

fn two() -> ExperimentSpec {
    spec(json!({"name": "ranking v2", "variants": [{"name": "A"}, {"name": "B"}]}))
}

fn field_of(s: &ExperimentSpec) -> Option<String> {
    s.validate().err().map(|e| e.field)
}

#[test]
fn defaults_and_equal_split() {
    let s = two();
    assert_eq!((s.goal, s.mode), (Goal::Ctr, Mode::Fixed));
    assert_eq!((s.exploration_floor, s.attribution_window_hours, s.judge_after_minutes), (0.05, 24, 10));
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(s.normalised_traffic(), vec![0.5, 0.5]);
    let e = Experiment::new("exp-1", s, "abcd", now()).unwrap();
    assert_eq!((e.control.as_str(), e.status), ("A", Status::Draft));
    assert_eq!(e.allocation_log.len(), 1);
}

#[test]
fn camel_case_fields_and_shares_are_normalised() {
    let s = spec(json!({
        "name": "x", "goal": "revenue_per_mille", "mode": "bandit", "control": "B",
        "explorationFloor": 0.1, "attributionWindowHours": 48,
        "startAt": "2025-01-01T00:00:00Z", "endAt": "2025-02-01T00:00:00Z",
        "variants": [
            {"name": "A", "traffic": 1, "modelVersion": 3, "description": "old"},
            {"name": "B", "traffic": 3, "ranking": {"diversity": 0.3}}
        ]
    }));
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(s.normalised_traffic(), vec![0.25, 0.75]);
    let e = Experiment::new("e", s, "00", now()).unwrap();
    assert_eq!((e.control_index(), e.goal, e.mode), (1, Goal::RevenuePerMille, Mode::Bandit));
    assert_eq!(e.attribution_window(), Duration::hours(48));
    let stored = serde_json::to_value(&e).unwrap();
    assert_eq!(stored["allocationLog"][0]["traffic"], json!([0.25, 0.75]));
    assert_eq!(serde_json::from_value::<Experiment>(stored.clone()).unwrap(), e);
    // An experiment stored before `judgeAfterMinutes` existed reads the default.
    let mut old = stored;
    old.as_object_mut().unwrap().remove("judgeAfterMinutes").expect("the field is stored");
    assert_eq!(serde_json::from_value::<Experiment>(old).unwrap().judge_after(), Duration::minutes(10));
}

#[test]
fn unknown_fields_and_non_object_ranking_are_rejected() {
    let bad = [
        json!({"name": "x", "variants": [], "colour": 1}),
        json!({"name": "x", "variants": [{"name": "A", "weight": 1}]}),
        json!({"name": "x", "variants": [{"name": "A", "ranking": [1]}]}),
        json!({"name": "x", "variants": [], "goal": "views"}),
    ];
    for b in bad {
        assert!(serde_json::from_value::<ExperimentSpec>(b.clone()).is_err(), "{b}");
    }
}

#[test]
fn each_problem_names_its_field() {
    let mut s = two();
    s.variants[1].name = "A".into();
    assert_eq!(field_of(&s).as_deref(), Some("variants[1].name"));
    let mut s = two();
    s.variants[0].name = "bad name".into();
    assert_eq!(field_of(&s).as_deref(), Some("variants[0].name"));
    let mut s = two();
    s.variants[0].name = "x".repeat(65);
    assert_eq!(field_of(&s).as_deref(), Some("variants[0].name"));
    let mut s = two();
    s.variants.truncate(1);
    assert_eq!(field_of(&s).as_deref(), Some("variants"));
    let mut s = two();
    s.variants[0].traffic = Some(1.0);
    assert_eq!(field_of(&s).as_deref(), Some("variants"));
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut s = two();
        s.variants[0].traffic = Some(t);
        s.variants[1].traffic = Some(1.0);
        assert_eq!(field_of(&s).as_deref(), Some("variants[0].traffic"), "{t}");
    }
    let mut s = two();
    s.control = Some("C".into());
    assert_eq!(s.validate().unwrap_err().to_string(), "control \"C\" is not one of the variants");
    let mut s = two();
    s.start_at = Some(now());
    s.end_at = Some(now());
    assert_eq!(field_of(&s).as_deref(), Some("endAt"));
    let mut s = two();
    s.exploration_floor = 0.6;
    assert_eq!(field_of(&s).as_deref(), Some("explorationFloor"));
    s.exploration_floor = 0.5;
    assert_eq!(s.validate(), Ok(()));
    for w in [0, 721] {
        let mut s = two();
        s.attribution_window_hours = w;
        assert_eq!(field_of(&s).as_deref(), Some("attributionWindowHours"));
    }
    // The bandit may wait 0 minutes up to a day, never longer than the attribution window.
    for (window, judge, ok) in
        [(24, 0, true), (24, 1440, true), (24, 1441, false), (1, 60, true), (1, 61, false)]
    {
        let mut s = two();
        (s.attribution_window_hours, s.judge_after_minutes) = (window, judge);
        let expected = if ok { None } else { Some("judgeAfterMinutes") };
        assert_eq!(field_of(&s).as_deref(), expected, "window {window} h, judge after {judge} min");
    }
    let mut s = two();
    s.name = "  ".into();
    assert_eq!(field_of(&s).as_deref(), Some("name"));
    assert!(Experiment::new("e", s, "00", now()).is_err());
}

#[test]
fn problems_lists_all_of_them() {
    let mut s = two();
    s.name = String::new();
    s.attribution_window_hours = 0;
    s.control = Some("Z".into());
    let fields: Vec<String> = s.problems().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["name", "attributionWindowHours", "control"]);
}

#[test]
fn lifecycle_is_draft_running_stopped() {
    let mut e = Experiment::new("e", two(), random_salt(), now()).unwrap();
    assert_eq!(e.salt.len(), 32);
    assert!(!e.is_live(now()));
    assert!(e.stop(now()).is_err());
    e.start(now()).unwrap();
    assert!(e.is_live(now()));
    let err = e.start(now()).unwrap_err();
    assert_eq!(err.to_string(), "cannot move an experiment from running to running");
    e.stop(now()).unwrap();
    assert!(!e.is_live(now()));
    assert!(e.start(now()).is_err());
    assert_eq!((e.started_at, e.stopped_at), (Some(now()), Some(now())));
}

#[test]
fn live_only_inside_the_window() {
    let mut s = two();
    s.start_at = Some(now() + Duration::hours(1));
    s.end_at = Some(now() + Duration::hours(2));
    let mut e = Experiment::new("e", s, "00", now()).unwrap();
    e.start(now()).unwrap();
    assert!(!e.is_live(now()));
    assert!(e.is_live(now() + Duration::minutes(90)));
    assert!(!e.is_live(now() + Duration::hours(2)));
    let mut late = Experiment::new("e", e.spec(), "00", now()).unwrap();
    assert!(matches!(late.start(now() + Duration::hours(3)), Err(TransitionError::Ended { .. })));
}
