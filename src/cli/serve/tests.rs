//! The serve flags: defaults, and the combinations refused at start.

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn parse(extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "tierguard",
        "serve",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("parsed").command {
        Command::Serve(args) => *args,
        other => panic!("not serve: {other:?}"),
    }
}

#[test]
fn lease_timings_default_to_15_5_and_2_seconds() {
    let args = parse(&[]);
    assert_eq!(
        args.controller.lease_timings().expect("valid"),
        (
            Duration::from_secs(15),
            Duration::from_secs(5),
            Duration::from_secs(2)
        )
    );
    let args = parse(&[
        "--lease-duration-seconds",
        "30",
        "--lease-renew-seconds",
        "10",
    ]);
    assert_eq!(
        args.controller.lease_timings().expect("valid"),
        (
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(2)
        )
    );
}

#[test]
fn connection_limits_default_to_the_servers_and_refuse_zero() {
    let args = parse(&[]);
    assert_eq!(
        args.server.limits().expect("valid"),
        server::Limits::default()
    );
    assert_eq!(args.server.drain(), Duration::from_secs(10));
    let args = parse(&["--max-connections", "8", "--idle-timeout-seconds", "3"]);
    let limits = args.server.limits().expect("valid");
    assert_eq!(
        (limits.max_connections, limits.idle_timeout),
        (8, Duration::from_secs(3))
    );
    let err = parse(&["--idle-timeout-seconds", "0"])
        .server
        .limits()
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("--idle-timeout-seconds must be at least 1"),
        "{err}"
    );
    assert_eq!(
        parse(&["--drain-seconds", "0"]).server.drain(),
        Duration::ZERO
    );
}

#[test]
fn a_renew_period_not_shorter_than_the_lease_is_refused() {
    for (duration, renew, says) in [
        (
            "15",
            "15",
            "must be less than --lease-duration-seconds (15)",
        ),
        ("5", "10", "--lease-renew-seconds (10) must be less"),
        ("10", "5", "leave no retry before the renew deadline"),
        ("0", "5", "must all be at least 1"),
        ("15", "0", "must all be at least 1"),
        ("4294967296", "5", "larger than a Lease can say"),
    ] {
        let args = parse(&[
            "--lease-duration-seconds",
            duration,
            "--lease-renew-seconds",
            renew,
        ]);
        let err = args
            .controller
            .lease_timings()
            .expect_err("refused")
            .to_string();
        assert!(err.contains(says), "{duration}/{renew}: {err}");
    }
    for (retry, says) in [
        ("0", "must all be at least 1"),
        (
            "6",
            "--lease-retry-seconds (6) must not exceed --lease-renew-seconds (5)",
        ),
    ] {
        let err = parse(&["--lease-retry-seconds", retry])
            .controller
            .lease_timings()
            .expect_err("refused")
            .to_string();
        assert!(err.contains(says), "retry {retry}: {err}");
    }
}
