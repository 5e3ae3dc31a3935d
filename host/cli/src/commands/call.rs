//! `call` and `query`: Candid in, Candid out.

use canister_host::{CallError, HostConfig, HostError, MethodKind, PastState};
use serde_json::json;

use super::Report;
use crate::args::{Call, Message, Output, Query};
use crate::candid_io::{self, Interface};
use crate::exit::usage;
use crate::state::{self, Context};

/// The message's argument, encoded with the method's types when the
/// interface is known.
fn encode(cx: &Context, message: &Message, interface: Option<&Interface>) -> anyhow::Result<Vec<u8>> {
    let text = candid_io::read_argument(message.argument.as_deref(), message.file.argument_file.as_deref())?;
    match interface {
        Some(i) => {
            let method = i.method(&message.method)?;
            candid_io::encode(text.as_deref(), message.arg_type, Some((i, &method.args)))
        }
        None => {
            if message.arg_type == crate::args::ArgType::Idl && message.output != Output::Raw {
                cx.warn(
                    "no Candid interface (no --candid, and the module has no candid:service metadata): argument \
                     and reply types are inferred from the values",
                );
            }
            candid_io::encode(text.as_deref(), message.arg_type, None)
        }
    }
}

/// The reply, rendered.
fn report(
    message: &Message,
    interface: Option<&Interface>,
    result: Result<Vec<u8>, CallError>,
    extra: serde_json::Value,
) -> anyhow::Result<Report> {
    let bytes = result?;
    let method = interface.map(|i| i.method(&message.method)).transpose()?;
    let env = interface.zip(method.as_ref().map(|m| m.rets.as_slice()));
    let (text, reply) = candid_io::render(&bytes, message.output, env)?;
    let mut json = json!({ "reply": reply, "reply_hex": hex::encode(&bytes) });
    if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        obj.extend(more);
    }
    Ok(Report::new(text, json))
}

fn send(cx: &Context, message: &Message, as_query: Option<bool>) -> anyhow::Result<Report> {
    let host = cx.open()?;
    let canister = state::canister(&host, &message.canister)?;
    let info = host.canister_info(canister).ok();
    let wasm = info.as_ref().and_then(|c| c.state.module.as_ref().map(|m| m.wasm.clone()));
    let interface = Interface::find(message.candid.as_deref(), wasm.as_deref())?;
    let arg = encode(cx, message, interface.as_ref())?;
    let kind = info.and_then(|c| c.methods().into_iter().find(|(m, _)| *m == message.method).map(|(_, k)| k));
    let query = as_query.unwrap_or(matches!(kind, Some(MethodKind::Query | MethodKind::CompositeQuery)));
    let result = if query {
        host.query_call(canister, cx.sender, &message.method, arg)
    } else {
        host.update_call(canister, cx.sender, &message.method, arg)
    };
    report(message, interface.as_ref(), result, json!({ "canister_id": canister.to_text() }))
}

/// `call`.
pub fn call(cx: &Context, args: Call) -> anyhow::Result<Report> {
    let as_query = match (args.query, args.update) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    send(cx, &args.message, as_query)
}

/// `query`: now, or at a past height without the lock. A read replica's
/// directory (`follow`) is queried like a past height, as of the last
/// round it holds, beside the follower.
pub fn query(cx: &Context, args: Query) -> anyhow::Result<Report> {
    let replica = cx.dir.join(replication::REPLICA_MARKER).exists();
    if args.at_height.is_none() && !replica {
        return send(cx, &args.message, Some(true));
    }
    let height = args.at_height;
    let message = &args.message;
    let dir = cx.existing_dir()?;
    let spinner = cx.progress(&match height {
        Some(height) => format!("replaying the history up to round {height}"),
        None => "replaying the read replica's log".to_string(),
    });
    let past = PastState::open(dir, HostConfig::default().execution, height).map_err(|e| match e {
        // A height outside the kept history.
        HostError::Operation(message) => usage(message),
        e => e.into(),
    })?;
    spinner.finish();
    let round = past.round().height;
    let canister = past
        .canister(&message.canister)
        .ok_or_else(|| usage(format!("there was no canister {:?} at round {round}", message.canister)))?;
    // The interface of the module installed then.
    let wasm = canister.state.module.as_ref().map(|m| m.wasm.clone());
    let interface = Interface::find(message.candid.as_deref(), wasm.as_deref())?;
    let arg = encode(cx, message, interface.as_ref())?;
    let result = past.query(canister.id, cx.sender, &message.method, arg);
    let extra = json!({
        "canister_id": canister.id.to_text(),
        "height": past.round().height,
        "time_nanos": past.round().time,
        "replayed_from_checkpoint": past.checkpoint(),
    });
    report(message, interface.as_ref(), result, extra)
}
