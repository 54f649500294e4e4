//! The host's stream decoder (host/src/telemetry.rs, `decode_stream`): `@RK` lines mixed with
//! text, and raw COBS streams. Any input is decoded to the end without a panic or an error
//! (reading from memory cannot fail), every decoded frame is one line of output (one JSON
//! object in JSON format), and every bad frame is one line on the error stream.
//!
//! The first input byte chooses the framing (bit 0: raw), the output format (bit 1: JSON) and
//! whether the rest is the stream itself (bit 2 clear) or a recipe (bit 2 set): chunks, each a
//! tag byte then up to 127 bytes; a tag with bit 7 set makes the chunk's bytes the payload of a
//! valid frame (a `@RK` line, or raw wire bytes), any other tag makes them text. Recipes reach
//! the printer with arbitrary payloads past the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustkernel_fuzz::{wire_frame, wire_line};
use rustkernel_host::telemetry::{DecodeStats, Format, Framing, MAX_LINE_LEN, decode_stream};

/// Builds a stream from a recipe; returns it and how many frames it holds.
fn build(framing: Framing, mut recipe: &[u8]) -> (Vec<u8>, u64) {
    let mut stream = Vec::new();
    let mut frames = 0;
    while let Some((&tag, rest)) = recipe.split_first() {
        let len = usize::from(tag & 0x7F).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        recipe = rest;
        if tag & 0x80 == 0 {
            stream.extend_from_slice(chunk);
            if framing == Framing::Lines {
                stream.push(b'\n');
            }
            continue;
        }
        frames += 1;
        let wire = wire_frame(chunk);
        match framing {
            Framing::Lines => stream.extend_from_slice(&wire_line(&wire)),
            Framing::Raw => stream.extend_from_slice(&wire),
        }
    }
    (stream, frames)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let framing = if flags & 1 == 0 {
        Framing::Lines
    } else {
        Framing::Raw
    };
    let format = if flags & 2 == 0 {
        Format::Text
    } else {
        Format::Json
    };
    let (stream, frames) = if flags & 4 == 0 {
        (rest.to_vec(), 0)
    } else {
        build(framing, rest)
    };

    let mut out = Vec::new();
    let mut err = Vec::new();
    let stats = decode_stream(&stream[..], framing, format, &mut out, &mut err)
        .expect("decoding from memory into memory cannot fail");
    let DecodeStats {
        frames: decoded,
        bad,
    } = stats;

    let out = String::from_utf8(out).expect("the output is text");
    let err = String::from_utf8(err).expect("the error stream is text");
    assert_eq!(
        out.lines().count() as u64,
        decoded,
        "one line per frame:\n{out}"
    );
    assert_eq!(
        err.lines().count() as u64,
        bad,
        "one line per bad frame:\n{err}"
    );
    if format == Format::Json {
        for line in out.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            assert!(
                value.get("kind").is_some_and(serde_json::Value::is_string),
                "{line}"
            );
        }
    }
    // In a text stream, every frame line built from the recipe is reported, good or bad.
    if framing == Framing::Lines && stream.len() < MAX_LINE_LEN {
        assert!(decoded + bad >= frames, "{decoded} + {bad} < {frames}");
    }
});
