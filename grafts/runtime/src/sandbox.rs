//! The sandbox: one `wasmi` store and warm instance per installed graft,
//! and the checks a module passes before it is ever instantiated. The
//! accessors it may call are in the `accessors` module.

use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use wasmi::{
    Config, Engine, ExternType, Func, FuncType, Linker, Module, Store, StoreLimits,
    StoreLimitsBuilder, TrapCode,
};

use crate::abi::{self, Capabilities};
pub use crate::accessors::linker;
use crate::call::Core;
use crate::fault::AbortCause;
use crate::point::{Kind, PointSpec};
use crate::state::{GraftId, HostState};

/// Deepest wasm call nesting a graft may reach.
pub const MAX_RECURSION: usize = 256;

/// Why a module was refused at load time. All are the sender's fault; the
/// running image is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// Not valid WebAssembly (malformed, truncated, fails validation).
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
            LoadError::Invalid(why) => write!(f, "not a valid WebAssembly module: {why}"),
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

impl wasmi::errors::HostError for Abort {}

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

/// The engine every graft shares: fuel metering on, recursion bounded.
pub fn engine() -> Engine {
    let mut config = Config::default();
    config.consume_fuel(true);
    config.set_max_recursion_depth(MAX_RECURSION);
    Engine::new(&config)
}

fn signature(params: &[wasmi::ValType], results: &[wasmi::ValType]) -> FuncType {
    FuncType::new(params.iter().copied(), results.iter().copied())
}

fn describe(ty: &FuncType) -> String {
    format!("{:?} -> {:?}", ty.params(), ty.results())
}

/// Validates `bytes` for `point` with `granted` capabilities (already
/// narrowed by the point).
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
    let module = Module::new(engine, bytes).map_err(|e| LoadError::Invalid(e.to_string()))?;
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
            ExternType::Func(ty) if *ty == signature(accessor.params, accessor.results) => {}
            ExternType::Func(_) => {
                return Err(LoadError::ImportSignature {
                    name: import.name().into(),
                });
            }
            _ => return Err(forbidden()),
        }
    }
    let export = |name: &str| {
        module
            .exports()
            .find(|e| e.name() == name)
            .map(|e| e.ty().clone())
    };
    let main = signature(&point.params, &point.results);
    match export(abi::MAIN) {
        Some(ExternType::Func(ty)) if ty == main => {}
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::MAIN.into(),
                expected: describe(&main),
            });
        }
        None => return Err(LoadError::MissingExport(abi::MAIN)),
    }
    let guard_ty = signature(&point.params, &[wasmi::ValType::I32]);
    let has_guard = match export(abi::GUARD) {
        Some(ExternType::Func(ty))
            if ty == guard_ty && matches!(point.kind, Kind::Event { .. }) =>
        {
            true
        }
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::GUARD.into(),
                expected: describe(&guard_ty),
            });
        }
        None => false,
    };
    let revoke_ty = signature(&[], &[]);
    let has_revoke = match export(abi::REVOKE) {
        Some(ExternType::Func(ty)) if ty == revoke_ty => true,
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: abi::REVOKE.into(),
                expected: describe(&revoke_ty),
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
    pub(crate) main: Func,
    pub(crate) guard: Option<Func>,
    pub(crate) revoke: Option<Func>,
}

/// Instantiates `module` in a fresh store bounded by `point`'s limits.
pub(crate) fn instantiate(
    linker: &Linker<HostData>,
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
    };
    let mut store = Store::new(linker.engine(), data);
    store.limiter(|data| &mut data.limits);
    // The start function (if any) runs on a budget too.
    store
        .set_fuel(point.fuel)
        .map_err(|e| LoadError::Instantiate(e.to_string()))?;
    let instance = linker
        .instantiate_and_start(&mut store, &module.module)
        .map_err(|e| LoadError::Instantiate(e.to_string()))?;
    let func = |store: &Store<HostData>, name: &str| instance.get_func(store, name);
    let main = func(&store, abi::MAIN).ok_or(LoadError::MissingExport(abi::MAIN))?;
    let guard = if module.has_guard {
        func(&store, abi::GUARD)
    } else {
        None
    };
    let revoke = if module.has_revoke {
        func(&store, abi::REVOKE)
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
pub fn cause_of(error: &wasmi::Error) -> AbortCause {
    if let Some(abort) = error.downcast_ref::<Abort>() {
        return abort.0;
    }
    match error.as_trap_code() {
        Some(TrapCode::OutOfFuel) => AbortCause::FuelExhausted,
        Some(TrapCode::MemoryOutOfBounds | TrapCode::TableOutOfBounds) => AbortCause::OutOfBounds,
        Some(TrapCode::UnreachableCodeReached) => AbortCause::Unreachable,
        Some(TrapCode::StackOverflow) => AbortCause::StackOverflow,
        Some(TrapCode::IntegerDivisionByZero | TrapCode::IntegerOverflow) => {
            AbortCause::DivideByZero
        }
        Some(TrapCode::GrowthOperationLimited) => AbortCause::ResourceLimit,
        _ => AbortCause::OtherTrap,
    }
}
