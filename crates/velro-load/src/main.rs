//! `velro-load`: parse the command line, run, print the table, write the JSON.

use clap::Parser;
use velro_load::cli::Args;
use velro_load::LoadError;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("velro-load: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), LoadError> {
    if args.scenario == velro_load::ScenarioKind::Hold {
        let report = velro_load::hold::run(args.hold_config()).await?;
        print!("{}", report.table());
        if let Some(path) = &args.report_json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        }
        return Ok(());
    }
    let report = velro_load::run(args.config()).await?;
    print!("{}", report.table());
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
