//! `aegisctl`: the Aegis admin CLI (see `aegisctl --help`).
#![deny(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use aegis_controlplane::cli::{self, Cli};
use aegis_controlplane::error::{CliError, EXIT_REQUEST};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aegisctl: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_REQUEST);
        }
    };
    let mut out = io::stdout().lock();
    let result = runtime.block_on(cli::run(&cli, &mut out));
    match result.and_then(|()| out.flush().map_err(CliError::from)) {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into something that stopped reading (`| head`): not an error.
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegisctl: {e}");
            e.exit_code()
        }
    }
}
