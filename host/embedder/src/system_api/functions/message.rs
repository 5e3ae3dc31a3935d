//! Message functions: the argument, caller, reply and reject, method name
//! (inspect_message), and cycles (always zero: ingress carries none).

use wasmtime::Linker;

use super::{Ctx, R, allow, charge, copy_out, cost, entry, read_heap, responded, trap, write_heap};
use crate::system_api::{HostState, Response};

/// Define the message functions.
pub(super) fn define(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("msg_arg_data_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.arg.len() as u32)
    })?;
    let api = entry("msg_arg_data_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| &s.message.arg, dst, offset, size)
    })?;
    let api = entry("msg_caller_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.caller.len() as u32)
    })?;
    let api = entry("msg_caller_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| &s.message.caller, dst, offset, size)
    })?;
    // Only meaningful in reply/reject callbacks, which this host never runs.
    let api = entry("msg_reject_code");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(0)
    })?;
    let api = entry("msg_reject_msg_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(0)
    })?;
    let api = entry("msg_reject_msg_copy");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>, _dst: u32, _offset: u32, _size: u32| -> R<()> { allow(&c, api) })?;
    let api = entry("msg_deadline");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(0) // ingress messages have guaranteed responses: no deadline
    })?;
    let api = entry("msg_reply_data_append");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, api)?;
        responded(&c, api.name)?;
        let max = c.data().message.max_reply();
        if c.data().message.reply_data.len() + size as usize > max {
            return trap(format!("ic0.msg_reply_data_append: the reply would exceed the maximum of {max} bytes"));
        }
        charge(&mut c, cost::COPY + cost::REPLY_BYTE * u64::from(size))?;
        let bytes = read_heap(&c, api.name, src.into(), size.into())?;
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
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, api)?;
        responded(&c, api.name)?;
        let max = c.data().message.max_reply();
        if size as usize > max {
            return trap(format!("ic0.msg_reject: the reject message exceeds the maximum of {max} bytes"));
        }
        charge(&mut c, cost::COPY + cost::REPLY_BYTE * u64::from(size))?;
        let bytes = read_heap(&c, api.name, src.into(), size.into())?;
        let Ok(text) = String::from_utf8(bytes) else {
            return trap("ic0.msg_reject: the reject message is not valid UTF-8");
        };
        c.data_mut().message.response = Response::Reject(text);
        Ok(())
    })?;
    let api = entry("msg_method_name_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.method.len() as u32)
    })?;
    let api = entry("msg_method_name_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| s.message.method.as_bytes(), dst, offset, size)
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
    // Ingress messages carry no cycles, and this host keeps no accounts:
    // nothing is available, accepted or refunded.
    let api = entry("msg_cycles_available");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(0)
    })?;
    let api = entry("msg_cycles_available128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u32| -> R<()> {
        allow(&c, api)?;
        write_heap(&mut c, api.name, dst.into(), &0u128.to_le_bytes())
    })?;
    let api = entry("msg_cycles_refunded");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(0)
    })?;
    let api = entry("msg_cycles_refunded128");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>, _dst: u32| -> R<()> { allow(&c, api) })?;
    let api = entry("msg_cycles_accept");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>, _max: u64| -> R<u64> {
        allow(&c, api)?;
        Ok(0)
    })?;
    let api = entry("msg_cycles_accept128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, _high: u64, _low: u64, dst: u32| -> R<()> {
        allow(&c, api)?;
        write_heap(&mut c, api.name, dst.into(), &0u128.to_le_bytes())
    })?;
    Ok(())
}
