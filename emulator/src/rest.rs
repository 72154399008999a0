//! REST data plane of the emulator (placeholder, owned by the REST/filter engineer).
