//! Parsing a PageRank body of 1,000,000 edges (100,000 nodes) into a validated request, as JSON
//! and as the binary body (docs/binary-body.md), with no HTTP: the cost the body format adds
//! before the kernel runs.
//!
//! - `pagerank_1m_edges/json`: `kernels::parse_request` (serde_json, then `validate`);
//! - `pagerank_1m_edges/binary`: `kernels::parse_request_binary` (decode, then `validate`);
//! - `pagerank_1m_edges/binary_decode`: `kernels::decode_binary` alone, without `validate`.
//!
//! The bodies are built once, from seeded pseudo-random edges; the JSON body is about 14 MB,
//! the binary one 8 MB. docs/binary-body.md has the figures.
//!
//! `cargo bench -p rustkernel-host --bench body_parse`

#![allow(clippy::unwrap_used, clippy::panic)] // a bench fails loudly
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustkernel_host::kernels::{self, KernelRequest, PAGERANK, PageRankInput};

const NODES: u32 = 100_000;
const EDGES: usize = 1_000_000;

/// `EDGES` edges between `NODES` nodes from a seeded xorshift64 (the same graph every run).
fn input() -> PageRankInput {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        u32::try_from(state % u64::from(NODES)).unwrap()
    };
    PageRankInput {
        num_nodes: NODES,
        edges: (0..EDGES).map(|_| [next(), next()]).collect(),
        damping: 0.85,
        max_iterations: 100,
        tolerance: 1e-10,
    }
}

fn body_parse(c: &mut Criterion) {
    let input = input();
    let json = serde_json::to_vec(&input).unwrap();
    let request = KernelRequest::PageRank(input);
    let binary = kernels::encode_binary(&request);
    assert_eq!(kernels::parse_request(PAGERANK, &json).unwrap(), request);
    assert_eq!(
        kernels::parse_request_binary(PAGERANK, &binary).unwrap(),
        request
    );
    eprintln!(
        "body_parse: JSON body {} bytes, binary body {} bytes",
        json.len(),
        binary.len()
    );

    let mut group = c.benchmark_group("pagerank_1m_edges");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EDGES as u64));
    group.bench_function("json", |b| {
        b.iter(|| kernels::parse_request(PAGERANK, black_box(&json)).unwrap());
    });
    group.bench_function("binary", |b| {
        b.iter(|| kernels::parse_request_binary(PAGERANK, black_box(&binary)).unwrap());
    });
    group.bench_function("binary_decode", |b| {
        b.iter(|| kernels::decode_binary(black_box(&binary)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, body_parse);
criterion_main!(benches);
