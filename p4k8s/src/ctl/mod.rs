//! `p4k8s ctl`: a small P4Runtime controller for trying the target out.
//!
//! - `p4k8s ctl apply [--addr A] [--device-id D] [--election-id E]
//!   [--p4info FILE | --keep-pipeline] [--batch N] SCENARIO.toml`: becomes
//!   primary, pushes the P4Info (default: upstream's `k8s_dp`, embedded)
//!   with VERIFY_AND_COMMIT unless `--keep-pipeline`, and inserts what
//!   upstream's manager writes for the scenario's pods, services and
//!   policies ([`scenario`] has the file format, [`entities`] the entries
//!   and the id scheme), at most `N` updates per Write (default 1000).
//!   A failed Write prints each failed update with its `p4.v1.Error` and
//!   the command exits non-zero.
//! - `p4k8s ctl delete [--addr A] [--device-id D] [--election-id E]
//!   [--batch N] SCENARIO.toml`: deletes what `apply` wrote for the
//!   scenario, in reverse order, keeping the device's pipeline.
//! - `p4k8s ctl read [--addr A] [--device-id D] --table NAME`: prints the
//!   entries of a table, or the members and groups of an action profile,
//!   one per line, named with the device's P4Info.

pub mod client;
pub mod entities;
pub mod scenario;

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use p4k8s_p4runtime::proto::p4::v1::{
    entity, ActionProfileGroup, ActionProfileMember, Entity, TableEntry,
};
use thiserror::Error;

use client::{Session, UpdateFailure};
use entities::{BuildError, Info};
use scenario::{Scenario, ScenarioError};

/// Upstream's `k8s_dp` P4Info (text format), the default pipeline.
pub const UPSTREAM_P4INFO: &str = include_str!("../../../p4/upstream/k8s_dp.p4info.txt");

/// Options shared by every `ctl` command.
#[derive(Debug, Args)]
pub struct Target {
    /// The P4Runtime server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:9559")]
    pub addr: String,
    /// The device id.
    #[arg(long, default_value_t = 1)]
    pub device_id: u64,
}

/// `p4k8s ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Push the pipeline and write a scenario's pods, services and policies.
    Apply(ApplyArgs),
    /// Delete what `apply` wrote for a scenario (reverse order).
    Delete(DeleteArgs),
    /// Print the entries of a table or action profile.
    Read(ReadArgs),
}

/// Options of `p4k8s ctl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    target: Target,
    /// The election id to become primary with.
    #[arg(long, default_value_t = 1)]
    election_id: u128,
    /// The P4Info to push (text format); default upstream's `k8s_dp`.
    #[arg(long, conflicts_with = "keep_pipeline")]
    p4info: Option<PathBuf>,
    /// Keep the device's pipeline (and read its P4Info) instead of pushing one.
    #[arg(long)]
    keep_pipeline: bool,
    /// Updates per Write request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The scenario file (TOML: `[[pod]]`, `[[service]]`, `[[policy]]`).
    scenario: PathBuf,
}

/// Options of `p4k8s ctl delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    target: Target,
    /// The election id to become primary with.
    #[arg(long, default_value_t = 1)]
    election_id: u128,
    /// Updates per Write request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The scenario file that was applied.
    scenario: PathBuf,
}

/// Options of `p4k8s ctl read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    target: Target,
    /// The table or action profile (alias or full name).
    #[arg(long)]
    table: String,
}

/// Failed updates, printed one per line.
#[derive(Debug)]
pub struct Failures(pub Vec<(UpdateFailure, String)>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (failure, what) in &self.0 {
            write!(f, "\n  update #{}", failure.index)?;
            if !what.is_empty() {
                write!(f, " ({what})")?;
            }
            write!(f, ": {:?}: {}", failure.code, failure.message)?;
        }
        Ok(())
    }
}

/// What can go wrong in `p4k8s ctl`.
#[derive(Debug, Error)]
pub enum CtlError {
    /// The scenario file is unusable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The P4Info cannot express the scenario.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A P4Info file could not be read or parsed.
    #[error("P4Info {path}: {message}")]
    P4Info {
        /// The file (or `device` for the device's own).
        path: String,
        /// What went wrong.
        message: String,
    },
    /// No connection to the server.
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
    /// Not primary.
    #[error("arbitration: {0}")]
    Arbitration(String),
    /// An RPC failed as a whole.
    #[error("{rpc}: {code:?}: {message}")]
    Rpc {
        /// The RPC.
        rpc: &'static str,
        /// Its status code.
        code: tonic::Code,
        /// Its status message.
        message: String,
    },
    /// Some updates of a Write failed (the others were applied).
    #[error("write failed: {} update(s) refused (updates before #{written_before} were written):{failures}", failures.0.len())]
    Write {
        /// The failed updates and what each was (empty when unknown).
        failures: Failures,
        /// Updates of earlier, successful Writes.
        written_before: usize,
    },
    /// `ctl read` of something the P4Info does not have.
    #[error("the device's P4Info has no table or action profile {0}")]
    NoSuchTable(String),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CtlError {
    /// An RPC's failure status.
    pub fn rpc(rpc: &'static str, status: &tonic::Status) -> CtlError {
        CtlError::Rpc {
            rpc,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

fn load_p4info(path: Option<&PathBuf>) -> Result<Info, CtlError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| CtlError::P4Info {
                path: p.display().to_string(),
                message: e.to_string(),
            })?,
            p.display().to_string(),
        ),
        None => (UPSTREAM_P4INFO.to_owned(), "upstream k8s_dp".to_owned()),
    };
    let info = p4k8s_p4runtime::p4info::parse_text(&text).map_err(|e| CtlError::P4Info {
        path: origin,
        message: e.to_string(),
    })?;
    Ok(Info::new(info))
}

/// Runs `p4k8s ctl`.
pub fn run(args: CtlArgs) -> Result<(), CtlError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CtlError::Runtime)?;
    runtime.block_on(async {
        match args.command {
            CtlCommand::Apply(a) => apply(a).await,
            CtlCommand::Delete(d) => delete(d).await,
            CtlCommand::Read(r) => read(r).await,
        }
    })
}

async fn apply(args: ApplyArgs) -> Result<(), CtlError> {
    let scenario = Scenario::load(&args.scenario)?;
    let mut session = Session::connect(&args.target.addr, args.target.device_id).await?;
    session.become_primary(args.election_id).await?;
    let info = if args.keep_pipeline {
        let p4info = session
            .get_p4info()
            .await?
            .ok_or_else(|| CtlError::P4Info {
                path: "device".into(),
                message: "the device has no pipeline; drop --keep-pipeline".into(),
            })?;
        Info::new(p4info)
    } else {
        let info = load_p4info(args.p4info.as_ref())?;
        session.set_pipeline(info.p4info().clone()).await?;
        info
    };
    let updates = entities::build(&scenario, &info)?;
    let n = updates.len();
    write_described(&mut session, &info, updates, args.batch).await?;
    println!(
        "wrote {n} entities: {} pods, {} services, {} policies",
        scenario.pods.len(),
        scenario.services.len(),
        scenario.policies.len()
    );
    Ok(())
}

async fn delete(args: DeleteArgs) -> Result<(), CtlError> {
    let scenario = Scenario::load(&args.scenario)?;
    let mut session = Session::connect(&args.target.addr, args.target.device_id).await?;
    session.become_primary(args.election_id).await?;
    let p4info = session
        .get_p4info()
        .await?
        .ok_or_else(|| CtlError::P4Info {
            path: "device".into(),
            message: "the device has no pipeline, so nothing to delete".into(),
        })?;
    let info = Info::new(p4info);
    let updates = entities::deletes(entities::build(&scenario, &info)?);
    let n = updates.len();
    write_described(&mut session, &info, updates, args.batch).await?;
    println!("deleted {n} entities");
    Ok(())
}

/// Writes `updates`; a failure names each refused update.
async fn write_described(
    session: &mut Session,
    info: &Info,
    updates: Vec<p4k8s_p4runtime::proto::p4::v1::Update>,
    batch: usize,
) -> Result<(), CtlError> {
    let described: Vec<String> = updates
        .iter()
        .map(|u| {
            u.entity
                .as_ref()
                .map_or_else(String::new, |e| info.describe(e))
        })
        .collect();
    match session.write(updates, batch).await {
        Err(CtlError::Write {
            mut failures,
            written_before,
        }) => {
            for (f, what) in &mut failures.0 {
                what.clone_from(&described.get(f.index).cloned().unwrap_or_default());
            }
            Err(CtlError::Write {
                failures,
                written_before,
            })
        }
        other => other,
    }
}

async fn read(args: ReadArgs) -> Result<(), CtlError> {
    let mut session = Session::connect(&args.target.addr, args.target.device_id).await?;
    let p4info = session
        .get_p4info()
        .await?
        .ok_or_else(|| CtlError::P4Info {
            path: "device".into(),
            message: "the device has no pipeline yet".into(),
        })?;
    let info = Info::new(p4info);
    let wanted: Vec<Entity> = if let Ok(t) = info.table(&args.table) {
        vec![Entity {
            entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
                table_id: t.preamble.as_ref().map_or(0, |p| p.id),
                ..Default::default()
            }))),
        }]
    } else if let Ok(p) = info.profile(&args.table) {
        let id = p.preamble.as_ref().map_or(0, |p| p.id);
        vec![
            Entity {
                entity: Some(entity::Entity::ActionProfileMember(ActionProfileMember {
                    action_profile_id: id,
                    ..Default::default()
                })),
            },
            Entity {
                entity: Some(entity::Entity::ActionProfileGroup(ActionProfileGroup {
                    action_profile_id: id,
                    ..Default::default()
                })),
            },
        ]
    } else {
        return Err(CtlError::NoSuchTable(args.table));
    };
    let entities = session.read(wanted).await?;
    for e in &entities {
        println!("{}", info.describe(e));
    }
    eprintln!("{} entries", entities.len());
    Ok(())
}
