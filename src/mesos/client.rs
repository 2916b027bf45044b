//! The HTTP scheduler client, being written.
