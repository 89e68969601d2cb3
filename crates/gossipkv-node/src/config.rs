//! Settings of `gossipkv node` and `gossipkv cluster` (every subcommand with a `--config`
//! flag) from three places besides the defaults, highest first:
//!
//! 1. **flags** on the command line (`--fanout 3`);
//! 2. **environment variables**, `GOSSIPKV_` and the setting's name in capitals
//!    (`GOSSIPKV_FANOUT=3`); `--help` lists each one beside its flag;
//! 3. **a TOML file** named by `--config FILE` (or `GOSSIPKV_CONFIG`; for `cluster`,
//!    `GOSSIPKV_CLUSTER_CONFIG`): one `key = value` per
//!    setting, keys the long flag names with `_` or `-` (`interval_ms = 500`), lists for
//!    repeatable settings (`peers = ["10.0.0.2:7946", "10.0.0.3:7946"]`).
//!
//! How: the file is read before clap parses the command line for good, and each of its values
//! becomes that flag's default; clap then takes a flag over its environment variable over its
//! default, which gives exactly the order above with one parser for all three. Everything is
//! checked before the node starts, and every error names the setting and where it came from:
//! an unknown key or a bad value in the file (`config file node.toml: setting fanout: ...`), a
//! bad environment variable (`GOSSIPKV_MTU: ...`), a bad flag (clap's own error). The ranges
//! live in the flags' value parsers, so all three sources get the same checks.
//!
//! `gossipkv node --print-config` (or `cluster`) prints the settings in force as TOML, each with where it came
//! from, and exits: the output (secrets left out) is itself a valid config file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "GOSSIPKV_CONFIG";

/// The same for `gossipkv cluster`.
pub const CLUSTER_CONFIG_ENV: &str = "GOSSIPKV_CLUSTER_CONFIG";

/// The subcommands that read a config file: those with a `config` argument.
fn reads_config(sub: &Command) -> bool {
    sub.get_arguments().any(|a| a.get_id() == "config")
}

/// Settings whose values are never printed (`--print-config`, errors).
const SECRETS: &[&str] = &["requirepass", "cluster_key"];

/// Settings that only make sense on the command line.
const NOT_IN_FILE: &[&str] = &["config", "print_config", "help", "version"];

/// Why the settings could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// The file names a setting that does not exist.
    #[error("config file {}: unknown setting `{key}` (known: {known})", path.display())]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The settings a file may set.
        known: String,
    },
    /// A value in the file is of the wrong type or out of range.
    #[error("config file {}: setting `{key}`: {why}", path.display())]
    FileValue {
        /// The file.
        path: PathBuf,
        /// The setting.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// An environment variable holds a bad value.
    #[error("environment variable {var}: {why}")]
    EnvValue {
        /// The variable.
        var: String,
        /// What is wrong.
        why: String,
    },
}

/// Parses the program's command line like `C::parse()` (printing clap's errors, help and
/// version and exiting), with the config file and the environment merged into `gossipkv node`
/// as described in the module docs. A [`ConfigError`] is printed as `gossipkv: ...` and exits
/// with status 2; `--print-config` prints the settings and exits with 0.
pub fn parse_cli<C: CommandFactory + FromArgMatches>() -> C {
    let args: Vec<OsString> = std::env::args_os().collect();
    let env = |k: &str| std::env::var(k).ok();
    match try_parse_from::<C>(&args, &env) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Printed(text)) => {
            print!("{text}");
            std::process::exit(0)
        }
        Err(Failure::Clap(e)) => e.exit(),
        Err(Failure::Config(e)) => {
            eprintln!("gossipkv: {e}");
            std::process::exit(2)
        }
    }
}

/// What parsing gave.
#[derive(Debug)]
pub enum Parsed<C> {
    /// Run the command.
    Run(C),
    /// `--print-config` was given: this is the text to print.
    Printed(String),
}

/// Why parsing failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line itself (or `--help` / `--version`, which clap reports as errors).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The config file or an environment variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// [`parse_cli`] on given arguments (program name first) with `env` standing for the
/// environment when reading the config file's name and checking variables (clap itself reads
/// the process environment for the values).
pub fn try_parse_from<C: CommandFactory + FromArgMatches>(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed<C>, Failure> {
    let cmd = C::command();
    // a lenient first pass finds --config and which settings the command line gives
    let first = cmd.clone().ignore_errors(true).try_get_matches_from(args).ok();
    let chosen = first.as_ref().and_then(|m| m.subcommand());
    let sub = chosen.and_then(|(name, _)| cmd.find_subcommand(name)).filter(|s| reads_config(s));
    let (Some((name, node)), Some(sub)) = (chosen, sub) else {
        let m = cmd.try_get_matches_from(args)?;
        return Ok(Parsed::Run(C::from_arg_matches(&m)?));
    };
    let name = name.to_string();
    let on_command_line = |id: &str| {
        node.try_contains_id(id).unwrap_or(false)
            && node.value_source(id) == Some(ValueSource::CommandLine)
    };
    check_env(sub, env, &on_command_line)?;
    let file = match node.try_get_one::<PathBuf>("config").ok().flatten() {
        Some(path) => read_file(sub, path, env)?,
        None => BTreeMap::new(),
    };
    // the order --help shows (mut_arg below moves an argument to the end)
    let sub = sub.clone();
    let cmd = cmd.mut_subcommand(&name, |mut sub| {
        for (id, values) in &file {
            sub = sub.mut_arg(id, |a| a.default_values(values.clone()));
        }
        sub
    });
    let m = cmd.try_get_matches_from(args)?;
    let printing = m.subcommand_matches(&name).filter(|n| n.get_flag("print_config"));
    if let Some(node) = printing {
        return Ok(Parsed::Printed(print_config(&sub, node, &file, env)));
    }
    Ok(Parsed::Run(C::from_arg_matches(&m)?))
}

/// Reads and checks a config file: `arg id -> values`, each value accepted by the flag's own
/// parser.
pub fn read_file(
    sub: &Command,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let arg = sub
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && !NOT_IN_FILE.contains(&id.as_str()));
        let Some(arg) = arg else {
            return Err(ConfigError::Unknown {
                path: path.to_path_buf(),
                key: key.clone(),
                known: file_settings(sub).join(", "),
            });
        };
        let bad =
            |why: String| ConfigError::FileValue { path: path.to_path_buf(), key: id.clone(), why };
        let values = toml_values(arg, value).map_err(bad)?;
        for v in &values {
            check_value(arg, v).map_err(bad)?;
        }
        // the cluster key's variable is read by the node itself: it must still beat the file
        if id == "cluster_key"
            && env(crate::cli::CLUSTER_KEY_ENV).is_some_and(|v| !v.trim().is_empty())
        {
            continue;
        }
        out.insert(id, values);
    }
    Ok(out)
}

/// The settings a config file may hold (test-only hidden ones left out).
pub fn file_settings(sub: &Command) -> Vec<String> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set())
        .map(|a| a.get_id().as_str().to_string())
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect()
}

/// Checks every `GOSSIPKV_*` variable of a setting the command line does not give, so a bad
/// one is reported by its name.
fn check_env(
    sub: &Command,
    env: &dyn Fn(&str) -> Option<String>,
    on_command_line: &dyn Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    for arg in sub.get_arguments() {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else { continue };
        if on_command_line(arg.get_id().as_str()) {
            continue;
        }
        let Some(value) = env(var) else { continue };
        let values: Vec<&str> = match arg.get_value_delimiter() {
            Some(d) => value.split(d).collect(),
            None => vec![value.as_str()],
        };
        for v in values {
            check_value(arg, v)
                .map_err(|why| ConfigError::EnvValue { var: var.to_string(), why })?;
        }
    }
    Ok(())
}

/// Whether the flag takes no value (`--fresh`).
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Whether the flag takes several values (repeated or delimited).
fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// A TOML value as the strings clap would see.
fn toml_values(arg: &Arg, v: &toml::Value) -> Result<Vec<String>, String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => {
                Err(format!("expected a string, number or boolean, got a {}", other.type_str()))
            }
        }
    };
    if is_switch(arg) {
        return match v {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!("expected true or false, got {other}")),
        };
    }
    match v {
        toml::Value::Array(items) if is_list(arg) => items.iter().map(scalar).collect(),
        toml::Value::Array(_) => Err("takes one value, not a list".to_string()),
        toml::Value::String(s) if is_list(arg) => match arg.get_value_delimiter() {
            Some(d) => Ok(s.split(d).map(str::to_string).collect()),
            None => Ok(vec![s.clone()]),
        },
        other => Ok(vec![scalar(other)?]),
    }
}

/// Runs the flag's own value parser on `value`; the error text is clap's, first line.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    if is_switch(arg) {
        return match value {
            "true" | "false" => Ok(()),
            other => Err(format!("expected true or false, got {other:?}")),
        };
    }
    let Some(long) = arg.get_long() else { return Ok(()) };
    // the flag alone: no environment, no default, no delimiter (one value at a time)
    let probe = arg.clone().env(None).default_values(Vec::<String>::new()).value_delimiter(None);
    let cmd = Command::new("check").no_binary_name(true).arg(probe);
    match cmd.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid value");
            let why = first.strip_prefix("error: ").unwrap_or(first);
            if SECRETS.contains(&arg.get_id().as_str()) {
                Err("invalid value (not shown)".to_string())
            } else {
                Err(why.to_string())
            }
        }
    }
}

/// `--print-config`: every setting of `sub` as TOML, with where its value came from.
fn print_config(
    sub: &Command,
    m: &ArgMatches,
    file: &BTreeMap<String, Vec<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = format!(
        "# gossipkv {}: settings in force (flag > environment > file > default)\n",
        sub.get_name()
    );
    for arg in sub.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_IN_FILE.contains(&id) || arg.is_hide_set() {
            continue;
        }
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => format!("--{}", arg.get_long().unwrap_or(id)),
            Some(ValueSource::EnvVariable) => {
                arg.get_env().map_or("environment".into(), |v| v.to_string_lossy().into_owned())
            }
            Some(ValueSource::DefaultValue) if file.contains_key(id) => "config file".to_string(),
            Some(ValueSource::DefaultValue) => "default".to_string(),
            _ if id == "cluster_key" && env(crate::cli::CLUSTER_KEY_ENV).is_some() => {
                crate::cli::CLUSTER_KEY_ENV.to_string()
            }
            _ => "not set".to_string(),
        };
        if SECRETS.contains(&id) {
            if raw.is_empty() && source == "not set" {
                let _ = writeln!(out, "# {id} =  # not set");
            } else {
                let _ = writeln!(out, "# {id} = ...  # set, not shown ({source})");
            }
            continue;
        }
        if raw.is_empty() {
            let _ = writeln!(out, "# {id} =  # {source}");
            continue;
        }
        let value = if is_list(arg) {
            format!("[{}]", raw.iter().map(|v| toml_scalar(v)).collect::<Vec<_>>().join(", "))
        } else {
            toml_scalar(&raw[0])
        };
        let _ = writeln!(out, "{id} = {value}  # {source}");
    }
    out
}

/// A value as TOML: a number or boolean bare, anything else quoted.
fn toml_scalar(v: &str) -> String {
    let float = v.contains(['.', 'e', 'E']) && v.parse::<f64>().is_ok_and(f64::is_finite);
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() || float {
        v.to_string()
    } else {
        toml::Value::String(v.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;
    use crate::cli::{ClockArg, ClusterArgs, NodeArgs};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(Subcommand, Debug)]
    enum Sub {
        Node(NodeArgs),
        Cluster(ClusterArgs),
    }

    /// A config file with `text`, removed when dropped.
    struct File(PathBuf);

    impl File {
        fn new(text: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("gossipkv-config-test-{}-{n}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            Self(path)
        }

        fn arg(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_with(
        args: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Parsed<Cli>, Failure> {
        let argv: Vec<OsString> =
            std::iter::once("gossipkv").chain(args.iter().copied()).map(OsString::from).collect();
        try_parse_from::<Cli>(&argv, env)
    }

    fn node(args: &[&str]) -> NodeArgs {
        match parse_with(args, &no_env) {
            Ok(Parsed::Run(Cli { cmd: Sub::Node(n) })) => n,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn config_error(args: &[&str], env: &dyn Fn(&str) -> Option<String>) -> String {
        match parse_with(args, env) {
            Err(Failure::Config(e)) => e.to_string(),
            other => panic!("{args:?}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn file_beats_defaults_and_flags_beat_the_file() {
        let f = File::new(
            "fanout = 3\ninterval-ms = 250\nclock = \"lamport\"\nfresh = true\n\
             peers = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\ndrop_rate = 0.25\n\
             metrics = \"127.0.0.1:9100\"\nseed = \"18446744073709551615\"\n",
        );
        let defaults = node(&["node"]);
        assert_eq!((defaults.gossip_flags.fanout, defaults.gossip_flags.interval_ms), (5, 1000));
        assert!(!defaults.fresh && defaults.peers.is_empty() && defaults.metrics.is_none());

        let n = node(&["node", "--config", &f.arg()]);
        assert_eq!((n.gossip_flags.fanout, n.gossip_flags.interval_ms), (3, 250));
        assert_eq!(n.gossip_flags.clock, ClockArg::Lamport);
        assert!(n.fresh);
        assert_eq!(n.peers.len(), 2);
        assert_eq!(n.gossip_flags.drop_rate, 0.25);
        assert_eq!(n.metrics.map(|a| a.port()), Some(9100));
        assert_eq!(n.seed, Some(u64::MAX));
        // settings the file leaves out keep their defaults
        assert_eq!(n.gossip_flags.mtu, 1400);

        let n = node(&["node", "--config", &f.arg(), "--fanout", "7", "--peers", "127.0.0.1:7009"]);
        assert_eq!((n.gossip_flags.fanout, n.gossip_flags.interval_ms), (7, 250));
        assert_eq!(n.peers.len(), 1, "a flag replaces the file's whole list");
    }

    #[test]
    fn every_bad_setting_is_named_with_its_source() {
        let cases: &[(&str, &str)] = &[
            ("fanot = 3", "unknown setting `fanot`"),
            ("fanout = 0", "setting `fanout`"),
            ("fanout = \"many\"", "setting `fanout`"),
            ("mtu = 100", "setting `mtu`"),
            ("drop_rate = 1.5", "setting `drop_rate`"),
            ("tree_depth = 9", "setting `tree_depth`"),
            ("peers = [\"nowhere\"]", "setting `peers`"),
            ("listen = [\"127.0.0.1:1\", \"127.0.0.1:2\"]", "takes one value"),
            ("fresh = \"yes\"", "setting `fresh`: expected true or false"),
            ("clock = \"sundial\"", "setting `clock`"),
            ("config = \"other.toml\"", "unknown setting `config`"),
            ("fanout = 3\nfanout = 4", "duplicate key"),
            ("[server]\nfanout = 3", "unknown setting `server`"),
            ("gossip = { port = 1 }", "setting `gossip`: expected a string"),
        ];
        for (text, want) in cases {
            let f = File::new(text);
            let e = config_error(&["node", "--config", &f.arg()], &no_env);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(&f.arg()), "{text:?}: names the file: {e}");
        }
        let e = config_error(&["node", "--config", "/nonexistent/gossipkv.toml"], &no_env);
        assert!(e.starts_with("cannot read config file /nonexistent/gossipkv.toml"), "{e}");
    }

    #[test]
    fn environment_values_are_checked_by_name_unless_a_flag_overrides_them() {
        let env = |k: &str| (k == "GOSSIPKV_MTU").then(|| "100".to_string());
        let e = config_error(&["node"], &env);
        assert!(e.starts_with("environment variable GOSSIPKV_MTU:"), "{e}");
        assert!(e.contains("100"), "{e}");
        // the flag wins, so the variable is never used: no error
        assert!(matches!(parse_with(&["node", "--mtu", "1200"], &env), Ok(Parsed::Run(_))));
        let env = |k: &str| (k == "GOSSIPKV_PEERS").then(|| "127.0.0.1:1,oops".to_string());
        assert!(config_error(&["node"], &env).contains("GOSSIPKV_PEERS"));
        let env = |k: &str| (k == "GOSSIPKV_FRESH").then(|| "maybe".to_string());
        assert!(config_error(&["node"], &env).contains("GOSSIPKV_FRESH"));
    }

    #[test]
    fn flags_are_range_checked_by_clap() {
        for args in [
            &["node", "--fanout", "0"][..],
            &["node", "--mtu", "70000"],
            &["node", "--drop-rate", "1"],
            &["node", "--interval-ms", "0"],
            &["cluster", "--tree-depth", "0"],
        ] {
            match parse_with(args, &no_env) {
                Err(Failure::Clap(e)) => {
                    let flag = args[1];
                    assert!(e.to_string().contains(flag), "{args:?}: {e}");
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn print_config_shows_values_and_sources_as_toml() {
        let f = File::new("fanout = 3\nrequirepass = \"hunter2\"\npeers = [\"127.0.0.1:7001\"]\n");
        let text = match parse_with(
            &["node", "--config", &f.arg(), "--interval-ms", "300", "--print-config"],
            &no_env,
        ) {
            Ok(Parsed::Printed(t)) => t,
            other => panic!("{other:?}"),
        };
        assert!(text.contains("\nfanout = 3  # config file\n"), "{text}");
        assert!(text.contains("\ninterval_ms = 300  # --interval-ms\n"), "{text}");
        assert!(text.contains("\nmtu = 1400  # default\n"), "{text}");
        assert!(text.contains("\nlisten = \"127.0.0.1:6379\"  # default\n"), "{text}");
        assert!(text.contains("\npeers = [\"127.0.0.1:7001\"]  # config file\n"), "{text}");
        assert!(text.contains("# requirepass = ...  # set, not shown"), "{text}");
        assert!(!text.contains("hunter2"));
        // the output is itself a config file
        let again = File::new(&text);
        let n = node(&["node", "--config", &again.arg()]);
        assert_eq!((n.gossip_flags.fanout, n.gossip_flags.interval_ms), (3, 300));
    }

    #[test]
    fn other_subcommands_parse_as_before() {
        match parse_with(&["cluster", "--nodes", "3"], &no_env) {
            Ok(Parsed::Run(Cli { cmd: Sub::Cluster(c) })) => assert_eq!(c.nodes, 3),
            other => panic!("{other:?}"),
        }
        // every setting a file may hold is a real flag of `node`
        let cmd = Cli::command();
        let sub = cmd.find_subcommand("node").map(file_settings).unwrap_or_default();
        assert!(sub.iter().any(|s| s == "fanout") && sub.iter().any(|s| s == "metrics"));
        assert!(!sub.iter().any(|s| s == "config"));
    }
}
