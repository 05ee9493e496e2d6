//! What the CLI does to local things it writes to: `get` writes through what is not a regular
//! file (a device, a FIFO, a link to stdout) instead of replacing it, follows a symbolic link to
//! the file it names, and replaces an existing regular file only with `--force`, also for
//! `get -r`; and every command ends quietly when the reader of its stdout goes away.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread::{self, JoinHandle};

use bigfs_tests::{
    assert_no_problems, cli_command, describe, diff_summary, pseudo_random, run_closing_stdout,
    stderr_of, stdout_of, Cluster, CHUNK, CLI_TIMEOUT, KIB,
};

use crate::s;

/// The exit status of a command whose stdout was closed under it, as a shell reports a
/// process killed by SIGPIPE (128 + 13).
const CLOSED_PIPE_EXIT: i32 = 141;

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in test paths")
}

fn mkfifo(path: &Path) {
    // SAFETY: mkfifo(3) reads the NUL-terminated path and nothing else.
    let rc = unsafe { libc::mkfifo(c_path(path).as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A reader of the FIFO at `path` that collects everything written to it until the returned
/// `File` (a second opener, for reading and writing) is dropped. It is opened before any
/// writer, so neither open waits, and the reader sees the end even if no writer ever came.
fn read_fifo(path: &Path) -> (File, JoinHandle<Vec<u8>>) {
    let keep_open = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open FIFO {}: {e}", path.display()));
    let mut reader = File::open(path).expect("open FIFO for reading");
    let collect = thread::spawn(move || {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut data).expect("read FIFO");
        data
    });
    (keep_open, collect)
}

/// A character device the test may write into and that a broken `get` may destroy: a private
/// null device made with mknod (which needs CAP_MKNOD), or else /dev/null if this process
/// cannot write /dev (a broken get then fails instead of replacing it). `None` where neither
/// is safe: a root without CAP_MKNOD could replace the machine's /dev/null.
fn null_device(c: &Cluster) -> Option<PathBuf> {
    let private = c.local_path("null");
    // SAFETY: mknod(2) reads the NUL-terminated path and nothing else.
    let made = unsafe {
        libc::mknod(
            c_path(&private).as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        )
    };
    if made == 0 {
        return Some(private);
    }
    // SAFETY: access(2) reads the NUL-terminated path and nothing else.
    let dev_writable = unsafe { libc::access(c"/dev".as_ptr(), libc::W_OK) } == 0;
    (!dev_writable).then(|| PathBuf::from("/dev/null"))
}

#[track_caller]
fn assert_same(what: &str, expected: &[u8], got: &[u8]) {
    assert!(expected == got, "{what}: {}", diff_summary(expected, got));
}

#[track_caller]
fn assert_symlink_to(link: &Path, target: &Path) {
    let meta = fs::symlink_metadata(link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    assert!(
        meta.file_type().is_symlink(),
        "{} is no longer a symbolic link",
        link.display()
    );
    assert_eq!(fs::read_link(link).unwrap(), target);
}

#[test]
fn get_writes_through_what_is_not_a_regular_file() {
    let c = Cluster::start(3);
    // Several chunks, more than a pipe holds: written in order, never seeking.
    let data = pseudo_random(40, 2 * CHUNK + 123 * KIB);
    c.must_put_bytes("/f", &data);

    let fifo = c.local_path("fifo");
    mkfifo(&fifo);
    let (keep_open, reader) = read_fifo(&fifo);
    let out = c.bigfs(["get", "/f", s(&fifo)]);
    drop(keep_open);
    let read = reader.join().expect("FIFO reader");
    assert!(out.status.success(), "get into a FIFO:\n{}", describe(&out));
    let kind = fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "get replaced the FIFO: now {kind:?}");
    assert_same("read from the FIFO", &data, &read);

    // A link to /dev/stdout (not /dev/stdout itself, which a broken get could replace).
    let link = c.local_path("stdout-link");
    symlink("/dev/stdout", &link).unwrap();
    let out = c.must(["get", "/f", s(&link)]);
    assert_symlink_to(&link, Path::new("/dev/stdout"));
    assert_same("get through a link to /dev/stdout", &data, &out.stdout);

    match null_device(&c) {
        Some(dev) => {
            c.must(["get", "/f", s(&dev)]);
            let kind = fs::symlink_metadata(&dev).unwrap().file_type();
            assert!(
                kind.is_char_device(),
                "get replaced {}: now {kind:?}",
                dev.display()
            );
        }
        None => eprintln!("no character device is safe to test with here; skipped"),
    }
    c.check_logs();
}

#[test]
fn get_replaces_an_existing_file_only_with_force() {
    let c = Cluster::start(3);
    let data = pseudo_random(41, 300 * KIB);
    c.must_put_bytes("/f", &data);
    let old = b"old content".as_slice();

    let file = c.write_local("existing", old);
    let out = c.bigfs(["get", "/f", s(&file)]);
    c.assert_failed(&out, "get over an existing file", &[s(&file), "--force"]);
    assert_same(
        "the file a refused get named",
        old,
        &fs::read(&file).unwrap(),
    );
    c.must(["get", "/f", s(&file), "--force"]);
    assert_same("get --force", &data, &fs::read(&file).unwrap());

    // A link to a file: the file is what is refused or replaced; the link stays.
    let real = c.write_local("real", old);
    let link = c.local_path("link");
    symlink(&real, &link).unwrap();
    let out = c.bigfs(["get", "/f", s(&link)]);
    c.assert_failed(&out, "get over a link to a file", &[s(&link), "--force"]);
    assert_same(
        "a link's file after a refused get",
        old,
        &fs::read(&real).unwrap(),
    );
    c.must(["get", "/f", s(&link), "--force"]);
    assert_symlink_to(&link, &real);
    assert_same(
        "a link's file after get --force",
        &data,
        &fs::read(&real).unwrap(),
    );

    let help = stdout_of(&c.must(["get", "--help"]));
    assert!(help.contains("--force"), "get --help:\n{help}");
    c.check_logs();
}

#[test]
fn get_r_refuses_existing_files_and_keeps_links_and_fifos() {
    let c = Cluster::start(3);
    let files: Vec<(&str, Vec<u8>)> = ["a", "b", "fifo", "sub/c"]
        .iter()
        .enumerate()
        .map(|(k, name)| (*name, pseudo_random(50 + k as u64, 70 * KIB)))
        .collect();
    for (name, data) in &files {
        c.must_put_bytes(&format!("/tree/{name}"), data);
    }
    let old = b"old content".as_slice();
    let dir = c.local_dir("tree");
    fs::write(dir.join("a"), old).unwrap();
    let real_b = c.write_local("real-b", old);
    symlink(&real_b, dir.join("b")).unwrap();
    mkfifo(&dir.join("fifo"));

    // Without --force: the regular file and the linked file are refused and named, the FIFO
    // is written through, the new file is fetched.
    let (keep_open, reader) = read_fifo(&dir.join("fifo"));
    let out = c.bigfs(["get", "-r", "/tree", s(&dir)]);
    drop(keep_open);
    let read = reader.join().expect("FIFO reader");
    c.assert_failed(
        &out,
        "get -r over existing files",
        &["/tree/a", "/tree/b", "--force"],
    );
    assert_same("a refused file", old, &fs::read(dir.join("a")).unwrap());
    assert_same("a refused link's file", old, &fs::read(&real_b).unwrap());
    assert_same("the FIFO's reader", &files[2].1, &read);
    assert!(fs::symlink_metadata(dir.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_same(
        "a new file",
        &files[3].1,
        &fs::read(dir.join("sub/c")).unwrap(),
    );

    // With --force: the files are replaced, the link stays a link.
    let (keep_open, reader) = read_fifo(&dir.join("fifo"));
    let out = c.bigfs(["get", "-r", "--force", "/tree", s(&dir)]);
    drop(keep_open);
    reader.join().expect("FIFO reader");
    assert!(out.status.success(), "get -r --force:\n{}", describe(&out));
    assert_same(
        "a replaced file",
        &files[0].1,
        &fs::read(dir.join("a")).unwrap(),
    );
    assert_symlink_to(&dir.join("b"), &real_b);
    assert_same(
        "a replaced link's file",
        &files[1].1,
        &fs::read(&real_b).unwrap(),
    );
    c.check_logs();
}

/// `bigfs ARGS…` with a reader that takes `keep` bytes of its stdout and closes it.
fn closing_stdout(c: &Cluster, args: &[&str], keep: usize) -> Output {
    run_closing_stdout(
        &mut cli_command(Some(&c.meta_url()), args),
        keep,
        CLI_TIMEOUT,
    )
    .unwrap_or_else(|e| c.fail(&e))
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let c = Cluster::start(3);
    // 12,000 names of 11 bytes: more than a pipe holds, so `ls` is still writing when its
    // reader goes. Empty-file records need no storage node, so bench meta makes them fast.
    c.must([
        "bench",
        "meta",
        "--files",
        "12000",
        "--batch",
        "1000",
        "--dir-files",
        "12000",
        "--root",
        "/big",
    ]);
    // The benchmark lists its first directory, copies it and moves it to /big/moved.
    let big = "/big/moved";
    c.must_put_bytes("/f", &pseudo_random(42, 3 * CHUNK));
    let pulled = c.local_dir("pulled");
    // (command, bytes read before the reader closes; 0: closed before the command writes)
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (vec!["ls", big], 10),
        (vec!["ls", "-l", big], 10),
        (vec!["ls", big, "--json"], 10),
        (vec!["get", "/f", "-"], 10),
        (vec!["get", "/f", "-"], 0),
        (vec!["stat", "/f", "--json"], 0),
        (vec!["stat", "/f"], 0),
        (vec!["nodes"], 0),
        (vec!["nodes", "--json"], 0),
        (vec!["fsck"], 0),
        (vec!["du", "/big"], 0),
        (vec!["df"], 0),
        (vec!["cp", "/f", "/g", "--json"], 0),
        (
            vec!["sync", "--dry-run", "bigfs:/big/moved", s(&pulled)],
            10,
        ),
    ];
    let mut problems = Vec::new();
    for (args, keep) in cases {
        let out = closing_stdout(&c, &args, keep);
        if out.status.code() != Some(CLOSED_PIPE_EXIT) || !stderr_of(&out).is_empty() {
            problems.push(format!(
                "`bigfs {}` with stdout closed after {keep} bytes: expected exit \
                 {CLOSED_PIPE_EXIT} and nothing on stderr\n{}",
                args.join(" "),
                describe(&out)
            ));
        }
    }
    assert_no_problems(&problems);
    c.check_logs();
}
