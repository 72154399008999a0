//! The data-plane operations (protocol reference §3) as plain values: an [`ApiRequest`] is a validated,
//! percent-encoded method + path + query + body, built without any I/O. [`super::RestClient`] signs
//! and sends them; tests and benchmarks can inspect them directly.
//!
//! Path segments and query values are percent-encoded with everything but RFC 3986 unreserved
//! characters escaped (as `encodeURIComponent` plus `'()*!`), which is what both official SDKs send.
//! `api-version` comes first in the query, then the parameters in the JavaScript SDK's order.

use std::fmt;

use bytes::Bytes;
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

mod message;
mod operations;

pub use message::{CloseOptions, ContentType, GenerateTokenOptions, ListConnectionsOptions, Message, SendOptions};
pub use webpubsub_protocol::operations::Operation;

use crate::webpubsub::validate::{self, ValidationError};

/// Everything except `A-Z a-z 0-9 - . _ ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A validated, encoded data-plane request. Build one with the constructor named after the operation.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiRequest {
    operation: Operation,
    /// Encoded, starting `/api/`.
    path: String,
    /// Encoded `&name=value` pairs (without `api-version`), possibly empty.
    query: String,
    body: Option<(ContentType, Bytes)>,
}

impl fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRequest")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("query", &self.query)
            .field(
                "body",
                &self
                    .body
                    .as_ref()
                    .map(|(content_type, body)| (content_type, body.len())),
            )
            .finish()
    }
}

/// Builds the encoded path and query of one request.
struct Builder {
    operation: Operation,
    path: String,
    query: String,
}

impl Builder {
    fn hub(operation: Operation, hub: &str) -> Result<Self, ValidationError> {
        validate::hub(hub)?;
        // Hub names are validated to characters that need no encoding except `` ` `` `,` `[` `]`.
        let mut builder = Self {
            operation,
            path: String::with_capacity(64),
            query: String::new(),
        };
        builder.path.push_str("/api/hubs");
        builder.segment(hub, "hub")?;
        Ok(builder)
    }

    fn literal(mut self, literal: &str) -> Self {
        self.path.push_str(literal);
        self
    }

    fn segment(&mut self, value: &str, field: &'static str) -> Result<(), ValidationError> {
        // `.` and `..` would be removed by URL normalisation and retarget the request.
        if value == "." || value == ".." {
            return Err(ValidationError::DotPathSegment { field });
        }
        self.path.push('/');
        self.path.extend(utf8_percent_encode(value, COMPONENT));
        Ok(())
    }

    fn with_segment(mut self, value: &str, field: &'static str) -> Result<Self, ValidationError> {
        self.segment(value, field)?;
        Ok(self)
    }

    fn param(&mut self, name: &str, value: &str) {
        self.query.push('&');
        self.query.push_str(name);
        self.query.push('=');
        self.query.extend(utf8_percent_encode(value, COMPONENT));
    }

    fn excluded(&mut self, excluded: &[String]) -> Result<(), ValidationError> {
        for id in excluded {
            validate::connection_id(id)?;
            self.param("excluded", id);
        }
        Ok(())
    }

    fn filter(&mut self, filter: Option<&str>) -> Result<(), ValidationError> {
        if let Some(filter) = filter {
            validate::filter(filter)?;
            self.param("filter", filter);
        }
        Ok(())
    }

    fn ttl(&mut self, ttl_seconds: Option<u32>) -> Result<(), ValidationError> {
        if let Some(ttl) = ttl_seconds {
            validate::message_ttl(ttl)?;
            self.param("messageTtlSeconds", decimal(ttl).as_str());
        }
        Ok(())
    }

    fn reason(&mut self, reason: Option<&str>) {
        if let Some(reason) = reason {
            self.param("reason", reason);
        }
    }

    fn target_group(&mut self, group: Option<&str>) -> Result<(), ValidationError> {
        if let Some(group) = group {
            validate::group(group)?;
            self.param("targetName", group);
        }
        Ok(())
    }

    fn build(self) -> ApiRequest {
        ApiRequest {
            operation: self.operation,
            path: self.path,
            query: self.query,
            body: None,
        }
    }

    fn build_with_body(self, content_type: ContentType, body: Bytes) -> ApiRequest {
        ApiRequest {
            body: Some((content_type, body)),
            ..self.build()
        }
    }

    fn send(mut self, message: &Message, options: &SendOptions) -> Result<ApiRequest, ValidationError> {
        validate::message_size(message.len())?;
        self.excluded(&options.excluded)?;
        self.filter(options.filter.as_deref())?;
        self.ttl(options.ttl_seconds)?;
        Ok(self.build_with_body(message.content_type(), message.body().clone()))
    }
}

fn decimal(value: u32) -> String {
    value.to_string()
}

impl ApiRequest {
    /// The operation this request performs.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.operation.method()
    }

    /// The encoded path, e.g. `/api/hubs/chat/groups/room%201/:send`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body and its content type, for operations that send one.
    pub fn body(&self) -> Option<(ContentType, &Bytes)> {
        self.body.as_ref().map(|(content_type, body)| (*content_type, body))
    }

    /// The full request URL: `{endpoint}{path}?api-version={api_version}&…`.
    pub fn url(&self, endpoint: &str, api_version: &str) -> String {
        let mut url =
            String::with_capacity(endpoint.len() + self.path.len() + 13 + api_version.len() + self.query.len());
        url.push_str(endpoint);
        url.push_str(&self.path);
        url.push_str("?api-version=");
        url.extend(utf8_percent_encode(api_version, COMPONENT));
        url.push_str(&self.query);
        url
    }
}

#[cfg(test)]
mod tests;
