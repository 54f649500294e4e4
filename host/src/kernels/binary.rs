//! The binary request body, [`BINARY_CONTENT_TYPE`]: the same inputs as the JSON body, as
//! little-endian numbers behind a small fixed header, so that a large graph or matrix costs one
//! bounds-checked copy instead of a JSON parse (docs/binary-body.md has the layout).
//!
//! One content type serves every kernel: the header's `kind` says which input follows, and
//! [`parse_request_binary`] refuses a body whose kind is not the route's kernel. A body is
//! self-describing, so a tool can store it in a file and [`decode_binary`] it without the URL.
//!
//! [`decode_binary`] checks the layout only (magic, version, kind, counts against the length);
//! the values go through the same [`validate`](super::validate) as the JSON path's, so both
//! formats refuse the same inputs with the same messages.
//!
//! ```
//! use rustkernel_host::kernels::{self, KernelRequest, PageRankInput};
//!
//! let request = KernelRequest::PageRank(PageRankInput {
//!     num_nodes: 3,
//!     edges: vec![[0, 1], [1, 2], [2, 0]],
//!     damping: 0.85,
//!     max_iterations: 100,
//!     tolerance: 1e-10,
//! });
//! let body = kernels::encode_binary(&request);
//! assert_eq!(body.len(), 40 + 3 * 8);
//! assert_eq!(kernels::parse_request_binary(kernels::PAGERANK, &body), Ok(request));
//! ```

use std::fmt;

use super::{KERNEL_IDS, KernelError, KernelRequest, MATMUL, MatMulInput, PAGERANK, PageRankInput};

/// The content type of a binary body, for every kernel.
pub const BINARY_CONTENT_TYPE: &str = "application/vnd.rustkernel.kernel-input.v1";
/// The first four bytes of every binary body.
pub const BINARY_MAGIC: [u8; 4] = *b"RKIN";
/// The layout version this build reads and writes.
pub const BINARY_VERSION: u16 = 1;
/// The header of a PageRank body, in bytes; the edges follow it.
pub const PAGERANK_HEADER_LEN: usize = 40;
/// The header of a matmul body, in bytes; the matrices follow it.
pub const MATMUL_HEADER_LEN: usize = 16;

/// The `kind` field of a PageRank body.
const KIND_PAGERANK: u16 = 1;
/// The `kind` field of a matmul body.
const KIND_MATMUL: u16 = 2;
/// Bytes per edge: `from` and `to`, `u32` each.
const EDGE_LEN: u64 = 8;
/// Bytes per matrix value, an `f64`.
const VALUE_LEN: u64 = 8;

/// Why a binary body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// The body ends inside its header: `needed` bytes of header, `len` bytes of body.
    Truncated {
        /// The header's length.
        needed: usize,
        /// The body's length.
        len: usize,
    },
    /// The body does not start with [`BINARY_MAGIC`].
    BadMagic([u8; 4]),
    /// A layout version other than [`BINARY_VERSION`].
    UnsupportedVersion(u16),
    /// A `kind` that names no kernel.
    UnknownKind(u16),
    /// The body holds the input of another kernel than the route's.
    WrongKernel {
        /// The kernel of the body.
        body: &'static str,
        /// The kernel of the route.
        route: &'static str,
    },
    /// A reserved header field is not zero.
    ReservedNotZero(u32),
    /// The header's counts give a length over `u64` (and so over any body).
    SizeOverflow,
    /// The header's counts give `expected` bytes in all, the body has `len`.
    LengthMismatch {
        /// Header plus arrays, from the header's counts.
        expected: u64,
        /// The body's length.
        len: usize,
    },
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::Truncated { needed, len } => write!(
                f,
                "the body is {len} bytes, shorter than its {needed}-byte header"
            ),
            BinaryError::BadMagic(magic) => write!(
                f,
                "the body starts with {magic:02x?}, not the magic \"RKIN\" of {BINARY_CONTENT_TYPE}"
            ),
            BinaryError::UnsupportedVersion(version) => write!(
                f,
                "layout version {version} is not supported (this service reads {BINARY_VERSION})"
            ),
            BinaryError::UnknownKind(kind) => write!(
                f,
                "kind {kind} names no kernel ({KIND_PAGERANK} = {PAGERANK}, {KIND_MATMUL} = {MATMUL})"
            ),
            BinaryError::WrongKernel { body, route } => {
                write!(f, "the body holds a {body} input, the route is {route}")
            }
            BinaryError::ReservedNotZero(value) => {
                write!(f, "the reserved header field is {value}, not 0")
            }
            BinaryError::SizeOverflow => f.write_str("the header's counts overflow a length"),
            BinaryError::LengthMismatch { expected, len } => write!(
                f,
                "the header's counts need {expected} bytes in all, the body is {len}"
            ),
        }
    }
}

impl std::error::Error for BinaryError {}

/// A binary body is a malformed request body, like malformed JSON.
impl From<BinaryError> for KernelError {
    fn from(error: BinaryError) -> Self {
        KernelError::BadRequest(error.to_string())
    }
}

/// Decodes a binary body for the kernel `kernel_id` and validates it: the binary twin of
/// [`parse_request`](super::parse_request), with the same result for the same input.
///
/// # Errors
/// [`KernelError::UnknownKernel`] for an id not in [`KERNEL_IDS`], [`KernelError::BadRequest`]
/// for a body that [`decode_binary`] refuses or that holds another kernel's input, and
/// [`KernelError::InvalidInput`] for values that [`validate`](super::validate) refuses.
pub fn parse_request_binary(kernel_id: &str, body: &[u8]) -> Result<KernelRequest, KernelError> {
    let Some(route) = KERNEL_IDS.into_iter().find(|id| *id == kernel_id) else {
        return Err(KernelError::UnknownKernel(kernel_id.to_owned()));
    };
    let request = decode_binary(body)?;
    if request.kernel_id() != route {
        return Err(BinaryError::WrongKernel {
            body: request.kernel_id(),
            route,
        }
        .into());
    }
    super::validate(&request)?;
    Ok(request)
}

/// Decodes a binary body into the request it holds, copying each array once. Checks the layout
/// only: the values are [`validate`](super::validate)'s business.
///
/// # Errors
/// A [`BinaryError`] for a body that is short, has the wrong magic, an unknown version or
/// kind, a reserved field that is not 0, or counts that overflow or do not match its length.
pub fn decode_binary(body: &[u8]) -> Result<KernelRequest, BinaryError> {
    let mut header = Reader { rest: body };
    let magic: [u8; 4] = header.array(8, body.len())?;
    if magic != BINARY_MAGIC {
        return Err(BinaryError::BadMagic(magic));
    }
    let version = u16::from_le_bytes(header.array(8, body.len())?);
    if version != BINARY_VERSION {
        return Err(BinaryError::UnsupportedVersion(version));
    }
    match u16::from_le_bytes(header.array(8, body.len())?) {
        KIND_PAGERANK => decode_pagerank(header, body.len()).map(KernelRequest::PageRank),
        KIND_MATMUL => decode_matmul(header, body.len()).map(KernelRequest::MatMul),
        kind => Err(BinaryError::UnknownKind(kind)),
    }
}

/// Bytes 8.. of a PageRank body.
fn decode_pagerank(mut header: Reader<'_>, len: usize) -> Result<PageRankInput, BinaryError> {
    let needed = PAGERANK_HEADER_LEN;
    let num_nodes = u32::from_le_bytes(header.array(needed, len)?);
    let max_iterations = u32::from_le_bytes(header.array(needed, len)?);
    let num_edges = u64::from_le_bytes(header.array(needed, len)?);
    let damping = f64::from_le_bytes(header.array(needed, len)?);
    let tolerance = f64::from_le_bytes(header.array(needed, len)?);
    let payload = header.payload(needed, &[num_edges], EDGE_LEN, len)?;
    let (edges, _) = payload.as_chunks::<8>();
    let edges = edges
        .iter()
        .map(|&[f0, f1, f2, f3, t0, t1, t2, t3]| {
            [
                u32::from_le_bytes([f0, f1, f2, f3]),
                u32::from_le_bytes([t0, t1, t2, t3]),
            ]
        })
        .collect();
    Ok(PageRankInput {
        num_nodes,
        edges,
        damping,
        max_iterations,
        tolerance,
    })
}

/// Bytes 8.. of a matmul body.
fn decode_matmul(mut header: Reader<'_>, len: usize) -> Result<MatMulInput, BinaryError> {
    let needed = MATMUL_HEADER_LEN;
    let n = u32::from_le_bytes(header.array(needed, len)?);
    let reserved = u32::from_le_bytes(header.array(needed, len)?);
    if reserved != 0 {
        return Err(BinaryError::ReservedNotZero(reserved));
    }
    let values = u64::from(n) * u64::from(n); // < 2^64: both factors are below 2^32
    let payload = header.payload(needed, &[values, values], VALUE_LEN, len)?;
    let (values, _) = payload.as_chunks::<8>();
    let (a, b) = values.split_at(values.len() / 2);
    let to_f64 = |m: &[[u8; 8]]| m.iter().map(|v| f64::from_le_bytes(*v)).collect();
    Ok(MatMulInput {
        n,
        a: to_f64(a),
        b: to_f64(b),
    })
}

/// The unread part of a body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `N` bytes of a header of `needed` bytes, in a body of `len` bytes.
    fn array<const N: usize>(&mut self, needed: usize, len: usize) -> Result<[u8; N], BinaryError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(BinaryError::Truncated { needed, len })?;
        self.rest = rest;
        Ok(*head)
    }

    /// The rest of the body, once it is checked to hold exactly `counts` items of `item_len`
    /// bytes each after a header of `header_len` bytes.
    fn payload(
        self,
        header_len: usize,
        counts: &[u64],
        item_len: u64,
        len: usize,
    ) -> Result<&'a [u8], BinaryError> {
        let expected = counts
            .iter()
            .try_fold(header_len as u64, |total, &count| {
                count
                    .checked_mul(item_len)
                    .and_then(|bytes| total.checked_add(bytes))
            })
            .ok_or(BinaryError::SizeOverflow)?;
        if expected != len as u64 {
            return Err(BinaryError::LengthMismatch { expected, len });
        }
        Ok(self.rest)
    }
}

/// The binary body of a request, the inverse of [`decode_binary`]: what a client sends with
/// [`BINARY_CONTENT_TYPE`]. A matmul request whose matrices do not hold `n * n` values each
/// encodes to a body that [`decode_binary`] refuses or splits differently; validate first. A
/// job's chunk ([`KernelRequest::PageRankSteps`]) is no client's request and has no binary
/// body: its input's body is written.
#[must_use]
pub fn encode_binary(request: &KernelRequest) -> Vec<u8> {
    let request = match request {
        KernelRequest::PageRankSteps(steps) => &KernelRequest::PageRank(steps.input.clone()),
        other => other,
    };
    let capacity = match request {
        KernelRequest::PageRank(input) => PAGERANK_HEADER_LEN + input.edges.len() * 8,
        KernelRequest::MatMul(input) => MATMUL_HEADER_LEN + (input.a.len() + input.b.len()) * 8,
        KernelRequest::PageRankSteps(_) => 0,
    };
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&BINARY_MAGIC);
    out.extend_from_slice(&BINARY_VERSION.to_le_bytes());
    match request {
        KernelRequest::PageRank(input) => {
            out.extend_from_slice(&KIND_PAGERANK.to_le_bytes());
            out.extend_from_slice(&input.num_nodes.to_le_bytes());
            out.extend_from_slice(&input.max_iterations.to_le_bytes());
            out.extend_from_slice(&(input.edges.len() as u64).to_le_bytes());
            out.extend_from_slice(&input.damping.to_le_bytes());
            out.extend_from_slice(&input.tolerance.to_le_bytes());
            for [from, to] in &input.edges {
                out.extend_from_slice(&from.to_le_bytes());
                out.extend_from_slice(&to.to_le_bytes());
            }
        }
        KernelRequest::MatMul(input) => {
            out.extend_from_slice(&KIND_MATMUL.to_le_bytes());
            out.extend_from_slice(&input.n.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            for value in input.a.iter().chain(&input.b) {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        KernelRequest::PageRankSteps(_) => {}
    }
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly
mod tests {
    use super::*;

    fn pagerank() -> KernelRequest {
        KernelRequest::PageRank(PageRankInput {
            num_nodes: 4,
            edges: vec![[0, 1], [1, 2], [2, 0], [3, 3], [0, 3]],
            damping: 0.9,
            max_iterations: 42,
            tolerance: 1e-7,
        })
    }

    fn matmul() -> KernelRequest {
        KernelRequest::MatMul(MatMulInput {
            n: 2,
            a: vec![1.0, -2.5, 3.0, 4.0],
            b: vec![5.0, 6.0, 7.0, 8.0e300],
        })
    }

    #[test]
    fn round_trips_both_kernels() {
        for request in [pagerank(), matmul()] {
            let body = encode_binary(&request);
            assert_eq!(decode_binary(&body), Ok(request.clone()));
            assert_eq!(
                parse_request_binary(request.kernel_id(), &body),
                Ok(request)
            );
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let body = encode_binary(&pagerank());
        assert_eq!(body.len(), PAGERANK_HEADER_LEN + 5 * 8);
        assert_eq!(&body[0..4], b"RKIN");
        assert_eq!(body[4..8], [1, 0, 1, 0]); // version 1, kind 1
        assert_eq!(body[8..12], 4u32.to_le_bytes()); // num_nodes
        assert_eq!(body[12..16], 42u32.to_le_bytes()); // max_iterations
        assert_eq!(body[16..24], 5u64.to_le_bytes()); // num_edges
        assert_eq!(body[24..32], 0.9f64.to_le_bytes()); // damping
        assert_eq!(body[32..40], 1e-7f64.to_le_bytes()); // tolerance
        assert_eq!(body[40..48], [0, 0, 0, 0, 1, 0, 0, 0]); // edge 0 -> 1
        let body = encode_binary(&matmul());
        assert_eq!(body.len(), MATMUL_HEADER_LEN + 2 * 4 * 8);
        assert_eq!(body[4..8], [1, 0, 2, 0]); // version 1, kind 2
        assert_eq!(body[8..16], [2, 0, 0, 0, 0, 0, 0, 0]); // n, reserved
        assert_eq!(body[16..24], 1.0f64.to_le_bytes()); // a[0]
        assert_eq!(body[48..56], 5.0f64.to_le_bytes()); // b[0]
    }

    #[test]
    fn every_malformed_header_has_its_error() {
        let good = encode_binary(&pagerank());
        let with = |at: usize, bytes: &[u8]| {
            let mut body = good.clone();
            body[at..at + bytes.len()].copy_from_slice(bytes);
            body
        };
        let cases: [(Vec<u8>, BinaryError); 8] = [
            (Vec::new(), BinaryError::Truncated { needed: 8, len: 0 }),
            (
                b"RKIN\x01\x00".to_vec(),
                BinaryError::Truncated { needed: 8, len: 6 },
            ),
            (
                good[..39].to_vec(),
                BinaryError::Truncated {
                    needed: PAGERANK_HEADER_LEN,
                    len: 39,
                },
            ),
            (with(0, b"{\"nu"), BinaryError::BadMagic(*b"{\"nu")),
            (with(4, &[2, 0]), BinaryError::UnsupportedVersion(2)),
            (with(6, &[9, 0]), BinaryError::UnknownKind(9)),
            (with(16, &u64::MAX.to_le_bytes()), BinaryError::SizeOverflow),
            (
                with(16, &6u64.to_le_bytes()),
                BinaryError::LengthMismatch {
                    expected: 88,
                    len: 80,
                },
            ),
        ];
        for (body, error) in cases {
            assert_eq!(decode_binary(&body), Err(error), "{body:?}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode_binary(&trailing),
            Err(BinaryError::LengthMismatch {
                expected: 80,
                len: 81
            })
        );
        let mut reserved = encode_binary(&matmul());
        reserved[12] = 1;
        assert_eq!(
            decode_binary(&reserved),
            Err(BinaryError::ReservedNotZero(1))
        );
        let mut huge_n = encode_binary(&matmul());
        huge_n[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_binary(&huge_n), Err(BinaryError::SizeOverflow));
    }

    #[test]
    fn values_are_validated_like_json() {
        let KernelRequest::PageRank(mut input) = pagerank() else {
            panic!("pagerank")
        };
        input.damping = f64::NAN;
        let body = encode_binary(&KernelRequest::PageRank(input));
        let err = parse_request_binary(PAGERANK, &body).expect_err("NaN damping");
        assert!(
            matches!(err, KernelError::InvalidInput(ref m) if m.contains("damping")),
            "{err:?}"
        );
        let KernelRequest::MatMul(mut input) = matmul() else {
            panic!("matmul")
        };
        input.b[3] = f64::INFINITY;
        let body = encode_binary(&KernelRequest::MatMul(input));
        let err = parse_request_binary(MATMUL, &body).expect_err("infinite b");
        assert_eq!(
            err,
            KernelError::InvalidInput("`b`[3] is not a finite number".into())
        );
    }

    #[test]
    fn the_route_must_match_the_body() {
        let body = encode_binary(&matmul());
        assert_eq!(
            parse_request_binary(PAGERANK, &body),
            Err(KernelError::BadRequest(
                "the body holds a linalg/matmul input, the route is graph/pagerank".into()
            ))
        );
        assert_eq!(
            parse_request_binary("graph/nope", &body),
            Err(KernelError::UnknownKernel("graph/nope".into()))
        );
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            BinaryError::BadMagic(*b"{\"nu").to_string(),
            "the body starts with [7b, 22, 6e, 75], not the magic \"RKIN\" of \
             application/vnd.rustkernel.kernel-input.v1"
        );
        assert_eq!(
            KernelError::from(BinaryError::UnsupportedVersion(7)).to_string(),
            "bad request body: layout version 7 is not supported (this service reads 1)"
        );
    }
}
