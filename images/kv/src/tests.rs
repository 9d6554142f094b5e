//! The database on the real block cache over the storage doubles: command
//! semantics, restart from the disk, warm restart from the cache memory,
//! compaction, and a crash at every step of a write-heavy run.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use unikernel::storage::testing::{CrashClock, MemDisk, MemMemory, block_on};
use unikernel::storage::{BlockCache, CacheMemory, Durability, Lru, Plain, Sequential};

use crate::db::{Action, Db};
use crate::resp::Reply;

type Cache<'d> = BlockCache<MemMemory, &'d MemDisk, Lru, Sequential, Plain>;

const CACHE_BYTES: usize = 64 * 1024;

fn open<'d>(memory: MemMemory, disk: &'d MemDisk, uptime: u64) -> Db<Cache<'d>> {
    let (cache, recovery) = block_on(Cache::open(memory, disk, Durability::Rio)).unwrap();
    assert_eq!(recovery.lost_dirty, 0);
    block_on(Db::open(cache, uptime)).unwrap().0
}

/// Runs one command (words split on spaces) and commits.
fn run(db: &mut Db<Cache>, now: u64, words: &str) -> Reply {
    let args = words.split(' ').map(|w| w.as_bytes().to_vec()).collect();
    let action = db.execute(args, now);
    block_on(db.commit(now)).unwrap();
    match action {
        Action::Reply(reply) => reply,
        other => panic!("{words}: {other:?}"),
    }
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

/// The cache memory as a crash leaves it.
fn crash(db: Db<Cache>, clock: &CrashClock) -> MemMemory {
    MemMemory::from_bytes(db.log().storage().memory().bytes().to_vec(), clock.clone())
}

#[test]
fn strings_counters_and_lists_behave_like_redis() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(4096, clock.clone());
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    let t = db.now(0);
    assert_eq!(run(&mut db, t, "PING"), Reply::Simple("PONG"));
    assert_eq!(run(&mut db, t, "ECHO hi"), bulk("hi"));
    assert_eq!(run(&mut db, t, "GET k"), Reply::Nil);
    assert_eq!(run(&mut db, t, "SET k v"), Reply::ok());
    assert_eq!(run(&mut db, t, "SET k w NX"), Reply::Nil);
    assert_eq!(run(&mut db, t, "SET n 1 XX"), Reply::Nil);
    assert_eq!(run(&mut db, t, "SET k w XX GET"), bulk("v"));
    assert_eq!(run(&mut db, t, "GET k"), bulk("w"));
    assert_eq!(run(&mut db, t, "INCR n"), Reply::Integer(1));
    assert_eq!(run(&mut db, t, "INCRBY n 41"), Reply::Integer(42));
    assert_eq!(run(&mut db, t, "DECR n"), Reply::Integer(41));
    assert_eq!(
        run(&mut db, t, "INCR k"),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(run(&mut db, t, "SET big 9223372036854775807"), Reply::ok());
    assert_eq!(
        run(&mut db, t, "INCR big"),
        Reply::error("ERR increment or decrement would overflow")
    );
    assert_eq!(run(&mut db, t, "MSET a 1 b 2"), Reply::ok());
    assert_eq!(
        run(&mut db, t, "MGET a nope b"),
        Reply::Array(vec![bulk("1"), Reply::Nil, bulk("2")])
    );
    assert_eq!(run(&mut db, t, "EXISTS a a nope"), Reply::Integer(2));
    assert_eq!(run(&mut db, t, "DBSIZE"), Reply::Integer(5));
    assert_eq!(run(&mut db, t, "DEL a b nope"), Reply::Integer(2));
    assert_eq!(run(&mut db, t, "FLUSHALL"), Reply::ok());
    assert_eq!(run(&mut db, t, "DBSIZE"), Reply::Integer(0));
    assert!(
        matches!(run(&mut db, t, "NOPE x"), Reply::Error(e) if e.starts_with("ERR unknown command 'NOPE'"))
    );
    assert_eq!(
        run(&mut db, t, "CONFIG GET s*"),
        Reply::Array(vec![bulk("save"), bulk("")])
    );
    let Reply::Bulk(info) = run(&mut db, t, "INFO") else {
        panic!()
    };
    assert!(String::from_utf8(info).unwrap().contains("redis_version:"));
}

#[test]
fn expiry_counts_database_time_and_survives_restarts() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(4096, clock.clone());
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    let t = db.now(0);
    assert_eq!(run(&mut db, t, "SET s v EX 10"), Reply::ok());
    assert_eq!(run(&mut db, t, "SET p v PX 1500"), Reply::ok());
    assert_eq!(run(&mut db, t, "SET forever v"), Reply::ok());
    assert_eq!(run(&mut db, t, "TTL s"), Reply::Integer(10));
    assert_eq!(run(&mut db, t + 500, "PTTL p"), Reply::Integer(1000));
    assert_eq!(run(&mut db, t, "TTL forever"), Reply::Integer(-1));
    assert_eq!(run(&mut db, t, "TTL nope"), Reply::Integer(-2));
    assert_eq!(run(&mut db, t, "EXPIRE forever 100"), Reply::Integer(1));
    assert_eq!(run(&mut db, t, "PERSIST forever"), Reply::Integer(1));
    assert_eq!(run(&mut db, t, "PERSIST forever"), Reply::Integer(0));
    assert_eq!(run(&mut db, t + 1600, "GET p"), Reply::Nil, "expired");
    assert_eq!(run(&mut db, t + 1600, "EXPIRE s 0"), Reply::Integer(1));
    assert_eq!(run(&mut db, t + 1600, "EXISTS s"), Reply::Integer(0));
    assert_eq!(run(&mut db, t + 1600, "SET q v PX 2000"), Reply::ok());
    // Warm restart: the clock resumes from the log's latest time.
    let memory = crash(db, &clock);
    let mut db = open(memory, &disk, 7);
    let t2 = db.now(7);
    assert!(t2 > t + 1600);
    assert_eq!(
        run(&mut db, t2, "PTTL q"),
        Reply::Integer((t + 3600 - t2) as i64)
    );
    assert_eq!(run(&mut db, t2, "GET forever"), bulk("v"));
    assert_eq!(run(&mut db, t2, "GET p"), Reply::Nil);
}

#[test]
fn a_clean_restart_from_the_disk_keeps_every_key() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(4096, clock.clone());
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    for i in 0..300 {
        run(&mut db, 1, &alloc::format!("SET key:{i} value-{i}"));
    }
    assert!(
        db.log().storage().dirty_blocks() > 0,
        "Rio: acknowledged in the cache"
    );
    block_on(db.save()).unwrap();
    assert_eq!(db.log().storage().dirty_blocks(), 0);
    drop(db);
    // A new VM: fresh (zeroed) cache memory, the same disk.
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    for i in 0..300 {
        assert_eq!(
            run(&mut db, 1, &alloc::format!("GET key:{i}")),
            bulk(&alloc::format!("value-{i}"))
        );
    }
}

#[test]
fn compaction_bounds_the_log_and_keeps_the_data() {
    let clock = CrashClock::new();
    // Two log areas of 96 blocks (48 KiB) each.
    let disk = MemDisk::new(200, clock.clone());
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    for round in 0..400 {
        for key in 0..10 {
            run(&mut db, round, &alloc::format!("SET k{key} round-{round}"));
        }
    }
    assert!(db.log().compactions() >= 3, "{}", db.log().compactions());
    let memory = crash(db, &clock);
    let mut warm = open(memory, &disk, 0);
    for key in 0..10 {
        assert_eq!(
            run(&mut warm, 500, &alloc::format!("GET k{key}")),
            bulk("round-399")
        );
    }
    block_on(warm.save()).unwrap();
    drop(warm);
    let mut cold = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    assert_eq!(run(&mut cold, 500, "DBSIZE"), Reply::Integer(10));
}

#[test]
fn a_full_log_refuses_writes_and_keeps_serving() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(200, clock.clone());
    let mut db = open(MemMemory::new(CACHE_BYTES, clock.clone()), &disk, 0);
    let value: String = "x".repeat(4000);
    let mut refused = 0;
    for i in 0..40 {
        if let Reply::Error(e) = run(&mut db, 1, &alloc::format!("SET k{i} {value}")) {
            assert!(e.starts_with("ERR disk full"), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0);
    assert_eq!(run(&mut db, 1, "GET k0"), bulk(&value));
    assert_eq!(run(&mut db, 1, "FLUSHALL"), Reply::ok());
}

/// SETs (each committed = acknowledged) on a small cache and disk, so
/// evictions and compactions happen; crash after every mutation count;
/// every acknowledged SET must be there after the warm restart.
#[test]
fn no_acknowledged_set_is_lost_at_any_crash_point() {
    let workload = |db: &mut Db<Cache>, clock: &CrashClock| -> Vec<usize> {
        let mut acked = Vec::new();
        for i in 0..450usize {
            run(db, i as u64, &alloc::format!("SET k{} v{i}", i % 15));
            if clock.crashed() {
                break;
            }
            acked.push(i);
        }
        acked
    };
    let clock = CrashClock::new();
    let disk = MemDisk::new(40, clock.clone());
    let mut db = open(MemMemory::new(16 * 1024, clock.clone()), &disk, 0);
    let start = clock.ticks();
    workload(&mut db, &clock);
    let total = clock.ticks() - start;
    assert!(db.log().compactions() >= 3, "{}", db.log().compactions());
    for limit in 0..total {
        let clock = CrashClock::new();
        let disk = MemDisk::new(40, clock.clone());
        let mut db = open(MemMemory::new(16 * 1024, clock.clone()), &disk, 0);
        clock.crash_after(clock.ticks() + limit, 5);
        let acked = workload(&mut db, &clock);
        let memory = crash(db, &clock);
        clock.reset();
        let mut db = open(memory, &disk, 0);
        let mut last = [None; 15];
        for &i in &acked {
            last[i % 15] = Some(i);
        }
        let in_flight = acked.len();
        for (key, version) in last.iter().enumerate() {
            let got = run(&mut db, 1000, &alloc::format!("GET k{key}"));
            let in_flight_here = in_flight % 15 == key;
            let ok = match version {
                Some(v) => got == bulk(&alloc::format!("v{v}")),
                None => got == Reply::Nil,
            } || (in_flight_here && got == bulk(&alloc::format!("v{in_flight}")));
            assert!(
                ok,
                "crash after {limit}/{total}: k{key} = {got:?}, acknowledged v{version:?}"
            );
        }
    }
}
