//! raftinel-bench: measures raftinel and redis-sentinel side by side.
fn main() {
    eprintln!("raftinel-bench: see BENCHMARKS.md");
}
