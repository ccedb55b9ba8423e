//! `levee`: the appliance and its tools (see [`levee_controlplane::cli`]).

fn main() -> std::process::ExitCode {
    levee_controlplane::cli::main()
}
