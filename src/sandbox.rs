//! Sandboxes (filled in below).
