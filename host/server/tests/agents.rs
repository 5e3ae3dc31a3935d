//! The server against a client nobody here wrote: the Rust `ic-agent`
//! (0.49, as icp-cli embeds it), with its default checks on: certificates
//! verified against the fetched root key, query signatures verified
//! against the node keys it reads from the state tree. Plus the requests
//! a client should never send, each refused with the IC's status and text.

use std::sync::Arc;

use candid::{Decode, Encode, Principal};
use canister_host::{Host, HostConfig, InstallMode};
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use ic_transport_types::{Envelope, EnvelopeContent};
use sha2::{Digest, Sha256};

struct Served {
    url: String,
    counter: Principal,
    _runtime_guard: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// A host with the C counter installed (controlled by `controller`),
/// served on a free loopback port.
async fn serve(controller: Principal) -> Served {
    serve_canister(controller, canisters::COUNTER).await
}

/// [`serve`], with `wasm` as the canister.
async fn serve_canister(controller: Principal, wasm: &[u8]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(&dir.path().join("state"), HostConfig::default()).unwrap();
    let counter = host.create_canister(controller, vec![], None).unwrap();
    host.install_code(controller, counter, InstallMode::Install, wasm.to_vec(), vec![]).unwrap();
    let keys = wire::keys::Keys::from_secret(&[7; 64]);
    let router = server::router(Arc::new(host), keys, server::ServerConfig::default()).unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Served { url, counter, _runtime_guard: stop, _dir: dir }
}

async fn agent(url: &str, identity: impl Identity + 'static) -> Agent {
    let agent = Agent::builder().with_url(url).with_identity(identity).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    agent
}

fn ed25519() -> BasicIdentity {
    BasicIdentity::from_raw_key(&[3; 32])
}

fn secp256k1() -> Secp256k1Identity {
    Secp256k1Identity::from_private_key(k256::SecretKey::from_slice(&[5; 32]).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn ic_agent_calls_queries_and_reads_certified_state() {
    let owner = ed25519().sender().unwrap();
    let s = serve(owner).await;
    let mut expected = 0u64;
    for agent in [agent(&s.url, ed25519()).await, agent(&s.url, secp256k1()).await] {
        // An update through the synchronous endpoint: a certificate of the
        // reply, verified with the fetched root key.
        let reply = agent.update(&s.counter, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.unwrap();
        expected += 1;
        assert_eq!(Decode!(&reply, u64).unwrap(), expected);
        // A query, its signature verified against the node key the agent
        // reads from the subnet subtree.
        let reply = agent.query(&s.counter, "get").with_arg(Encode!().unwrap()).call().await.unwrap();
        assert_eq!(Decode!(&reply, u64).unwrap(), expected);
    }
    // Certified facts about the canister.
    let agent = agent(&s.url, ed25519()).await;
    let hash = agent.read_state_canister_info(s.counter, "module_hash").await.unwrap();
    assert_eq!(hash, Sha256::digest(canisters::COUNTER).to_vec());
    let controllers = agent.read_state_canister_controllers(s.counter).await.unwrap();
    assert_eq!(controllers, [owner]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_controller_is_refused_by_the_management_canister() {
    let s = serve(ed25519().sender().unwrap()).await;
    let stranger = agent(&s.url, secp256k1()).await;
    let arg = Encode!(&ic_management_canister_types_arg(s.counter)).unwrap();
    let error = stranger
        .update(&Principal::management_canister(), "stop_canister")
        .with_effective_canister_id(s.counter)
        .with_arg(arg)
        .call_and_wait()
        .await
        .unwrap_err();
    let AgentError::CertifiedReject { reject, .. } = &error else {
        panic!("expected a certified reject, got {error:?}")
    };
    assert_eq!(reject.reject_code as u8, 5, "{reject:?}");
    assert!(reject.reject_message.contains("controller"), "{reject:?}");
    // The canister still runs.
    let owner = agent(&s.url, ed25519()).await;
    owner.update(&s.counter, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.unwrap();
}

#[derive(candid::CandidType)]
struct CanisterIdRecord {
    canister_id: Principal,
}

fn ic_management_canister_types_arg(canister_id: Principal) -> CanisterIdRecord {
    CanisterIdRecord { canister_id }
}

/// POST `body` to `path` with `content_type`: the status and the body.
async fn post(url: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

/// A call envelope for the counter, anonymous, expiring at `expiry`.
fn call(counter: Principal, sender: Principal, expiry: u64) -> EnvelopeContent {
    EnvelopeContent::Call {
        nonce: None,
        ingress_expiry: expiry,
        sender,
        canister_id: counter,
        method_name: "inc".into(),
        arg: Encode!().unwrap(),
        sender_info: None,
    }
}

fn encode(content: EnvelopeContent, pubkey: Option<Vec<u8>>, sig: Option<Vec<u8>>) -> Vec<u8> {
    Envelope {
        content: std::borrow::Cow::Owned(content),
        sender_pubkey: pubkey,
        sender_sig: sig,
        sender_delegation: None,
    }
    .encode_bytes()
}

fn in_a_minute() -> u64 {
    wire::envelope::now_ns() + 60_000_000_000
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_ics_status_and_a_clear_reason() {
    let s = serve(Principal::anonymous()).await;
    let path = format!("/api/v3/canister/{}/call", s.counter);
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();

    let (status, body) = post(&s.url, &path, "application/cbor", b"not cbor".to_vec()).await;
    assert_eq!((status, text(&body).starts_with("Could not parse body")), (400, true), "{}", text(&body));

    let good = encode(call(s.counter, Principal::anonymous(), in_a_minute()), None, None);
    let (status, body) = post(&s.url, &path, "application/json", good.clone()).await;
    assert_eq!((status, text(&body).contains("expected application/cbor")), (400, true));

    let (status, body) = post(&s.url, &path, "application/cbor", vec![0; 4 << 20]).await;
    assert_eq!((status, text(&body).contains("over the limit")), (413, true), "{}", text(&body));

    // Expired: agents look for this exact prefix to re-sync their clocks.
    let expired = encode(call(s.counter, Principal::anonymous(), 1), None, None);
    let (status, body) = post(&s.url, &path, "application/cbor", expired).await;
    assert_eq!((status, text(&body).starts_with("Invalid request expiry: ")), (400, true), "{}", text(&body));
    let far = encode(call(s.counter, Principal::anonymous(), in_a_minute() + 3_600_000_000_000), None, None);
    assert_eq!(post(&s.url, &path, "application/cbor", far).await.0, 400);

    // Signed by a key that is not the sender's, or with a bad signature.
    let key = ed25519().public_key().unwrap();
    let self_auth = Principal::self_authenticating(&key);
    let forged = encode(call(s.counter, self_auth, in_a_minute()), Some(key.clone()), Some(vec![0; 64]));
    let (status, body) = post(&s.url, &path, "application/cbor", forged).await;
    assert_eq!((status, text(&body).contains("Invalid signature")), (400, true), "{}", text(&body));
    let wrong_sender = encode(call(s.counter, Principal::anonymous(), in_a_minute()), Some(key), Some(vec![0; 64]));
    let (status, body) = post(&s.url, &path, "application/cbor", wrong_sender).await;
    assert_eq!((status, text(&body).contains("does not match")), (400, true), "{}", text(&body));

    // An unknown canister: rejected before it runs, as the IC does (200).
    let nobody = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0x99, 0, 1, 1]);
    let body = encode(call(nobody, Principal::anonymous(), in_a_minute()), None, None);
    let (status, reply) = post(&s.url, &format!("/api/v3/canister/{nobody}/call"), "application/cbor", body).await;
    let reply: serde_cbor::Value = serde_cbor::from_slice(&reply).unwrap();
    assert_eq!(status, 200);
    assert!(format!("{reply:?}").contains("non_replicated_rejection") && format!("{reply:?}").contains("IC0301"));

    // The canister in the URL must be the one called.
    let body = encode(call(s.counter, Principal::anonymous(), in_a_minute()), None, None);
    let (status, reply) = post(&s.url, &format!("/api/v3/canister/{nobody}/call"), "application/cbor", body).await;
    assert_eq!((status, text(&reply).contains("does not match effective canister id")), (400, true));

    // And a good anonymous call still works.
    let anonymous = agent(&s.url, AnonymousIdentity).await;
    anonymous.update(&s.counter, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_read_a_certificate_of_their_canisters_certified_data() {
    let s = serve_canister(ed25519().sender().unwrap(), canisters::SYSAPI).await;
    let agent = agent(&s.url, ed25519()).await;
    let data = vec![9u8; 32];
    agent.update(&s.counter, "set_certified_data").with_arg(Encode!(&data).unwrap()).call_and_wait().await.unwrap();
    let reply = agent.query(&s.counter, "certificate").with_arg(Encode!().unwrap()).call().await.unwrap();
    let bytes = Decode!(&reply, Vec<u8>).unwrap();
    // The certificate verifies against the root key the agent fetched, and
    // certifies exactly the data the canister set.
    let certificate: ic_certification::Certificate = serde_cbor::from_slice(&bytes).unwrap();
    agent.verify(&certificate, s.counter).unwrap();
    let path: [&[u8]; 3] = [b"canister", s.counter.as_slice(), b"certified_data"];
    match certificate.tree.lookup_path(&path) {
        ic_certification::LookupResult::Found(found) => assert_eq!(found, data.as_slice()),
        other => panic!("certified_data not in the certificate: {other:?}"),
    }
    let reply = agent.query(&s.counter, "certificate_present").with_arg(Encode!().unwrap()).call().await.unwrap();
    assert_eq!(Decode!(&reply, u32).unwrap(), 1);
}

/// The value of the sample `name` (with its labels, exactly as written)
/// in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_agents_at_once_get_every_update_once_and_metrics_count_them() {
    const AGENTS: u8 = 64;
    const CALLS: u64 = 5;
    let s = serve(Principal::anonymous()).await;
    let mut clients = Vec::new();
    for i in 0..AGENTS {
        let (url, counter) = (s.url.clone(), s.counter);
        clients.push(tokio::spawn(async move {
            let agent = agent(&url, BasicIdentity::from_raw_key(&[i; 32])).await;
            let mut replies = Vec::new();
            for _ in 0..CALLS {
                let reply = agent.update(&counter, "inc").with_arg(Encode!().unwrap()).call_and_wait().await.unwrap();
                let n = Decode!(&reply, u64).unwrap();
                // A query after an acknowledged update sees it.
                let seen = agent.query(&counter, "get").with_arg(Encode!().unwrap()).call().await.unwrap();
                assert!(Decode!(&seen, u64).unwrap() >= n);
                replies.push(n);
            }
            replies
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        let replies = tokio::time::timeout(std::time::Duration::from_secs(300), client).await.unwrap().unwrap();
        all.extend(replies);
    }
    // Every increment ran exactly once: the replies are 1..=N, each once.
    all.sort_unstable();
    let total = AGENTS as u64 * CALLS;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());

    let text = reqwest::get(format!("{}/metrics", s.url)).await.unwrap().text().await.unwrap();
    assert!(sample(&text, "canister_host_messages_total") >= total as f64);
    assert!(sample(&text, "canister_host_rounds_total") >= 1.0);
    assert!(sample(&text, "canister_host_instructions_total") > 0.0);
    assert!(sample(&text, "canister_host_dirty_pages_total") >= 1.0);
    assert!(sample(&text, "canister_host_update_latency_seconds_count") >= total as f64);
    assert_eq!(sample(&text, "canister_host_query_latency_seconds_count"), total as f64);
    assert!(sample(&text, "canister_host_log_append_duration_seconds_count") >= 1.0);
    assert_eq!(sample(&text, "canister_host_canisters"), 1.0);
    assert!(sample(&text, "canister_host_memory_bytes") > 0.0);
    assert!(sample(&text, "canister_host_log_bytes") > 0.0);
    let call = r#"canister_host_http_responses_total{endpoint="/api/v4/canister/{id}/call",status="200"}"#;
    assert_eq!(sample(&text, call), total as f64);
    let query = r#"canister_host_http_request_duration_seconds_count{endpoint="/api/v3/canister/{id}/query"}"#;
    assert_eq!(sample(&text, query), total as f64);
    // Every call got a certificate; signatures are shared between those
    // asked for together, never more than one each.
    let certificates = sample(&text, "canister_host_certificates_total");
    let signatures = sample(&text, "canister_host_certificate_signatures_total");
    assert!(certificates >= total as f64, "{certificates}");
    assert!((1.0..=certificates).contains(&signatures), "{signatures} signatures for {certificates} certificates");
    eprintln!("{certificates} certificates, {signatures} signatures");
}

#[tokio::test(flavor = "multi_thread")]
async fn icp_clis_create_goes_through_the_cycles_ledger_stand_in() {
    let s = serve(Principal::anonymous()).await;
    let me = ed25519();
    let owner = me.sender().unwrap();
    let agent = agent(&s.url, me).await;
    // The CMC stand-in names the host's one subnet.
    let cmc = Principal::from_text("rkp4c-7iaaa-aaaaa-aaaca-cai").unwrap();
    let reply = agent.query(&cmc, "get_default_subnets").with_arg(Encode!().unwrap()).call().await.unwrap();
    let subnets = Decode!(&reply, Vec<Principal>).unwrap();
    assert_eq!(subnets, [Principal::self_authenticating(agent.read_root_key())]);

    // The cycles ledger's create_canister, as icp-cli sends it (no settings).
    #[derive(candid::CandidType)]
    struct CreateCanisterArgs {
        from_subaccount: Option<Vec<u8>>,
        created_at_time: Option<u64>,
        amount: candid::Nat,
        creation_args: Option<candid::Reserved>,
    }
    #[derive(candid::CandidType, candid::Deserialize, Debug)]
    enum CreateCanisterResult {
        Ok { block_id: candid::Nat, canister_id: Principal },
        Err(candid::Reserved),
    }
    let ledger = Principal::from_text("um5iw-rqaaa-aaaaq-qaaba-cai").unwrap();
    let arg = CreateCanisterArgs {
        from_subaccount: None,
        created_at_time: None,
        amount: 2_000_000_000_000u64.into(),
        creation_args: None,
    };
    let reply =
        agent.update(&ledger, "create_canister").with_arg(Encode!(&arg).unwrap()).call_and_wait().await.unwrap();
    let CreateCanisterResult::Ok { canister_id, .. } = Decode!(&reply, CreateCanisterResult).unwrap() else {
        panic!("create_canister failed")
    };
    // A new, empty canister controlled by the caller.
    assert_ne!(canister_id, s.counter);
    let controllers = agent.read_state_canister_controllers(canister_id).await.unwrap();
    assert_eq!(controllers, [owner]);
    // create_canister is an update: as a query it runs nothing.
    let refused = agent.query(&ledger, "create_canister").with_arg(Encode!(&arg).unwrap()).call().await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_serves_a_canisters_web_pages() {
    let s = serve_canister(Principal::anonymous(), canisters::motoko::WEB).await;
    let web = s.counter;
    let client = reqwest::Client::new();
    // Named by its host, `<id>.localhost`: the `http_request` query answers.
    let page = client.get(format!("{}/hello?x=1", s.url)).header("host", format!("{web}.localhost:4943"));
    let page = page.send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(page.headers()["x-canister-host-certification"], "unverified");
    assert_eq!(page.text().await.unwrap(), "hello from /hello?x=1; posts: 0");

    // A POST the canister upgrades to `http_request_update`, which changes
    // its state; named by the `canister` parameter this time.
    let post = client.post(format!("{}/form?canister={web}", s.url)).body("hi there").send().await.unwrap();
    assert_eq!(post.status(), 201);
    assert_eq!(post.text().await.unwrap(), "post 1: hi there");
    let page = client.get(format!("{}/?canister={web}", s.url)).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), format!("hello from /?canister={web}; posts: 1"));

    // The canister's own status codes pass through.
    let missing = client.get(format!("{}/missing", s.url)).header("host", format!("{web}.localhost")).send();
    let missing = missing.await.unwrap();
    assert_eq!((missing.status().as_u16(), missing.text().await.unwrap().as_str()), (404, "no such page"));

    // Requests naming no canister, a malformed one, or one not on the host.
    let unnamed = client.get(format!("{}/hello", s.url)).send().await.unwrap();
    assert_eq!(unnamed.status(), 404);
    assert!(unnamed.text().await.unwrap().contains(".localhost"));
    let malformed = client.get(format!("{}/?canister=not-an-id", s.url)).send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    let absent = client.get(format!("{}/?canister=aaaaa-aa", s.url)).send().await.unwrap();
    assert_eq!(absent.status(), 404);
    assert!(absent.text().await.unwrap().contains("not found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_reports_a_canister_without_web_pages() {
    let s = serve(Principal::anonymous()).await;
    let page = reqwest::get(format!("{}/?canister={}", s.url, s.counter)).await.unwrap();
    assert_eq!(page.status(), 502);
    assert!(page.text().await.unwrap().contains("http_request"));
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_that_cannot_read_a_certificate_cost_no_signature() {
    let s = serve(Principal::anonymous()).await;
    let agent = agent(&s.url, ed25519()).await;
    let get = || agent.query(&s.counter, "get").with_arg(Encode!().unwrap()).call();
    // The first query also reads the subnet's node keys (one certificate).
    get().await.unwrap();
    let metrics = || async { reqwest::get(format!("{}/metrics", s.url)).await.unwrap().text().await.unwrap() };
    let before = sample(&metrics().await, "canister_host_certificates_total");
    for _ in 0..3 {
        get().await.unwrap();
    }
    // The counter imports no ic0.data_certificate_*: nothing was signed.
    assert_eq!(sample(&metrics().await, "canister_host_certificates_total"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_call_from_any_origin() {
    let s = serve(Principal::anonymous()).await;
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/api/v3/canister/{}/call", s.url, s.counter))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let status = reqwest::Client::new()
        .get(format!("{}/api/v2/status", s.url))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(status.headers()["access-control-allow-origin"], "*");
}
