//! The fleet's network: network namespaces as hosts on one LAN (a bridge in
//! a namespace of its own, each host plugged into it by a veth pair),
//! addressed from 198.18.0.0/15, the benchmarking range, so that nothing of
//! it can reach a real network. One host runs HAProxy, three run an
//! echo-server each (the third also a slow one), two are load hosts.
//!
//! Everything the fleet starts is a test kit [`Process`], killed when
//! dropped, and every namespace is removed when dropped: a task that fails
//! half-way leaves nothing behind.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use echo_testkit::netns::Namespace;
use echo_testkit::{Kind, Process, Spawn};

use crate::process::{self, Bins};

/// The address the task itself has on the LAN, to watch the hosts from.
const OBSERVER: &str = "198.18.0.254";
/// The balancer's address.
pub(super) const BALANCER: &str = "198.18.0.1";
/// The port of every echo service: HAProxy's frontend, each server's framed
/// TCP listener and its UDP one.
pub(super) const ECHO_PORT: u16 = 7000;
/// HAProxy's frontend for the slow backend alone.
pub(super) const SLOW_PORT: u16 = 7001;
/// The slow backend's own port, beside the third server.
const SLOW_BACKEND_PORT: u16 = 7100;
/// Each server's admin endpoint (`/readyz`, `/metrics`), and the slow one's.
const ADMIN_PORT: u16 = 9100;
const SLOW_ADMIN_PORT: u16 = 9101;
/// How long the slow backend holds every echo back.
pub(super) const SLOW_DELAY: Duration = Duration::from_millis(20);
/// The servers' `--drain-delay`: long enough for HAProxy's checks (every
/// 100 ms, down after two failures) to take a stopping server out of
/// rotation before it stops accepting.
const DRAIN_DELAY_S: &str = "1";
/// The servers' names, as `--instance` and HAProxy know them.
pub(super) const SERVERS: [&str; 3] = ["s1", "s2", "s3"];

/// The server host `index` (from 0)'s address.
fn server_address(index: usize) -> String {
    format!("198.18.0.{}", 11 + index)
}

/// The load host `index` (from 0)'s address.
pub(super) fn client_address(index: usize) -> String {
    format!("198.18.0.{}", 21 + index)
}

/// One echo-server host and the server on it, if it runs.
struct ServerHost {
    name: &'static str,
    address: String,
    process: Option<Process>,
    namespace: Namespace,
}

/// The whole fleet, running. Processes are declared before the namespaces
/// they run in, so that they are dropped (killed) first.
pub(super) struct Fleet {
    haproxy: Process,
    /// Held so that it runs as long as the fleet, and is killed with it.
    _slow: Process,
    servers: Vec<ServerHost>,
    clients: Vec<Namespace>,
    /// Held so that it lasts as long as the fleet, and is removed with it.
    _balancer: Namespace,
    /// The LAN: the bridge's namespace, through which the task itself
    /// reaches the hosts (see [`Namespace::enter`]).
    switch: Namespace,
    bins: Bins,
    config_dir: PathBuf,
}

impl Fleet {
    /// Makes the network and starts everything on it, ready: HAProxy
    /// listening and every server up in its checks.
    pub(super) fn start(bins: Bins, load_hosts: usize, deadline: Instant) -> Result<Self> {
        // A fleet killed by a signal had no chance to remove its namespaces.
        for name in echo_testkit::netns::remove_stale()? {
            eprintln!("removed network namespace {name}, left by a run that was killed");
        }
        let switch = Namespace::new("lan")?;
        switch.add_bridge("br0")?;
        // The task's own address on the LAN, from which it reaches the hosts.
        switch.ip(["addr", "add", &format!("{OBSERVER}/24"), "dev", "br0"])?;
        let balancer = Namespace::new("lb")?;
        switch.plug(&balancer, "br0", &format!("{BALANCER}/24"))?;
        let mut servers = Vec::new();
        for (index, name) in SERVERS.into_iter().enumerate() {
            let namespace = Namespace::new(name)?;
            let address = server_address(index);
            switch.plug(&namespace, "br0", &format!("{address}/24"))?;
            servers.push(ServerHost {
                name,
                address,
                process: None,
                namespace,
            });
        }
        let mut clients = Vec::new();
        for index in 0..load_hosts {
            let namespace = Namespace::new(&format!("c{}", index + 1))?;
            switch.plug(&namespace, "br0", &format!("{}/24", client_address(index)))?;
            clients.push(namespace);
        }
        for server in &mut servers {
            server.process = Some(start_server(&bins.server, server, deadline)?);
        }
        let slow_host = servers.last().context("the fleet has servers")?;
        let slow = start_slow_server(&bins.server, slow_host, deadline)?;
        let config_dir = std::env::temp_dir().join(format!("echo-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&config_dir)?;
        let config = config_dir.join("haproxy.cfg");
        let backends: Vec<(&str, &str)> = servers
            .iter()
            .map(|server| (server.name, server.address.as_str()))
            .collect();
        std::fs::write(&config, haproxy_config(&backends, &slow_host.address))?;
        let haproxy = start_haproxy(&balancer, &config, deadline)?;
        let fleet = Self {
            haproxy,
            _slow: slow,
            servers,
            clients,
            _balancer: balancer,
            switch,
            bins,
            config_dir,
        };
        fleet.wait_listening(&SocketAddr::new(BALANCER.parse()?, ECHO_PORT), deadline)?;
        for name in SERVERS {
            fleet.wait_ready(name, deadline)?;
        }
        Ok(fleet)
    }

    /// The balancer's echo frontend.
    pub(super) fn frontend(&self) -> SocketAddr {
        SocketAddr::new(BALANCER.parse().expect("a valid address"), ECHO_PORT)
    }

    /// The balancer's frontend to the slow backend.
    pub(super) fn slow_frontend(&self) -> SocketAddr {
        SocketAddr::new(BALANCER.parse().expect("a valid address"), SLOW_PORT)
    }

    /// Server `name`'s UDP echo, reached directly (HAProxy balances TCP).
    pub(super) fn udp(&self, name: &str) -> Result<SocketAddr> {
        Ok(SocketAddr::new(
            self.host(name)?.address.parse()?,
            ECHO_PORT,
        ))
    }

    fn host(&self, name: &str) -> Result<&ServerHost> {
        self.servers
            .iter()
            .find(|server| server.name == name)
            .with_context(|| format!("no server {name}"))
    }

    fn host_mut(&mut self, name: &str) -> Result<&mut ServerHost> {
        self.servers
            .iter_mut()
            .find(|server| server.name == name)
            .with_context(|| format!("no server {name}"))
    }

    /// Load host `index` (from 0).
    pub(super) fn client(&self, index: usize) -> Result<&Namespace> {
        self.clients
            .get(index)
            .with_context(|| format!("no load host {}", index + 1))
    }

    /// `echo-client ARGS...` to be started on load host `index`.
    pub(super) fn echo_client<S: AsRef<str>>(&self, index: usize, args: &[S]) -> Result<Spawn> {
        let namespace = self.client(index)?;
        Ok(in_namespace(
            namespace,
            &self.bins.client,
            args.iter().map(|arg| arg.as_ref().to_owned()),
        ))
    }

    /// `echo-client merge FILES... --json`, on this host: its output.
    pub(super) fn merge(&self, files: &[PathBuf], deadline: Instant) -> Result<Vec<u8>> {
        let args = std::iter::once("merge".into())
            .chain(files.iter().map(|file| file.as_os_str().to_owned()))
            .chain(["--json".into()]);
        let output = process::spawn(&self.bins.client, args).run(deadline)?;
        if !output.status.success() {
            bail!("echo-client merge failed: {output}");
        }
        Ok(output.stdout)
    }

    /// Kills server `name` with SIGKILL, as a crash would.
    pub(super) fn kill(&mut self, name: &str) -> Result<()> {
        eprintln!("$ kill -9 {name}");
        let mut process = self
            .host_mut(name)?
            .process
            .take()
            .with_context(|| format!("{name} is not running"))?;
        process.kill()?;
        Ok(())
    }

    /// Stops server `name` with SIGTERM, as a rolling restart does, and
    /// waits for it to drain and exit, which must be cleanly.
    pub(super) fn stop(&mut self, name: &str, deadline: Instant) -> Result<()> {
        eprintln!("$ kill -TERM {name}");
        let mut process = self
            .host_mut(name)?
            .process
            .take()
            .with_context(|| format!("{name} is not running"))?;
        let output = process.stop(deadline)?;
        if !output.status.success() {
            bail!("{name} did not exit cleanly after SIGTERM: {output}");
        }
        Ok(())
    }

    /// Starts server `name` again and waits until it is ready (HAProxy
    /// marks it up at its next check: see [`Self::wait_haproxy`]).
    pub(super) fn restart(&mut self, name: &str, deadline: Instant) -> Result<()> {
        let bin = self.bins.server.clone();
        let host = self.host_mut(name)?;
        host.process = Some(start_server(&bin, host, deadline)?);
        self.wait_ready(name, deadline)
    }

    /// How many times HAProxy has said that server `name` went `state`
    /// (`UP` or `DOWN`).
    pub(super) fn haproxy_says(&self, name: &str, state: &str) -> usize {
        let line = format!("echo_servers/{name} is {state}");
        self.haproxy.stderr_text().matches(&line).count()
    }

    /// Waits until HAProxy has said `before + 1` times that server `name`
    /// went `state`.
    pub(super) fn wait_haproxy(
        &self,
        name: &str,
        state: &str,
        before: usize,
        deadline: Instant,
    ) -> Result<()> {
        echo_testkit::wait_until(deadline, || self.haproxy_says(name, state) > before)
            .with_context(|| format!("HAProxy never said {name} is {state}"))
    }

    /// What server `name` has logged.
    pub(super) fn server_log(&self, name: &str) -> Result<String> {
        Ok(self
            .host(name)?
            .process
            .as_ref()
            .map(Process::stderr_text)
            .unwrap_or_default())
    }

    /// The frames server `name` has echoed so far, from its `/metrics`.
    pub(super) fn frames_echoed(&self, name: &str, deadline: Instant) -> Result<u64> {
        let admin = SocketAddr::new(self.host(name)?.address.parse()?, ADMIN_PORT);
        let metrics = self.get(admin, "/metrics", deadline)?;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("echo_frames_echoed_total "))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("{name}'s /metrics has no echo_frames_echoed_total"))
    }

    /// Waits until server `name` answers `/readyz` with 200.
    fn wait_ready(&self, name: &str, deadline: Instant) -> Result<()> {
        let admin = SocketAddr::new(self.host(name)?.address.parse()?, ADMIN_PORT);
        echo_testkit::wait_until(deadline, || {
            self.get(admin, "/readyz", deadline)
                .is_ok_and(|body| body.starts_with("HTTP/1.1 200"))
        })
        .with_context(|| format!("{name} never became ready"))
    }

    /// Waits until something accepts TCP connections at `addr`.
    fn wait_listening(&self, addr: &SocketAddr, deadline: Instant) -> Result<()> {
        echo_testkit::wait_until(deadline, || {
            self.switch
                .enter(|| TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok())
                .unwrap_or(false)
        })
        .with_context(|| format!("nothing listened on {addr}"))
    }

    /// `GET path` from `addr`, from inside the LAN: the whole response.
    fn get(&self, addr: SocketAddr, path: &str, deadline: Instant) -> Result<String> {
        self.switch
            .enter(|| process::http_get(addr, path, deadline))?
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}

/// `program args...` in `namespace`, shown on stderr as typed.
fn in_namespace(
    namespace: &Namespace,
    program: &Path,
    args: impl IntoIterator<Item = String>,
) -> Spawn {
    let words = ["netns", "exec", namespace.name()]
        .map(str::to_owned)
        .into_iter()
        .chain([program.display().to_string()])
        .chain(args);
    process::spawn("ip", words)
}

/// Starts the echo-server of `host` and waits for its listeners: framed TCP
/// and UDP on the echo port, the admin endpoint; PROXY headers from the
/// balancer only, a greeting naming it, and a drain delay.
fn start_server(bin: &Path, host: &ServerHost, deadline: Instant) -> Result<Process> {
    let address = &host.address;
    let args = [
        format!("--listen={address}:{ECHO_PORT}"),
        format!("--udp={address}:{ECHO_PORT}"),
        format!("--admin={address}:{ADMIN_PORT}"),
        format!("--instance={}", host.name),
        "--greeting".to_owned(),
        "--proxy-protocol".to_owned(),
        format!("--proxy-from={BALANCER}/32"),
        format!("--drain-delay={DRAIN_DELAY_S}"),
    ];
    let process = in_namespace(&host.namespace, bin, args).start()?;
    process.listening([Kind::Framed, Kind::Udp, Kind::Admin], deadline)?;
    Ok(process)
}

/// Starts the slow backend beside the server of `host`: every echo held
/// back [`SLOW_DELAY`].
fn start_slow_server(bin: &Path, host: &ServerHost, deadline: Instant) -> Result<Process> {
    let address = &host.address;
    let args = [
        format!("--listen={address}:{SLOW_BACKEND_PORT}"),
        format!("--admin={address}:{SLOW_ADMIN_PORT}"),
        "--instance=slow".to_owned(),
        "--proxy-protocol".to_owned(),
        format!("--proxy-from={BALANCER}/32"),
        format!("--delay={}ms", SLOW_DELAY.as_millis()),
    ];
    let process = in_namespace(&host.namespace, bin, args).start()?;
    process.listening([Kind::Framed, Kind::Admin], deadline)?;
    Ok(process)
}

/// HAProxy's configuration: TCP mode; the echo frontend balanced round
/// robin over the three servers, the slow frontend to the slow backend;
/// a PROXY v2 header on every connection to a server; health checks on
/// each server's `/readyz` every 100 ms, down after two failures, up after
/// one success; a connection a server refuses tried again on another.
/// `servers` are each server's name and address.
fn haproxy_config(servers: &[(&str, &str)], slow_address: &str) -> String {
    let mut config = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  \
         timeout server 30s\n  retries 3\n  option redispatch 1\n\
         frontend echo\n  bind {BALANCER}:{ECHO_PORT}\n  default_backend echo_servers\n\
         frontend slow\n  bind {BALANCER}:{SLOW_PORT}\n  default_backend slow_server\n\
         backend echo_servers\n  balance roundrobin\n  option httpchk GET /readyz\n  \
         http-check expect status 200\n  default-server inter 100ms fall 2 rise 1\n"
    );
    for (name, address) in servers {
        let _ = writeln!(
            config,
            "  server {name} {address}:{ECHO_PORT} send-proxy-v2 check port {ADMIN_PORT}"
        );
    }
    let _ = write!(
        config,
        "backend slow_server\n  option httpchk GET /readyz\n  http-check expect status 200\n  \
         server slow {slow_address}:{SLOW_BACKEND_PORT} send-proxy-v2 check port \
         {SLOW_ADMIN_PORT} inter 100ms\n"
    );
    config
}

/// Starts HAProxy in the balancer's namespace with `config`, in the
/// foreground (`-db`), its alerts and warnings on stderr, once `haproxy -c`
/// has found the configuration valid.
fn start_haproxy(balancer: &Namespace, config: &Path, deadline: Instant) -> Result<Process> {
    let config = config.display().to_string();
    let checked = process::spawn("haproxy", ["-c", "-f", &config]).run(deadline)?;
    if !checked.status.success() {
        bail!("HAProxy refused its configuration: {checked}");
    }
    let args = ["-db", "-f", &config].map(str::to_owned);
    Ok(in_namespace(balancer, Path::new("haproxy"), args).start()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_balances_the_servers_with_proxy_v2_and_checks_their_readiness() {
        let config = haproxy_config(
            &[("s1", "198.18.0.11"), ("s2", "198.18.0.12")],
            "198.18.0.12",
        );
        for line in [
            "mode tcp",
            "option redispatch 1",
            "bind 198.18.0.1:7000",
            "bind 198.18.0.1:7001",
            "balance roundrobin",
            "option httpchk GET /readyz",
            "default-server inter 100ms fall 2 rise 1",
            "server s1 198.18.0.11:7000 send-proxy-v2 check port 9100",
            "server s2 198.18.0.12:7000 send-proxy-v2 check port 9100",
            "server slow 198.18.0.12:7100 send-proxy-v2 check port 9101 inter 100ms",
        ] {
            assert!(config.contains(line), "{line:?} is not in\n{config}");
        }
    }

    #[test]
    fn the_hosts_are_in_the_benchmarking_range() {
        let range = |address: &str| {
            let octets = address.parse::<std::net::Ipv4Addr>().unwrap().octets();
            octets[0] == 198 && (octets[1] & 0xfe) == 18
        };
        for address in [BALANCER, OBSERVER]
            .map(str::to_owned)
            .into_iter()
            .chain((0..3).map(server_address))
            .chain((0..2).map(client_address))
        {
            assert!(range(&address), "{address}");
        }
    }
}
