//! The RunStore conformance suite (written with the backends).
