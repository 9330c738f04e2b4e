//! A moto server (the AWS API emulator from PyPI) on 127.0.0.1, for the
//! adapter tests.
//!
//! Where moto comes from, in order: `$SHOPFLEET_MOTO_SERVER`, then
//! `target/moto-venv/bin/moto_server` in the workspace (what `.ci/run`
//! installs). Without it, the harness
//! creates `target/moto-venv` itself (`python3 -m venv`, then pip with the
//! pinned version of `tests/aws/moto-requirements.txt`) under an exclusive
//! lock file, so parallel test binaries install it once. Failing to get
//! moto fails the test that asked: it never skips.
//!
//! One server per test binary while its tests run: the tests share it
//! through [`Moto::shared`] (each names its resources after itself), and it
//! is stopped when the last of them lets go. A small watchdog shell kills
//! it as soon as its stdin closes, so it also goes away when the test
//! binary dies without unwinding.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// `moto[server]==X.Y.Z`, shared with `.ci/run`.
pub const REQUIREMENT: &str = include_str!("moto-requirements.txt");

const STARTUP: Duration = Duration::from_secs(30);

pub fn pinned_version() -> &'static str {
    REQUIREMENT
        .trim()
        .rsplit_once("==")
        .map(|(_, v)| v)
        .expect("tests/aws/moto-requirements.txt pins moto as moto[server]==X.Y.Z")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    workspace().join("target/moto-venv")
}

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    log: PathBuf,
    server: Child,
    /// A shell that kills the server when its stdin closes: when this
    /// process dies without running `Drop`, the kernel closes the pipe.
    watchdog: Child,
    watchdog_stdin: Option<ChildStdin>,
}

impl Moto {
    /// The running server of this test binary, started on first use. A
    /// failure to start is remembered: the other tests fail at once with
    /// the same message instead of trying again.
    pub fn shared() -> Arc<Moto> {
        static SHARED: Mutex<(Weak<Moto>, Option<String>)> = Mutex::new((Weak::new(), None));
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(error) = &slot.1 {
            panic!("moto: {error}");
        }
        if let Some(moto) = slot.0.upgrade() {
            return moto;
        }
        match Moto::start() {
            Ok(moto) => {
                let moto = Arc::new(moto);
                slot.0 = Arc::downgrade(&moto);
                moto
            }
            Err(error) => {
                slot.1 = Some(error.clone());
                panic!("moto: {error}");
            }
        }
    }

    fn start() -> Result<Moto, String> {
        let server = find_or_install()?;
        let mut last_error = String::new();
        // A free port can be taken between probing and binding: try again,
        // but only for that.
        for _ in 0..3 {
            match Self::start_at(&server, free_port()?) {
                Ok(moto) => return Ok(moto),
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    fn start_at(server: &Path, port: u16) -> Result<Moto, String> {
        let log_path = workspace().join(format!("target/moto-{port}.log"));
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut server_process = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r _; kill "$0" 2>/dev/null"#)
            .arg(server_process.id().to_string())
            .stdin(Stdio::piped())
            .spawn();
        let mut watchdog = match watchdog {
            Ok(w) => w,
            Err(e) => {
                let _ = server_process.kill();
                let _ = server_process.wait();
                return Err(format!("cannot run sh to watch moto: {e}"));
            }
        };
        let watchdog_stdin = watchdog.stdin.take();
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            log: log_path.clone(),
            server: server_process,
            watchdog,
            watchdog_stdin,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if answers(port) {
                return Ok(moto);
            }
            let exited = moto.server.try_wait().map_err(|e| e.to_string())?;
            if exited.is_some() || Instant::now() > deadline {
                let output = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(match exited {
                    Some(status) => format!(
                        "{} exited ({status}) before answering on port {port}:\n{output}",
                        server.display()
                    ),
                    None => format!(
                        "{} did not answer on port {port} within {}s:\n{output}",
                        server.display(),
                        STARTUP.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The watchdog stops the server as its stdin closes.
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.try_wait() {
                let _ = fs::remove_file(&self.log);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// moto answers its own API with a JSON document once it serves requests.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python beside the moto server in use: its virtualenv has boto3,
/// which moto depends on.
pub fn python() -> PathBuf {
    let server = std::env::var_os("SHOPFLEET_MOTO_SERVER").map_or_else(venv_server, PathBuf::from);
    server.with_file_name("python")
}

fn venv_server() -> PathBuf {
    venv().join("bin/moto_server")
}

/// The venv holds the pinned moto (a bumped pin reinstalls) and its
/// Python still exists (a venv points at the interpreter that made it).
fn venv_is_ready() -> bool {
    let marker = format!("moto-{}.dist-info", pinned_version());
    let Ok(lib) = fs::read_dir(venv().join("lib")) else {
        return false;
    };
    is_executable(&venv_server())
        && is_executable(&venv().join("bin/python"))
        && lib
            .flatten()
            .any(|python| python.path().join("site-packages").join(&marker).is_dir())
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SHOPFLEET_MOTO_SERVER") {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "SHOPFLEET_MOTO_SERVER={} is not an executable file",
                path.display()
            ))
        };
    }
    if venv_is_ready() {
        return Ok(venv_server());
    }
    // Never whatever `moto_server` is on PATH: moto's coverage changes from
    // release to release, and a test must not pass or fail by machine.
    install()
}

/// Creates `target/moto-venv` with the pinned moto, once across processes.
fn install() -> Result<PathBuf, String> {
    let target = workspace().join("target");
    fs::create_dir_all(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let lock_path = target.join("moto-venv.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    // Released when the file is closed, or when this process dies.
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if venv_is_ready() {
        return Ok(venv_server());
    }
    let started = Instant::now();
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(venv()),
        "python3 -m venv",
    )?;
    run(
        Command::new(venv().join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(workspace().join("tests/aws/moto-requirements.txt")),
        "pip install",
    )?;
    if !venv_is_ready() {
        return Err(format!(
            "pip finished but {} is not moto {}",
            venv().display(),
            pinned_version()
        ));
    }
    eprintln!(
        "moto: installed {} into {} in {:.1}s",
        REQUIREMENT.trim(),
        venv().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(venv_server())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        format!("moto is not installed (SHOPFLEET_MOTO_SERVER, target/moto-venv) and {what} could not run: {e}")
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "moto is not installed (SHOPFLEET_MOTO_SERVER, target/moto-venv) and {what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
