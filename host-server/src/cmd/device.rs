//! `host-server device add|list|remove`: manage the devices allowed to connect.
//!
//! Works on the database directly (SQLite in the data directory or the
//! `--database` PostgreSQL), also while servers run on it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use proto_core::model::LinkKind;
use proto_core::name::{validate_label, MAX_DEVICE_NAME_LEN};
use rand::RngCore;
use serde_json::json;

use crate::provision::{Line, ProvisionError, ProvisionTarget};
use crate::service::unix_now;
use crate::store::{Database, Store};

/// Bytes of a new device key.
const KEY_LEN: usize = proto_core::auth::DEVICE_KEY_LEN;

/// Most devices one `add-many` registers.
const MAX_ADD_MANY: u32 = 1_000_000;

/// Device subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device and print its new key (shown only this once); with
    /// `--provision`, write the name and key to a board on a serial line
    /// instead, and print no key.
    Add {
        /// The device's name (at most 32 bytes, no `/`).
        name: String,
        /// Give the new identity to the board on this line:
        /// `serial://PATH[?baud=N]` (default 115200). A board that already has
        /// an identity takes a new one only signed with its current key, which
        /// this server's database must hold; it offers itself just after a reset.
        #[arg(long, value_name = "URL")]
        provision: Option<ProvisionTarget>,
        /// How long `--provision` waits for the board to offer itself, in seconds.
        #[arg(
            long,
            value_name = "SECS",
            default_value_t = 60,
            requires = "provision"
        )]
        wait: u64,
    },
    /// Register COUNT devices named PREFIX-0 … PREFIX-(COUNT-1) and print
    /// each name and new key on a line of its own (with `--json`, one JSON
    /// object per line). For fleets and load tests: one process, not COUNT.
    AddMany {
        /// Name prefix; `-N` is appended.
        prefix: String,
        /// How many devices (1 to 1,000,000).
        count: u32,
    },
    /// List registered devices (keys are never shown).
    List,
    /// Remove a device; its records stay.
    Remove {
        /// The device's name.
        name: String,
    },
}

/// Runs a device subcommand on the data directory `data`.
pub fn run(
    data: &Path,
    database: &Database,
    json: bool,
    command: DeviceCommand,
) -> anyhow::Result<()> {
    let store = super::open_store(data, database)?;
    let now = unix_now();
    match command {
        DeviceCommand::Add {
            name,
            provision: Some(target),
            wait,
        } => {
            validate_label(&name, MAX_DEVICE_NAME_LEN)
                .with_context(|| format!("device name `{}` is not usable", name.escape_debug()))?;
            provision(
                &*store,
                &name,
                &target,
                Duration::from_secs(wait),
                json,
                now,
            )?;
        }
        DeviceCommand::Add {
            name,
            provision: None,
            ..
        } => {
            validate_label(&name, MAX_DEVICE_NAME_LEN)
                .with_context(|| format!("device name `{}` is not usable", name.escape_debug()))?;
            let mut key = [0u8; KEY_LEN];
            rand::thread_rng().fill_bytes(&mut key);
            store.add_device(&name, &key, now)?;
            let key = hex::encode(key);
            if json {
                println!("{}", json!({ "name": name, "key": key }));
            } else {
                println!("{key}");
                eprintln!("device `{name}` added; keep this key, it is not shown again");
            }
        }
        DeviceCommand::AddMany { prefix, count } => {
            anyhow::ensure!(
                (1..=MAX_ADD_MANY).contains(&count),
                "add-many takes 1 to {MAX_ADD_MANY} devices, not {count}"
            );
            let last = format!("{prefix}-{}", count - 1);
            validate_label(&last, MAX_DEVICE_NAME_LEN)
                .with_context(|| format!("device name `{}` is not usable", last.escape_debug()))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for index in 0..count {
                let name = format!("{prefix}-{index}");
                let mut key = [0u8; KEY_LEN];
                rand::thread_rng().fill_bytes(&mut key);
                store.add_device(&name, &key, now)?;
                let key = hex::encode(key);
                if json {
                    writeln!(out, "{}", json!({ "name": name, "key": key }))?;
                } else {
                    writeln!(out, "{name} {key}")?;
                }
            }
            out.flush()?;
        }
        DeviceCommand::List => {
            let devices = store.devices()?;
            if json {
                let list: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        json!({
                            "name": d.name,
                            "created_at": d.created_at,
                            "last_seen": d.last_seen,
                            "link": link_word(d.link),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if devices.is_empty() {
                eprintln!("no devices; add one with `host-server device add NAME`");
            } else {
                println!("{:<32}  {:>12}  {:<6}", "NAME", "LAST_SEEN", "LINK");
                for d in &devices {
                    let seen = if d.last_seen == 0 {
                        "never".to_string()
                    } else {
                        d.last_seen.to_string()
                    };
                    println!("{:<32}  {:>12}  {:<6}", d.name, seen, link_word(d.link));
                }
            }
        }
        DeviceCommand::Remove { name } => {
            store.remove_device(&name, now)?;
            if json {
                println!("{}", json!({ "removed": name }));
            } else {
                println!("device `{name}` removed");
            }
        }
    }
    Ok(())
}

/// `device add NAME --provision URL`: waits for the board's offer, gives it
/// the new identity (signed with its current key, from the database, when it
/// has one) and registers the device once the board proved it stored the key.
/// The key is never printed.
fn provision(
    store: &dyn Store,
    name: &str,
    target: &ProvisionTarget,
    wait: Duration,
    json: bool,
    now: u64,
) -> anyhow::Result<()> {
    let mut line = Line::new(target.open()?);
    eprintln!(
        "waiting up to {} s for the board on {} (a board that already has an identity offers itself just after a reset)",
        wait.as_secs(),
        target.path
    );
    let offer = line.wait_for_offer(wait)?;
    let current_key = match &offer.device {
        None => None,
        Some(current) => Some(
            store
                .device_key(current)?
                .ok_or_else(|| ProvisionError::UnknownCurrent(current.clone()))?,
        ),
    };
    let rekey = offer.device.as_deref() == Some(name);
    if !rekey && store.device_key(name)?.is_some() {
        anyhow::bail!(
            "device `{name}` already exists; choose another name, or remove it first (`host-server device remove {name}`)"
        );
    }
    let mut key = [0u8; KEY_LEN];
    rand::thread_rng().fill_bytes(&mut key);
    line.provision(&offer, current_key.as_deref(), name, &key)?;
    // The board holds the new key now: register it (a new key for the same name replaces the old).
    if rekey {
        store.remove_device(name, now)?;
    }
    store.add_device(name, &key, now).with_context(|| {
        format!("the board now holds `{name}`, but the database did not take it")
    })?;
    tracing::info!(device = name, port = %target.path, replaced = ?offer.device, "board provisioned");
    if json {
        println!(
            "{}",
            json!({ "name": name, "provisioned": target.path, "replaced": offer.device })
        );
    } else {
        println!("device `{name}` added and provisioned on {}", target.path);
        if let Some(old) = offer.device.as_deref().filter(|old| *old != name) {
            eprintln!("the board was `{old}`; that device stays registered: `host-server device remove {old}` if nothing else uses it");
        }
    }
    Ok(())
}

fn link_word(link: LinkKind) -> &'static str {
    match link {
        LinkKind::None => "none",
        LinkKind::Tcp => "tcp",
        LinkKind::Serial => "serial",
    }
}
