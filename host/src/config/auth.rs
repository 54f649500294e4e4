//! `[auth]`: bearer tokens on the execute path (and any admin route), read from a file or an
//! environment variable named in the config, never from the command line. Off by default on a
//! loopback address; required on any other address unless the config says `auth.mode = "none"`
//! explicitly. The service checks them ([`service::auth`](crate::service::auth)).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[auth]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `"token"` or `"none"`; unset: no auth on a loopback address, tokens required elsewhere.
    pub mode: Option<AuthMode>,
    /// A file of bearer tokens, one per line (blank lines and `#` comments skipped); it must
    /// not be readable by group or others.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding comma-separated bearer tokens.
    pub token_env: Option<String>,
    /// Whether `/metrics` needs a token too (default: open, for Prometheus).
    pub protect_metrics: Option<bool>,
    /// Whether the `/health` routes need a token too (default: open, for Kubernetes).
    pub protect_health: Option<bool>,
    /// Accept a token file that group or others can read (logged as a warning).
    pub allow_readable_token_file: Option<bool>,
}

/// How requests to protected endpoints are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` with one of the configured tokens.
    Token,
    /// No authentication (say so explicitly to bind a non-loopback address without tokens).
    None,
}

/// Who may call protected endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `None`: no authentication.
    pub mode: AuthMode,
    /// The accepted bearer tokens (never printed).
    pub tokens: Vec<String>,
    /// Where they came from, for `config show` (`file:/path` or `env:NAME`).
    pub token_source: Option<String>,
    /// `/metrics` needs a token.
    pub protect_metrics: bool,
    /// The health routes need a token.
    pub protect_health: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

/// Resolves the `[auth]` section for a service listening on `address`; `base` is the config
/// file's directory (a relative `token_file` is read from it).
pub(crate) fn resolve(
    file: &AuthFile,
    address: SocketAddr,
    base: Option<&Path>,
) -> Result<AuthConfig, ConfigError> {
    let (tokens, token_source) = load_tokens(file, base)?;
    let mode = match file.mode {
        Some(mode) => mode,
        None if !tokens.is_empty() => AuthMode::Token,
        None if address.ip().is_loopback() => AuthMode::None,
        None => {
            return Err(ConfigError::Invalid {
                field: "auth".to_owned(),
                reason: format!(
                    "the service binds {address}, which is not a loopback address: configure \
                     tokens (auth.token_file or auth.token_env), or set auth.mode = \"none\" to \
                     run without authentication"
                ),
            });
        }
    };
    if mode == AuthMode::Token && tokens.is_empty() {
        return Err(ConfigError::Invalid {
            field: "auth.mode".to_owned(),
            reason: "\"token\" needs auth.token_file or auth.token_env with at least one token"
                .to_owned(),
        });
    }
    Ok(AuthConfig {
        mode,
        tokens,
        token_source,
        protect_metrics: file.protect_metrics.unwrap_or(false),
        protect_health: file.protect_health.unwrap_or(false),
    })
}

fn load_tokens(
    file: &AuthFile,
    base: Option<&Path>,
) -> Result<(Vec<String>, Option<String>), ConfigError> {
    let mut tokens = Vec::new();
    let mut sources = Vec::new();
    if let Some(path) = &file.token_file {
        let path = match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.clone(),
        };
        check_permissions(&path, file.allow_readable_token_file.unwrap_or(false))?;
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Invalid {
            field: "auth.token_file".to_owned(),
            reason: format!("cannot read {}: {error}", path.display()),
        })?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
        sources.push(format!("file:{}", path.display()));
    }
    if let Some(name) = &file.token_env {
        let value = std::env::var(name).map_err(|_| ConfigError::Invalid {
            field: "auth.token_env".to_owned(),
            reason: format!("environment variable {name} is not set (or not UTF-8)"),
        })?;
        tokens.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|token| !token.is_empty())
                .map(str::to_owned),
        );
        sources.push(format!("env:{name}"));
    }
    if let Some(short) = tokens.iter().find(|token| token.len() < 16) {
        let _ = short;
        return Err(ConfigError::Invalid {
            field: "auth".to_owned(),
            reason: "every token must be at least 16 characters long".to_owned(),
        });
    }
    let source = (!sources.is_empty()).then(|| sources.join(", "));
    Ok((tokens, source))
}

#[cfg(unix)]
fn check_permissions(path: &Path, allow_readable: bool) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|error| ConfigError::Invalid {
        field: "auth.token_file".to_owned(),
        reason: format!("cannot read {}: {error}", path.display()),
    })?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        if allow_readable {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the token file is readable by group or others (allowed by auth.allow_readable_token_file)"
            );
        } else {
            return Err(ConfigError::Invalid {
                field: "auth.token_file".to_owned(),
                reason: format!(
                    "{} is readable by group or others (mode {:o}): run `chmod 600` on it, or set \
                     auth.allow_readable_token_file = true",
                    path.display(),
                    mode & 0o777
                ),
            });
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _allow_readable: bool) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_tokens_or_an_explicit_none() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap_or_else(|_| unreachable!());
        let error = resolve(&AuthFile::default(), public, None).expect_err("refused");
        assert!(
            error.to_string().contains("not a loopback address"),
            "{error}"
        );
        let none = AuthFile {
            mode: Some(AuthMode::None),
            ..AuthFile::default()
        };
        assert_eq!(
            resolve(&none, public, None).map(|a| a.mode).ok(),
            Some(AuthMode::None)
        );
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            resolve(&AuthFile::default(), loopback, None)
                .map(|a| a.mode)
                .ok(),
            Some(AuthMode::None)
        );
    }
}
