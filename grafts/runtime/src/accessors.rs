//! The accessors: the host functions of the ABI table ([`crate::abi`]),
//! defined once in the linker every graft shares. Each checks its
//! capability again at run time, bounds-checks every pointer and length it
//! is given, and turns a refusal into an abort of the calling transaction.

use alloc::string::String;
use alloc::vec::Vec;

use wasmtime::{Caller, Engine, Linker};

use crate::abi::{self, Capability};
use crate::fault::AbortCause;
use crate::sandbox::{Abort, HostData};

type HostResult<T> = Result<T, wasmtime::Error>;

fn abort(cause: AbortCause) -> wasmtime::Error {
    wasmtime::Error::new(Abort(cause))
}

/// Checks the capability at run time (it may have been narrowed since load).
fn allow(caller: &Caller<'_, HostData>, capability: Capability) -> HostResult<()> {
    if caller.data().capabilities.has(capability) {
        Ok(())
    } else {
        Err(abort(AbortCause::ForbiddenAccessor))
    }
}

/// The graft's exported memory (looked up once, at instantiation).
fn memory(caller: &Caller<'_, HostData>) -> HostResult<wasmtime::Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| abort(AbortCause::BadArgument))
}

/// A copy of guest bytes `[ptr, ptr + len)`.
fn read_guest(caller: &mut Caller<'_, HostData>, ptr: i32, len: i32) -> HostResult<Vec<u8>> {
    let memory = memory(caller)?;
    let guest = memory.data(&*caller);
    let range = crate::state::checked_range(ptr, len, guest.len()).map_err(abort)?;
    Ok(guest[range].to_vec())
}

fn lift<T>(result: Result<T, AbortCause>) -> HostResult<T> {
    result.map_err(abort)
}

/// The linker with every accessor of the ABI.
pub fn linker(engine: &Engine) -> Linker<HostData> {
    const DEFINED_ONCE: &str = "each accessor is defined once";
    let mut linker = Linker::new(engine);
    let m = abi::MODULE;
    linker
        .func_wrap(m, "ctx_len", |c: Caller<'_, HostData>| -> HostResult<i32> {
            allow(&c, Capability::Context)?;
            Ok(c.data().state.borrow().context.len().min(i32::MAX as usize) as i32)
        })
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "ctx_read",
            |mut c: Caller<'_, HostData>, offset: i32, ptr: i32, len: i32| -> HostResult<i32> {
                allow(&c, Capability::Context)?;
                // Straight from the context into guest memory, no copy between.
                let (guest, data) = memory(&c)?.data_and_store_mut(&mut c);
                let state = data.state.borrow();
                let bytes = lift(state.context_slice(offset, len))?;
                let range = crate::state::checked_range(ptr, len, guest.len()).map_err(abort)?;
                guest[range].copy_from_slice(bytes);
                Ok(len)
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "ctx_write",
            |mut c: Caller<'_, HostData>, offset: i32, ptr: i32, len: i32| -> HostResult<i32> {
                allow(&c, Capability::ContextWrite)?;
                let (guest, data) = memory(&c)?.data_and_store_mut(&mut c);
                let range = crate::state::checked_range(ptr, len, guest.len()).map_err(abort)?;
                lift(data.state.borrow_mut().write_context(offset, &guest[range]))?;
                Ok(len)
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "map_get",
            |c: Caller<'_, HostData>, map: i32, key: i64, default: i64| -> HostResult<i64> {
                allow(&c, Capability::Maps)?;
                Ok(c.data()
                    .state
                    .borrow()
                    .map_get(c.data().graft, map, key)
                    .unwrap_or(default))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "map_put",
            |c: Caller<'_, HostData>, map: i32, key: i64, value: i64| -> HostResult<()> {
                allow(&c, Capability::Maps)?;
                lift(c.data().state.borrow_mut().map_put(map, key, value))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "counter_add",
            |c: Caller<'_, HostData>, index: i32, delta: i64| -> HostResult<i64> {
                allow(&c, Capability::Counters)?;
                lift(c.data().state.borrow_mut().counter_add(index, delta))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "lock",
            |c: Caller<'_, HostData>, id: i32| -> HostResult<()> {
                allow(&c, Capability::Locks)?;
                lift(c.data().state.borrow_mut().lock(id))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "buf_alloc",
            |c: Caller<'_, HostData>, bytes: i32| -> HostResult<i32> {
                allow(&c, Capability::Buffers)?;
                lift(c.data().state.borrow_mut().buffer_alloc(bytes))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "buf_free",
            |c: Caller<'_, HostData>, handle: i32| -> HostResult<()> {
                allow(&c, Capability::Buffers)?;
                lift(c.data().state.borrow_mut().buffer_free(handle))
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(m, "now_ns", |c: Caller<'_, HostData>| -> HostResult<i64> {
            allow(&c, Capability::Time)?;
            Ok(c.data().state.borrow().now_ns() as i64)
        })
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "log",
            |mut c: Caller<'_, HostData>, ptr: i32, len: i32| -> HostResult<()> {
                allow(&c, Capability::Log)?;
                let bytes = read_guest(&mut c, ptr, len.min(256))?;
                let line = String::from_utf8_lossy(&bytes).into_owned();
                let log = &mut c.data_mut().log;
                if log.len() == 64 {
                    log.remove(0);
                }
                log.push(line);
                Ok(())
            },
        )
        .expect(DEFINED_ONCE);
    linker
        .func_wrap(
            m,
            "emit",
            |mut c: Caller<'_, HostData>,
             point: i32,
             ptr: i32,
             len: i32,
             arg: i64|
             -> HostResult<i64> {
                allow(&c, Capability::Events)?;
                if usize::try_from(len).is_ok_and(|len| len > abi::MAX_EMIT_CONTEXT) {
                    return Err(abort(AbortCause::BadArgument));
                }
                let context = read_guest(&mut c, ptr, len)?;
                emit(&mut c, point, context, arg)
            },
        )
        .expect(DEFINED_ONCE);
    linker
}

/// `emit`, once its arguments are read: the event's handlers run nested in
/// the caller's transaction, and the fuel they burn comes off its budget.
fn emit(c: &mut Caller<'_, HostData>, point: i32, context: Vec<u8>, arg: i64) -> HostResult<i64> {
    // The runtime owns this store, so it outlives the call.
    let core = c
        .data()
        .core
        .upgrade()
        .ok_or_else(|| abort(AbortCause::ForbiddenAccessor))?;
    let budget = c.get_fuel().map_err(|_| abort(AbortCause::OtherTrap))?;
    let (verdict, burnt) = lift(core.emit(c.data().point, point, context, arg))?;
    let left = budget.checked_sub(burnt);
    c.set_fuel(left.unwrap_or(0))
        .map_err(|_| abort(AbortCause::OtherTrap))?;
    match left {
        Some(_) => Ok(verdict),
        None => Err(abort(AbortCause::FuelExhausted)),
    }
}
