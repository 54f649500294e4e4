//! The binary request body (`application/vnd.rustkernel.kernel-input.v1`): the decoder's
//! properties (a round trip gives the request back; no bytes make it panic) and the service
//! over real HTTP (the same input as JSON and as binary gives the same result; a malformed body
//! is a 400 with a message; a binary content type the service cannot read is a 415; the body
//! limit holds).
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly

mod common;

use common::{Answer, CYCLE, Server, send, start};
use proptest::prelude::*;
use rustkernel_host::kernels::{
    self, BINARY_CONTENT_TYPE, KernelRequest, KernelResponse, MATMUL, MatMulInput, PAGERANK,
    PageRankInput,
};
use rustkernel_host::service::execute::ExecuteBody;

const PAGERANK_ROUTE: &str = "/v1/kernels/graph/pagerank/execute";
const MATMUL_ROUTE: &str = "/v1/kernels/linalg/matmul/execute";

// ---- The decoder's properties -------------------------------------------------------------

/// Any `f64` but NaN (which is not equal to itself, so `==` cannot compare it).
fn number() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN != NaN", |v| !v.is_nan())
}

fn pagerank_input() -> impl Strategy<Value = PageRankInput> {
    (
        any::<u32>(),
        proptest::collection::vec(any::<[u32; 2]>(), 0..64),
        number(),
        any::<u32>(),
        number(),
    )
        .prop_map(
            |(num_nodes, edges, damping, max_iterations, tolerance)| PageRankInput {
                num_nodes,
                edges,
                damping,
                max_iterations,
                tolerance,
            },
        )
}

fn matmul_input() -> impl Strategy<Value = MatMulInput> {
    (0u32..6).prop_flat_map(|n| {
        let len = (n * n) as usize;
        (
            proptest::collection::vec(number(), len),
            proptest::collection::vec(number(), len),
        )
            .prop_map(move |(a, b)| MatMulInput { n, a, b })
    })
}

fn request() -> impl Strategy<Value = KernelRequest> {
    prop_oneof![
        pagerank_input().prop_map(KernelRequest::PageRank),
        matmul_input().prop_map(KernelRequest::MatMul),
    ]
}

/// Bytes that get past the magic, version and kind, so the counts and lengths are exercised.
fn past_the_kind() -> impl Strategy<Value = Vec<u8>> {
    (1u16..=2, proptest::collection::vec(any::<u8>(), 0..120)).prop_map(|(kind, tail)| {
        let mut body = b"RKIN\x01\x00".to_vec();
        body.extend_from_slice(&kind.to_le_bytes());
        body.extend_from_slice(&tail);
        body
    })
}

proptest! {
    #[test]
    fn decode_inverts_encode(request in request()) {
        let body = kernels::encode_binary(&request);
        prop_assert_eq!(kernels::decode_binary(&body), Ok(request));
    }

    #[test]
    fn decode_inverts_encode_bit_for_bit_even_with_nan(
        values in proptest::collection::vec(any::<f64>(), 8),
        damping in any::<f64>(),
    ) {
        for request in [
            KernelRequest::MatMul(MatMulInput {
                n: 2,
                a: values[..4].to_vec(),
                b: values[4..].to_vec(),
            }),
            KernelRequest::PageRank(PageRankInput {
                num_nodes: 2,
                edges: vec![[0, 1]],
                damping,
                max_iterations: 1,
                tolerance: damping,
            }),
        ] {
            let body = kernels::encode_binary(&request);
            let decoded = kernels::decode_binary(&body).expect("decodes");
            prop_assert_eq!(kernels::encode_binary(&decoded), body);
        }
    }

    #[test]
    fn a_valid_body_cut_short_or_extended_is_refused(
        request in request(),
        cut in any::<usize>(),
        extra in 1usize..16,
    ) {
        let body = kernels::encode_binary(&request);
        let cut = cut % body.len();
        prop_assert!(kernels::decode_binary(&body[..cut]).is_err());
        let mut longer = body.clone();
        longer.resize(body.len() + extra, 0);
        prop_assert!(kernels::decode_binary(&longer).is_err());
    }

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = kernels::decode_binary(&body);
        let _ = kernels::parse_request_binary(PAGERANK, &body);
        let _ = kernels::parse_request_binary(MATMUL, &body);
    }

    #[test]
    fn random_bytes_behind_a_valid_kind_never_panic(body in past_the_kind()) {
        let _ = kernels::decode_binary(&body);
        let _ = kernels::parse_request_binary(PAGERANK, &body);
        let _ = kernels::parse_request_binary(MATMUL, &body);
    }

    #[test]
    fn flipped_bytes_never_panic(request in request(), at in any::<usize>(), xor in 1u8..) {
        let mut body = kernels::encode_binary(&request);
        let at = at % body.len();
        body[at] ^= xor;
        let _ = kernels::parse_request_binary(request.kernel_id(), &body);
    }
}

// ---- Over HTTP ----------------------------------------------------------------------------

/// `POST route` with `body` as a binary body.
async fn post_binary(server: &Server, route: &str, body: Vec<u8>) -> Answer {
    post_as(server, route, BINARY_CONTENT_TYPE, body).await
}

/// `POST route` with `body` and the content type `content_type`.
async fn post_as(server: &Server, route: &str, content_type: &str, body: Vec<u8>) -> Answer {
    send(
        server
            .client
            .post(format!("{}{route}", server.base))
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

/// The kernel's result of a 200.
fn result_of(answer: &Answer) -> KernelResponse {
    assert_eq!(answer.status, 200, "{answer:?}");
    serde_json::from_str::<ExecuteBody>(&answer.body)
        .unwrap_or_else(|error| panic!("not an execute body ({error}): {answer:?}"))
        .result
}

/// The CPU kernel's result for `request` as a client reads it from a JSON answer (serde_json's
/// default float parsing may differ from the `f64` written in the last bit, the same way for
/// every answer).
fn cpu_through_json(request: &KernelRequest) -> KernelResponse {
    let response = kernels::run_cpu(request, &|| false).expect("runs");
    serde_json::from_str(&serde_json::to_string(&response).expect("serializes")).expect("parses")
}

/// A graph of 300 nodes with a ring, chords, parallel edges, self-loops and dangling nodes.
fn graph() -> PageRankInput {
    let n = 300u32;
    let edges = (0..n)
        .filter(|i| i % 17 != 5) // dangling nodes
        .flat_map(|i| [[i, (i + 1) % n], [i, (i * 7 + 3) % n], [i, i % 11]])
        .collect();
    PageRankInput {
        num_nodes: n,
        edges,
        damping: 0.9,
        max_iterations: 500,
        tolerance: 1e-12,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerank_as_json_and_as_binary_gives_the_same_ranks() {
    let server = start("").await;
    let input = graph();
    let json = serde_json::to_vec(&input).expect("serializes");
    let request = KernelRequest::PageRank(input);
    let binary = kernels::encode_binary(&request);
    assert!(
        binary.len() < json.len(),
        "{} vs {}",
        binary.len(),
        json.len()
    );

    let from_json = result_of(&server.post(PAGERANK_ROUTE, json).await);
    let from_binary = result_of(&post_binary(&server, PAGERANK_ROUTE, binary).await);
    assert_eq!(from_json, from_binary);
    assert_eq!(from_binary, cpu_through_json(&request));
    let KernelResponse::PageRank(out) = from_binary else {
        panic!("pagerank")
    };
    assert_eq!(out.ranks.len(), 300);
    assert!((out.ranks.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matmul_as_json_and_as_binary_gives_the_same_product() {
    let server = start("").await;
    let n = 40u32;
    // Quarters: exact in decimal, so the JSON text parses back to the very same f64.
    let value = |i: u32, k: u32| f64::from((i * k + 3) % 29) * 0.25 - 3.5;
    let input = MatMulInput {
        n,
        a: (0..n * n).map(|i| value(i, 5)).collect(),
        b: (0..n * n).map(|i| value(i, 11)).collect(),
    };
    let json = serde_json::to_vec(&input).expect("serializes");
    let request = KernelRequest::MatMul(input);
    let binary = kernels::encode_binary(&request);

    let from_json = result_of(&server.post(MATMUL_ROUTE, json).await);
    let from_binary = result_of(&post_binary(&server, MATMUL_ROUTE, binary).await);
    assert_eq!(from_json, from_binary);
    assert_eq!(from_binary, cpu_through_json(&request));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_binary_bodies_are_400_with_a_message() {
    let server = start("").await;
    let good = kernels::encode_binary(&KernelRequest::PageRank(PageRankInput {
        num_nodes: 3,
        edges: vec![[0, 1], [1, 2], [2, 0]],
        damping: 0.85,
        max_iterations: 100,
        tolerance: 1e-10,
    }));
    let with = |at: usize, bytes: &[u8]| {
        let mut body = good.clone();
        body[at..at + bytes.len()].copy_from_slice(bytes);
        body
    };
    let matmul = kernels::encode_binary(&KernelRequest::MatMul(MatMulInput {
        n: 1,
        a: vec![1.0],
        b: vec![2.0],
    }));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "shorter than its 8-byte header"),
        ("short header", good[..20].to_vec(), "its 40-byte header"),
        ("JSON", CYCLE.as_bytes().to_vec(), "not the magic \"RKIN\""),
        (
            "version 2",
            with(4, &[2, 0]),
            "layout version 2 is not supported",
        ),
        ("kind 9", with(6, &[9, 0]), "kind 9 names no kernel"),
        (
            "edge count overflow",
            with(16, &u64::MAX.to_le_bytes()),
            "overflow",
        ),
        (
            "edge count too big",
            with(16, &4u64.to_le_bytes()),
            "need 72 bytes in all, the body is 64",
        ),
        (
            "an edge cut off",
            good[..good.len() - 4].to_vec(),
            "need 64 bytes in all, the body is 60",
        ),
        (
            "trailing bytes",
            [&good[..], &[0; 8]].concat(),
            "the body is 72",
        ),
        (
            "NaN damping",
            with(24, &f64::NAN.to_le_bytes()),
            "damping must be a finite number",
        ),
        (
            "node out of range",
            with(40, &7u32.to_le_bytes()),
            "names a node out of range",
        ),
        ("matmul body", matmul, "holds a linalg/matmul input"),
    ];
    for (what, body, message) in cases {
        let answer = post_binary(&server, PAGERANK_ROUTE, body).await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_eq!(answer.error_code(), "bad_request", "{what}: {answer:?}");
        let text = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(text.contains(message), "{what}: {text:?} lacks {message:?}");
    }
    // The server still serves, both formats.
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 200);
    assert_eq!(post_binary(&server, PAGERANK_ROUTE, good).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_binary_types_are_415_and_text_types_are_json() {
    let server = start("").await;
    let binary = kernels::encode_binary(
        &kernels::parse_request(PAGERANK, CYCLE.as_bytes()).expect("parses"),
    );
    // What `curl -d` and many clients send: read as JSON, as before the binary body.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let answer = post_as(
            &server,
            PAGERANK_ROUTE,
            content_type,
            CYCLE.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(answer.status, 200, "{content_type}: {answer:?}");
    }
    for (content_type, body) in [
        ("application/octet-stream", binary.clone()),
        ("application/vnd.rustkernel.kernel-input.v2", binary.clone()),
    ] {
        let answer = post_as(&server, PAGERANK_ROUTE, content_type, body).await;
        assert_eq!(answer.status, 415, "{content_type}: {answer:?}");
        assert_eq!(answer.error_code(), "unsupported_media_type", "{answer:?}");
        let text = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.contains(content_type) && text.contains(BINARY_CONTENT_TYPE),
            "{text:?}"
        );
    }
    // No content type: JSON, as before the binary body existed.
    let answer = send(
        server
            .client
            .post(format!("{}{PAGERANK_ROUTE}", server.base))
            .body(CYCLE),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Parameters and case do not matter.
    let answer = post_as(
        &server,
        PAGERANK_ROUTE,
        "Application/JSON; charset=utf-8",
        CYCLE.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = post_as(
        &server,
        PAGERANK_ROUTE,
        "application/vnd.rustkernel.kernel-input.v1; q=1",
        binary,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_obey_the_body_limit() {
    let server = start("[server]\nbody_limit_bytes = 4096").await;
    let body = |edges: u32| {
        kernels::encode_binary(&KernelRequest::PageRank(PageRankInput {
            num_nodes: edges,
            edges: (0..edges).map(|i| [i, (i + 1) % edges]).collect(),
            damping: 0.85,
            max_iterations: 100,
            tolerance: 1e-10,
        }))
    };
    let fits = body(500); // 4,040 bytes
    assert!(fits.len() <= 4096);
    assert_eq!(post_binary(&server, PAGERANK_ROUTE, fits).await.status, 200);
    let over = body(600); // 4,840 bytes
    let answer = post_binary(&server, PAGERANK_ROUTE, over).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.error_code(), "payload_too_large", "{answer:?}");
}
