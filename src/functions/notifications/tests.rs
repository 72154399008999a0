//! Unit tests of the `notifications` request parsing; the routes are tested end to end in tests/e2e/notify.rs.

use super::request::{Query, clamped_limit};

#[test]
fn after_and_limit() {
    let page = |q: &str| Query::parse(q).unwrap().page();
    assert_eq!(page("").unwrap(), (0, 50));
    assert_eq!(page("after=4&limit=2").unwrap(), (4, 2));
    assert_eq!(page("limit=0").unwrap(), (0, 1), "clamped up");
    assert_eq!(page("limit=100000000000000000000000").unwrap(), (0, 200));
    assert_eq!(page("limit=9999").unwrap(), (0, 200), "clamped down");
    assert_eq!(page("limit=-5").unwrap(), (0, 1));
    for bad in ["after=-1", "after=x", "after=1.5"] {
        assert_eq!(page(bad).unwrap_err().code(), "InvalidCursor", "{bad}");
    }
    assert_eq!(page("limit=ten").unwrap_err().code(), "InvalidField");
    assert_eq!(Query::parse("after=1&after=2").unwrap_err().code(), "InvalidQuery");
    assert_eq!(Query::parse("userId=ada").unwrap().user_id.as_deref(), Some("ada"));
}

#[test]
fn limits_clamp_into_range() {
    assert_eq!(clamped_limit(None, 100, 1000).unwrap(), 100);
    assert_eq!(clamped_limit(Some("5000"), 100, 1000).unwrap(), 1000);
    assert_eq!(clamped_limit(Some("0"), 100, 1000).unwrap(), 1);
}
