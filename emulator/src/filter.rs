//! OData `filter` expressions accepted by the REST data plane (placeholder, owned by the REST/filter engineer).
