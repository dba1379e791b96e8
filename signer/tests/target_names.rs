//! Target names are `NAME-VERSION.img.zst`, and both image names and versions may contain
//! `-`. Before, `add --name a-1.0.0 --version 2.0.0` then `add --name a --version 1.0.0-2.0.0`
//! both succeeded and the second silently replaced the first release's target. A published
//! version is never replaced either, not even with --allow-downgrade.
mod common;

use common::*;
use ota_formats::target_meta::OtaTarget;

fn ota(v: &Verified, path: &str) -> OtaTarget {
    OtaTarget::from_custom(v.targets.targets[path].custom.as_ref())
        .unwrap()
        .unwrap()
}

#[test]
fn a_target_name_taken_by_another_image_or_version_is_refused_with_exit_2() {
    for (first, second) in [
        (("a-1.0.0", "2.0.0"), ("a", "1.0.0-2.0.0")),
        (("a", "1.0.0-2.0.0"), ("a-1.0.0", "2.0.0")),
    ] {
        let env = Env::new();
        env.init(&[]);
        let one = env.image("one.img", 20_000, 1);
        let two = env.image("two.img", 20_000, 2);
        let o = run(env.add_args(&one, first.0, first.1, "hw"));
        assert_eq!(code(&o), 0, "{}", stderr(&o));

        let before = tree(env.tmp.path());
        for extra in [&[][..], &["--allow-downgrade"], &["--no-publish"]] {
            let mut args = env.add_args(&two, second.0, second.1, "hw");
            args.extend(extra.iter().map(|s| s.to_string()));
            let o = run(&args);
            assert_fails(
                &o,
                2,
                &format!(
                    "target name a-1.0.0-2.0.0.img.zst is already taken by image {} version {}",
                    first.0, first.1
                ),
            );
            let err = stderr(&o);
            assert!(
                err.contains(&format!("image {} version {}", second.0, second.1)),
                "{err}"
            );
            assert_eq!(
                tree(env.tmp.path()),
                before,
                "{extra:?}: nothing may change"
            );
        }
        let v = verify_repo(&env.repo);
        let t = ota(&v, "a-1.0.0-2.0.0.img.zst");
        assert_eq!((t.name.as_str(), t.version.as_str()), first);
    }
}

#[test]
fn a_patch_target_name_taken_by_another_release_is_refused() {
    // Patch names are NAME-VERSION.from-BASE.patch, and a pre-release may contain "from-":
    // version 1.0.0-rc from base 0.1.0-x.from-0.9.0 and version 1.0.0-rc.from-0.1.0-x from
    // base 0.9.0 both give a-1.0.0-rc.from-0.1.0-x.from-0.9.0.patch, while their full
    // targets differ.
    let env = Env::new();
    env.init(&[]);
    let image = env.image("base.img", 200_000, 3);
    let bytes = std::fs::read(&image).unwrap();
    let edit = |name: &str, at: usize, v: u8| {
        let mut b = bytes.clone();
        b[at..at + 100].fill(v);
        let p = env.tmp.path().join(name);
        std::fs::write(&p, &b).unwrap();
        p
    };
    let (base1, base2) = (edit("b1.img", 1_000, 1), edit("b2.img", 5_000, 2));
    let (new1, new2) = (edit("n1.img", 9_000, 3), edit("n2.img", 13_000, 4));
    let ok = |args: Vec<String>| {
        let o = run(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    };
    ok(env.add_args(&base1, "a", "0.1.0-x.from-0.9.0", "hw"));
    ok(env.add_args(&base2, "a", "0.9.0", "hw"));
    let mut args = env.add_args(&new1, "a", "1.0.0-rc", "hw");
    args.extend(["--delta-from".into(), "a@0.1.0-x.from-0.9.0".to_string()]);
    ok(args);
    let patch = "a-1.0.0-rc.from-0.1.0-x.from-0.9.0.patch";
    let v = verify_repo(&env.repo);
    assert!(
        v.targets.targets.contains_key(patch),
        "the patch is published: {:?}",
        v.targets.targets.keys().collect::<Vec<_>>()
    );

    let before = tree(env.tmp.path());
    let mut args = env.add_args(&new2, "a", "1.0.0-rc.from-0.1.0-x", "hw");
    args.extend(["--delta-from".into(), "a@0.9.0".to_string()]);
    assert_fails(
        &run(&args),
        2,
        &format!("target name {patch} is already taken by image a version 1.0.0-rc;"),
    );
    assert_eq!(tree(env.tmp.path()), before, "nothing may change");
}

#[test]
fn a_published_version_is_never_replaced_by_another_image() {
    let env = Env::new();
    env.init(&[]);
    let one = env.image("one.img", 20_000, 4);
    let two = env.image("two.img", 20_000, 5);
    assert_eq!(code(&run(env.add_args(&one, "fw", "1.0.0", "hw"))), 0);
    assert_eq!(code(&run(env.add_args(&one, "fw", "1.1.0", "hw"))), 0);
    let published = verify_repo(&env.repo);

    let before = tree(env.tmp.path());
    // The same version string, and one equal by semver precedence (build metadata).
    for version in ["1.0.0", "1.0.0+build.2"] {
        let mut args = env.add_args(&two, "fw", version, "hw");
        args.push("--allow-downgrade".into());
        let o = run(&args);
        assert_fails(&o, 5, "is already published");
        assert!(stderr(&o).contains("with another image"), "{}", stderr(&o));
        assert_eq!(
            tree(env.tmp.path()),
            before,
            "{version}: nothing may change"
        );
    }
    let v = verify_repo(&env.repo);
    assert_eq!(
        ota(&v, "fw-1.0.0.img.zst").image,
        ota(&published, "fw-1.0.0.img.zst").image
    );

    // Without --allow-downgrade it is the usual "not newer" refusal.
    assert_fails(
        &run(env.add_args(&two, "fw", "1.0.0", "hw")),
        5,
        "not newer",
    );

    // The same image again under its own version is harmless and allowed (a retry).
    let mut args = env.add_args(&one, "fw", "1.0.0", "hw");
    args.push("--allow-downgrade".into());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
