//! Registering the shipper's and the follower's Prometheus metrics.

use prometheus::Registry;
use prometheus::core::Collector;

/// `metric` (its options are the caller's constants, so valid), registered
/// with `registry` (each name once), handed back to update.
pub(crate) fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric options");
    registry.register(Box::new(metric.clone())).expect("each name registered once");
    metric
}
