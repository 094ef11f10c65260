//! Misbehaving network peers on loopback, for the deadline tests: a [`BlackHole`] accepts
//! connections and reads whatever comes but never answers a byte; a [`StallingProxy`] forwards
//! to a real service and passes the first N bytes of the answers, then stalls for good.
//!
//! Both run on std threads, hold a bounded number of connections, and stop (closing every
//! socket) when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the helper threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Connections held at most; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// The stop signal shared by a helper's threads: a flag plus a condition variable, so that a
/// stalled connection waits without spinning.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap();
        self.wake.notify_all();
    }

    /// Blocks until [`Stop::stop`].
    fn wait(&self) {
        let mut guard = self.lock.lock().unwrap();
        while !self.stopped() {
            guard = self.wake.wait_timeout(guard, TICK * 10).unwrap().0;
        }
    }
}

fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Accepts connections until stopped, handing each to `serve` on a thread of its own.
fn accept_loop(
    listener: TcpListener,
    stop: Arc<Stop>,
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> JoinHandle<()> {
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        let live = Arc::new(AtomicUsize::new(0));
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        while !stop.stopped() {
            match listener.accept() {
                Ok((stream, _)) if live.load(Ordering::SeqCst) < MAX_CONNECTIONS => {
                    live.fetch_add(1, Ordering::SeqCst);
                    let (serve, live) = (serve.clone(), live.clone());
                    workers.push(std::thread::spawn(move || {
                        serve(stream);
                        live.fetch_sub(1, Ordering::SeqCst);
                    }));
                }
                Ok((stream, _)) => drop(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
                Err(_) => std::thread::sleep(TICK),
            }
        }
        for worker in workers {
            let _ = worker.join();
        }
    })
}

/// A TCP listener that accepts, reads and never answers.
pub struct BlackHole {
    addr: SocketAddr,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    pub fn start() -> Self {
        let (listener, addr) = listen();
        let stop = Arc::new(Stop::default());
        let flag = stop.clone();
        let thread = accept_loop(listener, stop.clone(), move |mut stream| {
            stream.set_read_timeout(Some(TICK)).unwrap();
            let mut buf = [0u8; 16 << 10];
            while !flag.stopped() {
                match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A proxy in front of a real service that lets the first `pass` bytes of answers through
/// (counted over all its connections), then forwards no more answer bytes: every connection,
/// open or new, stalls while staying open. Requests always go through.
pub struct StallingProxy {
    addr: SocketAddr,
    stop: Arc<Stop>,
    passed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl StallingProxy {
    /// Proxies to `target` (`http://host:port` or `host:port`).
    pub fn start(target: &str, pass: usize) -> Self {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_socket_addrs()
            .expect("resolve the proxied service")
            .next()
            .expect("an address of the proxied service");
        let (listener, addr) = listen();
        let stop = Arc::new(Stop::default());
        let passed = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), passed.clone());
        let thread = accept_loop(listener, stop.clone(), move |client| {
            let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                return;
            };
            relay(client, server, pass, &count, &flag);
        });
        Self {
            addr,
            stop,
            passed,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer bytes let through so far.
    pub fn passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` until either side closes or `stop`; read timeouts let it notice.
fn pump(mut from: TcpStream, mut to: TcpStream, stop: &Stop) {
    from.set_read_timeout(Some(TICK)).unwrap();
    let mut buf = [0u8; 16 << 10];
    while !stop.stopped() {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Requests flow freely; answers flow until `pass` bytes have gone through in all, then the
/// connection stalls (open, silent) until `stop`.
fn relay(client: TcpStream, server: TcpStream, pass: usize, passed: &AtomicUsize, stop: &Stop) {
    let (client_in, server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    // the request direction runs on a scoped thread: it ends with this function
    std::thread::scope(|scope| {
        scope.spawn(|| pump(client_in, server_out, stop));
        let (mut server, mut client) = (server, client);
        server.set_read_timeout(Some(TICK)).unwrap();
        let mut buf = [0u8; 16 << 10];
        while !stop.stopped() {
            let n = match server.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => break,
            };
            let allowed = passed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                    Some(p + n.min(pass.saturating_sub(p)))
                })
                .map(|before| n.min(pass.saturating_sub(before)))
                .unwrap_or(0);
            if allowed > 0 && client.write_all(&buf[..allowed]).is_err() {
                break;
            }
            if allowed < n {
                // the budget is spent: stall with the connection open
                stop.wait();
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    });
}
