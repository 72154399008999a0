//! The HTTP functions, one module each, mirroring the `*/function.json` folders at the app root.
//!
//! Each module owns its `Settings` (read from the environment snapshot at start-up), its state (built once)
//! and `routes`, the warp filter serving exactly the methods its `function.json` declares under `/api/`.

pub(crate) mod conversations;
pub(crate) mod durable;
pub(crate) mod events;
pub(crate) mod manage;
pub(crate) mod negotiate;
pub(crate) mod notifications;
pub(crate) mod openapi;
pub(crate) mod outbox;
pub(crate) mod publish;
pub(crate) mod sync;

use warp::http::Method;

use crate::error::ApiError;
use crate::webpubsub::HubRefusal;

/// An HTTP function this binary serves: its route under `/api/` (the `function.json` folder's `route`, or the
/// folder name; a trailing `/{*rest}` covers the route itself and every path below it) and the methods it
/// accepts. Timer functions (`outbox`) are not listed: the host POSTs them at `/<name>`. The route consistency test holds this table, the files and the server in step.
#[derive(Debug, Clone, Copy)]
pub struct FunctionRoute {
    /// The function's route below `/api/`; `{*rest}` marks a catch-all suffix.
    pub name: &'static str,
    /// The HTTP methods its `function.json` accepts.
    pub methods: &'static [Method],
}

/// Every function served, in the order of the app's folders.
pub const FUNCTIONS: &[FunctionRoute] = &[
    FunctionRoute {
        name: "conversations/{*rest}",
        methods: &[Method::GET, Method::POST, Method::PUT],
    },
    FunctionRoute {
        name: "events",
        methods: &[Method::OPTIONS, Method::POST],
    },
    FunctionRoute {
        name: "manage/{*rest}",
        methods: &[Method::DELETE, Method::POST, Method::PUT],
    },
    FunctionRoute {
        name: "negotiate",
        methods: &[Method::GET, Method::POST],
    },
    FunctionRoute {
        name: "notifications/{*rest}",
        methods: &[Method::GET, Method::PUT],
    },
    FunctionRoute {
        name: "openapi.json",
        methods: &[Method::GET],
    },
    FunctionRoute {
        name: "publish",
        methods: &[Method::POST],
    },
    FunctionRoute {
        name: "sync",
        methods: &[Method::GET],
    },
];

impl FunctionRoute {
    /// Whether `path` (below `/api/`) is this function's.
    pub fn serves(&self, path: &str) -> bool {
        match self.name.strip_suffix("/{*rest}") {
            Some(prefix) => path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')),
            None => path == self.name,
        }
    }
}

/// The one answer to a hub a request may not use: 400 for a malformed name, 403 for a valid one `function`
/// does not offer.
pub(crate) fn refused_hub(refusal: HubRefusal, requested: &str, function: &str) -> ApiError {
    match refusal {
        HubRefusal::Invalid(e) => ApiError::bad_request(e.code(), e.to_string()).with_detail("field", "hub"),
        HubRefusal::NotServed => ApiError::forbidden(
            "HubNotAllowed",
            format!("hub {requested:?} is not offered by this {function} endpoint"),
        )
        .with_detail("hub", requested),
    }
}
