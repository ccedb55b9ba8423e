//! The Debian package and the bare-metal script, as far as they can be tried
//! on a machine that is not the appliance: the package built and installed
//! into a scratch root (its maintainer script run there), its configuration
//! checked by its own binary; the script's steps as a dry run over a fake sysfs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_debian_package_installs_into_a_scratch_root_and_checks_its_own_configuration() {
    let out = run(Command::new(repo().join("scripts/package.sh"))
        .args(["--profile", "dev"])
        .current_dir(repo()));
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| repo().join(l.trim()))
        .expect("the package's path");
    assert!(
        deb.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("levee_") && n.ends_with(".deb")),
        "{}",
        deb.display()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));

    let fields = String::from_utf8_lossy(&run(Command::new("dpkg-deb").arg("-f").arg(&deb)).stdout)
        .into_owned();
    assert!(fields.contains("Package: levee"), "{fields}");
    assert!(
        fields.contains("librte-eal23"),
        "the DPDK runtime is a dependency: {fields}"
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/levee/levee.toml");
    for file in [
        "usr/bin/levee",
        "lib/systemd/system/levee.service",
        "usr/lib/sysctl.d/60-levee-hugepages.conf",
        "usr/share/levee/bare-metal.sh",
        "usr/share/man/man1/levee.1.gz",
        "usr/share/bash-completion/completions/levee",
        "usr/share/zsh/vendor-completions/_levee",
        "usr/share/fish/vendor_completions.d/levee.fish",
    ] {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/levee.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/bin/levee run --config /etc/levee/levee.toml"));

    // The shipped configuration needs the API tokens the postinst makes.
    let levee = root.join("usr/bin/levee");
    let config = root.join("etc/levee/levee.toml");
    let before = Command::new(&levee)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("check");
    assert_eq!(before.status.code(), Some(2), "{before:?}");
    assert!(String::from_utf8_lossy(&before.stderr).contains("api.token_file"));
    run(Command::new("sh")
        .arg(control.join("postinst"))
        .arg("configure")
        .env("DPKG_ROOT", &root));
    for token in ["api.token", "api-read.token"] {
        let path = root.join("etc/levee").join(token);
        let text = std::fs::read_to_string(&path).expect("token");
        assert_eq!(text.trim().len(), 64, "{token}: 32 random bytes in hex");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{token} is readable by root only");
    }
    let admin = std::fs::read_to_string(root.join("etc/levee/api.token")).expect("token");
    let read_only = std::fs::read_to_string(root.join("etc/levee/api-read.token")).expect("token");
    assert_ne!(admin, read_only);
    let checked = run(Command::new(&levee).arg("check-config").arg(&config));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("valid"));
    // A second configure (an upgrade) keeps the tokens.
    run(Command::new("sh")
        .arg(control.join("postinst"))
        .arg("configure")
        .env("DPKG_ROOT", &root));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/levee/api.token")).expect("token"),
        admin
    );
    // The man page and completions are the binary's own.
    let man = run(Command::new("zcat").arg(root.join("usr/share/man/man1/levee.1.gz")));
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH levee"));

    // Purge takes the tokens and the state away; the configuration is dpkg's.
    std::fs::write(root.join("var/lib/levee/levee.db"), b"state").expect("state");
    run(Command::new("sh")
        .arg(control.join("postrm"))
        .arg("purge")
        .env("DPKG_ROOT", &root));
    assert!(!root.join("etc/levee/api.token").exists());
    assert!(!root.join("var/lib/levee").exists());
}

#[test]
fn the_bare_metal_script_shows_every_step_it_would_take() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = dir.path().join("sys");
    let state = dir.path().join("state");
    let device = sys.join("bus/pci/devices/0000:03:00.0");
    std::fs::create_dir_all(&device).expect("device");
    std::fs::create_dir_all(sys.join("bus/pci/drivers/ixgbe")).expect("driver");
    std::os::unix::fs::symlink("../../../bus/pci/drivers/ixgbe", device.join("driver"))
        .expect("driver link");
    std::fs::create_dir_all(&state).expect("state");
    let script = repo().join("scripts/bare-metal.sh");
    let dry = |args: &[&str]| -> (Option<i32>, String) {
        let out = Command::new(&script)
            .arg("--dry-run")
            .args(args)
            .env("LEVEE_SYSFS", &sys)
            .env("LEVEE_STATE_DIR", &state)
            .env("LEVEE_GRUB_FILE", dir.path().join("grub"))
            .output()
            .expect("run the script");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    let (code, text) = dry(&["hugepages", "2048"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("vm.nr_hugepages = 2048"), "{text}");
    assert!(text.contains("+ sysctl -w vm.nr_hugepages=2048"), "{text}");

    let (code, text) = dry(&["bind", "0000:03:00.0"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("+ modprobe vfio-pci"), "{text}");
    assert!(
        text.contains("driver-0000:03:00.0:\nixgbe"),
        "the kernel driver is remembered: {text}"
    );
    assert!(
        text.contains("+ dpdk-devbind.py --bind=vfio-pci 0000:03:00.0"),
        "{text}"
    );

    std::fs::write(state.join("driver-0000:03:00.0"), "ixgbe\n").expect("remembered");
    let (code, text) = dry(&["unbind", "0000:03:00.0"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("+ dpdk-devbind.py --bind=ixgbe 0000:03:00.0"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("grub"),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet isolcpus=1\"\n",
    )
    .expect("grub");
    let (code, text) = dry(&["isolate", "2-3"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3\""
        ),
        "an earlier isolation is replaced, the rest kept: {text}"
    );
    assert!(text.contains("+ update-grub"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("grub")).expect("grub"),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet isolcpus=1\"\n",
        "a dry run changes nothing"
    );

    // Bad input: a clear message and exit 2, nothing done.
    for (args, message) in [
        (&["bind", "03:00.0"][..], "not a PCI address"),
        (
            &["unbind", "0000:04:00.0"][..],
            "no kernel driver remembered",
        ),
        (&["isolate", "two"][..], "CPUS must be a list"),
        (&["hugepages", "-5"][..], "PAGES must be a positive number"),
        (&["frobnicate"][..], "Preparing a real box"),
    ] {
        let (code, text) = dry(args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
    }
}
