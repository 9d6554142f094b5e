//! Each graft point's ABI, as the image defines it and a graft sees it:
//! the point's name, the values its `graft_main` may return, and an
//! [`Abi`] saying what its argument, context and result are. The graft
//! host validates results against these same constants, so a graft that
//! uses them and the image that reads them cannot disagree.
//!
//! The signatures (argument and result types), capabilities and budgets
//! are the image's to declare (`graft_host::points`,
//! `graft_host::storage`); [`ALL`] joined with those declarations is the
//! one table that `cargo xtask graft new` scaffolds from and `cargo xtask
//! graft points` prints (the README's "Writing a graft" table).

/// What a graft at one point is handed and must answer, in words and by
/// example: for people (the README's table), for `cargo xtask graft new`
/// (the entry function it writes) and for host tests (a call to run the
/// graft against, with [`crate::testing::Call`]).
#[derive(Clone, Copy, Debug)]
pub struct Abi {
    /// The point's name.
    pub name: &'static str,
    /// The name of `graft_main`'s argument (its type is the point's).
    pub param: &'static str,
    /// What the call's context bytes are.
    pub context: &'static str,
    /// What `graft_main` returns.
    pub result: &'static str,
    /// The constant to return to change nothing (in the point's module
    /// here, named like the point with `_` for `.`).
    pub neutral: &'static str,
    /// A typical call: its context bytes…
    pub example_context: &'static [u8],
    /// …and its argument.
    pub example_arg: i64,
}

/// Every graft point an image here declares.
pub const ALL: &[Abi] = &[
    net_rx::ABI,
    http_request::ABI,
    sched_pick::ABI,
    cache_evict::ABI,
    cache_readahead::ABI,
    cache_filter::ABI,
];

/// The point named `name`.
pub fn find(name: &str) -> Option<&'static Abi> {
    ALL.iter().find(|abi| abi.name == name)
}

/// A 60-byte Ethernet frame: IPv4, TCP, to port 80 (no payload).
const FRAME: [u8; 60] = {
    let mut frame = [0u8; 60];
    frame[12] = 0x08; // EtherType IPv4
    frame[14] = 0x45; // version 4, header 5 words
    frame[17] = 40; // total length
    frame[22] = 64; // TTL
    frame[23] = 6; // TCP
    frame[37] = 80; // destination port
    frame[46] = 0x50; // TCP header 5 words
    frame
};

/// `net.rx`: an event on every received Ethernet frame, before the
/// compiled-in receive policy. `graft_main(len) -> verdict`; the context is
/// the frame.
pub mod net_rx {
    /// The point's name.
    pub const NAME: &str = "net.rx";
    /// Hand the frame on (to the next handler, then the compiled-in policy).
    pub const PASS: i32 = 0;
    /// Drop the frame.
    pub const DROP: i32 = 1;
    /// Send the (rewritten) context back out as the reply to the frame.
    pub const ANSWER: i32 = 2;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "len",
        context: "the received Ethernet frame, `len` bytes",
        result: "`PASS` (0), `DROP` (1), or `ANSWER` (2): send the rewritten context back",
        neutral: "PASS",
        example_context: &super::FRAME,
        example_arg: super::FRAME.len() as i64,
    };
}

/// `http.request`: an event on every HTTP request, before routing.
/// `graft_main(len) -> status`; the context is `METHOD SP PATH`.
pub mod http_request {
    /// The point's name.
    pub const NAME: &str = "http.request";
    /// Carry on: route the request as usual.
    pub const CARRY_ON: i32 = 0;
    /// The HTTP statuses a handler may answer with instead.
    pub const STATUSES: core::ops::RangeInclusive<i32> = 100..=599;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "len",
        context: "`METHOD SP PATH` of the request, `len` bytes",
        result: "`CARRY_ON` (0), or an HTTP status in `STATUSES` (100..=599) to answer with",
        neutral: "CARRY_ON",
        example_context: b"GET /index.html",
        example_arg: 15,
    };
}

/// `sched.pick`: replaces the scheduler's pick-next. `graft_main(n) ->
/// index`; the context is `n` ready tasks, 4 bytes each (`[priority,
/// group, 0, 0]`).
pub mod sched_pick {
    /// The point's name.
    pub const NAME: &str = "sched.pick";
    /// The first ready task (in the order the scheduler holds them).
    pub const FIRST: i32 = 0;
    /// The largest task index a pick may return.
    pub const MAX_INDEX: i32 = 255;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "n",
        context: "`n` ready tasks, 4 bytes each: `[priority, group, 0, 0]`",
        result: "the index of the task to run (`FIRST` is 0; below `n`, at most `MAX_INDEX`)",
        neutral: "FIRST",
        example_context: &[1, 0, 0, 0, 2, 1, 0, 0],
        example_arg: 2,
    };
}

/// `cache.evict`: replaces the block cache's choice of victim.
/// `graft_main(n) -> index`; the context is `n` candidate block numbers.
pub mod cache_evict {
    /// The point's name.
    pub const NAME: &str = "cache.evict";
    /// The least recently used candidate (what LRU evicts).
    pub const LEAST_RECENT: i32 = 0;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "n",
        context: "`n` candidate block numbers (u64 little-endian), least recently used first",
        result: "the index of the victim among them (`LEAST_RECENT` is 0)",
        neutral: "LEAST_RECENT",
        example_context: &[7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
        example_arg: 2,
    };
}

/// `cache.readahead`: replaces the block cache's read-ahead, called on
/// every read. `graft_main(block) -> block to fetch, or NONE`.
pub mod cache_readahead {
    /// The point's name.
    pub const NAME: &str = "cache.readahead";
    /// Fetch nothing ahead.
    pub const NONE: i64 = -1;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "block",
        context: "none (the block read is the argument)",
        result: "a block to fetch now, or `NONE` (-1)",
        neutral: "NONE",
        example_context: &[],
        example_arg: 7,
    };
}

/// `cache.filter`: rewrites each block between the user and the disk (its
/// own inverse). `graft_main(block) -> DONE`; the context is the block.
pub mod cache_filter {
    /// The point's name.
    pub const NAME: &str = "cache.filter";
    /// The only answer: the context holds the block as it should be.
    pub const DONE: i32 = 0;
    /// The point's ABI.
    pub const ABI: super::Abi = super::Abi {
        name: NAME,
        param: "block",
        context: "the block's 512 bytes, rewritten in place",
        result: "`DONE` (0)",
        neutral: "DONE",
        example_context: &[0; 512],
        example_arg: 7,
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_point_is_found_by_its_name() {
        for abi in super::ALL {
            assert_eq!(super::find(abi.name).unwrap().name, abi.name);
        }
        assert!(super::find("net.tx").is_none());
    }
}
