//! Build script: link the `poolscope` executable at a fixed address on Linux.
//!
//! A position-independent executable of this size (the app is linked in) spends a
//! noticeable part of every start relocating itself (some 26,000 relocations, and a
//! page fault for each page they touch), and poolscope starts once per run, once per
//! guardian that replaces a dead one, and once per built-in persistent worker. Linked at a
//! fixed address, it has none to do. Only the executable is affected: shared libraries it
//! loads are still placed at random.

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
