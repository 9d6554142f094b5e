//! The values that cross the graft border: integers only.
//!
//! Grafts are integer code. Floating point is refused when a graft is
//! compiled (see [`crate::engine`]): the image is built soft-float and saves
//! no FPU state, so a graft's floats would share registers with nothing
//! that preserves them. Every graft point's parameters and results, and
//! every accessor's, are `i32` or `i64`; these two types say so, and keep
//! the engine's own value types out of the host's code.

/// A parameter or result type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    I32,
    I64,
}

/// A parameter or result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    I32(i32),
    I64(i64),
}

impl Val {
    /// Zero of `ty`.
    pub const fn default_for_ty(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
        }
    }

    pub const fn ty(self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
        }
    }

    pub const fn i32(self) -> Option<i32> {
        match self {
            Val::I32(v) => Some(v),
            Val::I64(_) => None,
        }
    }

    pub const fn i64(self) -> Option<i64> {
        match self {
            Val::I64(v) => Some(v),
            Val::I32(_) => None,
        }
    }

    /// The engine's value.
    pub(crate) fn to_engine(self) -> wasmtime::Val {
        match self {
            Val::I32(v) => wasmtime::Val::I32(v),
            Val::I64(v) => wasmtime::Val::I64(v),
        }
    }

    /// From the engine's value, if it is an integer.
    pub(crate) fn from_engine(value: &wasmtime::Val) -> Option<Val> {
        match value {
            wasmtime::Val::I32(v) => Some(Val::I32(*v)),
            wasmtime::Val::I64(v) => Some(Val::I64(*v)),
            _ => None,
        }
    }
}

/// The most parameters a graft function has (points and accessors take at
/// most four).
pub const MAX_VALUES: usize = 4;

/// The most results a graft point has: one (a verdict, a choice, a count).
/// [`crate::Runtime::declare`] refuses a point with more.
pub const MAX_RESULTS: usize = 1;

/// A call's results, held inline: a graft call allocates nothing to return
/// them, and they are small enough to pass in registers and plain moves.
/// A point has at most [`MAX_RESULTS`] (one) result, so it is an `Option`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Vals(Option<Val>);

impl Vals {
    /// No values.
    pub const EMPTY: Vals = Vals(None);

    /// `values`, or `None` if there are more than [`MAX_RESULTS`].
    pub fn from_slice(values: &[Val]) -> Option<Vals> {
        match *values {
            [] => Some(Vals::EMPTY),
            [value] => Some(Vals::one(value)),
            _ => None,
        }
    }

    /// One value.
    pub const fn one(value: Val) -> Vals {
        Vals(Some(value))
    }
}

impl core::ops::Deref for Vals {
    type Target = [Val];

    fn deref(&self) -> &[Val] {
        self.0.as_slice()
    }
}

impl core::fmt::Debug for Vals {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq<[Val]> for Vals {
    fn eq(&self, other: &[Val]) -> bool {
        **self == *other
    }
}

impl<const N: usize> PartialEq<[Val; N]> for Vals {
    fn eq(&self, other: &[Val; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<alloc::vec::Vec<Val>> for Vals {
    fn eq(&self, other: &alloc::vec::Vec<Val>) -> bool {
        **self == other[..]
    }
}

impl ValType {
    /// Whether the engine's type is this one.
    pub(crate) fn matches(self, ty: &wasmtime::ValType) -> bool {
        matches!(
            (self, ty),
            (ValType::I32, wasmtime::ValType::I32) | (ValType::I64, wasmtime::ValType::I64)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_engine_and_keep_their_type() {
        for v in [
            Val::I32(-7),
            Val::I64(1 << 40),
            Val::default_for_ty(ValType::I64),
        ] {
            assert_eq!(Val::from_engine(&v.to_engine()), Some(v));
        }
        assert!(ValType::I32.matches(&wasmtime::ValType::I32));
        assert!(!ValType::I64.matches(&wasmtime::ValType::I32));
        assert_eq!(Val::from_engine(&wasmtime::Val::F32(0)), None);
        assert_eq!(Val::I32(3).i64(), None);
        assert_eq!(Val::I64(3).i64(), Some(3));
    }

    #[test]
    fn vals_hold_a_result_inline_in_two_words() {
        assert_eq!(Vals::from_slice(&[Val::I64(2)]).unwrap(), [Val::I64(2)]);
        assert_eq!(Vals::from_slice(&[]).unwrap(), Vals::EMPTY);
        assert!(Vals::from_slice(&[Val::I32(0); 2]).is_none());
        assert!(Vals::EMPTY.is_empty());
        assert_eq!(format!("{:?}", Vals::one(Val::I32(7))), "[I32(7)]");
        // Small enough to move without a memcpy call, with or without an
        // outcome around it.
        assert_eq!(core::mem::size_of::<Vals>(), 16);
        assert_eq!(
            core::mem::size_of::<Result<Option<Vals>, crate::AbortCause>>(),
            16
        );
    }
}
