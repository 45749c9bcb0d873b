//! Reading Linux's `/proc` text files: the `Key:   N kB` lines of
//! `/proc/<pid>/status` and `/proc/meminfo`.

/// The number of the first line of `text` that starts with `key:` and ends in `kB`;
/// `None` when that line is missing or is not a whole number of kB.
pub fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kib_line() {
        let text = "MemTotal:       24683520 kB\nVmRSS:\t   11000 kB\nThreads:\t3\n";
        assert_eq!(kib(text, "MemTotal"), Some(24_683_520));
        assert_eq!(kib(text, "VmRSS"), Some(11_000));
        assert_eq!(kib(text, "VmHWM"), None, "missing");
        assert_eq!(kib(text, "Threads"), None, "not in kB");
        assert_eq!(kib("VmRSS:\tlots kB\n", "VmRSS"), None);
    }
}
