//! Calibration server for the load benchmark (`scripts/bench.sh`): a bare warp route answering a fixed
//! JSON body on 127.0.0.1, on the same multi-threaded tokio runtime the `handler` uses. Whatever this
//! reaches under the same load generator on the same machine in the same run is the ceiling the
//! handler's figures are read against (HTTP, syscalls and the load generator itself, no work at all).
//! `GET /api/calibration` answers at once; `POST /api/calibration` reads the body first.
//!
//! ```text
//! cargo run --release --example calibration -- --port 0     # prints `PORT <n>`, serves until killed
//! ```

use std::net::{Ipv4Addr, SocketAddr};

use warp::Filter;

/// Shaped like a `negotiate` answer (606 bytes; a real one is a little longer), serialised once: the route does
/// no work per request.
const FIXED_JSON: &str = concat!(
    r#"{"baseUrl":"ws://127.0.0.1:8080/client/hubs/chat","#,
    r#""url":"ws://127.0.0.1:8080/client/hubs/chat?access_token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAvY2xpZW50L2h1YnMvY2hhdCIsImV4cCI6MTczNTY5MzIwMCwiaWF0IjoxNzM1Njg5NjAwLCJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLTAxMjM0NTY3ODlhYmNkZWY","#,
    r#""token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAvY2xpZW50L2h1YnMvY2hhdCIsImV4cCI6MTczNTY5MzIwMCwiaWF0IjoxNzM1Njg5NjAwLCJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLTAxMjM0NTY3ODlhYmNkZWY","#,
    r#""expiresOn":"2025-01-01T01:00:00Z","userId":"alice"}"#
);

/// Largest POST body read.
const MAX_BODY_BYTES: u64 = 64 * 1024;

fn main() -> std::process::ExitCode {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("calibration: {message}\nusage: calibration [--port N]   (0 = any free port)");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .expect("bind 127.0.0.1");
        println!("PORT {}", listener.local_addr().expect("local address").port());
        // GET: the bare ceiling. POST: the body is read (as every function reads its body), then the same
        // fixed answer, so request shapes that need wrk's Lua `request()` have their own ceiling.
        let get = warp::get().map(|| ());
        let post = warp::post()
            .and(warp::body::content_length_limit(MAX_BODY_BYTES))
            .and(warp::body::bytes())
            .map(|_body: bytes::Bytes| ());
        let route = warp::path!("api" / "calibration")
            .and(get.or(post).unify())
            .map(|()| warp::reply::with_header(FIXED_JSON, "content-type", "application/json"));
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        warp::serve(route).incoming(listener).graceful(shutdown).run().await;
    });
    std::process::ExitCode::SUCCESS
}

fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .ok_or("--port needs a number from 0 to 65535")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(port)
}
