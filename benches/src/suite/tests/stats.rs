use super::super::Summary;

#[test]
fn percentiles_are_nearest_rank() {
    // 1..=100 shuffled: the p-th percentile is p itself.
    let mut samples: Vec<f64> = (1..=100).map(|v| ((v * 37) % 100 + 1) as f64).collect();
    let (summary, quantiles) = Summary::of(&mut samples);
    assert_eq!((summary.p50_ns, summary.p90_ns, summary.p99_ns, summary.samples), (50.0, 90.0, 99.0, 100));
    assert_eq!(quantiles.len(), 101);
    assert_eq!((quantiles[0], quantiles[25], quantiles[100]), (1.0, 25.0, 100.0));
}

#[test]
fn few_samples_give_the_nearest_one() {
    let (summary, _) = Summary::of(&mut [30.0, 10.0, 20.0]);
    // Ranks: p50 -> ceil(1.5) = 2nd, p90 and p99 -> 3rd.
    assert_eq!((summary.p50_ns, summary.p90_ns, summary.p99_ns), (20.0, 30.0, 30.0));
}

#[test]
fn per_operation_divides_every_figure() {
    let mut c = super::case("host/round_10_messages", 1000.0, &[], &[]);
    c.per_operation(10);
    assert_eq!((c.latency.p50_ns, c.latency.p99_ns, c.quantiles[0]), (100.0, 200.0, 100.0));
}
