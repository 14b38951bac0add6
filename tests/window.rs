//! A real window under Xvfb: the app runs `assets/examples/failures` to the end and saves a
//! screenshot that is a picture, not a blank.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// An Xvfb server on a display of its own, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        // Xvfb picks a display no other server holds (tests of this file run at once, and
        // a server killed earlier may have left its lock behind) and prints its number on
        // stdout once it accepts connections.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (apt-get install xvfb libgl1-mesa-dri libglx-mesa0)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("Xvfb's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read Xvfb's display number");
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not come up (it printed {line:?})"));
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM, so that the server removes its lock and socket on the way out.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if !wait_for(Duration::from_secs(5), || {
            self.child.try_wait().is_ok_and(|s| s.is_some())
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Decode a PNG into (width, height, RGBA bytes).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).expect("screenshot exists");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn the_window_runs_failures_and_saves_a_screenshot() {
    let x = Xvfb::start();
    let work = tempfile::tempdir().expect("tmp");
    // Run a copy, so that the example's folder gets no run records.
    let dir = work.path().join("failures");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::copy(
        example("failures").join("poolscope.toml"),
        dir.join("poolscope.toml"),
    )
    .expect("copy");
    let shot = work.path().join("failures.png");
    let out = app()
        .arg(&dir)
        .arg("--screenshot")
        .arg(&shot)
        .arg("--run")
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_DATA_HOME", work.path())
        .output()
        .expect("poolscope runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (w, h, rgba) = decode(&shot);
    assert!(w >= 720 && h >= 480, "{w}×{h}");
    let mut colours = std::collections::BTreeSet::new();
    for px in rgba.chunks(4) {
        colours.insert([px[0], px[1], px[2]]);
    }
    assert!(
        colours.len() > 50,
        "the screenshot is nearly blank: {} colours",
        colours.len()
    );
    // The run went to the end: its records are there.
    let runs = std::fs::read_dir(dir.join(".poolscope/runs"))
        .expect("runs")
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn a_screenshot_that_cannot_be_saved_is_one_error_and_exit_2() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    // Refused before any window opens: no display is needed.
    for (shot, says) in [
        (work.path().join("missing/x.png"), "does not exist"),
        (work.path().to_path_buf(), "that is a folder"),
    ] {
        let out = app()
            .arg(dir.path())
            .arg("--screenshot")
            .arg(&shot)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("poolscope runs");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
    }
    // A write that fails once the window is up: reported once, exit 2.
    let x = Xvfb::start();
    let out = app()
        .arg(dir.path())
        .arg("--screenshot")
        .arg("/dev/full")
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_DATA_HOME", work.path())
        .output()
        .expect("poolscope runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("cannot save the screenshot").count(),
        1,
        "{err}"
    );
}

#[test]
fn closing_the_window_kills_the_run_and_keeps_its_records() {
    let x = Xvfb::start();
    let work = tempfile::tempdir().expect("tmp");
    let pids = work.path().join("pids");
    std::fs::create_dir(&pids).expect("mkdir");
    let dir = work.path().join("sleepers");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("poolscope.toml"),
        format!(
            "[pool]\nworkers = 2\n\n[each]\nrange = [1, 4]\nsh = \"sleep 300 & echo $! > {0}/bg-{{#}}; echo $$ > {0}/main-{{#}}; wait\"\n",
            pids.display()
        ),
    )
    .expect("manifest");
    let mut child = app()
        .arg(&dir)
        .arg("--run")
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_DATA_HOME", work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("poolscope runs");
    let started = wait_for(Duration::from_secs(30), || {
        std::fs::read_dir(&pids).map_or(0, |d| d.count()) == 4
    });
    assert!(started, "two tasks did not start");
    let list: Vec<i32> = std::fs::read_dir(&pids)
        .expect("pids")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .map(|own| host_pid(child.id(), own))
        .collect();
    // SIGTERM closes the window as its close button does.
    signal(child.id(), libc::SIGTERM);
    let closed = wait_for(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(closed, "the window did not close");
    let gone = wait_for(Duration::from_secs(1), || list.iter().all(|&p| !alive(p)));
    assert!(gone, "tasks outlived the window");
    let run = std::fs::read_dir(dir.join(".poolscope/runs"))
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path();
    assert_eq!(joblog(&run).len(), 2, "the two running tasks are recorded");
    assert_eq!(summary(&run)["interrupted"], true);
}
