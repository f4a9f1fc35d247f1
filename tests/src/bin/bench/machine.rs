//! What machine a run happened on: CPU model and cores, memory, kernel, and
//! the disk under the bench's temporary files (synced-write figures depend on it).

use std::path::Path;

/// One line: `2 cores, AMD EPYC, 23.5 GiB RAM, Linux 6.1.0; temporary files on /dev/vda (ext4, SSD)`.
pub fn describe(work: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let work = std::fs::canonicalize(work).unwrap_or_else(|_| work.to_owned());
    let disk = mount_of(&mounts, &work.display().to_string()).map(|(device, fs)| {
        let kind = rotational(&device)
            .map(|r| {
                if r {
                    ", reported rotational"
                } else {
                    ", non-rotational"
                }
            })
            .unwrap_or("");
        format!("; temporary files on {device} ({fs}{kind})")
    });
    format!(
        "{cores} cores ({}), {}, {} {}{}",
        cpu_model(&cpuinfo).unwrap_or("unknown CPU"),
        mem_total(&meminfo)
            .map(|kib| format!("{:.1} GiB RAM", kib as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "unknown RAM".into()),
        std::env::consts::OS,
        kernel.trim(),
        disk.unwrap_or_default()
    )
}

/// The `model name` of the first CPU in `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim())
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The device and file system of the mount (from `/proc/mounts`) holding `path`:
/// the one with the longest mount point that is a prefix of it.
pub fn mount_of(mounts: &str, path: &str) -> Option<(String, String)> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            let inside = path == point
                || point == "/"
                || path.starts_with(&format!("{}/", point.trim_end_matches('/')));
            inside.then(|| (point.len(), device.to_owned(), fs.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, device, fs)| (device, fs))
}

/// Whether the block device behind `/dev/NAME` (or its parent disk) rotates.
fn rotational(device: &str) -> Option<bool> {
    let name = device.strip_prefix("/dev/")?;
    let class = Path::new("/sys/class/block").join(name);
    let direct = class.join("queue/rotational");
    let parent = class.join("../queue/rotational");
    let text = std::fs::read_to_string(direct)
        .or_else(|_| std::fs::read_to_string(parent))
        .ok()?;
    Some(text.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let info =
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: sse\nmodel name\t: other\n";
        assert_eq!(cpu_model(info), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn memory_is_read_in_kib() {
        assert_eq!(
            mem_total("MemTotal:       24683520 kB\nMemFree: 1 kB\n"),
            Some(24_683_520)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn the_longest_matching_mount_point_wins() {
        let mounts =
            "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /tmpfoo xfs rw 0 0\n";
        assert_eq!(
            mount_of(mounts, "/tmp/.tmpAbc"),
            Some(("tmpfs".into(), "tmpfs".into()))
        );
        assert_eq!(
            mount_of(mounts, "/tmpfoo/x"),
            Some(("/dev/vdb".into(), "xfs".into()))
        );
        assert_eq!(
            mount_of(mounts, "/work/main"),
            Some(("/dev/vda".into(), "ext4".into()))
        );
        assert_eq!(mount_of("", "/x"), None);
    }
}
