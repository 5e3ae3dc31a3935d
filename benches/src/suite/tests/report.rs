use super::super::report;
use super::{case, run_of};

#[test]
fn the_report_plots_what_the_run_measured_and_names_the_machine() {
    let mut results = Vec::new();
    for prefix in ["", "untracked/", "naive/"] {
        for n in [1, 16, 256] {
            results.push(case(&format!("{prefix}update/write_{n}_pages"), 1000.0 * n as f64, &[], &[]));
        }
    }
    results.push(case("checkpoint/dense_64MiB_1_dirty", 5e7, &["cp/dense_64MiB"], &[]));
    results.push(case("checkpoint/dense_64MiB_100_dirty", 6e7, &["cp/dense_64MiB"], &[]));
    results.push(case("cp/dense_64MiB", 2e7, &[], &[]));
    results.push(case("recovery/0_rounds", 3e7, &[], &[]));
    results.push(case("recovery/100_rounds", 4e7, &[], &[]));
    for t in [1, 8] {
        let mut c = case(&format!("throughput/fsync_{t}_threads"), 4e5, &[], &[]);
        c.throughput = Some(1000.0 * t as f64);
        results.push(c);
    }
    let html = report::render(&run_of(results), None).unwrap();
    for title in [
        "Latency distribution: one message on the executor",
        "Cost per page against pages touched",
        "Checkpoint time against dirty pages and canister size",
        "Recovery time against log length",
        "Throughput against client threads",
        "Test CPU 9000",
    ] {
        assert!(html.contains(title), "missing {title}");
    }
    // Two distributions (executor messages, transfers), four cost plots.
    assert_eq!(html.matches("<svg").count(), 6);
    // The table divides by in-run baselines: 50 ms / 20 ms.
    assert!(html.contains("2.50× cp/dense_64MiB"));
}

#[test]
fn an_empty_run_draws_no_plot() {
    let html = report::render(&run_of(Vec::new()), None).unwrap();
    assert!(!html.contains("<svg"));
}
