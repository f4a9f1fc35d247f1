//! `rm NAME`: deletes a record and its content from the server.

use clap::Args;

use proto_core::ListFilter;

use crate::config::Settings;
use crate::dry_run::{self, Planned};
use crate::error::CliResult;
use crate::session::Session;
use crate::view::print_json;

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The file's name on the server (as `ls` shows it).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Print what would be deleted; delete nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Deletes each named record; stops at the first refusal.
pub fn run(settings: &Settings, args: RmArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    if args.dry_run {
        let records = session.list(ListFilter::All)?;
        session.close();
        let plan: Vec<Planned> = args
            .names
            .iter()
            .map(|name| match records.iter().find(|r| &r.name == name) {
                Some(r) => Planned::new("delete", name, r.size),
                None => Planned::new("skip", name, 0).because("no such record on the server"),
            })
            .collect();
        dry_run::print(&plan, settings.json);
        return Ok(());
    }
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
