//! The process's own metrics, read from `/proc` on every scrape: CPU seconds, resident
//! and virtual memory, open and maximum file descriptors, start time. Names and meanings
//! are the Prometheus client libraries' `process_*` collector's, so standard dashboards
//! work. Off Linux (no `/proc`), nothing is reported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What `/proc` says about this process now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

impl ProcessSample {
    /// Reads `/proc/self`; `None` where there is no procfs.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Self::parse(&stat, &status, &boot, &limits, open_fds, clock_ticks())
    }

    /// The sample from the files' contents (`ticks`: clock ticks per second).
    pub fn parse(
        stat: &str,
        status: &str,
        boot: &str,
        limits: &str,
        open_fds: u64,
        ticks: f64,
    ) -> Option<Self> {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        // `fields[0]` is field 3 of proc(5): utime is 14, stime 15, starttime 22.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|k| k * 1024)
        };
        let boot_time: f64 = boot
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let max_fds = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            resident_bytes: kib("VmRSS:").unwrap_or(0),
            virtual_bytes: kib("VmSize:").unwrap_or(0),
            open_fds,
            max_fds,
            start_time_seconds: boot_time + field(22)? / ticks,
        })
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads configuration.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The `process_*` metrics, sampled at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(sample) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                sample.resident_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                sample.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                sample.open_fds as f64,
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(Unit::Seconds),
                sample.start_time_seconds,
            ),
        ];
        let max_fds = sample.max_fds.map(|max| {
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                max as f64,
            )
        });
        for (name, help, unit, value) in gauges.into_iter().chain(max_fds) {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (wisp serve) S 1 4242 4242 0 -1 4194304 5000 0 0 0 250 50 0 0 20 0 \
                    12 0 123400 1000000 2000 18446744073709551615";
        let status = "Name:\twisp\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let sample = ProcessSample::parse(stat, status, boot, limits, 7, 100.0).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.resident_bytes, 1024 * 1024);
        assert_eq!(sample.virtual_bytes, 2048 * 1024);
        assert_eq!(sample.open_fds, 7);
        assert_eq!(sample.max_fds, Some(1024));
        assert_eq!(sample.start_time_seconds, 1_700_000_000.0 + 1234.0);
    }

    #[test]
    fn reads_this_process() {
        let sample = ProcessSample::read().expect("procfs");
        assert!(sample.resident_bytes > 0 && sample.open_fds > 0);
        assert!(sample.start_time_seconds > 1_600_000_000.0);
    }
}
