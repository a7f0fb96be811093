//! `--config FILE`: a TOML file with one key per flag (the flag's long name, `-` or `_`),
//! e.g. `listen = "0.0.0.0:6432"`, `refresh-workers = 4`, `tls-required = true`. Environment
//! variables and flags override it: each key of the file is given to the flag's environment
//! variable when that variable is not set, and clap then reads flag, variable, default in that
//! order. A key that names no flag is an error that names it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable that may name the file instead of `--config`.
pub const CONFIG_ENV: &str = "PGTRICKLE_CONFIG";

/// Flags that have no key in the file.
const NOT_IN_FILE: [&str; 3] = ["config", "help", "version"];

/// Why a configuration file was refused.
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
    /// The file is not TOML.
    #[error("config file {}: {source}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: toml::de::Error,
    },
    /// A key has a table or an array as its value.
    #[error("config file {}: key {key}: expected a string, a number or a boolean, not {found}", path.display())]
    Type {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The TOML type found.
        found: &'static str,
    },
    /// Keys that name no flag.
    #[error(
        "config file {}: unknown key{} {} (keys are the flags' names: {})",
        path.display(),
        if unknown.len() > 1 { "s" } else { "" },
        unknown.join(", "),
        known.join(", ")
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The unknown keys, as written.
        unknown: Vec<String>,
        /// The keys there are.
        known: Vec<String>,
    },
}

/// A loaded configuration file: each key (as the flag's long name) with its value as text.
#[derive(Debug, Default, Clone)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Flag name to value.
    pub values: BTreeMap<String, String>,
}

/// The file named by `--config FILE`, `--config=FILE` or `PGTRICKLE_CONFIG`, if any.
pub fn path_from(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// Reads and checks `path` against the flags of `cmd`.
pub fn load(path: &Path, cmd: &clap::Command) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, cmd)
}

/// Parses the text of a configuration file.
pub fn parse(path: &Path, text: &str, cmd: &clap::Command) -> Result<ConfigFile, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|source| ConfigError::Syntax {
        path: path.to_path_buf(),
        source,
    })?;
    let known: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_IN_FILE.contains(l))
        .collect();
    let mut unknown = Vec::new();
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        if !known.contains(&name.as_str()) {
            unknown.push(key);
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Type {
                    path: path.to_path_buf(),
                    key,
                    found: other.type_str(),
                })
            }
        };
        values.insert(name, text);
    }
    if !unknown.is_empty() {
        return Err(ConfigError::Unknown {
            path: path.to_path_buf(),
            unknown,
            known: known.iter().map(|k| k.to_string()).collect(),
        });
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        values,
    })
}

impl ConfigFile {
    /// Gives each value to its flag's environment variable unless that variable is set.
    /// Call before any thread starts (it changes the process environment).
    pub fn apply_to_env(&self, cmd: &clap::Command) {
        for arg in cmd.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            if let Some(value) = self.values.get(long) {
                if std::env::var_os(env).is_none() {
                    std::env::set_var(env, value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("t")
            .arg(clap::Arg::new("listen").long("listen").env("T_LISTEN"))
            .arg(clap::Arg::new("refresh_workers").long("refresh-workers"))
            .arg(clap::Arg::new("config").long("config"))
    }

    #[test]
    fn keys_are_flag_names_and_unknown_ones_are_named() {
        let p = Path::new("x.toml");
        let c = parse(p, "listen = \"0.0.0.0:1\"\nrefresh_workers = 3\n", &cmd()).unwrap();
        assert_eq!(c.values["listen"], "0.0.0.0:1");
        assert_eq!(c.values["refresh-workers"], "3");
        let e = parse(p, "listen = \"a\"\nlisten_port = 1\nbogus = true\n", &cmd())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown keys bogus, listen_port"), "{e}");
        let e = parse(p, "config = \"other.toml\"\n", &cmd())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key config"), "{e}");
        let e = parse(p, "listen = [1]\n", &cmd()).unwrap_err().to_string();
        assert!(e.contains("expected a string"), "{e}");
    }

    #[test]
    fn the_path_comes_from_the_flag() {
        let args: Vec<OsString> = ["p", "--listen", "x", "--config", "a.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(path_from(&args), Some(PathBuf::from("a.toml")));
        let args: Vec<OsString> = ["p", "--config=b.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(path_from(&args), Some(PathBuf::from("b.toml")));
    }
}
