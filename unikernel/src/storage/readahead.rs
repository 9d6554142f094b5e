//! Read-ahead policies: on a miss, which blocks to fetch besides the one
//! asked for.
//!
//! A policy in the scheduler's model: a trait, a compiled-in default
//! ([`Sequential`]), alternatives ([`NoReadAhead`], and [`Strided`], the
//! native form of the strided read-ahead sample graft), chosen per image as
//! a type parameter of the cache. A policy only proposes a [`Window`]; the
//! cache clamps it (to the disk, to its request size, to a share of its
//! slots) and never lets read-ahead replace a cached block, so no answer can
//! make the cache return wrong data — only fetch more or less. A policy is
//! asked on every miss ([`ReadAhead::on_miss`]) and told of every hit
//! ([`ReadAhead::on_hit`], where it may also propose blocks to fetch: a
//! policy that follows a pattern keeps ahead of it even while it hits).

/// Blocks to fetch: `count` blocks from `start`, `stride` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub count: u32,
    pub stride: u32,
}

impl Window {
    /// Just the one block.
    pub const fn single(block: u64) -> Window {
        Window {
            start: block,
            count: 1,
            stride: 1,
        }
    }
}

/// Decides what a miss fetches.
pub trait ReadAhead: Default {
    /// Shown in the boot log.
    const NAME: &'static str;
    /// A read of `block` missed. The window's first block must be `block`
    /// (the cache enforces it).
    fn on_miss(&mut self, block: u64) -> Window;
    /// A read of `block` hit the cache. The policy may name blocks to
    /// fetch now, ahead of their use (the next of a pattern it follows);
    /// the cache fetches those of them it does not hold. None by default.
    fn on_hit(&mut self, _block: u64) -> Option<Window> {
        None
    }
}

/// No read-ahead: fetch exactly what was asked for.
#[derive(Default, Debug)]
pub struct NoReadAhead;

impl ReadAhead for NoReadAhead {
    const NAME: &'static str = "none";
    fn on_miss(&mut self, block: u64) -> Window {
        Window::single(block)
    }
}

/// Sequential read-ahead, the default: a miss right where the previous
/// window ended means a sequential reader, so the window doubles (from
/// [`Sequential::FIRST`] up to [`Sequential::MAX`] blocks); any other miss
/// fetches one block.
#[derive(Default, Debug)]
pub struct Sequential {
    /// The block just after the last window.
    next: Option<u64>,
    size: u32,
}

impl Sequential {
    pub const FIRST: u32 = 4;
    pub const MAX: u32 = 64;
}

impl ReadAhead for Sequential {
    const NAME: &'static str = "sequential";

    fn on_miss(&mut self, block: u64) -> Window {
        self.size = if self.next == Some(block) {
            (self.size * 2).clamp(Self::FIRST, Self::MAX)
        } else {
            1
        };
        self.next = block.checked_add(u64::from(self.size));
        Window {
            start: block,
            count: self.size,
            stride: 1,
        }
    }
}

/// Strided read-ahead: two misses the same distance apart (a stride of
/// 1..=[`Strided::MAX_STRIDE`] blocks) predict the next ones; the window
/// then holds [`Strided::COUNT`] blocks along the stride. This is the
/// compiled-in form of the strided read-ahead sample graft (e.g. a column
/// of a table stored row by row).
#[derive(Default, Debug)]
pub struct Strided {
    /// The last block the previous window fetched.
    last: Option<u64>,
    stride: u64,
}

impl Strided {
    pub const COUNT: u32 = 16;
    pub const MAX_STRIDE: u64 = 1024;
}

impl ReadAhead for Strided {
    const NAME: &'static str = "strided";

    fn on_miss(&mut self, block: u64) -> Window {
        let distance = self
            .last
            .and_then(|last| block.checked_sub(last))
            .filter(|d| (1..=Self::MAX_STRIDE).contains(d));
        let window = match distance {
            Some(d) if d == self.stride => Window {
                start: block,
                count: Self::COUNT,
                stride: d as u32,
            },
            _ => Window::single(block),
        };
        self.stride = distance.unwrap_or(0);
        self.last = Some(block + u64::from(window.count - 1) * u64::from(window.stride));
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_grows_on_a_scan_and_resets_on_a_jump() {
        let mut policy = Sequential::default();
        assert_eq!(policy.on_miss(0).count, 1);
        assert_eq!(
            policy.on_miss(1),
            Window {
                start: 1,
                count: 4,
                stride: 1
            }
        );
        assert_eq!(policy.on_miss(5).count, 8);
        assert_eq!(policy.on_miss(13).count, 16);
        assert_eq!(policy.on_miss(29).count, 32);
        assert_eq!(policy.on_miss(61).count, 64);
        assert_eq!(policy.on_miss(125).count, 64);
        assert_eq!(policy.on_miss(7).count, 1, "a jump back");
        assert_eq!(policy.on_miss(8).count, 4);
        assert_eq!(policy.on_miss(u64::MAX).count, 1);
    }

    #[test]
    fn strided_locks_on_to_a_constant_stride() {
        let mut policy = Strided::default();
        assert_eq!(policy.on_miss(100).count, 1);
        assert_eq!(
            policy.on_miss(108).count,
            1,
            "one distance is no stride yet"
        );
        let window = policy.on_miss(116);
        assert_eq!(
            window,
            Window {
                start: 116,
                count: 16,
                stride: 8
            }
        );
        // The next miss comes where the window ended, plus one stride.
        let next = 116 + 16 * 8;
        assert_eq!(policy.on_miss(next).stride, 8);
        assert_eq!(policy.on_miss(5).count, 1, "a jump back breaks it");
        assert_eq!(policy.on_miss(5 + 5000).count, 1, "too far apart");
    }
}
