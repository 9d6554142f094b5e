//! The soak's graft churn: load, replace and unload through both images'
//! control channels, in a fixed cycle of [`STEPS`], with hostile modules
//! that the image must abort and unload by itself and modules it must
//! refuse. Every module is compiled once; every envelope is sealed afresh
//! (a new sequence number), as `cargo xtask graft` would seal it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::graft_client::{Client, Reply};
use crate::hostile::{HOSTILE, REFUSED};

/// How long a hostile graft may stay installed once loaded (it is called
/// on the next frame, which the steady load sends at once).
const CONTAINED_WITHIN: Duration = Duration::from_secs(60);

/// Which image a step talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    Http,
    Kv,
}

/// One operation of the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Load the packet filter on `net.rx`.
    LoadFilter,
    /// Replace it with a fresh copy.
    ReplaceFilter,
    UnloadFilter,
    /// Load the next hostile module on `net.rx`; the image must abort it
    /// and unload it by itself.
    LoadHostile,
    /// Load the next module that breaks the point's rules; refused.
    LoadRefused,
    /// Load `keep-hot` on `cache.evict`.
    LoadEvict,
    ReplaceEvict,
    UnloadEvict,
    /// Load `strided-readahead` on `cache.readahead`.
    LoadReadahead,
    UnloadReadahead,
}

/// One cycle, the two images in turn; at its end no graft is installed.
const STEPS: [Step; 10] = [
    Step::LoadFilter,
    Step::LoadEvict,
    Step::ReplaceFilter,
    Step::ReplaceEvict,
    Step::UnloadFilter,
    Step::UnloadEvict,
    Step::LoadHostile,
    Step::LoadReadahead,
    Step::LoadRefused,
    Step::UnloadReadahead,
];

/// Operations per cycle.
pub const CYCLE: usize = STEPS.len();

/// A module compiled for the images, with the point and grant it is
/// sealed for.
struct Module {
    name: String,
    point: &'static str,
    grant: &'static str,
    artifact: Vec<u8>,
}

impl Module {
    fn compile(
        name: &str,
        point: &'static str,
        grant: &'static str,
        wasm: &[u8],
    ) -> anyhow::Result<Module> {
        Ok(Module {
            name: name.to_string(),
            point,
            grant,
            artifact: crate::keys::compile(wasm).with_context(|| format!("compiling {name}"))?,
        })
    }

    fn sample(name: &str, point: &'static str, grant: &'static str) -> anyhow::Result<Module> {
        Module::compile(name, point, grant, &crate::grafts::sample(name)?)
    }

    fn envelope(&self) -> anyhow::Result<Vec<u8>> {
        crate::keys::seal_compiled(self.point, self.grant, &self.artifact)
    }
}

/// What the churn has done, for the report.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub loads: u64,
    pub replaces: u64,
    pub unloads: u64,
    /// Hostile modules loaded, then aborted and unloaded by the image.
    pub contained: u64,
    /// Of those, the ones stopped by a CPU exception in their code (whose
    /// instance the runtime abandons rather than drop mid-call).
    pub cpu_faults: u64,
    /// Modules refused at load, as they must be.
    pub refused: u64,
    /// Operations whose outcome was not the expected one.
    pub errors: Vec<String>,
}

/// One image's control session, reconnected after a transport failure.
struct Session {
    addr: String,
    client: Option<Client>,
}

impl Session {
    fn request(
        &mut self,
        send: impl FnOnce(&mut Client) -> anyhow::Result<Reply>,
    ) -> anyhow::Result<Reply> {
        let client = match &mut self.client {
            Some(client) => client,
            None => self.client.insert(Client::connect(&self.addr)?),
        };
        let reply = send(client);
        if reply.is_err() {
            self.client = None;
        }
        reply
    }
}

/// The churn's state: sessions, modules, the graft installed per point.
pub struct Churn {
    http: Session,
    kv: Session,
    filter: Module,
    evict: Module,
    readahead: Module,
    hostile: Vec<(Module, &'static str)>,
    refused: Vec<(Module, &'static str)>,
    next: usize,
    installed: [Option<u32>; 3],
    pub counts: Counts,
}

impl Churn {
    /// Compiles every module; `http` and `kv` are the control addresses.
    pub fn new(http: String, kv: String) -> anyhow::Result<Churn> {
        let mut hostile = Vec::new();
        for h in HOSTILE {
            let artifact = h.artifact()?;
            hostile.push((
                Module {
                    name: h.name.to_string(),
                    point: "net.rx",
                    grant: crate::hostile::ALL,
                    artifact,
                },
                h.cause,
            ));
        }
        hostile.push((
            Module::sample("hostile-spin", "net.rx", "")?,
            "fuel-exhausted",
        ));
        hostile.push((
            Module::sample("hostile-partial", "net.rx", "counters,maps")?,
            "trap-unreachable",
        ));
        let refused = REFUSED
            .iter()
            .map(|r| {
                Ok((
                    Module::compile(r.name, "net.rx", r.grant, &r.module()?)?,
                    r.reason,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Churn {
            http: Session {
                addr: http,
                client: None,
            },
            kv: Session {
                addr: kv,
                client: None,
            },
            filter: Module::sample("packet-filter", "net.rx", "context,counters")?,
            evict: Module::sample("keep-hot", "cache.evict", "context")?,
            readahead: Module::sample("strided-readahead", "cache.readahead", "maps")?,
            hostile,
            refused,
            next: 0,
            installed: [None; 3],
            counts: Counts::default(),
        })
    }

    /// Operations done so far.
    pub fn done(&self) -> usize {
        self.next
    }

    /// Whether the next operation starts a cycle (no graft installed).
    pub fn at_cycle_start(&self) -> bool {
        self.next.is_multiple_of(CYCLE)
    }

    /// Grafts this churn has installed in `image` now.
    pub fn installed(&self, image: Image) -> usize {
        let slots: &[usize] = match image {
            Image::Http => &[0],
            Image::Kv => &[1, 2],
        };
        slots
            .iter()
            .filter(|&&s| self.installed[s].is_some())
            .count()
    }

    /// `kv` rebooted: its grafts are gone and its session is dead.
    pub fn kv_rebooted(&mut self) {
        self.kv.client = None;
        self.installed[1] = None;
        self.installed[2] = None;
    }

    /// Runs the next operation of the cycle; an unexpected outcome is
    /// counted in [`Counts::errors`] and the point cleared, so that the
    /// next cycle starts clean.
    pub fn step(&mut self) {
        let step = STEPS[self.next % CYCLE];
        let cycle = self.next / CYCLE;
        self.next += 1;
        if let Err(e) = self.run(step, cycle) {
            self.counts
                .errors
                .push(format!("operation {} ({step:?}): {e:#}", self.next));
            let _ = self.clear();
        }
    }

    fn run(&mut self, step: Step, cycle: usize) -> anyhow::Result<()> {
        match step {
            Step::LoadFilter => self.load(0, Which::Filter),
            Step::LoadEvict => self.load(1, Which::Evict),
            Step::LoadReadahead => self.load(2, Which::Readahead),
            Step::ReplaceFilter => self.replace(0, Which::Filter),
            Step::ReplaceEvict => self.replace(1, Which::Evict),
            Step::UnloadFilter => self.unload(0),
            Step::UnloadEvict => self.unload(1),
            Step::UnloadReadahead => self.unload(2),
            Step::LoadHostile => self.hostile(cycle % self.hostile.len()),
            Step::LoadRefused => self.refused(cycle % self.refused.len()),
        }
    }

    fn module(&self, which: Which) -> &Module {
        match which {
            Which::Filter => &self.filter,
            Which::Evict => &self.evict,
            Which::Readahead => &self.readahead,
        }
    }

    fn session(&mut self, slot: usize) -> &mut Session {
        if slot == 0 {
            &mut self.http
        } else {
            &mut self.kv
        }
    }

    fn load(&mut self, slot: usize, which: Which) -> anyhow::Result<()> {
        let module = self.module(which);
        let (point, envelope) = (module.point, module.envelope()?);
        let reply = self
            .session(slot)
            .request(|c| c.load(point, &envelope))?
            .json()?;
        self.installed[slot] = Some(graft_id(&reply)?);
        self.counts.loads += 1;
        Ok(())
    }

    fn replace(&mut self, slot: usize, which: Which) -> anyhow::Result<()> {
        let old = self.installed[slot].context("nothing installed to replace")?;
        let module = self.module(which);
        let (point, envelope) = (module.point, module.envelope()?);
        let reply = self
            .session(slot)
            .request(|c| c.replace(point, old, &envelope))?
            .json()?;
        self.installed[slot] = Some(graft_id(&reply)?);
        self.counts.replaces += 1;
        Ok(())
    }

    fn unload(&mut self, slot: usize) -> anyhow::Result<()> {
        let id = self.installed[slot]
            .take()
            .context("nothing installed to unload")?;
        let point = ["net.rx", "cache.evict", "cache.readahead"][slot];
        self.session(slot)
            .request(|c| c.unload(point, id))?
            .json()?;
        self.counts.unloads += 1;
        Ok(())
    }

    /// Loads hostile module `i` and waits until the image has aborted and
    /// unloaded it, with the right cause in its fault log.
    fn hostile(&mut self, i: usize) -> anyhow::Result<()> {
        let (module, cause) = &self.hostile[i];
        let (name, cause, envelope) = (module.name.clone(), *cause, module.envelope()?);
        let reply = self.http.request(|c| c.load("net.rx", &envelope))?.json()?;
        let id = graft_id(&reply)?;
        let start = Instant::now();
        loop {
            let list = self.http.request(Client::list)?.json()?;
            let present = list["grafts"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["id"].as_u64() == Some(u64::from(id))));
            if !present {
                break;
            }
            if start.elapsed() > CONTAINED_WITHIN {
                bail!(
                    "hostile module {name} (graft {id}) still installed after {CONTAINED_WITHIN:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.http.request(Client::log)?.json()?;
        let fault = log["faults"]
            .as_array()
            .and_then(|f| {
                f.iter()
                    .rfind(|f| f["graft"].as_u64() == Some(u64::from(id)))
            })
            .with_context(|| {
                format!("hostile module {name} (graft {id}) left no fault in the log")
            })?;
        if fault["cause"] != cause || fault["action"] != "unloaded" {
            bail!(
                "hostile module {name}: expected cause {cause} and unloaded, the log says {fault}"
            );
        }
        self.counts.contained += 1;
        self.counts.cpu_faults += u64::from(cause == "cpu-fault");
        Ok(())
    }

    /// Loads refused module `i`; the image must refuse it for its reason.
    fn refused(&mut self, i: usize) -> anyhow::Result<()> {
        let (module, reason) = &self.refused[i];
        let (name, reason, envelope) = (module.name.clone(), *reason, module.envelope()?);
        match self.http.request(|c| c.load("net.rx", &envelope))? {
            Reply::Err(message) if message.contains(reason) => {
                self.counts.refused += 1;
                Ok(())
            }
            Reply::Err(message) => bail!("{name} refused, but for {message:?}"),
            Reply::Ok(text) => bail!("{name} was accepted: {text}"),
        }
    }

    /// Unloads whatever is installed in both images (after a failure).
    fn clear(&mut self) -> anyhow::Result<()> {
        self.installed = [None; 3];
        for slot in [0, 1] {
            let list = self.session(slot).request(Client::list)?.json()?;
            for graft in list["grafts"].as_array().into_iter().flatten() {
                let (Some(point), Some(id)) = (graft["point"].as_str(), graft["id"].as_u64())
                else {
                    continue;
                };
                let point = point.to_string();
                self.session(slot)
                    .request(|c| c.unload(&point, id as u32))?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Which {
    Filter,
    Evict,
    Readahead,
}

fn graft_id(reply: &Value) -> anyhow::Result<u32> {
    reply["graft"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .with_context(|| format!("no graft id in {reply}"))
}
