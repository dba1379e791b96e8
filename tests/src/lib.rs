//! End-to-end and attack tests live in tests/tests/.
