//! Network namespaces for tests of real networks: a [`Namespace`] of the
//! test's own, removed when dropped (also when the test fails), joined to
//! another by a veth pair ([`Namespace::link`]) or with others to a bridge,
//! as hosts on one LAN ([`Namespace::add_bridge`], [`Namespace::plug`]),
//! with programs started inside it ([`Namespace::spawn`]), sockets opened
//! from inside it ([`Namespace::enter`]) and links impaired with nftables
//! ([`Namespace::nft`]; this kernel has no netem). [`remove_stale`] removes
//! what a killed process left.
//!
//! Addresses come from 198.18.0.0/15, the range set aside for benchmarking,
//! so that test traffic never reaches a real network. Everything needs root
//! and the `ip` command (iproute2); [`unavailable`] says why a test must be
//! skipped.
//!
//! ```no_run
//! use echo_testkit::netns::{self, Namespace};
//! use echo_testkit::{Kind, deadline};
//!
//! if let Some(why) = netns::unavailable(&["nft"]) {
//!     eprintln!("SKIPPED: {why}");
//!     return Ok(());
//! }
//! let (server, client) = (Namespace::new("srv")?, Namespace::new("cli")?);
//! client.link(&server, "198.18.0.1/24", "198.18.0.2/24")?;
//! // Drop 5% of what the client sends.
//! client.nft("table inet impair {
//!   chain out {
//!     type filter hook output priority 0;
//!     numgen random mod 100 < 5 drop
//!   }
//! }")?;
//! let echo = server
//!     .spawn(echo_testkit::binary::path("echo-server")?)
//!     .args(["--listen", "198.18.0.2:0"])
//!     .start()?;
//! let [addr] = echo.listening([Kind::Framed], deadline())?;
//! # Ok::<(), echo_testkit::Error>(())
//! ```

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Error;
use crate::{Spawn, deadline};

/// Why namespace tests cannot run here, or `None` if they can: they need
/// root, the `ip` command, and each of `tools` (such as `nft`) on `PATH`.
pub fn unavailable(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("network namespaces need root".to_owned());
    }
    ["ip"]
        .iter()
        .chain(tools)
        .find(|tool| !on_path(tool))
        .map(|tool| format!("`{tool}` is not installed"))
}

/// Removes the namespaces that a process of this kit made and could not
/// remove, because it was killed (a signal runs no destructor): those whose
/// name says they belong to a process that no longer runs. Returns their
/// names.
///
/// # Errors
///
/// When `ip netns list` fails.
pub fn remove_stale() -> Result<Vec<String>, Error> {
    let listed = Spawn::new("ip").args(["netns", "list"]).run(deadline())?;
    let mut removed = Vec::new();
    for line in listed.stdout_text().lines() {
        // `NAME` or `NAME (id: N)`.
        let name = line.split_whitespace().next().unwrap_or_default();
        if owner(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            ip(["netns", "del", name])?;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

/// The process that made namespace `name`, if this kit named it:
/// `echo-ROLE-PID-N`.
fn owner(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("echo-")?.rsplit('-');
    parts.next()?.parse::<u32>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().map(|_role| pid)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A network namespace made for one test, with its loopback up; removed,
/// with its interfaces, when dropped. Drop the processes started in it
/// first (declare them after it).
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Makes a namespace whose name starts with `echo-` and `role` and is
    /// unique to this process.
    ///
    /// # Errors
    ///
    /// When `ip netns add` fails (not root, or no iproute2).
    pub fn new(role: &str) -> Result<Namespace, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "echo-{role}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(["netns", "add", &name])?;
        let namespace = Namespace { name };
        namespace.ip(["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be started inside this namespace (through `ip netns
    /// exec`, which becomes the program: its pid is the program's).
    pub fn spawn(&self, program: impl AsRef<OsStr>) -> Spawn {
        Spawn::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(program)
    }

    /// Runs `ip ARGS...` inside this namespace.
    ///
    /// # Errors
    ///
    /// When it fails; the error carries its output.
    pub fn ip<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Result<(), Error> {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|arg| arg.as_ref().into()).collect();
        ip(["-n".as_ref(), OsStr::new(&self.name)]
            .into_iter()
            .chain(args.iter().map(|arg| arg.as_os_str())))
    }

    /// Loads the nftables `ruleset` into this namespace (`nft -f -`).
    ///
    /// # Errors
    ///
    /// When `nft` refuses it; the error carries its message.
    pub fn nft(&self, ruleset: &str) -> Result<(), Error> {
        succeed(self.spawn("nft").args(["-f", "-"]).stdin(ruleset))
    }

    /// Joins this namespace to `peer` with a veth pair, `address` (such as
    /// `198.18.0.1/24`) on this side and `peer_address` on the other, both
    /// up.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn link(&self, peer: &Namespace, address: &str, peer_address: &str) -> Result<(), Error> {
        let (here, there) = (self.veth_name(peer), peer.veth_name(self));
        ip([
            "link", "add", &here, "netns", &self.name, "type", "veth", "peer", "name", &there,
            "netns", &peer.name,
        ])?;
        for (namespace, interface, address) in
            [(self, &here, address), (peer, &there, peer_address)]
        {
            namespace.ip(["addr", "add", address, "dev", interface])?;
            namespace.ip(["link", "set", interface, "up"])?;
        }
        Ok(())
    }

    /// Makes a bridge named `bridge` in this namespace, up: a switch for
    /// the namespaces [plugged](Self::plug) into it, as hosts on one LAN.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn add_bridge(&self, bridge: &str) -> Result<(), Error> {
        self.ip(["link", "add", bridge, "type", "bridge"])?;
        self.ip(["link", "set", bridge, "up"])
    }

    /// Plugs `host` into this namespace's `bridge` with a veth pair:
    /// `address` (such as `198.18.0.11/24`) on the host's side, the other
    /// side a port of the bridge.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn plug(&self, host: &Namespace, bridge: &str, address: &str) -> Result<(), Error> {
        let (port, interface) = (self.veth_name(host), host.veth_name(self));
        ip([
            "link", "add", &port, "netns", &self.name, "type", "veth", "peer", "name", &interface,
            "netns", &host.name,
        ])?;
        self.ip(["link", "set", &port, "master", bridge])?;
        self.ip(["link", "set", &port, "up"])?;
        host.ip(["addr", "add", address, "dev", &interface])?;
        host.ip(["link", "set", &interface, "up"])
    }

    /// Runs `work` on a thread of its own that has entered this namespace,
    /// and returns what it returns: sockets it opens are this namespace's,
    /// while the rest of the process stays where it was (a network
    /// namespace is a thread's, not a process's).
    ///
    /// # Errors
    ///
    /// When the namespace cannot be entered.
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, Error> {
        let failed = |source| Error::Namespace {
            name: self.name.clone(),
            source,
        };
        let namespace =
            std::fs::File::open(std::path::Path::new("/var/run/netns").join(&self.name))
                .map_err(failed)?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| failed(errno.into()))?;
                    Ok(work())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The name of this side of a veth pair to `peer`: interface names have
    /// at most 15 bytes, so it is made of the namespaces' numbers.
    pub fn veth_name(&self, peer: &Namespace) -> String {
        let number = |namespace: &Namespace| {
            namespace
                .name
                .rsplit('-')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        format!(
            "ve{}-{}-{}",
            std::process::id() % 10_000,
            number(self),
            number(peer)
        )
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Removing the namespace removes its interfaces, and a veth pair
        // goes with either end.
        if let Err(error) = ip(["netns", "del", &self.name]) {
            eprintln!(
                "warning: cannot remove network namespace {}: {error}",
                self.name
            );
        }
    }
}

/// Runs `ip ARGS...`.
fn ip<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Result<(), Error> {
    succeed(Spawn::new("ip").args(args))
}

/// Runs `spawn` to its end, which must be a success.
fn succeed(spawn: Spawn) -> Result<(), Error> {
    let output = spawn.run(deadline())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            output: output.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_namespace_is_read_from_its_name() {
        assert_eq!(owner("echo-srv-4242-0"), Some(4242));
        assert_eq!(owner("echo-c1-17-12"), Some(17));
        for other in [
            "echo-4242-0",
            "echo-srv-x-0",
            "web-srv-4242-0",
            "echo-srv-4242-",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }
}
