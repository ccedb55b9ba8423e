//! `levee`: the appliance and its tools (see [`levee_controlplane::cli`]).

/// The rule tables on huge pages (see [`levee_dataplane::memory`]).
#[global_allocator]
static ALLOCATOR: levee_dataplane::memory::HugePageAllocator =
    levee_dataplane::memory::HugePageAllocator;

fn main() -> std::process::ExitCode {
    levee_controlplane::cli::main()
}
