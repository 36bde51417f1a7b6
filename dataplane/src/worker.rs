//! Poll-mode workers (being written).
