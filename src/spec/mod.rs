//! Task specs: TOML parsing, validation and normalisation (being written).
