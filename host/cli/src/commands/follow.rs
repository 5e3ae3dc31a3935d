//! `follow`: a read replica. The state directory keeps a copy of what a
//! primary ships to a store (`serve --replicate-to`), caught up at a fixed
//! interval, and the IC's HTTP interface answers queries, read_state and
//! the HTTP gateway from it. Calls are refused with an error naming the
//! primary: only the primary decides what happens.

use std::sync::Arc;

use anyhow::Context as _;
use canister_host::prometheus::proto::MetricFamily;
use canister_host::{CallError, CanisterInfo, Certifier, Principal};
use replication::{Follower, Remote};

use super::Report;
use super::serve::{check_listen, interval, serve_http};
use crate::args::Follow;
use crate::exit::usage;
use crate::state::Context;

/// Run `follow`.
pub fn run(cx: &Context, args: Follow) -> anyhow::Result<Report> {
    check_listen(&args.http)?;
    let every = interval("--every", args.every)?;
    let remote = Remote::from_url(&args.from).map_err(|e| usage(e.to_string()))?;
    cx.refuse_foreign_dir()?;
    let follower = Arc::new(
        Follower::new(remote, &cx.dir, args.primary.clone())
            .with_context(|| format!("cannot keep a replica in {}", cx.dir.display()))?,
    );
    // The first catch-up may fail (the primary has shipped nothing yet):
    // queries answer 503 until one succeeds.
    match follower.catch_up() {
        Ok(round) if !cx.quiet => eprintln!("following {} from round {}", args.from, round.height),
        Ok(_) => {}
        Err(e) => cx.warn(&format!("nothing to serve yet from {} ({e}); retrying every {} s", args.from, args.every)),
    }
    let following = follower.follow(every).context("starting the thread that catches up")?;
    let replica = Arc::new(ReadReplica(follower.clone()));
    let url = serve_http(cx, &args.http, replica, server::ServerConfig::default(), "serving a read replica")?;
    drop(following);
    let round = follower.round();
    Ok(Report::new(
        format!(
            "stopped serving the read replica at {url}; it served round {}",
            round.map_or("none".into(), |r| r.height.to_string())
        ),
        serde_json::json!({ "url": url, "stopped": true, "round": round.map(|r| r.height) }),
    ))
}

/// A follower, as the HTTP interface serves it.
struct ReadReplica(Arc<Follower>);

impl ReadReplica {
    fn refusal(&self) -> String {
        self.0.refusal().to_string()
    }
}

impl server::Backend for ReadReplica {
    fn canister_info(&self, canister: Principal) -> Option<CanisterInfo> {
        self.0.canister(canister)
    }

    fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<Certifier>,
    ) -> Result<Vec<u8>, CallError> {
        self.0.query(canister, sender, method, arg, certifier)
    }

    fn update(&self, _: Principal, _: Principal, _: &str, _: Vec<u8>) -> Result<Vec<u8>, CallError> {
        Err(CallError::Rejected(self.refusal()))
    }

    fn management(&self, _: Principal, _: &str, _: Vec<u8>) -> Result<Vec<u8>, CallError> {
        Err(CallError::Rejected(self.refusal()))
    }

    fn gather_metrics(&self) -> Vec<MetricFamily> {
        self.0.gather_metrics()
    }

    fn refuses_calls(&self) -> Option<String> {
        Some(self.refusal())
    }
}
