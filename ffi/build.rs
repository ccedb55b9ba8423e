//! Finds the system DPDK with pkg-config, compiles the C shim for DPDK's
//! static-inline functions and generates allowlisted bindings with bindgen.

use std::env;
use std::path::PathBuf;

const INSTALL_HINT: &str =
    "libdpdk (>= 22.11) was not found by pkg-config: run scripts/install-deps.sh to install it";

fn main() {
    println!("cargo:rerun-if-changed=shim/levee_shim.h");
    println!("cargo:rerun-if-changed=shim/levee_shim.c");
    println!("cargo:rerun-if-changed=build.rs");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(_) => {
            // One clear line, no backtrace: the build cannot go on without DPDK.
            eprintln!("error: {INSTALL_HINT}");
            std::process::exit(1);
        }
    };

    // The flags pkg-config prints besides -I (`-include rte_config.h`, `-march=...`)
    // decide the layout of DPDK structures, so the shim and bindgen both need them.
    let cflags = pkg_config_cflags();

    let mut build = cc::Build::new();
    build
        .file("shim/levee_shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("levee_shim");

    let mut builder = bindgen::Builder::default()
        .header("shim/levee_shim.h")
        .clang_args(&cflags)
        .use_core()
        .layout_tests(true)
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    for function in [
        "levee_.*",
        "rte_eal_init",
        "rte_eal_cleanup",
        "rte_eal_remote_launch",
        "rte_eal_wait_lcore",
        "rte_eal_mp_wait_lcore",
        "rte_get_next_lcore",
        "rte_get_main_lcore",
        "rte_lcore_count",
        "rte_lcore_is_enabled",
        "rte_lcore_to_socket_id",
        "rte_socket_id",
        "rte_get_tsc_hz",
        "rte_strerror",
        "rte_openlog_stream",
        "rte_log_set_global_level",
        "rte_version",
        "rte_pktmbuf_pool_create",
        // A pool laid out by hand (see dataplane's mempool.rs): what
        // rte_pktmbuf_pool_create does, with flags of our own.
        "rte_mempool_create_empty",
        "rte_mempool_set_ops_byname",
        "rte_mbuf_best_mempool_ops",
        "rte_pktmbuf_pool_init",
        "rte_mempool_populate_default",
        "rte_mempool_obj_iter",
        "rte_pktmbuf_init",
        "rte_eal_iova_mode",
        "rte_eal_has_hugepages",
        "rte_pktmbuf_free_bulk",
        "rte_mempool_free",
        "rte_mempool_avail_count",
        "rte_mempool_in_use_count",
        "rte_dev_probe",
        "rte_eth_dev_configure",
        "rte_eth_dev_adjust_nb_rx_tx_desc",
        "rte_eth_dev_info_get",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_get_port_by_name",
        "rte_eth_dev_get_name_by_port",
        "rte_eth_dev_is_valid_port",
        "rte_eth_dev_socket_id",
        "rte_eth_promiscuous_enable",
        "rte_eth_promiscuous_get",
        "rte_eth_link_get_nowait",
        "rte_eth_stats_get",
        "rte_eth_stats_reset",
        "rte_eth_xstats_get",
        "rte_eth_xstats_get_names",
        "rte_eth_macaddr_get",
        "rte_hash_create",
        "rte_hash_free",
        "rte_hash_add_key",
        "rte_hash_add_key_data",
        "rte_hash_del_key",
        "rte_hash_lookup",
        "rte_hash_lookup_bulk",
        "rte_hash_lookup_bulk_data",
        "rte_hash_count",
    ] {
        builder = builder.allowlist_function(function);
    }
    for item in [
        "RTE_MAX_LCORE",
        "RTE_MAX_ETHPORTS",
        "RTE_MBUF_DEFAULT_BUF_SIZE",
        "RTE_MBUF_DEFAULT_DATAROOM",
        "RTE_PKTMBUF_HEADROOM",
        "RTE_MEMPOOL_F_NO_IOVA_CONTIG",
        "RTE_IOVA_VA",
        "RTE_ETH_MQ_RX_.*",
        "RTE_ETH_MQ_TX_.*",
        "RTE_ETH_RSS_.*",
        "RTE_ETH_LINK_.*",
        "RTE_ETH_XSTATS_NAME_SIZE",
        "RTE_ETH_NAME_MAX_LEN",
        "SOCKET_ID_ANY",
        "RTE_HASH_EXTRA_FLAGS_.*",
        "RTE_HASH_LOOKUP_BULK_MAX",
        "SKIP_MAIN",
        "CALL_MAIN",
    ] {
        builder = builder.allowlist_var(item);
    }
    for ty in [
        "rte_mbuf",
        "rte_mempool",
        "rte_pktmbuf_pool_private",
        "rte_eth_conf",
        "rte_eth_dev_info",
        "rte_eth_rxconf",
        "rte_eth_txconf",
        "rte_eth_link",
        "rte_eth_stats",
        "rte_eth_xstat",
        "rte_eth_xstat_name",
        "rte_ether_addr",
        "rte_hash_parameters",
        "rte_rmt_call_main_t",
        "rte_lcore_state_t",
    ] {
        builder = builder.allowlist_type(ty);
    }

    let bindings = builder.generate().unwrap_or_else(|e| {
        eprintln!(
            "error: bindgen could not read the DPDK headers ({e}); run scripts/install-deps.sh"
        );
        std::process::exit(1);
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("OUT_DIR is writable");

    // Downstream build scripts can read these through DEP_DPDK_*.
    for path in &dpdk.include_paths {
        println!("cargo:include={}", path.display());
    }
}

/// The full `pkg-config --cflags libdpdk` output, split into arguments.
fn pkg_config_cflags() -> Vec<String> {
    let output = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| {
            eprintln!("error: cannot run pkg-config ({e}); run scripts/install-deps.sh");
            std::process::exit(1);
        });
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
