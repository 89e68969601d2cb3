//! Store memory per key with the system allocator (glibc malloc on Linux).
//! See `gossipkv_bench` and `bench/store_memory.sh`.

fn main() {
    std::process::exit(gossipkv_bench::main_with_allocator("glibc"));
}
