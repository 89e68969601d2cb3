//! `gossipkv`: the command-line entry point (subcommands are wired in as they land).

fn main() {
    println!("gossipkv {}: see README.md", env!("CARGO_PKG_VERSION"));
}
