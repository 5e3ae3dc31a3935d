//! Stable memory: the 32-bit and 64-bit APIs over the message's copy of
//! the stable page map.

use wasmtime::Linker;

use super::{COPY_CHUNK, Ctx, R, allow, charge, cost, entry, heap_range, read_heap, trap, write_heap};
use crate::system_api::HostState;
use crate::system_api::spec::Import;
use crate::units::WasmPages;

/// The 32-bit stable API can address 4 GiB.
const STABLE32_MAX_PAGES: WasmPages = WasmPages(65536);

/// Define the stable memory functions.
pub(super) fn define(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("stable_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        let pages = c.data().message.stable.pages;
        if pages > STABLE32_MAX_PAGES {
            return trap("ic0.stable_size: stable memory exceeds 4 GiB; use the stable64 API");
        }
        Ok(pages.0 as u32)
    })?;
    let api = entry("stable_grow");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, new_pages: u32| -> R<i32> {
        allow(&c, api)?;
        let stable = &mut c.data_mut().message.stable;
        if stable.pages.0 + u64::from(new_pages) > STABLE32_MAX_PAGES.0 {
            return Ok(-1);
        }
        Ok(stable.grow(WasmPages(new_pages.into())) as i32)
    })?;
    let api = entry("stable_write");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, offset: u32, src: u32, size: u32| -> R<()> {
        stable_write(&mut c, api, offset.into(), src.into(), size.into())
    })?;
    let api = entry("stable_read");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        stable_read(&mut c, api, dst.into(), offset.into(), size.into())
    })?;
    let api = entry("stable64_size");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(c.data().message.stable.pages.0)
    })?;
    let api = entry("stable64_grow");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, new_pages: u64| -> R<i64> {
        allow(&c, api)?;
        Ok(c.data_mut().message.stable.grow(WasmPages(new_pages)))
    })?;
    let api = entry("stable64_write");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, offset: u64, src: u64, size: u64| -> R<()> {
        stable_write(&mut c, api, offset, src, size)
    })?;
    let api = entry("stable64_read");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, dst: u64, offset: u64, size: u64| -> R<()> {
        stable_read(&mut c, api, dst, offset, size)
    })?;
    Ok(())
}

/// Copy `size` bytes of the heap at `src` into stable memory at `offset`,
/// a chunk at a time.
fn stable_write(c: &mut Ctx<'_>, api: &Import, offset: u64, src: u64, size: u64) -> R<()> {
    allow(c, api)?;
    let name = api.name;
    charge(c, cost::STABLE.saturating_add(size))?;
    let stable_size = c.data().message.stable.size_bytes();
    if offset.checked_add(size).is_none_or(|end| end > stable_size) {
        return trap(format!(
            "ic0.{name}: range [{offset}, {offset}+{size}) is outside the stable memory of {stable_size} bytes"
        ));
    }
    heap_range(c, name, src, size)?;
    let mut done = 0;
    while done < size {
        let n = COPY_CHUNK.min(size - done);
        let data = read_heap(c, name, src + done, n)?;
        if let Err(e) = c.data_mut().message.stable.write(offset + done, &data) {
            return trap(format!("ic0.{name}: {e}"));
        }
        done += n;
    }
    Ok(())
}

/// Copy `size` bytes of stable memory at `offset` into the heap at `dst`,
/// a chunk at a time.
fn stable_read(c: &mut Ctx<'_>, api: &Import, dst: u64, offset: u64, size: u64) -> R<()> {
    allow(c, api)?;
    let name = api.name;
    charge(c, cost::STABLE.saturating_add(size))?;
    let stable_size = c.data().message.stable.size_bytes();
    if offset.checked_add(size).is_none_or(|end| end > stable_size) {
        return trap(format!(
            "ic0.{name}: range [{offset}, {offset}+{size}) is outside the stable memory of {stable_size} bytes"
        ));
    }
    heap_range(c, name, dst, size)?;
    let mut buf = vec![0; COPY_CHUNK.min(size) as usize];
    let mut done = 0;
    while done < size {
        let chunk = &mut buf[..COPY_CHUNK.min(size - done) as usize];
        if let Err(e) = c.data().message.stable.read(offset + done, chunk) {
            return trap(format!("ic0.{name}: {e}"));
        }
        write_heap(c, name, dst + done, chunk)?;
        done += chunk.len() as u64;
    }
    Ok(())
}
