//! Paging of group connection listings: pages cut by connection id (stable when members leave
//! between pages), `top` across pages, and hex continuation tokens in `nextLink`.

use percent_encoding::utf8_percent_encode;

use super::URL_COMPONENT;
use super::error::ApiError;
use crate::service::GroupMember;

/// One page of a group listing.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct GroupPage<'a> {
    pub(super) items: Vec<&'a GroupMember>,
    /// The last connection id on this page, when more members follow (within `top`).
    pub(super) next_after: Option<&'a str>,
    /// What is left of `top` for the following pages.
    pub(super) remaining_top: Option<usize>,
}

impl<'a> GroupPage<'a> {
    /// Members after `after` (ids are sorted), at most `page_size` and at most `top`.
    pub(super) fn of(
        members: &'a [GroupMember],
        after: Option<&str>,
        page_size: usize,
        top: Option<usize>,
    ) -> GroupPage<'a> {
        let start = after.map_or(0, |after| {
            members.partition_point(|m| m.connection_id.as_str() <= after)
        });
        let rest = &members[start..];
        let limit = page_size.min(top.unwrap_or(usize::MAX));
        let items: Vec<&GroupMember> = rest.iter().take(limit).collect();
        let remaining_top = top.map(|t| t - items.len());
        let more = rest.len() > items.len() && remaining_top != Some(0);
        let next_after = if more {
            items.last().map(|m| m.connection_id.as_str())
        } else {
            None
        };
        GroupPage {
            items,
            next_after,
            remaining_top,
        }
    }
}

/// Relative link to the next page; the continuation token is hex so SDKs re-encoding query
/// values cannot change it.
pub(super) fn next_link(
    hub: &str,
    group: &str,
    api_version: &str,
    page_size: usize,
    top: Option<usize>,
    after: &str,
) -> String {
    let mut link = format!(
        "/api/hubs/{}/groups/{}/connections?api-version={}&maxpagesize={page_size}",
        utf8_percent_encode(hub, URL_COMPONENT),
        utf8_percent_encode(group, URL_COMPONENT),
        utf8_percent_encode(api_version, URL_COMPONENT),
    );
    if let Some(top) = top {
        link.push_str(&format!("&top={top}"));
    }
    link.push_str(&format!("&continuationToken={}", hex::encode(after)));
    link
}

pub(super) fn decode_continuation(token: &str) -> Result<String, ApiError> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidContinuationToken",
                "the continuationToken is not one this service issued",
            )
        })
}
