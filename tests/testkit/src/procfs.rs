//! What `/proc` says about a process: its state and CPU time (`stat`), its threads, memory
//! and context switches (`status`), its tasks, children, descriptors and limits. Each
//! function reads once and returns an error for a process that is gone, so callers that
//! sample a server while it stops can tell.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::time::Duration;

/// The fields of `/proc/PID/stat` that the tests and the bench use.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// `R`, `S`, `Z` (ended, not yet reaped)…
    pub state: char,
    pub parent: u32,
    /// User plus system time of every thread of the process, living or ended, in clock
    /// ticks (see [`clock_tick`]).
    pub cpu_ticks: u64,
    /// When the process started, in clock ticks since boot: with the pid, it names one
    /// process for good, even once the pid is reused.
    pub start_ticks: u64,
}

/// Reads `/proc/PID/stat`.
pub fn stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| malformed("stat"))
}

fn parse_stat(text: &str) -> Option<Stat> {
    // Field 2, the command name in parentheses, may itself hold spaces and parentheses.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Numbered as in proc(5): the first field after the name is field 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
    })
}

/// How long one clock tick of `/proc/PID/stat` is: the resolution of every CPU reading.
pub fn clock_tick() -> Duration {
    Duration::from_secs(1) / rustix::param::clock_ticks_per_second().max(1) as u32
}

/// The text of a `/proc/.../status` file, read once.
#[derive(Debug, Clone)]
pub struct Status(String);

impl Status {
    /// The number on the `key:` line, such as `Threads`, `VmRSS` (kB) or
    /// `voluntary_ctxt_switches`.
    pub fn value(&self, key: &str) -> Option<u64> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            if name != key {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
    }

    /// Voluntary plus involuntary context switches (of one thread, for a task's status).
    pub fn context_switches(&self) -> u64 {
        ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
            .iter()
            .filter_map(|key| self.value(key))
            .sum()
    }
}

/// Reads `/proc/PID/status`.
pub fn status(pid: u32) -> io::Result<Status> {
    fs::read_to_string(format!("/proc/{pid}/status")).map(Status)
}

/// Reads `/proc/PID/task/TID/status`: one thread's.
pub fn task_status(pid: u32, task: u32) -> io::Result<Status> {
    fs::read_to_string(format!("/proc/{pid}/task/{task}/status")).map(Status)
}

/// The thread ids of a process, in order.
pub fn tasks(pid: u32) -> io::Result<Vec<u32>> {
    let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The living processes whose parent is `pid`, in order. Every process is looked at:
/// `/proc/PID/task/TID/children` needs `CONFIG_PROC_CHILDREN`, which not every kernel has.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&child| stat(child).is_ok_and(|s| s.parent == pid && s.state != 'Z'))
        .collect();
    children.sort_unstable();
    children
}

/// The descriptors a process has open.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// A process's limit on open descriptors, soft and hard, from `/proc/PID/limits`
/// (`None`: unlimited).
pub fn descriptor_limit(pid: u32) -> io::Result<rustix::process::Rlimit> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or_else(|| malformed("limits"))?;
    let mut words = line["Max open files".len()..].split_whitespace();
    let mut next = || -> io::Result<Option<u64>> {
        match words.next() {
            Some("unlimited") => Ok(None),
            Some(word) => word.parse().map(Some).map_err(|_| malformed("limits")),
            None => Err(malformed("limits")),
        }
    };
    Ok(rustix::process::Rlimit {
        current: next()?,
        maximum: next()?,
    })
}

/// Threads and resident memory of a group of processes (a server and its children, like
/// nginx's master and workers), added up over the processes that could be read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub threads: u64,
    pub rss_kb: u64,
}

impl Sample {
    /// One look at every process of `pids`. A process that has exited adds nothing.
    pub fn take(pids: &[u32]) -> Sample {
        let statuses: Vec<Status> = pids.iter().filter_map(|&pid| status(pid).ok()).collect();
        let sum = |key| statuses.iter().filter_map(|s| s.value(key)).sum();
        Sample {
            threads: sum("Threads"),
            rss_kb: sum("VmRSS"),
        }
    }

    /// The larger of each field.
    pub fn max(self, other: Sample) -> Sample {
        Sample {
            threads: self.threads.max(other.threads),
            rss_kb: self.rss_kb.max(other.rss_kb),
        }
    }
}

/// CPU time (user plus system, every thread living or ended) of a group of processes, in
/// clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> io::Result<u64> {
    pids.iter().map(|&pid| Ok(stat(pid)?.cpu_ticks)).sum()
}

/// Context switches of every living thread of a group of processes, by thread id. Threads
/// that have ended are missing: their counts leave `/proc` with them.
pub fn living_switches(pids: &[u32]) -> HashMap<u32, u64> {
    let mut switches = HashMap::new();
    for &pid in pids {
        for task in tasks(pid).unwrap_or_default() {
            // A thread that ended since the listing has nothing to say.
            if let Ok(status) = task_status(pid, task) {
                switches.insert(task, status.context_switches());
            }
        }
    }
    switches
}

/// How many connections wait in the accept queue of the socket listening on
/// `127.0.0.1:port`: `/proc/net/tcp` gives it as the receive queue of a socket in the
/// LISTEN state. `None` when no such socket is listed.
pub fn accept_queue(port: u16) -> io::Result<Option<u64>> {
    Ok(parse_accept_queue(
        &fs::read_to_string("/proc/net/tcp")?,
        port,
    ))
}

fn parse_accept_queue(table: &str, port: u16) -> Option<u64> {
    /// `st` of a listening socket in the kernel's table.
    const LISTEN: &str = "0A";
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        // sl, local_address, rem_address, st, tx_queue:rx_queue, …
        let mut fields = line.split_whitespace().skip(1);
        let (address, _, state, queues) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if address != local || state != LISTEN {
            return None;
        }
        u64::from_str_radix(queues.split_once(':')?.1, 16).ok()
    })
}

fn malformed(file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed /proc/PID/{file}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_survives_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 0 0 20 0 3 0 999 0 0";
        let stat = parse_stat(line).expect("parsed");
        assert_eq!(
            (stat.state, stat.parent, stat.cpu_ticks, stat.start_ticks),
            ('S', 7, 30, 999)
        );
    }

    #[test]
    fn this_process_reads_back() {
        let me = std::process::id();
        let status = status(me).expect("status");
        assert!(status.value("Threads").is_some_and(|n| n >= 1));
        assert!(status.value("VmRSS").is_some_and(|kb| kb > 0));
        assert!(tasks(me).expect("tasks").contains(&me));
        assert!(fd_count(me).expect("fds") >= 3);
        let sample = Sample::take(&[me, me]);
        assert!(sample.threads >= 2, "two looks at one process add up");
        let limit = descriptor_limit(me).expect("limits");
        let own = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!((limit.current, limit.maximum), (own.current, own.maximum));
        let stat = stat(me).expect("stat");
        assert_eq!(stat.parent, std::os::unix::process::parent_id());
        assert!(children(stat.parent).contains(&me));
    }

    #[test]
    fn the_accept_queue_is_the_listening_sockets_receive_queue() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000011 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000005 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0";
        let cases = [(8080, Some(17)), (8081, None), (8082, None)];
        for (port, queued) in cases {
            assert_eq!(parse_accept_queue(table, port), queued, "port {port}");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert_eq!(accept_queue(port).expect("/proc/net/tcp"), Some(0));
        let _waiting = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        assert_eq!(accept_queue(port).expect("/proc/net/tcp"), Some(1));
    }
}
