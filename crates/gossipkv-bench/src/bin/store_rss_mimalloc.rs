//! Store memory per key with mimalloc as the global allocator (the candidate for the
//! `gossipkv` binary). See `gossipkv_bench` and `bench/store_memory.sh`.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    std::process::exit(gossipkv_bench::main_with_allocator("mimalloc"));
}
