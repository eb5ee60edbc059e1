//! A fake agent for frona's end-to-end tests: each subcommand does one observable thing.
//!
//! Output is line-oriented on stdout and flushed immediately, so tests can wait for
//! "ready" before acting.

// Leaving processes behind is what several of these commands are for.
#![allow(clippy::zombie_processes)]

mod attacks;
mod bench_http;
mod load;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn block(signals: &[libc::c_int]) -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one signal of `set`; `None` after `timeout`. Being stopped and continued
/// (Ctrl-Z, `fg`) interrupts the wait, which is retried.
fn wait(set: &libc::sigset_t, timeout: Duration) -> Option<libc::c_int> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    loop {
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            return Some(sig);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

fn signal_name(sig: libc::c_int) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| sig.to_string(), |s| s.as_str().to_owned())
}

fn self_exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        // Prints the environment as one JSON object.
        "env" => {
            let map: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned().into(),
                    )
                })
                .collect();
            say(&serde_json::Value::Object(map).to_string());
        }
        "exit" => std::process::exit(arg(1).parse().unwrap()),
        "raise" => {
            let sig: libc::c_int = arg(1).parse().unwrap();
            unsafe { libc::signal(sig, libc::SIG_DFL) };
            unsafe { libc::kill(libc::getpid(), sig) };
            std::thread::sleep(Duration::from_secs(5));
        }
        "sleep" => std::thread::sleep(Duration::from_millis(arg(1).parse().unwrap())),
        // Reports every forwarded signal it receives, one per line, until `exit-on` arrives.
        "signals" => {
            let set = block(&[
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGWINCH,
            ]);
            let exit_on = arg(1);
            say("ready");
            while let Some(sig) = wait(&set, Duration::from_secs(30)) {
                let name = signal_name(sig);
                say(&format!("got {name}"));
                if name == exit_on {
                    std::process::exit(0);
                }
            }
            std::process::exit(9);
        }
        // Counts signals for a while after the first one, then reports the counts.
        "count-signals" => {
            let set = block(&[libc::SIGINT, libc::SIGWINCH]);
            say("ready");
            let (mut int, mut winch) = (0, 0);
            let mut timeout = Duration::from_secs(30);
            while let Some(sig) = wait(&set, timeout) {
                if sig == libc::SIGINT {
                    int += 1;
                } else {
                    winch += 1;
                }
                timeout = Duration::from_millis(500);
                if int > 0 && winch > 0 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            while let Some(sig) = wait(&set, Duration::ZERO) {
                if sig == libc::SIGINT {
                    int += 1
                } else {
                    winch += 1
                }
            }
            say(&format!("int={int} winch={winch}"));
        }
        "ignore-term" => {
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            say("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        // Starts a small tree (a child, a grandchild, one that left the session), prints all
        // pids as JSON, then sleeps.
        "tree" => {
            let child = Command::new(self_exe())
                .args(["subtree"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = String::new();
            std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut out).ok();
            let mut pids: Vec<u32> = out.split_whitespace().map(|p| p.parse().unwrap()).collect();
            pids.push(std::process::id());
            say(&serde_json::to_string(&pids).unwrap());
            std::thread::sleep(Duration::from_secs(60));
        }
        "subtree" => {
            use std::os::unix::process::CommandExt as _;
            let grandchild = Command::new(self_exe())
                .args(["sleep", "60000"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let mut escaped = Command::new(self_exe());
            escaped.args(["sleep", "60000"]).stdout(Stdio::null());
            unsafe {
                escaped.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let escaped = escaped.spawn().unwrap();
            println!(
                "{} {} {}",
                std::process::id(),
                grandchild.id(),
                escaped.id()
            );
            drop(std::io::stdout());
            unsafe { libc::close(1) };
            std::thread::sleep(Duration::from_secs(60));
        }
        // Leaves an orphan that exits after `ms`, prints its pid, then lives on for a while.
        "orphan" => {
            let out = Command::new(self_exe())
                .args(["orphan-parent", &arg(1)])
                .output()
                .unwrap();
            say(String::from_utf8_lossy(&out.stdout).trim());
            std::thread::sleep(Duration::from_millis(arg(2).parse().unwrap()));
        }
        "orphan-parent" => {
            let orphan = Command::new(self_exe())
                .args(["sleep", &arg(1)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            say(&orphan.id().to_string());
        }
        // Tries one attack; prints `blocked: …` and exits 0, or `SUCCEEDED: …` and exits 1.
        "attack" => match attacks::run(&arg(1), &args[2.min(args.len())..]) {
            Ok(detail) => say(&format!("blocked: {detail}")),
            Err(detail) => {
                say(&format!("SUCCEEDED: {detail}"));
                std::process::exit(1);
            }
        },
        // Network: the interfaces this process sees, and whether loopback TCP works.
        "net" => {
            let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
            let mut names: Vec<String> = dev
                .lines()
                .skip(2)
                .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
                .collect();
            names.sort();
            let loopback = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| std::net::TcpStream::connect(l.local_addr()?))
                .is_ok();
            say(&format!(
                "interfaces={} loopback={loopback}",
                names.join(",")
            ));
        }
        // Broker round trips: N calls from C threads, each timed from request to end of answer.
        "bench-broker" => bench_broker(arg(1).parse().unwrap(), arg(2).parse().unwrap()),
        // The broker under load with a mix of permit, deny and ask (see load.rs).
        "load" => load::run(arg(1).parse().unwrap(), arg(2).parse().unwrap()),
        // Oversized and malformed frames beside ordinary calls (see load.rs).
        "frames" => load::hostile_frames(arg(1).parse().unwrap()),
        // Pipelines calls on one broker connection: `issue` for TOOL (arg 1) of `stripe-key`,
        // a malformed line, then the same `issue` again; prints the final event of each answer.
        "pipeline" => pipeline(&arg(1)),
        // Holds N idle connections to the broker, then tries a call on one more; prints what
        // that call got, and what a call gets once the N are closed.
        "flood" => {
            let socket = std::env::var("FRONA_BROKER_SOCKET").unwrap();
            // The first line of the answer.
            let call = |socket: &str| {
                use std::io::BufRead as _;
                let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
                let _ = stream.write_all(
                    b"{\"v\":1,\"op\":\"issue\",\"tool\":\"x\",\"credentials\":[],\"cwd\":\"/\"}\n",
                );
                let mut answer = String::new();
                let _ = std::io::BufReader::new(stream).read_line(&mut answer);
                answer
            };
            let held: Vec<_> = (0..arg(1).parse::<usize>().unwrap())
                .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(300));
            say(&format!("flooded: {}", call(&socket).trim()));
            drop(held);
            std::thread::sleep(std::time::Duration::from_millis(300));
            say(&format!("after: {}", call(&socket).trim()));
        }
        // The HTTP proxy benchmark: an HTTPS server (arg: where to write its CA), and a client
        // (direct|proxy, requests, clients, server port).
        "https-server" => bench_http::server(&arg(1)),
        "bench-http" => bench_http::client(
            &arg(1),
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        ),
        // The benchmark's peer: a server on socket PATH that answers every request line at once
        // with a canned permit (what the IPC alone costs).
        "echo-server" => echo_server(&arg(1)),
        other => {
            eprintln!("frona-test-agent: unknown command `{other}`");
            std::process::exit(2);
        }
    }
}

/// Times `total` broker calls from `clients` threads, each on its own persistent connection: a
/// permitted `issue` of the cached static credential `bench-token` (request sent → decision →
/// value → exit read). Prints p50, p99 and calls/s as one JSON line.
fn bench_broker(total: usize, clients: usize) {
    use std::io::{BufRead as _, BufReader};
    let socket = std::env::var("FRONA_BROKER_SOCKET").expect("run under frona run with a broker");
    let request = b"{\"v\":1,\"op\":\"issue\",\"tool\":\"bench-sdk\",\"credentials\":[\"bench-token\"],\"cwd\":\"/\"}\n";
    let started = std::time::Instant::now();
    let per_client = total / clients;
    let mut latencies: Vec<u128> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let socket = socket.clone();
                scope.spawn(move || {
                    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    (0..per_client)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            stream.write_all(request).unwrap();
                            for expected in ["\"permit\"", "\"credential\"", "\"exit\""] {
                                line.clear();
                                reader.read_line(&mut line).unwrap();
                                assert!(line.contains(expected), "{line}");
                            }
                            t.elapsed().as_micros()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    say(&format!(
        "{{\"clients\":{clients},\"calls\":{},\"p50_us\":{},\"p99_us\":{},\"calls_per_s\":{:.0}}}",
        latencies.len(),
        pick(0.50),
        pick(0.99),
        latencies.len() as f64 / elapsed
    ));
}

fn echo_server(path: &str) {
    use std::io::{BufRead as _, BufReader};
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let answer = b"{\"type\":\"decision\",\"effect\":\"permit\",\"rule\":\"bench\",\"reason\":\"rule `bench`\"}\n{\"type\":\"credential\",\"name\":\"bench-token\",\"env\":\"BENCH_TOKEN\",\"value\":\"bench-value-0123456789\"}\n{\"type\":\"exit\",\"code\":0}\n";
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
                if stream.write_all(answer).is_err() {
                    break;
                }
            }
        });
    }
}

fn pipeline(tool: &str) {
    use std::io::{BufRead as _, BufReader};
    let socket = std::env::var("FRONA_BROKER_SOCKET").expect("run under frona run with a broker");
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let issue = format!(
        "{{\"v\":1,\"op\":\"issue\",\"tool\":\"{tool}\",\"credentials\":[\"stripe-key\"],\"cwd\":\"/\"}}\n"
    );
    stream
        .write_all(format!("{issue}not json\n{issue}").as_bytes())
        .unwrap();
    let mut finals = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let kind = match event["type"].as_str().unwrap() {
            "decision" if event["effect"] != "permit" => "deny",
            "exit" => "exit",
            "error" => "error",
            _ => continue,
        };
        finals.push(kind);
        if finals.len() == 3 {
            break;
        }
    }
    say(&finals.join(" "));
}
