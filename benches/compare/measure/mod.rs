//! Watching a server the bench started while a scenario runs: its peak threads and memory
//! throughout ([`Sampler`]), and its CPU time and context switches over the measured
//! window ([`usage`]).

pub mod usage;

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use testkit::procfs::Sample;

/// How often the sampler looks at the server's `/proc/PID/status`: fine enough to catch
/// the peak of a 0.3 s quick run, cheap enough (one small file read per process) not to
/// disturb the server.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(20);

/// A thread that samples a server's processes until [`Sampler::finish`], keeping the
/// highest threads and resident memory it saw (each added up over the processes).
pub struct Sampler {
    stop: Sender<()>,
    thread: JoinHandle<Sample>,
}

impl Sampler {
    pub fn start(pids: Vec<u32>) -> Sampler {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sampler".to_string())
            .spawn(move || {
                let mut peak = Sample::default();
                loop {
                    peak = peak.max(Sample::take(&pids));
                    // The stop channel doubles as the sampling clock.
                    if stopped.recv_timeout(SAMPLE_INTERVAL) != Err(RecvTimeoutError::Timeout) {
                        return peak;
                    }
                }
            })
            .expect("spawn the sampler thread");
        Sampler { stop, thread }
    }

    /// The peaks seen so far.
    pub fn finish(self) -> Sample {
        drop(self.stop);
        self.thread.join().unwrap_or_default()
    }
}
