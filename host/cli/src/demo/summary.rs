//! The demo's closing table, and the same as JSON.

use std::time::Duration;

use canister_host::VerifyReport;
use serde_json::json;

use super::Observed;
use super::recovery::{Recovered, Substituted};
use crate::args::Demo;

/// Everything the demo measured and checked.
pub struct Summary<'a> {
    pub args: &'a Demo,
    pub observed: &'a Observed,
    pub load_time: Duration,
    pub recovered: &'a Recovered,
    pub verified: &'a VerifyReport,
    pub substituted: &'a Substituted,
    pub setup_height: u64,
    pub total_time: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Summary<'_> {
    fn rate(&self) -> f64 {
        self.observed.acks.len() as f64 / self.load_time.as_secs_f64().max(1e-9)
    }

    /// The table people read.
    pub fn table(&self) -> String {
        let (o, r, v) = (self.observed, self.recovered, self.verified);
        let rows = [
            ("accounts, client threads", format!("{}, {}", self.args.accounts, self.args.threads)),
            (
                "acknowledged transfers",
                format!(
                    "{} in {:.1} s: {:.0}/s, each durable before its reply",
                    o.acks.len(),
                    self.load_time.as_secs_f64(),
                    self.rate()
                ),
            ),
            ("latency p50 / p99", format!("{:.2} ms / {:.2} ms", self.p50_ms, self.p99_ms)),
            ("rounds, dirty pages", format!("{}, {}", o.rounds, o.dirty_pages)),
            ("checkpoints before the kill", o.checkpoints.to_string()),
            ("last round seen before SIGKILL", o.height.to_string()),
            (
                "recovery",
                format!(
                    "checkpoint {} + {} rounds replayed, {} torn bytes cut, in {:.2} s",
                    r.report.checkpoint,
                    r.report.replayed_rounds,
                    r.report.truncated_log_bytes,
                    r.open_time.as_secs_f64()
                ),
            ),
            (
                "acknowledged transfers lost",
                format!("0 of {} (the ledger holds {} transfers)", o.acks.len(), r.transactions),
            ),
            ("balances, total supply", format!("match the transfer log; {} unchanged", r.total_supply)),
            (
                "verify (whole history)",
                format!(
                    "{} rounds from checkpoint {} in {:.2} s ({:.0} rounds/s): every digest reproduced",
                    v.rounds,
                    v.from_height,
                    v.elapsed.as_secs_f64(),
                    v.rounds_per_second()
                ),
            ),
            ("verify with a modified ledger", self.substituted.divergence_text()),
            ("demo time", format!("{:.1} s", self.total_time.as_secs_f64())),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::from("canister-host demo: micropayments, a crash, recovery, verification\n");
        for (key, value) in rows {
            out.push_str(&format!("  {key:<width$}  {value}\n"));
        }
        out
    }

    /// The same, for scripts.
    pub fn json(&self) -> serde_json::Value {
        let (o, r, v, s) = (self.observed, self.recovered, self.verified, self.substituted);
        json!({
            "accounts": self.args.accounts,
            "threads": self.args.threads,
            "acknowledged_transfers": o.acks.len(),
            "load_seconds": self.load_time.as_secs_f64(),
            "transfers_per_second": self.rate(),
            "latency_p50_ms": self.p50_ms,
            "latency_p99_ms": self.p99_ms,
            "rounds": o.rounds,
            "dirty_pages": o.dirty_pages,
            "checkpoints_before_kill": o.checkpoints,
            "last_height_seen_before_kill": o.height,
            "recovery": {
                "checkpoint": r.report.checkpoint,
                "replayed_rounds": r.report.replayed_rounds,
                "truncated_log_bytes": r.report.truncated_log_bytes,
                "open_seconds": r.open_time.as_secs_f64(),
                "check_seconds": r.check_time.as_secs_f64(),
            },
            "lost_transfers": 0,
            "ledger_transactions": r.transactions,
            "total_supply": r.total_supply,
            "verify": {
                "from_height": v.from_height,
                "to_height": v.to_height,
                "rounds": v.rounds,
                "seconds": v.elapsed.as_secs_f64(),
                "diverged": v.divergence.is_some(),
            },
            "substituted_ledger": {
                "diverged_at_height": s.divergence.height,
                "first_transfer_height": self.setup_height + 1,
                "canister_id": s.divergence.canister.map(|c| c.to_text()),
                "seconds": s.elapsed.as_secs_f64(),
            },
            "total_seconds": self.total_time.as_secs_f64(),
        })
    }
}
