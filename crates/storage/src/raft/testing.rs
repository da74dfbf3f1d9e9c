//! An in-memory cluster transport with fault injection, for tests of this crate and others.
//!
//! Real Raft over real redb, with the network replaced by tokio duplex pipes: it exercises the
//! same framing, timeouts and reconnects as the cluster port, and lets a test cut links
//! between chosen nodes (a partition) and heal them, which loopback TCP cannot do cheaply.
//! A cut link refuses new dials and fails reads and writes on streams already open across
//! it; a read already waiting is left to the RPC deadline, as a silent network would be.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::{BoxStream, Cluster, Dialer};

/// Buffer of each in-memory pipe.
const PIPE_BYTES: usize = 256 * 1024;

/// A set of nodes reachable by cluster address, and the links cut between them.
#[derive(Clone, Default)]
pub struct MemNetwork {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    nodes: Mutex<HashMap<String, Weak<dyn Cluster>>>,
    cut: Mutex<HashSet<(String, String)>>,
}

fn link(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl Inner {
    fn is_cut(&self, a: &str, b: &str) -> bool {
        self.cut
            .lock()
            .map(|cut| cut.contains(&link(a, b)))
            .unwrap_or(true)
    }
}

impl MemNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// The dialer for the node listening at `from` (its own address decides which cuts apply).
    pub fn dialer(&self, from: &str) -> Arc<dyn Dialer> {
        Arc::new(MemDialer {
            from: from.to_owned(),
            inner: self.inner.clone(),
        })
    }

    /// Makes `node` reachable at `addr` (held weakly: dropping the node unregisters it).
    pub fn register<T: Cluster>(&self, addr: &str, node: &Arc<T>) {
        let node: Arc<dyn Cluster> = node.clone();
        if let Ok(mut nodes) = self.inner.nodes.lock() {
            nodes.insert(addr.to_owned(), Arc::downgrade(&node));
        }
    }

    /// Makes `addr` unreachable, as a stopped process would be.
    pub fn unregister(&self, addr: &str) {
        if let Ok(mut nodes) = self.inner.nodes.lock() {
            nodes.remove(addr);
        }
    }

    /// Cuts the links between `addr` and each of `peers`, both ways.
    pub fn partition(&self, addr: &str, peers: &[&str]) {
        if let Ok(mut cut) = self.inner.cut.lock() {
            for peer in peers {
                cut.insert(link(addr, peer));
            }
        }
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        if let Ok(mut cut) = self.inner.cut.lock() {
            cut.clear();
        }
    }
}

struct MemDialer {
    from: String,
    inner: Arc<Inner>,
}

#[async_trait]
impl Dialer for MemDialer {
    async fn dial(&self, to: &str) -> io::Result<BoxStream> {
        let refused = |why: &str| io::Error::new(io::ErrorKind::ConnectionRefused, why.to_owned());
        if self.inner.is_cut(&self.from, to) {
            return Err(refused("the link is cut"));
        }
        let node = self
            .inner
            .nodes
            .lock()
            .map_err(|_| refused("poisoned"))?
            .get(to)
            .and_then(Weak::upgrade)
            .ok_or_else(|| refused("nothing listens at this address"))?;
        // As the TLS transport would: the far end learns who dialed (the node listening at
        // our address, as its certificate would name it).
        let peer = self
            .inner
            .nodes
            .lock()
            .map_err(|_| refused("poisoned"))?
            .get(&self.from)
            .and_then(Weak::upgrade)
            .and_then(|n| {
                n.servers()
                    .into_iter()
                    .find(|s| s.cluster_addr == self.from)
                    .map(|s| s.node_id)
            })
            .unwrap_or_else(|| self.from.clone());
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        let far = CutStream {
            inner: far,
            net: self.inner.clone(),
            a: to.to_owned(),
            b: self.from.clone(),
        };
        tokio::spawn(async move { node.serve_stream(Box::new(far), peer).await });
        Ok(Box::new(CutStream {
            inner: near,
            net: self.inner.clone(),
            a: self.from.clone(),
            b: to.to_owned(),
        }))
    }
}

/// One end of a pipe between `a` and `b` that fails once their link is cut.
struct CutStream {
    inner: DuplexStream,
    net: Arc<Inner>,
    a: String,
    b: String,
}

impl CutStream {
    fn check(&self) -> io::Result<()> {
        if self.net.is_cut(&self.a, &self.b) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the link is cut"));
        }
        Ok(())
    }
}

impl AsyncRead for CutStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
