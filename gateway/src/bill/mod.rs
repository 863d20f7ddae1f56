//! `gateway bill`: the usage report computed from access-log files instead of
//! the ledger, at the prices of a given file: for operators who keep logs
//! rather than Redis history, or who re-price past traffic. For the same
//! requests and query it prints the same bytes as `GET /admin/usage/report`.

pub mod input;
pub mod prices;
pub mod tally;

use crate::report::{parse_day, Format, GroupBy, Query, Report};
use jiff::civil::Date;
use prices::{Found, PriceList};
use shared::ledger::{Dims, Totals};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tally::{Counts, Tally};

/// `gateway bill --prices FILE [--from D] [--to D] [--group-by ...] [--tenant T] [--format csv|json] FILE...`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The prices: a gateway config file (its `pricing:` section) or a file holding
    /// only a pricing section (`currency`, `defaults`, `models`).
    #[arg(long, value_name = "FILE")]
    pub prices: PathBuf,
    /// First day (UTC, YYYY-MM-DD) of the bill; default: the first day in the logs.
    #[arg(long, value_name = "DAY", value_parser = day_arg)]
    pub from: Option<Date>,
    /// Last day (UTC, YYYY-MM-DD, inclusive); default: the last day in the logs.
    #[arg(long, value_name = "DAY", value_parser = day_arg)]
    pub to: Option<Date>,
    /// Columns to group by, from tenant,consumer,model,provider,day (shown in
    /// that order); default: all of them.
    #[arg(long, value_name = "COLUMNS", value_parser = GroupBy::parse)]
    pub group_by: Option<GroupBy>,
    /// Only this tenant's requests.
    #[arg(long, value_name = "TENANT", value_parser = tenant_arg)]
    pub tenant: Option<String>,
    /// csv or json.
    #[arg(long, value_name = "FORMAT", value_parser = Format::parse, default_value = "csv")]
    pub format: Format,
    /// Access-log files (JSON lines; gzip or plain, told by their content; `-`
    /// for stdin), rotated ones included.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn day_arg(s: &str) -> Result<Date, String> {
    parse_day(s)
}

fn tenant_arg(s: &str) -> Result<String, String> {
    crate::config::check_name("tenant id", s).map(|()| s.to_string())
}

/// Runs the command: the report on stdout, what was skipped on stderr.
pub fn run(args: Args) -> ExitCode {
    match bill(&args) {
        Ok((text, summary)) => {
            eprintln!("{summary}");
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gateway bill: cannot write the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The report's text and the summary line, or why there is none.
pub fn bill(args: &Args) -> Result<(String, String), String> {
    let (prices, found) = prices::load(&args.prices).map_err(|e| e.to_string())?;
    let mut stdin_used = false;
    let mut tally = Tally::new(prices.as_ref());
    for path in &args.files {
        if path.as_os_str() == "-" && std::mem::replace(&mut stdin_used, true) {
            return Err("gateway bill: - (stdin) is named twice".into());
        }
        read_file(path, &mut tally)?;
    }
    let counts = tally.counts;
    let (text, in_bill) = report(args, prices.as_ref(), tally.rows())?;
    let mut summary = summary(args.files.len(), &counts, in_bill);
    if found == Found::ConfigWithout {
        summary.insert_str(
            0,
            &format!(
                "gateway bill: {} has no pricing section: the gateway's default prices apply\n",
                args.prices.display()
            ),
        );
    }
    Ok((text, summary))
}

fn read_file(path: &Path, tally: &mut Tally<'_>) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("gateway bill: {}: {e}", path.display());
    let r = input::open(path).map_err(fail)?;
    input::each_line(r, |line| match line {
        input::Line::Text(t) => tally.line(t),
        input::Line::TooLong => tally.too_long(),
    })
    .map_err(fail)
}

/// The report of `rows` for the arguments (days not given: those of the logs),
/// and how many billed requests it holds.
pub fn report(
    args: &Args,
    prices: &dyn PriceList,
    rows: Vec<(Dims, Totals)>,
) -> Result<(String, u64), String> {
    let first = rows.iter().map(|(d, _)| d.day.as_str()).min();
    let last = rows.iter().map(|(d, _)| d.day.as_str()).max();
    let logged = |d: Option<&str>| d.and_then(|d| parse_day(d).ok());
    let (from, to) = match (args.from, args.to) {
        (Some(f), Some(t)) if f > t => return Err("gateway bill: --from is after --to".into()),
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, logged(last).filter(|l| *l > f).unwrap_or(f)),
        (None, Some(t)) => (logged(first).filter(|l| *l < t).unwrap_or(t), t),
        (None, None) => {
            let today = crate::report::today_utc();
            (
                logged(first).unwrap_or(today),
                logged(last).unwrap_or(today),
            )
        }
    };
    let query = Query {
        from,
        to,
        group_by: args.group_by.unwrap_or_default(),
        tenant: args.tenant.clone(),
        format: args.format,
    };
    let report = Report::build(query, prices.currency(), rows);
    Ok((report.render().1, report.totals.requests))
}

fn summary(files: usize, c: &Counts, in_bill: u64) -> String {
    let mut s = format!(
        "gateway bill: {} line(s) in {files} file(s): {in_bill} request(s) billed",
        c.lines
    );
    let parts = [
        (
            c.billed.saturating_sub(in_bill),
            "answered request(s) outside --from/--to/--tenant",
        ),
        (c.unbilled, "not billed (no upstream answered)"),
        (c.foreign, "skipped: not the gateway's access-log lines"),
        (c.unreadable, "skipped: gateway lines that cannot be read"),
        (c.too_long, "skipped: longer than 1 MiB"),
    ];
    for (n, what) in parts.into_iter().filter(|(n, _)| *n > 0) {
        s.push_str(&format!("; {n} {what}"));
    }
    s
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
