use super::super::baseline::{self, Verdict};
use super::{case, run_of};

/// A stored run: `update/empty` at 1000 ns against a 500 ns baseline (ratio
/// 2), 100 instructions.
fn stored(dir: &std::path::Path) -> baseline::Stored {
    let path = dir.join("baseline.json");
    let run = run_of(vec![
        case("wasmtime/fresh_instance", 500.0, &[], &[]),
        case("update/empty", 1000.0, &["wasmtime/fresh_instance"], &[("instructions", 100)]),
    ]);
    baseline::persist(&path, &run).unwrap();
    baseline::load(&path).unwrap()
}

/// `update/empty` now at `p50` against a baseline now at `base`.
fn verdict(stored: &baseline::Stored, base: f64, p50: f64, instructions: u64) -> (Verdict, Option<f64>) {
    let run = run_of(vec![
        case("wasmtime/fresh_instance", base, &[], &[]),
        case("update/empty", p50, &["wasmtime/fresh_instance"], &[("instructions", instructions)]),
    ]);
    let comparisons = baseline::compare(stored, &run, 0.25).unwrap();
    let c = comparisons.iter().find(|c| c.case == "update/empty").unwrap();
    (c.verdict, c.change)
}

#[test]
fn ratios_not_times_are_judged() {
    let dir = tempfile::tempdir().unwrap();
    let stored = stored(dir.path());
    // A machine twice as slow: both sides doubled, the ratio unchanged.
    assert_eq!(verdict(&stored, 1000.0, 2000.0, 100).0, Verdict::Unchanged);
    // The ratio 2 -> 2.6: +30%, beyond the 25% threshold.
    let (v, change) = verdict(&stored, 500.0, 1300.0, 100);
    assert_eq!(v, Verdict::Regressed);
    assert!((change.unwrap() - 0.30).abs() < 1e-9);
    // 2 -> 2.4: +20%, noise.
    assert_eq!(verdict(&stored, 500.0, 1200.0, 100).0, Verdict::Unchanged);
    // 2 -> 1.4: -30%.
    assert_eq!(verdict(&stored, 500.0, 700.0, 100).0, Verdict::Improved);
}

#[test]
fn counts_are_compared_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let stored = stored(dir.path());
    // One more instruction is a regression however fast the message was.
    assert_eq!(verdict(&stored, 500.0, 800.0, 101).0, Verdict::Regressed);
    assert_eq!(verdict(&stored, 500.0, 1000.0, 99).0, Verdict::Improved);
}

#[test]
fn baselines_are_shown_not_judged_and_new_cases_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let stored = stored(dir.path());
    let run = run_of(vec![
        case("wasmtime/fresh_instance", 5000.0, &[], &[]),
        case("update/new_thing", 10.0, &["wasmtime/fresh_instance"], &[]),
    ]);
    let comparisons = baseline::compare(&stored, &run, 0.25).unwrap();
    assert_eq!(comparisons[0].verdict, Verdict::Reference);
    assert_eq!(comparisons[1].verdict, Verdict::New);
    assert!(baseline::regressions(&comparisons).is_empty());
    let text = baseline::render(&comparisons, 0.25);
    assert!(text.contains("0 regressed") && text.contains("1 new") && text.contains("1 reference"), "{text}");
}

#[test]
fn a_debug_build_is_not_compared_to_a_release_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let stored = stored(dir.path());
    let mut run = run_of(vec![case("update/empty", 1000.0, &[], &[])]);
    run.machine.profile = "debug".into();
    let error = baseline::compare(&stored, &run, 0.25).unwrap_err().to_string();
    assert!(error.contains("debug build") && error.contains("--release"), "{error}");
}

#[test]
fn persist_keeps_cases_that_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    baseline::persist(&path, &run_of(vec![case("a", 1.0, &[], &[("n", 1)])])).unwrap();
    baseline::persist(&path, &run_of(vec![case("b", 2.0, &[], &[]), case("a", 3.0, &[], &[("n", 2)])])).unwrap();
    let stored = baseline::load(&path).unwrap();
    assert_eq!(stored.cases.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((stored.cases["a"].p50_ns, stored.cases["a"].counts["n"]), (3.0, 2));
}

#[test]
fn unreadable_or_foreign_baselines_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = baseline::load(&dir.path().join("nope.json")).unwrap_err().to_string();
    assert!(missing.contains("cannot read"), "{missing}");
    let path = dir.path().join("other.json");
    std::fs::write(&path, r#"{"version": 99, "machine": {}, "cases": {}}"#).unwrap();
    let other = baseline::load(&path).unwrap_err().to_string();
    assert!(other.contains("version 99") && other.contains("--persist"), "{other}");
    std::fs::write(&path, "not json").unwrap();
    assert!(baseline::load(&path).unwrap_err().to_string().contains("not a baseline file"));
}

#[test]
fn a_time_regression_is_measured_again_before_it_is_believed() {
    use crate::suite::{self, Options};
    let scratch = tempfile::tempdir().unwrap();
    let options =
        Options { quick: true, filter: vec!["update/empty".into()], only: None, scratch: scratch.path().into() };
    let mut run = suite::run(&options, &mut |_| {}).unwrap();
    // A baseline claiming update/empty once cost a thousandth as much,
    // relative to the fresh wasmtime instance beside it.
    let path = scratch.path().join("baseline.json");
    baseline::persist(&path, &run).unwrap();
    let mut stored = baseline::load(&path).unwrap();
    let case = stored.cases.get_mut("update/empty").unwrap();
    case.ratio = case.ratio.map(|r| r / 1000.0);

    let mut started = Vec::new();
    // A noise threshold of 500%: the thousandfold change is far beyond it,
    // while the other cases' run-to-run noise (on a loaded machine) is not.
    let comparisons =
        baseline::confirm(&mut run, &stored, &options, 5.0, 2, &mut |name| started.push(name.to_string())).unwrap();
    // Measured twice more, with its baseline, and still a regression.
    assert_eq!(started.iter().filter(|n| *n == "update/empty").count(), 2, "{started:?}");
    assert_eq!(started.iter().filter(|n| *n == "wasmtime/fresh_instance").count(), 2, "{started:?}");
    let regressed: Vec<_> = baseline::regressions(&comparisons).iter().map(|c| c.case.clone()).collect();
    assert_eq!(regressed, ["update/empty"]);
}

#[test]
fn sizes_are_stored_and_shown_but_never_judged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let sized = |peak: u64| {
        let mut c = case("memory/rewrite_64MiB", 1000.0, &["wasmtime/fresh_instance"], &[]);
        c.bytes.insert("peak_rss".into(), peak);
        run_of(vec![case("wasmtime/fresh_instance", 500.0, &[], &[]), c])
    };
    baseline::persist(&path, &sized(3 << 20)).unwrap();
    let stored = baseline::load(&path).unwrap();
    assert_eq!(stored.cases["memory/rewrite_64MiB"].bytes["peak_rss"], 3 << 20);
    // Ten times the memory: shown, not a regression (resident sizes vary).
    let now = sized(30 << 20);
    let comparisons = baseline::compare(&stored, &now, 0.25).unwrap();
    assert!(baseline::regressions(&comparisons).is_empty());
    let table = crate::suite::summary_table(&now);
    assert!(table.contains("peak_rss 30.00 MiB"), "{table}");
    // A baseline stored before sizes existed still loads.
    let json = std::fs::read_to_string(&path).unwrap().replace(r#""bytes""#, r#""unused""#);
    std::fs::write(&path, json).unwrap();
    assert!(baseline::load(&path).unwrap().cases["memory/rewrite_64MiB"].bytes.is_empty());
}
