//! Seeds a Supabase-shaped database for the import bench and rehearsals:
//! `supabase-seed <postgres url> <first index> <end index> [--schema]`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(start), Some(end)) = (
        args.first(),
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: supabase-seed <postgres url> <first index> <end index> [--schema]");
        return ExitCode::from(2);
    };
    let outcome = async {
        if args.iter().any(|a| a == "--schema") {
            velro_supabasetest::create_schema(url).await?;
        }
        let hashes = velro_supabasetest::password_hashes()
            .map_err(|e| sqlx::Error::Protocol(format!("bcrypt: {e}")))?;
        velro_supabasetest::seed(url, start..end, &hashes).await
    }
    .await;
    match outcome {
        Ok(()) => {
            eprintln!("seeded users {start}..{end}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
