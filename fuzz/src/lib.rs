//! The checks behind the fuzz targets, kept in a library so that the targets
//! stay one line each and the checks have tests of their own.
//!
//! | target | what it checks |
//! |---|---|
//! | `frame_decoder` | [`frame_decoder`]: `FrameCodec`, `FrameScanner` and `read_frame` against a reference decoder, chunk by chunk |
//! | `server_relay` | [`server_relay`]: the server's connection loop over an in-memory stream against the same reference |
//! | `json_codec` | [`json_codec`]: `JsonCodec` on arbitrary bytes, and round trips of arbitrary JSON values |
//! | `proxy_header` | [`proxy_header`]: the PROXY protocol header parser, chunk by chunk, and its encoders |
//!
//! Every target reads its input in the layout of [`input`] and holds what it
//! checks to the [`reference`] decoder, with the assertions of [`expect`]
//! (and, for the tokio-util decoders, the driver of [`feed`]). The
//! checked-in seeds ([`seeds`]) are built from the test vectors of
//! PROTOCOL.md.
#![forbid(unsafe_code)]

pub mod expect;
pub mod feed;
pub mod frame_decoder;
pub mod input;
pub mod json_codec;
pub mod proxy_header;
pub mod reference;
pub mod seeds;
pub mod server_relay;
