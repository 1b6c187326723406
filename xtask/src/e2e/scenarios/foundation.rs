//! The first scenarios: the client and the framed server doing their basic
//! jobs, the errors people meet first, and shutdown.

use std::ffi::OsStr;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result, ensure};

use super::{QUICK_EXIT, Scenario};
use crate::e2e::harness::{
    Ctx, Deadlined, closed_port, connect, echo_all, encode, expect_eof, expect_refused, pattern,
    terminate,
};

/// This topic's scenarios, in the order they run.
pub(super) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "one-message",
        run: one_message,
    },
    Scenario {
        name: "several-messages",
        run: several_messages,
    },
    Scenario {
        name: "piped-stdin",
        run: piped_stdin,
    },
    Scenario {
        name: "binary-stdin",
        run: binary_stdin,
    },
    Scenario {
        name: "utf8-argument",
        run: utf8_argument,
    },
    Scenario {
        name: "non-utf8-argument",
        run: non_utf8_argument,
    },
    Scenario {
        name: "concurrent-clients",
        run: concurrent_clients,
    },
    Scenario {
        name: "connection-refused",
        run: connection_refused,
    },
    Scenario {
        name: "oversize-frame",
        run: oversize_frame,
    },
    Scenario {
        name: "sigterm-drain",
        run: sigterm_drain,
    },
    Scenario {
        name: "half-close",
        run: half_close,
    },
    Scenario {
        name: "byte-by-byte",
        run: byte_by_byte,
    },
    Scenario {
        name: "large-frame",
        run: large_frame,
    },
    Scenario {
        name: "empty-frame",
        run: empty_frame,
    },
    Scenario {
        name: "client-usage-error",
        run: client_usage_error,
    },
    Scenario {
        name: "server-usage-error",
        run: server_usage_error,
    },
    Scenario {
        name: "bind-conflict",
        run: bind_conflict,
    },
];

/// No arguments besides `--addr`: the client then reads its messages from
/// stdin.
const NO_ARGS: [&str; 0] = [];

fn one_message(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        ctx.client(addr, ["Hello Echo!"], b"")?
            .expect(0, b"Hello Echo!\n")
    })
}

fn several_messages(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        ctx.client(addr, ["a", "b", "c"], b"")?
            .expect(0, b"a\nb\nc\n")
    })
}

fn piped_stdin(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let output = ctx.client(addr, NO_ARGS, b"a\nb\n")?;
        output.expect(0, b"a\nb\n")?;
        // The prompt is for terminals only: piped input must stay silent.
        ensure!(
            !output.stderr_text().contains("> "),
            "a prompt was printed although stdin is a pipe: {output}"
        );
        Ok(())
    })
}

fn binary_stdin(ctx: &Ctx<'_>) -> Result<()> {
    // NUL, 0xff, a lone continuation byte and a truncated UTF-8 sequence:
    // each line must come back byte for byte.
    let input = b"\x00\xff\x80 binary\n\xc3\x28 not utf-8 \xe2\x82\n\x00\n";
    ctx.with_server(&[], |addr| {
        ctx.client(addr, NO_ARGS, input)?.expect(0, input)
    })
}

fn utf8_argument(ctx: &Ctx<'_>) -> Result<()> {
    let message = "héllo wörld ✓";
    ctx.with_server(&[], |addr| {
        ctx.client(addr, [message], b"")?
            .expect(0, format!("{message}\n").as_bytes())
    })
}

fn non_utf8_argument(ctx: &Ctx<'_>) -> Result<()> {
    // An argument is raw bytes on Unix; the contract sends them as they are.
    let message = b"\xff\xfe\x80 raw";
    ctx.with_server(&[], |addr| {
        ctx.client(addr, [OsStr::from_bytes(message)], b"")?
            .expect(0, b"\xff\xfe\x80 raw\n")
    })
}

fn concurrent_clients(ctx: &Ctx<'_>) -> Result<()> {
    const CLIENTS: usize = 32;
    let messages: Vec<[String; 3]> = (0..CLIENTS)
        .map(|n| [0, 1, 2].map(|m| format!("client {n} message {m}")))
        .collect();
    ctx.with_server(&[], |addr| {
        // Start them all before waiting for any, so that they overlap.
        let clients = messages
            .iter()
            .map(|args| ctx.spawn_client(addr, args, b""))
            .collect::<Result<Vec<_>>>()?;
        for (n, (client, args)) in clients.into_iter().zip(&messages).enumerate() {
            let expected: String = args.iter().map(|message| format!("{message}\n")).collect();
            client
                .wait(ctx.deadline)
                .and_then(|output| output.expect(0, expected.as_bytes()))
                .with_context(|| format!("client {n}"))?;
        }
        Ok(())
    })
}

fn connection_refused(ctx: &Ctx<'_>) -> Result<()> {
    let addr = closed_port()?;
    let output = ctx.client(addr, ["hello"], b"")?;
    output.expect(1, b"")?;
    output.expect_error_line(&addr.to_string())
}

fn oversize_frame(ctx: &Ctx<'_>) -> Result<()> {
    let server = ctx.server(&["--max-frame", "16"])?;
    let addr = server.addr();
    let long = "a message longer than sixteen bytes";
    let clients = || -> Result<()> {
        let output = ctx.client(addr, ["short", long], b"")?;
        output.expect(1, b"short\n")?;
        output.expect_error_line(&addr.to_string())?;
        // Only that connection was closed: the server still serves others.
        ctx.client(addr, ["still up"], b"")?
            .expect(0, b"still up\n")
            .context("the server stopped serving after an oversize frame")
    };
    if let Err(error) = clients() {
        return Err(server.explain(error));
    }

    let stopped = server.stop(ctx.deadline)?;
    stopped.expect(0, b"")?;
    stopped.expect_stderr_contains(&format!(
        "frame of {} bytes exceeds the maximum of 16 bytes",
        long.len()
    ))
}

fn sigterm_drain(ctx: &Ctx<'_>) -> Result<()> {
    // Sizes spread over 0..=4096, starting with the two extremes.
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            let len = match i {
                0 => 0,
                1 => 4096,
                _ => (i as usize * 811 + 17) % 4097,
            };
            pattern(i, len)
        })
        .collect();
    let server = ctx.server(&[])?;
    let addr = server.addr();
    let pid = server.pid()?;
    let exchange = || -> Result<()> {
        // SIGTERM right after the burst is written, while most of it is still
        // to be echoed, and perhaps before the server has even accepted the
        // connection: every frame must come back all the same.
        let stream = connect(addr, ctx.deadline)?;
        echo_all(&stream, &frames, ctx.deadline, |_| terminate(pid))?;
        expect_eof(&stream, ctx.deadline)
    };
    if let Err(error) = exchange() {
        return Err(server.explain(error));
    }

    let output = server.wait(ctx.deadline)?;
    output
        .expect(0, b"")
        .context("the server did not exit cleanly after SIGTERM")?;
    expect_refused(addr, ctx.deadline)
}

fn half_close(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let stream = connect(addr, ctx.deadline)?;
        let frames = [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()];
        echo_all(&stream, &frames, ctx.deadline, |stream| {
            Ok(stream.shutdown(Shutdown::Write)?)
        })?;
        expect_eof(&stream, ctx.deadline)
    })
}

fn byte_by_byte(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let stream = connect(addr, ctx.deadline)?;
        // Without Nagle's algorithm each one-byte write is its own segment,
        // so the server really does receive the frame in pieces.
        stream.set_nodelay(true)?;
        let payload = b"sent one byte per write".to_vec();
        let mut conn = Deadlined::new(&stream, ctx.deadline);
        for byte in encode(std::slice::from_ref(&payload))? {
            conn.write_all(&[byte])?;
        }
        let echo = conn.read_frame()?;
        ensure!(
            echo.as_ref() == Some(&payload),
            "expected the echo {:?}, got {:?}",
            payload.escape_ascii().to_string(),
            echo.map(|echo| echo.escape_ascii().to_string())
        );
        Ok(())
    })
}

fn large_frame(ctx: &Ctx<'_>) -> Result<()> {
    let frames = [pattern(1, 1024 * 1024), b"after the large frame".to_vec()];
    ctx.with_server(&[], |addr| {
        let stream = connect(addr, ctx.deadline)?;
        echo_all(&stream, &frames, ctx.deadline, |_| Ok(()))
    })
}

fn empty_frame(ctx: &Ctx<'_>) -> Result<()> {
    // The frame after the empty one checks that the stream stayed in step.
    let frames = [Vec::new(), b"after the empty frame".to_vec(), Vec::new()];
    ctx.with_server(&[], |addr| {
        let stream = connect(addr, ctx.deadline)?;
        echo_all(&stream, &frames, ctx.deadline, |_| Ok(()))
    })
}

fn client_usage_error(ctx: &Ctx<'_>) -> Result<()> {
    let output = ctx.run(&ctx.bins.client, ["--timeout", "abc", "x"], QUICK_EXIT)?;
    output.expect(2, b"")?;
    // The message must name the bad value.
    output.expect_stderr_contains("abc")
}

fn server_usage_error(ctx: &Ctx<'_>) -> Result<()> {
    let output = ctx.run(&ctx.bins.server, ["--listen", "nonsense"], QUICK_EXIT)?;
    output.expect(2, b"")?;
    output.expect_stderr_contains("nonsense")
}

fn bind_conflict(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let addr = addr.to_string();
        let output = ctx.run(&ctx.bins.server, ["--listen", addr.as_str()], QUICK_EXIT)?;
        output.expect(1, b"")?;
        output.expect_error_line(&addr)
    })
}
