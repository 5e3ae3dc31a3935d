//! Facts about the canister (id, balance, status, version, controllers),
//! certified data and the global timer.

use wasmtime::Linker;

use super::{Addr, Ctx, R, allow, copy_out, entry, read_heap, trap, write_heap};
use crate::system_api::{HostState, MAX_CERTIFIED_DATA, MAX_PRINCIPAL_BYTES};

/// Define the canister functions.
pub(super) fn define<A: Addr>(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("canister_self_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        Ok(A::of(c.data().message.env.id.len()))
    })?;
    let api = entry("canister_self_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        copy_out(&mut c, api.name, |s| &s.message.env.id, dst.get(), offset.get(), size.get())
    })?;
    let api = entry("canister_cycle_balance");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        match u64::try_from(c.data().message.env.cycle_balance) {
            Ok(balance) => Ok(balance),
            Err(_) => trap("ic0.canister_cycle_balance: the balance exceeds 64 bits; use canister_cycle_balance128"),
        }
    })?;
    let api = entry("canister_cycle_balance128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A| -> R<()> {
        allow(&c, api)?;
        let balance = c.data().message.env.cycle_balance;
        write_heap(&mut c, api.name, dst.get(), &balance.to_le_bytes())
    })?;
    let api = entry("canister_status");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.env.status)
    })?;
    let api = entry("canister_version");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(c.data().message.env.version)
    })?;
    let api = entry("is_controller");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>, src: A, size: A| -> R<u32> {
        allow(&c, api)?;
        let size = size.get();
        if size > MAX_PRINCIPAL_BYTES as u64 {
            return trap(format!("ic0.is_controller: {size} bytes is not a principal (at most {MAX_PRINCIPAL_BYTES})"));
        }
        let principal = read_heap(&c, api.name, src.get(), size)?;
        Ok(u32::from(c.data().message.env.controllers.contains(&principal)))
    })?;
    let api = entry("certified_data_set");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        let size = size.get();
        if size > MAX_CERTIFIED_DATA as u64 {
            return trap(format!("ic0.certified_data_set: {size} bytes exceeds the maximum of {MAX_CERTIFIED_DATA}"));
        }
        let data = read_heap(&c, api.name, src.get(), size)?;
        c.data_mut().message.certified_data = data;
        Ok(())
    })?;
    // A certificate is present only when the caller supplied one: a query
    // answered outside consensus by a host that certifies its state.
    let api = entry("data_certificate_present");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(c.data().message.data_certificate.is_some() as u32)
    })?;
    let api = entry("data_certificate_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<A> {
        allow(&c, api)?;
        match &c.data().message.data_certificate {
            Some(certificate) => Ok(A::of(certificate.len())),
            None => {
                trap("ic0.data_certificate_size: no data certificate is present (check ic0.data_certificate_present)")
            }
        }
    })?;
    let api = entry("data_certificate_copy");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: A, offset: A, size: A| -> R<()> {
        allow(&c, api)?;
        if c.data().message.data_certificate.is_none() {
            return trap(
                "ic0.data_certificate_copy: no data certificate is present (check ic0.data_certificate_present)",
            );
        }
        copy_out(
            &mut c,
            api.name,
            |s| s.message.data_certificate.as_deref().unwrap_or_default(),
            dst.get(),
            offset.get(),
            size.get(),
        )
    })?;
    let api = entry("global_timer_set");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, timestamp: u64| -> R<u64> {
        allow(&c, api)?;
        Ok(std::mem::replace(&mut c.data_mut().message.global_timer, timestamp))
    })?;
    Ok(())
}
