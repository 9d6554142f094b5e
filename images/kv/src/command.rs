//! Commands: a request's arguments checked once (name, arity, options,
//! numbers) into a [`Command`] that the database can execute without
//! further doubt. A request that is not a valid command becomes the error
//! reply Redis would send, word for word, so clients behave the same.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

type Bytes = Vec<u8>;

/// When a key set by `SET` expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Never (`SET` without options clears any TTL).
    None,
    /// After this many milliseconds (`EX` ×1000, `PX`).
    In(u64),
    /// Whatever the key had (`KEEPTTL`).
    Keep,
}

/// `SET`'s condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if it does.
    IfPresent,
}

/// What `DEBUG` may do (only with the `fault-injection` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A kernel panic.
    Panic,
    /// A write into the Rio region from outside its write routine.
    WildWrite,
}

/// A valid command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping(Option<Bytes>),
    Echo(Bytes),
    Get(Bytes),
    Set {
        key: Bytes,
        value: Bytes,
        expiry: Expiry,
        condition: Condition,
        /// `GET`: reply with the old value.
        get: bool,
    },
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
    IncrBy(Bytes, i64),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    /// `EXPIRE` (seconds ×1000) and `PEXPIRE`, in milliseconds; ≤ 0 deletes.
    Expire(Bytes, i64),
    /// `TTL` (seconds) or `PTTL` (milliseconds).
    Ttl(Bytes, bool),
    Persist(Bytes),
    DbSize,
    FlushAll,
    Info,
    ConfigGet(Vec<Bytes>),
    /// `COMMAND` and its subcommands: an empty answer (clients cope).
    CommandDocs,
    Select(i64),
    /// `CLIENT ...`, `READONLY`-style housekeeping: `+OK`.
    Ok,
    Quit,
    /// Write every dirty cached block to the disk.
    Save,
    Shutdown,
    Debug(Fault),
}

/// Why a request is not a valid command: the error reply's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError(pub String);

fn arity(name: &str) -> CommandError {
    CommandError(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn syntax() -> CommandError {
    CommandError("ERR syntax error".into())
}

fn not_integer() -> CommandError {
    CommandError("ERR value is not an integer or out of range".into())
}

/// An integer argument, as Redis reads them (no sign of `+`, no spaces).
pub fn integer(text: &[u8]) -> Option<i64> {
    let text = core::str::from_utf8(text).ok()?;
    if text.starts_with('+') || text.is_empty() || text.len() > 20 {
        return None;
    }
    text.parse().ok()
}

impl Command {
    /// Checks a request's arguments (`args[0]` is the name).
    pub fn parse(args: Vec<Bytes>) -> Result<Command, CommandError> {
        let mut rest = args.into_iter();
        let name_bytes = rest.next().unwrap_or_default();
        // Command names are short ASCII: lowercased on the stack.
        let mut lower = [0u8; 16];
        let name = match name_bytes.len() {
            len @ 1..=16 => {
                lower[..len].copy_from_slice(&name_bytes);
                lower[..len].make_ascii_lowercase();
                core::str::from_utf8(&lower[..len]).unwrap_or("")
            }
            _ => "",
        };
        let n = rest.len();
        let exactly = |count: usize| {
            if n == count { Ok(()) } else { Err(arity(name)) }
        };
        let at_least = |count: usize| {
            if n >= count { Ok(()) } else { Err(arity(name)) }
        };
        let mut next = || rest.next().unwrap_or_default();
        Ok(match name {
            "ping" if n <= 1 => Command::Ping((n == 1).then(&mut next)),
            "ping" => return Err(arity(name)),
            "echo" => exactly(1).map(|()| Command::Echo(next()))?,
            "get" => exactly(1).map(|()| Command::Get(next()))?,
            "set" => {
                at_least(2)?;
                let (key, value) = (next(), next());
                let options: Vec<Bytes> = (2..n).map(|_| next()).collect();
                parse_set(key, value, &options)?
            }
            "del" | "unlink" => {
                at_least(1).map(|()| Command::Del((0..n).map(|_| next()).collect()))?
            }
            "exists" => at_least(1).map(|()| Command::Exists((0..n).map(|_| next()).collect()))?,
            "incr" => exactly(1).map(|()| Command::IncrBy(next(), 1))?,
            "decr" => exactly(1).map(|()| Command::IncrBy(next(), -1))?,
            "incrby" | "decrby" => {
                exactly(2)?;
                let key = next();
                let by = integer(&next()).ok_or_else(not_integer)?;
                let by = if name == "decrby" {
                    by.checked_neg().ok_or_else(not_integer)?
                } else {
                    by
                };
                Command::IncrBy(key, by)
            }
            "mget" => at_least(1).map(|()| Command::MGet((0..n).map(|_| next()).collect()))?,
            "mset" => {
                if n == 0 || !n.is_multiple_of(2) {
                    return Err(arity(name));
                }
                Command::MSet((0..n / 2).map(|_| (next(), next())).collect())
            }
            "expire" | "pexpire" => {
                exactly(2)?;
                let key = next();
                let amount = integer(&next()).ok_or_else(not_integer)?;
                let ms = if name == "expire" {
                    amount.checked_mul(1000).ok_or_else(|| {
                        CommandError("ERR invalid expire time in 'expire' command".into())
                    })?
                } else {
                    amount
                };
                Command::Expire(key, ms)
            }
            "ttl" => exactly(1).map(|()| Command::Ttl(next(), false))?,
            "pttl" => exactly(1).map(|()| Command::Ttl(next(), true))?,
            "persist" => exactly(1).map(|()| Command::Persist(next()))?,
            "dbsize" => exactly(0).map(|()| Command::DbSize)?,
            "flushall" | "flushdb" if n <= 1 => Command::FlushAll,
            "info" => Command::Info,
            "config" => {
                at_least(1)?;
                let sub = String::from_utf8_lossy(&next()).to_ascii_lowercase();
                match sub.as_str() {
                    "get" if n >= 2 => Command::ConfigGet((1..n).map(|_| next()).collect()),
                    "get" => return Err(arity("config|get")),
                    "resetstat" => Command::Ok,
                    _ => {
                        return Err(CommandError(format!(
                            "ERR unknown subcommand '{sub}'. Try CONFIG HELP."
                        )));
                    }
                }
            }
            "command" => Command::CommandDocs,
            "select" => {
                exactly(1)?;
                Command::Select(integer(&next()).ok_or_else(not_integer)?)
            }
            "client" | "readwrite" | "readonly" | "reset" => Command::Ok,
            "quit" => Command::Quit,
            "save" | "bgsave" => Command::Save,
            "shutdown" => Command::Shutdown,
            "debug" => {
                exactly(1)?;
                let sub = String::from_utf8_lossy(&next()).to_ascii_lowercase();
                match sub.as_str() {
                    "panic" | "segfault" => Command::Debug(Fault::Panic),
                    "wildwrite" => Command::Debug(Fault::WildWrite),
                    _ => {
                        return Err(CommandError(format!(
                            "ERR unknown DEBUG subcommand '{sub}'"
                        )));
                    }
                }
            }
            _ => return Err(unknown(&name_bytes, &mut rest_of(&mut next, n))),
        })
    }

    /// Whether the command changes data (and so needs room in the log).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Del(_)
                | Command::IncrBy(..)
                | Command::MSet(_)
                | Command::Expire(..)
                | Command::Persist(_)
                | Command::FlushAll
        )
    }
}

fn rest_of(next: &mut impl FnMut() -> Bytes, n: usize) -> Vec<Bytes> {
    (0..n.min(4)).map(|_| next()).collect()
}

fn unknown(name: &[u8], args: &mut [Bytes]) -> CommandError {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    for arg in args.iter() {
        text.push_str(&format!(
            "'{}' ",
            String::from_utf8_lossy(&arg[..arg.len().min(128)])
        ));
    }
    CommandError(text)
}

fn parse_set(key: Bytes, value: Bytes, options: &[Bytes]) -> Result<Command, CommandError> {
    let mut expiry = Expiry::None;
    let mut condition = Condition::Always;
    let mut get = false;
    let mut i = 0;
    while i < options.len() {
        let option = String::from_utf8_lossy(&options[i]).to_ascii_lowercase();
        match option.as_str() {
            "nx" if condition == Condition::Always => condition = Condition::IfAbsent,
            "xx" if condition == Condition::Always => condition = Condition::IfPresent,
            "get" => get = true,
            "keepttl" if expiry == Expiry::None => expiry = Expiry::Keep,
            "ex" | "px" if expiry == Expiry::None && i + 1 < options.len() => {
                i += 1;
                let amount = integer(&options[i]).ok_or_else(not_integer)?;
                let scale = if option == "ex" { 1000 } else { 1 };
                let ms = amount
                    .checked_mul(scale)
                    .filter(|&ms| amount > 0 && ms > 0)
                    .ok_or_else(|| {
                        CommandError("ERR invalid expire time in 'set' command".into())
                    })?;
                expiry = Expiry::In(ms as u64);
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    Ok(Command::Set {
        key,
        value,
        expiry,
        condition,
        get,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn parse(words: &str) -> Result<Command, CommandError> {
        Command::parse(words.split(' ').map(|w| w.as_bytes().to_vec()).collect())
    }

    fn error(words: &str) -> String {
        parse(words).unwrap_err().0
    }

    #[test]
    fn set_options() {
        assert_eq!(
            parse("set k v EX 10 NX").unwrap(),
            Command::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expiry: Expiry::In(10_000),
                condition: Condition::IfAbsent,
                get: false,
            }
        );
        assert!(matches!(
            parse("SET k v px 5 xx get").unwrap(),
            Command::Set {
                expiry: Expiry::In(5),
                condition: Condition::IfPresent,
                get: true,
                ..
            }
        ));
        assert!(matches!(
            parse("set k v keepttl").unwrap(),
            Command::Set {
                expiry: Expiry::Keep,
                ..
            }
        ));
        assert_eq!(error("set k v nx xx"), "ERR syntax error");
        assert_eq!(error("set k v ex 1 px 1"), "ERR syntax error");
        assert_eq!(error("set k v ex"), "ERR syntax error");
        assert_eq!(
            error("set k v ex ten"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            error("set k v ex 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("set k v ex -1"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("set k"),
            "ERR wrong number of arguments for 'set' command"
        );
    }

    #[test]
    fn counters_and_lists_of_keys() {
        assert_eq!(parse("incr n").unwrap(), Command::IncrBy(b"n".to_vec(), 1));
        assert_eq!(
            parse("DECRBY n 5").unwrap(),
            Command::IncrBy(b"n".to_vec(), -5)
        );
        assert_eq!(
            error("decrby n -9223372036854775808"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            error("incrby n 1.5"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            parse("mset a 1 b 2").unwrap(),
            Command::MSet(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ])
        );
        assert_eq!(
            error("mset a 1 b"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            parse("del a b").unwrap(),
            Command::Del(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(
            parse("expire k 2").unwrap(),
            Command::Expire(b"k".to_vec(), 2000)
        );
        assert_eq!(parse("pttl k").unwrap(), Command::Ttl(b"k".to_vec(), true));
    }

    #[test]
    fn housekeeping_and_unknown_commands() {
        assert_eq!(parse("PING").unwrap(), Command::Ping(None));
        assert_eq!(
            parse("ping hi").unwrap(),
            Command::Ping(Some(b"hi".to_vec()))
        );
        assert_eq!(
            error("ping a b"),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(
            parse("CONFIG GET save").unwrap(),
            Command::ConfigGet(vec![b"save".to_vec()])
        );
        assert_eq!(parse("dbsize").unwrap(), Command::DbSize);
        assert_eq!(
            error("frobnicate x y"),
            "ERR unknown command 'frobnicate', with args beginning with: 'x' 'y' "
        );
        assert_eq!(
            parse("debug wildwrite").unwrap(),
            Command::Debug(Fault::WildWrite)
        );
        assert!(parse("set k v").unwrap().writes());
        assert!(!parse("get k").unwrap().writes());
    }
}
