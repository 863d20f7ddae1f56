use super::*;
use flate2::{write::GzEncoder, Compression};
use shared::ai_log::{AccessLogLine, AiLog};

/// prices per million: m-cheap 1 in / 2 out, m-dear 10 in / 40 out with
/// cached input at 1 and reasoning at 80; m-free has none
const PRICES: &str = "\
currency: EUR
defaults: false
models:
  - {model: m-cheap, input: 1, output: 2}
  - {model: m-dear, input: 10, output: 40, cached_input: 1, reasoning: 80}
";

struct Req {
    tenant: Option<&'static str>,
    consumer: Option<&'static str>,
    model: &'static str,
    provider: &'static str,
    start: &'static str,
    /// input, output, cached, cache write, reasoning
    tokens: [u64; 5],
    estimated: bool,
    /// an upstream answered (the line has a cost)
    answered: bool,
}

fn req(tenant: &'static str, model: &'static str, start: &'static str, tokens: [u64; 5]) -> Req {
    Req {
        tenant: Some(tenant),
        consumer: Some("alice"),
        model,
        provider: "openai",
        start,
        tokens,
        estimated: false,
        answered: true,
    }
}

/// The access-log line the gateway writes for `r` (its cost deliberately
/// not the bill's: the bill prices again).
fn log_line(r: &Req) -> String {
    let [input, output, cached, write, reasoning] = r.tokens;
    let line = AccessLogLine {
        start_time: r.start.into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        response_code: 200,
        ai_log: AiLog {
            model: Some(format!("{}-2026-01-01", r.model)),
            input_token: input,
            output_token: output,
            total_token: input + output,
            cached_tokens: cached,
            cache_creation_tokens: write,
            reasoning_tokens: reasoning,
            usage_estimated: r.estimated,
            tenant: r.tenant.map(str::to_string),
            consumer: r.consumer.map(str::to_string),
            provider: Some(r.provider.into()),
            status: 200,
            cost: r.answered.then(|| "999.00".into()),
            cost_currency: r.answered.then(|| "EUR".into()),
            cost_model: r.answered.then(|| r.model.into()),
            cost_estimated: r.estimated,
            ..AiLog::default()
        },
        ..AccessLogLine::default()
    };
    serde_json::to_string(&line).unwrap()
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let d = Dir {
            dir: tempfile::tempdir().unwrap(),
        };
        d.write("prices.yaml", PRICES.as_bytes());
        d
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn lines(&self, name: &str, reqs: &[Req], extra: &[&str]) -> PathBuf {
        let mut text: String = reqs.iter().map(|r| log_line(r) + "\n").collect();
        for e in extra {
            text.push_str(e);
            text.push('\n');
        }
        self.write(name, text.as_bytes())
    }

    fn args(&self, files: Vec<PathBuf>) -> Args {
        Args {
            prices: self.dir.path().join("prices.yaml"),
            from: None,
            to: None,
            group_by: None,
            tenant: None,
            format: Format::Csv,
            files,
        }
    }
}

fn totals(requests: u64, tokens: [u64; 5], cost: Nanos, unpriced: u64, estimated: u64) -> Totals {
    let [input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens] = tokens;
    Totals {
        requests,
        input_tokens,
        output_tokens,
        cached_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cost,
        unpriced_requests: unpriced,
        estimated_requests: estimated,
    }
}

use shared::money::Nanos;

fn dims(tenant: &str, consumer: &str, model: &str, day: &str) -> Dims {
    Dims {
        tenant: tenant.into(),
        consumer: consumer.into(),
        model: model.into(),
        provider: "openai".into(),
        day: day.into(),
    }
}

fn expected(args: &Args, from: &str, to: &str, rows: Vec<(Dims, Totals)>) -> String {
    let q = Query {
        from: parse_day(from).unwrap(),
        to: parse_day(to).unwrap(),
        group_by: args.group_by.unwrap_or_default(),
        tenant: args.tenant.clone(),
        format: args.format,
    };
    Report::build(q, "EUR", rows).render().1
}

#[test]
fn plain_rotated_and_gzipped_logs_make_the_report_of_their_rows() {
    let d = Dir::new();
    let current = d.lines(
        "access.log",
        &[req(
            "acme",
            "m-cheap",
            "2026-03-02T23:59:59.999Z",
            [1000, 500, 0, 0, 0],
        )],
        &[],
    );
    let rotated = d.lines(
        "access.log.1",
        &[req(
            "acme",
            "m-cheap",
            "2026-03-01T10:00:00.000Z",
            [2000, 1000, 0, 0, 0],
        )],
        &[],
    );
    let text: String = [
        req(
            "acme",
            "m-dear",
            "2026-03-01T11:00:00.000Z",
            [1000, 300, 400, 0, 100],
        ),
        req(
            "acme",
            "m-cheap",
            "2026-03-01T12:00:00.000Z",
            [1, 1, 0, 0, 0],
        ),
    ]
    .iter()
    .map(|r| log_line(r) + "\n")
    .collect();
    // a rotated, compressed file whose name does not say so
    let packed = d.write("access.log.2.gz", &gz(&text));
    let renamed = d.write(
        "old-log",
        &gz(&log_line(&req(
            "zeta",
            "m-cheap",
            "2026-02-27T00:00:00.000Z",
            [0, 0, 0, 0, 0],
        ))),
    );
    let args = d.args(vec![current, rotated, packed, renamed]);
    let (out, summary) = bill(&args).unwrap();
    // m-cheap: 1000 x 1 + 500 x 2 per million = 0.002; 2000/1000: 0.004; 1/1: 0.000003
    // m-dear: 600 x 10 + 400 x 1 + 200 x 40 + 100 x 80 = 22400 per million = 0.0224
    let rows = vec![
        (
            dims("acme", "alice", "m-cheap", "2026-03-02"),
            totals(1, [1000, 500, 0, 0, 0], 2_000_000, 0, 0),
        ),
        (
            dims("acme", "alice", "m-cheap", "2026-03-01"),
            totals(2, [2001, 1001, 0, 0, 0], 4_003_000, 0, 0),
        ),
        (
            dims("acme", "alice", "m-dear", "2026-03-01"),
            totals(1, [1000, 300, 400, 0, 100], 22_400_000, 0, 0),
        ),
        (
            dims("zeta", "alice", "m-cheap", "2026-02-27"),
            totals(1, [0; 5], 0, 0, 0),
        ),
    ];
    assert_eq!(out, expected(&args, "2026-02-27", "2026-03-02", rows));
    assert!(
        out.ends_with("\ntotal,,,,,5,4001,1801,400,0,100,0.028403,0,0\n"),
        "{out}"
    );
    assert_eq!(
        summary,
        "gateway bill: 5 line(s) in 4 file(s): 5 request(s) billed"
    );
}

#[test]
fn foreign_long_and_unanswered_lines_are_counted_not_billed() {
    let d = Dir::new();
    let mut unanswered = req(
        "acme",
        "m-cheap",
        "2026-03-01T10:00:00.000Z",
        [50, 0, 0, 0, 0],
    );
    unanswered.answered = false;
    let long = format!("{{\"x\": \"{}\"}}", "y".repeat(input::MAX_LINE));
    let bad_figure = log_line(&req(
        "acme",
        "m-cheap",
        "2026-03-01T10:00:00.000Z",
        [1, 1, 0, 0, 0],
    ))
    .replace("\"input_token\":1", "\"input_token\":\"1\"");
    let log = d.lines(
        "mixed.log",
        &[
            req(
                "acme",
                "m-cheap",
                "2026-03-01T10:00:00.000Z",
                [1000, 0, 0, 0, 0],
            ),
            unanswered,
        ],
        &[
            "127.0.0.1 - - [01/Mar/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200",
            "{\"level\":\"info\",\"msg\":\"started\"}",
            "[1, 2]",
            "",
            &long,
            &bad_figure,
        ],
    );
    let (out, summary) = bill(&d.args(vec![log])).unwrap();
    assert!(
        out.contains("\nacme,alice,m-cheap,openai,2026-03-01,1,1000,0,0,0,0,0.001,0,0\n"),
        "{out}"
    );
    assert_eq!(
        summary,
        "gateway bill: 7 line(s) in 1 file(s): 1 request(s) billed; \
         1 not billed (no upstream answered); 3 skipped: not the gateway's access-log lines; \
         1 skipped: gateway lines that cannot be read; 1 skipped: longer than 1 MiB"
    );
}

#[test]
fn unpriced_estimated_and_anonymous_requests_are_flagged() {
    let d = Dir::new();
    let mut anon = req(
        "acme",
        "m-free",
        "2026-03-01T10:00:00.000Z",
        [10, 20, 0, 0, 0],
    );
    anon.consumer = None;
    anon.estimated = true;
    let mut open = req(
        "acme",
        "m-cheap",
        "2026-03-01T10:00:00.000Z",
        [10, 20, 0, 0, 0],
    );
    open.tenant = None;
    open.consumer = None;
    let log = d.lines("a.log", &[anon, open], &[]);
    let mut args = d.args(vec![log]);
    args.format = Format::Json;
    let (out, _) = bill(&args).unwrap();
    let rows = vec![
        (
            dims("acme", "", "m-free", "2026-03-01"),
            totals(1, [10, 20, 0, 0, 0], 0, 1, 1),
        ),
        (
            dims("", "", "m-cheap", "2026-03-01"),
            totals(1, [10, 20, 0, 0, 0], 50_000, 0, 0),
        ),
    ];
    assert_eq!(out, expected(&args, "2026-03-01", "2026-03-01", rows));
}

#[test]
fn days_tenant_and_columns_narrow_the_bill() {
    let d = Dir::new();
    let log = d.lines(
        "a.log",
        &[
            req(
                "acme",
                "m-cheap",
                "2026-02-28T10:00:00.000Z",
                [1000, 0, 0, 0, 0],
            ),
            req(
                "acme",
                "m-cheap",
                "2026-03-01T10:00:00.000Z",
                [2000, 0, 0, 0, 0],
            ),
            req(
                "acme",
                "m-dear",
                "2026-03-31T10:00:00.000Z",
                [100, 0, 0, 0, 0],
            ),
            req(
                "zeta",
                "m-cheap",
                "2026-03-05T10:00:00.000Z",
                [4000, 0, 0, 0, 0],
            ),
        ],
        &[],
    );
    let mut args = d.args(vec![log]);
    args.from = Some(parse_day("2026-03-01").unwrap());
    args.tenant = Some("acme".into());
    args.group_by = Some(GroupBy::parse("tenant").unwrap());
    let (out, summary) = bill(&args).unwrap();
    assert_eq!(
        out,
        "tenant,requests,input_tokens,output_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,cost,unpriced_requests,estimated_requests\n\
         acme,2,2100,0,0,0,0,0.003,0,0\n\
         total,2,2100,0,0,0,0,0.003,0,0\n"
    );
    assert!(
        summary
            .contains(": 2 request(s) billed; 2 answered request(s) outside --from/--to/--tenant"),
        "{summary}"
    );
    args.to = Some(parse_day("2026-02-01").unwrap());
    assert_eq!(
        bill(&args).unwrap_err(),
        "gateway bill: --from is after --to"
    );
}

#[test]
fn a_gateway_config_prices_and_bad_inputs_are_errors() {
    let d = Dir::new();
    let log = d.lines(
        "a.log",
        &[req(
            "acme",
            "m-cheap",
            "2026-03-01T10:00:00.000Z",
            [1000, 0, 0, 0, 0],
        )],
        &[],
    );
    let mut args = d.args(vec![log.clone()]);
    // the same prices inside a gateway config
    let config = format!(
        "server:\n  listen: 0.0.0.0:8080\npricing:\n{}",
        PRICES
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    args.prices = d.write("gateway.yaml", config.as_bytes());
    let (out, _) = bill(&args).unwrap();
    assert!(out.contains(",0.001,0,0\n"), "{out}");
    args.prices = d.dir.path().join("missing.yaml");
    assert!(bill(&args)
        .unwrap_err()
        .contains("missing.yaml: cannot read the prices"));
    let mut args = d.args(vec![log, d.dir.path().join("nope.log")]);
    assert!(bill(&args).unwrap_err().starts_with("gateway bill: "));
    args.files = vec!["-".into(), "-".into()];
    assert_eq!(
        bill(&args).unwrap_err(),
        "gateway bill: - (stdin) is named twice"
    );
}

#[test]
fn the_command_line_is_read_as_documented() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }
    let cli = Cli::try_parse_from([
        "bill",
        "--prices",
        "p.yaml",
        "--from",
        "2026-03-01",
        "--group-by",
        "model,tenant",
        "--tenant",
        "acme",
        "--format",
        "json",
        "a.log",
        "b.log.gz",
    ])
    .unwrap();
    let a = cli.args;
    assert_eq!(a.group_by, Some(GroupBy::parse("tenant,model").unwrap()));
    assert_eq!((a.format, a.files.len(), a.to), (Format::Json, 2, None));
    for bad in [
        vec!["bill", "--prices", "p", "--from", "2026-3-1", "a.log"],
        vec!["bill", "--prices", "p", "--group-by", "user", "a.log"],
        vec!["bill", "--prices", "p", "--tenant", "a/b", "a.log"],
        vec!["bill", "--prices", "p", "--format", "xml", "a.log"],
        vec!["bill", "--prices", "p"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
    }
}
