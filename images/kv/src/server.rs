//! The server: storage brought up (cache recovered, log replayed), then
//! one task per connection on port 6379.
//!
//! Kernel command line:
//! - `durability=rio` (default) or `durability=write-through`;
//! - `port=N` instead of 6379;
//! - `flush=S`: also write dirty blocks back every S seconds (default 0:
//!   only on eviction, `SAVE`, `SHUTDOWN` and recovery — Rio's promise
//!   needs no more);
//! - `control=PORT|off`: the graft control channel (default 7070), where
//!   grafts can be loaded on the cache's `cache.evict` and
//!   `cache.readahead` points while the server runs;
//! - `ip=…`, `gw=…`: see `net::Config`.
//!
//! The cache's block filter is not a graft point here: a filter defines
//! what the disk holds, and a graft loaded at run time is gone after a
//! warm reboot, before recovery writes the dirty blocks back — so a graft
//! there could leave the disk half in one format, half in another.
//! Eviction and read-ahead only decide what is cached, never what is
//! stored: any graft, or none, leaves the data intact.
//!
//! When serving it prints `kv: ready on ADDRESS:PORT` after a line that
//! says what recovery found and how long it took.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use graft_host::storage::{GraftEviction, GraftReadAhead};
use net::{Config, PassAll, TcpListener, TcpOptions, TcpStream};
use unikernel::block::BlockDevice;
use unikernel::cmdline::setting;
use unikernel::println;
use unikernel::rio;
use unikernel::rio::ProtectedRegion;
use unikernel::storage::{
    BlockCache, Durability, Lru, Plain, Policies, Recovery, Sequential, Start,
};
use unikernel::task;
use unikernel::time::Duration;

use crate::command::Fault;
use crate::db::{Action, Db};
use crate::disk::{KvDisk, RamDisk};
use crate::log::LogError;
use crate::resp::{self, Reply};

/// The cache this image uses: in the Rio region, over the disk; LRU
/// eviction and sequential read-ahead, each replaceable by a graft
/// (`cache.evict`, `cache.readahead`), and no filter.
type Cache = BlockCache<
    &'static ProtectedRegion,
    KvDisk,
    GraftEviction<Lru>,
    GraftReadAhead<Sequential>,
    Plain,
>;

/// Blocks of the RAM disk used when the VM has no disk (4 MiB).
const RAM_DISK_BLOCKS: usize = 8192;

/// Largest partial request a connection may buffer, bytes.
const MAX_QUERY: usize = 4 << 20;

/// The database, which connections take turns with, in arrival order:
/// each holds it across the awaits of a batch (an eviction may wait for
/// the disk).
struct Shared {
    turn: unikernel::sync::AsyncLock,
    db: core::cell::RefCell<Db<Cache>>,
}

impl Shared {
    fn new(db: Db<Cache>) -> Shared {
        Shared {
            turn: unikernel::sync::AsyncLock::new(),
            db: core::cell::RefCell::new(db),
        }
    }

    /// Runs `f` on the database once it is this task's turn.
    #[allow(clippy::await_holding_refcell_ref)] // The turn serialises it.
    async fn with<R>(&self, f: impl AsyncFnOnce(&mut Db<Cache>) -> R) -> R {
        let _turn = self.turn.lock().await;
        let mut db = self.db.borrow_mut();
        f(&mut db).await
    }
}

fn uptime_ms() -> u64 {
    unikernel::time::now().as_nanos() / 1_000_000
}

fn micros_since(start: unikernel::time::Instant) -> u64 {
    unikernel::time::now()
        .saturating_duration_since(start)
        .as_micros() as u64
}

pub async fn run() -> i32 {
    let cmdline = unikernel::cmdline();
    let mode = match setting(cmdline, "durability") {
        None | Some("rio") => Durability::Rio,
        Some("write-through") => Durability::WriteThrough,
        Some(other) => {
            println!("kv: unknown durability={other} (rio or write-through)");
            return 2;
        }
    };
    let port = setting(cmdline, "port").map_or(Ok(6379), str::parse::<u16>);
    let flush_every = setting(cmdline, "flush").map_or(Ok(0), str::parse::<u64>);
    let (Ok(port), Ok(flush_every), Ok(config)) =
        (port, flush_every, Config::from_cmdline(cmdline))
    else {
        println!("kv: bad command line: {cmdline}");
        return 2;
    };
    let (control, limits) = match graft_channel::tcp::settings(cmdline) {
        Ok(control) => control,
        Err(error) => {
            println!("kv: {error}");
            return 2;
        }
    };
    let Some(region) = rio::region() else {
        println!("kv: no Rio region");
        return 3;
    };
    let grafts = graft_host::image_host();
    let policies = GraftEviction::new(&grafts, Lru::default()).and_then(|eviction| {
        Ok(Policies {
            eviction,
            readahead: GraftReadAhead::new(&grafts, Sequential::default())?,
            filter: Plain,
        })
    });
    let Ok(policies) = policies else {
        println!("kv: cannot declare the cache's graft points");
        return 3;
    };
    let start = unikernel::time::now();
    let opened = match BlockDevice::open() {
        Some(disk) => Cache::open_with(region, KvDisk::Virtio(disk), mode, policies).await,
        None => {
            println!(
                "kv: no virtio-blk disk: logging to a 4 MiB RAM disk, nothing will outlive \
                 this VM (run with --disk PATH to keep the data)"
            );
            let disk = KvDisk::Ram(RamDisk::new(RAM_DISK_BLOCKS));
            Cache::create_with(region, disk, mode, policies)
                .map(|cache| (cache, Recovery::default()))
        }
    };
    let (cache, recovery) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            println!("kv: the block cache cannot open: {error:?}");
            return 3;
        }
    };
    let cache_us = micros_since(start);
    if recovery.lost_dirty > 0 {
        log::error!(target: "kv", "{} dirty blocks failed their checksum: LOST", recovery.lost_dirty);
    }
    let dirty_kib = u64::from(recovery.written_back) * 512 / 1024;
    let replay_start = unikernel::time::now();
    let (db, replay) = match Db::open(cache, uptime_ms()).await {
        Ok(opened) => opened,
        Err(error) => {
            println!("kv: the log cannot open: {error:?}");
            return 3;
        }
    };
    let replay_us = micros_since(replay_start);
    let start_kind = match recovery.start {
        Start::Recovered => "recovered",
        Start::Formatted(_) => "formatted",
    };
    let mut boot = String::new();
    let _ = write!(
        boot,
        "\r\n# Rootstock\r\nrootstock_durability:{}\r\nrootstock_warm_reboots:{}\r\n\
         rootstock_rio_address:{:#x}\r\nrootstock_cache_slots:{}\r\n\
         rootstock_cache_start:{start_kind}\r\nrootstock_recovered_blocks:{}\r\n\
         rootstock_recovered_dirty_blocks:{}\r\nrootstock_recovery_lost_blocks:{}\r\n\
         rootstock_recovery_us:{cache_us}\r\nrootstock_replay_us:{replay_us}\r\n\
         rootstock_replayed_records:{}\r\n",
        mode.name(),
        rio::warm_reboots(),
        region.address(),
        db.log().storage().slots(),
        recovery.blocks,
        recovery.written_back,
        recovery.lost_dirty,
        replay.records,
    );
    println!(
        "kv: cache {start_kind} ({} blocks, {} dirty written back = {dirty_kib} KiB, {} lost) in {cache_us} us; \
         log replayed {} records ({} keys) in {replay_us} us; durability {}; warm reboots {}",
        recovery.blocks,
        recovery.written_back,
        recovery.lost_dirty,
        replay.records,
        db.store().len(),
        mode.name(),
        rio::warm_reboots(),
    );

    let stack = match net::open::<PassAll>(config) {
        Ok(stack) => stack,
        Err(error) => {
            println!("kv: no network device: {error:?}");
            return 3;
        }
    };
    let address = stack.wait_for_address().await;
    let options = TcpOptions {
        rx_buffer: 16 * 1024,
        tx_buffer: 32 * 1024,
        backlog: 64,
        ..TcpOptions::default()
    };
    let listener = match TcpListener::bind(&stack, port, options) {
        Ok(listener) => listener,
        Err(error) => {
            println!("kv: cannot listen on port {port}: {error:?}");
            return 3;
        }
    };
    if let Some(control) = control
        && let Err(error) = graft_channel::tcp::spawn(&grafts, &stack, control, limits)
    {
        println!("kv: cannot listen for graft control on port {control}: {error:?}");
        return 3;
    }
    let mut db = db;
    db.set_info(boot, storage_info);
    let shared = Rc::new(Shared::new(db));
    if flush_every > 0 {
        task::spawn(flusher(shared.clone(), Duration::from_secs(flush_every)));
    }
    println!("kv: ready on {address}:{port}");
    loop {
        match listener.accept().await {
            Ok(stream) => {
                task::spawn(connection(stream, shared.clone()));
            }
            Err(error) => log::warn!(target: "kv", "accept: {error:?}"),
        }
    }
}

/// A failed log write is fail-stop: the warm reboot that follows brings
/// back the last acknowledged state, and no reply claims more.
fn storage_failed(error: LogError) -> ! {
    panic!("kv: writing the log failed: {error:?}")
}

async fn flusher(shared: Rc<Shared>, every: Duration) {
    loop {
        task::sleep(every).await;
        if let Err(error) = shared.with(async |db| db.save().await).await {
            storage_failed(error);
        }
    }
}

async fn connection(mut stream: TcpStream, shared: Rc<Shared>) {
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        let mut requests = Vec::new();
        let mut used = 0;
        let mut error = None;
        loop {
            match resp::parse(&input[used..]) {
                Ok(Some(request)) => {
                    used += request.consumed;
                    if !request.args.is_empty() {
                        requests.push(request.args);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(Reply::Error(e.message()));
                    break;
                }
            }
        }
        input.drain(..used);
        if error.is_none() && input.len() > MAX_QUERY {
            error = Some(Reply::error(
                "ERR Protocol error: query buffer limit reached",
            ));
        }
        let mut close = false;
        if !requests.is_empty() {
            close = execute(&shared, requests, &mut output).await;
        }
        if let Some(error) = error {
            error.encode(&mut output);
            close = true;
        }
        if !output.is_empty() && stream.write_all(&output).await.is_err() {
            break;
        }
        output.clear();
        if close {
            break;
        }
    }
    stream.shutdown();
}

/// Runs a batch of requests under the database lock, commits their log
/// records once, and encodes the replies. True: close the connection.
async fn execute(shared: &Shared, requests: Vec<Vec<Vec<u8>>>, output: &mut Vec<u8>) -> bool {
    shared
        .with(async |db| {
            let now = db.now(uptime_ms());
            let mut close = false;
            for args in requests {
                match db.execute(args, now) {
                    Action::Reply(reply) => reply.encode(output),
                    Action::Quit => {
                        Reply::ok().encode(output);
                        close = true;
                        break;
                    }
                    Action::Save => match db.save().await {
                        Ok(()) => Reply::ok().encode(output),
                        Err(error) => storage_failed(error),
                    },
                    Action::Shutdown => {
                        if let Err(error) = db.save().await {
                            storage_failed(error);
                        }
                        println!("kv: shutdown: everything is on the disk");
                        unikernel::shutdown(0);
                    }
                    Action::Fault(fault) => {
                        if let Err(error) = db.commit(now).await {
                            storage_failed(error);
                        }
                        inject(fault).encode(output);
                    }
                }
            }
            if let Err(error) = db.commit(now).await {
                storage_failed(error);
            }
            close
        })
        .await
}

fn storage_info(cache: &Cache) -> String {
    let stats = cache.stats();
    let (heap_used, heap_size) = unikernel::memory::heap::usage();
    format!(
        "used_memory:{heap_used}\r\nrootstock_heap_bytes:{heap_size}\r\n\
         rootstock_cache_hits:{}\r\nrootstock_cache_misses:{}\r\nrootstock_cache_dirty_blocks:{}\r\n\
         rootstock_cache_blocks_read:{}\r\nrootstock_cache_blocks_written:{}\r\n\
         rootstock_cache_evictions:{}\r\nrootstock_disk_blocks:{}\r\n",
        stats.hits,
        stats.misses,
        cache.dirty_blocks(),
        stats.blocks_read,
        stats.blocks_written,
        stats.evictions,
        cache.capacity_blocks(),
    )
}

/// `DEBUG PANIC` / `DEBUG WILDWRITE`.
fn inject(fault: Fault) -> Reply {
    #[cfg(feature = "fault-injection")]
    {
        match fault {
            Fault::Panic => panic!("kv: DEBUG PANIC (fault injection)"),
            Fault::WildWrite => {
                let Some(region) = rio::region() else {
                    return Reply::error("ERR no Rio region");
                };
                let target = region.address() + region.len() as u64 / 2;
                println!("kv: wild write to {target:#x} (inside the block cache)");
                unikernel::fault_injection::write_to(target);
                Reply::error("ERR the wild write did not fault: the cache is not protected")
            }
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = fault;
        Reply::error("ERR DEBUG is not available: this image was built without fault injection")
    }
}
