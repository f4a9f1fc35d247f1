//! `retry NAME`: asks a file's owner to upload it again.

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::print_json;

/// Arguments of `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The file's name on the server (as `ls` shows it).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Puts each named record back to `01`; the owner is told now or at its next connect.
pub fn run(settings: &Settings, args: RetryArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    for name in &args.names {
        session.retry(name)?;
        if settings.json {
            print_json(&serde_json::json!({ "name": name, "retry_requested": true }));
        } else {
            outln!("asked the owner of {name} to upload it again (state back to needed, 01)");
        }
    }
    session.close();
    Ok(())
}
