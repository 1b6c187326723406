//! Both binaries as users run them: the client's messages echoed by the
//! real server, and the exit codes people and scripts rely on (0 ok, 1 a
//! runtime failure, 2 a usage error) with one clear error line.

use echo_e2e::{client, start_server};
use echo_testkit::{Kind, Output, Spawn, deadline, wire};

/// Checks that `output` is a failure with exactly one `error: ` line on
/// stderr, naming `needle`, and no panic.
fn assert_one_error_line(output: &Output, code: i32, needle: &str) {
    assert_eq!(output.status.code(), Some(code), "{output}");
    assert!(output.stdout.is_empty(), "{output}");
    let stderr = output.stderr_text();
    assert!(!stderr.contains("panicked"), "{output}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {output}");
    assert!(
        errors[0].contains(needle),
        "the error names {needle:?}: {output}"
    );
}

#[test]
fn the_client_prints_the_servers_echo_of_each_argument() {
    let deadline = deadline();
    let (_server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    for (args, echoed) in [
        (&["Hello Echo!"][..], &b"Hello Echo!\n"[..]),
        (&["a", "b", "c"], b"a\nb\nc\n"),
    ] {
        let output = client(addr).unwrap().args(args).run(deadline).unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output}");
        assert_eq!(output.stdout, echoed, "{args:?}: {output}");
    }
}

#[test]
fn the_client_sends_piped_bytes_unchanged_without_a_prompt() {
    // NUL, 0xff, a lone continuation byte and a truncated UTF-8 sequence:
    // each line must come back byte for byte.
    let input = b"\x00\xff\x80 binary\n\xc3\x28 not utf-8 \xe2\x82\n\x00\n";
    let deadline = deadline();
    let (_server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let output = client(addr).unwrap().stdin(input).run(deadline).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stdout, input, "{output}");
    // The prompt is for terminals only.
    assert!(!output.stderr_text().contains("> "), "{output}");
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_value() {
    let deadline = deadline();
    let server = Spawn::bin("echo-server")
        .unwrap()
        .args(["--listen", "nonsense"])
        .run(deadline)
        .unwrap();
    assert_one_error_line(&server, 2, "nonsense");
    let client = Spawn::bin("echo-client")
        .unwrap()
        .args(["--timeout", "abc", "x"])
        .run(deadline)
        .unwrap();
    assert_one_error_line(&client, 2, "abc");
}

#[test]
fn a_refused_connection_exits_1_naming_the_address() {
    let deadline = deadline();
    let addr = wire::closed_port().unwrap();
    let output = client(addr).unwrap().arg("hello").run(deadline).unwrap();
    assert_one_error_line(&output, 1, &addr.to_string());
}

#[test]
fn a_second_server_on_a_taken_address_exits_1_naming_it() {
    let deadline = deadline();
    let (_first, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let second = Spawn::bin("echo-server")
        .unwrap()
        .args(["--listen", &addr.to_string()])
        .run(deadline)
        .unwrap();
    assert_one_error_line(&second, 1, &addr.to_string());
}
