//! The boot-control backends against the real tools: the U-Boot backend with Debian's
//! `fw_printenv`/`fw_setenv` (libubootenv) on an environment image named by a temp
//! `fw_env.config`, the GRUB backend with `grub-editenv`. A missing tool fails the test
//! naming the Debian package to install; it never skips.
//!
//! The shipped boot-loader scripts are checked too: `boot.cmd` compiles with `mkimage`,
//! `grub.cfg` passes `grub-script-check`, and both, run under bash with the boot loader's
//! commands stubbed, apply exactly the rule of `BootVars::boot` to every valid state.
use ota_client::boot::{
    BootControl, BootError, BootSpec, BootVars, EnvFile, GrubEnv, Slot, UbootEnv,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Fail (not skip) when `tool` is not installed, naming its Debian package.
fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not on PATH: install the Debian package {package} (apt-get install {package})"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn trial(slot: Slot) -> BootVars {
    BootVars {
        ota_slot: slot,
        upgrade_available: true,
        bootcount: 0,
        bootlimit: 3,
    }
}

/// A directory holding executable shell scripts, to put on a backend's search path.
fn script_dir(scripts: &[(&str, &str)]) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    for (name, body) in scripts {
        let p = d.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

/// A wrapper for `tool` that logs each call's arguments to `log` and runs the real one.
fn logging_wrapper(tool: &str, log: &Path) -> TempDir {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap();
    let body = format!(
        "echo \"$*\" >> '{}'\nexec '{}' \"$@\"",
        log.display(),
        real.display()
    );
    script_dir(&[(tool, &body)])
}

/// An environment image made by `mkenvimage` from `initial` (`name=value` lines), and the
/// `fw_env.config` naming it (two copies when `redundant`).
struct Uboot {
    dir: TempDir,
    config: PathBuf,
}

impl Uboot {
    fn new(initial: &str, redundant: bool) -> Uboot {
        require("fw_printenv", "libubootenv-tool");
        require("fw_setenv", "libubootenv-tool");
        require("mkenvimage", "u-boot-tools");
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("initial.txt");
        std::fs::write(&text, initial).unwrap();
        let image = dir.path().join("env0.bin");
        let mut mk = Command::new("mkenvimage");
        if redundant {
            mk.arg("-r");
        }
        run(mk.args(["-s", "0x4000", "-o"]).arg(&image).arg(&text));
        let mut config = format!("{} 0x0 0x4000\n", image.display());
        if redundant {
            let copy = dir.path().join("env1.bin");
            std::fs::copy(&image, &copy).unwrap();
            config.push_str(&format!("{} 0x0 0x4000\n", copy.display()));
        }
        let config_path = dir.path().join("fw_env.config");
        std::fs::write(&config_path, config).unwrap();
        Uboot {
            dir,
            config: config_path,
        }
    }

    fn backend(&self) -> UbootEnv {
        UbootEnv::new(Some(self.config.clone()))
    }

    fn printenv(&self) -> String {
        run(Command::new("fw_printenv").arg("-c").arg(&self.config))
    }

    fn setenv(&self, name: &str, value: &str) {
        run(Command::new("fw_setenv")
            .arg("-c")
            .arg(&self.config)
            .args(["--", name, value]));
    }
}

#[test]
fn uboot_round_trip_with_real_tools_keeps_other_variables() {
    let env = Uboot::new("bootdelay=2\nfoo=bar baz\n", false);
    let spec: BootSpec = format!("uboot:{}", env.config.display()).parse().unwrap();
    assert!(
        !spec.init_env().unwrap(),
        "uboot never creates an environment"
    );
    let boot = spec.open();
    assert_eq!(
        boot.read().unwrap(),
        BootVars::default(),
        "absent: defaults"
    );
    let vars = BootVars {
        ota_slot: Slot::B,
        upgrade_available: true,
        bootcount: 2,
        bootlimit: 9,
    };
    boot.write(&vars).unwrap();
    assert_eq!(boot.read().unwrap(), vars);
    let listing = env.printenv();
    for line in [
        "bootdelay=2",
        "foo=bar baz",
        "ota_slot=b",
        "upgrade_available=1",
        "bootcount=2",
        "bootlimit=9",
    ] {
        assert!(listing.lines().any(|l| l == line), "{line} in {listing}");
    }
    assert!(
        boot.describe().contains("fw_env.config"),
        "{}",
        boot.describe()
    );
}

#[test]
fn uboot_write_is_one_fw_setenv_script_call() {
    let env = Uboot::new("", false);
    let log = env.dir.path().join("calls.log");
    let wrapper = logging_wrapper("fw_setenv", &log);
    let path = std::env::join_paths(
        [wrapper.path().to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let boot = env.backend().with_search_path(path);
    boot.write(&trial(Slot::B)).unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(calls.contains(" -s "), "{calls}");
    assert_eq!(boot.read().unwrap(), trial(Slot::B));
}

#[test]
fn uboot_partial_environment_reads_defaults_for_absent_variables() {
    let env = Uboot::new("ota_slot=b\nupgrade_available=1\n", false);
    let v = env.backend().read().unwrap();
    assert_eq!((v.ota_slot, v.upgrade_available), (Slot::B, true));
    assert_eq!((v.bootcount, v.bootlimit), (0, 3));
}

#[test]
fn uboot_redundant_environment() {
    let env = Uboot::new("foo=bar\n", true);
    let boot = env.backend();
    for slot in [Slot::B, Slot::A, Slot::B] {
        boot.write(&trial(slot)).unwrap();
        assert_eq!(boot.read().unwrap(), trial(slot));
    }
    assert!(env.printenv().contains("foo=bar"));
}

#[test]
fn uboot_garbage_written_by_fw_setenv_is_refused() {
    for (var, value) in [
        ("ota_slot", "c"),
        ("upgrade_available", "2"),
        ("bootcount", "-1"),
        ("bootlimit", "0"),
        ("bootlimit", "12"),
    ] {
        let env = Uboot::new("", false);
        env.setenv(var, value);
        let err = env.backend().read().unwrap_err();
        match &err {
            BootError::Garbage {
                var: v, value: got, ..
            } => assert_eq!((*v, got.as_str()), (var, value)),
            other => panic!("{var}={value}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(var) && msg.contains(value) && msg.contains("fw_env.config"),
            "{msg}"
        );
    }
}

#[test]
fn uboot_missing_tool_is_named() {
    let env = Uboot::new("", false);
    let empty = tempfile::tempdir().unwrap();
    let boot = env.backend().with_search_path(empty.path());
    for (result, tool) in [
        (boot.read().map(drop), "fw_printenv"),
        (boot.write(&trial(Slot::B)), "fw_setenv"),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, BootError::ToolMissing { tool: t } if t == tool),
            "{err:?}"
        );
        assert_eq!(err.to_string(), format!("{tool} was not found on PATH"));
    }
}

#[test]
fn uboot_failing_tool_reports_status_and_stderr() {
    let env = Uboot::new("", false);
    let tools = script_dir(&[
        (
            "fw_printenv",
            "echo 'cannot lock /var/lock/fw_printenv.lock' >&2; exit 1",
        ),
        (
            "fw_setenv",
            "echo '  flash is write-protected  ' >&2; exit 3",
        ),
    ]);
    let boot = env.backend().with_search_path(tools.path());
    let err = boot.read().unwrap_err();
    match &err {
        BootError::ToolFailed {
            tool,
            status,
            stderr,
        } => {
            assert_eq!(tool, "fw_printenv");
            assert_eq!(status.code(), Some(1));
            assert_eq!(stderr, "cannot lock /var/lock/fw_printenv.lock");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("fw_printenv failed"), "{err}");
    let err = boot.write(&trial(Slot::B)).unwrap_err();
    assert!(
        matches!(&err, BootError::ToolFailed { tool, stderr, .. }
            if tool == "fw_setenv" && stderr == "flash is write-protected"),
        "{err:?}"
    );
}

#[test]
fn uboot_setenv_that_stores_nothing_is_not_applied() {
    let env = Uboot::new("", false);
    let tools = script_dir(&[("fw_setenv", "exit 0")]);
    let path = std::env::join_paths(
        [tools.path().to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let err = env
        .backend()
        .with_search_path(path)
        .write(&trial(Slot::B))
        .unwrap_err();
    assert!(
        matches!(&err, BootError::NotApplied { tool, .. } if tool == "fw_setenv"),
        "{err:?}"
    );
}

#[test]
fn uboot_missing_environment_image_is_a_tool_failure() {
    let env = Uboot::new("", false);
    std::fs::remove_file(env.dir.path().join("env0.bin")).unwrap();
    let err = env.backend().read().unwrap_err();
    assert!(
        matches!(&err, BootError::ToolFailed { tool, stderr, .. }
            if tool == "fw_printenv" && !stderr.is_empty()),
        "{err:?}"
    );
}

fn grub_spec(dir: &Path) -> (BootSpec, PathBuf) {
    require("grub-editenv", "grub-common");
    let path = dir.join("grubenv");
    (BootSpec::Grub { env: path.clone() }, path)
}

fn grub_list(path: &Path) -> String {
    run(Command::new("grub-editenv").arg(path).arg("list"))
}

#[test]
fn grub_init_env_creates_a_block_once_and_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    let (spec, path) = grub_spec(d.path());
    assert!(spec.init_env().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1024);
    assert_eq!(
        grub_list(&path),
        "ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\n"
    );
    spec.open().write(&trial(Slot::B)).unwrap();
    assert!(!spec.init_env().unwrap());
    assert_eq!(spec.open().read().unwrap(), trial(Slot::B));
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["grubenv"], "no temp files left");
}

#[test]
fn grub_round_trip_keeps_other_variables_in_one_call() {
    let d = tempfile::tempdir().unwrap();
    let (_, path) = grub_spec(d.path());
    run(Command::new("grub-editenv")
        .arg(&path)
        .args(["set", "saved_entry=rescue", "next_entry="]));
    let log = d.path().join("calls.log");
    let wrapper = logging_wrapper("grub-editenv", &log);
    let boot = GrubEnv::new(&path).with_search_path(wrapper.path());
    assert_eq!(boot.read().unwrap(), BootVars::default());
    let vars = BootVars {
        ota_slot: Slot::B,
        upgrade_available: false,
        bootcount: 0,
        bootlimit: 5,
    };
    std::fs::remove_file(&log).unwrap();
    boot.write(&vars).unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(calls.contains(" set "), "{calls}");
    assert_eq!(boot.read().unwrap(), vars);
    let listing = grub_list(&path);
    assert!(listing.contains("saved_entry=rescue\n"), "{listing}");
    assert!(listing.contains("bootlimit=5\n"), "{listing}");
}

#[test]
fn grub_garbage_written_by_grub_editenv_is_refused() {
    for (var, value) in [
        ("ota_slot", "c"),
        ("upgrade_available", "2"),
        ("bootcount", "-1"),
        ("bootlimit", "0"),
        ("bootcount", ""),
    ] {
        let d = tempfile::tempdir().unwrap();
        let (spec, path) = grub_spec(d.path());
        spec.init_env().unwrap();
        run(Command::new("grub-editenv")
            .arg(&path)
            .arg("set")
            .arg(format!("{var}={value}")));
        let err = spec.open().read().unwrap_err();
        match &err {
            BootError::Garbage {
                var: v,
                value: got,
                env,
                ..
            } => {
                assert_eq!((*v, got.as_str()), (var, value));
                assert!(env.contains(&path.display().to_string()), "{env}");
            }
            other => panic!("{var}={value}: {other:?}"),
        }
    }
}

#[test]
fn grub_missing_block_is_refused_without_creating_it() {
    let d = tempfile::tempdir().unwrap();
    let (spec, path) = grub_spec(d.path());
    let boot = spec.open();
    assert!(matches!(boot.read(), Err(BootError::MissingEnv { .. })));
    assert!(matches!(
        boot.write(&trial(Slot::B)),
        Err(BootError::MissingEnv { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn grub_missing_or_failing_tool() {
    let d = tempfile::tempdir().unwrap();
    let (spec, path) = grub_spec(d.path());
    let empty = tempfile::tempdir().unwrap();
    let boot = GrubEnv::new(&path).with_search_path(empty.path());
    let err = boot.create().unwrap_err();
    assert_eq!(err.to_string(), "grub-editenv was not found on PATH");
    assert!(!path.exists());
    spec.init_env().unwrap();
    assert!(matches!(
        boot.read(),
        Err(BootError::ToolMissing { tool }) if tool == "grub-editenv"
    ));
    let failing = script_dir(&[(
        "grub-editenv",
        "echo \"grub-editenv: error: cannot rename the file $1.new to $1\" >&2; exit 1",
    )]);
    let boot = GrubEnv::new(&path).with_search_path(failing.path());
    let err = boot.write(&trial(Slot::B)).unwrap_err();
    match &err {
        BootError::ToolFailed {
            tool,
            status,
            stderr,
        } => {
            assert_eq!((tool.as_str(), status.code()), ("grub-editenv", Some(1)));
            assert!(
                stderr.starts_with("grub-editenv: error: cannot rename"),
                "{stderr}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Power on with the variables in `boot`, the way `BootVars::boot` says, and persist what
/// the boot loader saves.
fn power_on(boot: &dyn BootControl) -> Slot {
    let (slot, next) = boot.read().unwrap().boot();
    boot.write(&next).unwrap();
    slot
}

#[test]
fn unmarked_trial_rolls_back_after_bootlimit_boots_on_every_backend() {
    let d = tempfile::tempdir().unwrap();
    let uboot = Uboot::new("", false);
    let (grub, _) = grub_spec(d.path());
    let file = BootSpec::File {
        env: d.path().join("boot.env"),
    };
    let specs = [
        format!("uboot:{}", uboot.config.display()).parse().unwrap(),
        grub,
        file,
    ];
    for spec in specs {
        spec.init_env().unwrap();
        let boot = spec.open();
        boot.write(&trial(Slot::B)).unwrap();
        let slots: Vec<Slot> = (0..5).map(|_| power_on(boot.as_ref())).collect();
        assert_eq!(
            slots,
            [Slot::B, Slot::B, Slot::B, Slot::A, Slot::A],
            "{spec}"
        );
        assert_eq!(boot.read().unwrap(), BootVars::default(), "{spec}");
    }
    // The same with a trial marked good after its first boot: it stays.
    let env = EnvFile::new(d.path().join("boot.env"));
    env.write(&trial(Slot::B)).unwrap();
    assert_eq!(power_on(&env), Slot::B);
    env.write(&BootVars {
        ota_slot: Slot::B,
        ..BootVars::default()
    })
    .unwrap();
    assert!((0..5).all(|_| power_on(&env) == Slot::B));
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("boot")
        .join(name)
}

#[test]
fn boot_cmd_compiles_with_mkimage() {
    require("mkimage", "u-boot-tools");
    let d = tempfile::tempdir().unwrap();
    let scr = d.path().join("boot.scr");
    let listing = run(Command::new("mkimage")
        .args(["-A", "arm", "-T", "script", "-C", "none", "-d"])
        .arg(shipped("boot.cmd"))
        .arg(&scr));
    assert!(listing.contains("Script"), "{listing}");
    assert!(std::fs::metadata(&scr).unwrap().len() > 64);
}

#[test]
fn grub_cfg_passes_grub_script_check() {
    require("grub-script-check", "grub-common");
    run(Command::new("grub-script-check").arg(shipped("grub.cfg")));
}

/// Bash stand-ins for U-Boot's commands: the environment is shell variables, `saveenv`
/// prints it, `load` records the partition and fails, `reset` prints the booted slot.
const UBOOT_STUBS: &str = r#"
setenv() { if [ $# -ge 2 ]; then n=$1; shift; eval "$n=\"\$*\""; else unset "$1"; fi; }
saveenv() { echo "saved ota_slot=$ota_slot upgrade_available=$upgrade_available bootcount=$bootcount bootlimit=$bootlimit"; }
load() { echo "loaded part=${2#*:}"; return 1; }
bootz() { echo "bootz must not be reached"; exit 1; }
reset() { exit 0; }
"#;

/// Bash stand-ins for GRUB's: `set k=v`, `load_env` (the variables are already set),
/// `save_env` prints the variables it is given; the menu is cut off and `default` printed.
const GRUB_STUBS: &str = r#"
set() { case "$1" in *=*) eval "${1%%=*}=\"\${1#*=}\"";; *) builtin set "$@";; esac; }
load_env() { :; }
save_env() { shift 2; line=saved; for v in "$@"; do line="$line $v=${!v}"; done; echo "$line"; }
"#;

/// Run a shipped script under bash with `vars` as its environment; its output.
fn run_script(name: &str, vars: &[(&str, String)]) -> String {
    let text = std::fs::read_to_string(shipped(name)).unwrap();
    let program = if name == "grub.cfg" {
        let menu = text.find("\nmenuentry").unwrap();
        format!(
            "{GRUB_STUBS}\n{}\necho \"booted $default\"\n",
            &text[..menu]
        )
    } else {
        format!("{UBOOT_STUBS}\n{text}")
    };
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("-c")
        .arg(program);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The slot booted and the variables saved (or `None`) by a shipped script's run.
fn script_boot(name: &str, start: &[(&str, String)]) -> (Slot, Option<Vec<(String, String)>>) {
    let out = run_script(name, start);
    let booted = out
        .lines()
        .find_map(|l| match l {
            "loaded part=2" | "booted ota-a" => Some(Slot::A),
            "loaded part=3" | "booted ota-b" => Some(Slot::B),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name} booted nothing: {out}"));
    let saved = out.lines().find_map(|l| l.strip_prefix("saved ")).map(|s| {
        s.split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    (booted, saved)
}

/// What persists after the script ran: the start values overridden by what it saved.
fn persisted(start: &BootVars, saved: &Option<Vec<(String, String)>>) -> BootVars {
    let pairs = start.to_pairs();
    let mut merged: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    merged.extend(saved.iter().flatten().cloned());
    BootVars::from_pairs(
        merged.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "script",
    )
    .unwrap()
}

#[test]
fn shipped_scripts_apply_the_rule_of_boot_vars_boot() {
    require("bash", "bash");
    let mut states = Vec::new();
    for ota_slot in [Slot::A, Slot::B] {
        for upgrade_available in [false, true] {
            for bootlimit in [1, 3, 9] {
                for bootcount in [0, 1, 2, 3, 8, 9, 10, 42] {
                    states.push(BootVars {
                        ota_slot,
                        upgrade_available,
                        bootcount,
                        bootlimit,
                    });
                }
            }
        }
    }
    for script in ["boot.cmd", "grub.cfg"] {
        for start in &states {
            let env: Vec<(&str, String)> = start.to_pairs().into_iter().collect();
            let (booted, saved) = script_boot(script, &env);
            let (want_slot, want_vars) = start.boot();
            assert_eq!(booted, want_slot, "{script} from {start:?}");
            assert_eq!(
                persisted(start, &saved),
                want_vars,
                "{script} from {start:?}"
            );
            assert_eq!(
                saved.is_some(),
                start.upgrade_available,
                "{script} saves only while a trial is pending"
            );
        }
        // An environment the client never wrote boots slot a and saves nothing.
        assert_eq!(script_boot(script, &[]), (Slot::A, None), "{script}");
    }
}

#[test]
fn shipped_scripts_fail_safe_on_garbage() {
    require("bash", "bash");
    let v = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    for script in ["boot.cmd", "grub.cfg"] {
        // A trial with a count the script cannot increment falls back at once.
        let (slot, saved) = script_boot(
            script,
            &v(&[
                ("ota_slot", "b"),
                ("upgrade_available", "1"),
                ("bootcount", "x"),
            ]),
        );
        assert_eq!(slot, Slot::A, "{script}");
        assert!(saved.is_some_and(|s| s.contains(&("upgrade_available".into(), "0".into()))));
        // An invalid bootlimit counts as 3.
        let env = v(&[
            ("ota_slot", "b"),
            ("upgrade_available", "1"),
            ("bootcount", "3"),
            ("bootlimit", "0"),
        ]);
        assert_eq!(script_boot(script, &env).0, Slot::A, "{script}");
        let env = v(&[
            ("ota_slot", "b"),
            ("upgrade_available", "1"),
            ("bootcount", "2"),
            ("bootlimit", "12"),
        ]);
        assert_eq!(script_boot(script, &env).0, Slot::B, "{script}");
        // An unknown slot boots a; a trial flag other than 1 is no trial.
        let env = v(&[("ota_slot", "c"), ("upgrade_available", "yes")]);
        assert_eq!(script_boot(script, &env), (Slot::A, None), "{script}");
    }
}
