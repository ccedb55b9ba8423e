//! Ethernet ports: configuration, queues, start/stop, link state and statistics.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{strerror, DpdkError, Eal, Mempool};

/// How to set a port up.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// RX queues (one per worker); RSS spreads flows over them when more than one.
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// Descriptors per RX queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// Descriptors per TX queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// Receive frames for every destination MAC (a bump in the wire must).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
        }
    }
}

/// Link state as reported by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because no RX descriptor was free (we were too slow).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

/// A configured and started DPDK port. Stopped and closed when the port and every
/// queue handle taken from it are dropped.
#[derive(Debug)]
pub struct Port {
    inner: Arc<PortInner>,
}

#[derive(Debug)]
struct PortInner {
    id: u16,
    name: String,
    driver: String,
    rss: bool,
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
    _pool: Arc<Mempool>,
    _eal: Eal,
}

/// The exclusive right to receive on one RX queue of a port. DPDK queues are not
/// thread-safe, so each can be taken once; the worker that owns it polls it.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

/// The exclusive right to transmit on one TX queue of a port.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl RxQueue {
    pub(crate) fn ids(&self) -> (u16, u16) {
        (self.port.id, self.queue)
    }
    /// The port's name.
    pub fn port_name(&self) -> &str {
        &self.port.name
    }
}

impl TxQueue {
    pub(crate) fn ids(&self) -> (u16, u16) {
        (self.port.id, self.queue)
    }
    /// The port's name.
    pub fn port_name(&self) -> &str {
        &self.port.name
    }
}

impl Port {
    /// The NUMA socket of the device DPDK probed under `name`, before it is
    /// opened (to put its packet buffers there); `None` when the device does not
    /// say (virtual devices, single-socket machines).
    pub fn socket_of(_eal: &Eal, name: &str) -> Result<Option<u32>, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid C string; id is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::PortNotFound(name.to_owned()));
        }
        // SAFETY: id is a port DPDK just named.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        Ok(u32::try_from(socket).ok())
    }

    /// Find the port DPDK probed under `name` (a vdev name such as `net_pcap0` or a
    /// PCI address), configure its queues on `pool` and start it.
    pub fn open(
        eal: &Eal,
        name: &str,
        config: &PortConfig,
        pool: Arc<Mempool>,
    ) -> Result<Port, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid C string; id is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::PortNotFound(name.to_owned()));
        }
        let fail = |operation: &'static str, ret: i32| DpdkError::Port {
            port: name.to_owned(),
            operation,
            reason: strerror(ret),
        };

        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: id is a valid port (found above); info is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        if ret != 0 {
            return Err(fail("rte_eth_dev_info_get", ret));
        }
        let driver = if info.driver_name.is_null() {
            String::from("unknown")
        } else {
            // SAFETY: driver_name points to the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Port {
                port: name.to_owned(),
                operation: "queue setup",
                reason: format!(
                    "{} RX / {} TX queues requested, the device has at most {} / {}",
                    config.rx_queues, config.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            });
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        let mut rss = false;
        // A symmetric Toeplitz key (0x6d5a repeated): both directions of a
        // connection hash to the same queue, so the worker that sees a server's
        // SYN-ACK also sees the client's ACK (handshake verification).
        let mut symmetric_key: Vec<u8> = (0..usize::from(info.hash_key_size))
            .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
            .collect();
        if config.rx_queues > 1 {
            // SAFETY: a constant-returning shim function.
            let wanted = unsafe { dpdk_sys::levee_rss_hf_ip_tcp_udp() };
            let offered = wanted & info.flow_type_rss_offloads;
            if offered != 0 {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = offered;
                if !symmetric_key.is_empty() {
                    conf.rx_adv_conf.rss_conf.rss_key = symmetric_key.as_mut_ptr();
                    conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
                }
                rss = true;
            } else {
                tracing::warn!(
                    port = name,
                    driver,
                    "device offers no RSS; flows are spread by the driver's own policy"
                );
            }
        }
        // SAFETY: id is valid, the port is not started, conf is a valid configuration.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf)
        };
        if ret != 0 {
            return Err(fail("rte_eth_dev_configure", ret));
        }
        let (mut rx_desc, mut tx_desc) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: id is valid; both pointers are valid in/out values.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(fail("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: id is valid.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(dpdk_sys::SOCKET_ID_ANY as u32);
        for queue in 0..config.rx_queues {
            // SAFETY: id and queue are valid for the configuration above; a null rxconf
            // asks for the driver's defaults; the pool outlives the port (we hold it).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    queue,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(fail("rte_eth_rx_queue_setup", ret));
            }
        }
        for queue in 0..config.tx_queues {
            // SAFETY: id and queue are valid for the configuration above; a null txconf
            // asks for the driver's defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, queue, tx_desc, socket, std::ptr::null())
            };
            if ret != 0 {
                return Err(fail("rte_eth_tx_queue_setup", ret));
            }
        }
        if config.promiscuous {
            // SAFETY: id is valid.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            if ret != 0 && ret != -libc::ENOTSUP {
                return Err(fail("rte_eth_promiscuous_enable", ret));
            }
        }
        // SAFETY: id is valid and fully configured.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if ret != 0 {
            return Err(fail("rte_eth_dev_start", ret));
        }
        tracing::info!(
            port = name,
            id,
            driver,
            rx_queues = config.rx_queues,
            rss,
            "port started"
        );
        let flags = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                name: name.to_owned(),
                driver,
                rss,
                rx_taken: flags(config.rx_queues),
                tx_taken: flags(config.tx_queues),
                _pool: pool,
                _eal: eal.clone(),
            }),
        })
    }

    /// Take RX queue `queue`; fails if it does not exist or is already taken.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        take(&self.inner.rx_taken, queue, &self.inner.name, "RX")?;
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            queue,
        })
    }

    /// Take TX queue `queue`; fails if it does not exist or is already taken.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, DpdkError> {
        take(&self.inner.tx_taken, queue, &self.inner.name, "TX")?;
        Ok(TxQueue {
            port: Arc::clone(&self.inner),
            queue,
        })
    }

    /// DPDK's port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// The name the port was opened by.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The driver's name, e.g. `net_pcap`.
    pub fn driver(&self) -> &str {
        &self.inner.driver
    }

    /// Whether RSS spreads flows over the RX queues.
    pub fn rss(&self) -> bool {
        self.inner.rss
    }

    /// Link state without waiting for auto-negotiation.
    pub fn link(&self) -> LinkState {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: the port id is valid while `self` lives; link is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.inner.id, &mut link) };
        if ret != 0 {
            return LinkState {
                up: false,
                speed_mbps: 0,
                full_duplex: false,
            };
        }
        LinkState {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        }
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: the port id is valid while `self` lives; s is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.inner.id, &mut s) };
        if ret != 0 {
            return Err(DpdkError::Port {
                port: self.inner.name.clone(),
                operation: "rte_eth_stats_get",
                reason: strerror(ret),
            });
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }

    /// Driver-specific extended counters, by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let fail = |ret: i32| DpdkError::Port {
            port: self.inner.name.clone(),
            operation: "rte_eth_xstats_get",
            reason: strerror(ret),
        };
        // SAFETY: a null array with size 0 asks for the number of counters.
        let count =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.inner.id, std::ptr::null_mut(), 0) };
        let Ok(count) = u32::try_from(count) else {
            return Err(fail(count));
        };
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); count as usize];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); count as usize];
        // SAFETY: names has room for `count` entries.
        let got_names =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.inner.id, names.as_mut_ptr(), count) };
        // SAFETY: values has room for `count` entries.
        let got_values =
            unsafe { dpdk_sys::rte_eth_xstats_get(self.inner.id, values.as_mut_ptr(), count) };
        if got_names < 0 || got_values < 0 {
            return Err(fail(got_names.min(got_values)));
        }
        let n = (got_names.min(got_values) as usize).min(count as usize);
        Ok(values[..n]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK NUL-terminates xstat names within their fixed array.
                let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((name.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }
}

fn take(flags: &[AtomicBool], queue: u16, port: &str, kind: &str) -> Result<(), DpdkError> {
    let flag = flags
        .get(usize::from(queue))
        .ok_or_else(|| DpdkError::Port {
            port: port.to_owned(),
            operation: "take queue",
            reason: format!(
                "{kind} queue {queue} does not exist ({} configured)",
                flags.len()
            ),
        })?;
    if flag.swap(true, Ordering::AcqRel) {
        return Err(DpdkError::Port {
            port: port.to_owned(),
            operation: "take queue",
            reason: format!("{kind} queue {queue} is already owned by a worker"),
        });
    }
    Ok(())
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: workers using this port's queues have been joined by the owner
        // before the port is dropped; stop then close is DPDK's teardown order.
        unsafe {
            let ret = dpdk_sys::rte_eth_dev_stop(self.id);
            if ret != 0 {
                tracing::warn!(
                    port = self.name,
                    "rte_eth_dev_stop failed: {}",
                    strerror(ret)
                );
            }
            let ret = dpdk_sys::rte_eth_dev_close(self.id);
            if ret != 0 {
                tracing::warn!(
                    port = self.name,
                    "rte_eth_dev_close failed: {}",
                    strerror(ret)
                );
            }
        }
    }
}
