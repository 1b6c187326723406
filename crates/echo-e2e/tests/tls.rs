//! The server's TLS listener from outside: independent TLS stacks
//! (`openssl s_client`, Python's `ssl`) against the real binary, its usage
//! and file errors, and SIGHUP reloading its certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use echo_e2e::{client, find_on_path, start_server};
use echo_testkit::certs::{Ca, CertDir, Issued};
use echo_testkit::{Kind, Pipe, Process, Signal, Spawn, deadline};

/// Says on the terminal, past the harness's capture, that `test` did not
/// run for want of `tool`.
fn skipped(test: &str, tool: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {tool} is not on PATH");
}

/// A certificate for 127.0.0.1 and its files, written where the server
/// reads them.
struct Files {
    dir: CertDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn new(issued: &Issued) -> Files {
        let dir = CertDir::new().unwrap();
        let cert = dir.write("cert.pem", &issued.chain_pem()).unwrap();
        let key = dir.write("key.pem", &issued.key_pem).unwrap();
        let ca = dir.write("ca.pem", &issued.ca_pem).unwrap();
        Files { dir, cert, key, ca }
    }

    /// The server's TLS arguments.
    fn args(&self) -> Vec<String> {
        [
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            path(&self.cert),
            "--tls-key",
            path(&self.key),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Starts the server in raw mode with TLS and these extra arguments.
fn raw_tls_server(files: &Files, extra: &[&str]) -> (Process, std::net::SocketAddr) {
    let mut args = vec!["--mode".to_owned(), "raw".to_owned()];
    args.extend(files.args());
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, [_, tls]) = start_server(&args, [Kind::Raw, Kind::RawTls], deadline()).unwrap();
    (server, tls)
}

/// Runs `openssl s_client` against `addr`, verifying the server against
/// `ca` for the name 127.0.0.1, sends `line` and waits for its echo: the
/// process is left running (-ign_eof keeps it reading after its input ends)
/// and killed when dropped.
fn s_client_echo(
    openssl: &Path,
    addr: std::net::SocketAddr,
    ca: &Path,
    extra: &[&str],
    line: &str,
    deadline: Instant,
) -> Result<Process, echo_testkit::Error> {
    let client = Spawn::new(openssl)
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-CAfile",
            path(ca),
        ])
        .args([
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-quiet",
            "-ign_eof",
        ])
        .args(extra)
        .stdin(format!("{line}\n"))
        .start()?;
    client.wait_for_line(Pipe::Stdout, deadline, |echoed| echoed == line)?;
    Ok(client)
}

#[test]
fn openssl_s_client_gets_its_echo_over_tls_1_2_and_1_3() {
    let Some(openssl) = find_on_path("openssl") else {
        return skipped(
            "openssl_s_client_gets_its_echo_over_tls_1_2_and_1_3",
            "openssl",
        );
    };
    let files = Files::new(&Ca::new("e2e CA").issue("127.0.0.1"));
    let (server, addr) = raw_tls_server(&files, &[]);
    for version in ["-tls1_2", "-tls1_3"] {
        let line = format!("hello over {version}");
        s_client_echo(&openssl, addr, &files.ca, &[version], &line, deadline()).unwrap();
    }
    // The logs are written by a thread of their own: wait for the lines.
    for version in [r#"tls="TLSv1_2""#, r#"tls="TLSv1_3""#] {
        server
            .wait_for_line(Pipe::Stderr, deadline(), |line| line.contains(version))
            .unwrap();
    }
}

#[test]
fn openssl_s_client_with_a_client_certificate_is_served_and_its_subject_logged() {
    let Some(openssl) = find_on_path("openssl") else {
        return skipped(
            "openssl_s_client_with_a_client_certificate_is_served_and_its_subject_logged",
            "openssl",
        );
    };
    let files = Files::new(&Ca::new("e2e CA").issue("127.0.0.1"));
    let clients = Ca::new("client CA");
    let alice = clients.issue("alice");
    let client_ca = files.dir.write("client-ca.pem", &clients.cert_pem).unwrap();
    let alice_cert = files.dir.write("alice.pem", &alice.cert_pem).unwrap();
    let alice_key = files.dir.write("alice-key.pem", &alice.key_pem).unwrap();
    let (server, addr) = raw_tls_server(&files, &["--tls-client-ca", path(&client_ca)]);
    s_client_echo(
        &openssl,
        addr,
        &files.ca,
        &["-cert", path(&alice_cert), "-key", path(&alice_key)],
        "from alice",
        deadline(),
    )
    .unwrap();
    server
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("connection opened") && line.contains("CN=alice")
        })
        .unwrap();
    // Without a certificate there is no echo: the server refuses it.
    let refused = s_client_echo(
        &openssl,
        addr,
        &files.ca,
        &[],
        "from nobody",
        Instant::now() + std::time::Duration::from_secs(5),
    );
    assert!(
        refused.is_err(),
        "a client without a certificate was echoed"
    );
    server
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("TLS handshake failed")
        })
        .unwrap();
}

#[test]
fn python_ssl_gets_its_framed_echo_over_tls_1_2_and_1_3() {
    let Some(python) = find_on_path("python3") else {
        return skipped(
            "python_ssl_gets_its_framed_echo_over_tls_1_2_and_1_3",
            "python3",
        );
    };
    let files = Files::new(&Ca::new("e2e CA").issue("localhost"));
    let args = files.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_server, [_, addr]) =
        start_server(&args, [Kind::Framed, Kind::FramedTls], deadline()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/tls_client.py");
    let output = Spawn::new(python)
        .arg(script)
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            path(&files.ca).to_owned(),
            "localhost".to_owned(),
        ])
        .run(deadline())
        .unwrap();
    let stdout = output.stdout_text();
    assert!(output.status.success(), "{stdout}{}", output.stderr_text());
    assert!(
        stdout.contains("ok TLSv1.2") && stdout.contains("ok TLSv1.3"),
        "{stdout}"
    );
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_reload_keeps_the_old_one() {
    let Some(openssl) = find_on_path("openssl") else {
        return skipped(
            "sighup_reloads_the_certificate_and_a_bad_reload_keeps_the_old_one",
            "openssl",
        );
    };
    let files = Files::new(&Ca::new("first CA").issue("127.0.0.1"));
    let (server, addr) = raw_tls_server(&files, &[]);
    let open = s_client_echo(&openssl, addr, &files.ca, &[], "before", deadline()).unwrap();

    // A key that is not the certificate's: logged, and the old pair stays.
    let second = Ca::new("second CA").issue("127.0.0.1");
    files.dir.write("key.pem", &second.key_pem).unwrap();
    server.signal(Signal::SIGHUP).unwrap();
    server
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("TLS reload failed") && line.contains("key.pem")
        })
        .unwrap();
    s_client_echo(&openssl, addr, &files.ca, &[], "old still", deadline()).unwrap();

    // The whole new pair: new handshakes verify against the new CA only.
    files.dir.write("cert.pem", &second.chain_pem()).unwrap();
    let second_ca = files.dir.write("second-ca.pem", &second.ca_pem).unwrap();
    server.signal(Signal::SIGHUP).unwrap();
    server
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("TLS files reloaded")
        })
        .unwrap();
    s_client_echo(&openssl, addr, &second_ca, &[], "after", deadline()).unwrap();
    // The connection opened before the reloads is still open and served.
    assert!(open.stdout_text().contains("before"));
    drop(open);
    let mut server = server;
    let output = server.stop(deadline()).unwrap();
    assert!(output.status.success(), "{}", output.stderr_text());
}

#[test]
fn tls_flags_without_their_partners_are_usage_errors_naming_what_is_missing() {
    for (args, missing) in [
        (
            &["--tls-listen", "127.0.0.1:0"][..],
            "--tls-cert and --tls-key",
        ),
        (
            &["--tls-listen", "127.0.0.1:0", "--tls-cert", "c.pem"][..],
            "--tls-key",
        ),
        (
            &["--tls-listen", "127.0.0.1:0", "--tls-key", "k.pem"][..],
            "--tls-cert",
        ),
        (
            &["--tls-cert", "c.pem", "--tls-key", "k.pem"][..],
            "--tls-listen",
        ),
    ] {
        let output = Spawn::bin("echo-server")
            .unwrap()
            .args(args)
            .run(deadline())
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = output.stderr_text();
        assert!(
            stderr.starts_with("error: ") && stderr.contains(missing),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_bad_tls_file_at_start_is_one_error_line_naming_it_and_exit_1() {
    let files = Files::new(&Ca::new("CA").issue("127.0.0.1"));
    let other_key = files
        .dir
        .write("other-key.pem", &Ca::new("CA").issue("x").key_pem)
        .unwrap();
    let missing = files.dir.path().join("missing.pem");
    for (cert, key, named) in [
        (&files.cert, &missing, "missing.pem"),
        (&files.cert, &other_key, "other-key.pem"),
        (&files.key, &files.key, "no certificate"),
    ] {
        let output = Spawn::bin("echo-server")
            .unwrap()
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(["--tls-cert", path(cert), "--tls-key", path(key)])
            .run(deadline())
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = output.stderr_text();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(named), "{stderr}");
        assert!(output.stdout_text().is_empty(), "nothing was announced");
    }
}

/// Starts the Python `ssl` echo server speaking only TLS `version`, with
/// `extra` arguments: the process and its address.
fn python_tls_server(
    python: &Path,
    files: &Files,
    version: &str,
    extra: &[&str],
) -> (Process, std::net::SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/tls_echo_server.py");
    let server = Spawn::new(python)
        .arg(script)
        .args([path(&files.cert), path(&files.key), version])
        .args(extra)
        .start()
        .unwrap();
    let line = server
        .wait_for_line(Pipe::Stdout, deadline(), |line| {
            line.starts_with("listening on ")
        })
        .unwrap();
    let port: u16 = line["listening on ".len()..].parse().unwrap();
    (server, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn echo_client_speaks_tls_1_2_and_1_3_to_python_ssl_and_refuses_an_unknown_issuer() {
    let Some(python) = find_on_path("python3") else {
        return skipped(
            "echo_client_speaks_tls_1_2_and_1_3_to_python_ssl_and_refuses_an_unknown_issuer",
            "python3",
        );
    };
    let ca = Ca::new("e2e CA");
    let files = Files::new(&ca.issue("localhost"));
    for version in ["1.2", "1.3"] {
        let (_server, addr) = python_tls_server(&python, &files, version, &[]);
        let output = client(addr)
            .unwrap()
            .args(["--raw", "--tls-ca", path(&files.ca), "--tls-server-name"])
            .args(["localhost", "hello over", "Python's ssl"])
            .run(deadline())
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "TLS {version}: {output}");
        assert_eq!(output.stdout_text(), "hello over\nPython's ssl\n");
        // Without the CA, the certificate's issuer is unknown: one error
        // line, exit 1.
        let output = client(addr)
            .unwrap()
            .args(["--raw", "--tls", "--tls-server-name", "localhost", "x"])
            .run(deadline())
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output}");
        let stderr = output.stderr_text();
        assert!(
            stderr.lines().count() == 1 && stderr.contains("UnknownIssuer"),
            "{stderr}"
        );
    }
    // A server that requires client certificates takes echo-client's.
    let identity = ca.issue("echo-client");
    let cert = files.dir.write("client.pem", &identity.cert_pem).unwrap();
    let key = files
        .dir
        .write("client-key.pem", &identity.key_pem)
        .unwrap();
    let (_server, addr) = python_tls_server(&python, &files, "1.3", &[path(&files.ca)]);
    let output = client(addr)
        .unwrap()
        .args([
            "--raw",
            "--tls-ca",
            path(&files.ca),
            "--tls-server-name",
            "localhost",
        ])
        .args(["--tls-cert", path(&cert), "--tls-key", path(&key), "mutual"])
        .run(deadline())
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stdout_text(), "mutual\n");
}
