//! Where the connection settings come from: command line, environment, config file.
//!
//! Precedence, highest first: a command-line flag, its environment variable
//! (`STATESYNC_*`), the TOML config file (`--config`, else
//! `<config dir>/statesync/cli.toml` if it exists), the built-in default.

use std::fs;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::url::{ServerUrl, DEFAULT_SERVER};

/// The contents of `cli.toml`; every key is optional.
///
/// ```toml
/// server = "tcp://192.168.1.10:7878"
/// device = "laptop"
/// key_file = "~/.config/statesync/laptop.key"   # or: key = "9f86d0…"
/// ```
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Server URL, as `--server`.
    pub server: Option<String>,
    /// Device name, as `--device`.
    pub device: Option<String>,
    /// Device key in hex, as `--key`.
    pub key: Option<String>,
    /// File holding the key in hex, as `--key-file` (relative to the config file).
    pub key_file: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
        let text = fs::read_to_string(path).map_err(|e| CliError::Config {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| CliError::Config {
            path: path.to_owned(),
            detail: e.message().to_owned(),
        })
    }
}

/// The default config file location: `<config dir>/statesync/cli.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("statesync").join("cli.toml"))
}

/// Connection settings after every source was consulted.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the server is.
    pub server: ServerUrl,
    /// This client's device name, if configured.
    pub device: Option<String>,
    /// This client's key, if configured.
    pub key: Option<Vec<u8>>,
    /// Print JSON instead of text.
    pub json: bool,
}

impl Settings {
    /// Resolves the settings from parsed arguments (`matches` tells which came
    /// from the command line and which from the environment); `identity` is a
    /// `--device` given after the command name, which wins over one before it.
    pub fn resolve(
        global: &GlobalArgs,
        identity: Option<&str>,
        matches: &ArgMatches,
    ) -> Result<Settings, CliError> {
        let config = match &global.config {
            Some(path) => Some((ConfigFile::load(path)?, path.clone())),
            None => match default_config_path().filter(|p| p.is_file()) {
                Some(path) => Some((ConfigFile::load(&path)?, path)),
                None => None,
            },
        };
        let (file, config_path) = match config {
            Some((file, path)) => (file, Some(path)),
            None => (ConfigFile::default(), None),
        };

        let server_text = global
            .server
            .clone()
            .or(file.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = ServerUrl::parse(&server_text)?;
        let device = identity
            .map(str::to_owned)
            .or_else(|| global.device.clone())
            .or(file.device);

        let key = resolve_key(global, matches, file.key, file.key_file, config_path)?;
        Ok(Settings {
            server,
            device,
            key,
            json: global.json,
        })
    }

    /// The device name, or a usage error saying how to give one.
    pub fn require_device(&self) -> Result<&str, CliError> {
        self.device.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no device name; pass --device NAME, set STATESYNC_DEVICE, or put `device = \"NAME\"` in the config file"
                    .into(),
            )
        })
    }

    /// The key, or a usage error saying how to give one.
    pub fn require_key(&self) -> Result<&[u8], CliError> {
        self.key.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no device key; pass --key HEX or --key-file PATH (or STATESYNC_KEY / STATESYNC_KEY_FILE, or the config file); `host-server device add NAME` prints one"
                    .into(),
            )
        })
    }
}

/// Where a key came from, by precedence (higher wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Environment,
    CommandLine,
}

fn level_of(matches: &ArgMatches, id: &str) -> Option<Level> {
    match matches.value_source(id)? {
        ValueSource::CommandLine => Some(Level::CommandLine),
        ValueSource::EnvVariable => Some(Level::Environment),
        _ => None,
    }
}

fn resolve_key(
    global: &GlobalArgs,
    matches: &ArgMatches,
    file_key: Option<String>,
    file_key_file: Option<PathBuf>,
    config_path: Option<PathBuf>,
) -> Result<Option<Vec<u8>>, CliError> {
    let key_level = global.key.as_ref().and(level_of(matches, "key"));
    let file_level = global.key_file.as_ref().and(level_of(matches, "key_file"));
    let best = key_level.max(file_level);
    if best.is_some() && key_level == file_level {
        return Err(CliError::Usage(
            "both a key and a key file were given at the same level; keep only one of --key / --key-file".into(),
        ));
    }
    if best.is_some() && best == key_level {
        let text = global.key.as_deref().unwrap_or_default();
        return parse_key(text, "--key").map(Some);
    }
    if let Some(path) = global.key_file.as_ref().filter(|_| best.is_some()) {
        return read_key_file(path).map(Some);
    }
    match (file_key, file_key_file) {
        (Some(_), Some(_)) => Err(CliError::Config {
            path: config_path.unwrap_or_default(),
            detail: "both `key` and `key_file` are set; keep only one".into(),
        }),
        (Some(text), None) => parse_key(&text, "the config file's `key`").map(Some),
        (None, Some(path)) => {
            let base = config_path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            read_key_file(&base.join(path)).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// Parses a key given as hex digits (whitespace around it is ignored).
pub fn parse_key(text: &str, source: &str) -> Result<Vec<u8>, CliError> {
    let key = hex::decode(text.trim()).map_err(|e| {
        CliError::Usage(format!(
            "{source} is not a hex key ({e}); give the hex digits `host-server device add` printed"
        ))
    })?;
    if key.is_empty() {
        return Err(CliError::Usage(format!(
            "{source} is empty; give the hex digits `host-server device add` printed"
        )));
    }
    Ok(key)
}

/// Reads a key file holding the key in hex.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let text = fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read key file `{}`: {e}; check --key-file",
            path.display()
        ))
    })?;
    parse_key(&text, &format!("key file `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys_parse_and_unknown_keys_are_refused() {
        let ok: ConfigFile =
            toml::from_str("server = \"tcp://h:1\"\ndevice = \"d\"\nkey = \"00ff\"").unwrap();
        assert_eq!(ok.device.as_deref(), Some("d"));
        assert!(toml::from_str::<ConfigFile>("sever = \"x\"").is_err());
    }

    #[test]
    fn keys_must_be_hex() {
        assert_eq!(parse_key(" 00ff\n", "k").unwrap(), vec![0, 0xff]);
        assert!(parse_key("xyz", "k").is_err());
        assert!(parse_key("", "k").is_err());
    }
}
