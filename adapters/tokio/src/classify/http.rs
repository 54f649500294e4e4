//! The ready [`ResponseClassifier`] for HTTP: which statuses of an `http::Response` are
//! failures, of which kind.

use std::fmt;
use std::time::Duration;

use ::http::{HeaderMap, Response, StatusCode, header};
use rustkernel_core::error::ErrorKind;

use super::{ResponseClassifier, Verdict};

/// The first status the table holds (client errors start here).
const FIRST: u16 = 400;
/// The last status the table holds (server errors end here).
const LAST: u16 = 599;
/// How many statuses the table holds.
const STATUSES: usize = (LAST - FIRST + 1) as usize;

/// Classifies `http::Response`s by status: by default every server error (5xx) and
/// `429 Too Many Requests` are failures, everything else a success. Configurable per status.
///
/// | Status | Default verdict |
/// |---|---|
/// | 502 Bad Gateway, 503 Service Unavailable | `Failure(Unavailable)` |
/// | 504 Gateway Timeout | `Failure(Timeout)` |
/// | every other 5xx (500 ...) | `Failure(Transient)` |
/// | 429 Too Many Requests | `Failure(ResourceExhausted)` |
/// | every other status | `Success` (a 4xx is the client's mistake; the server answered) |
///
/// Only client and server errors (400 to 599) can be given another verdict; a 1xx, 2xx or 3xx,
/// or a status beyond 599, is always a success (a closure classifier can decide otherwise).
/// A failing response's `Retry-After` in seconds is a retry hint (see
/// [`ResponseClassifier::retry_after`]); [`retry_after_header`](Self::retry_after_header)
/// turns that off. A `Copy` value: its table is 200 bytes, no allocation.
///
/// ```
/// use http::StatusCode;
/// use rustkernel_tokio::classify::{HttpClassifier, Verdict};
/// use rustkernel_tokio::resilience::ErrorKind;
///
/// let classifier = HttpClassifier::new()
///     // A 501 is a bug, not an outage: retry cannot help, the breaker ignores it.
///     .status(StatusCode::NOT_IMPLEMENTED, Verdict::Ignore)
///     // This upstream answers 409 when it is overloaded.
///     .status(StatusCode::CONFLICT, Verdict::Failure(ErrorKind::ResourceExhausted));
/// assert_eq!(classifier.verdict(StatusCode::INTERNAL_SERVER_ERROR), Verdict::Failure(ErrorKind::Transient));
/// assert_eq!(classifier.verdict(StatusCode::NOT_IMPLEMENTED), Verdict::Ignore);
/// assert_eq!(classifier.verdict(StatusCode::NOT_FOUND), Verdict::Success);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpClassifier {
    /// The verdict of each status from 400 to 599.
    table: [Verdict; STATUSES],
    retry_after_header: bool,
}

impl HttpClassifier {
    /// Server errors (5xx) and 429 are failures (the table above); the `Retry-After` of a
    /// failing response is a retry hint.
    #[must_use]
    pub const fn new() -> Self {
        Self::successes()
            .server_errors(Verdict::Failure(ErrorKind::Transient))
            .set(
                StatusCode::BAD_GATEWAY,
                Verdict::Failure(ErrorKind::Unavailable),
            )
            .set(
                StatusCode::SERVICE_UNAVAILABLE,
                Verdict::Failure(ErrorKind::Unavailable),
            )
            .set(
                StatusCode::GATEWAY_TIMEOUT,
                Verdict::Failure(ErrorKind::Timeout),
            )
            .set(
                StatusCode::TOO_MANY_REQUESTS,
                Verdict::Failure(ErrorKind::ResourceExhausted),
            )
    }

    /// Every status a success: the start for a classifier that names its failures one by one.
    #[must_use]
    pub const fn successes() -> Self {
        Self {
            table: [Verdict::Success; STATUSES],
            retry_after_header: true,
        }
    }

    /// Gives every server error (500 to 599) `verdict`.
    #[must_use]
    pub const fn server_errors(mut self, verdict: Verdict) -> Self {
        let (_, mut rest) = self.table.split_at_mut((500 - FIRST) as usize);
        while let [first, tail @ ..] = rest {
            *first = verdict;
            rest = tail;
        }
        self
    }

    /// Gives `status` `verdict`.
    ///
    /// # Panics
    /// When `status` is not a client or server error (400 to 599), which this classifier
    /// always counts as a success; use [`try_status`](Self::try_status) to get an error.
    #[must_use]
    #[track_caller]
    pub fn status(self, status: StatusCode, verdict: Verdict) -> Self {
        rustkernel_core::error::valid_or_panic(
            self.try_status(status, verdict),
            "status for HttpClassifier",
        )
    }

    /// Gives `status` `verdict`.
    ///
    /// # Errors
    /// [`NotAnErrorStatus`] when `status` is not a client or server error (400 to 599).
    pub const fn try_status(
        self,
        status: StatusCode,
        verdict: Verdict,
    ) -> Result<Self, NotAnErrorStatus> {
        if index_of(status).is_none() {
            return Err(NotAnErrorStatus(status));
        }
        Ok(self.set(status, verdict))
    }

    /// Whether the `Retry-After` header (in seconds) of a failing response sets the wait before
    /// the next retry (default `true`). A date in the header is not read.
    #[must_use]
    pub const fn retry_after_header(mut self, read: bool) -> Self {
        self.retry_after_header = read;
        self
    }

    /// What a response with `status` counts as.
    #[must_use]
    #[allow(
        clippy::indexing_slicing,
        reason = "index_of gives only indices of the table"
    )]
    pub const fn verdict(&self, status: StatusCode) -> Verdict {
        match index_of(status) {
            Some(index) => self.table[index],
            None => Verdict::Success,
        }
    }

    /// The wait a `Retry-After` header in whole seconds asks for, if reading it is on.
    #[must_use]
    pub fn retry_after_of(&self, headers: &HeaderMap) -> Option<Duration> {
        if !self.retry_after_header {
            return None;
        }
        let seconds = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
        seconds.trim().parse().ok().map(Duration::from_secs)
    }

    /// Sets `status`, when it lies in the table.
    #[allow(
        clippy::indexing_slicing,
        reason = "index_of gives only indices of the table"
    )]
    const fn set(mut self, status: StatusCode, verdict: Verdict) -> Self {
        if let Some(index) = index_of(status) {
            self.table[index] = verdict;
        }
        self
    }
}

/// The table index of `status`, when it is a client or server error.
const fn index_of(status: StatusCode) -> Option<usize> {
    let code = status.as_u16();
    if code >= FIRST && code <= LAST {
        Some((code - FIRST) as usize)
    } else {
        None
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> ResponseClassifier<Response<B>> for HttpClassifier {
    #[inline]
    fn classify_response(&self, response: &Response<B>) -> Verdict {
        self.verdict(response.status())
    }

    fn retry_after(&self, response: &Response<B>) -> Option<Duration> {
        self.retry_after_of(response.headers())
    }
}

impl fmt::Debug for HttpClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The statuses that are not a success, not 200 table entries.
        let mut others = f.debug_map();
        for (code, verdict) in (FIRST..).zip(self.table.iter()) {
            if *verdict != Verdict::Success {
                others.entry(&code, verdict);
            }
        }
        others.finish()?;
        write!(f, " (retry_after_header: {})", self.retry_after_header)
    }
}

/// A status that is not a client or server error (400 to 599) was given to
/// [`HttpClassifier::try_status`]; it carries the status back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotAnErrorStatus(pub StatusCode);

impl fmt::Display for NotAnErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a client or server error (400 to 599): it is always a success",
            self.0
        )
    }
}

impl std::error::Error for NotAnErrorStatus {}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: StatusCode) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = status;
        response
    }

    #[test]
    fn the_default_table() {
        let classifier = HttpClassifier::new();
        let verdict = |code: u16| {
            classifier.classify_response(&response(StatusCode::from_u16(code).expect("valid")))
        };
        assert_eq!(verdict(200), Verdict::Success);
        assert_eq!(verdict(302), Verdict::Success);
        assert_eq!(verdict(404), Verdict::Success);
        assert_eq!(verdict(429), Verdict::Failure(ErrorKind::ResourceExhausted));
        assert_eq!(verdict(500), Verdict::Failure(ErrorKind::Transient));
        assert_eq!(verdict(502), Verdict::Failure(ErrorKind::Unavailable));
        assert_eq!(verdict(503), Verdict::Failure(ErrorKind::Unavailable));
        assert_eq!(verdict(504), Verdict::Failure(ErrorKind::Timeout));
        assert_eq!(verdict(599), Verdict::Failure(ErrorKind::Transient));
        assert_eq!(verdict(600), Verdict::Success);
        assert_eq!(HttpClassifier::default(), classifier);
    }

    #[test]
    fn statuses_are_configurable_within_4xx_and_5xx() {
        let classifier = HttpClassifier::successes()
            .status(StatusCode::NOT_FOUND, Verdict::Ignore)
            .server_errors(Verdict::Failure(ErrorKind::Unavailable));
        assert_eq!(classifier.verdict(StatusCode::NOT_FOUND), Verdict::Ignore);
        assert_eq!(
            classifier.verdict(StatusCode::TOO_MANY_REQUESTS),
            Verdict::Success
        );
        assert_eq!(
            classifier.verdict(StatusCode::GATEWAY_TIMEOUT),
            Verdict::Failure(ErrorKind::Unavailable)
        );
        assert_eq!(
            HttpClassifier::new().try_status(StatusCode::OK, Verdict::Ignore),
            Err(NotAnErrorStatus(StatusCode::OK))
        );
        let debug = format!("{classifier:?}");
        assert!(
            debug.starts_with("{404: Ignore, 500: Failure(Unavailable)"),
            "{debug}"
        );
    }

    #[test]
    #[should_panic(expected = "200 OK is not a client or server error")]
    fn a_success_status_cannot_be_set() {
        let _ =
            HttpClassifier::new().status(StatusCode::OK, Verdict::Failure(ErrorKind::Transient));
    }

    #[test]
    fn retry_after_in_seconds_is_a_hint() {
        let mut busy = response(StatusCode::SERVICE_UNAVAILABLE);
        busy.headers_mut()
            .insert(header::RETRY_AFTER, "7".parse().expect("valid header"));
        let classifier = HttpClassifier::new();
        assert_eq!(classifier.retry_after(&busy), Some(Duration::from_secs(7)));
        assert_eq!(
            classifier.retry_after_header(false).retry_after(&busy),
            None
        );
        busy.headers_mut().insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT"
                .parse()
                .expect("valid header"),
        );
        assert_eq!(classifier.retry_after(&busy), None);
    }
}
