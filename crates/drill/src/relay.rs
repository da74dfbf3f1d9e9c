//! A TCP relay that impairs a link in user space, for kernels without `sch_netem`.
//!
//! netem delays and drops packets under TCP; a relay above TCP can only shape the byte stream
//! TCP delivers. Delay carries over exactly: every chunk read on one side is written to the
//! other a fixed time later. Loss cannot (TCP hides it), so it is modelled by what it costs a
//! stream: with the given probability a chunk waits one retransmission timeout more (Linux'
//! 200 ms minimum plus a round trip), and everything behind it waits too, as in-order delivery
//! makes it. Reordering is invisible above TCP and is not modelled. Scenarios that use this say
//! so in their verdict line.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How the relay impairs each direction.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Added to every chunk, each way.
    pub one_way_delay: Duration,
    /// Chance (0..=1) that a chunk also waits a retransmission timeout.
    pub loss: f64,
}

impl Impairment {
    /// What one lost segment costs a TCP stream: the minimum RTO plus a round trip.
    fn retransmit_penalty(&self) -> Duration {
        Duration::from_millis(200) + self.one_way_delay * 2
    }
}

/// A running relay; dropping it closes the listener and every relayed connection.
pub struct Relay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Chunks that were given the retransmission penalty, both directions.
    pub penalised: Arc<AtomicU64>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen` and relays each connection to `upstream` through `imp`.
    pub fn start(listen: SocketAddr, upstream: SocketAddr, imp: Impairment) -> Result<Relay> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("binding the relay on {listen}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let penalised = Arc::new(AtomicU64::new(0));
        let accept = {
            let (stop, conns, penalised) = (stop.clone(), conns.clone(), penalised.clone());
            thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
                for incoming in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(down) = incoming else {
                        // Out of descriptors or similar: do not spin on it.
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let Ok(up) = TcpStream::connect(upstream) else {
                        let _ = down.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = (down.set_nodelay(true), up.set_nodelay(true));
                    if let Ok(mut all) = conns.lock() {
                        for s in [&down, &up] {
                            if let Ok(c) = s.try_clone() {
                                all.push(c);
                            }
                        }
                    }
                    for (from, to) in [(&down, &up), (&up, &down)] {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        if let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) {
                            pipe(from, to, imp, seed, penalised.clone());
                        }
                    }
                }
            })
        };
        Ok(Relay {
            addr,
            stop,
            conns,
            penalised,
            accept: Some(accept),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag and wait for it, so that no connection is
        // added after the sweep; then cut every relayed stream, which ends their threads.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        if let Ok(all) = self.conns.lock() {
            for s in all.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A chunk in flight and when it may be written.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

/// Relays one direction: a reader stamps each chunk with its delivery time, a writer waits
/// for it. Delivery times never go backwards, so a penalised chunk holds back those after it.
fn pipe(mut from: TcpStream, mut to: TcpStream, imp: Impairment, seed: u64, hits: Arc<AtomicU64>) {
    let queue = Arc::new((
        Mutex::new((VecDeque::<Chunk>::new(), false)),
        Condvar::new(),
    ));
    let reader_queue = queue.clone();
    thread::spawn(move || {
        let mut rng = seed | 1;
        let mut last_due = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // xorshift64: a reproducible, dependency-free coin for the loss model.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let lost = (rng as f64 / u64::MAX as f64) < imp.loss;
            let mut due = Instant::now() + imp.one_way_delay;
            if lost {
                due += imp.retransmit_penalty();
                hits.fetch_add(1, Ordering::Relaxed);
            }
            last_due = last_due.max(due);
            let (lock, wake) = &*reader_queue;
            let Ok(mut q) = lock.lock() else { break };
            q.0.push_back(Chunk {
                due: last_due,
                bytes: buf[..n].to_vec(),
            });
            wake.notify_one();
        }
        let (lock, wake) = &*reader_queue;
        if let Ok(mut q) = lock.lock() {
            q.1 = true;
            wake.notify_one();
        }
    });
    thread::spawn(move || {
        let (lock, wake) = &*queue;
        loop {
            let chunk = {
                let Ok(mut q) = lock.lock() else { return };
                loop {
                    if let Some(c) = q.0.pop_front() {
                        break c;
                    }
                    if q.1 {
                        let _ = to.shutdown(Shutdown::Write);
                        return;
                    }
                    q = match wake.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
            };
            let now = Instant::now();
            if chunk.due > now {
                thread::sleep(chunk.due - now);
            }
            if to.write_all(&chunk.bytes).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_intact_in_order_and_late() {
        // Why: the latency scenario's figures mean something only if the relay really delays
        // the stream and never corrupts or reorders it.
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).unwrap();
            }
        });
        let imp = Impairment {
            one_way_delay: Duration::from_millis(30),
            loss: 0.0,
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), upstream, imp).unwrap();

        let mut c = TcpStream::connect(relay.addr).unwrap();
        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let t0 = Instant::now();
        c.write_all(&sent).unwrap();
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        let rtt = t0.elapsed();

        assert_eq!(got, sent);
        assert!(rtt >= Duration::from_millis(60), "round trip {rtt:?}");
        assert_eq!(relay.penalised.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lost_chunks_stall_the_stream_by_a_retransmission_timeout() {
        // Why: the loss model is the only stand-in for netem's loss; with certain loss every
        // chunk must pay the penalty, and the stream must still arrive whole.
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = sink.local_addr().unwrap();
        let reader = thread::spawn(move || {
            let (mut s, _) = sink.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let imp = Impairment {
            one_way_delay: Duration::from_millis(1),
            loss: 1.0,
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), upstream, imp).unwrap();

        let t0 = Instant::now();
        let mut c = TcpStream::connect(relay.addr).unwrap();
        c.write_all(b"one chunk").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got = reader.join().unwrap();

        assert_eq!(got, b"one chunk");
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        assert!(relay.penalised.load(Ordering::Relaxed) >= 1);
    }
}
