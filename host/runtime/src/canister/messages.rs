//! Running messages on a canister: ingress inspection, updates, queries,
//! the global timer and the heartbeat.

use candid::Principal;
use embedder::{Call, CanisterState, EntryPoint, Executor, MessageResult, MethodKind, Target};

use super::{Canister, CanisterError, CanisterStatus, LongCall};

/// What running a system task came to.
enum SystemTask {
    /// The module does not export it.
    NotRun,
    Done(Box<MessageResult>),
    /// It needs more than a slice.
    Long,
}

impl SystemTask {
    fn done(self) -> Option<MessageResult> {
        match self {
            SystemTask::Done(result) => Some(*result),
            SystemTask::NotRun | SystemTask::Long => None,
        }
    }
}

impl Canister {
    /// Whether `canister_inspect_message` (if exported) accepts an ingress
    /// update call.
    pub fn inspect(
        &self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_running()?;
        inspect(exec, self.id, self.state(), caller, method, arg, time)
    }

    /// Run an update method. Debug output (and a trap's message) goes to
    /// the canister's log.
    pub fn update(
        &mut self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<MessageResult, CanisterError> {
        self.check_running()?;
        let mut call = Call::method(method, MethodKind::Update, arg, caller.as_slice(), time);
        call.incoming.call_capacity = self.call_capacity();
        let result = exec.execute(&mut self.exec, call);
        self.canister_log.record(time, &result);
        Ok(result)
    }

    /// [`Canister::update`]'s first slice: `None` if the message needs more
    /// than a slice (nothing changed; it becomes the long message).
    pub(crate) fn update_first_slice(
        &mut self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<Option<MessageResult>, CanisterError> {
        self.check_running()?;
        let mut call = Call::method(method, MethodKind::Update, arg, caller.as_slice(), time);
        call.incoming.call_capacity = self.call_capacity();
        let result = exec.execute_first_slice(&mut self.exec, call);
        if let Some(result) = &result {
            self.canister_log.record(time, result);
        }
        Ok(result)
    }

    /// Run the due timer, then the heartbeat, as a round does: each as a
    /// first slice. One that needs more becomes the long message (and the
    /// heartbeat waits for another round). Returns the completed results.
    pub(crate) fn system_tasks_first_slice(&mut self, exec: &Executor, time: u64) -> Vec<MessageResult> {
        let mut done = Vec::new();
        let timer = self.exec.state().global_timer;
        if self.status == CanisterStatus::Running && timer != 0 && timer <= time {
            self.exec.state_mut().global_timer = 0;
            match self.run_system_task(exec, EntryPoint::GlobalTimer, time, true) {
                SystemTask::Done(result) => done.push(*result),
                SystemTask::Long => {
                    self.start_long(None, LongCall::Timer, time);
                    return done;
                }
                SystemTask::NotRun => {}
            }
        }
        if self.status == CanisterStatus::Running {
            match self.run_system_task(exec, EntryPoint::Heartbeat, time, true) {
                SystemTask::Done(result) => done.push(*result),
                SystemTask::Long => self.start_long(None, LongCall::Heartbeat, time),
                SystemTask::NotRun => {}
            }
        }
        done
    }

    /// Run a query method on the current state. Nothing it does is kept.
    pub fn query(
        &self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<MessageResult, CanisterError> {
        self.check_running()?;
        let call = Call::method(method, MethodKind::Query, arg, caller.as_slice(), time);
        Ok(exec.query(self.state(), call))
    }

    /// Fire the global timer if it is set and due: it is cleared first, as
    /// the IC does, and `canister_global_timer` runs (if exported).
    pub fn run_timer_if_due(&mut self, exec: &Executor, time: u64) -> Option<MessageResult> {
        let timer = self.exec.state().global_timer;
        if self.status != CanisterStatus::Running || timer == 0 || timer > time {
            return None;
        }
        self.exec.state_mut().global_timer = 0;
        self.run_system_task(exec, EntryPoint::GlobalTimer, time, false).done()
    }

    /// Run `canister_heartbeat` (if exported and running): once a round.
    pub fn run_heartbeat(&mut self, exec: &Executor, time: u64) -> Option<MessageResult> {
        if self.status != CanisterStatus::Running {
            return None;
        }
        self.run_system_task(exec, EntryPoint::Heartbeat, time, false).done()
    }

    /// Run a system entry point, if the module exports it, logging its
    /// output; as a first slice if `sliced`.
    fn run_system_task(&mut self, exec: &Executor, entry: EntryPoint, time: u64, sliced: bool) -> SystemTask {
        if !self.state().module.as_ref().is_some_and(|m| m.info.has(entry)) {
            return SystemTask::NotRun;
        }
        let mut call = Call::entry(entry, &[], self.id.as_slice(), time);
        call.incoming.call_capacity = self.call_capacity();
        let result = if sliced {
            match exec.execute_first_slice(&mut self.exec, call) {
                Some(result) => result,
                None => return SystemTask::Long,
            }
        } else {
            exec.execute(&mut self.exec, call)
        };
        self.canister_log.record(time, &result);
        SystemTask::Done(Box::new(result))
    }

    /// Whether a round at `time` has work for this canister even without
    /// messages: a due timer or a heartbeat, or unfinished work.
    pub fn has_system_task(&self, time: u64) -> bool {
        self.is_busy() || self.has_due_system_task(time)
    }

    /// Whether the canister has a due timer or a heartbeat.
    fn has_due_system_task(&self, time: u64) -> bool {
        let state = self.state();
        let exports = |e| state.module.as_ref().is_some_and(|m| m.info.has(e));
        (self.status == CanisterStatus::Running
            && (exports(EntryPoint::Heartbeat) || (state.global_timer != 0 && state.global_timer <= time)))
            || self.has_expired_call(time)
    }
}

/// Run `canister_inspect_message` (if `state`'s module exports one) for an
/// ingress call of `method`; an error says why the message is refused.
pub fn inspect(
    exec: &Executor,
    canister: Principal,
    state: &CanisterState,
    caller: &Principal,
    method: &str,
    arg: &[u8],
    time: u64,
) -> Result<(), CanisterError> {
    if !state.module.as_ref().is_some_and(|m| m.info.has(EntryPoint::InspectMessage)) {
        return Ok(());
    }
    let call = Call {
        target: Target::Inspect { method },
        arg,
        caller: caller.as_slice(),
        time,
        incoming: Default::default(),
        data_certificate: None,
    };
    let result = exec.query(state, call);
    let reason = match result.outcome {
        Err(error) => error.to_string(),
        Ok(_) if result.accepted => return Ok(()),
        Ok(_) => "the canister did not accept it".to_string(),
    };
    Err(CanisterError::InspectRejected { canister, reason })
}
