//! The database: commands executed against the keyspace, every change
//! staged in the log before it is visible, and committed (by the server,
//! once per batch of pipelined commands) before any reply goes out.
//!
//! Time is the database's own clock, in milliseconds: the latest time in
//! the log plus the uptime of this boot. Expiry times are absolute on that
//! clock, so they survive restarts; the clock does not run while the
//! server is down (a TTL counts serving time). A key found expired is
//! deleted through the log, as Redis propagates expiries.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::command::{Command, Condition, Expiry, Fault, integer};
use crate::log::{Blocks, Log, LogError, Replay};
use crate::record::Op;
use crate::resp::{MAX_BULK, Reply};
use crate::store::Store;

/// What the server must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Reply(Reply),
    /// Reply `+OK` and close the connection.
    Quit,
    /// Make everything durable on the disk, then reply `+OK`.
    Save,
    /// Make everything durable, then stop the image.
    Shutdown,
    /// Crash on purpose (fault injection).
    Fault(Fault),
}

/// Counters for `INFO`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub commands: u64,
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
}

/// The database over storage `S`.
pub struct Db<S> {
    store: Store,
    log: Log<S>,
    /// Database time at uptime 0 of this boot.
    base_ms: u64,
    stats: Stats,
    /// Extra `INFO` text: fixed facts, and a description of the storage.
    boot_info: String,
    describe: Option<fn(&S) -> String>,
}

fn disk_full() -> Reply {
    Reply::error("ERR disk full: the log has no room for this write")
}

impl<S: Blocks> Db<S> {
    /// Opens the log on `storage` and rebuilds the keyspace from it.
    pub async fn open(storage: S, uptime_ms: u64) -> Result<(Db<S>, Replay), LogError> {
        let mut store = Store::default();
        let (log, replay) = Log::open(storage, |record| {
            for op in record.ops {
                store.apply(op);
            }
        })
        .await?;
        let base_ms = (replay.last_time_ms + 1).saturating_sub(uptime_ms);
        let db = Db {
            store,
            log,
            base_ms,
            stats: Stats::default(),
            boot_info: String::new(),
            describe: None,
        };
        Ok((db, replay))
    }

    /// The database clock at this boot's `uptime_ms`.
    pub fn now(&self, uptime_ms: u64) -> u64 {
        self.base_ms + uptime_ms
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn log(&self) -> &Log<S> {
        &self.log
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Adds to `INFO`: `boot` as is, and what `describe` says about the
    /// storage at the time.
    pub fn set_info(&mut self, boot: String, describe: fn(&S) -> String) {
        self.boot_info = boot;
        self.describe = Some(describe);
    }

    /// Stages `ops` as one record and applies them, or refuses if the log
    /// has no room.
    fn change(&mut self, now: u64, ops: Vec<Op>) -> Result<(), Reply> {
        if Log::<S>::record_len(&ops) > self.log.room() {
            return Err(disk_full());
        }
        self.log.stage(now, &ops);
        for op in ops {
            self.store.apply(op);
        }
        Ok(())
    }

    /// [`Db::change`] for one op (no list to allocate).
    fn change_one(&mut self, now: u64, op: Op) -> Result<(), Reply> {
        let ops = core::slice::from_ref(&op);
        if Log::<S>::record_len(ops) > self.log.room() {
            return Err(disk_full());
        }
        self.log.stage(now, ops);
        self.store.apply(op);
        Ok(())
    }

    /// The live value of `key`; an expired one is deleted on the way.
    fn lookup(&mut self, key: &[u8], now: u64) -> Option<&[u8]> {
        if self.store.get(key)?.expired(now) {
            self.stats.expired += 1;
            // Best effort: with no room, replay expires it by time anyway.
            let _ = self.change_one(now, Op::Del(key.to_vec()));
            return None;
        }
        self.store.get(key).map(|e| e.value.as_slice())
    }

    /// Executes one request's arguments at database time `now`.
    pub fn execute(&mut self, args: Vec<Vec<u8>>, now: u64) -> Action {
        self.stats.commands += 1;
        match Command::parse(args) {
            Ok(command) => self.run(command, now),
            Err(error) => Action::Reply(Reply::Error(error.0)),
        }
    }

    fn run(&mut self, command: Command, now: u64) -> Action {
        let reply = match command {
            Command::Ping(None) => Reply::Simple("PONG"),
            Command::Ping(Some(text)) | Command::Echo(text) => Reply::Bulk(text),
            Command::Get(key) => {
                let found = self.lookup(&key, now).map(<[u8]>::to_vec);
                match found {
                    Some(value) => {
                        self.stats.hits += 1;
                        Reply::Bulk(value)
                    }
                    None => {
                        self.stats.misses += 1;
                        Reply::Nil
                    }
                }
            }
            Command::Set {
                key,
                value,
                expiry,
                condition,
                get,
            } => self.set(key, value, expiry, condition, get, now),
            Command::Del(keys) => {
                let present: Vec<Vec<u8>> = dedup(keys)
                    .into_iter()
                    .filter(|k| self.lookup(k, now).is_some())
                    .collect();
                let count = present.len() as i64;
                let ops: Vec<Op> = present.into_iter().map(Op::Del).collect();
                match ops.is_empty() || self.change(now, ops).is_ok() {
                    true => Reply::Integer(count),
                    false => disk_full(),
                }
            }
            Command::Exists(keys) => {
                let count = keys
                    .iter()
                    .filter(|k| self.lookup(k, now).is_some())
                    .count();
                Reply::Integer(count as i64)
            }
            Command::IncrBy(key, by) => self.incr_by(key, by, now),
            Command::MGet(keys) => Reply::Array(
                keys.iter()
                    .map(|k| {
                        self.lookup(k, now)
                            .map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec()))
                    })
                    .collect(),
            ),
            Command::MSet(pairs) => {
                let ops: Vec<Op> = pairs
                    .into_iter()
                    .map(|(key, value)| Op::Set {
                        key,
                        value,
                        expires_at: None,
                    })
                    .collect();
                self.change(now, ops).map_or_else(|e| e, |()| Reply::ok())
            }
            Command::Expire(key, ms) => {
                if self.lookup(&key, now).is_none() {
                    Reply::Integer(0)
                } else if ms <= 0 {
                    self.change_one(now, Op::Del(key))
                        .map_or_else(|e| e, |()| Reply::Integer(1))
                } else {
                    match now.checked_add(ms as u64) {
                        Some(at) => self
                            .change_one(now, Op::Expire(key, Some(at)))
                            .map_or_else(|e| e, |()| Reply::Integer(1)),
                        None => Reply::error("ERR invalid expire time in 'expire' command"),
                    }
                }
            }
            Command::Ttl(key, millis) => {
                let _ = self.lookup(&key, now);
                match self.store.get(&key).map(|e| e.expires_at) {
                    None => Reply::Integer(-2),
                    Some(None) => Reply::Integer(-1),
                    Some(Some(at)) => {
                        let left = at.saturating_sub(now);
                        Reply::Integer(if millis { left } else { (left + 500) / 1000 } as i64)
                    }
                }
            }
            Command::Persist(key) => match self.lookup(&key, now).map(|_| ()) {
                Some(()) if self.store.get(&key).is_some_and(|e| e.expires_at.is_some()) => self
                    .change_one(now, Op::Expire(key, None))
                    .map_or_else(|e| e, |()| Reply::Integer(1)),
                _ => Reply::Integer(0),
            },
            Command::DbSize => {
                for key in self.store.expired_keys(now, usize::MAX) {
                    let _ = self.lookup(&key, now);
                }
                Reply::Integer(self.store.len() as i64)
            }
            Command::FlushAll => self
                .change_one(now, Op::FlushAll)
                .map_or_else(|e| e, |()| Reply::ok()),
            Command::Info => Reply::Bulk(self.info(now).into_bytes()),
            Command::ConfigGet(patterns) => config_get(&patterns),
            Command::CommandDocs => Reply::Array(Vec::new()),
            Command::Select(0) | Command::Ok => Reply::ok(),
            Command::Select(_) => Reply::error("ERR DB index is out of range"),
            Command::Quit => return Action::Quit,
            Command::Save => return Action::Save,
            Command::Shutdown => return Action::Shutdown,
            Command::Debug(fault) => return Action::Fault(fault),
        };
        Action::Reply(reply)
    }

    fn set(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        expiry: Expiry,
        condition: Condition,
        get: bool,
        now: u64,
    ) -> Reply {
        let present = self.lookup(&key, now).is_some();
        let old = match get {
            true => self
                .store
                .get(&key)
                .filter(|_| present)
                .map(|e| e.value.clone()),
            false => None,
        };
        let answer = |old: Option<Vec<u8>>, done: bool| match (get, done) {
            (true, _) => old.map_or(Reply::Nil, Reply::Bulk),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Nil,
        };
        let allowed = match condition {
            Condition::Always => true,
            Condition::IfAbsent => !present,
            Condition::IfPresent => present,
        };
        if !allowed {
            return answer(old, false);
        }
        let expires_at = match expiry {
            Expiry::None => None,
            Expiry::Keep => self.store.get(&key).and_then(|e| e.expires_at),
            Expiry::In(ms) => match now.checked_add(ms) {
                Some(at) => Some(at),
                None => return Reply::error("ERR invalid expire time in 'set' command"),
            },
        };
        let op = Op::Set {
            key,
            value,
            expires_at,
        };
        match self.change_one(now, op) {
            Ok(()) => answer(old, true),
            Err(error) => error,
        }
    }

    fn incr_by(&mut self, key: Vec<u8>, by: i64, now: u64) -> Reply {
        let current = match self.lookup(&key, now) {
            None => 0,
            Some(text) => match integer(text) {
                Some(n) => n,
                None => return Reply::error("ERR value is not an integer or out of range"),
            },
        };
        let Some(next) = current.checked_add(by) else {
            return Reply::error("ERR increment or decrement would overflow");
        };
        let expires_at = self.store.get(&key).and_then(|e| e.expires_at);
        let op = Op::Set {
            key,
            value: format!("{next}").into_bytes(),
            expires_at,
        };
        self.change_one(now, op)
            .map_or_else(|e| e, |()| Reply::Integer(next))
    }

    /// Writes the staged changes (and compacts the log when it pays).
    /// Replies to the commands executed so far may go out once this
    /// returns `Ok`.
    pub async fn commit(&mut self, now: u64) -> Result<(), LogError> {
        self.log.commit().await?;
        if self.log.should_compact(self.store.live_bytes()) {
            match self.log.compact(now, self.store.snapshot(now)).await {
                Ok(()) => log::info!(target: "kv", "log compacted to {} bytes", self.log.len()),
                Err(LogError::Full) => log::warn!(target: "kv", "compaction: live data too big"),
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Makes everything durable on the disk.
    pub async fn save(&mut self) -> Result<(), LogError> {
        self.log.sync().await
    }

    /// The `INFO` text's sections about the data.
    pub fn info(&self, now: u64) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "# Server\r\nredis_version:7.0.0\r\nrootstock_image:kv\r\nredis_mode:standalone\r\n\
             os:Rootstock\r\narch_bits:64\r\ntcp_port:6379\r\n\r\n\
             # Stats\r\ntotal_commands_processed:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\
             expired_keys:{}\r\n\r\n\
             # Persistence\r\nrootstock_log_bytes:{}\r\nrootstock_log_compactions:{}\r\n\
             rootstock_clock_ms:{now}\r\n\r\n\
             # Keyspace\r\ndb0:keys={},expires={},avg_ttl=0\r\n",
            self.stats.commands,
            self.stats.hits,
            self.stats.misses,
            self.stats.expired,
            self.log.len(),
            self.log.compactions(),
            self.store.len(),
            self.store.expiring(),
        );
        text.push_str(&self.boot_info);
        if let Some(describe) = self.describe {
            text.push_str(&describe(self.log.storage()));
        }
        text
    }
}

fn dedup(mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort();
    keys.dedup();
    keys
}

/// `CONFIG GET`: the few parameters clients ask about, matched by glob.
fn config_get(patterns: &[Vec<u8>]) -> Reply {
    let max_bulk = format!("{MAX_BULK}");
    let parameters: [(&str, &str); 7] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("databases", "1"),
        ("maxmemory", "0"),
        ("port", "6379"),
        ("proto-max-bulk-len", &max_bulk),
    ];
    let mut items = Vec::new();
    for (name, value) in parameters {
        if patterns
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), name.as_bytes()))
        {
            items.push(Reply::Bulk(name.into()));
            items.push(Reply::Bulk(value.into()));
        }
    }
    Reply::Array(items)
}

/// `*` and `?` glob matching (iterative: linear in practice, never
/// exponential, whatever the pattern).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}
