//! Build script: make `poolscope` quick to start on Linux.
//!
//! poolscope starts once per run, once per guardian that replaces a dead one, and once per
//! built-in persistent worker, so what every start costs is worth a look. Two link
//! settings, each measured (`poolscope --version`, median of 60, on a 2-core VM):
//!
//! - The executable is linked at a fixed address (`-no-pie`). A position-independent
//!   executable of this size (the app is linked in) relocates itself at every start: some
//!   26,000 relocations and a page fault for each page they touch (0.23 ms per start).
//!   Shared libraries are still placed at random.
//! - The unwinder comes from the static `libgcc_eh` instead of `libgcc_s.so`. Loading
//!   `libgcc_s` runs its CPU-detection constructor, whose CPUID instructions each trap to
//!   the hypervisor on a virtual machine (0.19 ms per start; without it `poolscope
//!   --version` takes as long as `xargs --version`).

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        // Ahead of the `-lgcc_s` the standard library asks for, so that one is not needed.
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
