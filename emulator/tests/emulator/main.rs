//! End-to-end tests of the emulator over real sockets: a real WebSocket client
//! (tokio-tungstenite) against the emulator on 127.0.0.1:0, and a local warp server playing
//! the upstream event handler.

mod clients;
mod pool;
mod reliable;
mod support;
mod upstream;
