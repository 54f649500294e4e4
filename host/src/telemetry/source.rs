//! Where `rustkernel serve` reads edge controllers' telemetry from, and the `[telemetry]` table
//! of the configuration file.
//!
//! # Sources
//! A source is written as text, on the command line (`--telemetry SOURCE`, repeatable) or in
//! the file (`[telemetry] sources = [...]`):
//!
//! | Written | What is read |
//! |---|---|
//! | `-` | standard input, until it ends |
//! | `PATH` or `file:PATH` | a file, from its start, then followed as it grows (like `tail -F`: a truncated file is read again from its start, a replaced one is reopened). A serial port's device file (`/dev/ttyUSB0`, set up beforehand with `stty -F /dev/ttyUSB0 115200 raw`) is read the same way |
//! | `tcp://HOST:PORT` or `tcp:HOST:PORT` | a TCP listener that devices or a serial-to-TCP bridge connect to; each connection is its own stream. Port 0 picks a free port (logged) |
//!
//! Each may end with `?framing=auto` (the default), `?framing=lines` (`@RK <hex>` lines among
//! text, as the firmware's semihosting output) or `?framing=raw` (binary COBS frames, each ended
//! by a zero byte). `auto` decides per stream on the first marker or zero byte: `@RK ` first
//! means lines, a zero byte first means raw.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How frames are carried in a source's byte stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SourceFraming {
    /// Decided per stream: `@RK ` before any zero byte means lines, a zero byte first means raw.
    #[default]
    Auto,
    /// `@RK <hex>` lines among text.
    Lines,
    /// Raw COBS frames, each ended by a zero byte.
    Raw,
}

impl SourceFraming {
    fn as_str(self) -> &'static str {
        match self {
            SourceFraming::Auto => "auto",
            SourceFraming::Lines => "lines",
            SourceFraming::Raw => "raw",
        }
    }
}

/// What a source reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Standard input (`-`).
    Stdin,
    /// A file (or a serial port's device file), followed as it grows.
    File(PathBuf),
    /// A TCP listen address.
    Tcp(SocketAddr),
}

/// One telemetry source: what to read and how frames are carried.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TelemetrySource {
    /// What it reads.
    pub kind: SourceKind,
    /// How frames are carried.
    pub framing: SourceFraming,
}

/// Why a source was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The text is empty.
    Empty,
    /// `tcp:` is not followed by `HOST:PORT` with a numeric IP address.
    TcpAddress {
        /// What followed `tcp:`.
        address: String,
        /// The parser's reason.
        reason: String,
    },
    /// The part after `?` is not `framing=auto|lines|raw`.
    Option(String),
    /// A scheme this version does not read (`serial:`, `udp:`, ...).
    Scheme(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Empty => f.write_str("empty telemetry source"),
            SourceError::TcpAddress { address, reason } => write!(
                f,
                "{address:?} is not a TCP listen address IP:PORT (such as 127.0.0.1:9000): {reason}"
            ),
            SourceError::Option(option) => write!(
                f,
                "unknown source option {option:?} (expected framing=auto, framing=lines or framing=raw)"
            ),
            SourceError::Scheme(scheme) => write!(
                f,
                "unknown source scheme {scheme:?} (expected a path, file:PATH, tcp://IP:PORT or -; \
                 read a serial port through its device file path)"
            ),
        }
    }
}

impl std::error::Error for SourceError {}

impl FromStr for TelemetrySource {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SourceError::Empty);
        }
        let (body, framing) = match text.rsplit_once('?') {
            Some((body, option)) => {
                let framing = match option {
                    "framing=auto" => SourceFraming::Auto,
                    "framing=lines" => SourceFraming::Lines,
                    "framing=raw" => SourceFraming::Raw,
                    other => return Err(SourceError::Option(other.to_owned())),
                };
                (body, framing)
            }
            None => (text, SourceFraming::Auto),
        };
        if body.is_empty() {
            return Err(SourceError::Empty);
        }
        let kind = if body == "-" {
            SourceKind::Stdin
        } else if let Some(address) = body
            .strip_prefix("tcp://")
            .or_else(|| body.strip_prefix("tcp:"))
        {
            let parsed =
                address
                    .parse::<SocketAddr>()
                    .map_err(|error| SourceError::TcpAddress {
                        address: address.to_owned(),
                        reason: error.to_string(),
                    })?;
            SourceKind::Tcp(parsed)
        } else if let Some(path) = body.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SourceError::Empty);
            }
            SourceKind::File(PathBuf::from(path))
        } else {
            // `scheme:rest` with a short alphabetic scheme and no path separator before the
            // colon is a scheme this version does not know (a Windows drive letter is not
            // a concern: the service runs on Unix).
            if let Some((scheme, _)) = body.split_once(':')
                && !scheme.is_empty()
                && scheme.len() <= 10
                && scheme.chars().all(|c| c.is_ascii_alphabetic())
            {
                return Err(SourceError::Scheme(scheme.to_owned()));
            }
            SourceKind::File(PathBuf::from(body))
        };
        Ok(Self { kind, framing })
    }
}

impl fmt::Display for TelemetrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SourceKind::Stdin => f.write_str("-")?,
            SourceKind::File(path) => write!(f, "file:{}", path.display())?,
            SourceKind::Tcp(address) => write!(f, "tcp://{address}")?,
        }
        if self.framing != SourceFraming::Auto {
            write!(f, "?framing={}", self.framing.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for TelemetrySource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TelemetrySource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[telemetry]` as written: every field optional, unknown fields refused.
///
/// ```toml
/// [telemetry]
/// sources = ["tcp://0.0.0.0:9000", "/var/log/edge/gateway.log?framing=raw"]
/// unknown_after = "30s"        # a device silent this long: its components turn unknown
/// unhealthy_after = "2m"       # ... and this long: unhealthy
/// max_devices = 16             # more are refused (logged, counted)
/// max_components_per_device = 8
/// max_connections = 16         # per TCP source (a full source lets a connection replace the
///                              # quietest from its address; refuses it from another)
/// idle_timeout = "5m"          # a TCP connection that sends nothing this long is closed
/// critical_devices = ["0a386001"]   # their components count for readiness
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    /// The sources (see the [module](self)); `--telemetry` adds to them.
    pub sources: Option<Vec<TelemetrySource>>,
    /// Silence after which a device's components turn `unknown` (default 30 s).
    #[serde(default, with = "humantime_serde::option")]
    pub unknown_after: Option<Duration>,
    /// Silence after which they turn `unhealthy` (default 2 min).
    #[serde(default, with = "humantime_serde::option")]
    pub unhealthy_after: Option<Duration>,
    /// Devices tracked at once (default 16).
    pub max_devices: Option<usize>,
    /// Components tracked per device (default 8).
    pub max_components_per_device: Option<usize>,
    /// Connections at once per TCP source (default 16).
    pub max_connections: Option<usize>,
    /// A TCP connection that sends nothing this long is closed (default 5 min, at least 1 s).
    #[serde(default, with = "humantime_serde::option")]
    pub idle_timeout: Option<Duration>,
    /// Device ids (8 hex digits, as in `/health`) whose components are critical.
    pub critical_devices: Option<Vec<String>>,
}

/// The validated `[telemetry]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The sources.
    pub sources: Vec<TelemetrySource>,
    /// Silence after which a device's components turn `unknown`.
    pub unknown_after: Duration,
    /// Silence after which they turn `unhealthy`.
    pub unhealthy_after: Duration,
    /// Devices tracked at once.
    pub max_devices: usize,
    /// Components tracked per device.
    pub max_components_per_device: usize,
    /// Connections at once per TCP source.
    pub max_connections: usize,
    /// A TCP connection that sends nothing this long is closed.
    pub idle_timeout: Duration,
    /// Devices whose components are critical.
    pub critical_devices: Vec<u32>,
}

/// The most devices a service tracks: the health probe holds 64 components in all.
pub const DEVICE_LIMIT: usize = 32;

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            unknown_after: Duration::from_secs(30),
            unhealthy_after: Duration::from_secs(120),
            max_devices: 16,
            max_components_per_device: 8,
            max_connections: 16,
            idle_timeout: Duration::from_secs(300),
            critical_devices: Vec::new(),
        }
    }
}

/// A field of `[telemetry]` and why its value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfigError {
    /// The field (`telemetry.max_devices`).
    pub field: String,
    /// Why.
    pub reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> TelemetryConfigError {
    TelemetryConfigError {
        field: format!("telemetry.{field}"),
        reason: reason.into(),
    }
}

/// Parses a device id as `/health` writes it: 8 hex digits, an optional `0x` before them.
///
/// # Errors
/// The reason, when it is not 1 to 8 hex digits.
pub fn parse_device_id(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a device id (1 to 8 hex digits, as in edge/0a386001/...)"
        ));
    }
    u32::from_str_radix(digits, 16).map_err(|error| error.to_string())
}

impl TelemetryConfig {
    /// A device's silence thresholds: `unknown_after` (its components turn unknown) and
    /// `unhealthy_after` (unhealthy), kept in order even for a config built by hand.
    #[must_use]
    pub fn silence(&self) -> rustkernel_core::resilience::SilenceConfig {
        let silent_after = self.unknown_after.max(Duration::from_micros(1));
        rustkernel_core::resilience::SilenceConfig {
            silent_after,
            lost_after: self.unhealthy_after.max(silent_after),
        }
    }
}

impl TelemetryFile {
    /// Checks every value over the defaults.
    ///
    /// # Errors
    /// The first refused field.
    pub fn resolve(&self) -> Result<TelemetryConfig, TelemetryConfigError> {
        let default = TelemetryConfig::default();
        let config = TelemetryConfig {
            sources: self.sources.clone().unwrap_or_default(),
            unknown_after: self.unknown_after.unwrap_or(default.unknown_after),
            unhealthy_after: self.unhealthy_after.unwrap_or(default.unhealthy_after),
            max_devices: self.max_devices.unwrap_or(default.max_devices),
            max_components_per_device: self
                .max_components_per_device
                .unwrap_or(default.max_components_per_device),
            max_connections: self.max_connections.unwrap_or(default.max_connections),
            idle_timeout: self.idle_timeout.unwrap_or(default.idle_timeout),
            critical_devices: self
                .critical_devices
                .iter()
                .flatten()
                .map(|id| parse_device_id(id))
                .collect::<Result<_, _>>()
                .map_err(|reason| refuse("critical_devices", reason))?,
        };
        if config.unknown_after < Duration::from_millis(1) {
            return Err(refuse("unknown_after", "must be at least 1ms"));
        }
        if config.unhealthy_after <= config.unknown_after {
            return Err(refuse(
                "unhealthy_after",
                format!(
                    "must be longer than unknown_after ({})",
                    humantime::format_duration(config.unknown_after)
                ),
            ));
        }
        if config.max_devices == 0 || config.max_devices > DEVICE_LIMIT {
            return Err(refuse(
                "max_devices",
                format!("must be 1 to {DEVICE_LIMIT}"),
            ));
        }
        if config.max_components_per_device == 0 || config.max_components_per_device > 32 {
            return Err(refuse("max_components_per_device", "must be 1 to 32"));
        }
        if config.max_connections == 0 || config.max_connections > 1024 {
            return Err(refuse("max_connections", "must be 1 to 1024"));
        }
        if config.idle_timeout < Duration::from_secs(1) {
            return Err(refuse("idle_timeout", "must be at least 1s"));
        }
        let mut seen = std::collections::HashSet::new();
        for source in &config.sources {
            if !seen.insert(source.kind.clone()) {
                return Err(refuse("sources", format!("{source} is listed twice")));
            }
        }
        if config
            .sources
            .iter()
            .filter(|source| source.kind == SourceKind::Stdin)
            .count()
            > 1
        {
            return Err(refuse("sources", "standard input (-) can be read once"));
        }
        Ok(config)
    }
}

impl TelemetryConfig {
    /// The settings as a file (every field set), for `config show`.
    #[must_use]
    pub fn to_file(&self) -> TelemetryFile {
        TelemetryFile {
            sources: Some(self.sources.clone()),
            unknown_after: Some(self.unknown_after),
            unhealthy_after: Some(self.unhealthy_after),
            max_devices: Some(self.max_devices),
            max_components_per_device: Some(self.max_components_per_device),
            max_connections: Some(self.max_connections),
            idle_timeout: Some(self.idle_timeout),
            critical_devices: Some(
                self.critical_devices
                    .iter()
                    .map(|id| format!("{id:08x}"))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TelemetrySource, SourceError> {
        text.parse()
    }

    #[test]
    fn every_written_form_parses_and_prints_back() {
        let cases = [
            ("-", SourceKind::Stdin, SourceFraming::Auto, "-"),
            (
                "tcp://127.0.0.1:9000",
                SourceKind::Tcp("127.0.0.1:9000".parse().expect("addr")),
                SourceFraming::Auto,
                "tcp://127.0.0.1:9000",
            ),
            (
                "tcp:[::1]:0?framing=raw",
                SourceKind::Tcp("[::1]:0".parse().expect("addr")),
                SourceFraming::Raw,
                "tcp://[::1]:0?framing=raw",
            ),
            (
                "/var/log/edge.log",
                SourceKind::File("/var/log/edge.log".into()),
                SourceFraming::Auto,
                "file:/var/log/edge.log",
            ),
            (
                "file:relative/x.log?framing=lines",
                SourceKind::File("relative/x.log".into()),
                SourceFraming::Lines,
                "file:relative/x.log?framing=lines",
            ),
            (
                "/dev/ttyUSB0?framing=raw",
                SourceKind::File("/dev/ttyUSB0".into()),
                SourceFraming::Raw,
                "file:/dev/ttyUSB0?framing=raw",
            ),
        ];
        for (text, kind, framing, shown) in cases {
            let source = parse(text).expect(text);
            assert_eq!(source, TelemetrySource { kind, framing }, "{text}");
            assert_eq!(source.to_string(), shown);
            assert_eq!(parse(shown).expect(shown), source, "round trip of {shown}");
        }
    }

    #[test]
    fn bad_sources_get_typed_errors() {
        assert_eq!(parse(""), Err(SourceError::Empty));
        assert_eq!(parse("?framing=raw"), Err(SourceError::Empty));
        assert_eq!(parse("file:"), Err(SourceError::Empty));
        assert!(matches!(
            parse("tcp://localhost:9000"),
            Err(SourceError::TcpAddress { .. })
        ));
        assert!(matches!(
            parse("tcp:127.0.0.1"),
            Err(SourceError::TcpAddress { .. })
        ));
        assert_eq!(
            parse("x.log?framing=cobs"),
            Err(SourceError::Option("framing=cobs".into()))
        );
        assert_eq!(
            parse("serial:/dev/ttyUSB0"),
            Err(SourceError::Scheme("serial".into()))
        );
        let message = parse("udp://1.2.3.4:5").expect_err("refused").to_string();
        assert!(
            message.contains("unknown source scheme \"udp\""),
            "{message}"
        );
    }

    #[test]
    fn the_table_resolves_and_names_bad_fields() {
        let file: TelemetryFile = toml::from_str(
            r#"
            sources = ["tcp://127.0.0.1:0", "-"]
            unknown_after = "5s"
            unhealthy_after = "1m"
            critical_devices = ["0x0a386001", "ff"]
            idle_timeout = "90s"
            "#,
        )
        .expect("parses");
        let config = file.resolve().expect("valid");
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.unknown_after, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(90));
        let default = TelemetryFile::default().resolve().expect("valid");
        assert_eq!(default.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.critical_devices, vec![0x0a38_6001, 0xff]);
        let back = config.to_file().resolve().expect("round trip");
        assert_eq!(back, config);

        let bad = |text: &str| {
            toml::from_str::<TelemetryFile>(text)
                .expect("parses")
                .resolve()
                .expect_err("refused")
                .field
        };
        assert_eq!(
            bad("unhealthy_after = \"10s\""),
            "telemetry.unhealthy_after"
        );
        assert_eq!(bad("max_devices = 0"), "telemetry.max_devices");
        assert_eq!(bad("max_devices = 1000"), "telemetry.max_devices");
        assert_eq!(bad("idle_timeout = \"500ms\""), "telemetry.idle_timeout");
        assert_eq!(
            bad("critical_devices = [\"nope\"]"),
            "telemetry.critical_devices"
        );
        assert_eq!(bad("sources = [\"-\", \"-\"]"), "telemetry.sources");
        // A bad source is a parse error that names it.
        let error = toml::from_str::<TelemetryFile>("sources = [\"serial:/dev/x\"]")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("unknown source scheme"), "{error}");
    }
}
