//! `rm NAME`: deletes a record and its content from the server.

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::print_json;

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The file's name on the server (as `ls` shows it).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Deletes each named record; stops at the first refusal.
pub fn run(settings: &Settings, args: RmArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    for name in &args.names {
        session.delete(name)?;
        if settings.json {
            print_json(&serde_json::json!({ "name": name, "deleted": true }));
        } else {
            outln!("deleted {name}");
        }
    }
    session.close();
    Ok(())
}
