//! `serve --config FILE`: every `serve` option (and `data`, `database`) from a
//! TOML file; options given as flags or in the environment win over the file.
//!
//! The file's keys are the long option names, with `-` or `_`
//! (`max-sessions = 100`, `ops_listen = "127.0.0.1:9100"`); a flag without a
//! value is `true` or `false`; a repeatable option is an array
//! (`serial = ["/dev/ttyUSB0:115200"]`). The file is read into extra command
//! line arguments for the options not set otherwise, and the command line is
//! parsed again, so a value in the file is checked exactly as the same flag is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// Options that the file may not set: the file itself, and output switches.
const NOT_IN_FILE: [&str; 3] = ["config", "json", "help"];

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {path} is not valid TOML: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A key names no `serve` option.
    #[error("config file {path}: `{key}` is not an option of `host-server serve`; the keys are its long options (see `host-server serve --help`)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value has a type no option takes.
    #[error("config file {path}: `{key}` must be a string, a whole number, true/false or (for a repeatable option) an array of those")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// The extra arguments the config file of `serve` adds to `argv`: one flag
/// (with its value) per key whose option `matches` got from its default only.
/// Empty when `serve` has no `--config`.
pub fn extra_args(
    command: &Command,
    matches: &ArgMatches,
) -> Result<Vec<OsString>, ConfigFileError> {
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Vec::new());
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: path.clone(),
                detail: e.message().to_string(),
            })?;
    let serve_command = command
        .find_subcommand("serve")
        .expect("`serve` is a subcommand of the command it was parsed with");
    let mut args = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = serve_command
            .get_arguments()
            .chain(command.get_arguments())
            .find(|arg| arg.get_long() == Some(long.as_str()))
            .filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str()))
            .ok_or_else(|| ConfigFileError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            })?;
        let id = arg.get_id().as_str();
        // Global options (`data`, `database`) are in `serve`'s matches too.
        if matches!(
            serve.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue; // flags and the environment win over the file
        }
        args.extend(flag_with_values(path, key, &long, value)?);
    }
    Ok(args)
}

fn flag_with_values(
    path: &Path,
    key: &str,
    long: &str,
    value: &toml::Value,
) -> Result<Vec<OsString>, ConfigFileError> {
    let bad = || ConfigFileError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
    };
    let flag = OsString::from(format!("--{long}"));
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        _ => Err(bad()),
    };
    Ok(match value {
        toml::Value::Boolean(true) => vec![flag],
        toml::Value::Boolean(false) => Vec::new(),
        toml::Value::Array(items) => {
            let mut args = Vec::with_capacity(items.len() * 2);
            for item in items {
                args.push(flag.clone());
                args.push(scalar(item)?.into());
            }
            args
        }
        other => vec![flag, scalar(other)?.into()],
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cmd::Cli;

    fn extra(file: &str, argv: &[&str]) -> Result<Vec<String>, ConfigFileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, file).unwrap();
        let mut full = vec!["host-server", "serve", "--config", path.to_str().unwrap()];
        full.extend(argv);
        let command = Cli::command();
        let matches = command.clone().try_get_matches_from(full).unwrap();
        extra_args(&command, &matches)
            .map(|args| args.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn file_values_become_flags_unless_the_command_line_sets_them() {
        let args = extra(
            "listen = \"0.0.0.0:7000\"\nmax_sessions = 12\nallow-foreign-delete = true\n\
             allow_foreign_retry = false\nserial = [\"/dev/ttyUSB0:9600\", \"/dev/ttyACM0\"]\n\
             data = \"/srv/statesync\"\n",
            &["--max-sessions", "3"],
        )
        .unwrap();
        let line = args.join(" ");
        for expected in [
            "--listen 0.0.0.0:7000",
            "--serial /dev/ttyUSB0:9600 --serial /dev/ttyACM0",
            "--data /srv/statesync",
            "--allow-foreign-delete",
        ] {
            assert!(line.contains(expected), "{expected} missing from {line}");
        }
        assert!(!line.contains("--max-sessions"), "the flag wins: {line}");
        assert!(
            !line.contains("--allow-foreign-retry"),
            "false is no flag: {line}"
        );
    }

    #[test]
    fn unknown_keys_and_odd_values_are_refused_with_the_key() {
        let unknown = extra("max_sesions = 3\n", &[]).unwrap_err();
        assert!(unknown.to_string().contains("`max_sesions`"), "{unknown}");
        let itself = extra("config = \"other.toml\"\n", &[]).unwrap_err();
        assert!(matches!(itself, ConfigFileError::UnknownKey { .. }));
        let float = extra("lease = 2.5\n", &[]).unwrap_err();
        assert!(matches!(float, ConfigFileError::BadValue { .. }), "{float}");
        let syntax = extra("listen = \n", &[]).unwrap_err();
        assert!(matches!(syntax, ConfigFileError::Syntax { .. }), "{syntax}");
    }
}
