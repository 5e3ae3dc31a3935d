//! Message functions: the argument, caller, reply and reject, the reject
//! a callback received, the method name (inspect_message), and the cycles
//! a message carries.

use wasmtime::Linker;

use super::{Addr, Ctx, R, allow, charge, copy_out, cost, entry, read_heap, responded, trap, write_heap};
use crate::system_api::{HostState, Response};

/// Define the message functions.
pub(super) fn define<A: Addr>(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("msg_arg_data_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        Ok(A::of(c.data().message.arg.len()))
    })?;
    let api = entry("msg_arg_data_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| &s.message.arg, dst.get(), offset.get(), size.get())
    })?;
    let api = entry("msg_caller_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        Ok(A::of(c.data().message.caller.len()))
    })?;
    let api = entry("msg_caller_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| &s.message.caller, dst.get(), offset.get(), size.get())
    })?;
    // 0 in a reply callback; the reject's code in a reject callback.
    let api = entry("msg_reject_code");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.reject.as_ref().map_or(0, |(code, _)| *code))
    })?;
    let api = entry("msg_reject_msg_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        Ok(A::of(c.data().message.reject.as_ref().map_or(0, |(_, m)| m.len())))
    })?;
    let api = entry("msg_reject_msg_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, reject_message, dst.get(), offset.get(), size.get())
    })?;
    let api = entry("msg_deadline");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(c.data().message.deadline) // 0: a guaranteed response
    })?;
    let api = entry("msg_reply_data_append");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        responded(&c, api.name)?;
        let (src, size) = (src.get(), size.get());
        let max = c.data().message.max_reply();
        if (c.data().message.reply_data.len() as u64).saturating_add(size) > max as u64 {
            return trap(format!("ic0.msg_reply_data_append: the reply would exceed the maximum of {max} bytes"));
        }
        charge(&mut c, cost::COPY + cost::REPLY_BYTE * size)?;
        let bytes = read_heap(&c, api.name, src, size)?;
        c.data_mut().message.reply_data.extend_from_slice(&bytes);
        Ok(())
    })?;
    let api = entry("msg_reply");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>| -> R<()> {
        allow(&c, api)?;
        responded(&c, api.name)?;
        let message = &mut c.data_mut().message;
        message.response = Response::Reply(std::mem::take(&mut message.reply_data));
        Ok(())
    })?;
    let api = entry("msg_reject");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        responded(&c, api.name)?;
        let (src, size) = (src.get(), size.get());
        let max = c.data().message.max_reply();
        if size > max as u64 {
            return trap(format!("ic0.msg_reject: the reject message exceeds the maximum of {max} bytes"));
        }
        charge(&mut c, cost::COPY + cost::REPLY_BYTE * size)?;
        let bytes = read_heap(&c, api.name, src, size)?;
        let Ok(text) = String::from_utf8(bytes) else {
            return trap("ic0.msg_reject: the reject message is not valid UTF-8");
        };
        c.data_mut().message.response = Response::Reject(text);
        Ok(())
    })?;
    let api = entry("msg_method_name_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        Ok(A::of(c.data().message.method.len()))
    })?;
    let api = entry("msg_method_name_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| s.message.method.as_bytes(), dst.get(), offset.get(), size.get())
    })?;
    let api = entry("accept_message");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>| -> R<()> {
        allow(&c, api)?;
        if c.data().message.accepted {
            return trap("ic0.accept_message: the message was already accepted");
        }
        c.data_mut().message.accepted = true;
        Ok(())
    })?;
    define_cycles::<A>(l)
}

fn reject_message(s: &HostState) -> &[u8] {
    s.message.reject.as_ref().map_or(&[], |(_, m)| m.as_bytes())
}

/// The cycles a message carries (ingress carries none; a call from a
/// canister carries what its caller attached) and those a callback gets
/// back. This host keeps no balances: accepting only moves the amount
/// from "available" to "accepted", and what is not accepted is refunded.
fn define_cycles<A: Addr>(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("msg_cycles_available");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        match u64::try_from(c.data().message.cycles_available) {
            Ok(amount) => Ok(amount),
            Err(_) => trap("ic0.msg_cycles_available: the amount exceeds 64 bits; use msg_cycles_available128"),
        }
    })?;
    let api = entry("msg_cycles_available128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A| -> R<()> {
        allow(&c, api)?;
        let amount = c.data().message.cycles_available;
        write_heap(&mut c, api.name, dst.get(), &amount.to_le_bytes())
    })?;
    let api = entry("msg_cycles_refunded");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        match u64::try_from(c.data().message.cycles_refunded) {
            Ok(amount) => Ok(amount),
            Err(_) => trap("ic0.msg_cycles_refunded: the amount exceeds 64 bits; use msg_cycles_refunded128"),
        }
    })?;
    let api = entry("msg_cycles_refunded128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A| -> R<()> {
        allow(&c, api)?;
        let amount = c.data().message.cycles_refunded;
        write_heap(&mut c, api.name, dst.get(), &amount.to_le_bytes())
    })?;
    let api = entry("msg_cycles_accept");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, max: u64| -> R<u64> {
        allow(&c, api)?;
        Ok(c.data_mut().message.accept_cycles(max.into()) as u64)
    })?;
    let api = entry("msg_cycles_accept128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, high: u64, low: u64, dst: A| -> R<()> {
        allow(&c, api)?;
        let accepted = c.data_mut().message.accept_cycles(u128::from(high) << 64 | u128::from(low));
        write_heap(&mut c, api.name, dst.get(), &accepted.to_le_bytes())
    })?;
    Ok(())
}
