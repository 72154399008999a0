//! Cold-start probe for the load benchmark (`scripts/bench.sh`): spawns a server binary again and again on
//! a free loopback port and measures, per run, the time from spawn to the first `200` on the readiness
//! path (what the Functions host waits for) and to the first `200` of a function path. Prints each run,
//! then the median, minimum and maximum.
//!
//! ```text
//! cargo run --release --example cold_start -- --binary target/release/handler --runs 11 \
//!     --function-path '/api/negotiate?userId=alice'
//! ```
//!
//! The child inherits this process's environment (the caller sets the handler's settings) plus
//! `FUNCTIONS_CUSTOMHANDLER_PORT`; its stdout and stderr go to /dev/null. Every run has a deadline and the
//! number of runs is capped.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const MAX_RUNS: usize = 101;
/// A run that has not answered by then failed.
const RUN_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between attempts, so the probe does not take a core the starting child needs.
const RETRY_PAUSE: Duration = Duration::from_micros(100);
/// Pause between runs, so one run's teardown does not overlap the next run's start.
const SETTLE: Duration = Duration::from_millis(50);

struct Options {
    binary: String,
    runs: usize,
    ready_path: String,
    function_path: Option<String>,
}

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        binary: String::new(),
        runs: 11,
        ready_path: "/".into(),
        function_path: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--binary" => options.binary = value()?,
            "--runs" => {
                options.runs = value()?.parse().map_err(|_| "--runs needs a number")?;
                options.runs = options.runs.clamp(1, MAX_RUNS);
            }
            "--ready-path" => options.ready_path = value()?,
            "--function-path" => options.function_path = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.binary.is_empty() {
        return Err("--binary is required".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!(
                "cold_start: {message}\nusage: cold_start --binary PATH [--runs N] [--ready-path /] [--function-path PATH]"
            );
            return ExitCode::from(2);
        }
    };
    let mut ready = Vec::with_capacity(options.runs);
    let mut function = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        match measure_once(&options) {
            Ok((to_ready, to_function)) => {
                let function_text = to_function.map(|d| format!(" first function 200 after {:.2} ms", ms(d)));
                println!(
                    "run {run:>3}: ready after {:.2} ms{}",
                    ms(to_ready),
                    function_text.unwrap_or_default()
                );
                ready.push(to_ready);
                function.extend(to_function);
            }
            Err(message) => {
                eprintln!("cold_start: run {run}: {message}");
                return ExitCode::FAILURE;
            }
        }
        std::thread::sleep(SETTLE);
    }
    print_summary("cold_start_ready_ms", &mut ready);
    if !function.is_empty() {
        print_summary("cold_start_function_ms", &mut function);
    }
    ExitCode::SUCCESS
}

/// One spawn: time to the readiness 200, then (if asked) to the first function 200, both from spawn.
fn measure_once(options: &Options) -> Result<(Duration, Option<Duration>), String> {
    let port = free_port()?;
    let started = Instant::now();
    let child = Command::new(&options.binary)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", options.binary))?;
    let mut child = KillOnDrop(child);
    let deadline = started + RUN_DEADLINE;
    let to_ready = first_ok(port, &options.ready_path, started, deadline, &mut child.0)?;
    let to_function = match &options.function_path {
        Some(path) => Some(first_ok(port, path, started, deadline, &mut child.0)?),
        None => None,
    };
    Ok((to_ready, to_function))
}

/// Retries `GET path` until it answers 200; the time since `started`.
fn first_ok(port: u16, path: &str, started: Instant, deadline: Instant, child: &mut Child) -> Result<Duration, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server exited early ({status}); check its settings"));
        }
        match get_status(addr, path) {
            Ok(200) => return Ok(started.elapsed()),
            Ok(status) => last = format!("status {status}"),
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(RETRY_PAUSE);
    }
    Err(format!("no 200 for GET {path} within {RUN_DEADLINE:?} (last: {last})"))
}

/// One HTTP/1.1 GET with `Connection: close`; the status code.
fn get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

/// A port that was free a moment ago (the child binds it right after).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn print_summary(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "RESULT {name} median={:.2} min={:.2} max={:.2} runs={}",
        ms(median),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The child is killed and reaped however the run ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
