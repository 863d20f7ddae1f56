//! Prints the JSON Schema of the gateway's config file, derived from the serde
//! types in `shared/src/config`; with a path, writes it there instead.
//!
//! `cargo run -p shared --bin gateway-config-schema -- deploy/gateway.schema.json`

fn main() -> std::process::ExitCode {
    let text = shared::schema::config_schema_text();
    let Some(path) = std::env::args_os().nth(1) else {
        print!("{text}");
        return std::process::ExitCode::SUCCESS;
    };
    match std::fs::write(&path, text) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gateway-config-schema: cannot write {}: {e}",
                path.to_string_lossy()
            );
            std::process::ExitCode::FAILURE
        }
    }
}
