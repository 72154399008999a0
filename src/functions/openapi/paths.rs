//! The contract's path table: which methods each documented path takes, read once from the embedded
//! document. The server answers a method a path does not take with 405 and this `Allow` list, so a catch-all
//! function (`conversations/{*rest}`, `manage/{*rest}`, `notifications/{*rest}`) advertises the methods of
//! the path asked for, not every method of the function (fuzz finding ST205, #17).

use std::sync::LazyLock;

use warp::http::Method;

use super::DOCUMENT;

/// One documented path: its segments (`None` for a `{parameter}`) and its methods, in the document's order.
struct DocumentedPath {
    segments: Vec<Option<String>>,
    methods: Vec<Method>,
}

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

static PATHS: LazyLock<Vec<DocumentedPath>> = LazyLock::new(|| parse(DOCUMENT));

fn parse(document: &str) -> Vec<DocumentedPath> {
    let document: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
    let Some(paths) = document["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, item)| DocumentedPath {
            segments: path
                .trim_start_matches('/')
                .split('/')
                .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                .collect(),
            methods: HTTP_METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .filter_map(|method| Method::from_bytes(method.to_uppercase().as_bytes()).ok())
                .collect(),
        })
        .collect()
}

/// The methods the documented path matching `path` (e.g. `/api/conversations/c1/read`) takes, or `None`
/// when no documented path matches. A parameter matches one non-empty segment; among several matches the
/// one with the most literal segments wins (`/api/notifications/read` over `/api/notifications/{x}`).
pub(crate) fn allowed_methods(path: &str) -> Option<&'static [Method]> {
    let asked: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    PATHS
        .iter()
        .filter(|documented| {
            documented.segments.len() == asked.len()
                && documented
                    .segments
                    .iter()
                    .zip(&asked)
                    .all(|(segment, asked)| match segment {
                        Some(literal) => literal == asked,
                        None => !asked.is_empty(),
                    })
        })
        .max_by_key(|documented| documented.segments.iter().filter(|s| s.is_some()).count())
        .map(|documented| documented.methods.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_all_path_answers_its_own_methods() {
        assert_eq!(allowed_methods("/api/notifications/read"), Some(&[Method::PUT][..]));
        assert_eq!(allowed_methods("/api/notifications"), Some(&[Method::GET][..]));
        assert_eq!(allowed_methods("/api/conversations/c1/read"), Some(&[Method::PUT][..]));
        assert_eq!(
            allowed_methods("/api/conversations/c1/messages"),
            Some(&[Method::GET, Method::POST][..])
        );
    }

    #[test]
    fn parameters_match_one_non_empty_segment_only() {
        assert_eq!(allowed_methods("/api/conversations//read"), None);
        assert_eq!(allowed_methods("/api/conversations/a/b/read"), None);
        assert_eq!(allowed_methods("/api/nowhere"), None);
    }

    #[test]
    fn a_broken_document_documents_nothing() {
        assert!(parse("not json").is_empty());
        assert!(parse("{}").is_empty());
    }
}
