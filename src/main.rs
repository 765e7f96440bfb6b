fn main() {
    println!("raftinel");
}
