//! `restore NAME [--at REV]`: brings back a deleted file.

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::print_json;

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The deleted file's name (as `ls --at REV` shows it).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Bring it back as it was at this revision (default: as it was when it was
    /// last deleted). `ls --at REV` shows what existed then.
    #[arg(long, value_name = "REV")]
    pub at: Option<u64>,
}

/// Restores the record: `11` when the server still keeps its bytes, else `01`
/// and its owner is asked to upload it again.
pub fn run(settings: &Settings, args: RestoreArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    let record = session.restore(&args.name, args.at)?;
    session.close();
    if settings.json {
        print_json(&record);
    } else if record.upload_state.is_uploaded() {
        outln!(
            "restored {} ({} bytes, uploaded, 11): its bytes were still kept",
            record.name,
            record.size
        );
    } else {
        outln!(
            "restored {} as needed (01): its bytes were no longer kept; its owner {} was asked to upload it again",
            record.name,
            record.owner
        );
    }
    Ok(())
}
