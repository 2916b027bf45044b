//! The dev cluster's Mesos-compatible master (being written).
