//! A throwaway Kafka-compatible broker for demos and tests: `tansu` (memory
//! storage) started as a child process on a free loopback port, ready once
//! it accepts connections, and killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No `tansu` binary was found.
    #[error(
        "no Kafka broker given and no `tansu` binary found (looked at $WEIR_TANSU, $PATH and ~/.cargo/bin); \
         install it with `cargo install tansu@0.6.0 --features dynostore`, or pass --brokers HOST:PORT"
    )]
    NotInstalled,
    /// The process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It started but never accepted connections.
    #[error("{binary} did not accept connections on {address} within {seconds}s")]
    NotReady {
        /// The binary.
        binary: PathBuf,
        /// The address.
        address: SocketAddr,
        /// How long we waited.
        seconds: u64,
    },
}

/// A running broker; killed on drop.
pub struct TansuBroker {
    child: Child,
    address: SocketAddr,
}

/// Where the `tansu` binary is, if anywhere.
pub fn find_tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let candidate = PathBuf::from(home).join(".cargo/bin/tansu");
        candidate.is_file().then_some(candidate)
    })
}

impl TansuBroker {
    /// Starts a broker on a free port of 127.0.0.1 and waits until it listens.
    pub fn start() -> Result<Self, BrokerError> {
        let binary = find_tansu().ok_or(BrokerError::NotInstalled)?;
        let address = free_port().map_err(|source| BrokerError::Spawn {
            binary: binary.clone(),
            source,
        })?;
        let url = format!("tcp://{address}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let broker = TansuBroker { child, address };
        let wait = Duration::from_secs(30);
        let deadline = Instant::now() + wait;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(BrokerError::NotReady {
                    binary,
                    address,
                    seconds: wait.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}
