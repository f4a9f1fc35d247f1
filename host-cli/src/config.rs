//! Where the connection settings come from: command line, environment, config file.
//!
//! Precedence, highest first: a command-line flag, its environment variable
//! (`STATESYNC_*`), the TOML config file (`--config`, else
//! `<config dir>/statesync/cli.toml` if it exists), the built-in default.

use std::fs;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use proto_core::auth::DEVICE_KEY_LEN;
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::resilient::RetryPolicy;
use crate::url::{ServerUrl, DEFAULT_SERVER};
use crate::view::Verbosity;

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
    /// File holding the key in hex, as `--key-file`: `~/` is the home directory,
    /// a relative path is relative to the config file's folder.
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
    /// `-q`, `-v` or neither.
    pub verbosity: Verbosity,
    /// How a lost or stalled link is handled.
    pub retry: RetryPolicy,
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
            verbosity: Verbosity::from_flags(global.quiet, global.verbose),
            retry: RetryPolicy::from_args(&global.retry),
        })
    }

    /// True when no text lines are wanted: `--json` or `-q`.
    pub fn quiet(&self) -> bool {
        self.json || self.verbosity == Verbosity::Quiet
    }

    /// True for `-v` (and no `--json`).
    pub fn verbose(&self) -> bool {
        !self.json && self.verbosity == Verbosity::Verbose
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
            let home = dirs::home_dir();
            read_key_file(&config_key_file_path(&path, base, home.as_deref())?).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// Where the config file's `key_file` points: `~` (alone or before a `/`) is
/// `home`, an absolute path is taken as it is, and a relative one is relative
/// to `config_dir`, the folder of the config file.
fn config_key_file_path(
    written: &Path,
    config_dir: &Path,
    home: Option<&Path>,
) -> Result<PathBuf, CliError> {
    match written.strip_prefix("~") {
        Ok(rest) => home.map(|home| home.join(rest)).ok_or_else(|| {
            CliError::Usage(format!(
                "the config file's `key_file = \"{}\"` starts with `~`, but this system has no home directory; write the full path",
                written.display()
            ))
        }),
        Err(_) => Ok(config_dir.join(written)),
    }
}

/// Parses a device key: [`DEVICE_KEY_LEN`] bytes as hex digits (whitespace
/// around them is ignored). Anything else is a usage error naming `source`,
/// so a mistyped key never reaches the server.
pub fn parse_key(text: &str, source: &str) -> Result<Vec<u8>, CliError> {
    const WHAT_A_KEY_IS: &str =
        "a device key is 64 hex digits, as `host-server device add NAME` printed it";
    let text = text.trim();
    let key = hex::decode(text)
        .map_err(|e| CliError::Usage(format!("{source} is not hex ({e}); {WHAT_A_KEY_IS}")))?;
    if key.len() != DEVICE_KEY_LEN {
        return Err(CliError::Usage(format!(
            "{source} has {} hex digits; {WHAT_A_KEY_IS}",
            text.len()
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
    fn config_key_file_expands_tilde_keeps_absolute_and_joins_relative_to_the_config_folder() {
        let config_dir = Path::new("/etc/statesync");
        let home = Some(Path::new("/home/ann"));
        let resolve = |written: &str| config_key_file_path(Path::new(written), config_dir, home);
        assert_eq!(
            resolve("~/.config/statesync/laptop.key").unwrap(),
            Path::new("/home/ann/.config/statesync/laptop.key")
        );
        assert_eq!(resolve("~").unwrap(), Path::new("/home/ann"));
        assert_eq!(
            resolve("/srv/keys/laptop.key").unwrap(),
            Path::new("/srv/keys/laptop.key")
        );
        assert_eq!(
            resolve("keys/laptop.key").unwrap(),
            Path::new("/etc/statesync/keys/laptop.key")
        );
        // `~user` is not expanded: it is an ordinary relative name.
        assert_eq!(
            resolve("~ann/laptop.key").unwrap(),
            Path::new("/etc/statesync/~ann/laptop.key")
        );
        assert!(matches!(
            config_key_file_path(Path::new("~/laptop.key"), config_dir, None),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn keys_must_be_64_hex_digits() {
        let key = format!(" {}\n", "0f".repeat(32));
        assert_eq!(parse_key(&key, "k").unwrap(), [0x0f; 32]);
        for (text, said) in [
            ("00", "--key has 2 hex digits; a device key is 64 hex digits, as `host-server device add NAME` printed it"),
            ("", "--key has 0 hex digits; a device key is 64 hex digits, as `host-server device add NAME` printed it"),
        ] {
            let error = parse_key(text, "--key").unwrap_err();
            assert_eq!(error.to_string(), said);
            assert_eq!(error.exit_code(), crate::error::EXIT_USAGE);
        }
        let not_hex = parse_key(&"zz".repeat(32), "--key").unwrap_err();
        assert!(
            not_hex.to_string().starts_with("--key is not hex ("),
            "{not_hex}"
        );
        assert!(not_hex
            .to_string()
            .ends_with("64 hex digits, as `host-server device add NAME` printed it"));
    }
}
