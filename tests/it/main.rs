//! All integration tests, in one test target (one link step).
