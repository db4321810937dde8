//! Raw config structs and validation.
use std::path::Path;
use super::Config;

/// A config that cannot be used, with the field path and line where known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        ConfigError(format!("{}: {err}", path.display()))
    }
}

pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    todo!("{text} {origin}")
}
