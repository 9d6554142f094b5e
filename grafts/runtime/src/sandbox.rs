//! The sandbox: one Wasmtime store and warm instance per installed graft,
//! and the checks a module passes before it is ever instantiated. The
//! accessors it may call are in the `accessors` module.

use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use wasmtime::{
    Engine, ExternType, Func, FuncType, Linker, Module, Store, StoreLimits, StoreLimitsBuilder,
    Trap, TypedFunc,
};

use crate::abi::{self, Capabilities};
pub use crate::accessors::linker;
use crate::call::Core;
use crate::engine::Catch;
use crate::fault::AbortCause;
use crate::point::{Kind, PointSpec};
use crate::state::{GraftId, HostState};
use crate::val::ValType;

/// Why a module was refused at load time. All are the sender's fault; the
/// running image is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// Not an artifact of this engine (malformed, truncated, built by
    /// another engine version or configuration, or for another target).
    Invalid(String),
    /// Imports something outside the ABI or its granted capabilities.
    ForbiddenImport {
        module: String,
        name: String,
    },
    /// Imports an accessor with the wrong signature.
    ImportSignature {
        name: String,
    },
    /// Lacks an export the point needs.
    MissingExport(&'static str),
    /// An export's signature does not match the point's.
    ExportSignature {
        name: String,
        expected: String,
    },
    /// No such graft point.
    UnknownPoint(String),
    /// The point's installation policy refuses another graft.
    PointFull(String),
    /// Instantiation failed (e.g. the start function trapped or memory too big).
    Instantiate(String),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::TooLarge { bytes, limit } => {
                write!(f, "module is {bytes} bytes; the limit is {limit}")
            }
            LoadError::Invalid(why) => write!(f, "not a loadable graft artifact: {why}"),
            LoadError::ForbiddenImport { module, name } => {
                write!(
                    f,
                    "import `{module}.{name}` is not granted at this graft point"
                )
            }
            LoadError::ImportSignature { name } => {
                write!(f, "import `{name}` has the wrong signature")
            }
            LoadError::MissingExport(name) => write!(f, "the module does not export `{name}`"),
            LoadError::ExportSignature { name, expected } => {
                write!(f, "export `{name}` must have signature {expected}")
            }
            LoadError::UnknownPoint(point) => write!(f, "no graft point named `{point}`"),
            LoadError::PointFull(point) => write!(f, "graft point `{point}` takes no more grafts"),
            LoadError::Instantiate(why) => write!(f, "instantiation failed: {why}"),
        }
    }
}

/// An accessor's refusal, carried out of wasm as a host error.
#[derive(Debug, Clone, Copy)]
pub struct Abort(pub AbortCause);

impl core::fmt::Display for Abort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl core::error::Error for Abort {}

/// What a graft's store carries.
pub struct HostData {
    pub(crate) state: Rc<RefCell<HostState>>,
    /// The runtime's shared core, for `emit` (weak: the core owns this store).
    pub(crate) core: Weak<Core>,
    /// The index of the graft's point (whose `emits` list `emit` indexes).
    pub(crate) point: usize,
    pub(crate) graft: GraftId,
    pub(crate) capabilities: Capabilities,
    limits: StoreLimits,
    pub(crate) log: Vec<String>,
    /// The graft's exported memory, which the accessors read and write.
    pub(crate) memory: Option<wasmtime::Memory>,
}

/// Whose store it is: what an instance is bound to.
#[derive(Clone)]
pub(crate) struct Binding {
    pub(crate) core: Weak<Core>,
    pub(crate) state: Rc<RefCell<HostState>>,
    pub(crate) point: usize,
    pub(crate) graft: GraftId,
    pub(crate) capabilities: Capabilities,
}

impl HostData {
    /// What this store is bound to (for a fresh instance of the same graft).
    pub(crate) fn binding(&self) -> Binding {
        Binding {
            core: self.core.clone(),
            state: self.state.clone(),
            point: self.point,
            graft: self.graft,
            capabilities: self.capabilities,
        }
    }
}

/// A module that passed every load-time check for a point.
#[derive(Clone)]
pub struct ValidatedModule {
    pub(crate) module: Module,
    pub(crate) has_guard: bool,
    pub(crate) has_revoke: bool,
    pub bytes: usize,
}

/// Whether the engine's function type is `params -> results`.
fn signature_is(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(t, p)| p.matches(&t))
        && ty.results().zip(results).all(|(t, r)| r.matches(&t))
}

fn describe(params: &[ValType], results: &[ValType]) -> String {
    format!("{params:?} -> {results:?}")
}

/// Loads the artifact `bytes` and validates it for `point` with `granted`
/// capabilities (already narrowed by the point).
pub fn validate(
    engine: &Engine,
    bytes: &[u8],
    point: &PointSpec,
    granted: Capabilities,
) -> Result<ValidatedModule, LoadError> {
    if bytes.len() > point.max_module_bytes {
        return Err(LoadError::TooLarge {
            bytes: bytes.len(),
            limit: point.max_module_bytes,
        });
    }
    let module = crate::engine::deserialize(engine, bytes).map_err(LoadError::Invalid)?;
    for import in module.imports() {
        let forbidden = || LoadError::ForbiddenImport {
            module: import.module().into(),
            name: import.name().into(),
        };
        if import.module() != abi::MODULE {
            return Err(forbidden());
        }
        let accessor = abi::accessor(import.name()).ok_or_else(forbidden)?;
        if !granted.has(accessor.capability) {
            return Err(forbidden());
        }
        match import.ty() {
            ExternType::Func(ty) if signature_is(&ty, accessor.params, accessor.results) => {}
            ExternType::Func(_) => {
                return Err(LoadError::ImportSignature {
                    name: import.name().into(),
                });
            }
            _ => return Err(forbidden()),
        }
    }
    let export = |name: &str| module.exports().find(|e| e.name() == name).map(|e| e.ty());
    match export(abi::MAIN) {
        Some(ExternType::Func(ty)) if signature_is(&ty, &point.params, &point.results) => {}
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::MAIN.into(),
                expected: describe(&point.params, &point.results),
            });
        }
        None => return Err(LoadError::MissingExport(abi::MAIN)),
    }
    let has_guard = match export(abi::GUARD) {
        Some(ExternType::Func(ty))
            if signature_is(&ty, &point.params, &[ValType::I32])
                && matches!(point.kind, Kind::Event { .. }) =>
        {
            true
        }
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::GUARD.into(),
                expected: describe(&point.params, &[ValType::I32]),
            });
        }
        None => false,
    };
    let has_revoke = match export(abi::REVOKE) {
        Some(ExternType::Func(ty)) if signature_is(&ty, &[], &[]) => true,
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::REVOKE.into(),
                expected: describe(&[], &[]),
            });
        }
        None => false,
    };
    Ok(ValidatedModule {
        module,
        has_guard,
        has_revoke,
        bytes: bytes.len(),
    })
}

/// A live instance: its store and entry points.
pub struct Instance {
    pub(crate) store: Store<HostData>,
    pub(crate) main: Entry,
    pub(crate) guard: Option<Entry>,
    pub(crate) revoke: Option<Entry>,
}

/// An exported function, with a typed handle when its signature is one of
/// the one-integer shapes graft points use (a typed call skips the
/// engine's per-call type check and value boxing).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) func: Func,
    pub(crate) typed: Typed,
}

#[derive(Clone)]
pub(crate) enum Typed {
    Dynamic,
    I32ToI32(TypedFunc<i32, i32>),
    I64ToI64(TypedFunc<i64, i64>),
    I64ToI32(TypedFunc<i64, i32>),
    I32ToI64(TypedFunc<i32, i64>),
}

impl Entry {
    fn new(store: &Store<HostData>, func: Func) -> Entry {
        let typed = if let Ok(f) = func.typed::<i32, i32>(store) {
            Typed::I32ToI32(f)
        } else if let Ok(f) = func.typed::<i64, i64>(store) {
            Typed::I64ToI64(f)
        } else if let Ok(f) = func.typed::<i64, i32>(store) {
            Typed::I64ToI32(f)
        } else if let Ok(f) = func.typed::<i32, i64>(store) {
            Typed::I32ToI64(f)
        } else {
            Typed::Dynamic
        };
        Entry { func, typed }
    }
}

/// Instantiates `module` in a fresh store bounded by `point`'s limits.
pub(crate) fn instantiate(
    linker: &Linker<HostData>,
    catch: Option<Catch>,
    module: &ValidatedModule,
    point: &PointSpec,
    binding: Binding,
) -> Result<Instance, LoadError> {
    let limits = StoreLimitsBuilder::new()
        .memory_size(point.memory_pages as usize * 65536)
        .table_elements(point.table_elements as usize)
        .instances(1)
        .memories(1)
        .tables(1)
        .build();
    let data = HostData {
        state: binding.state,
        core: binding.core,
        point: binding.point,
        graft: binding.graft,
        capabilities: binding.capabilities,
        limits,
        log: Vec::new(),
        memory: None,
    };
    let mut store = Store::new(linker.engine(), data);
    store.limiter(|data| &mut data.limits);
    // The start function (if any) runs on a budget too.
    store
        .set_fuel(point.fuel)
        .map_err(|e| LoadError::Instantiate(e.to_string()))?;
    // The start function is graft code too: run it under fault recovery.
    let mut instantiated = None;
    let faulted = crate::engine::guarded(catch, &mut || {
        instantiated = Some(linker.instantiate(&mut store, &module.module));
    });
    let instance = match (faulted, instantiated) {
        (Ok(()), Some(result)) => result.map_err(|e| LoadError::Instantiate(format!("{e:#}")))?,
        _ => {
            // Abandoned mid-call: never drop or run it again.
            core::mem::forget(store);
            return Err(LoadError::Instantiate(
                "a CPU exception in the start function".into(),
            ));
        }
    };
    let memory = instance.get_memory(&mut store, "memory");
    store.data_mut().memory = memory;
    let mut entry = |name: &str| {
        instance
            .get_func(&mut store, name)
            .map(|func| Entry::new(&store, func))
    };
    let main = entry(abi::MAIN).ok_or(LoadError::MissingExport(abi::MAIN))?;
    let guard = if module.has_guard {
        entry(abi::GUARD)
    } else {
        None
    };
    let revoke = if module.has_revoke {
        entry(abi::REVOKE)
    } else {
        None
    };
    Ok(Instance {
        store,
        main,
        guard,
        revoke,
    })
}

/// Maps a failed call to its cause.
pub fn cause_of(error: &wasmtime::Error) -> AbortCause {
    if let Some(abort) = error.downcast_ref::<Abort>() {
        return abort.0;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => AbortCause::FuelExhausted,
        Some(Trap::MemoryOutOfBounds | Trap::TableOutOfBounds) => AbortCause::OutOfBounds,
        Some(Trap::UnreachableCodeReached) => AbortCause::Unreachable,
        Some(Trap::StackOverflow) => AbortCause::StackOverflow,
        Some(Trap::IntegerDivisionByZero | Trap::IntegerOverflow) => AbortCause::DivideByZero,
        _ => AbortCause::OtherTrap,
    }
}
