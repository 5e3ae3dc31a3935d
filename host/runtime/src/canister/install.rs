//! Installing code: install, reinstall, upgrade (with the heap kept or
//! replaced) and uninstall. Every hook runs on an O(1) copy of the state,
//! which is kept only if all of them succeed.

use std::sync::Arc;

use candid::Principal;
use embedder::{Call, CanisterModule, CanisterState, EntryPoint, Executable, Executor, MessageResult, WasmPages};
use page_delta::PageMap;

use super::{Canister, CanisterError};

/// How `install_code` treats the existing canister.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, candid::CandidType, serde::Serialize, serde::Deserialize)]
pub enum InstallMode {
    /// The canister must be empty; runs `canister_init`.
    Install,
    /// Wipes heap and stable memory, then installs.
    Reinstall,
    /// Runs `canister_pre_upgrade` on the old module (unless skipped),
    /// swaps the module, keeps stable memory, replaces the heap (unless
    /// `wasm_memory_persistence = keep`, which keeps the heap bytes and size
    /// and applies none of the new module's data segments), runs the new
    /// module's start function and then `canister_post_upgrade` with the
    /// argument.
    Upgrade {
        /// What happens to the heap; unset means replace, and is refused
        /// for a canister built for enhanced orthogonal persistence (as on
        /// the IC: such a heap is the canister's only copy of its data).
        wasm_memory_persistence: Option<WasmMemoryPersistence>,
        /// Do not run `canister_pre_upgrade`.
        skip_pre_upgrade: bool,
    },
}

/// What an upgrade does with the heap.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, candid::CandidType, serde::Serialize, serde::Deserialize)]
pub enum WasmMemoryPersistence {
    /// Keep it exactly (the new module must support enhanced orthogonal
    /// persistence).
    Keep,
    /// Start the new module on a fresh heap.
    Replace,
}

impl InstallMode {
    /// A plain upgrade: pre_upgrade runs and the heap is replaced.
    pub const UPGRADE: InstallMode = InstallMode::Upgrade { wasm_memory_persistence: None, skip_pre_upgrade: false };
    /// An upgrade that keeps the heap (`wasm_memory_persistence = keep`).
    pub const UPGRADE_KEEP: InstallMode =
        InstallMode::Upgrade { wasm_memory_persistence: Some(WasmMemoryPersistence::Keep), skip_pre_upgrade: false };
}

/// Whether an upgrade from `old` to `new` keeps the heap, under the IC's
/// rules for enhanced orthogonal persistence.
fn keeps_heap(
    canister: Principal,
    persistence: Option<WasmMemoryPersistence>,
    old: &CanisterModule,
    new: &CanisterModule,
) -> Result<bool, CanisterError> {
    match persistence {
        None if old.info.enhanced_orthogonal_persistence => Err(CanisterError::UpgradeOption {
            canister,
            reason: "Missing upgrade option: Enhanced orthogonal persistence requires the `wasm_memory_persistence` \
                     upgrade option."
                .into(),
        }),
        None | Some(WasmMemoryPersistence::Replace) => Ok(false),
        Some(WasmMemoryPersistence::Keep) if !new.info.enhanced_orthogonal_persistence => {
            Err(CanisterError::UpgradeOption {
                canister,
                reason: "Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that \
                         the new canister module supports enhanced orthogonal persistence."
                    .into(),
            })
        }
        Some(WasmMemoryPersistence::Keep) => Ok(true),
    }
}

/// Whether a kept heap of `heap` fits the memory `module` declares: if it
/// did not, every later message would fail to instantiate.
fn heap_fits(canister: Principal, heap: WasmPages, module: &CanisterModule) -> Result<(), CanisterError> {
    let maximum = match module.info.memory {
        None if heap.0 > 0 => Some(WasmPages(0)),
        Some(memory) => memory.maximum.filter(|max| *max < heap),
        None => None,
    };
    match maximum {
        Some(maximum) => Err(CanisterError::HeapDoesNotFit { canister, heap, maximum }),
        None => Ok(()),
    }
}

impl Canister {
    /// Install, reinstall or upgrade the canister's code. Only controllers
    /// may; any failure leaves the canister as it was.
    pub fn install_code(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        mode: InstallMode,
        wasm: &[u8],
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let module = exec.compile(wasm)?;
        self.install_module(exec, sender, mode, module, arg, time)
    }

    /// `install_code` with a module already compiled.
    pub fn install_module(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        mode: InstallMode,
        module: Arc<CanisterModule>,
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let current = self.exec.state().clone();
        let env = Arc::new(self.env(exec));
        let run = |canister: &mut Executable, entry: EntryPoint, arg: &[u8], log: &mut Vec<MessageResult>| {
            let call = Call::entry(entry, arg, sender.as_slice(), time);
            let result = exec.execute(canister, call);
            let outcome = result.outcome.clone();
            log.push(result);
            outcome.map(|_| ()).map_err(|error| CanisterError::HookFailed { entry: entry.export_name(), error })
        };
        let mut results = Vec::new();
        let outcome = (|| {
            let fresh = |state: &CanisterState| CanisterState {
                env: env.clone(),
                stable: PageMap::new(),
                stable_pages: WasmPages(0),
                certified_data: Vec::new(),
                global_timer: 0,
                ..state.with_module(module.clone())
            };
            let mut trial = match mode {
                InstallMode::Install if current.module.is_some() => {
                    return Err(CanisterError::AlreadyInstalled { canister: self.id });
                }
                InstallMode::Install | InstallMode::Reinstall => Executable::new(fresh(&current)),
                InstallMode::Upgrade { wasm_memory_persistence, skip_pre_upgrade } => {
                    let Some(old) = &current.module else { return Err(CanisterError::Empty { canister: self.id }) };
                    let keep_heap = keeps_heap(self.id, wasm_memory_persistence, old, &module)?;
                    let mut old_instance = Executable::new(CanisterState { env: env.clone(), ..current.clone() });
                    if !skip_pre_upgrade && old.info.has(EntryPoint::PreUpgrade) {
                        run(&mut old_instance, EntryPoint::PreUpgrade, &[], &mut results)?;
                    }
                    let after = old_instance.state();
                    if keep_heap {
                        heap_fits(self.id, after.heap_pages, &module)?;
                    }
                    // The timer is deactivated by an upgrade; certified data
                    // and stable memory carry over.
                    let upgraded = if keep_heap {
                        CanisterState {
                            module: Some(module.clone()),
                            globals: Vec::new(),
                            global_timer: 0,
                            ..after.clone()
                        }
                    } else {
                        CanisterState { global_timer: 0, ..after.with_module(module.clone()) }
                    };
                    let mut trial = Executable::new(upgraded);
                    if module.info.has(EntryPoint::Start) {
                        run(&mut trial, EntryPoint::Start, &[], &mut results)?;
                    }
                    if module.info.has(EntryPoint::PostUpgrade) {
                        run(&mut trial, EntryPoint::PostUpgrade, arg, &mut results)?;
                    }
                    return Ok(trial);
                }
            };
            // The start function runs once, before canister_init.
            if module.info.has(EntryPoint::Start) {
                run(&mut trial, EntryPoint::Start, &[], &mut results)?;
            }
            if module.info.has(EntryPoint::Init) {
                run(&mut trial, EntryPoint::Init, arg, &mut results)?;
            }
            Ok(trial)
        })();
        for result in &results {
            self.canister_log.record(time, result);
        }
        self.exec = outcome?;
        if matches!(mode, InstallMode::Reinstall) {
            self.abandon_calls();
        }
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    /// Remove the code and all state (heap, stable memory, certified data).
    pub fn uninstall(&mut self, exec: &Executor, sender: &Principal) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.exec = Executable::default();
        self.abandon_calls();
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }
}
